"""Shared fixtures: tiny configs, the real-data location, an in-process CLI runner and local S3 and GCS servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from alphabet.cli import main

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FEMNIST = SHARED_DATA / "femnist_letters.npz"
EMNIST_TEST = SHARED_DATA / "emnist_letters_test_a_to_m.npz"

# No figures (log.figures_every=0): a tiny run took 3.1-3.7 s with them, 0.7-0.9 s without.
# The tests of the figures set log.figures_every themselves.
TINY = ["data.case=lower", "data.classes=abcdef", "data.synthetic_size=600", "data.synthetic_test_size=120",
        "model.width=8", "model.classifier_width=32", "model.stages=2", "train.batch_size=32",
        "log.progress=never", "log.figures_every=0"]


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real handwriting not available: {path} is absent (only the developers' machines have it)")
    return path


@contextmanager
def held_by_another_process(run_dir: Path) -> Iterator[subprocess.Popen]:
    """A second process that holds ``run_dir`` as a run in progress does (alphabet.rundir.hold_run_dir)."""
    hold = ("import sys, time\nfrom alphabet.rundir import hold_run_dir\nwith hold_run_dir(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], cwd=Path(__file__).resolve().parents[1],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def another_process_makes_it_first(monkeypatch: pytest.MonkeyPatch, stem: str) -> list[Path]:
    """The race of two commands started at once, made certain: the first directory named ``stem...``
    this process creates is made by "another process" a moment before its own mkdir. Returns what
    that other process made."""
    real, made = Path.mkdir, []

    def mkdir(self: Path, *args, **kwargs) -> None:
        if not made and self.name.startswith(stem) and not self.exists():
            real(self)
            made.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    return made


@pytest.fixture
def tiny(tmp_path: Path) -> list[str]:
    """--set overrides for a run that trains in a couple of seconds."""
    return TINY + [f"log.out_dir={tmp_path / 'runs'}"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``alphabet ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def with_sets(overrides: list[str]) -> list[str]:
    """["a=1", "b=2"] -> ["--set", "a=1", "--set", "b=2"]."""
    return [x for o in overrides for x in ("--set", o)]


@pytest.fixture
def s3_server(monkeypatch):
    """A real S3 protocol server (moto's) on a free local port; pyarrow, Ray and boto3 talk HTTP to it."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (requirements.txt "
                                      "lists it): the s3:// storage test needs a local S3 server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def gcs_server():
    """A Google Cloud Storage emulator (gcp-storage-emulator's) on a free local port, with the bucket
    "bucket"; reached anonymously: gs://anonymous@bucket/PATH?endpoint_override=HOST:PORT&scheme=http."""
    emulator = pytest.importorskip("gcp_storage_emulator.server", reason="gcp-storage-emulator is not installed "
                                   "(requirements.txt lists it): the gs:// storage tests need a local GCS server")
    with socket.socket() as probe:  # the emulator does not say which port 0 gave it; one free a moment ago will do
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="bucket")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()
