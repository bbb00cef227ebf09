"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors and Python data, so loading it never
unpickles arbitrary objects:
``{"format": 1, "config": {...}, "classes": [...], "trainer": {...}, "extra": {...}}``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from alphabet.config import Config, from_dict, to_dict
from alphabet.errors import UserError
from alphabet.models import FirstLogits, build_model
from alphabet.rundir import replaced_whole

FORMAT = 1
RUN_CHECKPOINT = Path("checkpoints", "last.pt")  # in a run directory: the checkpoint it ended with
# What `alphabet export` writes: letters in, probabilities out, without the config and training state that
# every command reading a checkpoint needs.
EXPORTED_SUFFIXES = {".pt2": "a torch.export program", ".onnx": "an ONNX model"}


def save_checkpoint(path: str | Path, config: Config, classes: list[str], trainer_state: dict,
                    extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": to_dict(config), "classes": list(classes),
               "trainer": trainer_state, "extra": extra or {}}
    with replaced_whole(path) as tmp:  # a kill mid-write leaves the previous checkpoint intact
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, or a one-line UserError for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; expected a checkpoint .pt, an ensemble or a run directory")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError, ValueError) as e:
        if path.suffix in EXPORTED_SUFFIXES:  # `alphabet export`'s output, handed back to alphabet
            raise UserError(f"{path}: {EXPORTED_SUFFIXES[path.suffix]} (alphabet export's, for use outside "
                            "alphabet), which holds no training config; expected an alphabet checkpoint .pt (of "
                            "the run it was exported from, say)") from None
        kind = "unsafe or foreign" if isinstance(e, pickle.UnpicklingError) else "corrupt or truncated"
        raise UserError(f"{path}: {kind} checkpoint; expected a file written by alphabet "
                        f"({type(e).__name__})") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise UserError(f"{path}: not an alphabet checkpoint; expected a dict with key 'format'")
    if payload["format"] != FORMAT:
        raise UserError(f"{path}: key format: expected checkpoint format {FORMAT}, got {payload['format']!r}")
    return payload


def model_from_checkpoint(path: str | Path, device: torch.device | None = None
                          ) -> tuple[nn.Module, list[str], Config]:
    """Rebuild the model a checkpoint was trained with and load its weights."""
    payload = load_checkpoint(path)
    config = from_dict(payload["config"], f"{path}: config")
    classes = payload["classes"]
    try:
        auxiliary = payload["trainer"].get("auxiliary_classes", [])  # absent before auxiliary classes existed
        model = build_model(config.model, len(classes) + len(auxiliary))
        model.load_state_dict(payload["trainer"]["model"])
    except (RuntimeError, KeyError, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise UserError(f"{path}: key trainer.model: weights do not fit the architecture in its config "
                        f"({first})") from None
    if auxiliary:
        model = FirstLogits(model, len(classes))
    return model.to(device or "cpu").eval(), classes, config
