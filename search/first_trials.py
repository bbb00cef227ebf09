"""The settings a search's first trials take (``search.first_trials``) before Optuna samples.

Each entry gives searched settings their values: a mapping such as ``{train.lr: 0.003}``, or the
path of a YAML training config, whose values of the searched settings are taken (a finished
search's RUN_DIR, local or an s3:// or gs:// URI, stands for its best.yaml). A searched setting
an entry leaves out is sampled. Optuna runs the entries first (OptunaSearch's
``points_to_evaluate``), so a known recipe or a previous search's best is measured on the same
terms as the trials that search around it, and TPE learns from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from alphabet.config import load_yaml, read_yaml
from alphabet.errors import UserError
from alphabet.rundir import BEST_FILE
from search.storage import RunLocation

if TYPE_CHECKING:  # experiment.py imports this module
    from search.experiment import ParamSpec


def first_trials_from(raw: Any, space: list[ParamSpec], origin: str) -> list[dict[str, Any]]:
    """The entries of ``search.first_trials`` as mappings of searched settings to values in the space."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"{origin}: search.first_trials: expected a list of mappings or YAML paths, got {raw!r}")
    points = []
    for i, entry in enumerate(raw):
        where = f"{origin}: search.first_trials[{i}]"
        if isinstance(entry, str):
            point = _from_training_config(entry, space, where)
            where = f"{where} ({entry})"
        elif isinstance(entry, dict):
            point = {str(key): value for key, value in entry.items()}
        else:
            raise UserError(f"{where}: expected a mapping of searched settings or a YAML path, got {entry!r}")
        _check_point(point, space, where)
        points.append(point)
    return points


def _read_settings(entry: str, where: str) -> Any:
    """A training config from a path, a search's RUN_DIR (its best.yaml) or a remote RUN_DIR's URI."""
    if "://" in entry:
        text = RunLocation.parse(entry).read_text(BEST_FILE)
        if text is None:
            raise UserError(f"{where}: {entry}: no {BEST_FILE}; expected a finished search's RUN_DIR")
        try:
            return load_yaml(text)
        except yaml.YAMLError:
            raise UserError(f"{where}: {entry}: {BEST_FILE} is malformed YAML") from None
    path = Path(entry)
    if path.is_dir():
        if not (path / BEST_FILE).is_file():
            raise UserError(f"{where}: {path}: no {BEST_FILE}; expected a finished search's RUN_DIR or a YAML file")
        path = path / BEST_FILE
    if not path.is_file():
        raise UserError(f"{where}: {path}: not found; expected a finished search's RUN_DIR or a YAML training "
                        "config (relative paths are from the current folder)")
    return read_yaml(path)


def _from_training_config(entry: str, space: list[ParamSpec], where: str) -> dict[str, Any]:
    """The searched settings' values in a training config, for those whose ``when`` holds there."""
    settings = _read_settings(entry, where)
    if not isinstance(settings, dict):
        raise UserError(f"{where}: {entry}: expected a training config (a mapping of sections), got {settings!r}")
    point: dict[str, Any] = {}
    for spec in space:  # in the space's order, as DefineSpace decides what a trial searches
        section, _, name = spec.key.partition(".")
        values = settings.get(section)
        if not isinstance(values, dict) or name not in values:
            continue  # left to the sampler
        if spec.applies(point):
            point[spec.key] = values[name]
    if not point:
        raise UserError(f"{where}: {entry}: has none of the searched settings ({', '.join(s.key for s in space)}); "
                        f"expected a training config such as a search's {BEST_FILE}")
    return point


def _check_point(point: dict[str, Any], space: list[ParamSpec], where: str) -> None:
    specs = {spec.key: spec for spec in space}
    if not point:
        raise UserError(f"{where}: expected at least one searched setting ({', '.join(specs)})")
    for key, value in point.items():
        spec = specs.get(key)
        if spec is None:
            raise UserError(f"{where}.{key}: not a searched setting; expected one of {', '.join(specs)}")
        for condition, allowed in spec.when.items():
            if point.get(condition) not in allowed:
                given = f"got {point[condition]!r}" if condition in point else "it gives none"
                raise UserError(f"{where}.{key}: searched only when {condition} is "
                                f"{' or '.join(map(str, allowed))}; expected {condition}: {allowed[0]} in the "
                                f"same entry, {given}")
        spec.check_value(value, f"{where}.{key}")
