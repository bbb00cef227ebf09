"""The training step: data held on the device, batches augmented there, one epoch at a time.

``Trainer`` owns the model, optimizer, schedule and random generators, and
its ``state_dict`` holds all of them, so a resumed run continues bit for bit.
It knows nothing of files, TensorBoard or Ray: callers decide what to log.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alphabet.augment import augment
from alphabet.config import DEVICE_NAME, DEVICE_NAMES, Config
from alphabet.data.letterset import LetterSet, concat
from alphabet.errors import TrainingDiverged, UserError
from alphabet.finetune import InitialWeights, apply_initial_weights
from alphabet.metrics import confusion_matrix, summary_from_confusion
from alphabet.models import FirstLogits, build_model, check_model, count_parameters
from alphabet.tta import PLAIN, View
from alphabet.weight_average import WeightAverage


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not DEVICE_NAME.fullmatch(name):
        raise UserError(f"train.device: expected {DEVICE_NAMES}, got {name!r}")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise UserError(f"train.device: {name!r} asked for, but no CUDA device is available")
        if (device.index or 0) >= count:
            valid = "cuda or cuda:0" if count == 1 else f"cuda, or cuda:0 to cuda:{count - 1}"
            raise UserError(f"train.device: {name!r} asked for, but this machine has {count} CUDA "
                            f"device{'s' if count > 1 else ''}; expected {valid}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"train.device: {name!r} asked for, but no MPS device is available (Apple silicon, macOS 12.3 "
                        "or later, and a torch built with MPS)")
    return device


# fp32 weights, their gradients, AdamW's two moments and a weight average: what training holds per parameter
BYTES_PER_PARAMETER = 5 * 4


def memory_of(device: torch.device) -> int | None:
    """Bytes of memory ``device`` has in all, or None where that cannot be read (MPS, odd systems)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # Windows has no sysconf
            return None
    return None


def check_fits_memory(config: Config, num_classes: int, device: torch.device) -> None:
    """Refuse a model whose weights and optimizer state alone outgrow ``device``'s memory, counted on the
    meta device (no weights made): the allocation would fail, or the kernel end the process, later."""
    m, have = config.model, memory_of(device)
    parameters = count_parameters(check_model(m, num_classes))
    need = parameters * BYTES_PER_PARAMETER
    if have is not None and need > have:
        raise UserError(f"model: {parameters:,} parameters need about {need / 2**30:,.0f} GiB to train, over the "
                        f"{have / 2**30:,.0f} GiB of {device}; expected a smaller model.width ({m.width}), "
                        f"model.width_growth ({m.width_growth:g}) or model.classifier_width ({m.classifier_width})")


@contextlib.contextmanager
def out_of_memory_named(config: Config, device: torch.device) -> Iterator[None]:
    """A batch or model that does not fit ``device`` ends in one line naming the settings that size
    them, not in the allocator's traceback. (The kernel may end a process that overcommits first.)"""
    try:
        yield
    except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) is one too
        text = str(e)
        if not isinstance(e, torch.OutOfMemoryError) and "can't allocate memory" not in text \
                and "out of memory" not in text:
            raise
        m, t = config.model, config.train
        raise UserError(f"train.batch_size: out of memory on {device} at batch {t.batch_size} with model.width "
                        f"{m.width}, model.stages {m.stages}; expected a smaller train.batch_size or model") from None


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up here: on CUDA, and on CPUs with AVX512-BF16 or AMX
    (about 2x a default-CNN epoch on 2 EPYC cores, docs/BENCHMARKS.md). Elsewhere it is emulated, slower."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]."""
    return images.unsqueeze(1).float().div_(255)


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` of an array that is read, never written. Arrays from Ray's object store
    are read-only; sharing them saves a copy per trial, and torch's warning about them is no news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array)


class DeviceData:
    """A whole LetterSet as tensors on the training device."""

    def __init__(self, data: LetterSet, device: torch.device) -> None:
        self.images = shared_tensor(data.images).to(device)
        self.labels = shared_tensor(data.labels).to(device)

    def __len__(self) -> int:
        return len(self.labels)


class Progress:
    """A one-line progress bar, only when stderr is a terminal."""

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self.enabled, self.total, self.title, self.start = enabled, total, title, time.time()

    def update(self, done: int, loss: float) -> None:
        if self.enabled and (done % 10 == 0 or done == self.total):
            filled = int(30 * done / self.total)
            rate = done / max(time.time() - self.start, 1e-9)
            sys.stderr.write(f"\r{self.title} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                             f"loss {loss:.3f} {rate:.1f} it/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 90 + "\r")
            sys.stderr.flush()


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    t = config.train
    # No weight decay on biases and norm parameters: it only fights the normalisation.
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    # One fused kernel per step on CUDA instead of one per parameter group and op.
    fused = all(p.is_cuda for p in decay + rest) or None
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum > 0, fused=fused)
    return torch.optim.AdamW(groups, lr=t.lr, fused=fused)


def build_schedule(optimizer: torch.optim.Optimizer, config: Config,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    t = config.train
    total = t.epochs * steps_per_epoch
    if t.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=total, pct_start=0.25)
    warmup = int(t.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if t.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """``initial`` (``alphabet.finetune.initial_weights(config)``) starts the model from another
    run's weights instead of random ones; ``started_from`` then says what it copied."""

    def __init__(self, config: Config, train: LetterSet, device: torch.device | None = None,
                 auxiliary: LetterSet | None = None, initial: InitialWeights | None = None) -> None:
        self.config = config
        self.classes = list(train.classes)  # what it is scored on and predicts
        if auxiliary is not None:  # trained on as well, after the task's classes, never predicted
            trained = self.classes + [c for c in auxiliary.classes if c not in self.classes]
            train = concat(train.relabel(trained), auxiliary.relabel(trained))
        self.trained_classes = list(train.classes)
        self.device = device or pick_device(config.train.device)
        check_fits_memory(config, len(self.trained_classes), self.device)
        torch.manual_seed(config.train.seed)
        self.model = build_model(config.model, len(self.trained_classes))
        self.started_from = (apply_initial_weights(self.model, initial, self.trained_classes, config.model)
                             if initial is not None else None)
        self.model = self.model.to(self.device)
        if config.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data = DeviceData(train, self.device)
        t = config.train
        prior = torch.as_tensor(train.counts(), dtype=torch.float32).clamp_min(1)
        self.logit_offset = (t.logit_adjustment * (prior / prior.sum()).log()).to(self.device)
        self.steps_per_epoch = max(1, len(self.data) // t.batch_size)
        self.optimizer = build_optimizer(self.model, config)
        self.schedule = build_schedule(self.optimizer, config, self.steps_per_epoch)
        # Separate generators: data order and augmentation replay exactly on resume.
        self.order_gen = torch.Generator().manual_seed(t.seed)
        self.augment_gen = torch.Generator(device=self.device).manual_seed(t.seed + 1)
        self.epoch = 0  # epochs completed
        self.use_amp = t.amp and bf16_is_native(self.device)
        self.forward = torch.compile(self.model, mode=t.compile_mode) if t.compile else self.model
        # The average, not the last step's weights, is what is scored, saved and predicted with.
        self.ema = WeightAverage(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.kept = self.ema.module if self.ema is not None else self.model  # what checkpoints call "model"
        self.scored = FirstLogits(self.kept, len(self.classes)) if auxiliary is not None else self.kept

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def draw_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as the model sees them in training (augmented), and their labels."""
        idx = index.to(self.device)
        x = augment(to_input(self.data.images[idx]), self.config.augment, self.augment_gen)
        if self.config.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.data.labels[idx]

    def train_epoch(self, progress: bool = False) -> dict[str, float]:
        """One pass over the training data; returns loss and metrics on the augmented batches."""
        t = self.config.train
        self.model.train()
        # Moved once per epoch: a blocking copy per step would stall the GPU queue every step.
        order = torch.randperm(len(self.data), generator=self.order_gen).to(self.device)
        n_classes = len(self.trained_classes)
        cm = torch.zeros(n_classes, n_classes, dtype=torch.long, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        bar = Progress(progress, self.steps_per_epoch, f"epoch {self.epoch + 1}/{t.epochs}")
        for step in range(self.steps_per_epoch):
            x, y = self.draw_batch(order[step * t.batch_size:(step + 1) * t.batch_size])
            with self.autocast():
                logits = self.forward(x)
                loss = F.cross_entropy(logits.float() + self.logit_offset, y,
                                       label_smoothing=t.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            if self.ema is not None:
                self.ema.update()
            loss_sum += loss.detach() * len(y)
            cm += confusion_matrix(y, logits.detach().argmax(1), n_classes)
            if bar.enabled:
                bar.update(step + 1, loss.item())
        bar.close()
        self.epoch += 1
        seen = self.steps_per_epoch * t.batch_size if len(self.data) >= t.batch_size else len(self.data)
        loss = float(loss_sum) / seen  # the epoch's one host sync, so checking it costs nothing
        if not math.isfinite(loss):
            # A decay of 1 or more (0.0005 by default) can diverge at any lr: each step scales the weights by
            # 1 - lr * weight_decay.
            decay = f" or train.weight_decay than {t.weight_decay:g}" if t.weight_decay >= 1 else ""
            raise TrainingDiverged(f"training diverged in epoch {self.epoch}: the mean loss is {loss}; "
                                   f"expected a finite loss (a lower train.lr than {t.lr:g}{decay} usually trains)")
        return {"loss": loss, **summary_from_confusion(cm.cpu())}

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @torch.no_grad()
    def predict(self, data: LetterSet | torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Softmax probabilities (N, C) on the CPU, for a set or a uint8 image tensor.

        In fp32 even where training runs in bf16: a run's reported scores are then exactly what
        ``alphabet evaluate`` gives for its checkpoint, on any device."""
        return predict_probs(self.scored, data, self.device, batch_size)

    def state_dict(self) -> dict:
        """Everything a resumed run needs. ``model`` holds the weights that are scored (the average,
        with ``train.ema_decay``), so evaluation and export read every checkpoint the same way."""
        state = {
            "epoch": self.epoch,
            "model": self.kept.state_dict(),
            "auxiliary_classes": self.trained_classes[len(self.classes):],
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "order_gen": self.order_gen.get_state(),
            "augment_gen": self.augment_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            state["trained_model"] = self.model.state_dict()
            state["ema_updates"] = self.ema.updates
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.ema is not None:
            self.ema.load(state["model"], state["ema_updates"])
            self.model.load_state_dict(state["trained_model"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.order_gen.set_state(state["order_gen"])
        self.augment_gen.set_state(state["augment_gen"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = state["epoch"]


@torch.no_grad()
def predict_probs(model: nn.Module, data: LetterSet | torch.Tensor, device: torch.device,
                  batch_size: int = 1024, views: Sequence[View] = PLAIN) -> torch.Tensor:
    """Softmax probabilities (N, C) on the CPU: their mean over ``views`` of each image
    (``alphabet.tta.TTA_VIEWS`` for test-time augmentation; by default the image alone)."""
    images = shared_tensor(data.images) if isinstance(data, LetterSet) else data
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size].to(device))
        out.append(torch.stack([model(view.apply(x)).float().softmax(1) for view in views]).mean(0).cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def evaluate_loss(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy of probabilities against integer labels."""
    picked = probs[torch.arange(len(labels)), labels].clamp_min(1e-12)
    return float(-picked.log().mean())
