"""Work on many files over one process per core: framing images is numpy and Python work that holds
the GIL, so threads do not share it (two threads framed scans no faster than one).

Processes start by fork, on Linux only: another start method imports the caller's script again, which
a script without an ``if __name__ == "__main__"`` guard does not survive. Elsewhere the work runs in
this process, as it always did. Python 3.12 and later warn (a DeprecationWarning: hidden by default,
shown by pytest) that a fork of a process with threads may deadlock: a lock another thread held
at the fork stays held in the child. The threads copied here are torch's, idle between its operations, and
the workers take none of their locks: they frame images with numpy, scipy and Pillow.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Fewer items than this per process, and starting the processes (about 50 ms) costs more than they
# save: 16 scans of 170x150 px took 75 ms in one process, 91 ms over two; 64 took 293 and 203 ms.
ITEMS_PER_PROCESS = 16

# A container's CPU limit (cgroup v2): "QUOTA PERIOD" in microseconds, or "max PERIOD" for none.
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CPU_MAX) -> int:
    """The cores this process may use: those it may run on, fewer where its container's CPU limit
    allows fewer (a container on a 64-core machine limited to 2 would otherwise fork 64 processes)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError, ZeroDivisionError):
        pass  # no cgroup v2 limit to read: the cores it may run on
    return cores


def processes_for(items: int) -> int:
    """How many processes share ``items``: one per usable core, each with ``ITEMS_PER_PROCESS`` items
    at least; 1 (this process) off Linux."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(usable_cores(), items // ITEMS_PER_PROCESS))


def _leave_stopping_to_the_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The CLI's SIGTERM handler, copied by fork, would make the SIGTERM that ends a worker a Ctrl-C.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def map_over_processes(function: Callable[[Item], Result], items: Sequence[Item],
                       processes: int | None = None) -> list[Result]:
    """``[function(item) for item in items]``, in order, over ``processes`` (default ``processes_for``).
    An exception raised for an item (a ``UserError`` naming a file, say) comes back as it was raised."""
    processes = processes_for(len(items)) if processes is None else processes
    if processes <= 1:
        return [function(item) for item in items]
    # Ctrl-C is this process's to act on: a worker that took it would pass it back as its items' result
    # and go on to the next. Small chunks, so that the work cancelled then (or after an item's exception)
    # ends within a few items.
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                               initializer=_leave_stopping_to_the_parent)
    try:
        return list(pool.map(function, items, chunksize=4))
    finally:
        pool.shutdown(cancel_futures=True)
