"""Where a local search ran, as its saved state names it: a moved or copied RUN_DIR resumes only there.

Tune saves a search's state with paths relative to the RUN_DIR, but the Optuna searcher in it is pickled
with its storage, whose SQLite URL is absolute, and Tune's search generator with the experiment's storage
path. Resumed elsewhere, a moved search stopped on the old path ("unable to open database file"), and a
copy would have told its trials to the original's study. So a resume first reads where the search ran.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from search.storage import STUDY_FILE

TUNER_STATE = "tuner.pkl"  # Tune's state as the search began, with the searcher and its storage


class _StudyReader(pickle.Unpickler):
    """Reads a pickled state with a record of its URL in place of each Optuna RDBStorage: opens nothing."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(io.BytesIO(raw))
        self.urls: list[str] = []
        urls = self.urls

        class RecordedStorage:
            def __setstate__(self, state: dict) -> None:
                urls.append(state["url"])

        self._recorded = RecordedStorage

    def find_class(self, module: str, name: str) -> type:
        from optuna.storages import RDBStorage

        if (module, name) == (RDBStorage.__module__, RDBStorage.__qualname__):
            return self._recorded
        return super().find_class(module, name)


def folder_it_ran_in(run_dir: Path) -> Path | None:
    """The folder whose Optuna study the search's saved state names (None where it names none)."""
    state = run_dir / TUNER_STATE
    if not state.is_file():
        return None
    reader = _StudyReader(state.read_bytes())
    try:
        reader.load()
    except Exception:  # noqa: BLE001 - a state this cannot read is Tune's to refuse, as it restores it
        return None
    prefix = "sqlite:///"
    for url in reader.urls:
        if url.startswith(prefix) and url.endswith(STUDY_FILE):
            return Path(url.removeprefix(prefix)).parent
    return None
