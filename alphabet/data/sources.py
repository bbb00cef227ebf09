"""Data sources, by name: each yields a training pool and, where it has one, a test set.

A registry maps the source kind to a loader, so ``data.source`` in a config is
plain text: ``synthetic``, ``emnist-letters``, ``npz:PATH``, ``folder:PATH`` ...
"""

from __future__ import annotations

import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alphabet.config import DataConfig
from alphabet.data.emnist_style import IMAGE_SUFFIXES, is_blank, load_letter_images
from alphabet.data.letterset import LetterSet
from alphabet.errors import UserError
from alphabet.processes import processes_for

LETTERS52 = list(string.ascii_uppercase + string.ascii_lowercase)
CASE_LETTERS = {"lower": string.ascii_lowercase, "upper": string.ascii_uppercase}  # by data.case


@dataclass
class SourceData:
    pool: LetterSet  # what train and validation (and test, if ``test`` is None) come from
    test: LetterSet | None  # the source's own test partition, if it has one


SourceLoader = Callable[[str, DataConfig], SourceData]
SOURCES: dict[str, SourceLoader] = {}


def register(kind: str) -> Callable[[SourceLoader], SourceLoader]:
    def add(fn: SourceLoader) -> SourceLoader:
        SOURCES[kind] = fn
        return fn
    return add


def check_source(spec: str, key: str = "data.source") -> None:
    """Refuse a ``spec`` that no loader reads (a kind mistyped, a path left out), before anything is read."""
    kind, _, arg = spec.partition(":")
    if kind not in SOURCES:
        raise UserError(f"{key}: unknown source {spec!r}; expected one of "
                        "synthetic, emnist-letters, emnist-lowercase, emnist-uppercase, npz:PATH, folder:PATH")
    if kind in ("npz", "folder") and not arg:
        raise UserError(f"{key}: {kind} needs a path, as in {kind}:PATH")


def check_sources(config: DataConfig) -> None:
    check_source(config.source)
    if config.test_source:
        check_source(config.test_source, "data.test_source")


def load_source(spec: str, config: DataConfig, key: str = "data.source") -> SourceData:
    """Load ``spec`` (``kind`` or ``kind:argument``); ``key`` is where it was given, for its errors."""
    check_source(spec, key)
    kind, _, arg = spec.partition(":")
    try:
        return SOURCES[kind](arg, config)
    except UserError as e:  # the loader names the file; which setting pointed at it is known here
        raise UserError(f"{key}: {e.args[0]}{_where_relative_was_read(kind, arg, config)}") from e


def _where_relative_was_read(kind: str, arg: str, config: DataConfig) -> str:
    # A search resumed, or a run retrained, from another folder reads its relative paths from there:
    # saying where turns "not found" into the reason.
    path = emnist_raw_dir(config.root) if kind.startswith("emnist") else Path(arg)
    if path.is_absolute() or path.exists():
        return ""
    return f" (a relative path, so read from the current folder {Path.cwd()})"


# --- torchvision EMNIST -------------------------------------------------------------

def emnist_raw_dir(root: str | Path) -> Path:
    """Where torchvision's EMNIST keeps its files under ``data.root``."""
    return Path(root) / "EMNIST" / "raw"


def _emnist(split: str, train: bool, config: DataConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from torchvision.datasets import EMNIST

    part = "train" if train else "test"
    raw = emnist_raw_dir(config.root)
    files = [raw / f"emnist-{split}-{part}-{kind}-idx{n}-ubyte" for kind, n in (("images", 3), ("labels", 1))]
    present = all(f.exists() for f in files)
    if not present and not config.download:
        raise UserError(f"{raw}: EMNIST files missing: expected {files[0].name} and {files[1].name}; "
                        "pass --download (or data.download=true) to fetch them")
    if not present:
        try:
            EMNIST(config.root, split=split, train=train, download=True)
        except (RuntimeError, OSError) as e:  # URLError is an OSError
            raise UserError(f"{raw}: could not download EMNIST ({type(e).__name__}: {e}); expected network "
                            f"access, or {files[0].name} and {files[1].name} put there by hand") from None
    try:
        ds = EMNIST(config.root, split=split, train=train, download=False)
        images = ds.data.numpy().transpose(0, 2, 1)  # stored transposed; make them upright
        labels = ds.targets.numpy()
    except (RuntimeError, ValueError, TypeError, AssertionError, OSError) as e:
        raise UserError(f"{files[0]}: corrupt or truncated EMNIST file ({type(e).__name__}); "
                        "expected an idx ubyte file as torchvision's EMNIST writes it") from None
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise UserError(f"{files[0]}: expected N 28x28 images matching {len(labels)} labels, "
                        f"got shape {images.shape}")
    return np.ascontiguousarray(images), labels, list(ds.classes)


def _emnist_source(split: str, keep: Callable[[str], bool]) -> SourceLoader:
    def load(_: str, config: DataConfig) -> SourceData:
        auxiliary = CASE_LETTERS.get(config.auxiliary_case, "")
        parts = []
        for train in (True, False):
            images, labels, names = _emnist(split, train, config)
            full = LetterSet(images, labels, names, origins=np.arange(len(labels)))  # its row in its file
            # The training part keeps the data.auxiliary_case letters too; the test part never does.
            classes = [c for c in names if keep(c) or (train and c in auxiliary)]
            parts.append(full.relabel(classes))
        return SourceData(pool=parts[0], test=parts[1])
    return load


register("emnist-letters")(_emnist_source("letters", lambda c: c != "N/A"))
register("emnist-lowercase")(_emnist_source("byclass", str.islower))
register("emnist-uppercase")(_emnist_source("byclass", str.isupper))


# --- numpy archives ------------------------------------------------------------------

@register("npz")
def load_npz(path: str, config: DataConfig) -> SourceData:
    """Keys ``x`` and ``y`` (or ``y52``), optional ``writer``, ``origin`` (the file each letter came from) and
    ``classes`` (or ``classes52``)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found; expected a .npz archive with keys x and y")
    try:
        # allow_pickle=False: a user's archive must never run code when it is read.
        archive = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{p}: not a readable .npz archive ({type(e).__name__})") from None
    with archive:  # the arrays are read whole; the file is not held open after
        keys = set(archive.files)
        label_key = next((k for k in ("y", "y52") if k in keys), None)
        if "x" not in keys or label_key is None:
            raise UserError(f"{p}: missing key {'x' if 'x' not in keys else 'y'}; expected keys x and y "
                            f"(found {', '.join(sorted(keys)) or 'none'})")
        try:
            x, y = archive["x"], archive[label_key]
            class_key = next((k for k in ("classes", "classes52") if k in keys), None)
            classes = [str(c) for c in archive[class_key]] if class_key else None
            writers = archive["writer"] if "writer" in keys else None
            origins = archive["origin"] if "origin" in keys else None
        except ValueError as e:  # object arrays need pickle, which we refuse
            raise UserError(f"{p}: unreadable array ({e}); expected plain numeric or string arrays") from None
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise UserError(f"{p}: key x: expected shape (N, 28, 28), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{p}: key {label_key}: expected shape ({len(x)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{p}: key {label_key}: expected integer labels, got {y.dtype}")
    if writers is not None and len(writers) != len(x):
        raise UserError(f"{p}: key writer: expected shape ({len(x)},), got {writers.shape}")
    if origins is not None and origins.shape != (len(x),):
        raise UserError(f"{p}: key origin: expected shape ({len(x)},), got {origins.shape}")
    if origins is None:  # so that a letter a report names can be found again: its row in the archive
        origins = np.arange(len(x))
    n_classes = int(y.max()) + 1 if len(y) else 0
    odd = [c for c in classes or [] if len(c) != 1 or not c.isalpha()]
    if odd:
        raise UserError(f"{p}: key {class_key}: expected single letters as class names, got {odd[0]!r}")
    if classes is None:
        classes = {26: list(string.ascii_lowercase), 52: LETTERS52}.get(n_classes)
        if classes is None:
            raise UserError(f"{p}: key classes missing; expected it when labels are not 26 or 52 classes")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise UserError(f"{p}: key {label_key}: expected labels in 0..{len(classes) - 1}, "
                        f"got {y.min()}..{y.max()}")
    if x.dtype != np.uint8:
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if np.issubdtype(x.dtype, np.floating) and 0 <= low and high <= 1:
            x = x * 255  # floats from 0 to 1, as torchvision's ToTensor gives them; cast, they would be black
        elif low < 0 or high > 255:  # normalised, or another bit depth: clipped, the letters would be lost
            raise UserError(f"{p}: key x: expected pixel values 0..255 (or floats 0..1), got {low:g}..{high:g}")
        x = np.rint(x).astype(np.uint8)
    _warn_if_inverted(x, p)
    return SourceData(pool=LetterSet(x, y, classes, writers, origins), test=None)


def _warn_if_inverted(x: np.ndarray, path: Path) -> None:
    """Say so where an archive's letters look dark on a light page. Trained on, such letters read well,
    but image files are framed white on black for the model, so ``predict`` would read them inverted.
    Said, not fixed: the archive may mean it."""
    sample = x[np.linspace(0, len(x) - 1, min(len(x), 1000)).astype(int)] if len(x) else x
    edges = np.concatenate([sample[:, 0], sample[:, -1], sample[:, :, 0], sample[:, :, -1]], axis=1)
    median = float(np.median(edges)) if edges.size else 0.0
    if median > 191:  # EMNIST-style edges are black; a page is near white
        print(f"alphabet: warning: {path}: its letters look dark on a light page (the median pixel along their "
              f"edges is {median:.0f}); expected white ink on black, as EMNIST's: invert them with "
              "x = 255 - x", file=sys.stderr, flush=True)


def save_npz(data: LetterSet, path: Path) -> None:
    """``data`` as an archive that ``npz:PATH`` reads back as it is, in ``path``, a file made for it
    (``alphabet.rundir.claim_new_file``)."""
    arrays = {"x": data.images, "y": data.labels, "classes": np.array(data.classes)}
    if data.writers is not None:
        arrays["writer"] = data.writers
    if data.origins is not None and data.origins.dtype.kind == "U":  # files a folder's letters came from
        arrays["origin"] = data.origins
    with open(path, "wb") as f:  # a file object: np.savez would add .npz to a name without it
        np.savez(f, **arrays)


# --- a folder of images ----------------------------------------------------------------

FOLDER_NOTICE = 2000  # images from which loading a folder says what it is doing


def is_letter_folder(path: Path) -> bool:
    """A folder source's sub-folder for one letter: named by that letter."""
    return path.is_dir() and len(path.name) == 1 and path.name.isalpha()


@register("folder")
def load_folder(path: str, config: DataConfig) -> SourceData:
    """One sub-folder per letter (named by the letter), images of any size and format."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root}: directory not found; expected one sub-folder per letter")
    folders = sorted(d for d in root.iterdir() if is_letter_folder(d))
    if not folders:
        raise UserError(f"{root}: no letter sub-folders; expected sub-folders named a, b, ... or A, B, ...")
    held = {folder: [file for file in sorted(folder.iterdir()) if file.suffix.lower() in IMAGE_SUFFIXES]
            for folder in folders}
    empty = [folder.name for folder in folders if not held[folder]]
    if empty and len(empty) < len(folders):  # a letter with no image would be a class the model never sees
        which = f"{', '.join(empty)} hold no images: those letters are" if len(empty) > 1 else \
            f"{empty[0]} holds no images: that letter is"
        print(f"alphabet: warning: under {root}, {which} left out (the letters read: "
              f"{''.join(f.name for f in folders if held[f])})", file=sys.stderr, flush=True)
    folders = [folder for folder in folders if held[folder]]
    files = [(label, file) for label, folder in enumerate(folders) for file in held[folder]]
    left_out = _images_left_out(root, folders)
    if left_out:  # letters a user meant to train on, silently missing, would be worse than a line
        shown = ", ".join(str(d.relative_to(root)) for d in list(left_out)[:3]) + (", ..." if len(left_out) > 3 else "")
        n = sum(left_out.values())
        which = (f"{n:,} images under {root} are not used: they are" if n > 1
                 else f"1 image under {root} is not used: it is")
        print(f"alphabet: warning: {which} not directly in a folder named by one letter ({shown})",
              file=sys.stderr, flush=True)
    if len(files) >= FOLDER_NOTICE:  # a minute or more of silence otherwise
        processes = processes_for(len(files))
        print(f"framing the {len(files):,} images under {root} (5 ms to half a second each, by size, "
              f"{'in one process' if processes == 1 else f'over {processes} processes'}; `alphabet data export` "
              "frames them once into an npz archive)", file=sys.stderr, flush=True)
    images = load_letter_images([file for _, file in files])
    labels = [label for label, _ in files]
    blank = [file for (_, file), image in zip(files, images, strict=True) if is_blank(image)]
    if not images:
        raise UserError(f"{root}: the letter sub-folders hold no images; expected "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
    if blank:
        # A blank image under a letter's name would teach, or score, a letter that is not there.
        others = f" and {len(blank) - 1} more" if len(blank) > 1 else ""
        raise UserError(f"{blank[0]}{others}: blank image (no ink found); expected one letter per image")
    origins = np.array([str(file) for _, file in files])
    return SourceData(LetterSet(np.stack(images), np.array(labels), [d.name for d in folders], origins=origins),
                      None)


def _images_left_out(root: Path, folders: list[Path]) -> dict[Path, int]:
    """Folders with images that the layout leaves out: beside the letters' folders, or inside one."""
    candidates = [d for d in root.iterdir() if d.is_dir() and d not in folders]
    candidates += [d for folder in folders for d in folder.iterdir() if d.is_dir()]
    counts = {}
    for folder in sorted(candidates):
        if folder.name.startswith(".") or folder.name == "__MACOSX":  # a file manager's or an archiver's own
            continue
        n = sum(1 for file in folder.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES)
        if n:
            counts[folder] = n
    return counts


# --- the synthetic generator ------------------------------------------------------------

@register("synthetic")
def load_synthetic(_: str, config: DataConfig) -> SourceData:
    from alphabet.data.synthetic import generate

    # synthetic_size covers the auxiliary letters too; the test set has only the task's.
    train = generate(config.synthetic_size, seed=config.synthetic_seed, classes=_wanted_classes(config))
    # A different seed gives different fonts' distortions: a fair held-out set.
    test = generate(config.synthetic_test_size, seed=config.synthetic_seed + 1_000_003,
                    classes=_wanted_classes(config, auxiliary=False))
    for part in (train, test):  # a letter a report names can be generated again: its row
        part.origins = np.arange(len(part))
    return SourceData(pool=train, test=test)


def _wanted_classes(config: DataConfig, auxiliary: bool = True) -> list[str]:
    """Which of the 52 letters to generate, so no time goes on glyphs that are dropped."""
    letters = list(CASE_LETTERS.get(config.case, LETTERS52))
    if config.classes and config.case != "merged":
        letters = [c for c in letters if c in config.classes]
    if auxiliary and config.auxiliary_case in CASE_LETTERS and config.case in CASE_LETTERS:
        letters += [c for c in CASE_LETTERS[config.auxiliary_case] if c not in letters]
    return letters
