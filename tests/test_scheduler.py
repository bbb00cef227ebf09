"""ASHA's rungs across a resume: filled again from what the saved trials reported."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.scheduler import ResumableASHA

METRIC = "val_balanced_accuracy"


def saved_trial(folder: Path, trial_id: str, reported: list[float], reached: int) -> SimpleNamespace:
    """A trial as Tune adds it back on resume: its saved state counts ``reached`` epochs, and its
    result.json holds ``reported`` (which may run an epoch past that: a kill after the last save)."""
    (folder / trial_id).mkdir()
    (folder / trial_id / "result.json").write_text("".join(
        json.dumps({"training_iteration": epoch, METRIC: value}) + "\n" for epoch, value in enumerate(reported, 1)))
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(folder / trial_id))
    return SimpleNamespace(trial_id=trial_id, last_result={"training_iteration": reached} if reached else {},
                           storage=storage)


def resumed(scheduler_class: type, tmp_path: Path) -> tuple[ASHAScheduler, dict]:
    """A search interrupted with trial a finished and b under way at epoch 5, added back to a
    scheduler as Tune's resume does (rungs at epochs 2, 4 and 8)."""
    tmp_path.mkdir(exist_ok=True)
    scheduler = scheduler_class(time_attr="training_iteration", metric=METRIC, mode="max", max_t=8, grace_period=2,
                                reduction_factor=2)
    trials = {"a": saved_trial(tmp_path, "a", [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.65], reached=8),
              "b": saved_trial(tmp_path, "b", [0.1, 0.25, 0.3, 0.35, 0.4, 0.41], reached=5),
              "c": saved_trial(tmp_path, "c", [], reached=0)}  # started after the resume
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)
    return scheduler, trials


def report(scheduler: ASHAScheduler, trial: SimpleNamespace, epoch: int, value: float) -> str:
    return scheduler.on_trial_result(None, trial, {"training_iteration": epoch, METRIC: value})


def test_the_rungs_hold_what_the_saved_trials_reported_there(tmp_path):
    scheduler, _ = resumed(ResumableASHA, tmp_path)
    rungs = {milestone: recorded for milestone, recorded in scheduler._brackets[0]._rungs}
    # b's sixth report came after the last save; it reports that epoch again, and ASHA judges it then
    assert rungs == {8: {"a": 0.65}, 4: {"a": 0.5, "b": 0.35}, 2: {"a": 0.3, "b": 0.25}}


def test_a_trial_under_way_is_not_judged_again_at_a_rung_it_passed(tmp_path):
    for scheduler_class, expected in ((ASHAScheduler, TrialScheduler.STOP), (ResumableASHA, TrialScheduler.CONTINUE)):
        scheduler, trials = resumed(scheduler_class, tmp_path / scheduler_class.__name__)
        assert report(scheduler, trials["c"], 4, 0.6) == TrialScheduler.CONTINUE
        # Tune's own ASHA, its rungs empty, judged b's epoch 6 against c's epoch 4 and ended it at no rung
        assert report(scheduler, trials["b"], 6, 0.41) == expected, scheduler_class


def test_a_trial_started_after_the_resume_is_judged_against_those_before_it(tmp_path):
    for scheduler_class, expected in ((ASHAScheduler, TrialScheduler.CONTINUE), (ResumableASHA, TrialScheduler.STOP)):
        scheduler, trials = resumed(scheduler_class, tmp_path / scheduler_class.__name__)
        # below both a's and b's epoch 2: pruned, as it would have been without the interruption
        assert report(scheduler, trials["c"], 2, 0.2) == expected, scheduler_class


def test_a_refused_trial_is_left_out_of_the_rungs(tmp_path):
    # Trial r's settings were refused: it reported the worst value once and trained nothing. Counted at
    # the rung, it would let d through there; left out, d is judged against b alone, and stopped.
    for scheduler_class, expected in ((ASHAScheduler, TrialScheduler.CONTINUE), (ResumableASHA, TrialScheduler.STOP)):
        scheduler = scheduler_class(time_attr="training_iteration", metric=METRIC, mode="max", max_t=4,
                                    grace_period=1, reduction_factor=2)
        trials = {name: SimpleNamespace(trial_id=name, last_result={}) for name in "rbd"}
        for trial in trials.values():
            scheduler.on_trial_add(None, trial)
        refused = {"training_iteration": 1, METRIC: 0.0, "refused": "model: too big"}
        scheduler.on_trial_result(None, trials["r"], refused)
        scheduler.on_trial_complete(None, trials["r"], refused)
        assert report(scheduler, trials["b"], 1, 0.5) == TrialScheduler.CONTINUE
        assert report(scheduler, trials["d"], 1, 0.3) == expected, scheduler_class
        rung = dict(scheduler._brackets[0]._rungs)[1]
        assert ("r" in rung) == (scheduler_class is ASHAScheduler)
