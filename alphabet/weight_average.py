"""An exponential moving average of a model's weights and batch-norm statistics.

Kept on the training device and updated after every optimizer step. Two things set it
apart from ``torch.optim.swa_utils.AveragedModel`` with an EMA function: the update
count lives on the host, so a step never waits on the GPU to read it, and the first
steps are averaged plainly (decay (n-1)/n at the n-th update) until the moving average
takes over, so the random initial weights never outweigh what training has learned.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                               list[tuple[torch.Tensor, torch.Tensor]]]:
        """Float tensors to average, as (averaged, current) lists, and the integer buffers to copy."""
        averaged, current, counters = [], [], []
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [*model.parameters(), *model.buffers()]
        for a, b in zip(mine, theirs, strict=True):
            if a.is_floating_point():
                averaged.append(a)
                current.append(b.detach())
            else:
                counters.append((a, b))
        return averaged, current, counters

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (self.updates - 1) / self.updates)  # 0 on the first: a copy
        averaged, current, counters = self._pairs(model)
        torch._foreach_lerp_(averaged, current, 1 - decay)
        for a, b in counters:  # e.g. batch norm's num_batches_tracked
            a.copy_(b)

    def load(self, weights: dict, updates: int) -> None:
        """Continue an average saved as its ``module.state_dict()`` and its update count."""
        self.module.load_state_dict(weights)
        self.updates = updates
