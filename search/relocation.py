"""A local search's RUN_DIR moved or copied to another folder (a bigger disk, say): its saved state pointed
at the folder it is in now, so that ``--resume`` continues it there.

Tune saves a search's trials with paths relative to the RUN_DIR, but three objects in its pickled state
name the folder the search ran in: the Optuna searcher's storage (the study's absolute SQLite URL), our
disk guard, and the experiment that Tune makes new trials from. Resumed as saved, a moved search stopped
on the old path ("unable to open database file"), and a copy would have told its trials to the original's
study and put its new trials in the original's folder. Each is read with the new folder in its place.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import ray.cloudpickle
from optuna.storages import RDBStorage
from ray.train._internal.storage import StorageContext  # the class Tune pickles its storage paths in

from alphabet.rundir import replaced_whole
from search.disk_guard import DiskGuard
from search.storage import STUDY_FILE, TUNER_STATE

# Where the search ran is read from Tune's TUNER_STATE, saved as it began. The searcher's state and the
# search generator's (a pickle too), as the search went on, then Tune's: a move cut short leaves Tune's
# naming the old folder, so that the next --resume makes it again.
PICKLED_STATES = ("searcher-state-*.pkl", "search_gen_state-*.json", TUNER_STATE)
STUDY_URL = "sqlite:///{}"


def folder_it_ran_in(run_dir: Path) -> Path | None:
    """The folder whose Optuna study the search's saved state names (None where it names none)."""
    state = run_dir / TUNER_STATE
    if not state.is_file():
        return None
    urls: list[str] = []
    try:
        _StateReader(state.read_bytes(), urls=urls).load()
    except Exception:  # noqa: BLE001 - a state this cannot read is Tune's to refuse, as it restores it
        return None
    for url in urls:
        if url.startswith(STUDY_URL.format("")) and url.endswith(STUDY_FILE):
            return Path(url.removeprefix(STUDY_URL.format(""))).parent
    return None


def move_state_here(run_dir: Path, ran_in: Path) -> list[Path]:
    """Rewrite the pickled states in ``run_dir`` so that what named ``ran_in`` names ``run_dir``; the files."""
    rewritten = []
    for pattern in PICKLED_STATES:
        for path in sorted(run_dir.glob(pattern)):
            state = _StateReader(path.read_bytes(), moved=(ran_in, run_dir)).load()
            with replaced_whole(path) as tmp:
                tmp.write_bytes(ray.cloudpickle.dumps(state))  # as Tune writes its state
            rewritten.append(path)
    return rewritten


class _StateReader(pickle.Unpickler):
    """Reads a pickled state, recording each Optuna storage's URL (``urls``: then opening none), or with
    ``moved`` = (old folder, new folder) every object that names the old folder made to name the new."""

    def __init__(self, raw: bytes, urls: list[str] | None = None, moved: tuple[Path, Path] | None = None) -> None:
        super().__init__(io.BytesIO(raw))
        self.urls, self.moved = urls, moved

    def find_class(self, module: str, name: str) -> type:
        found = super().find_class(module, name)
        if found is RDBStorage:
            return self._storage_class() if self.moved else self._url_record()
        if self.moved and found in (DiskGuard, StorageContext):
            return self._moved_class(found)
        return found

    def _url_record(self) -> type:
        urls = self.urls

        class UrlRecord:
            def __setstate__(self, state: dict) -> None:
                urls.append(state["url"])

        return UrlRecord

    def _storage_class(self) -> type:
        old, new = self.moved

        class MovedStorage(RDBStorage):
            def __setstate__(self, state: dict) -> None:
                url = state["url"]
                if url == STUDY_URL.format(old / STUDY_FILE):
                    url = STUDY_URL.format(new / STUDY_FILE)
                super().__setstate__({**state, "url": url})  # it opens the study: the new one, never the old
                self.engine.dispose()
                self.__class__ = RDBStorage  # pickled again as what it is

        return MovedStorage

    def _moved_class(self, cls: type) -> type:
        old, new = self.moved

        class Moved(cls):
            def __setstate__(self, state: dict) -> None:
                self.__dict__.update(state)
                if getattr(self, "folder", None) == old:  # the disk guard's
                    self.folder = new
                if (getattr(self, "storage_fs_path", None), getattr(self, "experiment_dir_name", None)) == (
                        old.parent.as_posix(), old.name):  # Tune's StorageContext
                    self.storage_fs_path, self.experiment_dir_name = new.parent.as_posix(), new.name
                self.__class__ = cls

        return Moved
