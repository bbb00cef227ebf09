"""Search results read from a real Optuna study (parameter importances and their caveats), and what a
retrain's report says."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from alphabet.config import Config
from alphabet.errors import UserError
from alphabet.metrics import calibration
from search.experiment import Experiment, Storage
from search.results import best_score_text, importances, summary_text
from search.retrain import calibration_lines
from search.storage import RunLocation


def test_optunas_caveat_on_a_rarely_sampled_parameter_becomes_a_note(tmp_path):
    location = RunLocation.parse(str(tmp_path / "run"))
    study = optuna.create_study(study_name="s", storage=location.optuna_storage(), direction="maximize")
    for i in range(10):
        # momentum exists only for SGD, which one trial of ten used: too few to judge it
        optimizer = "sgd" if i == 0 else "adamw"
        params = {"train.optimizer": optimizer, "train.lr": 0.001 * (i + 1)}
        distributions = {"train.optimizer": CategoricalDistribution(["adamw", "sgd"]),
                         "train.lr": FloatDistribution(0.001, 0.01)}
        if optimizer == "sgd":
            params["train.momentum"] = 0.9
            distributions["train.momentum"] = FloatDistribution(0.8, 0.98)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=0.5 + i / 100))
    experiment = Experiment(config=Config(), space=[], storage=Storage(path=str(tmp_path), name="s"))

    found, note = importances(location, experiment)

    assert set(found) == {"train.optimizer", "train.lr", "train.momentum"}
    assert "train.momentum" in note and "inaccurate" in note
    summary = {"best": {"value": 0.59, "trial_id": "t", "rank_epochs": 1, "peak": 0.6, "peak_epoch": 3, "epochs": 4,
                        "params": {}}, "metric": "val_balanced_accuracy",
               "trials": {"completed": 10, "pruned": 0, "stopped": 0, "error": 0, "unfinished": 0},
               "rung_stops": {}, "trial_epochs": 40, "trial_seconds": 1.0, "disk_bytes": None,
               "importances": found, "importances_note": note}
    lines = summary_text(summary).splitlines()
    assert lines[-2].startswith("importances: ") and lines[-1] == f"  {note}"


def test_a_search_with_fewer_than_two_complete_trials_says_it_has_no_importances_yet(tmp_path):
    # As a search interrupted early leaves it: Optuna's words were "Parameter importances will be equal",
    # beside one parameter at 1.0, or none at all with no complete trial.
    location = RunLocation.parse(str(tmp_path / "run"))
    study = optuna.create_study(study_name="s", storage=location.optuna_storage(), direction="maximize")
    lr = {"train.lr": FloatDistribution(0.001, 0.01)}
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.002}, distributions=lr, value=0.5))
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.003}, distributions=lr,
                                              state=optuna.trial.TrialState.PRUNED))
    experiment = Experiment(config=Config(), space=[], storage=Storage(path=str(tmp_path), name="s"))

    found, note = importances(location, experiment)

    assert found == {} and note == "none yet: Optuna weighs them over two or more complete trials (1 so far)"
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.004}, distributions=lr, value=0.6))
    assert set(importances(location, experiment)[0]) == {"train.lr"}


def test_importances_optuna_cannot_tell_apart_are_not_shown_as_figures(tmp_path):
    # A smoke test's trials all at chance: Optuna weighed six parameters 0.17 each, which reads as news.
    location = RunLocation.parse(str(tmp_path / "run"))
    study = optuna.create_study(study_name="s", storage=location.optuna_storage(), direction="maximize")
    space = {"train.lr": FloatDistribution(0.001, 0.01), "model.dropout": FloatDistribution(0.0, 0.5)}
    for i in range(4):
        study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.001 * (i + 1), "model.dropout": 0.1 * i},
                                                  distributions=space, value=0.0385))
    experiment = Experiment(config=Config(), space=[], storage=Storage(path=str(tmp_path), name="s"))

    assert importances(location, experiment) == (
        {}, "none: over these 4 complete trials (too few, or all scoring alike) Optuna weighs every parameter "
            "the same, which says nothing")
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.01, "model.dropout": 0.0}, distributions=space,
                                              value=0.9))
    assert set(importances(location, experiment)[0]) == {"train.lr", "model.dropout"}


def test_the_summary_curve_follows_the_order_of_the_reports_not_of_the_trial_ids():
    from search.results import TrialRow, best_so_far

    # Trial ids are random: "ffff" started first and reported at t=10 and t=30, "0000" at t=20.
    first = TrialRow("ffff", "completed", {}, 0.9, 0.9, 2, 2, 2.0, reports=[(10.0, 0.5), (30.0, 0.9)])
    second = TrialRow("0000", "pruned", {}, 0.7, 0.7, 1, 1, 1.0, reports=[(20.0, 0.7)])

    assert best_so_far([second, first], "max") == [(1, 0.5), (2, 0.7), (3, 0.9)]
    assert best_so_far([second, first], "min") == [(1, 0.5), (2, 0.5), (3, 0.5)]


def test_the_best_score_says_what_it_averages_also_for_searches_that_ranked_by_the_peak():
    assert best_score_text({"value": 0.93881, "rank_epochs": 6}) == "0.9388 over its last 6 epochs"
    assert best_score_text({"value": 0.9, "rank_epochs": 1}) == "0.9000 over its last epoch"
    # summary.json of a search before rank_epochs: its value was the trial's best epoch
    assert best_score_text({"value": 0.94551, "epoch": 41}) == "0.9455 at its peak, epoch 41"


def test_the_trials_table_gives_every_metric_to_the_same_places():
    from search.results import TrialRow, trials_table

    rows = [TrialRow("a", "completed", {"train.lr": 0.0073971}, 0.93881, 0.943, 43, 60, 1.0, interval=(0.92, 0.95)),
            TrialRow("b", "pruned", {"train.lr": 0.002}, 0.9, 0.91234, 2, 3, 1.0),
            TrialRow("c", "refused", {"train.lr": 0.001}, math.nan, math.nan, 0, 0, 0.0, reason="too big")]
    a, b, c = (line.split() for line in trials_table(rows, "val_balanced_accuracy", 6).splitlines()[1:4])

    assert a[:7] == ["a", "completed", "0.9388", "0.9200-0.9500", "0.9430", "43", "60"]
    assert b[:7] == ["b", "pruned", "0.9000", "-", "0.9123", "2", "3"]
    assert c[:7] == ["c", "refused", "-", "-", "-", "-", "0"]  # no score, rather than nan
    assert a[7] == "0.007397" and b[7] == "0.002"  # parameters keep their significant figures


@pytest.mark.parametrize(("others", "said"), [
    (0, "no other trial scores within it"),
    (1, "1 other trial scores within it (t1), and these letters cannot rank it against this one"),
    (3, "3 other trials score within it (t1, t2, t3), and these letters cannot rank them against this one"),
    (7, "7 other trials score within it (t1, t2, t3, t4, t5, ...), and these letters cannot rank them against "
        "this one"),
])
def test_the_summary_says_which_trials_the_validation_letters_cannot_rank(others, said):
    summary = {"best": {"value": 0.95, "trial_id": "t", "rank_epochs": 1, "peak": 0.95, "peak_epoch": 6, "epochs": 6,
                        "params": {}, "interval": [0.93, 0.96]}, "metric": "val_balanced_accuracy",
               "within_interval": others, "within_interval_trials": [f"t{i + 1}" for i in range(others)],
               "trials": {"completed": 4, "pruned": 0, "stopped": 0, "error": 0, "unfinished": 0},
               "rung_stops": {}, "trial_epochs": 24, "trial_seconds": 1.0, "disk_bytes": None,
               "importances": {}, "importances_note": ""}
    line = summary_text(summary).splitlines()[2]
    assert line == f"  95% interval from the validation letters alone: 0.9300 to 0.9600; {said}"


def test_the_trials_search_first_trials_gave_are_marked_in_the_table_and_the_summary():
    from search.results import TrialRow, trials_table

    rows = [TrialRow("a", "completed", {"train.lr": 0.004}, 0.95, 0.95, 6, 6, 1.0),
            TrialRow("b", "completed", {"train.lr": 0.003}, 0.93, 0.93, 6, 6, 1.0, given=True),
            TrialRow("c", "error", {"train.lr": 0.1}, math.nan, math.nan, 0, 0, 1.0, given=True, reason="E: e")]
    table = trials_table(rows, "val_balanced_accuracy", 1).splitlines()

    assert [line.split()[0] for line in table[1:4]] == ["a", "b*", "c*"]
    assert table[-2:] == ["* its settings were given by search.first_trials", "trial c failed: E: e"]
    assert "*" not in trials_table(rows[:1], "val_balanced_accuracy", 1)  # no footnote without a given trial
    summary = {"best": {"value": 0.95, "trial_id": "a", "rank_epochs": 1, "peak": 0.95, "peak_epoch": 6, "epochs": 6,
                        "params": {}}, "metric": "val_balanced_accuracy",
               "given": [{"trial_id": "b", "value": 0.93, "rank": 2, "of": 2},
                         {"trial_id": "c", "value": None, "rank": None, "of": 2}],
               "trials": {"completed": 2, "pruned": 0, "stopped": 0, "error": 1, "unfinished": 0},
               "rung_stops": {}, "trial_epochs": 12, "trial_seconds": 1.0, "disk_bytes": None,
               "importances": {}, "importances_note": ""}
    assert summary_text(summary).splitlines()[2] == ("given by search.first_trials: trial b 0.9300 (rank 2 of 2), "
                                                     "trial c no score")


RAY_ERROR_TXT = """Failure # 1 (occurred at 2026-12-05_23-53-10)
ray::ImplicitFunc.train() (pid=28668, ip=192.0.2.2, actor_id=2c1e, repr=train_trial)
  File "/work/main/alphabet/engine.py", line 73, in check_fits_memory
    raise UserError(f"model: {parameters:,} parameters need about")
alphabet.errors.UserError: model: 5,670 parameters need about 105 GiB
Failure # 2 (occurred at 2026-12-05_23-53-14)
ray::ImplicitFunc.train() (pid=28759, ip=192.0.2.2, actor_id=2c1e, repr=train_trial)
  File "/site-packages/torch/nn/modules/conv.py", line 548, in forward
    return self._conv_forward(input, self.weight, self.bias)
RuntimeError: Given groups=1, weight of size [8, 1, 3, 3], expected input[2, 3, 28, 28]

The above exception was the direct cause of:

ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: 2c1e
"""


@pytest.mark.parametrize(("text", "said"), [
    (RAY_ERROR_TXT.split("Failure # 2")[0], "model: 5,670 parameters need about 105 GiB"),  # our own: its line only
    ("Failure # 2" + RAY_ERROR_TXT.split("Failure # 2")[1].split("\n\nThe above")[0],
     "RuntimeError: Given groups=1, weight of size [8, 1, 3, 3], expected input[2, 3, 28, 28]"),
    (RAY_ERROR_TXT, "ActorDiedError: The actor died unexpectedly before finishing this task."),  # the last one
    ("something odd\n\n", "something odd"),
    (None, "no error.txt in its folder"),
])
def test_an_errored_trial_is_listed_with_the_exception_that_ended_it(tmp_path, text, said):
    from types import SimpleNamespace

    from search.results import error_line

    if text is not None:
        (tmp_path / "trial_001_x").mkdir()
        (tmp_path / "trial_001_x" / "error.txt").write_text(text)
    trial = SimpleNamespace(storage=SimpleNamespace(trial_dir_name="trial_001_x"))
    assert error_line(RunLocation.parse(str(tmp_path)), trial) == said


def test_trials_ended_for_one_reason_are_listed_under_it_once():
    from search.results import TrialRow, ended_early, ended_early_lines

    too_big = "model: 9 parameters need about 9 GiB to train; expected a smaller model.width (300000)"
    rows = [TrialRow("a", "completed", {}, 0.9, 0.9, 2, 2, 1.0),
            TrialRow("b", "refused", {}, math.nan, math.nan, 0, 0, 0.0, reason=too_big),
            TrialRow("c", "error", {}, math.nan, math.nan, 0, 0, 0.0, reason="ActorDiedError: it died"),
            TrialRow("d", "refused", {}, math.nan, math.nan, 0, 0, 0.0, reason=too_big)]

    assert ended_early_lines(ended_early(rows)) == [f"2 trials (b, d) refused: {too_big}",
                                                    "trial c failed: ActorDiedError: it died"]


def test_a_search_whose_every_trial_was_refused_says_why(tmp_path):
    from search.results import TrialRow, write_results

    reason = "train.batch_size: out of memory on cuda:0 at batch 4096; expected a smaller train.batch_size or model"
    rows = [TrialRow(t, "refused", {}, math.nan, math.nan, 0, 0, 0.0, reason=reason) for t in ("a", "b")]
    experiment = Experiment(config=Config(), space=[], storage=Storage(path=str(tmp_path), name="s"))
    with pytest.raises(UserError) as refused:
        write_results(RunLocation.parse(str(tmp_path / "s")), experiment, rows=rows)
    assert str(refused.value).endswith(f"no trial reported val_balanced_accuracy; nothing to export "
                                       f"(2 of 2 trials ended early; 2 trials (a, b) refused: {reason})")


def test_a_search_whose_budget_ran_out_before_any_epoch_names_the_budget(tmp_path):
    # What `alphabet search` ends with then (tests/test_search.py runs such a search: make test-all).
    from search.experiment import SearchSettings
    from search.results import TrialRow, write_results

    rows = [TrialRow(t, "stopped", {}, math.nan, math.nan, 0, 0, 0.4) for t in ("a", "b")]
    experiment = Experiment(config=Config(), space=[], storage=Storage(path=str(tmp_path), name="s"),
                            search=SearchSettings(time_budget_s=1))
    with pytest.raises(UserError) as ended:
        write_results(RunLocation.parse(str(tmp_path / "s")), experiment, rows=rows)
    assert str(ended.value) == (f"{tmp_path / 's'}: no trial reported val_balanced_accuracy; nothing to export "
                                "(search.time_budget_s: 1 s; if it ran out before any trial's first epoch, "
                                "expected a budget longer than a trial's start and first epoch)")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_retrain_report_says_when_no_letter_reaches_a_threshold_of_acceptance():
    labels = np.arange(52) % 26
    at_chance = np.full((52, 26), 1 / 26)  # a retrain that learnt nothing: its table had headings and no row
    sure = np.eye(26)[labels] * 0.9 + 0.1 / 26
    for probs, accuracy in ((at_chance, 1 / 26), (sure, 1.0)):
        shown = calibration(probs, labels).to_json()
        test = {"ece": shown["ece"], "accuracy": accuracy, "calibration": shown}
        lines = calibration_lines(test)
        assert lines[1].startswith(f"Calibration: ECE {shown['ece']:.4f}")
        if probs is at_chance:
            assert lines[3:] == ["No test letter's top probability reaches 0.5, the lowest threshold of acceptance."]
        else:  # 0.9 + 0.1/26 reaches 0.5, 0.8 and 0.9, not 0.95 or 0.99
            assert lines[5:] == [f"| {t} | 100.0% | 100.00% |" for t in (0.5, 0.8, 0.9)]
