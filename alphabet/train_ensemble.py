"""Train one configuration with several seeds, then report their ensemble on the test split.

The ensemble directory holds the shared ``config.yaml``, ``ensemble.yaml``, one
complete training run per seed (``seed-N/``, each with its own TensorBoard,
figures and checkpoints) and the ensemble's test figures and ``metrics.json``.
Members train one after another; ``--resume`` skips finished members, continues
the interrupted one from its last checkpoint and starts the rest.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from alphabet.checkpoint import RUN_CHECKPOINT
from alphabet.config import Config, dump_yaml, from_dict, read_yaml, to_dict
from alphabet.data import load_splits
from alphabet.engine import evaluate_loss, pick_device
from alphabet.ensemble import ENSEMBLE_FILE, is_ensemble, load_classifier, member_paths, write_ensemble
from alphabet.environment import environment
from alphabet.errors import UserError
from alphabet.metrics import calibration_text, class_report, headline
from alphabet.reporting import RunReporter, write_json, write_mistakes
from alphabet.rundir import guard_run_dir, guarded_new_run_dir
from alphabet.train import CONFIG_FILE, run_training


def member_name(seed: int) -> str:
    return f"seed-{seed}"


def check_seed_count(seeds: int) -> None:
    """``--seeds``, refused in one line before any work (``--print-config`` too)."""
    if seeds < 1:
        raise UserError(f"--seeds: expected a positive integer, got {seeds}")


def train_seeds(config: Config | None, seeds: int = 1, resume: str | Path | None = None,
                log: Callable[[str], None] = print, numbered: bool = False) -> dict:
    """One run, or an ensemble of ``seeds`` runs; ``resume`` continues either kind. ``numbered``: a
    log.name that exists gets a -2, -3 ... suffix rather than a refusal (see new_run_dir)."""
    if resume is not None:
        if is_ensemble(resume):
            return run_ensemble_training(None, resume=resume, log=log)
        return run_training(None, resume=resume, log=log)
    check_seed_count(seeds)
    if seeds > 1:
        return run_ensemble_training(config, seeds, log=log, numbered=numbered)
    return run_training(config, log=log, numbered=numbered)


def run_ensemble_training(config: Config | None, seeds: int | None = None, resume: str | Path | None = None,
                          log: Callable[[str], None] = print, numbered: bool = False) -> dict:
    """Train ``seeds`` members of ``config`` (seeds train.seed, +1, ...) or continue ``resume``."""
    start = time.time()
    if resume is not None:
        ens_dir = Path(resume)
        if not (ens_dir / CONFIG_FILE).is_file():  # killed between its ensemble.yaml and its config.yaml
            raise UserError(f"{ens_dir}: no {CONFIG_FILE} to continue from; expected an ensemble directory that "
                            "train --seeds wrote")
        config = from_dict(read_yaml(ens_dir / CONFIG_FILE) or {}, str(ens_dir / CONFIG_FILE))
        with guard_run_dir(ens_dir, created=False):
            return _train_members(config, len(member_paths(ens_dir / ENSEMBLE_FILE)), ens_dir, start, log)
    if seeds is None or seeds < 2:
        raise UserError(f"--seeds: expected at least 2 members for an ensemble, got {seeds}")
    with guarded_new_run_dir(config.log.out_dir, config.log.name, numbered=numbered) as ens_dir:
        # ensemble.yaml before config.yaml: a directory killed between the two must not resume as one run.
        write_ensemble(ens_dir / ENSEMBLE_FILE,
                       [ens_dir / member_name(s) / RUN_CHECKPOINT for s in _member_seeds(config, seeds)])
        (ens_dir / CONFIG_FILE).write_text(dump_yaml(to_dict(config)))
        return _train_members(config, seeds, ens_dir, start, log)


def _member_seeds(config: Config, seeds: int) -> list[int]:
    return [config.train.seed + k for k in range(seeds)]


def _train_members(config: Config, seeds: int, ens_dir: Path, start: float, log: Callable[[str], None]) -> dict:
    """Each member in turn (finished ones kept, an interrupted one resumed), then the ensemble's report."""
    member_seeds = _member_seeds(config, seeds)
    log(f"ensemble {ens_dir}: {seeds} members, seeds {', '.join(map(str, member_seeds))}")
    log(f"tensorboard --logdir {ens_dir}")

    # Read once for every member and the ensemble's test: a folder's images are framed on each read.
    splits = load_splits(config.data)
    members = []
    for k, seed in enumerate(member_seeds):
        run_dir = ens_dir / member_name(seed)
        log(f"member {k + 1}/{seeds} (train.seed={seed})")
        if (run_dir / "metrics.json").is_file():
            run = json.loads((run_dir / "metrics.json").read_text())
            log(f"{run_dir}: finished already")
        elif (run_dir / RUN_CHECKPOINT).is_file():
            run = run_training(None, resume=run_dir, log=log, splits=splits)
        else:
            if run_dir.exists():  # killed before its first checkpoint: nothing in it to keep
                shutil.rmtree(run_dir)
            member = dataclasses.replace(
                config, train=dataclasses.replace(config.train, seed=seed),
                log=dataclasses.replace(config.log, out_dir=str(ens_dir), name=member_name(seed)))
            run = run_training(member, log=log, splits=splits)
        scores = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auc")
        members.append({"seed": seed, "run_dir": str(run_dir), "test": {name: run["test"][name] for name in scores}})

    # The test split is scored once, by the averaged members; it chooses nothing.
    classifier = load_classifier(ens_dir / ENSEMBLE_FILE, pick_device(config.train.device))
    probs = classifier.predict_probs(splits.test)
    labels = torch.from_numpy(splits.test.labels)
    report = class_report(probs, labels, splits.test.classes, splits.test.writers)
    reporter = RunReporter(ens_dir)
    reporter.evaluation("test", report, probs, labels, splits.test.images, config.train.epochs,
                        figures=config.log.figures_every > 0)
    reporter.close()
    result = {
        "run_dir": str(ens_dir),
        "epochs": config.train.epochs,
        "parameters": run["parameters"],
        "classes": splits.test.classes,
        "sizes": run["sizes"],
        "members": members,
        "test": {"loss": evaluate_loss(probs, labels), **report.to_json()},
        "wall_seconds_this_session": round(time.time() - start, 1),
        "environment": environment(classifier.device),
    }
    write_json(ens_dir / "metrics.json", result)
    write_mistakes(ens_dir / "test_mistakes.csv", splits.test, probs, config.data.test_source or config.data.source)
    single = ", ".join(f"{m['test']['balanced_accuracy']:.4f}" for m in members)
    log(f"test: ensemble of {seeds}: {headline(result['test'])} (members alone: {single})")
    log(f"test {calibration_text(result['test']['calibration'])}")
    log(f"wrote {ens_dir / 'metrics.json'}; predict with it: alphabet predict {ens_dir} IMAGE...")
    return result
