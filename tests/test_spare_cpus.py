"""Spare cores at a search's end: how many threads the driver allows each trial, and what a trial reads."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial

from search.spare_cpus import THREADS_FILE, SpareCpus, threads_each, threads_now


@pytest.mark.parametrize(("total", "own", "running", "waiting", "threads"), [
    (2, 1, 2, False, 1),   # two trials on two cores: each keeps its own
    (2, 1, 1, False, 2),   # the last one alone: both cores
    (2, 1, 1, True, 1),    # a trial still to start needs the core
    (8, 2, 3, False, 2),   # 8 // 3 is 2: nothing to hand on
    (8, 2, 2, False, 4),
    (8, 4, 1, False, 8),
    (2, 1, 0, False, 1),   # nothing running: as given
    (2, 0.5, 1, False, 2),
])
def test_threads_each_share_the_cpus_once_no_trial_waits(total, own, running, waiting, threads):
    assert threads_each(total, own, running, waiting) == threads


def test_a_trial_reads_what_the_driver_allows_within_this_machine(tmp_path):
    file = tmp_path / THREADS_FILE
    assert threads_now(None, 1) == 1 and threads_now(file, 1) == 1  # not handed on, or not written yet
    file.write_text("2")
    assert threads_now(file, 1) == 2
    file.write_text("1")
    assert threads_now(file, 2) == 2  # never under the trial's own CPUs
    file.write_text(str(10 * (os.cpu_count() or 1)))
    assert threads_now(file, 1) == (os.cpu_count() or 1)
    file.write_text("")  # cut short: the trial keeps its own
    assert threads_now(file, 1) == 1


def trial(status: str, run_dir: Path, cpus: float = 1) -> SimpleNamespace:
    return SimpleNamespace(status=status, storage=SimpleNamespace(experiment_fs_path=str(run_dir)),
                           placement_group_factory=SimpleNamespace(required_resources={"CPU": cpus}))


def test_the_driver_writes_the_share_as_trials_end_and_removes_it_at_the_end(tmp_path):
    spare = SpareCpus()
    spare.samples, spare.total_cpus = 3, 2  # as setup has them from Tune and Ray: 3 trials, 2 CPUs
    steps = [
        ([Trial.RUNNING, Trial.RUNNING], "1"),                      # a third trial is still to come
        ([Trial.TERMINATED, Trial.RUNNING, Trial.PENDING], "1"),    # it has come, not started
        ([Trial.TERMINATED, Trial.RUNNING, Trial.RUNNING], "1"),
        ([Trial.TERMINATED, Trial.TERMINATED, Trial.RUNNING], "2"),  # the last alone: both cores
    ]
    for statuses, written in steps:
        spare.on_step_end(0, [trial(s, tmp_path) for s in statuses])
        assert (tmp_path / THREADS_FILE).read_text() == written, statuses
    assert not (tmp_path / f"{THREADS_FILE}.part").exists()
    spare.on_experiment_end([trial(Trial.TERMINATED, tmp_path)] * 3)
    assert not (tmp_path / THREADS_FILE).exists()


def test_the_driver_writes_nothing_for_a_search_on_an_object_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spare = SpareCpus()
    spare.samples, spare.total_cpus = 1, 2
    spare.on_step_end(0, [trial(Trial.RUNNING, Path("bucket/searches/quick"))])  # its path on the bucket
    assert list(tmp_path.rglob("*")) == []
