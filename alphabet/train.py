"""A complete training run: data, model, epochs, TensorBoard, figures, checkpoints, test report.

``run_training`` is what ``alphabet train`` and the search framework's retrain
call. The loop reads top to bottom: train an epoch, validate, log, checkpoint;
at the end, report on the test split (which is never used to choose anything).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from alphabet.augment import augment
from alphabet.checkpoint import RUN_CHECKPOINT, load_checkpoint, save_checkpoint
from alphabet.config import Config, dump_yaml, from_dict, read_yaml, to_dict
from alphabet.data import LetterSet, Splits, load_splits
from alphabet.data.sources import check_sources
from alphabet.engine import Trainer, evaluate_loss, out_of_memory_named, pick_device, to_input
from alphabet.environment import environment
from alphabet.errors import UserError
from alphabet.finetune import initial_weights
from alphabet.metrics import (
    calibration_text,
    class_report,
    expected_calibration_error,
    headline,
    summary_metrics,
)
from alphabet.models import check_model, count_parameters
from alphabet.reporting import RunReporter, flatten, write_json, write_mistakes
from alphabet.rundir import LOCK_FILE, guard_run_dir, guarded_new_run_dir

CONFIG_FILE = "config.yaml"  # in a run directory: the config it started with


def evaluate_split(trainer: Trainer, data: LetterSet) -> tuple[dict[str, float], torch.Tensor]:
    """Loss, the summary metrics and the calibration error of the trainer's model on ``data``."""
    probs = trainer.predict(data)
    labels = torch.from_numpy(data.labels)
    ece = expected_calibration_error(probs.float().cpu().numpy(), data.labels)
    return {"loss": evaluate_loss(probs, labels), **summary_metrics(probs, labels), "ece": ece}, probs


def report_split(reporter: RunReporter, split: str, data: LetterSet, probs: torch.Tensor, step: int,
                 figures: bool = True) -> dict:
    report = class_report(probs, torch.from_numpy(data.labels), data.classes, data.writers)
    reporter.evaluation(split, report, probs, torch.from_numpy(data.labels), data.images, step, figures)
    return report.to_json()


def preview_batch(trainer: Trainer, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented training images for the figure, from their own generator so that
    drawing them does not change the training run's random stream."""
    gen = torch.Generator(device=trainer.device).manual_seed(epoch)
    idx = torch.arange(min(48, len(trainer.data)), device=trainer.device)
    return augment(to_input(trainer.data.images[idx]), trainer.config.augment, gen), trainer.data.labels[idx]


def check_trainable(config: Config) -> None:
    """Raise what a run would refuse in ``config`` itself (a model that cannot be built, a data source
    no loader reads), while the caller still knows in which file or option each setting was given."""
    check_model(config.model)
    check_sources(config.data)


def run_training(config: Config, resume: str | Path | None = None, log: Callable[[str], None] = print,
                 numbered: bool = False, splits: Splits | None = None) -> dict:
    """Train per ``config`` (or continue the run in ``resume``); returns the final metrics. ``numbered``:
    a log.name that exists gets a -2, -3 ... suffix rather than a refusal (see new_run_dir). ``splits``:
    the data of ``config.data``, read already (an ensemble's members share it), else read here."""
    start = time.time()
    payload = None
    if resume is not None:
        run_dir = Path(resume)
        if (run_dir / RUN_CHECKPOINT).is_file():
            payload = load_checkpoint(run_dir / RUN_CHECKPOINT)
            config = from_dict(payload["config"], f"{run_dir / RUN_CHECKPOINT}: config")
            done = run_dir / "metrics.json"
            if payload["trainer"]["epoch"] >= config.train.epochs and done.is_file():
                # Scoring it again would only repeat the test figures in its TensorBoard.
                log(f"{run_dir}: finished already ({config.train.epochs} epochs); its results are in {done}")
                # Where the run is now: its metrics name it as it was named when it trained, perhaps relative
                # to another folder, and callers (a retrain's report) write into it.
                return {**json.loads(done.read_text()), "run_dir": str(run_dir)}
        else:
            config = config_of_unstarted_run(run_dir)
        guard = guard_run_dir(run_dir, created=False)
    else:
        guard = guarded_new_run_dir(config.log.out_dir, config.log.name, numbered=numbered)
    with guard as run_dir, out_of_memory_named(config, pick_device(config.train.device)):
        if payload is None:
            if resume is not None:  # held now, so no other process is still starting it
                clear_unstarted_run(run_dir)
                log(f"{run_dir}: stopped before its first checkpoint; starting it again from its {CONFIG_FILE}")
            (run_dir / CONFIG_FILE).write_text(dump_yaml(to_dict(config)))
        return _train(config, run_dir, payload, start, log, splits)


def config_of_unstarted_run(run_dir: Path) -> Config:
    """The config of a run stopped before its first checkpoint: by kill -9, a machine lost, or the SIGKILL
    a batch scheduler sends after SIGTERM's grace. Its directory holds the config.yaml it started with
    and nothing worth keeping, and it stood in the way of the same command; --resume starts it again.
    Only a directory a run held (its lock file): a user's own folder with a config.yaml is not one."""
    saved = run_dir / CONFIG_FILE
    if not saved.is_file() or not (run_dir / LOCK_FILE).is_file() or (run_dir / "metrics.json").exists():
        raise UserError(f"{run_dir}: no {RUN_CHECKPOINT} to continue from; expected a run directory that train or "
                        "retrain wrote")
    return from_dict(read_yaml(saved) or {}, str(saved))


def clear_unstarted_run(run_dir: Path) -> None:
    """What a run wrote before its first checkpoint, gone, so that TensorBoard shows the new start alone."""
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()
    shutil.rmtree(run_dir / RUN_CHECKPOINT.parent, ignore_errors=True)  # a best.pt, written before last.pt


def duration(seconds: float) -> str:
    """A time span as a person reads it: 45 s, 12 min, 3.4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _train(config: Config, run_dir: Path, payload: dict | None, start: float, log: Callable[[str], None],
           splits: Splits | None = None) -> dict:
    """The run itself, new (``payload`` None) or resumed from ``payload``, a checkpoint."""
    # A resumed run's weights come from its own checkpoint, so the one it started from may be gone by now.
    initial = initial_weights(config) if payload is None else None
    splits = splits or load_splits(config.data)
    trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary, initial=initial)
    best = {"epoch": 0, "val_balanced_accuracy": -1.0}
    if payload is not None:
        if payload["classes"] != trainer.classes:
            raise UserError(f"{run_dir}: checkpoint classes differ from the data's; expected "
                            f"{''.join(payload['classes'])}")
        trainer.load_state_dict(payload["trainer"])
        best = payload["extra"].get("best", best)
        log(f"resuming {run_dir} after epoch {trainer.epoch}")
    t = config.train
    reporter = RunReporter(run_dir, purge_step=trainer.epoch + 1 if payload else None)
    progress = {"always": True, "never": False}.get(config.log.progress, sys.stderr.isatty())
    sizes = f"{len(splits.train)} train / {len(splits.val) if splits.val else 0} val / {len(splits.test)} test"
    if splits.auxiliary is not None:
        sizes += f" (+ {len(splits.auxiliary)} auxiliary {config.data.auxiliary_case}case for training)"
    log(f"run {run_dir}: {len(trainer.classes)} classes, {sizes}, {count_parameters(trainer.model):,} "
        f"parameters, device {trainer.device}")
    if trainer.started_from:
        log(trainer.started_from)
    if t.ema_decay > 0:  # its val, test and checkpoints are the average's, not the last step's
        log(f"scoring and saving a moving average of the weights (train.ema_decay {t.ema_decay:g})")
    log(f"tensorboard --logdir {run_dir}")

    train_metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    ckpt_dir = (run_dir / RUN_CHECKPOINT).parent
    first_epoch, started = trainer.epoch, time.time()
    every = config.log.figures_every  # 0: no figures
    while trainer.epoch < t.epochs:
        tick = time.time()
        train_metrics = trainer.train_epoch(progress)
        epoch = trainer.epoch
        reporter.scalars("train", {**train_metrics, "lr": trainer.lr, "epoch_seconds": time.time() - tick}, epoch)
        due = every > 0 and (epoch % every == 0 or epoch == t.epochs)
        if splits.val is not None:
            val_metrics, val_probs = evaluate_split(trainer, splits.val)
            reporter.scalars("val", val_metrics, epoch)
            if due:
                report_split(reporter, "val", splits.val, val_probs, epoch)
        if due:
            reporter.augmented_batch(*preview_batch(trainer, epoch), trainer.trained_classes, epoch)
        state = trainer.state_dict()
        improved = val_metrics.get("balanced_accuracy", -1.0) > best["val_balanced_accuracy"]
        if improved:
            best = {"epoch": epoch, "val_balanced_accuracy": val_metrics["balanced_accuracy"]}
        extra = {"best": best}
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", config, trainer.classes, state, extra)
        if epoch % config.log.checkpoint_every == 0:
            save_checkpoint(ckpt_dir / f"epoch_{epoch:04d}.pt", config, trainer.classes, state, extra)
        save_checkpoint(run_dir / RUN_CHECKPOINT, config, trainer.classes, state, extra)
        reporter.writer.flush()
        shown = f" val bal-acc {val_metrics['balanced_accuracy']:.4f}" if val_metrics else ""
        # A 500-epoch retrain takes hours on a CPU: say how many, from the epochs so far.
        left = (t.epochs - epoch) * (time.time() - started) / (epoch - first_epoch)
        log(f"epoch {epoch}/{t.epochs} loss {train_metrics['loss']:.4f} train acc "
            f"{train_metrics['accuracy']:.4f}{shown} ({time.time() - tick:.1f}s"
            f"{', about ' + duration(left) + ' left' if left >= 60 else ''})")

    # The test split is evaluated once, on the final weights, and never chooses anything.
    test_metrics, test_probs = evaluate_split(trainer, splits.test)
    test_report = report_split(reporter, "test", splits.test, test_probs, trainer.epoch, figures=every > 0)
    result = {
        "run_dir": str(run_dir),
        "epochs": trainer.epoch,
        "parameters": count_parameters(trainer.model),
        "classes": trainer.classes,
        "sizes": {"train": len(splits.train), "val": len(splits.val) if splits.val else 0, "test": len(splits.test),
                  "auxiliary": len(splits.auxiliary) if splits.auxiliary is not None else 0},
        "train": train_metrics,
        "val": val_metrics,
        "best": best,
        "test": {"loss": test_metrics["loss"], **test_report},
        "wall_seconds_this_session": round(time.time() - start, 1),
        "environment": environment(trainer.device),  # of the session that finished it
    }
    finals = {f"final/test_{k}": v for k, v in test_report.items() if isinstance(v, float)}
    interval = test_report["balanced_accuracy_interval"]  # so HParams can show which runs really differ
    finals.update({"final/test_balanced_accuracy_low": interval["low"],
                   "final/test_balanced_accuracy_high": interval["high"]})
    finals.update({f"final/val_{k}": v for k, v in val_metrics.items()})
    reporter.hparams(flatten(to_dict(config)), finals)
    reporter.close()
    write_json(run_dir / "metrics.json", result)
    test_source = config.data.test_source or config.data.source
    write_mistakes(run_dir / "test_mistakes.csv", splits.test, test_probs, test_source)
    log(f"test: {headline(test_report)}")
    log(f"test {calibration_text(test_report['calibration'])}")
    figures = f", figures in {run_dir / 'figures'}" if every else " (no figures: log.figures_every 0)"
    log(f"wrote {run_dir / 'metrics.json'}{figures} and the misread test letters in {run_dir / 'test_mistakes.csv'}")
    return result
