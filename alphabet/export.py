"""A trained classifier as one self-contained file: a ``torch.export`` program (``.pt2``).

The program takes letters framed as EMNIST's are (uint8, (N, 28, 28), white ink on black, as
``alphabet.predict.frame`` makes them from any image) and gives each its letters' probabilities,
(N, C); an ensemble's are the mean of its members', as ``predict`` gives them (with a calibrated
classifier's temperature). The letters, in the probabilities' order, travel in the file. PyTorch
alone loads it, without this package:

    extra = {"classes.json": ""}
    program = torch.export.load("letters.pt2", extra_files=extra)
    probabilities = program.module()(images)
    letters = json.loads(extra["classes.json"])

It is also the form PyTorch's deployment compilers take (AOTInductor for servers, ExecuTorch for phones;
neither is tried here).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from alphabet.engine import to_input
from alphabet.ensemble import Classifier, with_temperature

CLASSES_FILE = "classes.json"


class Probabilities(nn.Module):
    """uint8 letters (N, 28, 28) -> the mean of the models' softmax probabilities (N, C), with the
    classifier's temperature applied as ``predict`` applies it."""

    def __init__(self, models: list[nn.Module], temperature: float = 1.0) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        self.temperature = temperature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_input(images)
        return with_temperature(torch.stack([model(x).softmax(-1) for model in self.models]).mean(0),
                                self.temperature)


def export_classifier(classifier: Classifier, out: Path) -> Path:
    """Write ``classifier`` (its models on the CPU, in fp32) to ``out`` as a program of any batch size."""
    module = Probabilities([model.float().cpu().eval() for model in classifier.models],
                           classifier.temperature).eval()
    # Frozen, so that the loaded program's outputs carry no autograd graph: otherwise a user's batch
    # of letters keeps every activation alive until its probabilities are freed.
    module.requires_grad_(False)
    example = torch.zeros(2, 28, 28, dtype=torch.uint8)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, out, extra_files={CLASSES_FILE: json.dumps(classifier.classes)})
    return out


def load_exported(path: str | Path) -> tuple[nn.Module, list[str]]:
    """The program's module and its letters, as a user without this package would load them."""
    extra = {CLASSES_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra[CLASSES_FILE])
