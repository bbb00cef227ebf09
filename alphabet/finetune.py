"""Starting a run from another run's weights (``train.init_from``): fine-tuning.

A model trained on many letters (EMNIST, the synthetic generator, a larger archive)
is a better start than random weights for a few hundred letters of your own. Every
tensor whose name and shape match is copied. The rows of the last layer are matched
by class name, so a model of 52 letters starts one of 26, and letters the source never
learnt start fresh; a source trained on case-merged letters (``data.case: merged``, or
EMNIST letters) gives its ``a`` to both ``a`` and ``A``. Any other difference is another architecture,
and is refused with the model settings that differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alphabet.checkpoint import RUN_CHECKPOINT, load_checkpoint
from alphabet.config import Config, DataConfig, ModelConfig, from_dict
from alphabet.errors import UserError
from alphabet.models import check_model

KEY = "train.init_from"
SHAPELESS = {"dropout"}  # model settings that change no tensor's shape


@dataclass
class InitialWeights:
    source: str  # the checkpoint file they were read from
    classes: list[str]  # what each row of the source's last layer stands for (auxiliary classes last)
    merged: bool  # the source's letters were case-merged: its "a" stands for a and A
    model: ModelConfig
    state: dict[str, torch.Tensor]


def load_initial_weights(path: str | Path) -> InitialWeights:
    """The weights of a checkpoint file or of a run directory's last checkpoint."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{KEY}: {path}: not found; expected a checkpoint .pt or a run directory")
    if path.suffix in (".yaml", ".yml"):
        raise UserError(f"{KEY}: {path}: an ensemble or config file; expected one model's checkpoint .pt or "
                        "run directory (of an ensemble, one member's, e.g. seed-0)")
    if path.is_dir():
        if not (path / RUN_CHECKPOINT).is_file():
            raise UserError(f"{KEY}: {path}: no {RUN_CHECKPOINT} in this directory; expected a checkpoint .pt or "
                            "a run directory (of an ensemble, one member's, e.g. seed-0)")
        path = path / RUN_CHECKPOINT
    try:
        payload = load_checkpoint(path)
        config = from_dict(payload["config"], f"{path}: config")
    except UserError as e:
        raise UserError(f"{KEY}: {e}") from None
    trainer = payload["trainer"]
    return InitialWeights(str(path), [*payload["classes"], *trainer.get("auxiliary_classes", [])],
                          merged_letters(config.data), config.model, trainer["model"])


def merged_letters(data: DataConfig) -> bool:
    """Whether a run's classes stand for both cases: EMNIST letters are merged at the source."""
    return data.case == "merged" or data.source == "emnist-letters"


def output_layer(model: nn.Module) -> str:
    """The name of the model's last linear layer, whose rows are its classes."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]


def check_fits(model: nn.Module, initial: InitialWeights, config: ModelConfig) -> None:
    """Refuse, in one line, weights of another architecture than ``model`` (which may be on the meta device)."""
    out = output_layer(model) + "."
    target = model.state_dict()
    for key in sorted(set(target) | set(initial.state)):
        mine, theirs = target.get(key), initial.state.get(key)
        same = mine is not None and theirs is not None and (
            mine.shape[1:] == theirs.shape[1:] if key.startswith(out) else mine.shape == theirs.shape)
        if not same:
            differ = [f"model.{k} {getattr(initial.model, k)!r} there, {getattr(config, k)!r} here"
                      for k in vars(config) if k not in SHAPELESS and getattr(initial.model, k) != getattr(config, k)]
            raise UserError(f"{KEY}: {initial.source}: its model does not fit this run's ("
                            f"{'; '.join(differ) or 'tensor ' + key}); expected the same model settings")


def check_fits_config(config: ModelConfig, initial: InitialWeights) -> None:
    """``check_fits`` for the model ``config`` builds, built on the meta device (nothing allocated)."""
    check_fits(check_model(config), initial, config)


def apply_initial_weights(model: nn.Module, initial: InitialWeights, classes: list[str],
                          config: ModelConfig) -> str:
    """Copy ``initial`` into ``model``, whose outputs are ``classes``; returns what was copied, to log."""
    check_fits(model, initial, config)
    rows = {name: i for i, name in enumerate(initial.classes)}
    row_of = {c: rows.get(c.lower() if initial.merged else c) for c in classes}
    out = output_layer(model) + "."
    with torch.no_grad():  # a state dict's tensors are the model's own, so copying into them sets the model
        for key, tensor in model.state_dict().items():
            source = initial.state[key]
            if not key.startswith(out):
                tensor.copy_(source)
                continue
            for i, c in enumerate(classes):
                if row_of[c] is not None:
                    tensor[i].copy_(source[row_of[c]])
    fresh = "".join(c for c in classes if row_of[c] is None)
    return (f"starting from {initial.source}: its classes give {len(classes) - len(fresh)} of this run's "
            f"{len(classes)}" + (f"; {fresh} start fresh" if fresh else ""))


def initial_weights(config: Config) -> InitialWeights | None:
    """What ``config`` starts from: None for random weights."""
    return load_initial_weights(config.train.init_from) if config.train.init_from else None
