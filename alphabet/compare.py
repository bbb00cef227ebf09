"""Two classifiers on the same letters: is one really better, or is the gap within the test set's noise?

Both score the same images; the difference in balanced accuracy gets a paired
bootstrap interval (the same resamples for both, by writer where the data names
writers). A gap whose interval holds 0 is one this test set cannot tell apart
from chance, however many times the two are run against it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alphabet.engine import pick_device
from alphabet.ensemble import Classifier, load_classifier
from alphabet.errors import UserError
from alphabet.evaluate import classifier_data, same_source, source_scored, split_shown
from alphabet.metrics import (
    balanced_accuracy_interval,
    confusion_matrix,
    interval_of,
    interval_text,
    resampled_balanced_accuracy,
    summary_from_confusion,
)

# The data settings that decide which letters a run holds out for its test; the rest (val_fraction,
# per-class limits of training, where EMNIST's files are) leave them where they are.
TEST_LETTERS_KEYS = ("source", "test_source", "test_fraction", "split_seed", "synthetic_size", "synthetic_test_size",
                     "synthetic_seed")


def test_letters_apart(first: Classifier, second: Classifier) -> list[str]:
    """The settings in which ``second``'s training run held out other test letters than ``first``'s: by
    default the letters compared are ``first``'s, and ``second`` may have trained on some of them."""
    a, b = first.config.data, second.config.data
    apart = []
    for key in TEST_LETTERS_KEYS:
        x, y = getattr(a, key), getattr(b, key)
        same = same_source(x, y) if key.endswith("source") and x and y else x == y
        if not same:
            apart.append(f"data.{key}")
    return apart


def compare_classifiers(first: str | Path, second: str | Path, source: str | None, split: str = "test",
                        case: str | None = None, tta: str | None = None, root: str | None = None,
                        download: bool = False) -> dict:
    """Score ``first`` and ``second`` on ``source`` (read as ``first`` was trained; None: the test letters
    of ``first``'s training run) and compare them;
    ``tta`` ("both", "first" or "second") scores those with test-time augmentation."""
    device = pick_device("auto")
    a = load_classifier(first, device, tta=tta in ("both", "first"))
    b = load_classifier(second, device, tta=tta in ("both", "second"))
    if a.classes != b.classes:
        raise UserError(f"{second}: classes {''.join(b.classes)} differ from {first}'s; expected two "
                        f"classifiers of the same letters ({''.join(a.classes)})")
    data = classifier_data(a, source, split, case, root, download)
    predicted = [m.predict_probs(data).argmax(1).cpu().numpy() for m in (a, b)]
    scores = []
    for path, pred in zip((first, second), predicted, strict=True):
        cm = confusion_matrix(torch.from_numpy(data.labels), torch.from_numpy(pred), len(a.classes))
        # Alone, as evaluate gives it; the difference below draws both on the same resamples.
        scores.append({"checkpoint": str(path), **summary_from_confusion(cm),
                       "balanced_accuracy_interval": balanced_accuracy_interval(
                           data.labels, pred, len(a.classes), data.writers).to_json()})
    samples = resampled_balanced_accuracy(data.labels, predicted, len(a.classes), data.writers)
    difference = interval_of(samples[1] - samples[0], data.labels, data.writers)
    right = [pred == data.labels for pred in predicted]
    return {
        "source": source_scored(a, source), "split": split, "own_test": source is None, "tta": tta,
        "images": len(data),
        "first": scores[0], "second": scores[1],
        "difference": {"balanced_accuracy": scores[1]["balanced_accuracy"] - scores[0]["balanced_accuracy"],
                       "interval": difference.to_json()},
        "only_first_right": int((right[0] & ~right[1]).sum()),
        "only_second_right": int((right[1] & ~right[0]).sum()),
        "second_held_out_otherwise": test_letters_apart(a, b) if source is None else [],
    }


def verdict(result: dict) -> str:
    """What the interval of the difference says, in words."""
    interval = result["difference"]["interval"]
    level = f"{interval['level']:.0%}"
    if interval["low"] > 0:
        return f"the second is better: the whole {level} interval is above 0"
    if interval["high"] < 0:
        return f"the first is better: the whole {level} interval is below 0"
    return f"no difference this test set can show: the {level} interval holds 0"


def describe(result: dict) -> list[str]:
    """The comparison as lines of text."""
    tta = {"both": ", test-time augmentation", "first": ", test-time augmentation for the first only",
           "second": ", test-time augmentation for the second only"}.get(result["tta"], "")
    shown = split_shown(result["split"], tta, result["own_test"])
    lines = [f"{result['images']} images from {result['source']} ({shown})"]
    for name in ("first", "second"):
        score, interval = result[name], result[name]["balanced_accuracy_interval"]
        lines.append(f"{name:>6}: balanced accuracy {score['balanced_accuracy']:.4f} ({interval_text(interval)}), "
                     f"accuracy {score['accuracy']:.4f}  {score['checkpoint']}")
    diff = result["difference"]
    interval = diff["interval"]
    lines.append(f"second - first: {diff['balanced_accuracy']:+.4f} ({interval_text(interval, signed=True)}, "
                 f"paired, over {interval['groups']} {interval['resampled']}): {verdict(result)}")
    lines.append(f"letters only the first got right: {result['only_first_right']}; "
                 f"only the second: {result['only_second_right']}")
    if result["second_held_out_otherwise"]:
        lines.append(f"note: the second's training run held out its test letters otherwise "
                     f"({', '.join(result['second_held_out_otherwise'])}), so it may have trained on some of "
                     "these; --data SOURCE names letters neither trained on")
    return lines
