"""Retrain the best configuration on train + validation for the full epochs, then report on test.

A retrain may use a larger batch than the search did (``--batch-size``, ``retrain.batch_size``):
on an H100, 500 epochs of the default CNN took a fifth as long at batch 512 as at 128. The lr is
then scaled by the square root of the batch ratio, which kept the femnist recipe's validation
accuracy at batch 512 (docs/BENCHMARKS.md, "Batch size of the retrain"); ``--set train.lr=...``
chooses it yourself.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alphabet.config import Config, TrainConfig, load_config, parse_overrides
from alphabet.ensemble import is_run_dir
from alphabet.environment import environment_line
from alphabet.errors import UserError
from alphabet.metrics import LEVEL
from alphabet.rundir import BEST_FILE, holder_of_run_dir
from alphabet.train import check_trainable
from alphabet.train_ensemble import CONFIG_FILE, check_seed_count, train_seeds
from search.results import SUMMARY_FILE, best_score_text, read_summary
from search.runner import EXPERIMENT_FILE, load_saved_experiment, searches_within
from search.storage import RunLocation

REMOTE_FILE = "remote_uri.txt"  # in a remote search's local folder: the search's URI


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


@dataclass
class RetrainPlan:
    """What a retrain of a search's best runs, before it runs."""

    config: Config
    seeds: int
    searched: Config  # best.yaml as the search wrote it
    search_dir: Path | None
    numbered: bool  # retrain, retrain-2, ...: no log.name given


def plan_retrain(target: str, epochs: int | None = None, overrides: list[str] | None = None,
                 seeds: int | None = None, batch_size: int | None = None) -> RetrainPlan:
    """The config that retrains ``target``'s best on train + validation. ``epochs``, ``seeds`` and
    ``batch_size`` default to the search experiment's retrain section."""
    best, search_dir = _locate(target)
    searched = load_config(best)
    saved = load_saved_experiment(RunLocation.parse(str(search_dir))) if search_dir else None
    given_all = parse_overrides(overrides or [])  # rejects malformed ones before any work
    given = given_all.get("train", {})
    epochs = epochs if epochs is not None else saved.retrain_epochs if saved else 500
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
    fixed = [f"train.epochs={epochs}", "data.val_fraction=0", f"log.out_dir={parent}", "log.name=retrain",
             f"log.figures_every={every}", f"log.checkpoint_every={every}"]
    if batch_size is not None:
        fixed += batch_overrides(searched, batch_size, given)
    config = load_config(best, fixed + list(overrides or []), check=check_trainable)
    return RetrainPlan(config, seeds, searched, search_dir, numbered="name" not in given_all.get("log", {}))


def retrain(target: str | None, epochs: int | None = None, overrides: list[str] | None = None,
            resume: str | None = None, seeds: int | None = None, log: Callable[[str], None] = print,
            batch_size: int | None = None) -> dict:
    """Train the best configuration on train + validation (``plan_retrain``); ``seeds`` > 1 trains an
    ensemble. ``resume`` continues an interrupted retrain instead."""
    if resume:
        run_dir = Path(resume)
        if (run_dir / EXPERIMENT_FILE).is_file():
            raise UserError(f"{run_dir}: a search's RUN_DIR; expected its retrain's directory ({run_dir / 'retrain'}),"
                            f" or to continue the search: alphabet search --resume {run_dir}")
        result = train_seeds(None, resume=run_dir, log=log)
        search_dir = run_dir.parent if (run_dir.parent / EXPERIMENT_FILE).is_file() else None
        best = run_dir.parent / BEST_FILE
        searched = load_config(best) if best.is_file() else None
    else:
        plan = plan_retrain(target, epochs, overrides, seeds, batch_size)
        config, searched, search_dir = plan.config, plan.searched, plan.search_dir
        log(f"retrain: batch {config.train.batch_size}, lr {config.train.lr:.4g}, {config.train.epochs} epochs")
        # retrain, retrain-2, ... taken as the directory is made: retrains started side by side each get
        # their own. A log.name the user gives is refused where it exists, as train refuses it.
        result = train_seeds(config, plan.seeds, log=log, numbered=plan.numbered)
    run_dir = Path(result["run_dir"])
    write_report(run_dir, result, search_dir, searched.train if searched else None)
    remote = run_dir.parent / REMOTE_FILE
    if remote.is_file():  # a remote search's retrain joins it there
        log(f"copied {run_dir} to {RunLocation(remote.read_text()).upload(run_dir).uri}")
    return result


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


def write_report(run_dir: Path, result: dict, search_dir: Path | None, searched: TrainConfig | None = None) -> Path:
    """A Markdown summary: test metrics beside the search's validation figure (and its batch and lr)."""
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
