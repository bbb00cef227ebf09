"""Faults survived: processes really killed with SIGKILL, then resumed. Nothing finished is lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from test_search import ROOT, TINY_EXPERIMENT, alphabet, trials_of, write_experiment

from alphabet.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def wait_for(condition, timeout: float = 300, what: str = "condition", poll: float = 0.5) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def results(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


@pytest.mark.slowest  # 30 s; test_search.py's kill -9 resume test shows trials going on from checkpoints
def test_trial_worker_killed_mid_epoch_is_retried_from_its_checkpoint(tmp_path):
    # 20 short epochs: enough left after the second that the kill lands mid-trial (with 5, the
    # trial sometimes finished between the poll and the kill).
    experiment = write_experiment(tmp_path, "worker", search={"num_samples": 1, "max_concurrent": 1},
                                  asha={"max_t": 20, "grace_period": 20, "reduction_factor": 2})
    run_dir = tmp_path / "search" / "worker"
    driver = subprocess.Popen([sys.executable, "-m", "alphabet", "search", str(experiment)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def two_epochs() -> bool:
            files = list(run_dir.glob("trial_*/result.json"))
            return bool(files) and len(results(files[0])) >= 2

        wait_for(two_epochs, what="two reported epochs")
        trial_file = next(run_dir.glob("trial_*/result.json"))
        before_kill = results(trial_file)
        pid = before_kill[-1]["pid"]
        os.kill(pid, signal.SIGKILL)
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, out[-3000:]
    rows = trials_of(run_dir)
    assert [r.status for r in rows] == ["completed"] and rows[0].epochs == 20
    assert len(before_kill) < 20, "the trial finished before the kill; the test did not test anything"
    iterations = [r["training_iteration"] for r in results(trial_file)]
    pids = {r["pid"] for r in results(trial_file)}
    assert len(pids) == 2  # a new worker took over
    assert iterations == sorted(iterations) and iterations[-1] == 20
    assert iterations.count(1) == 1  # it continued from its checkpoint instead of starting again


def write_best(tmp_path: Path) -> Path:
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({
        "data": {"case": "lower", "classes": "abcdef", "synthetic_size": 3000, "synthetic_test_size": 120},
        "model": {"width": 8, "stages": 2, "classifier_width": 32, "dropout": 0.3},
        "augment": {"elastic": 1.0, "erase": 0.3},
        "train": {"batch_size": 32},
        "log": {"progress": "never"},
    }))
    return best


@pytest.mark.slowest  # about a minute; test_training.py's interrupted-retrain test makes the point in 20 s
def test_retrain_killed_at_a_random_epoch_resumes_bit_identical(tmp_path):
    # Epochs of about 1.5 s on 2 cores, and the kill lands at least two epochs before the end: with
    # 0.3 s epochs and a kill point up to the last epoch, CI once saw the run finish before the kill.
    best = write_best(tmp_path)
    epochs = 6
    straight = alphabet("retrain", best, "--epochs", epochs, "--set", "log.name=straight", timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    kill_after = random.Random().randint(1, epochs - 2)
    victim = subprocess.Popen([sys.executable, "-m", "alphabet", "retrain", str(best), "--epochs", str(epochs),
                               "--set", "log.name=victim"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    last = tmp_path / "victim" / "checkpoints" / "last.pt"

    def reached() -> bool:
        try:
            return load_checkpoint(last)["trainer"]["epoch"] >= kill_after
        except Exception:  # noqa: BLE001 - not written yet
            return False

    try:
        wait_for(reached, what=f"epoch {kill_after}", poll=0.1)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
    assert load_checkpoint(last)["trainer"]["epoch"] < epochs, "killed too late to test anything"
    resumed = alphabet("retrain", "--resume", tmp_path / "victim", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")["trainer"]["model"]
    b = load_checkpoint(last)["trainer"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after a kill at epoch {kill_after}"
    assert (tmp_path / "victim" / "report.md").is_file()


@pytest.mark.slowest  # test_search.py's kill -9 resume test makes the main point in 60 s
def test_driver_killed_at_three_points_loses_no_finished_trial(tmp_path):
    experiment = write_experiment(tmp_path, "thrice", search={"num_samples": 6, "max_concurrent": 2, "seed": 3},
                                  asha={"max_t": 4, "grace_period": 2, "reduction_factor": 2})
    run_dir = tmp_path / "search" / "thrice"
    finished_before: dict[str, tuple[int, float]] = {}

    def finished_count() -> int:
        return sum(any(r.get("done") for r in results(p)) for p in run_dir.glob("trial_*/result.json"))

    def reported_epochs() -> int:
        return sum(len(results(p)) for p in run_dir.glob("trial_*/result.json"))

    # Point 1: trials under way, none finished. Point 2: after the first finished. Point 3: after the third.
    points = [lambda: reported_epochs() >= 1, lambda: finished_count() >= 1, lambda: finished_count() >= 3]
    for n, point in enumerate(points):
        args = ["search", str(experiment)] if n == 0 else ["search", "--resume", str(run_dir)]
        driver = subprocess.Popen([sys.executable, "-m", "alphabet", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda point=point, driver=driver: point() or driver.poll() is not None,
                     what=f"kill point {n + 1}")
            time.sleep(6)  # Tune saves its experiment state every 5 s (TUNE_GLOBAL_CHECKPOINT_S)
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        finally:
            subprocess.run(["pkill", "-9", "-g", str(driver.pid)], check=False)
        for row in trials_of(run_dir):
            if row.status in ("completed", "pruned"):
                finished_before.setdefault(row.trial_id, (row.epochs, row.score))
    final = alphabet("search", "--resume", run_dir, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    after = {r.trial_id: r for r in trials_of(run_dir)}
    assert len(after) == 6 and all(r.status in ("completed", "pruned") for r in after.values())
    for trial_id, (epochs, score) in finished_before.items():
        assert (after[trial_id].epochs, after[trial_id].score) == (epochs, score), trial_id
    study = optuna.load_study(study_name="thrice", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert all(t.state.is_finished() for t in study.trials)
    told = [t for t in study.trials if t.state != optuna.trial.TrialState.FAIL]
    assert len(told) == 6  # one per Tune trial; any extra was asked for just before a kill and is FAIL


def saved_state(run_dir: Path) -> dict | None:
    try:
        return json.loads(max(run_dir.glob("experiment_state-*.json")).read_text())
    except (ValueError, OSError):  # not written yet, or caught mid-write
        return None


def kill_driver_once_saved(experiment: Path, run_dir: Path, trials: int, epochs: int) -> dict:
    """Start a search, kill -9 its driver once the saved state has ``trials`` trials past ``epochs``
    epochs each, wait until its workers stop writing checkpoints; returns that saved state."""
    def saved_past() -> bool:
        state = saved_state(run_dir)
        return bool(state) and len(state["trial_data"]) == trials and all(
            json.loads(meta).get("last_result", {}).get("training_iteration", 0) >= epochs
            for _, meta in state["trial_data"])

    driver = subprocess.Popen([sys.executable, "-m", "alphabet", "search", str(experiment)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(saved_past, what=f"a saved state with {epochs} epochs from {trials} trials", poll=0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        subprocess.run(["pkill", "-9", "-g", str(driver.pid)], check=False)

    # Ray's workers outlive the driver by a moment and may still write a checkpoint: wait until none
    # has appeared for 5 s before deleting any.
    def checkpoints() -> set[Path]:
        return set(run_dir.glob("trial_*/checkpoint_*"))

    seen, quiet_since = checkpoints(), time.time()
    while time.time() - quiet_since < 5:
        time.sleep(0.5)
        if (now := checkpoints()) != seen:
            seen, quiet_since = now, time.time()
    state = saved_state(run_dir)
    assert state, "no readable experiment state after the kill"
    return state


def stale_experiment(tmp_path: Path, name: str, trials: int) -> Path:
    config = json.loads(json.dumps(TINY_EXPERIMENT["config"]))
    config["data"]["synthetic_size"] = 2400  # epochs of about 2 s: the kill comes well before the end
    return write_experiment(tmp_path, name, config=config, asha={"max_t": 12, "grace_period": 12},
                            search={"num_samples": trials, "max_concurrent": 2, "seed": 0})


@pytest.mark.slowest  # over a minute: it trains two trials of 12 epochs around a kill
def test_resume_continues_trials_whose_recorded_checkpoint_was_deleted(tmp_path):
    # A kill -9 between Tune deleting a trial's oldest checkpoint and saving its state leaves a saved
    # state that names a deleted checkpoint (docs/RELIABILITY.md). Here the deletion is done by hand:
    # trial 1 loses the checkpoint its state names, trial 2 every checkpoint it has.
    experiment = stale_experiment(tmp_path, "stale", trials=2)
    run_dir = tmp_path / "search" / "stale"
    state = kill_driver_once_saved(experiment, run_dir, trials=2, epochs=2)
    recorded = {json.loads(trial)["trial_id"]: json.loads(meta)["last_result"]["checkpoint_dir_name"]
                for trial, meta in state["trial_data"]}
    assert len(recorded) == 2
    (one, named), (two, _) = sorted(recorded.items())
    dir_one, dir_two = (next(run_dir.glob(f"trial_*_{t}")) for t in (one, two))
    before = {d: results(d / "result.json") for d in (dir_one, dir_two)}
    assert all(len(rows) < 12 for rows in before.values()), "a trial finished before the kill; nothing to test"
    shutil.rmtree(dir_one / named, ignore_errors=True)  # gone already if the kill hit the real race
    survivors = sorted(p.name for p in dir_one.glob("checkpoint_*"))
    assert survivors, "keep_checkpoints=2 should leave one checkpoint besides the one the state names"
    survivor = survivors[-1]  # its result may not be logged yet: the kill can land in between
    survivor_epoch = load_checkpoint(dir_one / survivor / "trainer.pt")["trainer"]["epoch"]
    for folder in dir_two.glob("checkpoint_*"):
        shutil.rmtree(folder)
    resumed = alphabet("search", "--resume", run_dir, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Not "Traceback": a Ray worker ended at a trial's end may print one that says nothing about this.
    assert "Caught exception when deleting" not in resumed.stderr, resumed.stderr[-3000:]
    said = "\n".join(line for line in resumed.stderr.splitlines() if "the saved search state names" in line)
    assert f"trial {one}: the saved search state names {named}, which is no longer on storage; it continues " \
           f"from {survivor} (epoch {survivor_epoch})" in said, said
    assert f"trial {two}: the saved search state names" in said, said
    assert "it starts again from epoch 1 (no checkpoint left)" in said, said
    rows = {r.trial_id: r for r in trials_of(run_dir)}
    assert all(r.status == "completed" and r.epochs == 12 for r in rows.values()), rows

    def epochs_after_resume(trial_dir: Path) -> list[int]:
        old_pids = {r["pid"] for r in before[trial_dir]}
        return [r["training_iteration"] for r in results(trial_dir / "result.json") if r["pid"] not in old_pids]

    assert epochs_after_resume(dir_one) == list(range(survivor_epoch + 1, 13)), (survivor_epoch, said)
    assert epochs_after_resume(dir_two) == list(range(1, 13)), said
    # Numbered after the survivor: nothing written over a checkpoint still in use.
    assert max(dir_one.glob("checkpoint_*")).name > survivor
    study = optuna.load_study(study_name="stale", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


@pytest.mark.slowest  # about a minute: one trial of 12 epochs around a kill
def test_resume_forgets_an_older_kept_checkpoint_that_was_deleted(tmp_path):
    # The same race one checkpoint later: the state names a checkpoint still there, but the one kept
    # before it was deleted (a newer one came after the last save). Tune deleted it again at the
    # trial's next checkpoint, failed on the missing folder and ended the trial there.
    experiment = stale_experiment(tmp_path, "older", trials=1)
    run_dir = tmp_path / "search" / "older"
    state = kill_driver_once_saved(experiment, run_dir, trials=1, epochs=3)
    (trial, meta), = state["trial_data"]
    named = json.loads(meta)["last_result"]["checkpoint_dir_name"]
    trial_dir = next(run_dir.glob(f"trial_*_{json.loads(trial)['trial_id']}"))
    # At epoch 3 or later, keep_checkpoints=2 has the state keep the checkpoint before the one it names.
    index = int(named.rsplit("_", 1)[-1])
    assert index >= 1, named
    shutil.rmtree(trial_dir / f"checkpoint_{index - 1:06d}", ignore_errors=True)  # gone already in the real race
    assert (trial_dir / named).is_dir()
    resumed = alphabet("search", "--resume", run_dir, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Error handling checkpoint" not in resumed.stderr, resumed.stderr[-3000:]
    (row,) = trials_of(run_dir)
    assert row.status == "completed" and row.epochs == 12, row
