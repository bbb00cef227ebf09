"""Where a search lives: a local or NFS directory, or a pyarrow URI (s3://, gs://).

RUN_DIR holds Tune's experiment and the project's own files. A remote RUN_DIR
has a local folder too, runs/.remote/SCHEME/BUCKET/PATH: the Optuna study
(SQLite needs a real file system), copies of the reports, and the retrain.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from alphabet.errors import UserError
from alphabet.rundir import LOCK_FILE, check_name, free_name, mebibytes, new_run_dir, replaced_whole

if TYPE_CHECKING:  # imported where used: a CLI that never opens storage should not pay for them
    import optuna
    import pyarrow.fs

STUDY_FILE = "optuna.db"
TUNER_STATE = "tuner.pkl"  # Tune's, as the search began: a moment before its experiment's state
OBJECT_STORES = ("s3", "gs", "gcs")  # pyarrow's schemes whose first path component is a bucket
GCS_PROBE_S = 10
GCS_STATUS = "google::cloud::Status("
# TensorBoard without TensorFlow reads s3:// with boto3 and gs:// with gcsfs (in its Python loader: the fast
# loader's own GCS client reaches no emulator); a server the URI names (MinIO, an emulator) it takes from the
# environment. Per scheme: (that variable, the package, the command's flags).
GCS_READER = ("STORAGE_EMULATOR_HOST", "gcsfs", " --load_fast=false")
TENSORBOARD_READERS = {"s3": ("AWS_ENDPOINT_URL", "boto3", ""), "gs": GCS_READER, "gcs": GCS_READER}
# Room a local search keeps free: for Tune's state and the search's results, and (search/disk_guard.py)
# for two more checkpoints of each running trial, which may be writing one as the search stops.
RESERVE_FLOOR = 64 * 2**20


def _reason(error: OSError) -> str:
    text = str(error).splitlines()[0]
    # Google Cloud's client wraps the cause in its retry bookkeeping and a link (about 900 characters
    # without credentials): its status code and the underlying error are what say what went wrong.
    if not text.startswith(GCS_STATUS):
        return text
    body = text.removeprefix(GCS_STATUS).partition(" error_info=")[0].removesuffix(")")
    code, _, _ = body.partition(":")
    cause = body.rpartition("The underlying error message was: ")[2]
    if cause == body:
        return body
    return f"{code}: no access token ({cause})" if "access token" in body else f"{code}: {cause}"


@dataclass
class RunLocation:
    # An absolute local path, or scheme://bucket/path with any ?options pyarrow takes
    # (s3://bucket/path?endpoint_override=host:9000&scheme=http for MinIO and other S3-compatible stores).
    uri: str

    @staticmethod
    def parse(text: str) -> RunLocation:
        if "://" in text:
            path, mark, options = text.partition("?")
            return RunLocation(path.rstrip("/") + mark + options)
        path = Path(text).expanduser().resolve()
        return RunLocation(str(path))

    @property
    def remote(self) -> bool:
        return "://" in self.uri

    def _split(self) -> tuple[str, str]:
        """(the URI's path, its ?options or ""): names are joined to the path, never to the options."""
        path, mark, options = self.uri.partition("?") if self.remote else (self.uri, "", "")
        return path, mark + options

    def _parts(self) -> tuple[str, str, str, str]:
        """A remote URI's (scheme, user, bucket, the path after it), without its ?options."""
        scheme, _, where = self._split()[0].partition("://")
        authority, _, rest = where.strip("/").partition("/")
        user, _, bucket = authority.rpartition("@")
        return scheme, user, bucket, rest

    @property
    def user(self) -> str:
        """The user a remote URI names (gs://anonymous@bucket), with its secret where it gives one; else ""."""
        return self._parts()[1] if self.remote else ""

    @property
    def name(self) -> str:
        return self._split()[0].rsplit("/", 1)[-1]

    @property
    def parent_uri(self) -> str:
        path, options = self._split()
        return path.rsplit("/", 1)[0] + options

    def child(self, name: str) -> RunLocation:
        path, options = self._split()
        return RunLocation(f"{path}/{name}{options}")

    @property
    def path(self) -> Path:
        """The local directory (for remote runs: a local folder for the study, reports and retrain)."""
        if self.remote:
            # The whole bucket path, not only the name: two searches named alike in different
            # places must not share one Optuna study.
            # Without the URI's user (gs://anonymous@bucket/...): the folder is named by where the run is.
            scheme, _, bucket, rest = self._parts()
            return Path("runs", ".remote", scheme, bucket, *rest.split("/"))
        return Path(self.uri)

    def _fs(self) -> pyarrow.fs.FileSystem:
        import pyarrow.fs

        try:
            return pyarrow.fs.FileSystem.from_uri(self.uri)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise UserError(f"{self.uri}: cannot open this storage URI ({_reason(e)}); "
                            "expected a local path or a pyarrow URI such as s3://bucket/path") from None

    def check_reachable(self, origin: str) -> None:
        """Stop in one line, before any work, where the storage cannot be reached or its bucket is missing,
        or where a local path cannot hold a folder (a file in the way, a folder this user cannot write)."""
        if not self.remote:
            found = Path(self.uri)
            while not found.exists() and found != found.parent:  # the part of the path there already
                found = found.parent
            if not found.is_dir():
                raise UserError(f"{origin}: storage.path: {found} is a file; expected a directory to write searches in")
            if not os.access(found, os.W_OK | os.X_OK):
                raise UserError(f"{origin}: storage.path: {found}: no permission to write there; expected a "
                                "directory this user can write")
            require_room(found, f"{origin}: storage.path: {found}", "for a search's checkpoints and state")
            return
        import pyarrow.fs

        scheme = self.uri.partition("://")[0]
        probe = self
        if scheme in ("gs", "gcs") and "retry_limit_seconds=" not in self.uri:
            # GCS retries for many minutes by default (no credentials, no network): a check answers in seconds.
            probe = RunLocation(f"{self.uri}{'&' if '?' in self.uri else '?'}retry_limit_seconds={GCS_PROBE_S}")
        fs, path = probe._fs()
        bucket = path.split("/")[0]
        try:  # an object store's path has no folders to check, but its bucket must be there
            info = fs.get_file_info(bucket if scheme in OBJECT_STORES else path)
        except OSError as e:
            hint = (" (GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`; "
                    "gs://anonymous@BUCKET for a public bucket or an emulator)") if scheme in ("gs", "gcs") else ""
            raise UserError(f"{origin}: storage.path: cannot reach {self.uri} ({_reason(e)}); expected "
                            f"storage this machine can reach with the credentials it has{hint}") from None
        if scheme in OBJECT_STORES and info.type == pyarrow.fs.FileType.NotFound:
            raise UserError(f"{origin}: storage.path: no bucket {bucket!r} at {self.uri}; "
                            "expected an existing bucket (create it first)")

    def exists(self) -> bool:
        if not self.remote:
            return Path(self.uri).exists()
        import pyarrow.fs

        fs, path = self._fs()
        try:
            return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
        except OSError as e:
            raise UserError(f"{self.uri}: cannot reach it ({_reason(e)})") from None

    def write_text(self, name: str, text: str) -> None:
        local = self.path / name
        local.parent.mkdir(parents=True, exist_ok=True)
        with replaced_whole(local) as tmp:  # summary.json and best.yaml are written again on --resume
            tmp.write_text(text)
        if self.remote:
            fs, path = self._fs()
            try:
                fs.create_dir(path, recursive=True)  # file:// and hdfs:// need it; on object stores, a marker
                with fs.open_output_stream(f"{path}/{name}") as out:
                    out.write(text.encode())
            except OSError as e:
                raise UserError(f"{self.uri}: cannot write {name} there ({_reason(e)}); "
                                f"the local copy is {local}") from None

    def read_text(self, name: str) -> str | None:
        if not self.remote:
            file = Path(self.uri) / name
            if not file.is_file():
                return None
            try:
                return file.read_text()
            except (OSError, UnicodeDecodeError) as e:  # no permission, a disk error, a binary file in its place
                raise UserError(f"{file}: expected a readable text file ({type(e).__name__})") from None
        fs, path = self._fs()
        try:
            with fs.open_input_stream(f"{path}/{name}") as stream:
                return stream.read().decode()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UserError(f"{self.uri}: cannot read {name} there ({_reason(e)})") from None

    def upload(self, folder: Path) -> RunLocation:
        """Copy a local folder (a retrain) into this remote run, beside the search's files, under a name
        not taken there (another machine may have copied a retrain of its own)."""
        import pyarrow.fs

        name = free_name(folder.name, lambda taken: self.child(taken).exists())
        fs, path = self._fs()
        try:
            fs.create_dir(f"{path}/{name}", recursive=True)  # file:// needs it; on object stores, a marker
            # File by file, leaving out the locks: they name a process of this machine that holds nothing there.
            files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != LOCK_FILE)
            for sub in sorted({f.parent for f in files} - {Path(".")}):  # each folder once: a request apiece there
                fs.create_dir(f"{path}/{name}/{sub.as_posix()}", recursive=True)
            for file in files:
                pyarrow.fs.copy_files(str((folder / file).resolve()), f"{path}/{name}/{file.as_posix()}",
                                      destination_filesystem=fs)
        except OSError as e:
            raise UserError(f"{self.uri}: cannot copy {folder} there ({_reason(e)}); it stays where it is") from None
        return self.child(name)

    def optuna_storage(self) -> optuna.storages.RDBStorage:
        import optuna

        self.path.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(f"sqlite:///{(self.path / STUDY_FILE).resolve()}")

    def tensorboard_command(self) -> str:
        """The command that shows this run in TensorBoard (TENSORBOARD_READERS says what it reads)."""
        if not self.remote:
            return f"tensorboard --logdir {shlex.quote(self.uri)}"
        path, options = self._split()
        if path.startswith("file://"):
            return f"tensorboard --logdir {shlex.quote(path.removeprefix('file://'))}"
        scheme, _, bucket, rest = self._parts()
        logdir = shlex.quote(f"{scheme}://{bucket}{'/' if rest else ''}{rest}")  # its readers take no user in a URI
        if scheme not in TENSORBOARD_READERS:
            return f"tensorboard --logdir {logdir}   (TensorBoard reads {scheme}:// only where TensorFlow is installed)"
        server, reader, flags = TENSORBOARD_READERS[scheme]
        command = f"tensorboard --logdir {logdir}{flags}"
        settings = dict(parse_qsl(options.lstrip("?")))
        if "endpoint_override" in settings:
            endpoint = f"{settings.get('scheme', 'https')}://{settings['endpoint_override']}"
            command = f"{server}={shlex.quote(endpoint)} {command}"
        if importlib.util.find_spec(reader) is None:
            command += f"   (TensorBoard reads {scheme}:// with {reader}: pip install {reader})"
        return command


def room_short(folder: Path, running: int = 0, largest_checkpoint: int = 0) -> tuple[int, int] | None:
    """(free, needed) bytes where a search stored in ``folder`` lacks the room it keeps, else None."""
    free, needed = shutil.disk_usage(folder).free, RESERVE_FLOOR + 2 * running * largest_checkpoint
    return (free, needed) if free < needed else None


def require_room(folder: Path, where: str, purpose: str) -> None:
    """Refuse, in one line that starts with ``where``, a search whose ``folder`` lacks the room a search keeps."""
    if short := room_short(folder):
        raise UserError(f"{where}: {mebibytes(short[0])} free on its disk; expected at least {mebibytes(short[1])} "
                        f"{purpose}")


def largest_checkpoint_in(run_dir: Path) -> int:
    return max((f.stat().st_size for f in run_dir.glob("trial_*/checkpoint_*/*") if f.is_file()), default=0)


def locate_new_run(storage_path: str, name: str, log: Callable[[str], None] = print) -> RunLocation:
    """A fresh RUN_DIR under ``storage_path``: an existing name gets a -2, -3 ... suffix."""
    check_name(name, "storage.name")
    parent = RunLocation.parse(storage_path)
    if parent.remote:  # object stores have no create-if-absent for folders: the name is as free as it looks
        location = parent.child(free_name(name, lambda taken: parent.child(taken).exists()))
    else:
        # made as it is named, so that a search started twice at once gets two directories
        location = parent.child(new_run_dir(parent.uri, name, ("storage.path", "storage.name"), numbered=True).name)
    if location.name != name:
        log(f"{parent.child(name).uri} exists already; this search goes to {location.uri}")
    return location
