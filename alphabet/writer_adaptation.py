"""Adapting to a writer: batch norm's statistics re-estimated from one writer's own letters.

A model's batch-norm layers normalise with means and variances measured over all its
training writers. One writer's pen, stroke width and slant shift those statistics; re-
measuring them on that writer's letters (AdaBN, Li et al. 2016) removes the shift before
the letters are classified. It needs no labels and no training, only letters known to come
from one hand: a page's letters, or a test set's writer ids. ``strength`` blends the
training statistics (0) with the writer's own (1).

It is transductive: each letter's answer depends on the writer's other letters, so a figure
scored this way is not the figure of letters read one at a time, and reports say which it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from alphabet.data import LetterSet
from alphabet.engine import predict_probs, to_input
from alphabet.tta import PLAIN, View


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def writer_statistics(model: nn.Module, images: torch.Tensor, device: torch.device
                      ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each batch-norm layer's (mean, variance) over ``images`` (uint8, one writer's), in one batch;
    the model is left as it was."""
    norms = batch_norms(model)
    kept = [(m.running_mean.clone(), m.running_var.clone(), m.momentum, m.num_batches_tracked.clone())
            for m in norms]
    model.eval()  # dropout stays off; only the norms measure the batch
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        m.train()
    try:
        model(to_input(images.to(device)))
        return [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    finally:
        for m, (mean, var, momentum, batches) in zip(norms, kept, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.momentum = momentum
            m.num_batches_tracked.copy_(batches)
        model.eval()


@torch.no_grad()
def predict_probs_per_writer(model: nn.Module, data: LetterSet | torch.Tensor, device: torch.device,
                             writers: np.ndarray | None = None, strength: float = 1.0,
                             views: Sequence[View] = PLAIN) -> torch.Tensor:
    """Softmax probabilities (N, C) as ``alphabet.engine.predict_probs`` gives them, but each writer's
    letters classified with batch-norm statistics blended towards that writer's own. ``writers``
    defaults to the set's writer ids; without any, every letter is taken as one writer's."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: expected a value in [0, 1], got {strength}")
    images = torch.from_numpy(data.images) if isinstance(data, LetterSet) else data
    if writers is None and isinstance(data, LetterSet):
        writers = data.writers
    groups = np.zeros(len(images), dtype=np.int64) if writers is None else np.unique(writers, return_inverse=True)[1]
    norms = batch_norms(model)
    if not norms or strength == 0.0:
        return predict_probs(model, images, device, views=views)
    trained = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    out: torch.Tensor | None = None
    try:
        for group in np.unique(groups):
            index = torch.from_numpy(np.flatnonzero(groups == group))
            own = writer_statistics(model, images[index], device)
            for m, (mean, var), (w_mean, w_var) in zip(norms, trained, own, strict=True):
                m.running_mean.copy_(torch.lerp(mean, w_mean, strength))
                m.running_var.copy_(torch.lerp(var, w_var, strength))
            probs = predict_probs(model, images[index], device, views=views)
            if out is None:
                out = torch.empty(len(images), probs.shape[1])
            out[index] = probs
    finally:
        for m, (mean, var) in zip(norms, trained, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    return out if out is not None else torch.empty(0, 0)
