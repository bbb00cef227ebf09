"""Run directories and output files: safe names, never over an earlier run or a file that exists, and
files replaced only once written whole."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from alphabet.errors import DiskFull, RunInterrupted, UserError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LOCK_FILE = ".alphabet.lock"  # held by the one process writing a run; it names that process
BEST_FILE = "best.yaml"  # in a finished search's RUN_DIR: its best configuration, a plain training config


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def check_name(name: str, key: str = "log.name") -> str:
    """A run name is one path component: no separators, no '..', nothing hidden."""
    if not SAFE_NAME.match(name) or ".." in name:
        raise UserError(f"{key}: expected letters, digits, '.', '_' or '-' (no path separators), got {name!r}")
    return name


def free_name(stem: str, taken: Callable[[str], bool], suffix: str = "") -> str:
    """``stem + suffix``, else the first of ``stem-2 + suffix``, ``stem-3 + suffix``, ... not ``taken``:
    how every run, retrain and output file here gets a name without replacing one."""
    name, n = stem + suffix, 1
    while taken(name):
        n += 1
        name = f"{stem}-{n}{suffix}"
    return name


def new_run_dir(out_dir: str | Path, name: str | None, keys: tuple[str, str] = ("log.out_dir", "log.name"),
                resumable: bool = True, numbered: bool = False) -> Path:
    """Create a fresh run directory; an explicit name that exists already is refused, and so is an
    ``out_dir`` that names a file or lies under one. ``keys``: the settings that gave ``out_dir`` and
    ``name``, as errors name them; ``resumable``: whether such a run can be continued (``--resume``);
    ``numbered``: a ``name`` that exists gets a -2, -3 ... suffix instead (a name chosen for the user)."""
    out_key, name_key = keys
    out = Path(out_dir)
    stem = time.strftime("%Y%m%d-%H%M%S") if name is None else check_name(name, name_key)
    free = name is None or numbered
    while True:
        # lexists: a dangling link is taken too, or mkdir would fail on it for ever
        candidate = out / (free_name(stem, lambda n: os.path.lexists(out / n)) if free else stem)
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            if not os.path.lexists(candidate):  # a dangling link stands where out_dir or a folder above should be
                raise UserError(f"{out_key}: {out}: expected a directory to write runs in (a link to nothing "
                                "stands in its path)") from None
            if not free:
                raise UserError(f"{candidate}: run directory exists already; expected a new {name_key}"
                                + (", or --resume to continue that run" if resumable else "")) from None
            # another process (the same command started twice at once) took it since free_name looked
        except OSError as e:  # a file in the way, no permission, a read-only or full disk
            raise UserError(f"{out_key}: {out}: expected a directory to write runs in ({_reason(e)})") from None


@contextmanager
def hold_run_dir(run_dir: Path, resume: str = "--resume") -> Iterator[None]:
    """Hold ``run_dir`` for this process alone: a second process writing it (a --resume while the
    first still runs) would interleave their checkpoints and reports, and delete each other's. The
    lock is the kernel's (flock, NFS included), so a process ended by kill -9 no longer holds it and
    its run resumes at once. ``resume``: the command that continues the run, for the refusal."""
    try:
        handle = open(Path(run_dir) / LOCK_FILE, "a+")  # closed by the with below
    except OSError:  # a folder this process cannot write: the run fails where it first writes, as ever
        yield
        return
    with handle:
        if _lock(handle, run_dir, resume):
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
        yield


def _lock(handle: IO[str], run_dir: Path, resume: str) -> bool:
    """Take ``handle``'s lock, or refuse naming its holder; False where locks are not to be had."""
    try:
        import fcntl
    except ImportError:  # Windows has no flock: runs there go unguarded
        return False
    for _ in range(20):  # `alphabet trials` may be looking, for a moment (holder_of_run_dir)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:  # a file system without locks: run unguarded rather than not at all
            return False
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    raise UserError(f"{run_dir}: {holder} is running it; expected one process at a time "
                    f"(let that one finish, or stop it and continue with {resume})")


def holder_of_run_dir(run_dir: Path) -> str | None:
    """Which process holds ``run_dir`` now ("pid 12 on HOST since ..."), or None when none does."""
    try:
        import fcntl

        handle = open(Path(run_dir) / LOCK_FILE)  # closed below, which frees the lock taken to test
    except (ImportError, OSError):
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None
    return None


@contextmanager
def guard_run_dir(run_dir: Path, created: bool = True) -> Iterator[Path]:
    """What an error or Ctrl-C leaves of a run. While ``run_dir`` holds no checkpoint to resume from, a
    directory this run ``created`` is removed again: a run that failed to start leaves nothing behind,
    and its name is free for the corrected command. Once a ``last.pt`` exists, the directory is kept
    and Ctrl-C comes out as ``RunInterrupted``, naming the directory to resume (the outermost guard's).
    The run holds its directory meanwhile (``hold_run_dir``)."""
    try:
        with hold_run_dir(run_dir):
            yield run_dir
    except BaseException as e:
        resumable = any(run_dir.rglob("last.pt"))
        if created and not resumable:
            shutil.rmtree(run_dir, ignore_errors=True)
        if resumable and isinstance(e, KeyboardInterrupt):
            raise RunInterrupted(run_dir) from None
        if resumable and isinstance(e, DiskFull):  # the outermost guard names the directory, as for Ctrl-C
            e.run_dir = run_dir
        raise


@contextmanager
def guarded_new_run_dir(out_dir: str | Path, name: str | None, keys: tuple[str, str] = ("log.out_dir", "log.name"),
                        resumable: bool = True, numbered: bool = False) -> Iterator[Path]:
    """``new_run_dir`` held by ``guard_run_dir``. A run that fails to start removes the folders above its
    directory that it made too (a first run's ``runs/``), which are empty then: it leaves nothing at all."""
    out = Path(out_dir)
    there = next(folder for folder in (out, *out.parents) if os.path.lexists(folder))
    run_dir = new_run_dir(out, name, keys, resumable, numbered)
    try:
        with guard_run_dir(run_dir) as held:
            yield held
    except BaseException:
        if not os.path.lexists(run_dir):
            for folder in (out, *out.parents):
                if folder == there:
                    break
                try:
                    folder.rmdir()  # only an empty one: another run may have started in it meanwhile
                except OSError:
                    break
        raise


@contextmanager
def claim_new_file(path: Path, beside: tuple[str, ...] = (), log: Callable[[str], None] = print) -> Iterator[Path]:
    """Make ``path`` at the moment of writing it, as a file this process alone created (O_EXCL), and
    yield it to be written. A name chosen when a command started (an audit's, minutes before) may have
    been taken since, by the same command run beside it or by the user: then the next free name
    (``stem-2.suffix``, ...) is made instead, and ``log`` says so. ``beside``: suffixes
    of files written next to it under the same stem (an audit's .png), which must be free too. If the
    writing fails, what was made here is removed again."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{path}: cannot write there (a file stands where a folder of its path should be)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({_reason(e)})") from None

    def taken(name: str) -> bool:
        return any(os.path.lexists((folder / name).with_suffix(s)) for s in (path.suffix, *beside))

    candidate = path
    while True:
        if not taken(candidate.name):
            try:  # O_EXCL: of two processes that found the name free, one makes it
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                break
            except FileExistsError:
                pass
            except OSError as e:
                raise UserError(f"{candidate}: cannot write there ({_reason(e)})") from None
        candidate = folder / free_name(path.stem, taken, path.suffix)
    if candidate != path:
        log(f"{path} appeared while this ran; it is left as it is, and this writes {candidate} instead")
    try:
        yield candidate
    except BaseException:
        for made in (candidate, *(candidate.with_suffix(s) for s in beside)):
            made.unlink(missing_ok=True)
        raise


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to, which replaces ``path`` once written whole: a kill or
    a full disk mid-write leaves the file as it was. A write that fails removes its temporary file (a
    half-written checkpoint on a full disk is as big as a whole one); only a kill leaves it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        full = isinstance(e, Exception) and disk_is_full(e, path.parent)  # looked at before the unlink frees it
        tmp.unlink(missing_ok=True)
        if full:
            raise DiskFull(f"{path}: cannot write it, no space left on its disk "
                           f"({mebibytes(shutil.disk_usage(path.parent).free)} free); expected room for it") from None
        raise


def mebibytes(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"


def disk_is_full(error: Exception, folder: Path) -> bool:
    """Whether ``error``, raised while writing in ``folder``, came of a full disk: ENOSPC itself, or a
    writer that hides it (torch.save's RuntimeError) with less than a MiB left there."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False
