"""The one error type that the CLI turns into a one-line message and exit code 2, and the helpers that
word what it and the CLI say."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A mistake in something the user supplied: a file, a key, a value.

    The message must be one line that names the file (or option), the key and
    what was expected, because the CLI prints it as-is, without a traceback.
    """


def first_few(names: list[str], most: int = 5) -> str:
    """Names for an error's hint, the first ``most`` of them: "a, b, c and 4 more"."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def counted(n: int, noun: str, nouns: str = "") -> str:
    """"1 image", "3 images": a count with its noun, for lines that may count one; ``nouns`` where the
    plural is not ``noun`` + s ("classes")."""
    return f"{n} {noun}" if n == 1 else f"{n} {nouns or noun + 's'}"


def did_you_mean(word: str, choices: Iterable[str], shown: str = "") -> str:
    """" (did you mean ``shown`` + X?)" where ``word`` is a typo of one of ``choices``, else "": the list of
    every valid name that follows it is long, and the near miss is what was meant."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {shown}{close[0]}?)" if close else ""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the settings (usually train.lr) do not train.

    A user error for ``alphabet train``; in a search, a result of that trial's settings.
    """


class DiskFull(UserError):
    """A file could not be written whole for want of space. ``run_dir`` is set where the run it
    belongs to can continue (``--resume``) once there is room: a run's directory, or a search's
    RUN_DIR or URI (the CLI quotes it for the shell)."""

    run_dir: Path | str | None = None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run that has a checkpoint to continue from, in ``run_dir`` (a search's:
    its RUN_DIR or URI)."""

    def __init__(self, run_dir: Path | str) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
