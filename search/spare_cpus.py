"""The cores a search's last trials leave idle, handed to the trials still running.

Tune reserves a trial's CPUs when it starts and keeps them to its end. Once every trial of a
search has started, each one that ends frees its cores for good, and ASHA's survivors run longest,
so a search ends with one or two long trials on a machine whose other cores wait: on 2 cores,
quick.yaml's last 117 s of 262 ran one trial on one core. Tune's ResourceChangingScheduler
changes a trial's CPUs by restarting it, which the search's reuse of trial processes rules out.

So the driver works out how many threads each running trial may now use and writes it, by trial,
to a file in the run directory (``SpareCpus``); trials read theirs as each epoch starts and set
torch's threads to it (``threads_now``). Where the cores do not divide evenly, the trials with the
most epochs left take the odd ones: the search ends when its longest trial does. Only where Ray's
bookkeeping can be stretched safely: the search's own Ray on this machine, local storage, and
trials that take CPUs alone (``resources.cpus_per_trial: auto``, no GPU share). A trial's epochs
on more threads sum in another order, so its scores differ in the last digits from those on fewer.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ray.tune import Callback
from ray.tune.experiment import Trial

THREADS_FILE = ".trial_threads"


def threads_each(total_cpus: float, own_cpus: float, running: list[str], waiting: bool) -> dict[str, int]:
    """The threads each trial of ``running`` (ids, most epochs left first) may use: its own CPUs while the
    search may still start a trial (``waiting``), else a share of all the CPUs, the first trials
    taking one more where they do not divide evenly."""
    own = max(1, int(own_cpus))
    if waiting or not running:
        return dict.fromkeys(running, own)
    each = max(own, int(total_cpus) // len(running))
    odd = max(0, int(total_cpus) - each * len(running))
    return {trial_id: each + (rank < odd) for rank, trial_id in enumerate(running)}


def threads_now(threads_file: Path | None, own_cpus: int, trial_id: str) -> int:
    """What the driver last allowed trial ``trial_id`` (``own_cpus`` where it wrote nothing for it, or
    nothing readable)."""
    if threads_file is None:
        return own_cpus
    try:  # unreadable: not written yet, or caught mid-replace on a file system without atomic renames
        allowed = int(json.loads(threads_file.read_text()).get(trial_id, own_cpus))
    except (OSError, ValueError, TypeError, AttributeError):
        return own_cpus
    return max(own_cpus, min(allowed, os.cpu_count() or own_cpus))


class SpareCpus(Callback):
    """Writes ``threads_each`` for the running trials to THREADS_FILE in the run directory as it changes:
    a JSON object of trial id to threads."""

    def __init__(self, total_cpus: float) -> None:
        self.total_cpus = total_cpus  # the search's own Ray's, as the driver started it
        self.samples: int | None = None
        self.written: dict[str, int] | None = None

    def setup(self, total_num_samples: int | None = None, **info: object) -> None:
        self.samples = total_num_samples
        self.written = None  # a resumed search writes afresh: the file may hold what the killed one allowed

    def on_step_end(self, iteration: int, trials: list[Trial], **info: object) -> None:
        if not trials or self.samples is None:
            return
        running = sorted((t for t in trials if t.status == Trial.RUNNING),
                         key=lambda t: ((t.last_result or {}).get("training_iteration", 0), t.trial_id))
        waiting = len(trials) < self.samples or any(t.status in (Trial.PENDING, Trial.PAUSED) for t in trials)
        own = trials[0].placement_group_factory.required_resources.get("CPU", 1)
        threads = threads_each(self.total_cpus, own, [t.trial_id for t in running], waiting)
        if threads == self.written or (folder := _run_dir(trials)) is None:
            return
        part = folder / f"{THREADS_FILE}.part"
        try:
            part.write_text(json.dumps(threads))
            part.replace(folder / THREADS_FILE)  # whole, so that a trial never reads half of it
        except OSError:  # a full disk, say (the search's disk guard answers that): trials keep what they have
            return
        self.written = threads

    def on_experiment_end(self, trials: list[Trial], **info: object) -> None:
        if (folder := _run_dir(trials)) is not None:  # read by no trial now; a kill's is written afresh on --resume
            with contextlib.suppress(OSError):
                (folder / THREADS_FILE).unlink(missing_ok=True)


def _run_dir(trials: list[Trial]) -> Path | None:
    """The search's directory, wherever it was moved to; None on an object store, whose trials run with
    what they were given."""
    folder = Path(trials[0].storage.experiment_fs_path) if trials else None
    return folder if folder is not None and folder.is_absolute() and folder.is_dir() else None
