"""The Makefile's set-up: an interpreter too old, or missing, is refused in one line before .venv is made."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_refuses_a_python_too_old_or_missing_and_makes_no_venv(tmp_path):
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    # A stand-in for Python 3.9: it fails the version check and names itself when asked.
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\ncase "$2" in *version_info*) exit 1;; *) echo "Python 3.9.18";; esac\n')
    old.chmod(0o755)
    for python, found in ((old, "is Python 3.9.18"), (tmp_path / "nowhere", "is not found")):
        done = subprocess.run(["make", "test", f"PYTHON={python}"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2
        assert done.stderr.splitlines()[0] == (f"make: PYTHON={python} {found}; expected Python 3.10 or later "
                                               f"(make test PYTHON=python3.12, say)")
        assert not (tmp_path / ".venv").exists()
