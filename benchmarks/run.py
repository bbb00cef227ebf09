"""Benchmarks behind docs/BENCHMARKS.md. One command runs them all, quick or full:

    python benchmarks/run.py            # quick mode (minutes on 2 CPU cores)
    python benchmarks/run.py --full     # full mode
    python benchmarks/run.py --only datapath,seed

Each benchmark writes its own section of docs/BENCHMARKS.md (between
``<!-- bench:NAME -->`` markers), with the command, machine and date. The
femnist benchmarks need ../shared/data and are skipped with a message without it.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphabet.config import AugmentConfig, Config, load_config  # noqa: E402
from alphabet.data import load_splits  # noqa: E402
from alphabet.engine import Trainer  # noqa: E402
from alphabet.train import evaluate_split  # noqa: E402

FEMNIST = ROOT.parent / "shared" / "data" / "femnist_letters.npz"
DOC = ROOT / "docs" / "BENCHMARKS.md"


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
    block = (f"<!-- bench:{name} -->\n{body.strip()}\n\n"
             f"Command: `{command}`. Machine: {machine()}. Date: {stamp}.\n<!-- /bench:{name} -->")
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(block)


# --- data path: batched on-device augmentation against per-sample PIL in a DataLoader ----------

def _seed_style_loader(images: np.ndarray, labels: np.ndarray, aug: AugmentConfig, batch_size: int):
    """The seed's pipeline: PIL images, torchvision transforms per sample, DataLoader without workers."""
    from PIL import Image
    from torchvision.transforms import v2

    transform = v2.Compose([
        v2.RandomAffine(degrees=aug.rotate, translate=(aug.translate, aug.translate),
                        scale=(1 - aug.scale, 1 + aug.scale), shear=np.degrees(np.arctan(aug.shear))),
        v2.ElasticTransform(alpha=aug.elastic * 10, sigma=5.0) if aug.elastic else v2.Identity(),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=aug.erase, value=0) if aug.erase else v2.Identity(),
    ])

    class Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            return transform(Image.fromarray(images[i])), int(labels[i])

    return torch.utils.data.DataLoader(Dataset(), batch_size=batch_size, shuffle=True, num_workers=0,
                                       drop_last=True)


def bench_datapath(full: bool) -> str:
    steps = 60 if full else 20
    rows = []
    for width, cps, arch in ((32, 2, "cnn"), (16, 1, "cnn"), (0, 0, "lenet")):
        sets = ["data.synthetic_size=8000", "data.val_fraction=0", "augment.elastic=1.0", "augment.erase=0.2",
                "train.batch_size=128", f"model.arch={arch}"]
        if arch == "cnn":
            sets += [f"model.width={width}", f"model.convs_per_stage={cps}"]
        config = load_config(None, sets)
        splits = load_splits(config.data)
        trainer = Trainer(config, splits.train)
        model, opt = trainer.model, trainer.optimizer
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(x, y, model=model, opt=opt, loss_fn=loss_fn):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        order = torch.randperm(len(trainer.data))
        index = [order[i * 128:(i + 1) * 128] for i in range(steps)]
        for i in range(3):
            step(*trainer.draw_batch(index[i]))
        t0 = time.perf_counter()
        for i in range(steps):
            trainer.draw_batch(index[i])
        draw = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(steps):
            step(*trainer.draw_batch(index[i]))
        ours = time.perf_counter() - t0
        loader = iter(_seed_style_loader(splits.train.images, splits.train.labels, config.augment, 128))
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = next(loader)
            if config.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step(x, y)
        seed = time.perf_counter() - t0
        name = "LeNet (seed)" if arch == "lenet" else f"CNN width {width}, {cps} conv/stage"
        rows.append(f"| {name} | {steps * 128 / ours:,.0f} | {steps * 128 / seed:,.0f} | {seed / ours:.2f}x | "
                    f"{100 * draw / ours:.1f}% |")
    return ("## Data path: on-device batched augmentation vs per-sample PIL in a DataLoader\n\n"
            "Training steps per second with the same model, augmentation strengths (rotate 10, shear 0.15, "
            "scale 0.1, translate 0.08, elastic 1 px, erase 0.2) and batch size 128, on synthetic images.\n\n"
            "| model | ours (img/s) | seed-style (img/s) | speed-up | drawing+augmenting share of our step |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- time to accuracy: the seed's recipe against the project's default, on real handwriting ------

SEED_RECIPE = ["model.arch=lenet", "train.optimizer=sgd", "train.lr=0.001", "train.momentum=0.9",
               "train.weight_decay=0", "train.schedule=constant", "train.warmup_epochs=0", "train.label_smoothing=0",
               "train.batch_size=128", "augment.rotate=0", "augment.shear=0", "augment.scale=0",
               "augment.translate=0", "augment.elastic=0", "augment.erase=0"]


def _curve(config: Config, splits, budget_s: float) -> list[tuple[float, float]]:
    """(cumulative training seconds, validation balanced accuracy) after each epoch."""
    trainer = Trainer(config, splits.train)
    spent, points = 0.0, []
    while trainer.epoch < config.train.epochs and spent < budget_s:
        t0 = time.perf_counter()
        trainer.train_epoch()
        spent += time.perf_counter() - t0
        points.append((spent, evaluate_split(trainer, splits.val)[0]["balanced_accuracy"]))
    return points


def bench_seed(full: bool) -> str:
    if not FEMNIST.exists():
        return f"## Time to accuracy\n\nSkipped: {FEMNIST} is absent."
    budget = 1500 if full else 420
    base = ["data.case=lower", f"data.source=npz:{FEMNIST}", "data.val_fraction=0.1"]
    seed_cfg = load_config(None, base + SEED_RECIPE + ["train.epochs=500"])
    ours_cfg = load_config(None, base + ["train.epochs=30" if full else "train.epochs=12"])
    splits = load_splits(seed_cfg.data)
    seed = _curve(seed_cfg, splits, budget)
    ours = _curve(ours_cfg, splits, budget)
    seed_best = max(a for _, a in seed)
    seed_time = next(t for t, a in seed if a >= seed_best)
    ours_time = next((t for t, a in ours if a >= seed_best), None)
    ours_at = max((a for t, a in ours if t <= seed_time), default=float("nan"))
    seed_at_ours_end = max(a for t, a in seed if t <= ours[-1][0]) if any(t <= ours[-1][0] for t, _ in seed) else 0
    reach = f"{ours_time:.0f} s ({ours_time / seed_time:.2f} of the seed's time)" if ours_time else "not reached"
    return ("## Time to accuracy: the seed's recipe against the project's default (femnist lowercase)\n\n"
            f"Validation balanced accuracy on held-out writers, training time only, budget {budget} s each.\n\n"
            f"- Seed recipe (LeNet, SGD lr 0.001 momentum 0.9, no augmentation, batch 128): best {seed_best:.4f} "
            f"after {len(seed)} epochs, reached at {seed_time:.0f} s.\n"
            f"- Project default (CNN width 32, AdamW one-cycle, augmentation): {len(ours)} epochs in "
            f"{ours[-1][0]:.0f} s, final {ours[-1][1]:.4f}.\n"
            f"- Time for the project to reach the seed's best: {reach}.\n"
            f"- Accuracy in the seed's time to its best ({seed_time:.0f} s): project {ours_at:.4f} vs seed "
            f"{seed_best:.4f}; in the project's {ours[-1][0]:.0f} s: seed {seed_at_ours_end:.4f} vs project "
            f"{ours[-1][1]:.4f}.")


BENCHMARKS: dict[str, Callable[[bool], str]] = {"datapath": bench_datapath, "seed": bench_seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            sys.exit(f"benchmarks/run.py: --only: unknown benchmark {name!r}; expected {', '.join(BENCHMARKS)}")
    for name in names:
        command = "python benchmarks/run.py" + (" --full" if args.full else "") + f" --only {name}"
        write_section(name, BENCHMARKS[name](args.full), command)


if __name__ == "__main__":
    main()
