"""What every benchmark shares: where things are, the machine line, and the document's sections."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

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


def write_section(name: str, body: str, command: str) -> None:
    stamp = time.strftime("%Y-%m-%d")
    title, _, rest = body.strip().partition("\n")
    if name.endswith("-cuda") and "GPU" not in title:  # the CPU section of the same name has the same title
        body = f"{title}, on a GPU\n{rest}"
    block = (f"<!-- bench:{name} -->\n{body.strip()}\n\n"
             f"Command: `{command}`. Machine: {machine()}. Date: {stamp}.\n<!-- /bench:{name} -->")
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(block)



BEST_CONFIG = ROOT / "benchmarks" / "configs" / "femnist_best.yaml"  # the femnist searches' best


def trained(config: Config, splits: Splits) -> Trainer:
    """A trainer of ``config`` after all its epochs on the training split (and any auxiliary letters)."""
    trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary, initial=initial_weights(config))
    for _ in range(config.train.epochs):
        trainer.train_epoch()
    sync()
    return trainer
