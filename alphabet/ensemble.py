"""Several trained models used as one classifier: the mean of their softmax probabilities.

Independently seeded models make partly different mistakes, so their average is
more accurate than any one of them. An ensemble is a small YAML file whose
``members`` are checkpoint paths, relative to the file:

    members:
    - seed-0/checkpoints/last.pt
    - seed-1/checkpoints/last.pt

Wherever a command takes a checkpoint it also takes an ensemble file, or the
directory that holds one (``alphabet train --seeds`` and ``retrain --seeds`` write them).
A ``temperature`` in the file (``alphabet calibrate`` writes one) divides the log of the
mean probabilities before they are normalised again: the readings stay, their confidence changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from alphabet.checkpoint import RUN_CHECKPOINT, model_from_checkpoint
from alphabet.config import Config, read_yaml
from alphabet.data import LetterSet
from alphabet.engine import predict_probs
from alphabet.errors import UserError, first_few
from alphabet.rundir import BEST_FILE
from alphabet.tta import PLAIN, TTA_VIEWS

ENSEMBLE_FILE = "ensemble.yaml"


@dataclass
class Classifier:
    """One model or several; ``config`` is the first member's training config. With ``tta``,
    each model scores every image as the mean over its test-time views (``alphabet.tta.TTA_VIEWS``)."""

    models: list[nn.Module]
    classes: list[str]
    config: Config
    device: torch.device
    tta: bool = False
    temperature: float = 1.0

    def predict_probs(self, data: LetterSet | torch.Tensor) -> torch.Tensor:
        views = TTA_VIEWS if self.tta else PLAIN
        probs = torch.stack([predict_probs(m, data, self.device, views=views) for m in self.models]).mean(0)
        return with_temperature(probs, self.temperature)


def with_temperature(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``probs`` (N, C) made sharper (temperature < 1) or softer (> 1): softmax(log p / T).
    For one model without test-time views this is the softmax of its logits divided by T."""
    if temperature == 1.0:
        return probs
    return (probs.clamp_min(1e-12).log() / temperature).softmax(-1)


def is_ensemble(path: str | Path) -> bool:
    path = Path(path)
    return (path / ENSEMBLE_FILE).is_file() if path.is_dir() else path.suffix in (".yaml", ".yml")


def run_checkpoint(path: str | Path) -> Path:
    """``path``, or for a run directory (``alphabet train``'s, ``retrain``'s) its ``checkpoints/last.pt``."""
    path = Path(path)
    if not path.is_dir():
        return path
    last = path / RUN_CHECKPOINT
    if not last.is_file():
        raise UserError(f"{path}: no {ENSEMBLE_FILE} or {RUN_CHECKPOINT} in this directory; expected a "
                        f"checkpoint .pt, an ensemble or a run directory{models_within(path)}")
    return last


def is_run_dir(path: Path) -> bool:
    """A run directory that commands taking a checkpoint read: a training run's, or an ensemble's."""
    return (path / RUN_CHECKPOINT).is_file() or (path / ENSEMBLE_FILE).is_file()


def models_within(folder: Path) -> str:
    """Where ``folder`` holds runs or checkpoints rather than being a run (a search's RUN_DIR, whose
    retrain is a run inside it; ``runs/``; a run's ``checkpoints/``), a hint that names them; for a finished
    search not retrained yet, the command that trains its best; else ""."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return ""
    runs = [c.name for c in children if is_run_dir(c)]
    files = sorted((c.name for c in children if c.suffix == ".pt" and c.is_file()), key=_last_and_best_first)
    found, kind = (runs, "runs") if runs else (files, "checkpoints")
    if found:
        return f" ({kind} in it: {first_few(found)}; name one, e.g. {folder / found[0]})"
    if (folder / BEST_FILE).is_file():  # the commonest slip: a model asked of a search not yet retrained
        return f" (a search, its best not trained yet: alphabet retrain {folder}, then name {folder / 'retrain'})"
    return ""


def _last_and_best_first(name: str) -> tuple[int, str]:
    """A run's checkpoints/ as a user would pick from it: last.pt, best.pt, then the epochs'."""
    first = ("last.pt", "best.pt")
    return (first.index(name) if name in first else len(first), name)


def write_ensemble(path: Path, members: list[Path]) -> Path:
    rel = [str(Path(m).relative_to(path.parent)) for m in members]
    header = "# An ensemble: predictions are the mean of these checkpoints' softmax probabilities.\n"
    path.write_text(header + yaml.safe_dump({"members": rel}, sort_keys=False))
    return path


def member_paths(path: str | Path) -> list[Path]:
    """The member checkpoints an ensemble file (or its directory) lists."""
    return read_ensemble(path)[0]


def read_ensemble(path: str | Path) -> tuple[list[Path], float]:
    """An ensemble file's (or its directory's) member checkpoints and temperature (1 when it has none)."""
    path = Path(path)
    if path.is_dir():
        path = path / ENSEMBLE_FILE
    raw = read_yaml(path)
    members = raw.get("members") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and "members" not in raw and raw.keys() & {"model", "train"}:
        # A run's config.yaml beside its checkpoints: the likely mix-up, so name what to give instead.
        raise UserError(f"{path}: a training config, not an ensemble; expected a checkpoint .pt, a run directory "
                        "or an ensemble's YAML with key members")
    if isinstance(raw, dict) and "members" not in raw and raw.keys() & {"space", "search"}:
        # An experiment names no weights; its search's retrain holds the model.
        raise UserError(f"{path}: an experiment file, not an ensemble; expected a checkpoint .pt, a run directory "
                        "(a search's retrain: alphabet retrain RUN_DIR writes RUN_DIR/retrain) or an ensemble's "
                        "YAML with key members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise UserError(f"{path}: key members: expected a non-empty list of checkpoint paths")
    temperature = raw.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise UserError(f"{path}: key temperature: expected a positive number, got {temperature!r}")
    return [path.parent / m for m in members], float(temperature)


def load_classifier(path: str | Path, device: torch.device, tta: bool = False) -> Classifier:
    """A checkpoint file, a run directory (its last checkpoint), or an ensemble whose members all
    predict the same classes."""
    if not is_ensemble(path):
        model, classes, config = model_from_checkpoint(run_checkpoint(path), device)
        return Classifier([model], classes, config, device, tta)
    source = Path(path) / ENSEMBLE_FILE if Path(path).is_dir() else Path(path)
    models, classes, config = [], None, None
    members, temperature = read_ensemble(source)
    for i, member in enumerate(members):
        try:
            model, member_classes, member_config = model_from_checkpoint(member, device)
        except UserError as e:  # name the ensemble too: it is the file the user gave
            raise UserError(f"{source}: key members[{i}]: {e}") from None
        if classes is None:
            classes, config = member_classes, member_config
        elif member_classes != classes:
            raise UserError(f"{source}: key members[{i}]: expected the classes {''.join(classes)} of the "
                            f"first member, got {''.join(member_classes)} from {member}")
        models.append(model)
    return Classifier(models, classes, config, device, tta, temperature)
