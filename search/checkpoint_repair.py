"""On resume, point a trial whose recorded checkpoint is gone at its newest surviving one,
and forget the older checkpoints it keeps that are gone.

Ray Tune (2.60) deletes a trial's oldest checkpoint (``CheckpointConfig.num_to_keep``)
as soon as it registers a new one, but its experiment state reaches storage only
later. A driver killed in between leaves a saved state that names a deleted
checkpoint, and Tune then fails that trial on resume ("Could not recover from
checkpoint as it does not exist on storage anymore"). The trial's result.json names
the metrics reported with each checkpoint, and each checkpoint holds its own epoch,
so the trial can continue from the newest one still on storage that can be read.

No public Tune API sets a trial's checkpoint, so this reaches into Tune's per-trial
bookkeeping; tests/test_faults.py fails if a Ray upgrade changes it.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pyarrow.fs
from ray import tune
from ray.tune.experiment import Trial

from alphabet.checkpoint import load_checkpoint
from alphabet.errors import UserError
from search.trainable import CHECKPOINT_FILE

logger = logging.getLogger(__name__)


def _exists(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def reported_results(fs: pyarrow.fs.FileSystem, trial_path: str) -> list[dict]:
    try:
        with fs.open_input_stream(f"{trial_path}/result.json") as stream:
            text = stream.readall().decode()
    except (FileNotFoundError, OSError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
    return rows


def _checkpoint_epoch(fs: pyarrow.fs.FileSystem, path: str) -> int | None:
    """The epoch a trial checkpoint holds, or None if it cannot be read (cut short by the kill)."""
    try:
        with tune.Checkpoint(path=path, filesystem=fs).as_directory() as folder:
            return load_checkpoint(Path(folder) / CHECKPOINT_FILE)["trainer"]["epoch"]
    except (UserError, KeyError, OSError):
        return None


def _newest_readable(fs: pyarrow.fs.FileSystem, trial_path: str) -> tuple[str, int] | None:
    """The newest checkpoint folder of a trial that can be read, and its epoch."""
    folders = sorted(info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(trial_path))
                     if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_"))
    for name in reversed(folders):
        if (epoch := _checkpoint_epoch(fs, f"{trial_path}/{name}")) is not None:
            return name, epoch
    return None


def repair_trial(trial: Trial) -> str | None:
    """Repoint ``trial`` if its latest checkpoint is gone; returns what was done, or None."""
    latest = trial.latest_checkpoint_result
    if latest is None:
        return None
    manager = trial.run_metadata.checkpoint_manager
    if _exists(latest.checkpoint.filesystem, latest.checkpoint.path):
        # An older kept checkpoint may be gone all the same (deleted when a newer one came, after
        # the last save of the state). Tune would delete it again when the trial's next checkpoint
        # comes, fail on the missing folder and end the trial there: forget it now.
        kept = [r for r in manager._checkpoint_results if _exists(r.checkpoint.filesystem, r.checkpoint.path)]
        if len(kept) < len(manager._checkpoint_results):
            manager._checkpoint_results = kept
            trial.invalidate_json_state()
            trial.run_metadata.invalidate_cache()
        return None
    fs, trial_path = trial.storage.storage_filesystem, trial.storage.trial_fs_path
    gone = latest.checkpoint.path.rsplit("/", 1)[-1]
    found = _newest_readable(fs, trial_path)
    survivor_path = f"{trial_path}/{found[0]}" if found else None
    # Forget every deleted checkpoint, so that Tune does not delete it again, and list the survivor
    # once only: a second delete of the same folder would print a traceback.
    manager._checkpoint_results = [r for r in manager._checkpoint_results if r.checkpoint.path != survivor_path
                                   and _exists(r.checkpoint.filesystem, r.checkpoint.path)]
    if found:
        name, epoch = found
        # The metrics Tune reported with it; there may be none, if the kill came after the worker
        # wrote the checkpoint and before the driver logged its result.
        row = next((r for r in reversed(reported_results(fs, trial_path))
                    if r.get("checkpoint_dir_name") == name), {})
        survivor = copy.copy(latest)
        survivor.checkpoint = tune.Checkpoint(path=survivor_path, filesystem=fs)
        # Tune counts a trial's epochs on from the checkpoint's training_iteration.
        survivor.metrics = row if row.get("training_iteration") == epoch else {"training_iteration": epoch}
        manager.register_checkpoint(survivor)
        # The index of the last checkpoint written: the next one is numbered after the survivor.
        trial.storage.current_checkpoint_index = int(name.rsplit("_", 1)[-1])
        done = f"continues from {name} (epoch {epoch})"
    else:
        manager._latest_checkpoint_result = None
        done = "starts again from epoch 1 (no checkpoint left)"
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()
    return f"trial {trial.trial_id}: the saved search state names {gone}, which is no longer on storage; it {done}"


class RepairStaleCheckpoints(tune.Callback):
    """Runs ``repair_trial`` over the trials of a resumed search before any of them starts."""

    def __init__(self) -> None:
        self._checked = False

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        # The first step comes after Tune has loaded the saved trials and before it starts any.
        if self._checked:
            return
        self._checked = True
        for trial in trials:
            if trial.status != "TERMINATED" and (note := repair_trial(trial)):
                logger.warning(note)
