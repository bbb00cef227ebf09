"""Batched augmentation on the training device: stroke width, affine, elastic and random erasing.

Everything is two max-pools, one ``grid_sample`` and a mask per batch, drawn from a
``torch.Generator`` so runs are reproducible and resumable. No PIL, no per-sample
Python loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alphabet.config import AugmentConfig


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def affine_matrices(n: int, rotate: float, shear: float, scale: float, translate: float,
                    gen: torch.Generator, device: torch.device, aspect: float = 0.0) -> torch.Tensor:
    """(n, 2, 3) matrices for ``affine_grid``: output coordinates -> input coordinates."""
    angle = _uniform(n, -rotate, rotate, gen, device) * math.pi / 180
    sh = _uniform(n, -shear, shear, gen, device)
    zoom = _uniform(n, 1 - scale, 1 + scale, gen, device)
    stretch = _uniform(n, 1 - aspect, 1 + aspect, gen, device)
    # Normalised coordinates span 2 units per image side.
    shift = _uniform(2 * n, -2 * translate, 2 * translate, gen, device).view(n, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = 1 / (zoom * stretch), stretch / zoom
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = (-sin + sh * cos) * sy
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = (cos + sh * sin) * sy
    theta[:, :, 2] = shift
    return theta


def elastic_offsets(n: int, size: int, pixels: float, gen: torch.Generator, device: torch.device,
                    coarse: int = 4) -> torch.Tensor:
    """(n, size, size, 2) smooth random displacements of about ``pixels`` pixels."""
    noise = torch.randn(n, 2, coarse, coarse, generator=gen, device=device)
    field = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    return field.permute(0, 2, 3, 1) * (pixels * 2 / size)


def erase(x: torch.Tensor, probability: float, gen: torch.Generator) -> torch.Tensor:
    """Blank one random rectangle (2-20% of the area) in a ``probability`` share of images."""
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, 0.02, 0.2, gen, dev) * h * w
    ratio = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), gen, dev))
    eh = (area * ratio).sqrt().clamp(1, h)
    ew = (area / ratio).sqrt().clamp(1, w)
    top = torch.rand(n, generator=gen, device=dev) * (h - eh)
    left = torch.rand(n, generator=gen, device=dev) * (w - ew)
    on = torch.rand(n, generator=gen, device=dev) < probability
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & on.view(n, 1, 1))
    return x.masked_fill(mask.unsqueeze(1), 0.0)


def restroke(x: torch.Tensor, pixels: float, gen: torch.Generator) -> torch.Tensor:
    """Each image's strokes thickened or thinned by up to ``pixels`` (< 1) of a pixel a side: a blend
    toward its 3x3 dilation or erosion, since writers' pens differ in width more than 28 px can show."""
    n = x.shape[0]
    amount = _uniform(n, -pixels, pixels, gen, x.device).view(n, 1, 1, 1)
    toward = torch.where(amount > 0, F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1))
    return x + amount.abs() * (toward - x)


def warp(x: torch.Tensor, theta: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Resample ``x`` (N, 1, H, W) through affine ``theta`` plus optional elastic offsets."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if offsets is not None:
        grid = grid + offsets
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def is_identity(config: AugmentConfig) -> bool:
    return not any((config.rotate, config.shear, config.scale, config.translate, config.elastic, config.erase,
                    config.stroke))


def augment(x: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Augment a float batch (N, 1, H, W) with values in [0, 1]; zero strengths are off."""
    if is_identity(config):
        return x
    n, size = x.shape[0], x.shape[-1]
    if config.stroke:  # before the warp: the pen first, then how the letter is drawn
        x = restroke(x, config.stroke, gen)
    if config.rotate or config.shear or config.scale or config.translate or config.elastic:
        theta = affine_matrices(n, config.rotate, config.shear, config.scale, config.translate, gen, x.device)
        offsets = elastic_offsets(n, size, config.elastic, gen, x.device) if config.elastic else None
        x = warp(x, theta, offsets)
    if config.erase:
        x = erase(x, config.erase, gen)
    return x
