"""A search and the room on its disk: stop while there is room to save it, and resume only whole state.

A disk that filled mid-search failed each trial's next checkpoint, which Tune retried (and printed
a traceback for) resources.max_failures times, and then the driver's Optuna study failed to commit:
the search ended in a traceback. ``DiskGuard`` looks at the space left where the search is stored,
once a second. Below a reserve it stops the search as Ctrl-C does (Tune's own SIGUSR1), so that
unfinished trials stay unfinished, Tune saves its state, and `--resume` continues them once there is
room. The reserve (search/storage.py): a floor for Tune's state and the search's results, and two more
checkpoints of the largest size seen for each running trial, which may be writing one as it stops.

A disk that another program fills faster than the guard looks can cut Tune's state short as Tune
saves it (it writes in place). Tune would then log that it could not restore it and start the
search afresh, over its results: ``check_tune_state`` refuses such a resume instead.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import signal
import sys
import time
from pathlib import Path

from ray import tune
from ray.tune.experiment import Trial

from alphabet.errors import DiskFull, UserError
from alphabet.rundir import mebibytes
from search.storage import RunLocation, room_short

CHECK_EVERY_S = 1.0


class DiskGuard(tune.Callback):
    """Tune pickles it with the search (tuner.pkl): a resumed search runs a copy, so the driver asks
    ``room_short`` itself, once the search has stopped, rather than this object."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.largest_checkpoint = 0
        self.stopped = False
        self._checked = 0.0

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: object) -> None:
        self.largest_checkpoint = max(self.largest_checkpoint, int(result.get("checkpoint_bytes", 0) or 0))

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: object) -> None:
        now = time.monotonic()
        if self.stopped or now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        running = sum(t.status == Trial.RUNNING for t in trials)
        # Tune handles SIGUSR1 as it does Ctrl-C where it runs in the main thread, and only there.
        short = room_short(self.folder, running, self.largest_checkpoint)
        if short and signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            self.stopped = True
            # Said first: Tune's own line that follows speaks of Ctrl-C. The search's last line gives the figures.
            print(f"alphabet: {self.folder}: its disk is short of the room a search keeps; stopping the search as "
                  "Ctrl-C would", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGUSR1)


def disk_full(location: RunLocation, why: str) -> DiskFull:
    error = DiskFull(f"{location.uri}: {why}; expected more room there")
    error.run_dir = location.uri  # the CLI ends the line with the command that continues it
    return error


def filled_by_another(location: RunLocation, failure: str) -> UserError:
    """The error of a search whose disk filled faster than its guard looks (another program's doing):
    resumable, unless Tune's state was being saved as it filled."""
    free = mebibytes(shutil.disk_usage(location.path).free)
    try:
        check_tune_state(location.path)
    except UserError:
        return UserError(f"{location.uri}: its disk filled ({free} free) as Tune saved the search's state, which is "
                         "cut short; expected room for it: this search cannot be continued (its trials' folders and "
                         "optuna.db are left as they are)")
    return disk_full(location, f"no space left on its disk ({free} free; {failure})")


def check_tune_state(run_dir: Path) -> None:
    """Refuse to resume from Tune's state files cut short, as a disk that fills while Tune saves them
    leaves them: Tune would log that it could not restore them and start the search afresh, over it.
    Pickles are checked opcode by opcode, without running them (search_gen_state's is one too)."""
    for pattern, kind in (("experiment_state-*.json", "json"), ("search_gen_state-*.json", "pickle"),
                          ("searcher-state-*.pkl", "pickle")):
        newest = max(run_dir.glob(pattern), default=None)  # the newest by its name's time, as Tune picks it
        if newest is None:
            continue
        try:
            data = newest.read_bytes()
            if kind == "json":
                json.loads(data)
            else:
                for _ in pickletools.genops(data):
                    pass
        except (OSError, ValueError) as e:  # json's JSONDecodeError and a pickle without its end are ValueErrors
            raise UserError(f"{newest}: Tune's saved state is cut short or unreadable ({type(e).__name__}), as a "
                            "disk that fills while Tune saves it leaves it; expected a whole file: this search "
                            "cannot be continued (its trials' folders and optuna.db are left as they are)") from None
