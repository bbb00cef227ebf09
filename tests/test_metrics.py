import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from alphabet.metrics import (
    calibration,
    calibration_text,
    class_report,
    confident_mistakes,
    headline,
    interval_of,
    resampled_balanced_accuracy,
    summary_metrics,
)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 500)
    logits = rng.normal(size=(500, 6)) + 2.0 * np.eye(6)[labels] * rng.random((500, 1))
    labels[labels == 5] = 4  # class 5 never occurs in the labels, only in predictions
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float32), 1)
    return probs, torch.tensor(labels)


def test_summary_matches_sklearn(predictions):
    probs, labels = predictions
    predicted = probs.argmax(1).numpy()
    ours = summary_metrics(probs, labels)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    with pytest.warns(UserWarning):  # sklearn warns about the class with no true samples
        expected = skm.balanced_accuracy_score(labels, predicted)
    assert ours["balanced_accuracy"] == pytest.approx(expected)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"))


def test_per_class_and_one_vs_rest_auc_match_sklearn(predictions):
    probs, labels = predictions
    report = class_report(probs, labels, list("abcdef"))
    predicted = probs.argmax(1).numpy()
    present = [0, 1, 2, 3, 4]
    np.testing.assert_allclose(report.recall[present],
                               skm.recall_score(labels, predicted, labels=present, average=None))
    np.testing.assert_allclose(report.precision[present],
                               skm.precision_score(labels, predicted, labels=present, average=None, zero_division=0))
    np.testing.assert_allclose(report.f1[present], skm.f1_score(labels, predicted, labels=present, average=None))
    for c in present:
        assert report.auc[c] == pytest.approx(skm.roc_auc_score(labels == c, probs[:, c]))
    assert np.isnan(report.auc[5])
    assert report.summary["macro_auc"] == pytest.approx(np.mean(report.auc[present]))
    np.testing.assert_array_equal(report.confusion, skm.confusion_matrix(labels, predicted, labels=range(6)))


def test_auc_uses_probabilities_not_correctness():
    # Perfectly ranked probabilities but every argmax wrong: accuracy 0, AUC 1.
    labels = torch.tensor([0, 0, 1, 1])
    probs = torch.tensor([[0.45, 0.55], [0.4, 0.6], [0.7, 0.3], [0.65, 0.35]])
    report = class_report(probs, labels, ["a", "b"])
    assert report.summary["accuracy"] == 0
    assert report.auc.tolist() == [0.0, 0.0]
    flipped = class_report(probs.flip(1), labels, ["a", "b"])
    assert flipped.auc.tolist() == [1.0, 1.0]


def test_most_confused_pairs():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    probs = torch.nn.functional.one_hot(torch.tensor([1, 1, 0, 1, 2, 2]), 3).float()
    report = class_report(probs, labels, ["i", "l", "j"])
    assert report.most_confused(2) == [("i", "l", 2), ("l", "j", 1)]
    assert report.to_json()["most_confused"][0] == {"true": "i", "predicted": "l", "count": 2}


def test_confident_mistakes_put_the_least_believed_label_first():
    labels = torch.tensor([0, 1, 2, 0, 1])
    probs = torch.tensor([[0.9, 0.05, 0.05],   # right
                          [0.6, 0.3, 0.1],     # wrong, its label at 0.3
                          [0.1, 0.89, 0.01],   # wrong, its label at 0.01: a wrong label, perhaps
                          [0.4, 0.5, 0.1],     # wrong, its label at 0.4
                          [0.2, 0.7, 0.1]])    # right
    assert confident_mistakes(probs, labels, 10).tolist() == [2, 1, 3]
    assert confident_mistakes(probs, labels, 2).tolist() == [2, 1]
    assert confident_mistakes(probs[[0, 4]], labels[[0, 4]], 10).tolist() == []


def skilled_writers(n=600, n_writers=40, seed=1):
    """Labels of 5 classes and predictions whose accuracy depends on who wrote the letter."""
    rng = np.random.default_rng(seed)
    writers = rng.integers(0, n_writers, n)
    labels = rng.integers(0, 5, n)
    skill = rng.random(n_writers)
    predicted = np.where(rng.random(n) < 0.6 + 0.4 * skill[writers], labels, (labels + 1) % 5)
    return labels, predicted, np.array([f"w{w:02d}" for w in writers])


def test_writer_bootstrap_resamples_whole_writers():
    labels, predicted, writers = skilled_writers()
    drawn = resampled_balanced_accuracy(labels, [predicted], 5, writers, resamples=200)[0]
    # By hand: the same multinomial draws of the 40 writers, each drawn writer's letters repeated.
    rng, index = np.random.default_rng(0), np.unique(writers, return_inverse=True)[1]
    by_hand = []
    for _ in range(2):
        for counts in rng.multinomial(40, np.full(40, 1 / 40), size=100):
            rows = np.concatenate([np.repeat(np.flatnonzero(index == w), counts[w]) for w in range(40)])
            by_hand.append(skm.balanced_accuracy_score(labels[rows], predicted[rows]))
    np.testing.assert_allclose(drawn, by_hand)


def test_an_interval_over_writers_is_wider_when_writers_differ():
    labels, predicted, writers = skilled_writers()
    point = skm.balanced_accuracy_score(labels, predicted)
    by_writer = interval_of(resampled_balanced_accuracy(labels, [predicted], 5, writers)[0], labels, writers)
    by_image = interval_of(resampled_balanced_accuracy(labels, [predicted], 5)[0], labels, None)
    assert (by_writer.unit, by_writer.groups, by_image.unit, by_image.groups) == ("writers", 40, "images", 600)
    for interval in (by_writer, by_image):
        assert interval.low < point < interval.high
    assert by_writer.high - by_writer.low > 1.2 * (by_image.high - by_image.low)
    # Images are drawn by kind (class, right or wrong): the same spread as drawing the images themselves.
    rng = np.random.default_rng(5)
    rows = rng.integers(0, len(labels), (1000, len(labels)))
    by_hand = [skm.balanced_accuracy_score(labels[r], predicted[r]) for r in rows]
    assert np.std(resampled_balanced_accuracy(labels, [predicted], 5)[0]) == pytest.approx(np.std(by_hand), rel=0.15)


def test_reports_carry_the_interval(predictions):
    probs, labels = predictions
    report = class_report(probs, labels, list("abcdef"))
    shown = report.to_json()
    assert shown["balanced_accuracy_interval"]["resampled"] == "images"
    assert shown["balanced_accuracy_interval"]["low"] < shown["balanced_accuracy"]
    line = headline(shown)
    assert line.startswith(f"balanced accuracy {shown['balanced_accuracy']:.4f} (95% CI ")
    assert "over 500 images" in line


def test_a_paired_difference_is_zero_against_itself_and_clear_against_chance():
    labels, predicted, writers = skilled_writers()
    chance = np.random.default_rng(2).integers(0, 5, len(labels))
    same, other, guess = resampled_balanced_accuracy(labels, [predicted, predicted.copy(), chance], 5, writers)
    assert not (same - other).any()  # paired: the same resamples for both
    gap = interval_of(guess - same, labels, writers)
    assert gap.high < -0.2  # about 0.8 against 0.2, on every resample


def test_calibration_is_zero_where_the_top_probability_is_the_share_read_right():
    # 1,000 letters said at 0.75, 750 of them right; 500 said at 1.0 (the last bin's edge), all right.
    probs = np.zeros((1500, 2))
    probs[:1000] = [0.75, 0.25]
    probs[1000:] = [1.0, 0.0]
    labels = np.zeros(1500, dtype=int)
    labels[750:1000] = 1
    found = calibration(probs, labels)
    assert found.ece == pytest.approx(0.0, abs=1e-12)
    assert found.count.sum() == 1500 and found.count[-1] == 500 and found.count[11] == 1000  # (0.733, 0.8]
    assert found.accuracy[11] == pytest.approx(0.75) and found.confidence[-1] == pytest.approx(1.0)
    assert np.isnan(found.accuracy[0])  # an empty bin has no accuracy
    at = {a["threshold"]: a for a in found.accepted}
    assert at[0.5]["share"] == pytest.approx(1.0) and at[0.5]["accuracy"] == pytest.approx(1250 / 1500)
    assert at[0.8]["share"] == pytest.approx(1 / 3) and at[0.8]["accuracy"] == pytest.approx(1.0)
    share, accuracy = found.curve
    assert share[-1] == pytest.approx(1.0) and accuracy[499] == pytest.approx(1.0)  # the surest first
    assert accuracy[-1] == pytest.approx(1250 / 1500)


def test_an_over_confident_model_has_the_gap_as_its_calibration_error():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    predicted = np.where(rng.random(2000) < 0.5, labels, (labels + 1) % 4)  # half of them right
    probs = np.full((2000, 4), 0.01 / 3)
    probs[np.arange(2000), predicted] = 0.99  # yet sure of every one
    found = calibration(probs, labels)
    right = float((predicted == labels).mean())
    assert found.ece == pytest.approx(0.99 - right)
    line = calibration_text(found.to_json())
    assert line.startswith(f"calibration: ECE {0.99 - right:.4f}; mean top probability 0.9900 against accuracy "
                           f"{right:.4f} (over-confident); top probability >= 0.9: 100.0% of the letters")
    # 1,000 more said at 0.5, half of them right: no gap there, and the error is weighted by letters.
    unsure = np.full((1000, 4), 0.5 / 3)
    unsure[:, 0] = 0.5
    more = calibration(np.concatenate([probs, unsure]), np.concatenate([labels, np.repeat([0, 1], 500)]))
    assert more.ece == pytest.approx((0.99 - right) * 2000 / 3000)


def test_reports_carry_their_calibration(predictions):
    probs, labels = predictions
    shown = class_report(probs, labels, list("abcdef")).to_json()
    assert shown["ece"] == shown["calibration"]["ece"] > 0
    assert sum(b["count"] for b in shown["calibration"]["bins"]) == len(labels)
    json.dumps(shown)  # metrics.json takes it as it is: no NaN, no numpy types
