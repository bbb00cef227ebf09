"""What a result was computed with: this code's version and commit, Python, the packages and the device.

Each result file carries it (a run's and an evaluation's ``metrics.json``, a search's ``summary.json``,
a retrain's ``report.md``), so that a figure read months later, or beside one from another machine,
says which software made it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch

from alphabet import __version__

# matplotlib and pillow draw the synthetic letters (another version, other letters); scipy frames every letter.
PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "scipy", "matplotlib", "pillow")
SOURCE = Path(__file__).resolve().parents[1]  # the checkout's root, where the code runs from one


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_commit(root: Path = SOURCE) -> tuple[str | None, bool]:
    """The git commit the code runs from, and whether tracked files differ from it; (None, False)
    where the code is not a git checkout (a wheel installed into site-packages) or git is missing."""
    if not (root / ".git").exists():
        return None, False
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None, False
    if head.returncode != 0:
        return None, False
    return head.stdout.strip(), bool(changed.stdout.strip())


def environment(device: torch.device | None = None, packages: Sequence[str] = ()) -> dict:
    """This process's software, and ``device`` where one computed the result; ``packages`` adds to
    ``PACKAGES`` (a search adds ray and optuna)."""
    commit, modified = source_commit()
    found = {"alphabet": __version__, "commit": commit, "modified": modified,
             "python": platform.python_version(), "platform": platform.platform(),
             "packages": {name: package_version(name) for name in (*PACKAGES, *packages)},
             "torch_cuda": torch.version.cuda}  # the CUDA torch was built with; None for a CPU-only build
    if device is not None:
        found["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        found["threads"] = torch.get_num_threads()
    return found


def environment_line(found: dict) -> str:
    """``environment``'s answer in one line, as a report shows it."""
    code = f"alphabet {found['alphabet']}"
    if found["commit"]:
        code += f" (commit {found['commit'][:12]}{', with changes not committed' if found['modified'] else ''})"
    parts = [code, f"Python {found['python']}"]
    parts += [f"{name} {version}" + (f" (CUDA {found['torch_cuda']})" if name == "torch" and found["torch_cuda"]
                                     else "")
              for name, version in found["packages"].items() if version]
    line = ", ".join(parts)
    if "device" in found:
        line += f"; on {found['device']}" + (f" ({found['threads']} threads)" if found["device"] == "cpu" else "")
    return line
