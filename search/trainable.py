"""The Ray Tune function trainable: one trial trains the alphabet CNN epoch by epoch.

The data comes in through ``tune.with_parameters`` (the object store), so it is
loaded once by the driver, never per trial. Each epoch reports validation
metrics with a checkpoint; a restarted trial continues from its last one.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from ray import tune

from alphabet.checkpoint import load_checkpoint, save_checkpoint
from alphabet.data import Splits
from alphabet.engine import Trainer, out_of_memory_named
from alphabet.errors import TrainingDiverged, UserError
from alphabet.finetune import InitialWeights
from alphabet.metrics import balanced_accuracy_interval
from alphabet.reporting import RunReporter
from alphabet.train import evaluate_split
from search.experiment import Experiment, trial_config
from search.spare_cpus import threads_now

CHECKPOINT_FILE = "trainer.pt"


def warn_gpu_unused(share: float, device: torch.device, asked: str) -> None:
    """Say why a trial given a GPU share trains elsewhere: on a GPU cluster whose torch cannot see the
    GPUs, the search would otherwise just run slowly."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    why = (f"train.device is {asked!r}" if asked != "auto" else
           f"torch {torch.__version__} in the trial's process finds no CUDA device "
           f"(built with CUDA: {torch.version.cuda or 'no'}; CUDA_VISIBLE_DEVICES={visible!r})")
    print(f"alphabet: warning: this trial was given {share:g} GPU but trains on {device.type}: {why}",
          file=sys.stderr, flush=True)


def declare_trial(reporter: RunReporter, params: dict, trial_id: str) -> None:
    """The trial's settings in TensorBoard's HParams tab, with the metrics it compares them on. Declared at
    the start, so that trials ASHA stops, or the library refuses, still appear there."""
    reporter.hparams({**params, "trial_id": trial_id},
                     dict.fromkeys(("val/balanced_accuracy", "val/accuracy", "val/macro_f1", "val/loss", "val/ece")))


def report_refused(metric: str, worst: float, reason: str, epoch: int, node_id: str, reporter: RunReporter,
                   trial_id: str) -> None:
    """End a trial whose settings the library refused (a model too big for the device, a batch that runs
    out of its memory): they would fail the same way on every retry. Reported, like a diverged trial, as
    the worst value, so that TPE learns to avoid them; ``alphabet trials`` and TensorBoard's text tab give
    the reason."""
    print(f"alphabet: trial {trial_id} refused: {reason}", file=sys.stderr, flush=True)
    reporter.writer.add_text("refused", reason, epoch)
    reporter.writer.flush()
    tune.report({metric: worst, "refused": reason, "epoch": epoch, "node_id": node_id})


def train_trial(params: dict, *, experiment: Experiment, splits: Splits, initial: InitialWeights | None,
                threads_file: str | None = None) -> None:
    """``threads_file``: where the driver hands on the threads the search's ended trials leave
    (search/spare_cpus.py), or None to keep to the trial's own CPUs."""
    import ray

    # Ray logs a line per saved checkpoint; at one per epoch per trial it buries the status table.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran it, for the trial table
    resources = tune.get_context().get_trial_resources().required_resources
    own_cpus = max(1, int(resources.get("CPU", 1)))
    trial_id = tune.get_context().get_trial_id()
    torch.set_num_threads(own_cpus)  # stay inside the trial's CPU share
    spare_threads = Path(threads_file) if threads_file else None
    worst = experiment.worst
    try:  # settings checked one by one when the search started may still be refused together
        config = trial_config(experiment, params)
        trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary, initial=initial)
    except UserError as e:
        reporter = RunReporter(Path.cwd())
        try:
            declare_trial(reporter, params, trial_id)
            report_refused(experiment.search.metric, worst, str(e), 0, node_id, reporter, trial_id)
        finally:
            reporter.close()
        return
    if resources.get("GPU", 0) and trainer.device.type != "cuda":
        warn_gpu_unused(resources["GPU"], trainer.device, config.train.device)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(load_checkpoint(Path(folder) / CHECKPOINT_FILE)["trainer"])
    # TensorBoard events go to the trial's working directory, which Tune syncs to the
    # trial directory in storage; purge_step drops events past the restored epoch.
    reporter = RunReporter(Path.cwd(), purge_step=trainer.epoch + 1 if checkpoint else None)
    if checkpoint is None:
        declare_trial(reporter, params, trial_id)
    # ASHA's stop arrives as SystemExit from tune.report; the finally closes the writer even then,
    # since the process is reused for the next trial (TuneConfig.reuse_actors).
    try:
        while trainer.epoch < config.train.epochs:
            tick = time.time()
            if (threads := threads_now(spare_threads, own_cpus, trial_id)) != torch.get_num_threads():
                torch.set_num_threads(threads)
            try:
                with out_of_memory_named(config, trainer.device):
                    train_metrics = trainer.train_epoch()
                    val_metrics, val_probs = evaluate_split(trainer, splits.val)
            except TrainingDiverged:
                # A result of these settings, not a failure of the search: reported as the worst
                # value, so that TPE learns to avoid them, and the trial ends (`alphabet trials`: diverged).
                tune.report({experiment.search.metric: worst, "diverged": 1, "epoch": trainer.epoch,
                             "epoch_seconds": time.time() - tick, "node_id": node_id})
                break
            except UserError as e:  # out of memory: these settings are too big for this device
                share = resources.get("GPU", 0)
                # Trials sharing a GPU take its memory from each other: the reason says it was shared.
                beside = f" (this trial had {share:g} of the GPU, beside others)" if 0 < share < 1 else ""
                report_refused(experiment.search.metric, worst, str(e) + beside, trainer.epoch, node_id, reporter,
                               trial_id)
                break
            epoch = trainer.epoch
            reporter.scalars("train", {**train_metrics, "lr": trainer.lr}, epoch)
            reporter.scalars("val", val_metrics, epoch)
            reporter.writer.flush()
            metrics = {f"val_{k}": v for k, v in val_metrics.items()}
            # How far the validation letters alone leave the figure uncertain, for the search's summary.
            interval = balanced_accuracy_interval(splits.val.labels, val_probs.argmax(1).cpu().numpy(),
                                                  len(splits.val.classes), splits.val.writers)
            metrics.update(val_balanced_accuracy_low=interval.low, val_balanced_accuracy_high=interval.high)
            metrics.update({f"train_{k}": v for k, v in train_metrics.items()}, epoch=epoch,
                           epoch_seconds=time.time() - tick, node_id=node_id, threads=torch.get_num_threads())
            with tempfile.TemporaryDirectory() as folder:
                saved = save_checkpoint(Path(folder) / CHECKPOINT_FILE, config, trainer.classes, trainer.state_dict())
                metrics["checkpoint_bytes"] = saved.stat().st_size  # the room the driver keeps for the next ones
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        reporter.close()
