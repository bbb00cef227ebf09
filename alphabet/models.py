"""Letter classifiers, by name. Plain ``nn.Module``s: no training logic lives here.

Every model takes float images in [0, 1] of shape (N, 1, 28, 28) and returns
logits; normalisation is the model's first layer so a checkpoint is self-contained.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from alphabet.config import ModelConfig
from alphabet.errors import UserError

SIDE = 28  # every model's input is SIDE x SIDE
MAX_STAGES = SIDE.bit_length() - 1  # 4: the side halved once more would be 0
# EMNIST pixel statistics; close enough for any white-on-black letter data.
MEAN, STD = 0.17, 0.33

ModelBuilder = Callable[[ModelConfig, int], nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def add(fn: ModelBuilder) -> ModelBuilder:
        MODELS[name] = fn
        return fn
    return add


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MEAN) / STD


def classifier_head(config: ModelConfig, channels: int, side: int, num_classes: int) -> nn.Sequential:
    """The last feature map (channels x side x side) to logits: pooled (``head: avg``) or kept
    whole (``head: flatten``), then a hidden layer with dropout on either side."""
    pool, features = ((nn.AdaptiveAvgPool2d(1), channels) if config.head == "avg"
                      else (nn.Identity(), channels * side * side))
    return nn.Sequential(
        pool,
        nn.Flatten(),
        nn.Dropout(config.dropout),
        nn.Linear(features, config.classifier_width),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(config.classifier_width, num_classes),
    )


class LetterCNN(nn.Module):
    """Stages of same-width convolutions, each stage ending in a 2x2 max-pool."""

    def __init__(self, config: ModelConfig, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalize()]
        channels = 1
        for stage in range(config.stages):
            width = max(1, round(config.width * config.width_growth**stage))
            for _ in range(config.convs_per_stage):
                layers.append(nn.Conv2d(channels, width, config.kernel_size, padding=config.kernel_size // 2,
                                        bias=not config.batch_norm))
                if config.batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = classifier_head(config, channels, SIDE // 2**config.stages, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def norm(width: int, batch_norm: bool) -> nn.Module:
    """Batch norm after a convolution, or nothing (``model.batch_norm: false``)."""
    return nn.BatchNorm2d(width) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    """Two convolutions and a shortcut (He et al., 2016); a 1x1 convolution matches the shortcut
    where the block changes width or side."""

    def __init__(self, channels: int, width: int, stride: int, kernel_size: int, batch_norm: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size, stride, pad, bias=not batch_norm), norm(width, batch_norm),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, kernel_size, 1, pad, bias=not batch_norm), norm(width, batch_norm),
        )
        self.shortcut = (nn.Identity() if stride == 1 and channels == width else
                         nn.Sequential(nn.Conv2d(channels, width, 1, stride, bias=not batch_norm),
                                       norm(width, batch_norm)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class LetterResNet(nn.Module):
    """A stem convolution, then stages of ``convs_per_stage`` residual blocks; every stage after
    the first halves the side with a strided first block (28, 14, 7, 4 for four stages)."""

    def __init__(self, config: ModelConfig, num_classes: int) -> None:
        super().__init__()
        k = config.kernel_size
        layers: list[nn.Module] = [
            Normalize(),
            nn.Conv2d(1, config.width, k, padding=k // 2, bias=not config.batch_norm),
            norm(config.width, config.batch_norm),
            nn.ReLU(inplace=True),
        ]
        channels, side = config.width, SIDE
        for stage in range(config.stages):
            width = max(1, round(config.width * config.width_growth**stage))
            for block in range(config.convs_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(ResidualBlock(channels, width, stride, k, config.batch_norm))
                channels, side = width, (side + 1) // 2 if stride == 2 else side
        self.features = nn.Sequential(*layers)
        self.classifier = classifier_head(config, channels, side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SeedLeNet(nn.Module):
    """The seed project's LeNet-style net, kept as the baseline for benchmarks."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Normalize(),
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FirstLogits(nn.Module):
    """A model trained with auxiliary classes, scored on its first ``n``: the auxiliary logits
    are dropped before any softmax, so probabilities and predictions cover the task's classes."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n = model, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, : self.n]


def check_conv_shape(config: ModelConfig) -> None:
    """Stages and kernel that the convolutional families can build on SIDE x SIDE images."""
    if config.stages > MAX_STAGES:  # each halves the side; compared so, not as 2**stages, which a huge one hangs in
        raise UserError(f"model.stages: expected at most {MAX_STAGES} for {SIDE}x{SIDE} images (arch "
                        f"{config.arch}), got {config.stages}")
    if config.kernel_size % 2 == 0:
        raise UserError(f"model.kernel_size: expected an odd size, got {config.kernel_size}")


@register("cnn")
def build_cnn(config: ModelConfig, num_classes: int) -> nn.Module:
    check_conv_shape(config)
    return LetterCNN(config, num_classes)


@register("resnet")
def build_resnet(config: ModelConfig, num_classes: int) -> nn.Module:
    check_conv_shape(config)
    return LetterResNet(config, num_classes)


@register("lenet")
def build_lenet(config: ModelConfig, num_classes: int) -> nn.Module:
    return SeedLeNet(num_classes)


def build_model(config: ModelConfig, num_classes: int) -> nn.Module:
    if config.arch not in MODELS:
        raise UserError(f"model.arch: expected one of {', '.join(MODELS)}, got {config.arch!r}")
    return MODELS[config.arch](config, num_classes)


def check_model(config: ModelConfig, num_classes: int = 2) -> nn.Module:
    """Raises the UserError that building ``config`` would, without allocating its weights: the
    model is built on the meta device, shapes only. A search checks its space this way before any
    trial starts, and the weights a run starts from (``alphabet.finetune``) are checked against it."""
    try:
        with torch.device("meta"):
            return build_model(config, num_classes)
    except (RuntimeError, TypeError, OverflowError):  # a layer past what torch can size, even without weights
        raise UserError(f"model: too large for torch to build; expected a smaller model.width ({config.width}), "
                        f"model.width_growth ({config.width_growth:g}) or model.classifier_width "
                        f"({config.classifier_width})") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
