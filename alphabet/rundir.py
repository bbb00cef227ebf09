"""Run directories: safe names, never overwriting an earlier run."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alphabet.errors import UserError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str, key: str = "log.name") -> str:
    """A run name is one path component: no separators, no '..', nothing hidden."""
    if not SAFE_NAME.match(name) or ".." in name:
        raise UserError(f"{key}: expected letters, digits, '.', '_' or '-' (no path separators), got {name!r}")
    return name


def new_run_dir(out_dir: str | Path, name: str | None) -> Path:
    """Create a fresh run directory; an explicit name that exists already is refused."""
    out = Path(out_dir)
    if name is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate, n = out / stamp, 1
        while candidate.exists():
            n += 1
            candidate = out / f"{stamp}-{n}"
    else:
        candidate = out / check_name(name)
        if candidate.exists():
            raise UserError(f"{candidate}: run directory exists already; expected a new log.name, "
                            "or --resume to continue that run")
    candidate.mkdir(parents=True, exist_ok=False)
    return candidate


@contextmanager
def removed_unless_resumable(run_dir: Path) -> Iterator[Path]:
    """Remove ``run_dir`` again if an error or Ctrl-C ends its run before any checkpoint to resume
    from: a run that failed to start leaves nothing behind, and its name is free for the corrected
    command. Once a ``last.pt`` exists, the directory is kept for ``--resume``."""
    try:
        yield run_dir
    except BaseException:
        if not any(run_dir.rglob("last.pt")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
