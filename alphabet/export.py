"""A trained classifier as one self-contained file: a ``torch.export`` program (``.pt2``) or an
ONNX model (``.onnx``).

Either takes letters framed as EMNIST's are (uint8, (N, 28, 28), white ink on black, as
``alphabet.predict.frame`` makes them from any image) and gives each its letters' probabilities,
(N, C); an ensemble's are the mean of its members', as ``predict`` gives them (with a calibrated
classifier's temperature). The letters, in the probabilities' order, travel in the file. PyTorch
alone loads it, without this package:

    extra = {"classes.json": ""}
    program = torch.export.load("letters.pt2", extra_files=extra)
    probabilities = program.module()(images)
    letters = json.loads(extra["classes.json"])

It is also the form PyTorch's deployment compilers take (AOTInductor for servers, benchmarked in
docs/BENCHMARKS.md, "Inference"; ExecuTorch for phones, not tried here). The ONNX model is the same
program translated by ``torch.onnx`` (which needs the optional packages onnx and onnxscript), for
runtimes outside PyTorch; its letters are in its metadata:

    session = onnxruntime.InferenceSession("letters.onnx")
    probabilities = session.run(None, {"letters": images})[0]
    letters = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import torch
from torch import nn

from alphabet import __version__
from alphabet.engine import to_input
from alphabet.ensemble import Classifier, with_temperature
from alphabet.errors import UserError

CLASSES_FILE = "classes.json"
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx's exporter needs; not this package's requirements


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


def _frozen(classifier: Classifier) -> Probabilities:
    """``classifier`` (its models on the CPU, in fp32) as one module for inference."""
    module = Probabilities([model.float().cpu().eval() for model in classifier.models],
                           classifier.temperature).eval()
    # Frozen, so that the loaded program's outputs carry no autograd graph: otherwise a user's batch
    # of letters keeps every activation alive until its probabilities are freed.
    return module.requires_grad_(False)


def check_onnx_exporter(out: Path) -> None:
    """Stop, before any work, where torch.onnx's exporter lacks its packages."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{out}: an .onnx file is written by torch.onnx, which needs {' and '.join(missing)}; "
                        f"expected {'them' if len(missing) > 1 else 'it'} installed: pip install {' '.join(missing)}")


def export_classifier(classifier: Classifier, out: Path) -> Path:
    """Write ``classifier`` to ``out``: a torch.export program (``.pt2``) or an ONNX model (``.onnx``),
    taking uint8 letters of any batch size."""
    module, example = _frozen(classifier), (torch.zeros(2, 28, 28, dtype=torch.uint8),)
    any_batch = ({0: torch.export.Dim("batch")},)
    if out.suffix != ".onnx":
        program = torch.export.export(module, example, dynamic_shapes=any_batch)
        torch.export.save(program, out, extra_files={CLASSES_FILE: json.dumps(classifier.classes)})
        return out
    check_onnx_exporter(out)
    # The exporter prints its progress on stdout; a command's output is its own report.
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(module, example, dynamic_shapes=any_batch, input_names=["letters"],
                                         output_names=["probabilities"])
    onnx_program.model.metadata_props["classes"] = json.dumps(classifier.classes)
    # What a tool that shows the file (Netron, onnx.load) says of it, for whoever meets it without this package.
    members = len(classifier.models)
    onnx_program.model.doc_string = (
        f"alphabet {__version__}: handwritten letters -> probabilities. Input 'letters': uint8 (N, 28, 28), "
        "each letter framed as EMNIST's are (cropped to the ink, centred, white ink on black; "
        "alphabet.predict.frame). Output 'probabilities': float32 (N, C), in the order of the JSON list in "
        f"metadata 'classes'{f'; the mean of an ensemble of {members}' if members > 1 else ''}.")
    # One file: the weights inside it, as the .pt2 has them (small models, far under ONNX's 2 GB).
    onnx_program.save(out, external_data=False)
    return out


def load_exported(path: str | Path) -> tuple[nn.Module, list[str]]:
    """The program's module and its letters, as a user without this package would load them."""
    extra = {CLASSES_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra[CLASSES_FILE])
