import importlib.metadata
import shutil
import subprocess

import pytest
import torch

from alphabet.environment import environment, environment_line, source_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder, *args):
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@needs_git
def test_source_commit_names_the_commit_and_changes_to_tracked_files(tmp_path):
    assert source_commit(tmp_path) == (None, False)  # not a checkout: a wheel in site-packages, say
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-qm", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert source_commit(tmp_path) == (head.strip(), False)
    (tmp_path / "notes.txt").write_text("untracked files are not the code\n")
    assert source_commit(tmp_path) == (head.strip(), False)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == (head.strip(), True)


def test_environment_names_the_packages_and_the_device():
    found = environment(torch.device("cpu"), packages=("optuna",))
    assert found["packages"]["torch"] == importlib.metadata.version("torch")
    assert found["packages"]["optuna"] == importlib.metadata.version("optuna")
    # The synthetic letters are drawn from matplotlib's fonts by Pillow: their versions decide the letters.
    assert found["packages"]["matplotlib"] == importlib.metadata.version("matplotlib")
    assert found["packages"]["pillow"] == importlib.metadata.version("pillow")
    assert found["device"] == "cpu" and found["threads"] == torch.get_num_threads()
    line = environment_line(found)
    assert f"numpy {importlib.metadata.version('numpy')}" in line and line.endswith(
        f"; on cpu ({torch.get_num_threads()} threads)")
    assert "device" not in environment()  # a search's driver computes nothing itself
