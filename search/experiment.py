"""Experiment files: fixed training settings, a search space, budget, resources and schedule.

An experiment YAML has these sections (all but ``space`` optional)::

    config:     the fixed alphabet settings, as in an ``alphabet train`` YAML
    space:      {dotted.key: {type: loguniform|uniform|int|choice, ...}}
    search:     metric, num_samples, time_budget_s, max_concurrent, seed, startup_trials, rank_epochs,
                first_trials (settings the first trials take; see search/first_trials.py)
    asha:       max_t (epochs), grace_period, reduction_factor
    resources:  cpus_per_trial, gpus_per_trial ("auto" = from the hardware found)
    storage:    path (local dir, NFS path or s3:// / gs:// URI), name
    retrain:    epochs, seeds (more than 1 trains that many seeds and reports their ensemble),
                batch_size (null: the searched one; another scales the lr, see search/retrain.py)

Every key is checked; a mistake is one UserError line naming file and key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphabet.config import (
    Config,
    check_seed,
    from_dict,
    given_by,
    is_finite_number,
    is_text_setting,
    merge,
    nest,
    parse_overrides,
    parse_pairs,
    read_yaml,
    setting_type,
    to_dict,
    valid_keys,
)
from alphabet.errors import UserError, did_you_mean
from alphabet.finetune import InitialWeights, check_fits_config
from alphabet.rundir import check_name
from alphabet.train import check_trainable
from search.first_trials import first_trials_from
from search.storage import RunLocation

METRICS = {  # name reported to Tune -> optimisation mode
    "val_balanced_accuracy": "max",
    "val_accuracy": "max",
    "val_macro_f1": "max",
    "val_loss": "min",
}
DISTRIBUTIONS = {
    "loguniform": {"low", "high"},
    "uniform": {"low", "high", "step"},
    "int": {"low", "high", "step", "log"},
    "choice": {"values"},
}


@dataclass
class ParamSpec:
    """One searched setting. ``step`` quantises; ``when`` makes it conditional."""

    key: str  # dotted alphabet config key, e.g. "train.lr"
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: list | None = None
    when: dict[str, list] = field(default_factory=dict)  # {"train.optimizer": ["sgd"]}

    def applies(self, chosen: dict[str, Any]) -> bool:
        """Whether a trial whose other settings are ``chosen`` searches this one (its ``when`` holds)."""
        return all(chosen.get(key) in allowed for key, allowed in self.when.items())

    def check_value(self, value: Any, where: str) -> None:
        """Refuse a value this setting could not draw: Optuna would run one outside the space, then
        model it as if inside, and a ``when`` on it would never hold."""
        if self.type == "choice":
            if value not in self.values:
                raise UserError(f"{where}: expected one of {', '.join(map(str, self.values))}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        if self.type == "int" and value != int(value):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise UserError(f"{where}: expected a value from {self.low} to {self.high}, got {value!r}")
        if self.step and not _on_grid(value - self.low, self.step):
            raise UserError(f"{where}: expected {self.low} plus a multiple of {self.step}, got {value!r}")


def _on_grid(span: float, step: float) -> bool:
    steps = span / step
    return math.isclose(steps, round(steps), abs_tol=1e-6)


@dataclass
class SearchSettings:
    metric: str = "val_balanced_accuracy"
    num_samples: int = 20
    time_budget_s: float | None = None
    max_concurrent: int | None = None  # default: as many as the resources allow
    seed: int = 0  # Optuna sampler seed
    # Trials TPE samples at random before it models the results. None ("auto"): a fifth of
    # num_samples, 3 to 10; Optuna's own 10 would leave a 16-trial search only 6 guided trials.
    startup_trials: int | None = None
    searcher: str = "optuna"  # optuna | random (random + FIFO is the benchmark baseline)
    # A trial ranks by the mean of its metric over its last rank_epochs epochs, as a retrain takes its
    # final weights: the peak of a noisy curve overstates what a retrain gets. None ("auto"): a tenth
    # of asha.max_t, at least 1 (on femnist, 60-epoch trials peaked up to 0.9 points over their last epoch).
    rank_epochs: int | None = None
    scheduler: str = "asha"  # asha | fifo

    @property
    def trials_at_once(self) -> int:
        """At most how many trials run side by side, whatever the resources."""
        return min(self.num_samples, self.max_concurrent or self.num_samples)


@dataclass
class AshaSettings:
    max_t: int = 20  # epochs a trial runs at most
    grace_period: int = 2
    reduction_factor: float = 3.0

    def rungs(self) -> list[float]:
        """The epochs at which ASHA compares trials: grace_period * reduction_factor**k below max_t,
        as Ray's ASHAScheduler places them."""
        rungs, t = [], self.grace_period
        while t < self.max_t:
            rungs.append(t)
            t *= self.reduction_factor
        return rungs


@dataclass
class Resources:
    # None ("auto"): without a GPU, the CPUs shared among search.trials_at_once trials, at least 1 each; else 1
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None  # None ("auto"): a share of one GPU when there is one
    max_failures: int = 2  # retries of a trial whose worker died, from its last checkpoint


@dataclass
class Storage:
    path: str = "runs/search"
    name: str | None = None  # default: the experiment file's stem
    keep_checkpoints: int = 2  # per trial, to bound disk use


@dataclass
class Experiment:
    config: Config
    space: list[ParamSpec]
    search: SearchSettings = field(default_factory=SearchSettings)
    asha: AshaSettings = field(default_factory=AshaSettings)
    resources: Resources = field(default_factory=Resources)
    storage: Storage = field(default_factory=Storage)
    retrain_epochs: int = 500
    retrain_seeds: int = 1  # more than 1: an ensemble of that many seeds
    retrain_batch_size: int | None = None  # None: the searched config's batch size
    source: str = "experiment"  # the file it came from, for messages
    first_trials: list[dict[str, Any]] = field(default_factory=list)  # {searched key: value}, run first
    overrides: list[str] = field(default_factory=list)  # --set's, so that a mistake in one is named as theirs

    def origin(self, key: str) -> str:
        """Where ``key`` (``config.data.source``, say) got its value, for a message: ``--set`` or the file."""
        return "--set" if given_by(key, self.overrides) else self.source

    @property
    def startup_trials(self) -> int:
        s = self.search
        return s.startup_trials if s.startup_trials is not None else min(10, max(3, s.num_samples // 5))

    @property
    def rank_epochs(self) -> int:
        s = self.search
        return s.rank_epochs if s.rank_epochs is not None else max(1, self.asha.max_t // 10)

    @property
    def mode(self) -> str:
        return METRICS[self.search.metric]

    @property
    def worst(self) -> float:
        """The metric's worst value: what a trial whose settings cannot train is told as."""
        return 0.0 if self.mode == "max" else float("inf")

    def to_dict(self) -> dict:
        """Plain data that ``experiment_from_dict`` reads back (saved as RUN_DIR/experiment.yaml)."""
        space = {}
        for p in self.space:
            spec = {"type": p.type}
            for name in ("low", "high", "step", "values"):
                if getattr(p, name) is not None:
                    spec[name] = getattr(p, name)
            if p.log:
                spec["log"] = True
            if p.when:
                spec["when"] = p.when
            space[p.key] = spec
        config = to_dict(self.config)
        del config["train"]["epochs"]  # set from asha.max_t when read back
        return {
            "config": config,
            "space": space,
            # first_trials as mappings: a best.yaml it was read from may be gone when a search resumes
            "search": {**dataclasses.asdict(self.search),
                       **({"first_trials": self.first_trials} if self.first_trials else {})},
            "asha": dataclasses.asdict(self.asha),
            "resources": {k: "auto" if v is None else v for k, v in dataclasses.asdict(self.resources).items()},
            "storage": dataclasses.asdict(self.storage),
            "retrain": {"epochs": self.retrain_epochs, "seeds": self.retrain_seeds,
                        "batch_size": self.retrain_batch_size},
        }


SECTIONS = ("config", "space", "search", "asha", "resources", "storage", "retrain")
# The experiment's own settings that hold text (search.metric, storage.name, ...): see is_experiment_text
TEXT_SETTINGS = frozenset(f"{section}.{f.name}" for section, cls in (("search", SearchSettings), ("storage", Storage))
                          for f in dataclasses.fields(cls) if setting_type(f.name, cls) is str)


def is_experiment_text(key: str) -> bool:
    """Whether ``--set KEY=...`` gives an experiment text, kept as typed (``parse_pairs``): a search named 2024."""
    section, _, rest = key.partition(".")
    return is_text_setting(rest) if section == "config" else key in TEXT_SETTINGS


def _settings(cls: type, raw: Any, origin: str, section: str) -> Any:
    """A settings dataclass from a mapping, reusing alphabet's strict checking."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise UserError(f"{origin}: {section}: expected a mapping, got {raw!r}")
    # "auto" stands for a number the search derives; a text setting keeps it as written (a search named auto)
    cleaned = {k: (None if v == "auto" and f"{section}.{k}" not in TEXT_SETTINGS else v) for k, v in raw.items()}
    return from_dict(cleaned, origin, cls, shown=section + ".")


def _refuse_distribution_in_config(config_raw: Any, origin: str) -> None:
    """A distribution among the fixed settings is a search meant, not a bad value: say where it goes."""
    if not isinstance(config_raw, dict):
        return  # from_dict says what config should be
    for section, settings in config_raw.items():
        for name, value in (settings.items() if isinstance(settings, dict) else ()):
            if isinstance(value, dict) and (value.get("type") in DISTRIBUTIONS or value.keys() & DISTRIBUTIONS):
                raise UserError(f"{origin}: config.{section}.{name}: expected a fixed value; to search it, "
                                f"give it under space, as {section}.{name}: "
                                "{type: loguniform, low: 0.0001, high: 0.01}")


def _param(key: str, raw: Any, origin: str, params: set[str]) -> ParamSpec:
    where = f"{origin}: space.{key}"
    if key not in params:
        raise UserError(f"{where}: unknown setting{did_you_mean(key, params)}; expected one of "
                        f"{', '.join(sorted(params))}")
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or raw["type"] not in DISTRIBUTIONS:
        raise UserError(f"{where}: expected a mapping with type one of {', '.join(DISTRIBUTIONS)}")
    kind = raw["type"]
    extra = set(raw) - DISTRIBUTIONS[kind] - {"type", "when"}
    if extra:
        raise UserError(f"{where}: unknown key {sorted(extra)[0]!r} for type {kind}; expected "
                        f"{', '.join(sorted(DISTRIBUTIONS[kind] | {'when'}))}")
    value_type = setting_type(key)
    if kind != "choice" and value_type in (bool, str):
        raise UserError(f"{where}: expected type choice for a {value_type.__name__} setting, got type {kind}")
    if kind in ("uniform", "loguniform") and value_type is int:
        # Their ends may be whole numbers, but every value drawn between them is a fraction.
        raise UserError(f"{where}: expected type int or choice for an integer setting, got type {kind}")
    if not isinstance(raw.get("log", False), bool):
        raise UserError(f"{where}: log: expected true or false, got {raw['log']!r}")
    spec = ParamSpec(key=key, type=kind, step=raw.get("step"), log=raw.get("log", False))
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: values: expected a non-empty list, got {values!r}")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:  # TPE would draw it twice as often, and a `when` on it (or on the others) be muddled
            raise UserError(f"{where}: values: expected each value once, got {repeated[0]!r} more than once")
        spec.values = values
    else:
        low, high = raw.get("low"), raw.get("high")
        for name, value in (("low", low), ("high", high), ("step", spec.step)):
            if value is not None and not is_finite_number(value):
                raise UserError(f"{where}: {name}: expected a finite number, got {value!r}")
        if low is None or high is None:
            raise UserError(f"{where}: expected both low and high")
        if low >= high:
            raise UserError(f"{where}: expected low < high, got low={low} high={high}")
        if kind == "loguniform" and low <= 0:
            raise UserError(f"{where}: low: expected a value > 0 for loguniform, got {low}")
        if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise UserError(f"{where}: expected integer low and high for type int, got low={low!r} high={high!r}")
        if spec.step is not None and spec.step <= 0:
            raise UserError(f"{where}: step: expected a value > 0, got {spec.step}")
        if kind == "int" and spec.step is not None and not isinstance(spec.step, int):
            raise UserError(f"{where}: step: expected a whole number for type int, got {spec.step}")
        if spec.step is not None and spec.step > high - low:  # one value only: a fixed setting, not a search
            raise UserError(f"{where}: step: expected at most high - low ({high - low:g}), got {spec.step}")
        if spec.log and spec.step not in (None, 1):
            raise UserError(f"{where}: expected no step with log: true (Optuna samples an int on a log "
                            f"scale only in steps of 1), got step={spec.step}")
        if spec.step and not _on_grid(high - low, spec.step):  # Optuna would quietly lower high to fit
            raise UserError(f"{where}: expected high - low to be a multiple of step {spec.step}, got "
                            f"low={low} high={high}")
        spec.low, spec.high = low, high
    when = {} if raw.get("when") is None else raw["when"]  # `when:` left empty is no condition
    if not isinstance(when, dict):
        raise UserError(f"{where}: when: expected a mapping like {{train.optimizer: sgd}}, got {when!r}")
    spec.when = {k: (v if isinstance(v, list) else [v]) for k, v in when.items()}
    return spec


def _in_condition_order(space: list[ParamSpec], origin: str) -> list[ParamSpec]:
    """The space with each setting after the settings its ``when`` names, otherwise as listed. A trial
    decides its settings in this order, so a condition on one listed later (momentum above the
    optimizer it depends on) would never hold, and the setting would never be searched."""
    ordered: list[ParamSpec] = []
    pending = list(space)
    while pending:
        decided = {p.key for p in ordered}
        ready = next((p for p in pending if set(p.when) <= decided), None)
        if ready is None:  # every setting left waits on another one left: the conditions go round
            p = pending[0]
            k = next(k for k in p.when if k not in decided)
            if k == p.key:
                raise UserError(f"{origin}: space.{p.key}.when: expected a condition on another setting, got one on "
                                f"{p.key} itself, which would never hold")
            raise UserError(f"{origin}: space.{p.key}.when: expected conditions on settings decided before "
                            f"it, got {k!r}, which waits on {p.key} in turn (the conditions go round in a circle)")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def _check_buildable(config: Config, origin: str, section: str) -> None:
    try:
        check_trainable(config)
    except UserError as error:  # the message starts with its key; say in which section it was set
        raise UserError(f"{origin}: {section}.{error}") from None


def _value_configs(fixed_settings: dict, spec: ParamSpec, origin: str) -> Iterator[tuple[Any, Config]]:
    """Each value a parameter can take (each choice, both ends of a range) and the trial config it
    makes over ``fixed_settings`` (the config section as a dict), with the values its ``when`` asks for."""
    ends = spec.values if spec.type == "choice" else [spec.low, spec.high]
    conditions = {key: values[0] for key, values in spec.when.items()}
    for value in ends:
        yield value, from_dict(merge(fixed_settings, nest({**conditions, spec.key: value})), origin, Config,
                               shown="space.")


def _check_values(fixed_settings: dict, spec: ParamSpec, origin: str) -> None:
    """Every value a parameter can take makes a trial config that trains: a typo in the space is
    refused here, before the search starts, not found by every trial that draws it."""
    for _, trial in _value_configs(fixed_settings, spec, origin):
        _check_buildable(trial, origin, "space")


def check_initial_weights(experiment: Experiment, initial: InitialWeights) -> None:
    """Every model the space can build takes the weights that ``train.init_from`` names, checked before
    the search starts rather than by each trial that draws a width they do not fit."""
    fixed = to_dict(experiment.config)
    models = [("config.", experiment.config.model)] + [
        (f"space.{p.key}={value!r}: ", trial.model)
        for p in experiment.space for value, trial in _value_configs(fixed, p, experiment.source)]
    for where, model in models:
        try:
            check_fits_config(model, initial)
        except UserError as e:
            # the weights or the model they do not fit: named as --set's where either came from it
            keys = ("config.train.init_from", "config.model" if where == "config." else where.partition("=")[0])
            origin = "--set" if "--set" in {experiment.origin(k) for k in keys} else experiment.source
            raise UserError(f"{origin}: {where}{e}") from None


def with_space_overrides(raw: dict, flat: dict[str, Any]) -> dict:
    """Apply ``--set space.SECTION.NAME.FIELD=v`` (one field of a searched parameter) and
    ``--set space.SECTION.NAME=v`` (the whole parameter; null: not searched). The parameters' own names
    have a dot, so these cannot be nested as other --set keys are."""
    if not flat or not isinstance(raw.get("space") or {}, dict):  # a malformed space: reported as such below
        return raw
    space = dict(raw.get("space") or {})
    for key, value in flat.items():
        parts = key.split(".")
        if len(parts) not in (3, 4):
            raise UserError(f"--set {key}: expected space.SECTION.NAME=... or space.SECTION.NAME.FIELD=..., "
                            "e.g. space.train.lr.high=0.1")
        param = ".".join(parts[1:3])
        if len(parts) == 3 and value is None:
            space.pop(param, None)
        elif len(parts) == 3:
            space[param] = value
        else:
            if param not in space:
                raise UserError(f"--set {key}: space.{param} is not searched in this experiment"
                                f"{did_you_mean(param, space, 'space.')}; give the whole parameter, e.g. "
                                f"space.{param}={{type: uniform, low: 0, high: 1}}")
            space[param] = {**space[param], parts[3]: value}
    return {**raw, "space": space}


def experiment_from_dict(raw: Any, origin: str, overrides: list[str] | None = None) -> Experiment:
    """The experiment in ``raw`` (read from ``origin``) with ``--set`` ``overrides`` applied. A mistake
    is named as the file's where the file makes it, and as --set's where only the overrides do."""
    if not isinstance(raw, dict):
        raise UserError(f"{origin}: top level: expected a mapping with sections {', '.join(SECTIONS)}")
    if not overrides:
        return _experiment(raw, origin)
    searched = [o for o in overrides if o.startswith("space.")]
    merged = merge(raw, parse_overrides([o for o in overrides if not o.startswith("space.")],
                                        is_text=is_experiment_text))
    merged = with_space_overrides(merged, parse_pairs(searched))
    try:
        experiment = _experiment(merged, origin)
    except UserError as error:
        try:
            _experiment(raw, origin)
        except UserError as own:
            if str(own) == str(error):  # the file's own mistake, which the overrides left as it was
                raise
        _experiment(merged, "--set")  # raises the overrides' mistake again, named as theirs
        raise  # not reached: the same settings fail the same way
    return dataclasses.replace(experiment, overrides=list(overrides))


def _experiment(raw: dict, origin: str) -> Experiment:
    unknown = set(raw) - set(SECTIONS)
    if unknown and not raw.keys() & {"config", "space"} and unknown <= {f.name for f in dataclasses.fields(Config)}:
        raise UserError(f"{origin}: a training config (sections {', '.join(raw)}); expected an experiment "
                        f"with config and space sections, as in experiments/quick.yaml. To train it: "
                        f"alphabet train {origin}")
    if unknown:
        key = sorted(unknown)[0]
        # `--set train.lr=...` is the likely slip: fixed training settings live one level down
        setting = next(iter(raw[key]), "KEY") if isinstance(raw[key], dict) else "KEY"
        under_config = (f" (training settings go under config: config.{key}.{setting})"
                        if key in {f.name for f in dataclasses.fields(Config)} else "")
        hint = "" if under_config else did_you_mean(key, SECTIONS)
        raise UserError(f"{origin}: unknown key '{key}'{hint}; valid sections: {', '.join(SECTIONS)}{under_config}")
    _refuse_distribution_in_config(raw.get("config"), origin)
    config = from_dict(raw.get("config") or {}, origin, Config, shown="config.")
    if "epochs" in ((raw.get("config") or {}).get("train") or {}):
        raise UserError(f"{origin}: config.train.epochs: expected no value; in an experiment asha.max_t sets "
                        "the epochs of a trial and retrain.epochs those of the retrain")
    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, dict) or not space_raw:
        raise UserError(f"{origin}: space: expected a mapping of at least one setting to its distribution")
    params = set(valid_keys(Config)) - {k for k in valid_keys(Config) if k.startswith(("log.", "data."))}
    if "train.epochs" in space_raw:  # ASHA's rungs and the schedule are laid over one length for all trials
        raise UserError(f"{origin}: space.train.epochs: expected it not searched; asha.max_t sets the epochs of a "
                        "trial and retrain.epochs those of the retrain")
    if "train.init_from" in space_raw:  # the driver reads those weights once and hands them to every trial
        raise UserError(f"{origin}: space.train.init_from: expected it fixed, as config.train.init_from; "
                        "to compare starting points, run one search from each")
    space = [_param(str(k), v, origin, params) for k, v in space_raw.items()]
    searched = {p.key: p for p in space}
    for p in space:
        for k in p.when:
            if k not in searched:
                others = [key for key in searched if key != p.key]
                # A real setting left fixed gets no look-alike: model.stages is not a misspelt model.width.
                hint = (" (it is fixed in this experiment; a condition can name only a setting the space draws)"
                        if k in params
                        else did_you_mean(k, others))
                raise UserError(f"{origin}: space.{p.key}.when: {k!r} is not a searched setting"
                                f"{hint}; expected one of {', '.join(others)}")
    space = _in_condition_order(space, origin)
    _check_buildable(config, origin, "config")
    fixed_settings = to_dict(config)
    # The settings a `when` names are checked first, so that a typo in a choice is named where it is
    # made; then each `when`, so that a condition no trial could meet is named, not left unsearched.
    for p in space:
        if not p.when:
            _check_values(fixed_settings, p, origin)
    for p in space:
        for k, allowed in p.when.items():
            for value in allowed:
                searched[k].check_value(value, f"{origin}: space.{p.key}.when.{k}")
        if p.when:
            _check_values(fixed_settings, p, origin)
    search_raw = raw.get("search")
    first_raw = None
    if isinstance(search_raw, dict) and "first_trials" in search_raw:
        search_raw = dict(search_raw)
        first_raw = search_raw.pop("first_trials")
    search = _settings(SearchSettings, search_raw, origin, "search")
    if search.metric not in METRICS:
        raise UserError(f"{origin}: search.metric: expected one of {', '.join(METRICS)} (validation only), "
                        f"got {search.metric!r}")
    for name, value in (("num_samples", search.num_samples), ("max_concurrent", search.max_concurrent),
                        ("time_budget_s", search.time_budget_s), ("startup_trials", search.startup_trials),
                        ("rank_epochs", search.rank_epochs)):
        if value is not None and value <= 0:
            raise UserError(f"{origin}: search.{name}: expected a value > 0, got {value}")
    check_seed(search.seed, f"{origin}: search.seed")
    first_trials = first_trials_from(first_raw, space, origin)
    if len(first_trials) > search.num_samples:
        raise UserError(f"{origin}: search.first_trials: expected at most search.num_samples "
                        f"({search.num_samples}) entries, got {len(first_trials)}")
    for name, allowed in (("searcher", ("optuna", "random")), ("scheduler", ("asha", "fifo"))):
        if getattr(search, name) not in allowed:
            raise UserError(f"{origin}: search.{name}: expected one of {', '.join(allowed)}, "
                            f"got {getattr(search, name)!r}")
    asha = _settings(AshaSettings, raw.get("asha"), origin, "asha")
    for name, fits, expected in (("max_t", asha.max_t >= 1, "at least 1"),
                                 ("grace_period", 1 <= asha.grace_period <= asha.max_t,
                                  f"from 1 to asha.max_t ({asha.max_t})"),
                                 ("reduction_factor", asha.reduction_factor > 1, "more than 1")):
        if not fits:
            raise UserError(f"{origin}: asha.{name}: expected {expected}, got {getattr(asha, name)}")
    resources = _settings(Resources, raw.get("resources"), origin, "resources")
    for name in ("cpus_per_trial", "gpus_per_trial"):
        value = getattr(resources, name)
        if value is not None and (value < 0 or (name == "cpus_per_trial" and value == 0)):
            raise UserError(f"{origin}: resources.{name}: expected a positive number or auto, got {value}")
    if resources.gpus_per_trial and resources.gpus_per_trial > 1 and resources.gpus_per_trial % 1:
        raise UserError(f"{origin}: resources.gpus_per_trial: expected a fraction <= 1 or a whole number, "
                        f"got {resources.gpus_per_trial}")
    storage = _settings(Storage, raw.get("storage"), origin, "storage")
    if storage.name is not None:
        check_name(storage.name, f"{origin}: storage.name")
    if storage.keep_checkpoints < 1:
        raise UserError(f"{origin}: storage.keep_checkpoints: expected a value >= 1, got {storage.keep_checkpoints}")
    if ":" in RunLocation.parse(storage.path).user:
        # The path is saved in RUN_DIR/experiment.yaml, printed and written into best.yaml's commands.
        raise UserError(f"{origin}: storage.path: a secret key in the URI (USER:SECRET@) would be saved and "
                        "printed with the search; expected credentials from the environment (AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY, ~/.aws, GOOGLE_APPLICATION_CREDENTIALS)")
    retrain, keys = raw.get("retrain") or {}, ("epochs", "seeds", "batch_size")
    if not isinstance(retrain, dict):
        raise UserError(f"{origin}: retrain: expected a mapping with the keys epochs, seeds and batch_size")
    extra = sorted(set(map(str, retrain)) - set(keys))
    if extra:
        raise UserError(f"{origin}: unknown key 'retrain.{extra[0]}'{did_you_mean(extra[0], keys, 'retrain.')}; "
                        f"valid keys: {', '.join('retrain.' + k for k in keys)}")
    epochs, seeds, batch = retrain.get("epochs", 500), retrain.get("seeds", 1), retrain.get("batch_size")
    checked = {"epochs": epochs, "seeds": seeds, **({"batch_size": batch} if batch is not None else {})}
    for key, value in checked.items():  # a null batch_size means the searched batch
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            also = " (or null: the searched batch size)" if key == "batch_size" else ""
            raise UserError(f"{origin}: retrain.{key}: expected a positive integer{also}, got {value!r}")
    # Every trial runs the full ASHA horizon; the schedule is laid out over it.
    config.train.epochs = asha.max_t
    return Experiment(config, space, search, asha, resources, storage, epochs, seeds, batch, origin, first_trials)


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    experiment = experiment_from_dict(read_yaml(path), str(path), overrides)
    if experiment.storage.name is None:
        experiment.storage.name = check_name(Path(path).stem, f"{path}: storage.name")
    return experiment


def trial_config(experiment: Experiment, params: dict[str, Any]) -> Config:
    """The alphabet config of one trial: the fixed settings with the sampled ones applied.

    A quantised float is written as the step meant it: Optuna draws dropout 3 x 0.1 as
    0.30000000000000004, which a trial's config.yaml and best.yaml would otherwise show."""
    tidy = {key: float(f"{value:.12g}") if isinstance(value, float) else value for key, value in params.items()}
    return from_dict(merge(to_dict(experiment.config), nest(tidy)), f"{experiment.source}: trial")
