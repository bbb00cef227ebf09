"""Where a search lives: a local or NFS directory, or a pyarrow URI (s3://, gs://).

RUN_DIR holds Tune's experiment and the project's own files. The Optuna
study is SQLite; on a remote URI it is kept locally under runs/.optuna, since
SQLite needs a real file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alphabet.errors import UserError
from alphabet.rundir import check_name


@dataclass
class RunLocation:
    uri: str  # absolute local path, or scheme://bucket/path

    @staticmethod
    def parse(text: str) -> RunLocation:
        if "://" in text:
            return RunLocation(text.rstrip("/"))
        path = Path(text).expanduser().resolve()
        return RunLocation(str(path))

    @property
    def remote(self) -> bool:
        return "://" in self.uri

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent_uri(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[0]

    @property
    def path(self) -> Path:
        """The local directory (for remote runs: a local mirror for reports)."""
        if self.remote:
            return Path("runs") / ".remote" / self.name
        return Path(self.uri)

    def _fs(self):
        import pyarrow.fs

        try:
            return pyarrow.fs.FileSystem.from_uri(self.uri)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise UserError(f"{self.uri}: cannot open this storage URI ({str(e).splitlines()[0]}); "
                            "expected a local path or a pyarrow URI such as s3://bucket/path") from None

    def exists(self) -> bool:
        if not self.remote:
            return Path(self.uri).exists()
        import pyarrow.fs

        fs, path = self._fs()
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def write_text(self, name: str, text: str) -> None:
        local = self.path / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
        if self.remote:
            fs, path = self._fs()
            fs.create_dir(path, recursive=True)  # file:// and hdfs:// need it; on object stores, a marker
            with fs.open_output_stream(f"{path}/{name}") as out:
                out.write(text.encode())

    def read_text(self, name: str) -> str | None:
        if not self.remote:
            file = Path(self.uri) / name
            return file.read_text() if file.is_file() else None
        fs, path = self._fs()
        try:
            with fs.open_input_stream(f"{path}/{name}") as stream:
                return stream.read().decode()
        except (FileNotFoundError, OSError):
            return None

    def optuna_storage(self):
        import optuna

        folder = self.path if not self.remote else Path("runs") / ".optuna" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(f"sqlite:///{(folder / 'optuna.db').resolve()}")


def locate_new_run(storage_path: str, name: str, log=print) -> RunLocation:
    """A fresh RUN_DIR under ``storage_path``: an existing name gets a -2, -3 ... suffix."""
    check_name(name, "storage.name")
    base = RunLocation.parse(f"{storage_path.rstrip('/')}/{name}")
    location, n = base, 1
    while location.exists():
        n += 1
        location = RunLocation(f"{base.uri}-{n}")
    if n > 1:
        log(f"{base.uri} exists already; this search goes to {location.uri}")
    if not location.remote:
        try:
            Path(location.uri).mkdir(parents=True)
        except OSError as e:
            raise UserError(f"storage.path: cannot create {location.uri} ({e.strerror})") from None
    return location
