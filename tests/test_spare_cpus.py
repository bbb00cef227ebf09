"""Spare cores at a search's end: how many threads the driver allows each trial, and what a trial reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial

from search.spare_cpus import THREADS_FILE, SpareCpus, threads_each, threads_now


@pytest.mark.parametrize(("total", "own", "running", "waiting", "threads"), [
    (2, 1, 2, False, [1, 1]),   # two trials on two cores: each keeps its own
    (2, 1, 1, False, [2]),      # the last one alone: both cores
    (2, 1, 1, True, [1]),       # a trial still to start needs the core
    (8, 2, 3, False, [3, 3, 2]),  # 8 over 3: the two with most epochs left take the odd cores
    (16, 1, 6, False, [3, 3, 3, 3, 2, 2]),
    (8, 2, 2, False, [4, 4]),
    (8, 4, 1, False, [8]),
    (8, 4, 3, False, [4, 4, 4]),  # more than there is: never under their own
    (2, 1, 0, False, []),       # nothing running: nothing to write
    (2, 0.5, 1, False, [2]),
])
def test_threads_each_share_the_cpus_once_no_trial_waits(total, own, running, waiting, threads):
    ids = [f"t{rank}" for rank in range(running)]
    assert threads_each(total, own, ids, waiting) == dict(zip(ids, threads, strict=True))


def test_a_trial_reads_what_the_driver_allows_it_within_this_machine(tmp_path):
    file = tmp_path / THREADS_FILE
    assert threads_now(None, 1, "a") == 1 and threads_now(file, 1, "a") == 1  # not handed on, or not written yet
    file.write_text('{"a": 2, "b": 1}')
    assert threads_now(file, 1, "a") == 2 and threads_now(file, 1, "b") == 1
    assert threads_now(file, 1, "c") == 1  # a trial the driver has not seen run yet
    assert threads_now(file, 2, "b") == 2  # never under the trial's own CPUs
    file.write_text(f'{{"a": {10 * (os.cpu_count() or 1)}}}')
    assert threads_now(file, 1, "a") == (os.cpu_count() or 1)
    for cut in ('{"a": ', "", "2", '{"a": "x"}'):  # cut short, or not the driver's: the trial keeps its own
        file.write_text(cut)
        assert threads_now(file, 1, "a") == 1, cut


def trial(status: str, run_dir: Path, cpus: float = 1, trial_id: str = "a", epochs: int = 0) -> SimpleNamespace:
    return SimpleNamespace(status=status, storage=SimpleNamespace(experiment_fs_path=str(run_dir)),
                           placement_group_factory=SimpleNamespace(required_resources={"CPU": cpus}),
                           trial_id=trial_id, last_result={"training_iteration": epochs} if epochs else {})


def test_the_driver_writes_the_share_as_trials_end_and_removes_it_at_the_end(tmp_path):
    spare = SpareCpus(total_cpus=2)
    spare.samples = 3  # as setup has it from Tune
    steps = [
        ([Trial.RUNNING, Trial.RUNNING], {"a": 1, "b": 1}),                # a third trial is still to come
        ([Trial.TERMINATED, Trial.RUNNING, Trial.PENDING], {"b": 1}),      # it has come, not started
        ([Trial.TERMINATED, Trial.RUNNING, Trial.RUNNING], {"b": 1, "c": 1}),
        ([Trial.TERMINATED, Trial.TERMINATED, Trial.RUNNING], {"c": 2}),   # the last alone: both cores
    ]
    for statuses, written in steps:
        spare.on_step_end(0, [trial(s, tmp_path, trial_id=i) for s, i in zip(statuses, "abc", strict=False)])
        assert json.loads((tmp_path / THREADS_FILE).read_text()) == written, statuses
    assert not (tmp_path / f"{THREADS_FILE}.part").exists()
    spare.on_experiment_end([trial(Trial.TERMINATED, tmp_path)] * 3)
    assert not (tmp_path / THREADS_FILE).exists()


def test_the_driver_writes_nothing_for_a_search_on_an_object_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spare = SpareCpus(total_cpus=2)
    spare.samples = 1
    spare.on_step_end(0, [trial(Trial.RUNNING, Path("bucket/searches/quick"))])  # its path on the bucket
    assert list(tmp_path.rglob("*")) == []


def test_the_odd_cores_go_to_the_trials_with_the_most_epochs_left(tmp_path):
    spare = SpareCpus(total_cpus=5)
    spare.samples = 3
    spare.on_step_end(0, [trial(Trial.RUNNING, tmp_path, trial_id="a", epochs=2),
                          trial(Trial.RUNNING, tmp_path, trial_id="b", epochs=7)])
    assert json.loads((tmp_path / THREADS_FILE).read_text()) == {"a": 1, "b": 1}  # the third is still to come
    spare.on_step_end(0, [trial(Trial.RUNNING, tmp_path, trial_id="a", epochs=2),
                          trial(Trial.RUNNING, tmp_path, trial_id="b", epochs=7),
                          trial(Trial.TERMINATED, tmp_path, trial_id="c", epochs=1)])
    assert json.loads((tmp_path / THREADS_FILE).read_text()) == {"a": 3, "b": 2}  # a: 2 epochs run, b: 7
