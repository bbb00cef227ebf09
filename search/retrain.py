"""Retrain the best configuration on train + validation for the full epochs, then report on test.

A retrain may use a larger batch than the search did (``--batch-size``, ``retrain.batch_size``):
on an H100, 500 epochs of the default CNN took a fifth as long at batch 512 as at 128. The lr is
then scaled by the square root of the batch ratio, which kept the femnist recipe's validation
accuracy at batch 512 (docs/BENCHMARKS.md, "Batch size of the retrain"); ``--set train.lr=...``
chooses it yourself.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alphabet.config import Config, TrainConfig, load_config, parse_overrides, read_yaml
from alphabet.ensemble import is_run_dir
from alphabet.environment import environment_line
from alphabet.errors import UserError, counted
from alphabet.metrics import LEVEL
from alphabet.rundir import BEST_FILE, holder_of_run_dir
from alphabet.train import check_trainable
from alphabet.train_ensemble import CONFIG_FILE, check_seed_count, train_seeds
from search.experiment import Experiment, trial_config
from search.results import SUMMARY_FILE, TrialRow, best_score_text, load_trials, read_summary, trial_settings_text
from search.runner import EXPERIMENT_FILE, load_saved_experiment, searches_within
from search.storage import RunLocation

REMOTE_FILE = "remote_uri.txt"  # in a remote search's local folder: the search's URI
COPIED_FILE = "copied_to.txt"  # in a remote search's retrain, once copied there: where it went
# A trial's retrain (--trial): RUN_DIR/retrain-ID (retrain-ID-2, ...; retrain-ID-smoke with --smoke-test), its
# settings in RUN_DIR/trial-ID.yaml.
TRIAL_RETRAIN = re.compile(r"retrain-([0-9a-f]+)(?:-smoke)?(?:-[0-9]+)?")
TRIAL_FOLDER = re.compile(r"trial_[0-9]+_([0-9a-f]+)")  # Tune's folder of a trial, as a user may copy it


def trial_file(trial_id: str) -> str:
    """The file, in the search's RUN_DIR, that holds a retrained trial's settings."""
    return f"trial-{trial_id}.yaml"


def _locate(target: str) -> tuple[Path, Path | None]:
    """(best.yaml, the search's RUN_DIR if known) from a RUN_DIR or a best.yaml path.

    A remote RUN_DIR (s3://...) has its best.yaml, experiment and summary copied to
    its local folder (runs/.remote/SCHEME/BUCKET/PATH); the retrain runs and writes there.
    """
    if "://" in target:
        location = RunLocation.parse(target)
        texts = {name: location.read_text(name) for name in (BEST_FILE, EXPERIMENT_FILE, SUMMARY_FILE)}
        if texts[BEST_FILE] is None:
            raise UserError(f"{target}: no {BEST_FILE}; expected a finished search's RUN_DIR")
        location.path.mkdir(parents=True, exist_ok=True)
        texts[REMOTE_FILE] = location.uri  # where the finished retrain is copied to, also after --resume
        for name, text in texts.items():  # the bucket's copy is the one that counts
            if text is not None:
                (location.path / name).write_text(text)
        target = str(location.path)
    path = Path(target)
    search_dir = path if path.is_dir() else path.parent
    if (search_dir / EXPERIMENT_FILE).is_file() and (holder := holder_of_run_dir(search_dir)):
        # its best.yaml is missing, or left by an interrupted run of the search and about to change
        raise UserError(f"{search_dir}: its search is still running ({holder}); expected a finished search "
                        "(wait for it, or stop it with Ctrl-C, which writes the best so far)")
    if path.is_dir():
        best = path / BEST_FILE
        if not best.is_file():
            raise UserError(f"{path}: no {BEST_FILE}; expected a finished search's RUN_DIR or a best.yaml file"
                            f"{_run_not_search(path) or searches_within(path)}")
        return best, path
    if not path.is_file():
        raise UserError(f"{path}: not found; expected a search RUN_DIR or a best.yaml file")
    return path, path.parent if (path.parent / EXPERIMENT_FILE).is_file() else None


def _run_not_search(path: Path) -> str:
    """Where ``path`` is a training run (a retrain, inside its search), the commands a user likely meant."""
    if not is_run_dir(path):
        return ""
    if not (path.parent / BEST_FILE).is_file():
        return f" (a training run: continue it with alphabet train --resume {shlex.quote(str(path))})"
    return (f" (a retrain: continue it with alphabet retrain --resume {shlex.quote(str(path))}, or retrain "
            f"the search's best again: alphabet retrain {shlex.quote(str(path.parent))})")


def batch_overrides(searched: Config, batch: int, given: dict) -> list[str]:
    """The overrides that retrain ``searched`` at ``batch``: the batch, and the lr scaled by the
    square root of the batch ratio unless ``given`` (the --set train settings) sets train.lr itself."""
    if "batch_size" in given:
        raise UserError(f"--batch-size {batch} and --set train.batch_size={given['batch_size']}: expected one of them")
    if batch == searched.train.batch_size or "lr" in given:
        return [f"train.batch_size={batch}"]
    lr = searched.train.lr * math.sqrt(batch / searched.train.batch_size)
    return [f"train.batch_size={batch}", f"train.lr={lr!r}"]


def find_trial(location: RunLocation, experiment: Experiment, wanted: str) -> TrialRow:
    """The search's trial that ``wanted`` names: its id as ``alphabet trials`` shows it, a prefix of one, or
    its folder's name."""
    rows = load_trials(location, experiment)
    folder = TRIAL_FOLDER.fullmatch(wanted)
    key = folder.group(1) if folder else wanted
    found = [r for r in rows if r.trial_id == key] or [r for r in rows if key and r.trial_id.startswith(key)]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(r.trial_id for r in found)
        raise UserError(f"--trial {wanted}: {len(found)} trials' ids start so ({ids}); expected more of the id")
    raise UserError(f"--trial {wanted}: no such trial in {location.uri}; expected the id of one of its "
                    f"{len(rows)} trials ({', '.join(r.trial_id for r in rows[:8])}{', ...' if len(rows) > 8 else ''}:"
                    f" alphabet trials {shlex.quote(location.uri)})")


@dataclass
class RetrainPlan:
    """What a retrain of a search's best (or of one of its trials) runs, before it runs."""

    config: Config
    seeds: int
    searched: Config  # best.yaml as the search wrote it, or the trial's settings
    search_dir: Path | None
    numbered: bool  # retrain, retrain-2, ...: no log.name given
    trial: tuple[TrialRow, str] | None = None  # --trial: the trial, and its settings as trial-ID.yaml holds them


def plan_retrain(target: str, epochs: int | None = None, overrides: list[str] | None = None,
                 seeds: int | None = None, batch_size: int | None = None, trial: str | None = None,
                 smoke_test: bool = False) -> RetrainPlan:
    """The config that retrains ``target``'s best (or its ``trial``) on train + validation. ``epochs``,
    ``seeds`` and ``batch_size`` default to the search experiment's retrain section. ``smoke_test``: one
    epoch, in retrain-smoke, so that ``retrain`` stays the name of the real one."""
    best, search_dir = _locate(target)
    if not read_yaml(best):  # else every default, for 500 epochs: no search writes an empty best.yaml
        raise UserError(f"{best}: holds no settings; expected a search's {BEST_FILE} (a training config)")
    saved = load_saved_experiment(RunLocation.parse(str(search_dir))) if search_dir else None
    searched, chosen = load_config(best), None
    if trial is not None:
        if saved is None or Path(target).is_file():
            raise UserError(f"--trial {trial}: expected a search's RUN_DIR with it, got {target}")
        location = RunLocation.parse(target if "://" in target else str(search_dir))
        row = find_trial(location, saved, trial)
        summary = read_summary(search_dir)
        if not summary or summary["best"]["trial_id"] != row.trial_id:  # the best is retrained as without --trial
            searched = trial_config(saved, row.params)
            chosen = (row, trial_settings_text(row, location, saved, best=False))
    given_all = parse_overrides(overrides or [])  # rejects malformed ones before any work
    given = given_all.get("train", {})
    epochs = 1 if smoke_test else epochs if epochs is not None else saved.retrain_epochs if saved else 500
    seeds = seeds if seeds is not None else saved.retrain_seeds if saved else 1
    if batch_size is None and saved and "batch_size" not in given:
        batch_size = saved.retrain_batch_size  # a --set train.batch_size on the command line wins over it
    if epochs < 1:
        raise UserError(f"--epochs: expected a positive integer, got {epochs}")
    check_seed_count(seeds)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size: expected a positive integer, got {batch_size}")
    parent = search_dir or best.parent
    every = max(1, epochs // 20)  # about 20 figure sets and numbered checkpoints per run
    name = (f"retrain-{chosen[0].trial_id}" if chosen else "retrain") + ("-smoke" if smoke_test else "")
    fixed = [f"train.epochs={epochs}", "data.val_fraction=0", f"log.out_dir={parent}", f"log.name={name}",
             f"log.figures_every={every}", f"log.checkpoint_every={every}"]
    if batch_size is not None:
        fixed += batch_overrides(searched, batch_size, given)
    config = load_config(None if chosen else best, fixed + list(overrides or []), check=check_trainable,
                         base=(f"trial {chosen[0].trial_id}", searched) if chosen else None)
    return RetrainPlan(config, seeds, searched, search_dir, numbered="name" not in given_all.get("log", {}),
                       trial=chosen)


def retrain(target: str | None, epochs: int | None = None, overrides: list[str] | None = None,
            resume: str | None = None, seeds: int | None = None, log: Callable[[str], None] = print,
            batch_size: int | None = None, trial: str | None = None, smoke_test: bool = False) -> dict:
    """Train the best configuration (or the search's ``trial``) on train + validation (``plan_retrain``);
    ``seeds`` > 1 trains an ensemble. ``resume`` continues an interrupted retrain instead."""
    if resume:
        run_dir = Path(resume)
        if (run_dir / EXPERIMENT_FILE).is_file():
            raise UserError(f"{run_dir}: a search's RUN_DIR; expected its retrain's directory ({run_dir / 'retrain'}),"
                            f" or to continue the search: alphabet search --resume {run_dir}")
        result = train_seeds(None, resume=run_dir, log=log)
        search_dir = run_dir.parent if (run_dir.parent / EXPERIMENT_FILE).is_file() else None
        best = run_dir.parent / BEST_FILE
        searched = load_config(best) if best.is_file() else None
        trial_id = None
        retrained = TRIAL_RETRAIN.fullmatch(run_dir.name)
        if search_dir and retrained and (search_dir / trial_file(retrained.group(1))).is_file():
            # A trial's retrain: its settings read again from the search (trial-ID.yaml is the user's to edit).
            if (settings := trial_settings(search_dir, retrained.group(1))) is not None:
                trial_id, searched = retrained.group(1), settings
    else:
        plan = plan_retrain(target, epochs, overrides, seeds, batch_size, trial, smoke_test)
        config, searched, search_dir = plan.config, plan.searched, plan.search_dir
        trial_id = plan.trial[0].trial_id if plan.trial else None
        if plan.trial:
            keep_trial_settings(search_dir, *plan.trial, log)
        log(f"retrain: {f'trial {trial_id}, ' if trial_id else ''}batch {config.train.batch_size}, "
            f"lr {config.train.lr:.4g}, {counted(config.train.epochs, 'epoch')}")
        # retrain, retrain-2, ... taken as the directory is made: retrains started side by side each get
        # their own. A log.name the user gives is refused where it exists, as train refuses it.
        result = train_seeds(config, plan.seeds, log=log, numbered=plan.numbered)
    run_dir = Path(result["run_dir"])
    write_report(run_dir, result, search_dir, searched.train if searched else None, trial_id)
    remote = run_dir.parent / REMOTE_FILE
    copied = run_dir / COPIED_FILE
    if remote.is_file() and copied.is_file():  # resumed once finished: a second copy would be a retrain-2 there
        log(f"{run_dir} is in {copied.read_text()} already")
    elif remote.is_file():  # a remote search's retrain joins it there
        uri = RunLocation(remote.read_text()).upload(run_dir).uri
        copied.write_text(uri)
        log(f"copied {run_dir} to {uri}")
    return result


def trial_settings(search_dir: Path, trial_id: str) -> Config | None:
    """The settings of the search's trial ``trial_id``, where the search has one of that id."""
    remote = search_dir / REMOTE_FILE
    location = RunLocation.parse(remote.read_text() if remote.is_file() else str(search_dir))
    try:
        experiment = load_saved_experiment(location)
        row = next((r for r in load_trials(location, experiment) if r.trial_id == trial_id), None)
    except UserError:  # the search's state is gone: a retrain that carries on without naming the trial
        return None
    return trial_config(experiment, row.params) if row else None


def keep_trial_settings(search_dir: Path, row: TrialRow, text: str, log: Callable[[str], None]) -> None:
    """RUN_DIR/trial-ID.yaml: a retrained trial's settings, as best.yaml holds the best's (and in a
    remote search's bucket too). One already there, perhaps edited, is left as it is."""
    places = [RunLocation.parse(str(search_dir))]
    if (search_dir / REMOTE_FILE).is_file():
        places.append(RunLocation.parse((search_dir / REMOTE_FILE).read_text()))
    name = trial_file(row.trial_id)
    for place in places:
        kept = place.read_text(name)
        if kept is None:
            place.write_text(name, text)
        elif kept != text:
            log(f"note: {place.uri}/{name} differs from trial {row.trial_id}'s settings (edited?); left as it is, "
                "and the trial's own settings retrained")


def calibration_lines(test: dict) -> list[str]:
    """The report's calibration: ECE, and the share and accuracy of the letters each threshold accepts."""
    accepted = [a for a in test["calibration"]["accepted"] if a["accuracy"] is not None]
    lines = ["", f"Calibration: ECE {test['ece']:.4f}, mean top probability "
             f"{test['calibration']['mean_confidence']:.4f} against accuracy {test['accuracy']:.4f}.", ""]
    if not accepted:  # a model that learnt little: a table of headings alone would read as a broken report
        lowest = min(a["threshold"] for a in test["calibration"]["accepted"])
        return [*lines, f"No test letter's top probability reaches {lowest:g}, the lowest threshold of acceptance."]
    return [*lines, "| accept letters whose top probability is at least | share of letters | their accuracy |",
            "|---|---|---|", *(f"| {a['threshold']:g} | {a['share']:.1%} | {a['accuracy']:.2%} |" for a in accepted)]


def write_report(run_dir: Path, result: dict, search_dir: Path | None, searched: TrainConfig | None = None,
                 trial_id: str | None = None) -> Path:
    """A Markdown summary: test metrics beside the search's validation figure (and its batch and lr);
    ``trial_id`` names the trial retrained where it is not the search's best."""
    test = result["test"]
    summary = read_summary(search_dir) if search_dir else None
    lines = [f"# Retrain report: {run_dir.name}", ""]
    lines.append(f"- epochs: {result['epochs']}, parameters: {result['parameters']:,}, "
                 f"train images: {result['sizes']['train']} (train + validation), test images: "
                 f"{result['sizes']['test']}")
    saved = load_config(run_dir / CONFIG_FILE)  # as trained, also after --resume
    trained = saved.train
    line = f"- batch {trained.batch_size}, lr {trained.lr:.4g}"
    if searched and (searched.batch_size, searched.lr) != (trained.batch_size, trained.lr):
        line += f" (searched: batch {searched.batch_size}, lr {searched.lr:.4g})"
    lines.append(line)
    if result["sizes"].get("auxiliary"):
        lines.append(f"- auxiliary training images (data.auxiliary_case, never scored): "
                     f"{result['sizes']['auxiliary']}")
    if summary:
        interval = summary["best"].get("interval")
        shown = f", {LEVEL:.0%} interval {interval[0]:.4f} to {interval[1]:.4f}" if interval else ""
        lines.append(f"- search ({search_dir}): best {summary['metric']} {best_score_text(summary['best'])} "
                     f"(trial {summary['best']['trial_id']}{shown})")
    if trial_id:
        lines.append(f"- retrained: trial {trial_id} of the search, not its best (its settings and score: "
                     f"{trial_file(trial_id)}; `alphabet trials` ranks it)")
    if "environment" in result:
        lines.append(f"- software: {environment_line(result['environment'])}")
    lines += ["", "| metric | test |", "|---|---|"]
    for key in ("balanced_accuracy", "accuracy", "macro_f1", "macro_precision", "macro_auc"):
        lines.append(f"| {key} | {test[key]:.4f} |")
    interval = test.get("balanced_accuracy_interval")
    if interval:  # how far the test letters alone leave the figure uncertain
        lines += ["", f"Balanced accuracy, {interval['level']:.0%} bootstrap interval over the test's "
                  f"{interval['groups']} {interval['resampled']}: {interval['low']:.4f} to {interval['high']:.4f}."]
    if "members" in result:  # an ensemble: each member alone, then the average of them all
        keys = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auc")
        lines += ["", f"The metrics above are the ensemble of {len(result['members'])} seeds (mean of their "
                  "softmax probabilities). Each member alone:", "",
                  "| member | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for member in result["members"]:
            lines.append(f"| seed {member['seed']} | " + " | ".join(f"{member['test'][k]:.4f}" for k in keys) + " |")
    if "calibration" in test:  # how far its probabilities can be trusted, for a threshold of acceptance
        lines += calibration_lines(test)
    worst = sorted(test["per_class"].items(), key=lambda kv: kv[1]["f1"])[:5]
    lines += ["", "Weakest classes (F1): " + ", ".join(f"{c} {v['f1']:.3f}" for c, v in worst)]
    pairs = ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})" for p in test["most_confused"][:5])
    lines += [f"Most confused: {pairs or 'none'}", ""]
    if saved.log.figures_every:  # else none were drawn (--set log.figures_every=0)
        lines += [f"![{name}](figures/test_{name}.png)"
                  for name in ("confusion_matrix", "per_class", "roc", "calibration", "misclassified")]
    if search_dir and (search_dir / "summary.png").is_file():
        lines.append(f"![search]({Path('..') / 'summary.png'})")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
