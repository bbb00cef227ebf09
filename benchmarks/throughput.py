"""Speed: the data path against the seed's, epochs per second at EMNIST-letters size, where a
step's time goes, GPU execution options, and trials sharing one GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alphabet.config import AugmentConfig, Config, load_config
from alphabet.data import LetterSet, load_splits
from alphabet.engine import Trainer
from alphabet.train import evaluate_split
from benchmarks.common import (
    BEST_CONFIG,
    CUDA,
    ROOT,
    Bench,
    Skipped,
    sync,
    tiled,
)

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


def bench_datapath(bench: Bench) -> str:
    # On a GPU our steps cost little and the seed-style ones much, so each side gets its own count.
    ours_steps = bench.pick(3, 200, 600) if CUDA else bench.pick(3, 20, 60)  # 3: the warm-up's steps
    seed_steps = bench.pick(1, 20, 60) if CUDA else bench.pick(1, ours_steps, ours_steps)
    data_sets = [f"data.synthetic_size={bench.pick(520, 8000, 8000)}", "data.val_fraction=0", "augment.elastic=1.0",
                 "augment.erase=0.2", "train.batch_size=128"]
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


def bench_retrain(bench: Bench) -> str:
    images = bench.pick(256, EMNIST_LETTERS // 10, EMNIST_LETTERS)
    config = load_config(None, RETRAIN_SETS + bench.pick(["data.synthetic_size=520"], [], []))
    generated = load_splits(config.data).train
    per_epoch = epoch_seconds(config, tiled(generated, images), epochs=bench.pick(1, 2, 2))
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

def bench_profile(bench: Bench) -> str:
    from torch.profiler import ProfilerActivity, profile, record_function

    images = bench.pick(256, 1280, 5120)  # one epoch: 2, 10 or 40 steps of 128
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


def bench_gpu(bench: Bench) -> str:
    if not CUDA:
        raise Skipped("no GPU here (torch.cuda.is_available() is False)")
    images = bench.pick(2560, EMNIST_LETTERS // 4, EMNIST_LETTERS)
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


def bench_share(bench: Bench) -> str:
    if not CUDA:
        raise Skipped("no GPU here (torch.cuda.is_available() is False)")
    generated = load_splits(load_config(None, RETRAIN_SETS).data).train
    train = tiled(generated, bench.pick(2560, 20_800, 62_400))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp, "trial_data.npz")
        val = generated.subset(np.arange(min(2600, len(generated))))
        np.savez(data_path, train_x=train.images, train_y=train.labels, val_x=val.images, val_y=val.labels,
                 classes=np.array(train.classes))
        # One CPU thread per trial, as Ray gives a trial with cpus_per_trial=1.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        worker = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--share-worker", str(data_path),
                  str(SHARE_EPOCHS)]
        for n in (1, 2, 4, 8):
            t0 = time.time()
            procs = [subprocess.Popen(worker, stdout=subprocess.PIPE, env=env, cwd=ROOT) for _ in range(n)]
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


# --- inference: the library against its exported files, letters per second ----------------------

def _letters_per_second(read, images, seconds: float) -> float:
    """Letters ``read`` scores per second, over at least ``seconds`` after one warm-up call."""
    read(images)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        read(images)
        done += len(images)
    return done / (time.perf_counter() - t0)


def bench_inference(bench: Bench) -> str:
    import importlib.util

    from alphabet.ensemble import Classifier
    from alphabet.export import export_classifier, load_exported
    from alphabet.models import build_model

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise Skipped(f"needs {', '.join(missing)} (requirements.txt's development section)")
    import onnxruntime

    seconds = bench.pick(0.05, 1.0, 3.0)
    config = load_config(BEST_CONFIG)
    classes = [chr(ord("a") + k) for k in range(26)]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 28, 28), dtype=np.uint8)  # speed does not depend on the ink
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same cores as torch
    rows, aoti, compiled, worst = [], bench.pick(False, True, True), {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for members in bench.pick((1,), (1, 5), (1, 5)):
            torch.manual_seed(members)
            classifier = Classifier([build_model(config.model, 26).eval() for _ in range(members)], classes,
                                    config, torch.device("cpu"))
            pt2 = export_classifier(classifier, Path(tmp, f"m{members}.pt2"))
            onnx = export_classifier(classifier, Path(tmp, f"m{members}.onnx"))
            program = load_exported(pt2)[0]
            session = onnxruntime.InferenceSession(str(onnx), options)
            library = "the library (`alphabet predict`'s scoring, eager PyTorch)"
            readers = {library: (lambda x, c=classifier: c.predict_probs(torch.from_numpy(x)), None),
                       "the `.pt2` program (`torch.export.load`)": (lambda x, p=program: p(torch.from_numpy(x)), pt2),
                       "the `.onnx` model in ONNX Runtime":
                       (lambda x, s=session: torch.from_numpy(s.run(None, {"letters": x})[0]), onnx)}
            if aoti:  # a compile takes 15 to 40 s on 2 cores: too long for a smoke test
                from torch._inductor.utils import fresh_cache

                started = time.perf_counter()
                with fresh_cache():  # cold, as a first compile is: no kernels kept from an earlier one
                    package = torch._inductor.aoti_compile_and_package(  # the documented entry point
                        torch.export.load(str(pt2)), package_path=str(Path(tmp, f"m{members}-aoti.pt2")))
                compiled[members] = time.perf_counter() - started
                runner = torch._inductor.aoti_load_package(package)
                readers["the `.pt2` program compiled by AOTInductor (`aoti_load_package`)"] = (
                    lambda x, r=runner: r(torch.from_numpy(x)), Path(package))
            expected = readers[library][0](images)
            for name, (read, file) in readers.items():
                worst[members] = max(worst.get(members, 0.0), float((read(images) - expected).abs().max()))
                speeds = [_letters_per_second(read, images[:batch], seconds) for batch in (1, 256)]
                rows.append(f"| {members} | {name} | {speeds[0]:,.0f} | {speeds[1]:,.0f} | "
                            f"{f'{file.stat().st_size / 2**20:.1f}' if file else ''} |")
    times = ", ".join(f"{s:.0f} s ({_models(m)})" for m, s in compiled.items())
    aoti_note = (" AOTInductor (`torch._inductor.aoti_compile_and_package` on the `.pt2` program, gcc "
                 f"{_gcc_version()}) compiled them in {times}; its package loads from C++ too "
                 "(`AOTIModelPackageLoader`: below)." if compiled else "")
    return ("## Inference: the library against its exported files (`alphabet export`)\n\n"
            f"`{BEST_CONFIG.relative_to(ROOT)}`'s CNN (its weights untrained, which do not change the time) "
            "scoring uint8 letters already framed (28x28), one at a time and 256 at a time, on the CPU; an "
            f"ensemble of 5 is five such models averaged, as a 5-seed retrain's. Each figure is letters per "
            f"second over at least {seconds:g} s after one warm-up call. ONNX Runtime "
            f"{onnxruntime.__version__}, given as many threads as torch. (That the files give the library's "
            "probabilities, to 1e-5, is tested: `tests/test_cli.py`, `test_export_*`; here, on these letters, "
            "they differed from the library's by at most "
            f"{', '.join(f'{worst[m]:.1g} ({_models(m)})' for m in worst)}.)"
            + aoti_note + "\n\n"
            "| models | scored by | letters/s, 1 at a time | letters/s, 256 at a time | file (MiB) |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


def _models(count: int) -> str:
    return f"{count} model{'s' if count > 1 else ''}"


def _gcc_version() -> str:
    try:
        return subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "not found"


# --- reading image files: framing one file at a time against over processes ------------------

def _letter_files(folder: Path, count: int, photo: bool) -> list[Path]:
    """``count`` synthetic letters as dark ink on a grainy page: 170x150 PNG scans, or 2000x1500 JPEG
    photos with the letter 400 px tall in the middle."""
    from PIL import Image

    from alphabet.data.synthetic import generate

    rng = np.random.default_rng(0)
    letters = generate(count, seed=0, classes=[chr(ord("a") + k) for k in range(26)]).images[:count]
    paths = []
    for i, letter in enumerate(letters):
        side, page = (400, (1500, 2000)) if photo else (112, (170, 150))
        ink = np.asarray(Image.fromarray(letter).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
        pixels = rng.normal(230, 3, page).astype(np.float32)
        top, left = (page[0] - side) // 2, (page[1] - side) // 2
        pixels[top:top + side, left:left + side] -= 200 * ink
        paths.append(folder / f"{i:05d}.{'jpg' if photo else 'png'}")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(paths[-1])
    return paths


def bench_files(bench: Bench) -> str:
    from alphabet.data.emnist_style import load_letter_images

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for photo, count in ((False, bench.pick(32, 1024, 4096)), (True, bench.pick(4, 64, 256))):
            folder = Path(tmp, "photos" if photo else "scans")
            folder.mkdir()
            paths = _letter_files(folder, count, photo)
            processes = len(os.sched_getaffinity(0))  # one per core, as processes_for gives many files
            seconds = []
            for n in (1, processes):
                t0 = time.perf_counter()
                load_letter_images(paths, processes=n)
                seconds.append(time.perf_counter() - t0)
            what = "2000x1500 JPEG photos, the letter 400 px" if photo else "170x150 PNG scans"
            rows.append(f"| {count:,} {what} | {count / seconds[0]:,.0f} | {processes} | "
                        f"{count / seconds[1]:,.0f} | {seconds[0] / seconds[1]:.2f}x |")
    return ("## Reading image files: one at a time against over processes\n\n"
            "Synthetic letters written as files (dark ink on a grainy page), framed EMNIST-style as "
            "`folder:` sources, `alphabet data export` and `alphabet predict` frame them "
            "(`alphabet.data.emnist_style.load_letter_images`): in this process alone, and over one "
            "process per core (forked; by default where each has 16 files or more). Files per second, "
            "the processes' start included.\n\n"
            "| files | one process: files/s | processes | over processes: files/s | speed-up |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))


# --- synthetic letters: how fast the default source draws them ----------------------------------

def bench_synthetic(bench: Bench) -> str:
    from alphabet.data.synthetic import generate

    size = bench.pick(520, 10_000, 40_000)
    start = time.perf_counter()
    generate(1)  # the glyph bank, its blur and its pen distances, once a process
    setup = time.perf_counter() - start
    threads, rows = torch.get_num_threads(), []
    try:
        for count in sorted({1, threads}):
            torch.set_num_threads(count)
            start = time.perf_counter()
            generate(size, seed=1)
            rows.append(f"| {count} | {size / (time.perf_counter() - start):,.0f} |")
    finally:
        torch.set_num_threads(threads)
    return ("## Synthetic letters: how fast the default source draws them\n\n"
            f"`data.source: synthetic` drawing {size:,} letters of all 52 classes "
            "(`alphabet.data.synthetic.generate`), by torch's threads, after the first call of the process "
            f"has built the glyph bank ({setup:.1f} s).\n\n"
            "| torch threads | letters/s |\n|---|---|\n" + "\n".join(rows))
