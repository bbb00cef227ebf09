"""Benchmarks behind docs/BENCHMARKS.md. One command runs them all, quick or full:

    python benchmarks/run.py            # quick mode (minutes on 2 CPU cores)
    python benchmarks/run.py --full     # full mode
    python benchmarks/run.py --only datapath,seed

datapath  images/s of the on-device batch pipeline against per-sample PIL in a DataLoader
seed      time to accuracy: the seed's recipe against the project's default (femnist)
schedules one-cycle against cosine with a short warmup: accuracy and time to the seed's best (femnist)
variants  validation accuracy of the searched best: fp32 against bf16 autocast, with the training
          writers' capitals as auxiliary classes, and one-cycle against cosine at 12 and 60 epochs (femnist)
batch     validation accuracy of the searched best's retrain recipe at batch 128 against batch 512
          with the lr scaled by the square root and linearly (femnist)
tta       test-time augmentation: validation accuracy of the searched best with several view sets,
          single models and their ensemble (femnist)
framing   the validation writers' letters as scans, photos and transparent PNGs, read back as
          `alphabet predict` reads image files: accuracy against the letters as stored (femnist)
overhead  Ray's share of a trial, and the time from `alphabet search` to the first trial
search    Optuna + ASHA against random + FIFO: best accuracy per trial-epoch (femnist);
          --search-seeds 0,1,2 runs one pair of searches per sampler seed; --search-space
          tuned (femnist_search.yaml, narrowed by earlier searches) or wide (a first search's space);
          --search-startup N sets TPE's start-up trials, and --search-baseline RUNS reuses the
          random + FIFO arms of an earlier run of the same setting (they read none of TPE's settings);
          benchmarks/rung_signal.py then reads its kept random + FIFO searches for what ASHA's rungs see
retrain   epochs/s of the default best CNN at EMNIST-letters size, projected to 500 epochs
profile   torch.profiler: which ops a training step spends its time in (what bounds the above);
          on a GPU, how busy its kernels keep it
gpu       (CUDA only) bf16 autocast, channels_last, torch.compile and batch size, each measured
          at EMNIST-letters size and projected to a 500-epoch retrain
share     (CUDA only) trials per hour with 1, 2, 4 and 8 trials sharing one GPU

Each benchmark writes its own section of docs/BENCHMARKS.md (between
``<!-- bench:NAME -->`` markers, ``NAME-cuda`` when run on a GPU, so CPU and GPU
results stand side by side), with the command, machine and date. The femnist
benchmarks need ../shared/data and the GPU ones a GPU; without them they are
skipped with a message and leave the document as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphabet.config import AugmentConfig, Config, load_config, parse_overrides  # noqa: E402
from alphabet.data import LetterSet, load_splits  # noqa: E402
from alphabet.engine import Trainer, bf16_is_native, predict_probs  # noqa: E402
from alphabet.errors import UserError  # noqa: E402
from alphabet.metrics import summary_metrics  # noqa: E402
from alphabet.train import evaluate_split  # noqa: E402
from alphabet.tta import PLAIN, TTA_VIEWS, View  # noqa: E402
from search.experiment import AshaSettings, load_experiment  # noqa: E402
from search.runner import load_saved_experiment  # noqa: E402
from search.storage import RunLocation  # noqa: E402

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
    # On a GPU our steps cost little and the seed-style ones much, so each side gets its own count.
    ours_steps = (600 if full else 200) if CUDA else (60 if full else 20)
    seed_steps = (60 if full else 20) if CUDA else ours_steps
    data_sets = ["data.synthetic_size=8000", "data.val_fraction=0", "augment.elastic=1.0", "augment.erase=0.2",
                 "train.batch_size=128"]
    splits = load_splits(load_config(None, data_sets).data)
    train = tiled(splits.train, ours_steps * 128)
    rows = []
    for width, cps, arch in ((32, 2, "cnn"), (16, 1, "cnn"), (0, 0, "lenet")):
        sets = data_sets + [f"model.arch={arch}"]
        if arch == "cnn":
            sets += [f"model.width={width}", f"model.convs_per_stage={cps}"]
        config = load_config(None, sets)
        trainer = Trainer(config, train)
        model, opt, device = trainer.model, trainer.optimizer, trainer.device
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(x, y, model=model, opt=opt, loss_fn=loss_fn, trainer=trainer):
            opt.zero_grad()
            with trainer.autocast():
                loss = loss_fn(model(x).float(), y)
            loss.backward()
            opt.step()

        order = torch.randperm(len(trainer.data), device=device)
        index = [order[i * 128:(i + 1) * 128] for i in range(ours_steps)]
        for i in range(3):
            step(*trainer.draw_batch(index[i]))
        sync()
        t0 = time.perf_counter()
        for i in range(ours_steps):
            trainer.draw_batch(index[i])
        sync()
        draw = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(ours_steps):
            step(*trainer.draw_batch(index[i]))
        sync()
        ours = time.perf_counter() - t0
        loader = iter(_seed_style_loader(splits.train.images, splits.train.labels, config.augment, 128))
        t0 = time.perf_counter()
        for _ in range(seed_steps):
            x, y = next(loader)
            x, y = x.to(device), y.to(device)
            if config.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step(x, y)
        sync()
        seed = time.perf_counter() - t0
        ours_rate, seed_rate = ours_steps * 128 / ours, seed_steps * 128 / seed
        name = "LeNet (seed)" if arch == "lenet" else f"CNN width {width}, {cps} conv/stage"
        rows.append(f"| {name} | {ours_rate:,.0f} | {seed_rate:,.0f} | {ours_rate / seed_rate:.2f}x | "
                    f"{100 * draw / ours:.1f}% |")
    where = f"on {torch.cuda.get_device_name()}" if CUDA else "on CPU"
    return ("## Data path: on-device batched augmentation vs per-sample PIL in a DataLoader\n\n"
            f"Training steps per second {where} with the same model, augmentation strengths (rotate 10, "
            "shear 0.15, scale 0.1, translate 0.08, elastic 1 px, erase 0.2), batch size 128 and precision "
            f"({'bf16 autocast' if trainer.use_amp else 'fp32'}), on synthetic images; {ours_steps} steps of ours, "
            f"{seed_steps} of the seed-style pipeline.\n\n"
            "| model | ours (img/s) | seed-style (img/s) | speed-up | drawing+augmenting share of our step |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- time to accuracy: the seed's recipe against the project's default, on real handwriting ------

SEED_RECIPE = ["train.amp=false", "model.arch=lenet", "train.optimizer=sgd", "train.lr=0.001", "train.momentum=0.9",
               "train.weight_decay=0", "train.schedule=constant", "train.warmup_epochs=0", "train.label_smoothing=0",
               "train.batch_size=128", "augment.rotate=0", "augment.shear=0", "augment.scale=0",
               "augment.translate=0", "augment.elastic=0", "augment.erase=0"]


def _curve(config: Config, splits, budget_s: float) -> tuple[list[tuple[float, float]], Trainer]:
    """(cumulative training seconds, validation balanced accuracy) after each epoch, and the trainer."""
    trainer = Trainer(config, splits.train)
    spent, points = 0.0, []
    while trainer.epoch < config.train.epochs and spent < budget_s:
        t0 = time.perf_counter()
        trainer.train_epoch()
        spent += time.perf_counter() - t0
        points.append((spent, evaluate_split(trainer, splits.val)[0]["balanced_accuracy"]))
    return points, trainer


def bench_seed(full: bool) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    budget = 1500 if full else 420
    base = ["data.case=lower", f"data.source=npz:{FEMNIST}", "data.val_fraction=0.1"]
    seed_cfg = load_config(None, base + SEED_RECIPE + ["train.epochs=500"])
    ours_cfg = load_config(None, base + ["train.epochs=30" if full else "train.epochs=12"])
    splits = load_splits(seed_cfg.data)
    seed, _ = _curve(seed_cfg, splits, budget)
    ours, ours_trainer = _curve(ours_cfg, splits, budget)
    seed_best = max(a for _, a in seed)
    seed_time = next(t for t, a in seed if a >= seed_best)
    ours_time = next((t for t, a in ours if a >= seed_best), None)
    ours_at = max((a for t, a in ours if t <= seed_time), default=float("nan"))
    seed_at_ours_end = max(a for t, a in seed if t <= ours[-1][0]) if any(t <= ours[-1][0] for t, _ in seed) else 0
    reach = f"{ours_time:.0f} s ({ours_time / seed_time:.2f} of the seed's time)" if ours_time else "not reached"
    precision = "bf16 autocast" if ours_trainer.use_amp else "fp32"
    t = ours_cfg.train
    schedule = (f"cosine after a {t.warmup_epochs:g}-epoch warmup" if t.schedule == "cosine" else t.schedule)
    return ("## Time to accuracy: the seed's recipe against the project's default (femnist lowercase)\n\n"
            f"Validation balanced accuracy on held-out writers, training time only, budget {budget} s each.\n\n"
            f"- Seed recipe (LeNet, SGD lr 0.001 momentum 0.9, no augmentation, batch 128): best {seed_best:.4f} "
            f"after {len(seed)} epochs, reached at {seed_time:.0f} s.\n"
            f"- Project default (CNN width 32, AdamW {schedule}, augmentation, {precision}): {len(ours)} epochs in "
            f"{ours[-1][0]:.0f} s, final {ours[-1][1]:.4f}.\n"
            f"- Time for the project to reach the seed's best: {reach}.\n"
            f"- Accuracy in the seed's time to its best ({seed_time:.0f} s): project {ours_at:.4f} vs seed "
            f"{seed_best:.4f}; in the project's {ours[-1][0]:.0f} s: seed {seed_at_ours_end:.4f} vs project "
            f"{ours[-1][1]:.4f}.")


# --- learning-rate schedules of the default training ------------------------------------------

SCHEDULES = {"one-cycle (ramp over the first 25%)": ["train.schedule=onecycle"],
             "cosine, 0.5-epoch linear warmup": ["train.schedule=cosine", "train.warmup_epochs=0.5"]}
SEED_BEST = 0.88  # the seed recipe's best in `--only seed` (0.8801 on 2026-11-24), rounded down


def bench_schedules(full: bool) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    seeds = range(5) if full else range(3)
    base = ["data.case=lower", f"data.source=npz:{FEMNIST}", "data.val_fraction=0.1", "train.epochs=12"]
    splits = load_splits(load_config(None, base).data)
    rows = []
    for name, sets in SCHEDULES.items():
        cells, finals, reach = [], [], []
        for seed in seeds:
            points, _ = _curve(load_config(None, [*base, *sets, f"train.seed={seed}"]), splits, float("inf"))
            hit = next(((i + 1, t) for i, (t, a) in enumerate(points) if a >= SEED_BEST), None)
            finals.append(points[-1][1])
            reach.append(hit[1] if hit else float("nan"))
            cells.append(f"{points[-1][1]:.4f} ({hit[0]} ep, {hit[1]:.0f} s)" if hit else f"{points[-1][1]:.4f}")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | **{np.mean(finals):.4f}** | {np.mean(reach):.1f} s |")
    head = " | ".join(f"seed {s}" for s in seeds)
    return ("## Learning-rate schedules of the default training (femnist lowercase)\n\n"
            "The default CNN and augmentation, AdamW at lr 0.003, 12 epochs (the time-to-accuracy benchmark's "
            "length), validation on held-out writers (the same split as `--only seed`). Each cell: balanced "
            f"accuracy after the last epoch, then the epoch and training seconds at which it first reached "
            f"{SEED_BEST} (the seed recipe's best).\n\n"
            f"| schedule | {head} | mean final | mean time to {SEED_BEST} |\n|---|" + "---|" * (len(seeds) + 2)
            + "\n" + "\n".join(rows))


# --- variants of the searched best: precision, auxiliary letters --------------------------------

BEST_CONFIG = ROOT / "benchmarks" / "configs" / "femnist_best.yaml"
VARIANTS = {  # the file's one-cycle schedule and 12 epochs unless a row says otherwise
    "bf16 autocast": ["train.amp=true"],
    "fp32": ["train.amp=false"],
    "bf16 autocast + capitals as auxiliary classes": ["train.amp=true", "data.auxiliary_case=upper"],
    # The library's default schedule is cosine, chosen at 12 epochs; a retrain is 60 or more.
    "bf16 autocast, cosine": ["train.amp=true", "train.schedule=cosine"],
    "bf16 autocast, 60 epochs (the femnist retrain's length)": ["train.amp=true", "train.epochs=60"],
    "bf16 autocast, cosine, 60 epochs": ["train.amp=true", "train.schedule=cosine", "train.epochs=60"],
}


def trained(config: Config, splits) -> Trainer:
    """A trainer of ``config`` after all its epochs on the training split (and any auxiliary letters)."""
    trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary)
    for _ in range(config.train.epochs):
        trainer.train_epoch()
    sync()
    return trainer


def bench_variants(full: bool) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    if not bf16_is_native(torch.device("cpu")) or CUDA:
        raise Skipped("measures CPU bf16 autocast; this machine's CPU has no native bf16 or it has a GPU")
    seeds = (0, 1, 2) if full else (0, 1)
    rows = []
    for name, sets in VARIANTS.items():
        finals = []
        base = [f"data.source=npz:{FEMNIST}", "train.epochs=12", *sets]
        splits = load_splits(load_config(BEST_CONFIG, base).data)  # the seed changes training only
        for seed in seeds:
            trainer = trained(load_config(BEST_CONFIG, [*base, f"train.seed={seed}"]), splits)
            finals.append(evaluate_split(trainer, splits.val)[0]["balanced_accuracy"])
        rows.append(f"| {name} | {len(trainer.data):,} | " + " | ".join(f"{a:.4f}" for a in finals)
                    + f" | **{np.mean(finals):.4f}** |")
    head = " | ".join(f"seed {s}" for s in seeds)
    return ("## Variants of the searched best: precision, auxiliary letters, schedule and length (femnist "
            "lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` (one-cycle schedule) trained 12 epochs (the search's max_t) "
            "unless the row says otherwise, on the training writers, scored (in fp32) on the validation "
            "writers' lowercase letters; balanced accuracy after the last epoch.\n\n"
            f"| variant | training images | {head} | mean |\n|---|---|" + "---|" * (len(seeds) + 1) + "\n"
            + "\n".join(rows))


# --- batch size of the retrain: what a larger batch costs in accuracy ---------------------------

# The retrain's recipe (benchmarks/configs/femnist_best.yaml, the "Sixth retrain"); the file's
# batch of 128 and lr against batch 512 with the lr scaled by the square root and linearly.
RETRAIN_RECIPE = ["train.amp=true", "train.schedule=cosine", "train.logit_adjustment=1"]
BATCH_ARMS = {"batch 128 (the recipe)": (128, 1.0), "batch 512, lr x2 (square-root scaling)": (512, 2.0),
              "batch 512, lr x4 (linear scaling)": (512, 4.0)}


def bench_batch(full: bool) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    seeds, epochs = ((0, 1, 2), 60) if full else ((0,), 4)
    base = [f"data.source=npz:{FEMNIST}", f"train.epochs={epochs}", *RETRAIN_RECIPE]
    recipe = load_config(BEST_CONFIG, base)
    splits = load_splits(recipe.data)
    rows = []
    for name, (batch, lr_factor) in BATCH_ARMS.items():
        lr = recipe.train.lr * lr_factor
        finals, seconds = [], 0.0
        for seed in seeds:
            config = load_config(BEST_CONFIG, [*base, f"train.batch_size={batch}", f"train.lr={lr:g}",
                                               f"train.seed={seed}"])
            t0 = time.perf_counter()
            trainer = trained(config, splits)
            seconds += time.perf_counter() - t0
            finals.append(evaluate_split(trainer, splits.val)[0]["balanced_accuracy"])
        steps = math.ceil(len(splits.train) / batch) * epochs
        rows.append(f"| {name} | {lr:g} | {steps:,} | " + " | ".join(f"{a:.4f}" for a in finals)
                    + f" | **{np.mean(finals):.4f}** | {seconds / len(seeds) / epochs:.2f} |")
    head = " | ".join(f"seed {s}" for s in seeds)
    return ("## Batch size of the retrain: accuracy at batch 512 (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the retrain's recipe (cosine schedule, 0.5-epoch warmup, "
            f"logit-adjusted loss, bf16 autocast), {epochs} epochs on the training writers "
            f"({len(splits.train):,} letters), scored in fp32 on the validation writers ({len(splits.val):,}); "
            "balanced accuracy after the last epoch. The same epochs at batch 512 take a quarter of the "
            "optimizer steps.\n\n"
            f"| arm | lr | optimizer steps | {head} | mean | s per epoch |\n|---|---|---|"
            + "---|" * (len(seeds) + 2) + "\n" + "\n".join(rows))


# --- test-time augmentation: which views, chosen on validation writers --------------------------

VIEW_SETS = {  # each set includes the image itself
    "none (the image alone)": PLAIN,
    "1-pixel shifts (4)": (View(), View(dx=1), View(dx=-1), View(dy=1), View(dy=-1)),
    "scale 0.92 and 1.08": (View(), View(scale=0.92), View(scale=1.08)),
    "rotation of 6 degrees each way": (View(), View(degrees=6), View(degrees=-6)),
    "scales and rotations (4)": (View(), View(scale=0.92), View(scale=1.08), View(degrees=6), View(degrees=-6)),
    "scales and rotations, wider (4: 0.9, 1.1, 10 degrees)":
        (View(), View(scale=0.9), View(scale=1.1), View(degrees=10), View(degrees=-10)),
    "shifts, scales and rotations (8): `--tta`": TTA_VIEWS,
}


def bench_tta(full: bool) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    seeds, epochs = ((0, 1, 2, 3), 60) if full else ((0, 1), 12)
    base = [f"data.source=npz:{FEMNIST}", "train.schedule=cosine", f"train.epochs={epochs}"]
    splits = load_splits(load_config(BEST_CONFIG, base).data)
    labels = torch.from_numpy(splits.val.labels)
    probs: dict[str, list[torch.Tensor]] = {name: [] for name in VIEW_SETS}
    for seed in seeds:
        trainer = trained(load_config(BEST_CONFIG, [*base, f"train.seed={seed}"]), splits)
        for name, views in VIEW_SETS.items():
            probs[name].append(predict_probs(trainer.model, splits.val, trainer.device, views=views))
    rows = []
    for name, per_seed in probs.items():
        single = [summary_metrics(p, labels)["balanced_accuracy"] for p in per_seed]
        together = summary_metrics(torch.stack(per_seed).mean(0), labels)["balanced_accuracy"]
        rows.append(f"| {name} | " + " | ".join(f"{a:.4f}" for a in single)
                    + f" | **{np.mean(single):.4f}** | {together:.4f} |")
    head = " | ".join(f"seed {s}" for s in seeds)
    return ("## Test-time augmentation: views chosen on the validation writers (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {epochs} epochs on the "
            f"training writers ({len(splits.train):,} letters) once per seed; each row scores the same "
            f"models on the {len(splits.val):,} validation writers' letters, each image as the mean softmax "
            "over the row's views. Balanced accuracy; the last column is the ensemble of the seeds.\n\n"
            f"| views | {head} | mean | ensemble |\n|---|" + "---|" * (len(seeds) + 2) + "\n"
            + "\n".join(rows))


# --- framing: real letters as image files, the way users' scans and photos hold them ------------

def photographed(letter: np.ndarray, contrast: float, noise: float, gradient: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A 28 px white-on-black letter as dark ink on a page 4x larger, lit unevenly, with grain."""
    from PIL import Image

    big = np.asarray(Image.fromarray(letter).resize((112, 112), Image.Resampling.BICUBIC), np.float32) / 255
    ink = np.zeros((170, 150), np.float32)
    ink[30:142, 19:131] = big
    light = 235 - gradient * np.linspace(0, 1, ink.shape[1])[None, :]
    return np.clip(light - contrast * ink + rng.normal(0, noise, ink.shape), 0, 255).astype(np.uint8)


def transparent(letter: np.ndarray) -> np.ndarray:
    """Black strokes on a transparent page, 4x larger, as a drawing app saves them (RGBA)."""
    from PIL import Image

    alpha = np.asarray(Image.fromarray(letter).resize((112, 112), Image.Resampling.BICUBIC))
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 3] = alpha
    return rgba


FRAMING_CASES = {  # name: (how a letter becomes an image, file suffix, JPEG quality)
    "scan: black ink on white, PNG": (lambda x, rng: photographed(x, 220, 0, 0, rng), ".png", None),
    "photo: light falling off by 40 levels across the page, grain 4, JPEG": (
        lambda x, rng: photographed(x, 200, 4, 40, rng), ".jpg", 75),
    "faint pencil: ink 40 levels below the page, grain 3, JPEG": (
        lambda x, rng: photographed(x, 40, 3, 0, rng), ".jpg", 75),
    "drawing app: black strokes on a transparent page, PNG": (lambda x, rng: transparent(x), ".png", None),
}


def bench_framing(full: bool) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import load_letter_image

    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    epochs = 30 if full else 12
    config = load_config(BEST_CONFIG, [f"data.source=npz:{FEMNIST}", "train.schedule=cosine",
                                       f"train.epochs={epochs}"])
    splits = load_splits(config.data)
    trainer = trained(config, splits)
    labels = torch.from_numpy(splits.val.labels)
    stored = predict_probs(trainer.model, splits.val, trainer.device)
    as_framed = stored.argmax(1)
    rows = [f"| the letters as stored (28 px, the model's input) | "
            f"{summary_metrics(stored, labels)['balanced_accuracy']:.4f} | 1.000 | |"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, suffix, quality) in FRAMING_CASES.items():
            rng = np.random.default_rng(0)
            tick = time.perf_counter()
            images = []
            for i, letter in enumerate(splits.val.images):
                path = Path(tmp) / f"{i}{suffix}"
                Image.fromarray(make(letter, rng)).save(path, **({"quality": quality} if quality else {}))
                images.append(load_letter_image(path))
            ms = (time.perf_counter() - tick) / len(images) * 1000
            probs = predict_probs(trainer.model, torch.from_numpy(np.stack(images)), trainer.device)
            agree = (probs.argmax(1) == as_framed).float().mean().item()
            rows.append(f"| {name} | {summary_metrics(probs, labels)['balanced_accuracy']:.4f} | {agree:.3f} | "
                        f"{ms:.1f} |")
    return ("## Framing: real letters as image files (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {epochs} epochs on the "
            f"training writers, predicts the {len(splits.val):,} validation writers' letters as `alphabet "
            "predict` reads image files: each letter is drawn 4x larger on a 170x150 page as the row says, "
            "saved, read back and framed (`alphabet/data/emnist_style.py`). Balanced accuracy; agreement "
            "with the model's answers on the letters as stored; milliseconds to write, read and frame one "
            "file.\n\n"
            "| letters as | balanced accuracy | agreement | ms per file |\n|---|---|---|---|\n" + "\n".join(rows))


# --- Ray overhead: one trial under Tune against the same training in a plain loop -------------

OVERHEAD_SETS = ["data.case=lower", "data.synthetic_size=6000", "data.synthetic_test_size=520",
                 "data.val_fraction=0.15", "model.width=16", "log.progress=never"]


def _plain_seconds(epochs: int) -> float:
    """The trial's work (train an epoch, score validation) without Ray, on one thread as a trial has."""
    config = load_config(None, OVERHEAD_SETS + [f"train.epochs={epochs}"])
    splits = load_splits(config.data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        trainer = Trainer(config, splits.train)
        while trainer.epoch < epochs:
            trainer.train_epoch()
            evaluate_split(trainer, splits.val)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def _trial_reports(run_dir: Path) -> list[dict]:
    """Every epoch's report of every trial of a search, in time order (Tune's result.json files)."""

    reports = [json.loads(line) for path in run_dir.glob("trial_*/result.json")
               for line in path.read_text().splitlines() if line.strip()]
    return sorted(reports, key=lambda r: r["timestamp"])


def bench_overhead(full: bool) -> str:
    import yaml

    epochs = 15 if full else 6  # 15 epochs of this trial take about a minute on one core
    plain = _plain_seconds(epochs)
    config = parse_overrides(OVERHEAD_SETS + [f"log.figures_every={epochs}"])
    with tempfile.TemporaryDirectory() as tmp:
        experiment = {"config": config, "space": {"train.lr": {"type": "loguniform", "low": 0.002, "high": 0.004}},
                      "search": {"num_samples": 1, "max_concurrent": 1},
                      "asha": {"max_t": epochs, "grace_period": epochs}, "resources": {"cpus_per_trial": 1},
                      "storage": {"path": tmp, "name": "overhead"}}
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(experiment))
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "alphabet", "search", str(path)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        total = time.time() - t0
        rows = _trial_reports(Path(tmp, "overhead"))
    first = rows[0]
    first_start = first["timestamp"] - first["time_this_iter_s"] - t0
    trial = rows[-1]["time_total_s"]
    share = (trial - plain) / trial
    # Tune times each iteration from report to report; the trial times its own epoch (train +
    # validation). The difference is what Tune adds: start-up before epoch 1, then per report
    # the TensorBoard scalars, the checkpoint and the round trip to the driver.
    startup = first["time_this_iter_s"] - first["epoch_seconds"]
    per_report = [r["time_this_iter_s"] - r["epoch_seconds"] for r in rows[1:]]
    direct = startup + sum(per_report)
    return ("## Ray overhead: one trial under Tune against the same work in a plain loop\n\n"
            f"{epochs} epochs of a width-16 CNN on 5,100 synthetic letters (train + validation each epoch, one "
            "thread), first in a plain loop, then as the only trial of `alphabet search` (OptunaSearch, ASHA, a "
            "`tune.report` with a `tune.Checkpoint` and TensorBoard scalars every epoch).\n\n"
            "| | seconds |\n|---|---|\n"
            f"| plain loop | {plain:.1f} |\n"
            f"| the trial, as Tune timed it | {trial:.1f} |\n"
            f"| difference, as a share of the trial | {100 * share:.1f}% |\n"
            f"| inside the trial: start-up before epoch 1 (model, optimiser, TensorBoard writer) | {startup:.2f} |\n"
            f"| inside the trial: each later report with its checkpoint (mean of {len(per_report)}) | "
            f"{np.mean(per_report) if per_report else 0:.3f} |\n"
            f"| start-up, reports and checkpoints: share of the trial | **{100 * direct / trial:.1f}%** |\n"
            f"| `alphabet search` launched → first trial started (imports, data, Ray start-up) | {first_start:.1f} |\n"
            f"| whole command, start to exit (includes results, summary figure, Ray shutdown) | {total:.1f} |\n\n"
            "The difference between the two runs also holds run-to-run noise in the epochs themselves; the "
            "rows inside the trial are Tune's own timings (`time_this_iter_s`) minus the trial's "
            "(`epoch_seconds`).")


# --- search efficiency: Optuna + ASHA against random search + FIFO, same num_samples -----------

def _best_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """(trial-epochs spent, best metric so far) over every report of every trial, in time order."""
    best, curve = float("-inf"), []
    for spent, report in enumerate(_trial_reports(run_dir), 1):
        best = max(best, report[metric])
        curve.append((spent, best))
    return curve


RANDOM_ARM_SEED_OFFSET = 1000
# name -> (experiment file, what its space is): the section, figure and runs are named after it
SEARCH_SPACES = {"tuned": ("femnist_search.yaml", "narrowed around what the first femnist searches found"),
                 "wide": ("femnist_search_wide.yaml", "a first search's space: two optimisers, three decades "
                          "of learning rate, batch norm on or off, augmentation from none to strong"),
                 "wide_bn": ("femnist_search_wide_bn.yaml", "the wide space with batch norm fixed on, the choice "
                             "that decided the wide space's searches")}


def search_variant(full: bool, space: str = "tuned", trials: int | None = None,
                   grace: int | None = None, seeds: tuple[int, ...] = (0,),
                   startup: int | None = None) -> tuple[int, int, int, str]:
    """(trials, max_t, grace period, name suffix) of a search benchmark; the suffix names what differs
    from the default, so each variant, and each set of sampler seeds, keeps its own section, figure and
    runs: more seeds of a setting add a section rather than replace the first."""
    default_trials, max_t, default_grace = (16, 12, 3) if full else (8, 6, 2)
    suffix = "" if space == "tuned" else f"_{space}"
    suffix += f"_{trials}trials" if trials not in (None, default_trials) else ""
    suffix += f"_grace{grace}" if grace not in (None, default_grace) else ""
    suffix += f"_startup{startup}" if startup is not None else ""
    suffix += f"_seeds{'-'.join(map(str, seeds))}" if seeds != (0,) else ""
    return trials or default_trials, max_t, grace or default_grace, suffix


def asha_floor(max_t: int, grace: int, rf: int) -> float:
    """The least share of FIFO's trial-epochs ASHA can spend: every trial runs to the first rung and
    exactly 1/rf of those at each rung go on to the next."""
    stops = AshaSettings(max_t, grace, rf).rungs() + [max_t]
    return sum((stops[k] - (stops[k - 1] if k else 0)) / rf**k for k in range(len(stops))) / max_t


def check_baseline(arm_dir: Path, sets: list[str], experiment: Path) -> None:
    """Raise UserError unless the search in arm_dir is the random + FIFO arm these settings would run:
    reusing it is sound only because that arm never reads TPE's settings."""
    want = load_experiment(experiment, sets)
    try:
        got = load_saved_experiment(RunLocation.parse(str(arm_dir)))
    except UserError as e:
        raise UserError(f"--search-baseline: {e.args[0]}") from None
    for section in ("search", "asha"):
        wanted, found = (dataclasses.asdict(getattr(e, section)) for e in (want, got))
        for key in (k for k in wanted if k != "startup_trials"):
            if found[key] != wanted[key]:
                raise UserError(f"--search-baseline: {arm_dir}/experiment.yaml: {section}.{key} is "
                                f"{found[key]!r}; expected {wanted[key]!r}")
    if got.space != want.space or got.config != want.config:
        raise UserError(f"--search-baseline: {arm_dir}/experiment.yaml: its space or config differs from "
                        f"{experiment.relative_to(ROOT)}'s; expected the same search")
    if not list(arm_dir.glob("trial_*/result.json")):
        raise UserError(f"--search-baseline: {arm_dir}: no trial results; expected a finished search")


def bench_search(full: bool, seeds: tuple[int, ...] = (0,), space: str = "tuned", trials: int | None = None,
                 grace: int | None = None, startup: int | None = None, baseline: Path | None = None) -> str:
    if not FEMNIST.exists():
        raise Skipped(f"{FEMNIST} is absent")
    samples, max_t, grace, suffix = search_variant(full, space, trials, grace, seeds, startup)
    file_name, space_text = SEARCH_SPACES[space]
    experiment = ROOT / "benchmarks" / "configs" / file_name
    # (seed offset, settings). TPE draws its start-up trials with a RandomSampler of its own seed: with
    # one seed for both arms, random search's first trials would be TPE's, and a best among them would
    # be "reached" for free.
    tpe = [] if startup is None else [f"search.startup_trials={startup}"]
    arms = {"Optuna (TPE) + ASHA": (0, ["search.searcher=optuna", "search.scheduler=asha", *tpe]),
            "random + FIFO": (RANDOM_ARM_SEED_OFFSET, ["search.searcher=random", "search.scheduler=fifo"])}
    # Kept, not temporary: each arm is a search RUN_DIR for `alphabet trials`, TensorBoard or a retrain.
    runs = ROOT / "runs" / f"bench-search-efficiency{suffix}" / time.strftime("%Y%m%d-%H%M%S")

    def arm_settings(seed: int, offset: int, sets: list[str]) -> list[str]:
        return sets + [f"search.seed={seed + offset}", f"search.num_samples={samples}",
                       f"asha.max_t={max_t}", f"asha.grace_period={grace}", "search.time_budget_s=null"]

    base_index = list(arms).index("random + FIFO")
    if baseline is not None:  # check every seed's before spending an hour on the first
        offset, sets = arms["random + FIFO"]
        for seed in seeds:
            check_baseline(baseline / f"seed{seed}" / f"arm{base_index}", arm_settings(seed, offset, sets),
                           experiment)
    results = []  # (seed, {arm: curve}, {arm: wall seconds, None if reused}), one pair per sampler seed
    for seed in seeds:
        curves, walls = {}, {}
        for i, (arm, (offset, sets)) in enumerate(arms.items()):
            if baseline is not None and i == base_index:
                curves[arm], walls[arm] = _best_curve(baseline / f"seed{seed}" / f"arm{i}",
                                                      "val_balanced_accuracy"), None
                continue
            t0 = time.time()
            storage = [f"storage.path={runs / f'seed{seed}'}", f"storage.name=arm{i}"]
            subprocess.run([sys.executable, "-m", "alphabet", "search", str(experiment), "--set",
                            *arm_settings(seed, offset, sets), *storage], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
            walls[arm] = time.time() - t0
            curves[arm] = _best_curve(runs / f"seed{seed}" / f"arm{i}", "val_balanced_accuracy")
        results.append((seed, curves, walls))
    ours_name, base_name = arms
    figure = DOC.parent / "figures" / f"search_efficiency{suffix}.png"
    figure.parent.mkdir(exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    lowest = 1.0
    for n, (seed, curves, _) in enumerate(results):
        for colour, (arm, curve) in zip(("C0", "C1"), curves.items(), strict=True):
            ax.step([spent for spent, _ in curve], [best for _, best in curve], where="post", color=colour,
                    linestyle=("-", "--", ":", "-.")[n % 4], label=f"{arm}, seed {seed}")
        lowest = min(lowest, curves[base_name][-1][1])
    ax.set(xlabel="trial-epochs spent", ylabel="best validation balanced accuracy",
           title=f"femnist lowercase, {space} space, {samples} trials of up to {max_t} epochs",
           ylim=(max(0.0, lowest - 0.2), 1))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    rows, ratios = [], []
    for seed, curves, walls in results:
        ours, base = curves[ours_name], curves[base_name]
        target = base[-1][1]
        reached = next((spent for spent, best in ours if best >= target), None)
        ratios.append(reached / base[-1][0] if reached else float("inf"))
        verdict = f"{reached}, **{ratios[-1]:.2f}**" if reached else "**not reached**"
        third = base[-1][0] / 3
        at_third = [best for spent, best in ours if spent <= third][-1:] or [float("nan")]
        wall = {arm: "reused" if walls[arm] is None else f"{walls[arm] / 60:.1f} min" for arm in walls}
        rows.append(f"| {seed} | {ours[-1][0]}, {ours[-1][1]:.4f}, {wall[ours_name]} | "
                    f"{base[-1][0]}, {base[-1][1]:.4f}, {wall[base_name]} | {verdict} | {at_third[0]:.4f} |")
    met = sum(r <= 1 / 3 for r in ratios)
    summary = f"Target, at most 1/3 of random + FIFO's trial-epochs: met for {met} of {len(ratios)} sampler seed(s)."
    if len(ratios) > 1:
        median = statistics.median(ratios)  # inf where most seeds did not reach it
        summary += f" Median share: {'not reached' if math.isinf(median) else f'{median:.2f}'}."
    loaded = load_experiment(experiment, [f"search.num_samples={samples}", *tpe])
    reused = ("" if baseline is None else f" Random + FIFO's searches are reused from "
              f"`{os.path.relpath(baseline, ROOT)}` (`--search-baseline`; they read none of TPE's settings, and their "
              "experiment.yaml was checked against this run's).")
    return (f"## Search efficiency: Optuna + ASHA against random search + FIFO (femnist lowercase, {space} "
            f"space, {samples} trials, grace {grace}, "
            f"{'' if startup is None else f'{startup} TPE start-up trials, '}"
            f"sampler seeds {', '.join(map(str, seeds))})\n\n"
            f"`benchmarks/configs/{file_name}` (its space {space_text}) with {samples} trials of up to "
            f"{max_t} epochs each "
            f"(ASHA grace period {grace}, reduction factor 3: even pruning perfectly, ASHA spends at least "
            f"{asha_floor(max_t, grace, 3):.2f} of FIFO's trial-epochs), 2 trials at a time, validation on held-out "
            f"writers, {loaded.config.train.schedule} learning-rate schedule. TPE samples its first "
            f"{loaded.startup_trials} trials at random (`search.startup_trials`). Each sampler seed s is one "
            f"pair of searches: `search.seed` s for Optuna, s + {RANDOM_ARM_SEED_OFFSET} for random search, so "
            "that random search does not repeat TPE's start-up trials.\n\n"
            f"| sampler seed | {ours_name}: trial-epochs, best val balanced accuracy, wall time | "
            f"{base_name}: the same | trial-epochs {ours_name} needed to reach random + FIFO's best, "
            f"share of random + FIFO's | {ours_name}'s best within 1/3 of random + FIFO's trial-epochs |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"{summary} The searches are kept in `{runs.relative_to(ROOT)}`.{reused}\n\n"
            f"![best so far against trial-epochs](figures/search_efficiency{suffix}.png)")


# --- retrain time: epochs per second for the default best CNN at EMNIST-letters size ------------

EMNIST_LETTERS = 124_800
RETRAIN_SETS = ["data.case=all", "data.synthetic_size=5200", "data.val_fraction=0", "data.synthetic_test_size=52",
                "model.width=32", "model.convs_per_stage=2", "augment.elastic=0.2", "augment.erase=0.1",
                "train.schedule=onecycle", "log.progress=never"]  # as the searched best retrains


def epoch_seconds(config: Config, train: LetterSet, epochs: int = 2) -> float:
    """Seconds per training epoch after one warm-up epoch (allocator, cuDNN autotuning, compilation)."""
    trainer = Trainer(config, train)
    trainer.train_epoch()
    sync()
    t0 = time.perf_counter()
    for _ in range(epochs):
        trainer.train_epoch()
    sync()
    return (time.perf_counter() - t0) / epochs


def bench_retrain(full: bool) -> str:
    images = EMNIST_LETTERS if full else EMNIST_LETTERS // 10
    config = load_config(None, RETRAIN_SETS)
    generated = load_splits(config.data).train
    per_epoch = epoch_seconds(config, tiled(generated, images))
    scaled = per_epoch * EMNIST_LETTERS / images
    where = f"on {torch.cuda.get_device_name()}" if CUDA else f"on CPU ({torch.get_num_threads()} threads)"
    projection = "" if images == EMNIST_LETTERS else f" (measured on {images:,} images and scaled linearly)"
    return ("## Retrain time: the default best CNN at the size of EMNIST letters\n\n"
            f"CNN 32-64-128, 2 conv/stage, batch 128, affine + elastic + erasing augmentation, {where}, "
            f"{images:,} training images ({len(generated):,} synthetic letters repeated).\n\n"
            f"- {per_epoch:.1f} s per epoch, {images / per_epoch:,.0f} images/s.\n"
            f"- A 500-epoch retrain on {EMNIST_LETTERS:,} images{projection}: **{500 * scaled / 3600:.1f} h**. "
            "Target: 15 minutes on one H100.")


# --- profile: where a training step's time goes, to say what bounds the targets above ----------

def bench_profile(full: bool) -> str:
    from torch.profiler import ProfilerActivity, profile, record_function

    images = 5120 if full else 1280  # one epoch: 40 or 10 steps of 128
    sections = []
    for name, sets in (("CNN width 32, 2 conv/stage (the default)", []), ("LeNet (seed)", ["model.arch=lenet"])):
        config = load_config(None, ["data.case=lower", f"data.synthetic_size={images}", "data.val_fraction=0",
                                    "data.synthetic_test_size=52", "augment.elastic=1.0", "augment.erase=0.2",
                                    "log.progress=never", *sets])
        trainer = Trainer(config, load_splits(config.data).train)
        draw = trainer.draw_batch

        def labelled_draw(index: torch.Tensor, draw=draw) -> tuple[torch.Tensor, torch.Tensor]:
            with record_function("draw_batch"):
                return draw(index)

        trainer.draw_batch = labelled_draw  # so the profile can total the data path's ops
        trainer.train_epoch()  # warm-up
        if CUDA:
            trainer.draw_batch = draw  # on a GPU a label becomes a span of the timeline, not kernel time
            sections.append(f"**{name}**: " + _gpu_busy(trainer, profile, ProfilerActivity))
            continue
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch()
        averages = prof.key_averages()
        drawn = next(e for e in averages if e.key == "draw_batch")
        events = sorted((e for e in averages if e.key != "draw_batch"), key=lambda e: e.self_cpu_time_total,
                        reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key) / total
        drawing = drawn.cpu_time_total / total
        rows = "\n".join(f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f}% |" for e in events[:6])
        sections.append(f"**{name}**: convolutions (forward and backward) {100 * conv:.0f}% of the step's "
                        f"self time; drawing and augmenting batches (all ops under `draw_batch`) "
                        f"{100 * drawing:.0f}%.\n\n"
                        f"| op | share of self time |\n|---|---|\n{rows}")
    return ("## Profile: where a training step's time goes\n\n"
            f"`torch.profiler` over one epoch of {images // 128} steps of 128 (draw, augment, forward, backward, "
            "AdamW step), self time per op.\n\n" + "\n\n".join(sections))


def _gpu_busy(trainer: Trainer, profile, activity) -> str:
    """How much of an epoch's wall time the GPU spends in kernels, and the costliest kernels."""
    sync()
    t0 = time.perf_counter()
    trainer.train_epoch()
    sync()
    wall = time.perf_counter() - t0
    with profile(activities=[activity.CPU, activity.CUDA]) as prof:
        trainer.train_epoch()
        sync()
    kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA
               and not getattr(e, "is_user_annotation", False) and not e.key.startswith("Optimizer.")]
    kernels.sort(key=lambda e: e.device_time_total, reverse=True)
    busy = sum(e.device_time_total for e in kernels) / 1e6  # microseconds
    launches = sum(e.count for e in kernels)
    steps = trainer.steps_per_epoch
    rows = "\n".join(f"| `{e.key[:70]}` | {e.count} | {100 * e.device_time_total / 1e6 / wall:.1f}% |"
                      for e in kernels[:6])
    return (f"{steps} steps in {wall:.2f} s without the profiler ({1000 * wall / steps:.2f} ms a step); GPU kernels "
            f"ran {busy:.3f} s of it (**{100 * busy / wall:.0f}% busy**), {launches / steps:.0f} kernels a step.\n\n"
            f"| kernel | launches | share of the epoch's wall time |\n|---|---|---|\n{rows}")


# --- GPU execution: precision, memory format, compilation and batch size, at EMNIST-letters size ---

REDUCE_OVERHEAD = ["train.compile=true", "train.compile_mode=reduce-overhead"]  # CUDA graphs
GPU_VARIANTS = {  # name -> overrides on the defaults (bf16 autocast and channels_last on, no compile)
    "fp32, NCHW": ["train.amp=false", "train.channels_last=false"],
    "fp32, channels_last": ["train.amp=false"],
    "bf16 autocast, NCHW": ["train.channels_last=false"],
    "bf16 autocast, channels_last (the defaults)": [],
    "the defaults + torch.compile": ["train.compile=true"],
    "the defaults, batch 512": ["train.batch_size=512"],
    "the defaults + torch.compile, batch 512": ["train.compile=true", "train.batch_size=512"],
    'the defaults + torch.compile(mode="reduce-overhead")': REDUCE_OVERHEAD,
    'the defaults + torch.compile(mode="reduce-overhead"), batch 512': REDUCE_OVERHEAD + ["train.batch_size=512"],
}


def bench_gpu(full: bool) -> str:
    if not CUDA:
        raise Skipped("no GPU here (torch.cuda.is_available() is False)")
    images = EMNIST_LETTERS if full else EMNIST_LETTERS // 4
    generated = load_splits(load_config(None, RETRAIN_SETS).data).train
    train = tiled(generated, images)
    rows = []
    for name, sets in GPU_VARIANTS.items():
        try:
            per_epoch = epoch_seconds(load_config(None, RETRAIN_SETS + sets), train)
        except Exception as error:  # one variant failing (a compiler limit, say) is itself a result
            first_line = (str(error).splitlines() or [""])[0][:120]
            rows.append(f"| {name} | failed: {type(error).__name__}: {first_line} | | |")
            continue
        retrain = 500 * per_epoch * EMNIST_LETTERS / images
        rows.append(f"| {name} | {per_epoch:.2f} | {images / per_epoch:,.0f} | {retrain / 60:.1f} min |")
    scaled = "" if images == EMNIST_LETTERS else f" (measured on {images:,} images, scaled linearly)"
    return ("## GPU execution: precision, memory format, compilation and batch size\n\n"
            f"The default best CNN (32-64-128, 2 conv/stage, AdamW one-cycle, affine + elastic + erasing "
            f"augmentation on the GPU) on {torch.cuda.get_device_name()}, {images:,} training images "
            f"({len(generated):,} synthetic letters repeated), batch 128 unless named. Each row: one warm-up "
            "epoch, then the mean of two timed epochs.\n\n"
            f"| variant | s per epoch | images/s | 500-epoch retrain on {EMNIST_LETTERS:,} images{scaled} |\n"
            "|---|---|---|---|\n" + "\n".join(rows) + "\n\nTarget for the retrain: 15 minutes on one H100.")


# --- trials sharing one GPU: what Ray's fractional gpus_per_trial buys -------------------------

SHARE_EPOCHS = 3


def share_worker(data_path: str, epochs: int) -> None:
    """One trial's work in its own process (as a Ray trial has): train, score validation, each epoch."""
    arrays = np.load(data_path)
    classes = [str(c) for c in arrays["classes"]]
    train = LetterSet(arrays["train_x"], arrays["train_y"], classes)
    val = LetterSet(arrays["val_x"], arrays["val_y"], classes)
    config = load_config(None, RETRAIN_SETS + [f"train.epochs={epochs}"])
    start = time.time()
    trainer = Trainer(config, train)
    for _ in range(epochs):
        trainer.train_epoch()
        evaluate_split(trainer, val)
    sync()
    print(json.dumps({"start": start, "end": time.time(), "images": epochs * len(train)}))


def bench_share(full: bool) -> str:
    if not CUDA:
        raise Skipped("no GPU here (torch.cuda.is_available() is False)")
    generated = load_splits(load_config(None, RETRAIN_SETS).data).train
    train = tiled(generated, 62_400 if full else 20_800)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp, "trial_data.npz")
        val = generated.subset(np.arange(min(2600, len(generated))))
        np.savez(data_path, train_x=train.images, train_y=train.labels, val_x=val.images, val_y=val.labels,
                 classes=np.array(train.classes))
        # One CPU thread per trial, as Ray gives a trial with cpus_per_trial=1.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for n in (1, 2, 4, 8):
            t0 = time.time()
            procs = [subprocess.Popen([sys.executable, __file__, "--share-worker", str(data_path), str(SHARE_EPOCHS)],
                                      stdout=subprocess.PIPE, env=env, cwd=ROOT) for _ in range(n)]
            outs = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]
            if any(p.returncode for p in procs):
                raise RuntimeError(f"a trial process failed with {n} per GPU")
            wall = time.time() - t0
            training = max(o["end"] for o in outs) - min(o["start"] for o in outs)
            trial = np.mean([o["end"] - o["start"] for o in outs])
            rows.append(f"| {n} | {wall:.1f} | {trial:.1f} | {n * 3600 / wall:,.0f} | "
                        f"{sum(o['images'] for o in outs) / training:,.0f} |")
    return ("## Trials sharing one GPU\n\n"
            f"n trial processes started together on {torch.cuda.get_device_name()}, as Ray places n trials with "
            f"`gpus_per_trial: 1/n`. Each trial: the default best CNN, {SHARE_EPOCHS} epochs of "
            f"{len(train):,} images, batch 128, bf16 autocast, validation on {len(val):,} images after each epoch; one "
            "CPU thread each. Wall time counts each process's start (Python, torch, CUDA context), as a "
            "new trial's does.\n\n"
            "| trials per GPU | wall time (s) | one trial's training (s) | trials per hour | "
            "images/s, all trials together |\n|---|---|---|---|---|\n" + "\n".join(rows))


BENCHMARKS: dict[str, Callable[[bool], str]] = {"datapath": bench_datapath, "seed": bench_seed,
                                               "variants": bench_variants, "schedules": bench_schedules,
                                               "batch": bench_batch, "tta": bench_tta,
                                               "framing": bench_framing,
                                               "overhead": bench_overhead, "search": bench_search,
                                               "retrain": bench_retrain, "profile": bench_profile,
                                               "gpu": bench_gpu, "share": bench_share}


def main() -> None:
    if sys.argv[1:2] == ["--share-worker"]:  # a child process of the share benchmark
        share_worker(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--search-seeds", default="0", metavar="0,1,2",
                        help="search: one pair of searches per sampler seed (default: 0)")
    parser.add_argument("--search-space", default="tuned", choices=list(SEARCH_SPACES),
                        help="search: which femnist space (default: tuned)")
    parser.add_argument("--search-trials", type=int, metavar="N",
                        help="search: trials per search (default: 16 in full mode, 8 in quick)")
    parser.add_argument("--search-grace", type=int, metavar="EPOCHS",
                        help="search: ASHA's grace period (default: 3 in full mode, 2 in quick)")
    parser.add_argument("--search-startup", type=int, metavar="N",
                        help="search: trials TPE samples at random first (default: the experiment's)")
    parser.add_argument("--search-baseline", type=Path, metavar="RUNS",
                        help="search: reuse the random + FIFO arms of an earlier run of the same setting "
                             "(runs/bench-search-efficiency.../TIME); they read none of TPE's settings")
    args = parser.parse_args()
    try:
        seeds = tuple(int(seed) for seed in args.search_seeds.split(","))
    except ValueError:
        sys.exit(f"benchmarks/run.py: --search-seeds: expected comma-separated integers, got {args.search_seeds!r}")
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            sys.exit(f"benchmarks/run.py: --only: unknown benchmark {name!r}; expected {', '.join(BENCHMARKS)}")
    for name in names:
        command = "python benchmarks/run.py" + (" --full" if args.full else "") + f" --only {name}"
        section = name
        if name == "search":
            for option, value, default in (("--search-seeds", args.search_seeds, "0"),
                                           ("--search-space", args.search_space, "tuned"),
                                           ("--search-trials", args.search_trials, None),
                                           ("--search-grace", args.search_grace, None),
                                           ("--search-startup", args.search_startup, None),
                                           ("--search-baseline", args.search_baseline, None)):
                command += f" {option} {value}" if value != default else ""
            section += search_variant(args.full, args.search_space, args.search_trials, args.search_grace,
                                      seeds, args.search_startup)[3].replace("_", "-")
        try:
            body = (bench_search(args.full, seeds, args.search_space, args.search_trials, args.search_grace,
                                 args.search_startup, args.search_baseline and args.search_baseline.resolve())
                    if name == "search" else BENCHMARKS[name](args.full))
        except Skipped as why:
            print(f"{name}: skipped: {why}")
            continue
        except UserError as e:
            sys.exit(f"benchmarks/run.py: {e.args[0]}")
        write_section(f"{section}-cuda" if CUDA else section, body, command)


if __name__ == "__main__":
    main()
