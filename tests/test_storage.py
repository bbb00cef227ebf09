"""Where a search lives: local paths and storage URIs, with the options pyarrow takes."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from alphabet.rundir import LOCK_FILE
from search.storage import RunLocation, locate_new_run

MINIO = "?endpoint_override=minio.lab:9000&scheme=http"


def test_a_uri_s_options_stay_at_its_end():
    parent = RunLocation.parse(f"s3://bucket/searches/{MINIO}")
    run = parent.child("quick")
    assert run.uri == f"s3://bucket/searches/quick{MINIO}"
    assert (run.name, run.parent_uri) == ("quick", parent.uri)
    assert RunLocation.parse(run.uri) == run


def test_remote_runs_named_alike_have_their_own_local_folders():
    # The local folder holds the Optuna study: a shared one would mix two searches' trials.
    a = RunLocation.parse(f"s3://bucket/a/quick{MINIO}")
    b = RunLocation.parse("s3://bucket/b/quick")
    assert a.path == Path("runs/.remote/s3/bucket/a/quick")
    assert b.path == Path("runs/.remote/s3/bucket/b/quick")
    assert RunLocation.parse("gs://bucket/a/quick").path == Path("runs/.remote/gs/bucket/a/quick")
    # A user in the URI (gs://anonymous@ for an emulator or a public bucket) names no other place.
    assert RunLocation.parse("gs://anonymous@bucket/a/quick").path == Path("runs/.remote/gs/bucket/a/quick")


def test_tensorboard_command_reads_each_kind_of_location(tmp_path):
    local = RunLocation.parse(str(tmp_path / "my runs" / "quick"))
    assert local.tensorboard_command() == f"tensorboard --logdir '{tmp_path}/my runs/quick'"
    on_file = RunLocation.parse(f"file://{tmp_path}/bucket/quick")
    assert on_file.tensorboard_command() == f"tensorboard --logdir {tmp_path}/bucket/quick"
    minio = RunLocation.parse(f"s3://bucket/quick{MINIO}").tensorboard_command()
    assert minio.startswith("AWS_ENDPOINT_URL=http://minio.lab:9000 tensorboard --logdir s3://bucket/quick")
    assert RunLocation.parse("s3://bucket/quick").tensorboard_command().startswith(
        "tensorboard --logdir s3://bucket/quick")
    # gs:// through gcsfs, in TensorBoard's Python loader; an emulator's address from the environment, no user
    emulator = RunLocation.parse("gs://anonymous@bucket/quick?endpoint_override=127.0.0.1:9023&scheme=http")
    assert emulator.tensorboard_command().startswith(
        "STORAGE_EMULATOR_HOST=http://127.0.0.1:9023 tensorboard --logdir gs://bucket/quick --load_fast=false")
    assert RunLocation.parse("gs://bucket/quick").tensorboard_command().startswith(
        "tensorboard --logdir gs://bucket/quick --load_fast=false")
    assert "only where TensorFlow is installed" in RunLocation.parse("hdfs://namenode/quick").tensorboard_command()


def test_a_taken_name_on_a_uri_gets_a_suffix(tmp_path):
    # file:// goes through pyarrow as s3:// does.
    (tmp_path / "searches" / "quick").mkdir(parents=True)
    said = []
    location = locate_new_run(f"file://{tmp_path}/searches", "quick", log=said.append)
    assert location.uri == f"file://{tmp_path}/searches/quick-2"
    assert said == [f"file://{tmp_path}/searches/quick exists already; this search goes to {location.uri}"]


@pytest.mark.parametrize("name", ["..", "a/b"])
def test_a_run_name_cannot_leave_its_storage(tmp_path, name):
    from alphabet.errors import UserError

    with pytest.raises(UserError, match="storage.name"):
        locate_new_run(str(tmp_path), name)


def test_gcs_that_cannot_be_reached_is_refused_in_seconds(monkeypatch):
    # Without credentials or network, pyarrow's GCS client retries for many minutes; the check does not.
    # With both, this bucket is not there: refused too.
    from alphabet.errors import UserError
    from search import storage

    monkeypatch.setattr(storage, "GCS_PROBE_S", 1)  # its bound, shortened for the test
    started = time.monotonic()
    with pytest.raises(UserError, match=r"^exp\.yaml: storage\.path: (cannot reach|no bucket)") as refused:
        RunLocation.parse(f"gs://alphabet-test-{secrets.token_hex(8)}/searches").check_reachable("exp.yaml")
    assert time.monotonic() - started < 60
    said = str(refused.value)
    if "cannot reach" in said:  # Google's client gave about 900 characters of retry bookkeeping; the cause is kept
        assert "error_info" not in said and len(said) < 500, said
        assert said.endswith("(GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`; "
                             "gs://anonymous@BUCKET for a public bucket or an emulator)"), said


def test_an_upload_never_writes_over_a_folder_there(tmp_path):
    # file:// takes pyarrow's copy as s3:// does; a retrain copied from another machine stays as it was.
    run = RunLocation.parse(f"file://{tmp_path}/bucket/quick")
    (tmp_path / "bucket" / "quick" / "retrain").mkdir(parents=True)
    (tmp_path / "bucket" / "quick" / "retrain" / "metrics.json").write_text("theirs")
    mine = tmp_path / "local" / "retrain"
    (mine / "figures").mkdir(parents=True)
    (mine / "metrics.json").write_text("mine")
    (mine / "figures" / "roc.png").write_bytes(b"png")
    (mine / LOCK_FILE).write_text("pid 1 on vm since 2026-12-07 06:00:00\n")  # this machine's, held by no one there
    (mine / "seed-1").mkdir()
    (mine / "seed-1" / LOCK_FILE).write_text("pid 1 on vm since 2026-12-07 06:00:00\n")
    assert run.upload(mine).uri == f"file://{tmp_path}/bucket/quick/retrain-2"
    assert (tmp_path / "bucket" / "quick" / "retrain" / "metrics.json").read_text() == "theirs"
    copied = tmp_path / "bucket" / "quick" / "retrain-2"
    assert sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*") if p.is_file()) == \
        ["figures/roc.png", "metrics.json"]
    assert (copied / "metrics.json").read_text() == "mine"
    assert (copied / "figures" / "roc.png").read_bytes() == b"png"


def test_a_run_on_gcs_writes_reads_and_uploads(tmp_path, gcs_server, monkeypatch):
    # Against a GCS server (an emulator here), reached anonymously: what a search and its retrain do there.
    import pyarrow.fs

    from alphabet.errors import UserError

    monkeypatch.chdir(tmp_path)
    options = f"?endpoint_override={gcs_server}&scheme=http"
    run = RunLocation.parse(f"gs://anonymous@bucket/searches/quick{options}")
    run.check_reachable("exp.yaml")
    assert not run.exists()
    run.write_text("best.yaml", "train: {lr: 0.003}\n")
    assert run.exists() and run.read_text("best.yaml") == "train: {lr: 0.003}\n"
    assert run.read_text("summary.txt") is None
    assert (tmp_path / "runs/.remote/gs/bucket/searches/quick/best.yaml").is_file()  # its local copy
    mine = tmp_path / "retrain"
    (mine / "figures").mkdir(parents=True)
    (mine / "figures" / "roc.png").write_bytes(b"png")
    assert run.upload(mine).uri == f"gs://anonymous@bucket/searches/quick/retrain{options}"
    assert run.upload(mine).uri == f"gs://anonymous@bucket/searches/quick/retrain-2{options}"
    fs, _ = pyarrow.fs.FileSystem.from_uri(run.uri)
    with fs.open_input_stream("bucket/searches/quick/retrain-2/figures/roc.png") as stream:
        assert stream.readall() == b"png"
    with pytest.raises(UserError, match=r"^exp\.yaml: storage\.path: no bucket 'other' at gs://"):
        RunLocation.parse(f"gs://anonymous@other/searches{options}").check_reachable("exp.yaml")
