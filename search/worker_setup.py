"""What every Ray worker process of a search runs before any trial code: Ray's
``worker_process_setup_hook`` names this module's ``setup_worker``. The standard library only, as
every worker of the job pays for what it imports."""

from __future__ import annotations

import sys

SETUP_HOOK = "search.worker_setup.setup_worker"


def quiet_exit_in_callbacks(unraisable: sys.UnraisableHookArgs) -> None:
    """``sys.unraisablehook`` for a trial's process. Ray ends the process of an ended trial with SIGTERM,
    whose handler raises SystemExit; landing in a weakref callback, it cannot propagate and Python
    printed it as a traceback ("Exception ignored in ... SystemExit: 1") that looked like a failure.
    Only that one is dropped; every other unraisable exception is printed as before."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, SystemExit):
        return
    sys.__unraisablehook__(unraisable)


def setup_worker() -> None:
    # At the worker's start, not the trial's: a time budget's SIGTERM also lands on trials still
    # starting (unpickling their letters), before any trial code could install it.
    sys.unraisablehook = quiet_exit_in_callbacks
