"""What every benchmark shares: where things are, the machine line, and the document's sections."""

from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from alphabet.config import Config
from alphabet.data import LetterSet
from alphabet.data.splits import Splits
from alphabet.engine import Trainer
from alphabet.finetune import initial_weights

ROOT = Path(__file__).resolve().parents[1]
FEMNIST = ROOT.parent / "shared" / "data" / "femnist_letters.npz"
DOC = ROOT / "docs" / "BENCHMARKS.md"
CUDA = torch.cuda.is_available()


class Skipped(Exception):
    """A benchmark that cannot run here (no ../shared/data, no GPU); the document keeps its section."""


T = TypeVar("T")


@dataclass(frozen=True)
class Bench:
    """What each benchmark is given: how big to run, where femnist's letters are, and where results go.

    ``smoke`` runs each benchmark's whole path in seconds, on synthetic letters shaped like
    femnist's (52 classes, writers), into a scratch document: it checks the code, measures nothing.
    ``quick`` and ``full`` measure, on ../shared/data, into docs/BENCHMARKS.md."""

    size: str = "quick"
    femnist: Path = FEMNIST
    doc: Path = DOC
    runs: Path = ROOT / "runs"  # searches a benchmark keeps, for `alphabet trials` or TensorBoard

    @property
    def smoke(self) -> bool:
        return self.size == "smoke"

    def pick(self, smoke: T, quick: T, full: T) -> T:
        """The value for this size, e.g. ``bench.pick(1, 12, 30)`` epochs."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.size]

    def letters(self) -> Path:
        """femnist's npz file (a smoke test's stand-in, made on first use); a benchmark that needs it is
        skipped where it is absent."""
        if self.smoke and not self.femnist.exists():
            smoke_letters(self.femnist)
        if not self.femnist.exists():
            raise Skipped(f"{self.femnist} is absent")
        return self.femnist

    @property
    def figures(self) -> Path:
        return self.doc.parent / "figures"


def smoke_letters(path: Path, writers: int = 12) -> Path:
    """Synthetic letters saved as femnist's npz is (``x``, ``y``, ``classes``, ``writer``): ``writers``
    writers who each wrote every one of the 52 letters once, so that the femnist benchmarks' splits by
    writer work on them and each split has every letter (the lexicon benchmarks spell words with them)."""
    from alphabet.data.sources import save_npz
    from alphabet.data.synthetic import generate

    letters = generate(52 * writers, seed=0)
    rank = np.empty(len(letters), np.int64)  # each letter's place among the letters of its class
    for label in range(52):
        mine = np.flatnonzero(letters.labels == label)
        rank[mine] = np.arange(len(mine))
    names = np.array([f"w{k:03d}" for k in rank])
    save_npz(LetterSet(letters.images, letters.labels, letters.classes, names), path)
    return path


def sync() -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    if CUDA:
        torch.cuda.synchronize()


def tiled(data: LetterSet, size: int) -> LetterSet:
    """``data`` repeated up to ``size`` images: timing at scale without generating them all."""
    return data.subset(np.resize(np.arange(len(data)), size))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}, {torch.get_num_threads()} torch threads{gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def write_section(doc: Path, name: str, body: str, command: str) -> None:
    stamp = time.strftime("%Y-%m-%d")
    title, _, rest = body.strip().partition("\n")
    if name.endswith("-cuda") and "GPU" not in title:  # the CPU section of the same name has the same title
        body = f"{title}, on a GPU\n{rest}"
    block = (f"<!-- bench:{name} -->\n{body.strip()}\n\n"
             f"Command: `{command}`. Machine: {machine()}. Date: {stamp}.\n<!-- /bench:{name} -->")
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
    print(block)



BEST_CONFIG = ROOT / "benchmarks" / "configs" / "femnist_best.yaml"  # the femnist searches' best


def trained(config: Config, splits: Splits) -> Trainer:
    """A trainer of ``config`` after all its epochs on the training split (and any auxiliary letters)."""
    trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary, initial=initial_weights(config))
    for _ in range(config.train.epochs):
        trainer.train_epoch()
    sync()
    return trainer
