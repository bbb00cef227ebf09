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
    """The average of ``model``: ``update()`` after each of its optimizer steps."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        # Paired once: loading a state dict copies into these tensors, so they stay the model's.
        self._averaged, self._current, self._counters = [], [], []
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [*model.parameters(), *model.buffers()]
        for a, b in zip(mine, theirs, strict=True):
            if a.is_floating_point():
                self._averaged.append(a)
                self._current.append(b.detach())
            else:  # e.g. batch norm's num_batches_tracked: copied, not averaged
                self._counters.append((a, b))

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (self.updates - 1) / self.updates)  # 0 on the first: a copy
        torch._foreach_lerp_(self._averaged, self._current, 1 - decay)
        for a, b in self._counters:
            a.copy_(b)

    def load(self, weights: dict, updates: int) -> None:
        """Continue an average saved as its ``module.state_dict()`` and its update count."""
        self.module.load_state_dict(weights)
        self.updates = updates
