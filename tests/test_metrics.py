import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from alphabet.metrics import class_report, summary_metrics


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
