"""femnist's lowercase letters written out as a user's own letters come: one folder per letter,
each letter a scan (dark ink on a white page, 4x larger, PNG), for `folder:PATH`.

    python benchmarks/femnist_as_folder.py OUT_DIR

Needs ../shared/data (skipped with a message when it is absent). OUT_DIR must not exist yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import FEMNIST  # noqa: E402
from benchmarks.training import photographed  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/femnist_as_folder.py OUT_DIR")
    out = Path(sys.argv[1])
    if not FEMNIST.exists():
        sys.exit(f"skipped: {FEMNIST} is absent")
    if out.exists():
        sys.exit(f"{out}: expected a new directory (it exists; nothing is overwritten)")
    archive = np.load(FEMNIST)
    lower = archive["y52"] >= 26
    rng = np.random.default_rng(0)
    for i, (letter, label) in enumerate(zip(archive["x"][lower], archive["y52"][lower] - 26, strict=True)):
        folder = out / chr(ord("a") + int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photographed(letter, 220, 0, 0, rng)).save(folder / f"{i:05d}.png")
    print(f"wrote {int(lower.sum())} letters under {out}")


if __name__ == "__main__":
    main()
