"""Test-time augmentation: a letter is scored by the mean softmax over a few fixed views of it.

The views are small deterministic versions of what training's augmentation does
(a one-pixel shift each way, 8% smaller and larger, 6 degrees each way), so a model
trained with augmentation sees nothing new; averaging them smooths over where and how
large a writer's strokes happened to land. The set was chosen on validation writers,
never on a test split (docs/BENCHMARKS.md, "Test-time augmentation").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class View:
    dx: float = 0.0  # pixels right
    dy: float = 0.0  # pixels down
    scale: float = 1.0  # > 1 enlarges the letter
    degrees: float = 0.0  # rotation; the set holds both signs

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) as this view shows it; zeros fill what comes into the frame."""
        if self == View():
            return x
        n, _, h, w = x.shape
        a = math.radians(self.degrees)
        cos, sin = math.cos(a) / self.scale, math.sin(a) / self.scale
        # affine_grid maps output to input coordinates, which span 2 units per side.
        theta = torch.tensor([[cos, sin, -2 * self.dx / w], [-sin, cos, -2 * self.dy / h]],
                             device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


PLAIN: tuple[View, ...] = (View(),)  # no test-time augmentation
TTA_VIEWS: tuple[View, ...] = (
    View(),
    View(dx=1), View(dx=-1), View(dy=1), View(dy=-1),
    View(scale=0.92), View(scale=1.08),
    View(degrees=6), View(degrees=-6),
)
