"""Accuracy of training recipes on femnist's real handwriting: the seed's recipe against the
default, schedules, variants of the searched best, batch size, test-time augmentation, calibration,
and letters read back from image files."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alphabet.calibrate import fit_temperature
from alphabet.config import Config, load_config
from alphabet.data import load_splits
from alphabet.data.splits import Splits
from alphabet.engine import Trainer, bf16_is_native, predict_probs
from alphabet.ensemble import Classifier, with_temperature
from alphabet.metrics import calibration, summary_metrics
from alphabet.train import evaluate_split
from alphabet.tta import PLAIN, TTA_VIEWS, View
from benchmarks.common import (
    BEST_CONFIG,
    CUDA,
    ROOT,
    Bench,
    Skipped,
    trained,
)

# --- time to accuracy: the seed's recipe against the project's default, on real handwriting ------

SEED_RECIPE = ["train.amp=false", "model.arch=lenet", "train.optimizer=sgd", "train.lr=0.001", "train.momentum=0.9",
               "train.weight_decay=0", "train.schedule=constant", "train.warmup_epochs=0", "train.label_smoothing=0",
               "train.batch_size=128", "augment.rotate=0", "augment.shear=0", "augment.scale=0",
               "augment.translate=0", "augment.elastic=0", "augment.erase=0"]


def _curve(config: Config, splits: Splits, budget_s: float) -> tuple[list[tuple[float, float]], Trainer]:
    """(cumulative training seconds, validation balanced accuracy) after each epoch, and the trainer."""
    trainer = Trainer(config, splits.train)
    spent, points = 0.0, []
    while trainer.epoch < config.train.epochs and spent < budget_s:
        t0 = time.perf_counter()
        trainer.train_epoch()
        spent += time.perf_counter() - t0
        points.append((spent, evaluate_split(trainer, splits.val)[0]["balanced_accuracy"]))
    return points, trainer


def bench_seed(bench: Bench) -> str:
    femnist = bench.letters()
    budget = bench.pick(600, 420, 1500)  # smoke: its two epochs, whatever they take
    base = ["data.case=lower", f"data.source=npz:{femnist}", "data.val_fraction=0.1"]
    seed_cfg = load_config(None, base + SEED_RECIPE + [f"train.epochs={bench.pick(2, 500, 500)}"])
    ours_cfg = load_config(None, base + [f"train.epochs={bench.pick(1, 12, 30)}"])
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


def bench_schedules(bench: Bench) -> str:
    femnist = bench.letters()
    seeds = range(bench.pick(1, 3, 5))
    base = ["data.case=lower", f"data.source=npz:{femnist}", "data.val_fraction=0.1",
            f"train.epochs={bench.pick(1, 12, 12)}"]
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

VARIANTS = {  # the file's one-cycle schedule and 12 epochs unless a row says otherwise
    "bf16 autocast": ["train.amp=true"],
    "fp32": ["train.amp=false"],
    "bf16 autocast + capitals as auxiliary classes": ["train.amp=true", "data.auxiliary_case=upper"],
    # The library's default schedule is cosine, chosen at 12 epochs; a retrain is 60 or more.
    "bf16 autocast, cosine": ["train.amp=true", "train.schedule=cosine"],
    "bf16 autocast, 60 epochs (the femnist retrain's length)": ["train.amp=true", "train.epochs=60"],
    "bf16 autocast, cosine, 60 epochs": ["train.amp=true", "train.schedule=cosine", "train.epochs=60"],
}


def bench_variants(bench: Bench) -> str:
    femnist = bench.letters()
    if not bench.smoke and (not bf16_is_native(torch.device("cpu")) or CUDA):  # a smoke test times nothing
        raise Skipped("measures CPU bf16 autocast; this machine's CPU has no native bf16 or it has a GPU")
    seeds = bench.pick((0,), (0, 1), (0, 1, 2))
    rows = []
    for name, sets in VARIANTS.items():
        finals = []
        base = [f"data.source=npz:{femnist}", "train.epochs=12", *sets]
        base += ["train.epochs=1"] if bench.smoke else []  # after the row's own length, so it wins
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


def bench_batch(bench: Bench) -> str:
    femnist = bench.letters()
    seeds, epochs = bench.pick(((0,), 1), ((0,), 4), ((0, 1, 2), 60))
    base = [f"data.source=npz:{femnist}", f"train.epochs={epochs}", *RETRAIN_RECIPE]
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


def bench_tta(bench: Bench) -> str:
    femnist = bench.letters()
    seeds, epochs = bench.pick(((0,), 1), ((0, 1), 12), ((0, 1, 2, 3), 60))
    base = [f"data.source=npz:{femnist}", "train.schedule=cosine", f"train.epochs={epochs}"]
    splits = load_splits(load_config(BEST_CONFIG, base).data)
    labels = torch.from_numpy(splits.val.labels)
    probs: dict[str, list[torch.Tensor]] = {name: [] for name in VIEW_SETS}
    for seed in seeds:
        trainer = trained(load_config(BEST_CONFIG, [*base, f"train.seed={seed}"]), splits)
        for name, views in VIEW_SETS.items():
            probs[name].append(predict_probs(trainer.scored, splits.val, trainer.device, views=views))
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


# --- calibration: how far the recipe's probabilities can be trusted, and a temperature's repair --

def bench_calibration(bench: Bench) -> str:
    femnist = bench.letters()
    seeds, epochs = bench.pick(((0, 1), 1), ((0,), 12), ((0, 1), 60))
    base = [f"data.source=npz:{femnist}", "train.schedule=cosine", "train.logit_adjustment=1",
            f"train.epochs={epochs}"]
    splits = load_splits(load_config(BEST_CONFIG, base).data)
    labels = torch.from_numpy(splits.val.labels)
    writers = np.asarray(splits.val.writers)
    # Two halves of the validation writers: a temperature fitted on one is scored on the other,
    # as a user's would be on letters of writers it was not fitted on.
    names = np.unique(writers)
    np.random.default_rng(0).shuffle(names)
    first = torch.from_numpy(np.isin(writers, names[: len(names) // 2]))
    outputs = {f"seed {seed}": trained(load_config(BEST_CONFIG, [*base, f"train.seed={seed}"]), splits)
               .predict(splits.val).float().cpu() for seed in seeds}
    if len(seeds) > 1:
        outputs[f"the {len(seeds)} averaged"] = torch.stack(list(outputs.values())).mean(0)
    rows = []
    for name, probs in outputs.items():
        scaled, temperatures = probs.clone(), []
        for fit in (first, ~first):
            temperatures.append(fit_temperature(probs[fit], labels[fit]))
            scaled[~fit] = with_temperature(probs[~fit], temperatures[-1])
        before, after = (calibration(p.numpy(), labels.numpy()) for p in (probs, scaled))
        # The share kept at p >= 0.9 and its accuracy; a model that is never that sure keeps none.
        at = [next(f"{a['share']:.1%} at {a['accuracy']:.2%}" if a["accuracy"] is not None else "none"
                   for a in c.accepted if a["threshold"] == 0.9) for c in (before, after)]
        rows.append(f"| {name} | {before.mean_accuracy:.4f} | {before.mean_confidence:.4f} | {before.ece:.4f} | "
                    f"{at[0]} | " + ", ".join(f"{t:.3f}" for t in temperatures)
                    + f" | {after.mean_confidence:.4f} | **{after.ece:.4f}** | {at[1]} |")
    return ("## Calibration: the recipe's probabilities, and a temperature fitted on other writers "
            "(femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule and logit adjustment 1, trained {epochs} "
            f"epochs on the training writers ({len(splits.train):,} letters) once per seed, scored on the "
            f"{len(splits.val):,} letters of the {len(names)} validation writers. ECE over 15 bins of the top "
            "probability. The temperature (what `alphabet calibrate` fits) is fitted on one half of the "
            "validation writers and applied to the other, both ways round, so every letter is scored by a "
            "temperature fitted on writers other than its own.\n\n"
            "| model | accuracy | mean top probability | ECE | top probability >= 0.9: share, accuracy | "
            "temperatures | calibrated: mean top probability | ECE | >= 0.9: share, accuracy |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))


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


def cropped(letter: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on a light page, 4x larger and cropped to the ink, as an OCR pipeline's crops come."""
    from PIL import Image

    ys, xs = np.nonzero(letter > 25)
    crop = letter[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    big = np.asarray(Image.fromarray(crop).resize((4 * crop.shape[1], 4 * crop.shape[0]),
                                                  Image.Resampling.BICUBIC), np.float32)
    return np.clip(235 - 0.85 * big + rng.normal(0, noise, big.shape), 0, 255).astype(np.uint8)


def lined(page: np.ndarray, spacing: int, squared: bool, rng: np.random.Generator, degrees: float = 0.0,
          thick: int = 3, grey: int = 175) -> np.ndarray:
    """``page`` (dark ink on light) printed over with lines ``thick`` px thick and ``grey``, every ``spacing``
    px, at a random offset and tilted by ``degrees``: ruled paper, or squared paper with ``squared``. Where
    the ink crosses a line, the darker of the two shows."""
    slope = np.tan(np.radians(degrees))
    ys, xs = np.ogrid[: page.shape[0], : page.shape[1]]
    on_line = (ys + slope * xs + rng.integers(spacing)) % spacing < thick
    if squared:
        on_line = on_line | ((xs - slope * ys + rng.integers(spacing)) % spacing < thick)
    return np.where(on_line, np.minimum(page, grey), page).astype(np.uint8)


def turned(page: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """``page`` (dark ink on light, grain 3) photographed askew: turned by ``degrees`` either way (drawn
    from ``rng``), the whole page kept, the corners it leaves filled with more page."""
    from PIL import Image

    degrees *= rng.choice([-1, 1])
    page_turned = np.asarray(Image.fromarray(page).rotate(degrees, Image.Resampling.BICUBIC, expand=True),
                             np.float32)
    inside = np.asarray(Image.fromarray(np.full(page.shape, 255, np.uint8)).rotate(
        degrees, Image.Resampling.BILINEAR, expand=True), np.float32) / 255
    filled = page_turned + (1 - inside) * rng.normal(235, 3, inside.shape)
    return np.clip(filled, 0, 255).astype(np.uint8)


def lined_photo(page: np.ndarray, squared: bool, degrees: float, rng: np.random.Generator, thick: int = 3
                ) -> np.ndarray:
    """``page`` (dark ink on light, grain 3) written on a larger sheet of ruled paper (``lined``, 48 px, lines
    ``thick`` px thick; squared with ``squared``) and photographed turned by ``degrees`` either way (drawn from
    ``rng``), the photo framed to the writing and 24 px of page around it: the lines run from edge to edge,
    as in a photo of a notebook page."""
    from PIL import Image

    degrees *= rng.choice([-1, 1])
    pad = max(page.shape) // 2
    sheet = np.clip(rng.normal(235, 3, (page.shape[0] + 2 * pad, page.shape[1] + 2 * pad)), 0, 255).astype(np.uint8)
    sheet[pad:-pad, pad:-pad] = page
    sheet = lined(sheet, 48, squared, rng, thick=thick)
    writing = np.zeros(sheet.shape, np.uint8)
    writing[pad:-pad, pad:-pad] = 255
    photo = np.asarray(Image.fromarray(sheet).rotate(degrees, Image.Resampling.BICUBIC, fillcolor=235))
    ys, xs = np.nonzero(np.asarray(Image.fromarray(writing).rotate(degrees)) > 127)
    return photo[ys.min() - 24: ys.max() + 25, xs.min() - 24: xs.max() + 25]


def shadowed(page: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    """``page`` with a shadow (a hand's, a phone's) over part of it: light cut by ``depth`` (a
    fraction) beyond a soft edge about 26 px wide, at a random angle, passing within a quarter page of the
    centre, so that it often falls across the letter."""
    h, w = page.shape
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.ogrid[:h, :w]
    offset = rng.uniform(-0.25, 0.25) * min(h, w)
    across = (xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle) - offset
    shade = 1 - depth / (1 + np.exp(-across / 6))  # 10-90% over about 26 px
    return np.clip(page * shade, 0, 255).astype(np.uint8)


def vignetted(page: np.ndarray, depth: float) -> np.ndarray:
    """``page`` lit brightest in the middle and ``depth`` (a fraction) darker in the corners, as a
    phone's lens and flash leave it."""
    h, w = page.shape
    ys, xs = np.ogrid[:h, :w]
    r2 = ((ys - (h - 1) / 2) / (h / 2)) ** 2 / 2 + ((xs - (w - 1) / 2) / (w / 2)) ** 2 / 2
    return np.clip(page * (1 - depth * r2), 0, 255).astype(np.uint8)


FRAMING_CASES = {  # name: (how a letter becomes an image, file suffix, JPEG quality)
    "scan: black ink on white, PNG": (lambda x, rng: photographed(x, 220, 0, 0, rng), ".png", None),
    "photo: light falling off by 40 levels across the page, grain 4, JPEG": (
        lambda x, rng: photographed(x, 200, 4, 40, rng), ".jpg", 75),
    "faint pencil: ink 40 levels below the page, grain 3, JPEG": (
        lambda x, rng: photographed(x, 40, 3, 0, rng), ".jpg", 75),
    "drawing app: black strokes on a transparent page, PNG": (lambda x, rng: transparent(x), ".png", None),
    "tight crop: the ink touches every edge, grain 4, PNG": (lambda x, rng: cropped(x, 4, rng), ".png", None),
    "ruled paper: grey lines 3 px thick every 48 px, crossing the letter, grain 3, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, False, rng), ".jpg", 75),
    "squared paper: the same lines both ways, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, True, rng), ".jpg", 75),
    "ruled paper askew: the lines tilted by 2 degrees, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, False, rng, 2.0), ".jpg", 75),
    "squared paper askew: tilted by 1.5 degrees, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, True, rng, -1.5), ".jpg", 75),
    "ruled paper further askew: the lines tilted by 6 degrees, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, False, rng, 6.0), ".jpg", 75),
    "squared paper further askew: the lines tilted by 6 degrees, JPEG": (
        lambda x, rng: lined(photographed(x, 200, 3, 0, rng), 48, True, rng, 6.0), ".jpg", 75),
    "photo with a shadow: the light cut by 40% beyond a soft edge at a random angle, grain 3, JPEG": (
        lambda x, rng: shadowed(photographed(x, 200, 3, 0, rng), 0.4, rng), ".jpg", 75),
    "photo with vignetting: the corners 40% darker than the middle, grain 3, JPEG": (
        lambda x, rng: vignetted(photographed(x, 200, 3, 0, rng), 0.4), ".jpg", 75),
}


def reader_model(bench: Bench) -> tuple[Config, Splits, Trainer]:
    """The image-file benchmarks' model: the searched best with the cosine schedule, trained on the
    training writers (12 epochs, 30 in full mode, 1 in a smoke test)."""
    femnist = bench.letters()
    config = load_config(BEST_CONFIG, [f"data.source=npz:{femnist}", "train.schedule=cosine",
                                       f"train.epochs={bench.pick(1, 12, 30)}"])
    splits = load_splits(config.data)
    if bench.smoke:  # one writer's letters, each letter once: every path runs, on few image files
        splits.val = splits.val.subset(np.flatnonzero(splits.val.writers == splits.val.writers[0]))
    return config, splits, trained(config, splits)


def reader_classifier(bench: Bench) -> tuple[Config, Splits, Classifier]:
    """``reader_model``'s model as ``alphabet predict`` reads with it."""
    config, splits, trainer = reader_model(bench)
    return config, splits, Classifier([trainer.scored], list(splits.val.classes), config, trainer.device)


def bench_framing(bench: Bench) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import load_letter_image

    config, splits, trainer = reader_model(bench)
    epochs = config.train.epochs
    labels = torch.from_numpy(splits.val.labels)
    stored = predict_probs(trainer.scored, splits.val, trainer.device)
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
            probs = predict_probs(trainer.scored, torch.from_numpy(np.stack(images)), trainer.device)
            agree = (probs.argmax(1) == as_framed).float().mean().item()
            rows.append(f"| {name} | {summary_metrics(probs, labels)['balanced_accuracy']:.4f} | {agree:.3f} | "
                        f"{ms:.1f} |")
    return ("## Framing: real letters as image files (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {epochs} epochs on the "
            f"training writers, predicts the {len(splits.val):,} validation writers' letters as `alphabet "
            "predict` reads image files: each letter is drawn 4x larger on a 170x150 page (or cropped to "
            "its ink) as the row says, saved, read back and framed (`alphabet/data/emnist_style.py`). "
            "Balanced accuracy; agreement with the model's answers on the letters as stored; milliseconds "
            "to write, read and frame one file.\n\n"
            "| letters as | balanced accuracy | agreement | ms per file |\n|---|---|---|---|\n" + "\n".join(rows))




# --- words: letters written side by side in one image, split and read left to right -------------

def written_word(letters: np.ndarray, gaps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28 px white-on-black letters as dark ink 4x larger, side by side with ``gaps`` pixels between
    their inked boxes (negative: the next letter starts before the last ends), each a little higher
    or lower, on a page with grain."""
    from PIL import Image

    crops = []
    for letter in letters:
        ys, xs = np.nonzero(letter > 25)
        crop = letter[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        crops.append(np.asarray(Image.fromarray(crop).resize((4 * crop.shape[1], 4 * crop.shape[0]),
                                                             Image.Resampling.BICUBIC), np.float32) / 255)
    margin, jitter = 24, 8
    height = max(c.shape[0] for c in crops) + 2 * (margin + jitter)
    width = sum(c.shape[1] for c in crops) + int(gaps.sum()) + 2 * margin
    ink = np.zeros((height, max(width, 2 * margin + 1)), np.float32)
    x = margin
    for crop, gap in zip(crops, [*gaps, 0], strict=True):
        y = (height - crop.shape[0]) // 2 + int(rng.integers(-jitter, jitter + 1))
        region = ink[y: y + crop.shape[0], x: x + crop.shape[1]]
        np.maximum(region, crop, out=region)
        x += crop.shape[1] + int(gap)
    return np.clip(235 - 200 * ink + rng.normal(0, 3, ink.shape), 0, 255).astype(np.uint8)


WORD_CASES = {  # name: the range of gaps between letters' inked boxes, in pixels of the 4x drawing; ruled;
    # degrees the photo is turned by, either way; degrees the handwriting leans to the right by
    "spaced: 12-32 px between letters (3-8 px at the 28 px scale)": (12, 32, False, 0, 0),
    "close: 4-12 px between letters (1-3 px at the 28 px scale)": (4, 12, False, 0, 0),
    "overlapping columns: each letter starts 0-8 px before the last one ends": (-8, 0, False, 0, 0),
    "spaced, on ruled paper: grey lines 3 px thick every 48 px": (12, 32, True, 0, 0),
    "spaced, photographed askew: the word turned by 6 degrees either way": (12, 32, False, 6, 0),
    "spaced, on ruled paper photographed askew: turned by 6 degrees, the lines running edge to edge":
        (12, 32, True, 6, 0),
    "spaced, written slanted: every stroke leaning 20 degrees to the right": (12, 32, False, 0, 20),
    "spaced, written slanted: leaning 30 degrees to the right": (12, 32, False, 0, 30),
}


def slanted(page: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """``page`` (dark ink on light, grain 3) as if written leaning ``degrees`` to the right: sheared about
    its middle row, widened with more page to keep all of it."""
    from PIL import Image

    h, _ = page.shape
    lean = np.tan(np.radians(degrees))
    pad = np.clip(rng.normal(235, 3, (h, int(np.ceil(lean * h / 2)) + 1)), 0, 255).astype(np.uint8)
    wide = np.hstack([pad, page, pad[:, ::-1]])
    # PIL maps each output pixel (x, y) to the input's (x + lean (y - h / 2), y): tops lean right.
    out = Image.fromarray(wide).transform(wide.shape[::-1], Image.Transform.AFFINE, (1, lean, -lean * h / 2, 0, 1, 0),
                                          resample=Image.Resampling.BICUBIC, fillcolor=235)
    return np.asarray(out)


def validation_words(letters: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The validation letters in a fixed shuffled order, and that order cut into words of 3 to 6 letters:
    the same words for the "words" and "text" benchmarks."""
    order = np.random.default_rng(0).permutation(letters)
    cuts = np.cumsum(np.random.default_rng(1).integers(3, 7, size=letters))
    return order, np.split(order, cuts[cuts < letters])


def bench_words(bench: Bench) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import read_image
    from alphabet.predict import predict_words

    config, splits, classifier = reader_classifier(bench)
    epochs = config.train.epochs
    order, words = validation_words(len(splits.val))
    stored = classifier.predict_probs(splits.val).argmax(1).numpy()
    truth = splits.val.labels
    rows = [f"| the letters as stored, one by one (28 px, the model's input) | | "
            f"{(stored == truth).mean():.4f} | {np.mean([(stored[w] == truth[w]).all() for w in words]):.3f} | |"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (low, high, ruled, tilt, slant) in WORD_CASES.items():
            rng = np.random.default_rng(2)
            split_right, letters_right, words_right, spent = 0, 0, 0, 0.0
            for k, word in enumerate(words):
                path = Path(tmp) / f"{k}.jpg"
                image = written_word(splits.val.images[word], rng.integers(low, high + 1, len(word) - 1), rng)
                if ruled and tilt:
                    image = lined_photo(image, False, tilt, rng)
                elif ruled:
                    image = lined(image, 48, False, rng)
                elif tilt:
                    image = turned(image, tilt, rng)
                elif slant:
                    image = slanted(image, slant, rng)
                Image.fromarray(image).save(path, quality=90)
                tick = time.perf_counter()
                (found,) = predict_words(classifier, [np.asarray(read_image(path))], top_k=1)
                spent += time.perf_counter() - tick
                if len(found) != len(word):
                    continue
                split_right += 1
                right = [top[0][0] == splits.val.classes[label] for (_, top), label in zip(found, truth[word],
                                                                                           strict=True)]
                letters_right += sum(right)
                words_right += all(right)
            rows.append(f"| {name} | {split_right / len(words):.3f} | {letters_right / len(order):.4f} | "
                        f"{words_right / len(words):.3f} | {spent / len(words) * 1000:.1f} |")
    return ("## Words: letters side by side in one image (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {epochs} epochs on the "
            f"training writers, reads the {len(splits.val):,} validation writers' letters written as "
            f"{len(words)} words of 3 to 6 letters, as `alphabet predict --word` reads them "
            "(`alphabet.predict.predict_words`): each letter drawn 4x larger, dark ink on a page with grain, "
            "shifted up or down by up to 8 px, saved as JPEG, read back, split (`alphabet/data/segment.py`) "
            "and classified. Columns: words split into the right number of letters; letters read right, of "
            "all letters (a word split wrongly counts all its letters as wrong); words read right; "
            "milliseconds to read, split and classify one word.\n\n"
            "| letters | split right | letters read right | words read right | ms per word |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- text: rows of words on one page, parted into lines and words, and read -------------------------

TEXT_CASES = {  # name: gaps between letters of a word, then between words, in pixels of the 4x drawing; paper (ruled or
    # squared, "fine" with lines 1 px thick); degrees the photo is turned by, either way
    "letters 12-32 px apart, words 64-112 px": ((12, 32), (64, 112), False, 0),
    "letters 4-12 px apart, words 64-112 px": ((4, 12), (64, 112), False, 0),
    "words closer: letters 12-32 px apart, words 40-64 px": ((12, 32), (40, 64), False, 0),
    "letters 12-32 px apart, words 64-112 px, on ruled paper: grey lines 3 px thick every 48 px":
        ((12, 32), (64, 112), "ruled", 0),
    "the same on squared paper: the lines both ways": ((12, 32), (64, 112), "squared", 0),
    "letters 12-32 px apart, words 64-112 px, photographed askew: the page turned by 4 degrees either way":
        ((12, 32), (64, 112), False, 4),
    "the same turned by 8 degrees": ((12, 32), (64, 112), False, 8),
    "on ruled paper photographed askew: turned by 6 degrees, the lines running edge to edge":
        ((12, 32), (64, 112), "ruled", 6),
    "on squared paper photographed askew: turned by 6 degrees, the lines running edge to edge":
        ((12, 32), (64, 112), "squared", 6),
    "on fine ruled paper photographed askew: lines 1 px thick, turned by 2 degrees":
        ((12, 32), (64, 112), "fine ruled", 2),
    "on fine squared paper photographed askew: lines 1 px thick, turned by 6 degrees":
        ((12, 32), (64, 112), "fine squared", 6),
}


def written_note(lines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``written_word`` images stacked as the lines of one page, the narrower ones padded with page."""
    width = max(line.shape[1] for line in lines)
    padded = [np.hstack([line, np.clip(rng.normal(235, 3, (line.shape[0], width - line.shape[1])), 0, 255)
                         .astype(np.uint8)]) for line in lines]
    return np.vstack(padded)


def bench_text(bench: Bench) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import read_image
    from alphabet.predict import predict_text

    config, splits, classifier = reader_classifier(bench)
    classes, truth = splits.val.classes, splits.val.labels
    # The same 309 words as "words", laid out as notes of 2 to 4 lines of 1 to 3 words.
    order, words = validation_words(len(splits.val))
    layout = np.random.default_rng(3)
    notes, k = [], 0
    while k < len(words):
        note = []
        for _ in range(layout.integers(2, 5)):
            note.append(words[k: k + layout.integers(1, 4)])
            k += len(note[-1])
        notes.append([line for line in note if line])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ((low, high), (word_low, word_high), paper, tilt) in TEXT_CASES.items():
            rng = np.random.default_rng(2)
            parted, letters_right, words_right, spent = 0, 0, 0, 0.0
            for n, note in enumerate(notes):
                lines = []
                for line in note:
                    gaps = np.concatenate([np.append(rng.integers(low, high + 1, len(word) - 1),
                                                     rng.integers(word_low, word_high + 1)) for word in line])[:-1]
                    lines.append(written_word(splits.val.images[np.concatenate(line)], gaps, rng))
                path = Path(tmp) / f"{n}.jpg"
                page = written_note(lines, rng)
                if paper and tilt:
                    page = lined_photo(page, paper.endswith("squared"), tilt, rng, 1 if paper.startswith("fine") else 3)
                elif paper:
                    page = lined(page, 48, paper == "squared", rng)
                elif tilt:
                    page = turned(page, tilt, rng)
                Image.fromarray(page).save(path, quality=90)
                tick = time.perf_counter()
                (found,) = predict_text(classifier, [np.asarray(read_image(path))], top_k=1)
                spent += time.perf_counter() - tick
                if [[len(w) for w in line] for line in found] != [[len(w) for w in line] for line in note]:
                    continue
                parted += 1
                for found_line, line in zip(found, note, strict=True):
                    for found_word, word in zip(found_line, line, strict=True):
                        right = [top[0][0] == classes[label] for (_, top), label in zip(found_word, truth[word],
                                                                                         strict=True)]
                        letters_right += sum(right)
                        words_right += all(right)
            rows.append(f"| {name} | {parted / len(notes):.3f} | {letters_right / len(order):.4f} | "
                        f"{words_right / len(words):.3f} | {spent / len(notes) * 1000:.1f} |")
    lines_total = sum(len(note) for note in notes)
    return ("## Text: lines of words on one page (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {config.train.epochs} epochs on "
            f"the training writers, reads the {len(splits.val):,} validation writers' letters as the \"words\" "
            f"benchmark writes them (4x, dark ink on a page with grain, each letter shifted up or down by up to "
            f"8 px, JPEG), its {len(words)} words laid out as {len(notes)} notes of 2 to 4 lines "
            f"({lines_total} lines) of 1 to 3 words, as `alphabet predict --text` reads them "
            "(`alphabet.predict.predict_text`), with at least 48 px of page between lines. "
            "Columns: notes parted into the right lines, words and letters; letters read right, of all "
            "letters (a note parted wrongly counts all its letters as wrong); words read right, of all words; "
            "milliseconds to read, part and classify one note.\n\n"
            "| gaps | notes parted right | letters read right | words read right | ms per note |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- lexicon: English words read letter by letter, then as the likeliest word of a word list ----------

def english_words(count: int) -> dict[str, float]:
    """The ``count`` commonest English words (wordfreq's list) of letters a-z only, with their frequencies."""
    try:
        from wordfreq import top_n_list, word_frequency
    except ImportError:
        raise Skipped("needs English word frequencies: pip install wordfreq==3.1.1 (for this benchmark only)") from None
    return {w: word_frequency(w, "en") for w in top_n_list("en", count) if w.isascii() and w.isalpha()
            and w.islower()}


LEXICON_WORDS = 300
LEXICON_CASES = {  # name: the range of gaps between letters' inked boxes, in pixels of the 4x drawing
    "spaced": (12, 32),
    "touching": (-8, 0),  # as the "words" benchmark's overlapping columns
}
LEXICON_TOUCHING = "47,973 words, with their frequencies as counts"  # the one list the touching words are read in


def lexicon_row(targets: list[str], name: str, words: list[str], sureness: np.ndarray | None,
                seconds: float | None) -> str:
    """A row of the lexicon table: words and letters read right, words at p >= 0.9, time to read."""
    letters_right = sum(sum(a == b for a, b in zip(w, t, strict=True)) for w, t in zip(words, targets, strict=True)
                        if len(w) == len(t))
    right = np.array([w == t for w, t in zip(words, targets, strict=True)])
    sure = "|"
    if sureness is not None:  # a reader never that sure (a toy model, say) has none to be right
        kept = sureness >= 0.9
        sure = f"{kept.mean():.3f}, " + (f"{right[kept].mean():.3f} of them right |" if kept.any() else "none |")
    return (f"| {name} | {right.mean():.3f} | {letters_right / sum(map(len, targets)):.4f} | {sure} "
            + (f"{seconds * 1000:.2f} |" if seconds is not None else "|"))


def bench_lexicon(bench: Bench) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import read_image
    from alphabet.lexicon import read_lexicon
    from alphabet.predict import predict_listed_words, predict_words, word_of

    frequency = english_words(50_000)  # first: without it there is nothing to train for
    config, splits, classifier = reader_classifier(bench)
    classes = list(splits.val.classes)
    count = bench.pick(12, LEXICON_WORDS, LEXICON_WORDS)
    # English words of 3 to 7 letters, drawn as often as English uses them (no word twice); each letter
    # one of the validation writers' letters of that class, at random, so a word mixes writers.
    rng = np.random.default_rng(4)
    pool = [w for w in frequency if 3 <= len(w) <= 7]
    weights = np.array([frequency[w] for w in pool])
    targets = [pool[i] for i in rng.choice(len(pool), count, replace=False, p=weights / weights.sum())]
    by_class = {c: np.flatnonzero(splits.val.labels == k) for k, c in enumerate(classes)}
    commonest = sorted(frequency, key=frequency.get, reverse=True)
    lists = {f"{len(frequency):,} words, without counts": (commonest, False),
             f"{len(frequency):,} words, with their frequencies as counts": (commonest, True),
             "the 5,000 commonest of them, with their frequencies": (commonest[:5000], True)}
    rows, split_right, chosen = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        lexicons = {}
        for name, (words, counts) in lists.items():
            path = Path(tmp) / f"{len(lexicons)}.txt"
            path.write_text("".join(f"{w} {frequency[w]:.4g}\n" if counts else f"{w}\n" for w in words))
            lexicons[name] = read_lexicon(path, classes)
        for case, (low, high) in LEXICON_CASES.items():
            # The spaced words draw their letters; the touching ones are the same letters, drawn closer.
            gaps_rng = rng if case == "spaced" else np.random.default_rng(5)
            images = []
            for k, target in enumerate(targets):
                if case == "spaced":
                    chosen.append(np.array([rng.choice(by_class[c]) for c in target]))
                path = Path(tmp) / f"{k}.jpg"
                image = written_word(splits.val.images[chosen[k]], gaps_rng.integers(low, high + 1, len(target) - 1),
                                     gaps_rng)
                Image.fromarray(image).save(path, quality=90)
                images.append(np.asarray(read_image(path)))
            tick = time.perf_counter()
            read = [predict_words(classifier, [image], top_k=1)[0] for image in images]
            seconds = (time.perf_counter() - tick) / len(images)
            split_right[case] = sum(len(word) == len(t) for word, t in zip(read, targets, strict=True))
            rows.append(lexicon_row(targets, f"{case}: letters alone (the top letter of each)",
                                    [word_of(word) for word in read], None, seconds))
            for name, lexicon in lexicons.items():
                if case != "spaced" and name != LEXICON_TOUCHING:
                    continue
                tick = time.perf_counter()
                listed = [predict_listed_words(classifier, [image], lexicon, top_k=1)[0] for image in images]
                seconds = (time.perf_counter() - tick) / len(images)
                rows.append(lexicon_row(targets, f"{case}: the likeliest word of {name}",
                                        [word_of(word, ranked) for word, ranked in listed],
                                        np.array([ranked[0][1] if ranked else 0.0 for _, ranked in listed]),
                                        seconds))
    in_5000 = sum(t in set(commonest[:5000]) for t in targets)
    return ("## Lexicon: English words read in a word list (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {config.train.epochs} epochs on "
            f"the training writers, reads {count} English words of 3 to 7 letters, drawn from wordfreq's "
            f"{len(frequency):,} commonest English words of a-z as often as English uses them, each letter one of "
            f"the {len(splits.val):,} validation writers' letters of that class at random (so a word mixes "
            "writers), written as the \"words\" benchmark writes them (4x, JPEG), spaced (12-32 px apart) and "
            "touching (each letter starting 0-8 px before the last one ends, as that benchmark's overlapping "
            "columns), and read as `alphabet predict --word [--lexicon FILE]` reads them "
            "(`alphabet.predict.predict_words`, `predict_listed_words`). "
            f"The word lists are files of wordfreq's words, with or without their frequencies as counts; "
            f"{in_5000} of the {count} words are among the 5,000 commonest, and the others cannot be read "
            f"right with that list. Of the {count} words, {split_right['spaced']} spaced and "
            f"{split_right['touching']} touching were split into the right number of letters. "
            "Columns: words read right; letters read right, of all letters (a word of the wrong length counts "
            "all its letters as wrong); the share of words whose probability in the list is at least 0.9 "
            "(as `--accept 0.9` would accept them), and how many of those are right; milliseconds to read one "
            "word (split, classify and, in a list, rank).\n\n"
            "| reading | words read right | letters read right | words at p >= 0.9 | ms to read a word |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- lexicon-text: lines of English words whose spaces the gaps alone cannot tell --------------------

LINES = 150
COMMON = 5_000
LINE_CASES = {  # name: gaps between letters' inked boxes, then between words, in pixels of the 4x drawing
    "words 64-112 px apart": ((12, 32), (64, 112)),
    "words closer: 40-64 px apart": ((12, 32), (40, 64)),
    # Closer than a letter's gaps may be: only the list can tell a space here.
    "words closer still: 24-40 px apart": ((12, 32), (24, 40)),
}


def bench_lexicon_text(bench: Bench) -> str:
    from PIL import Image

    from alphabet.data.emnist_style import read_image
    from alphabet.lexicon import Lexicon, read_lexicon
    from alphabet.predict import predict_listed_text, predict_text, text_of

    frequency = english_words(50_000)  # first: without it there is nothing to train for
    config, splits, classifier = reader_classifier(bench)
    classes = list(splits.val.classes)
    count = bench.pick(6, LINES, LINES)
    # Lines of 2 to 4 English words of any length, each drawn as often as English uses it (a word may
    # recur), each letter one of the validation writers' letters of that class at random.
    rng = np.random.default_rng(6)
    pool = list(frequency)
    weights = np.array([frequency[w] for w in pool])
    lines = [[pool[i] for i in rng.choice(len(pool), rng.integers(2, 5), p=weights / weights.sum())]
             for _ in range(count)]
    by_class = {c: np.flatnonzero(splits.val.labels == k) for k, c in enumerate(classes)}
    chosen = [[np.array([rng.choice(by_class[c]) for c in word]) for word in line] for line in lines]
    targets = [" ".join(line) for line in lines]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ranked = sorted(frequency, key=frequency.get, reverse=True)

        def word_list(name: str, words: list[str]) -> Lexicon:
            (Path(tmp) / name).write_text("".join(f"{w} {frequency[w]:.4g}\n" for w in words))
            return read_lexicon(Path(tmp) / name, classes)

        lexicon = word_list("words.txt", ranked)
        # A shorter list lacks some of the words: the cost of a word the list does not hold.
        common = word_list("common.txt", ranked[:COMMON])
        held = set(ranked[:COMMON])
        unlisted = sum(any(w not in held for w in line) for line in lines)
        for case, ((low, high), (word_low, word_high)) in LINE_CASES.items():
            gaps_rng = np.random.default_rng(7)
            images = []
            for k, line in enumerate(chosen):
                gaps = np.concatenate([np.append(gaps_rng.integers(low, high + 1, len(word) - 1),
                                                 gaps_rng.integers(word_low, word_high + 1)) for word in line])[:-1]
                image = written_word(splits.val.images[np.concatenate(line)], gaps, gaps_rng)
                Image.fromarray(image).save(Path(tmp) / f"{k}.jpg", quality=90)
                images.append(np.asarray(read_image(Path(tmp) / f"{k}.jpg")))
            readings = {}
            tick = time.perf_counter()
            alone = [predict_text(classifier, [image], top_k=len(classes))[0] for image in images]
            spent = time.perf_counter() - tick
            readings["letters alone, words parted by the gap (`--text`)"] = ([text_of(t) for t in alone], spent)
            # The list reads each word the gap parted: each word's letters (all their probabilities) ranked.
            tick = time.perf_counter()
            ranked = [[[lexicon.rank(np.array([[dict(top)[c] for c in classes] for _, top in word]), top_k=1)
                        for word in line] for line in text] for text in alone]
            readings["words parted by the gap, each read in the list"] = (
                [text_of(t, r) for t, r in zip(alone, ranked, strict=True)], spent + time.perf_counter() - tick)
            tick = time.perf_counter()
            listed = [predict_listed_text(classifier, [image], lexicon, top_k=1)[0] for image in images]
            readings["words parted where the gap cannot tell by the list, and read in it (`--text --lexicon`)"] = (
                [text_of(t, r) for t, r in listed], time.perf_counter() - tick)
            tick = time.perf_counter()
            listed = [predict_listed_text(classifier, [image], common, top_k=1)[0] for image in images]
            readings[f"the same in the {COMMON:,} commonest words, which lack some"] = (
                [text_of(t, r) for t, r in listed], time.perf_counter() - tick)
            for name, (texts, seconds) in readings.items():
                parted = [[len(w) for w in t.split(" ")] == [len(w) for w in target.split(" ")]
                          for t, target in zip(texts, targets, strict=True)]
                words_right = sum(sum(a == b for a, b in zip(t.split(" "), target.split(" "), strict=False))
                                  for t, target, ok in zip(texts, targets, parted, strict=True) if ok)
                rows.append(f"| {case}: {name} | {np.mean(parted):.3f} | "
                            f"{np.mean([t == target for t, target in zip(texts, targets, strict=True)]):.3f} | "
                            f"{words_right / sum(map(len, lines)):.3f} | {seconds / len(images) * 1000:.1f} |")
    return ("## Lexicon text: English lines whose spaces the gaps alone cannot tell (femnist lowercase)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}` with the cosine schedule, trained {config.train.epochs} epochs on "
            f"the training writers, reads {count} lines of 2 to 4 English words ({sum(map(len, lines))} words), "
            f"each drawn from wordfreq's {len(frequency):,} commonest English words of a-z as often as English "
            "uses it, each letter one of the validation writers' letters of that class at random, written as "
            "the \"words\" benchmark writes them (4x, JPEG), letters 12-32 px apart and words 64-112 px apart, "
            "as the \"text\" benchmark's first row, or 40-64 px, as its third, or 24-40 px, where some spaces are "
            "narrower than some gaps inside words. Each line is one image, read as "
            f"`alphabet predict --text [--lexicon FILE]` reads it; the list is the {len(frequency):,} words with "
            f"their frequencies as counts, which holds every word, or its {COMMON:,} commonest, which lack a word of "
            f"{unlisted} of the lines (those cannot be read right whole). Columns: lines parted into the right "
            "words; lines read right whole; words read right, of all words (in lines parted right); milliseconds "
            "to read a line.\n\n"
            "| reading | lines parted right | lines read right | words read right | ms per line |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))
