"""A word list that reads a word's letters as the likeliest word in it (``alphabet predict --lexicon``).

A handwritten g and q, or an undotted i and an l, can be drawn alike; letter by letter they are a
guess, but in a word only one of them usually spells something. Each word of the list with as many
letters as were read is scored by the product of its letters' probabilities (times its share of
the counts, where the list gives counts), and the scores are normalised over those words. Where
letters touch and the ink can be cut more than one way (``rank_readings``), the words of every
reading compete. That probability assumes the word is in the list: a word outside it still gets
the closest listed one. Where a gap between letters may or may not be a space, the ways of parting
a line compare by how likely their words are listed (``log_evidence``).

The file holds one word a line, optionally followed by a count (a frequency list's ``the 23135851``),
in UTF-8, gzipped where its name ends in ``.gz``; blank lines and lines starting with ``#`` are
skipped. Words are matched case-insensitively: a model of lowercase letters reads ``Paris``, and a
model of both cases counts an h and an H alike. Words with a character the model does not read
(``don't``, ``x2``) are left out, and counted.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alphabet.errors import UserError

# A letter's probability is never taken as exactly 0, so one badly read letter lowers a word's score
# without ruling it out.
FLOOR = 1e-12


@dataclass(frozen=True)
class Lexicon:
    """The words of a list, grouped by length, as indices into the model's case-folded letters."""

    path: str
    classes: list[str]  # the model's classes, in its probabilities' order
    folded: np.ndarray  # (C, K) 0/1: which case-folded letter (``letters``) each class is
    letters: str  # the case-folded letters, in ``folded``'s column order
    words: dict[int, list[str]]  # length -> words as spelled in the file
    spelled: dict[int, np.ndarray]  # length -> (n, length) indices into ``letters``
    log_prior: dict[int, np.ndarray]  # length -> (n,) log of each word's share of the counts
    left_out: int  # words with a character the model does not read

    def scores(self, probs: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The words of as many letters as ``probs`` (length, C) has rows, and the log of each one's
        probability with those letters' (the product of its letters' probabilities, times its share of
        the counts), not yet normalised."""
        length = len(probs)
        if length not in self.words:
            return [], np.empty(0)
        log_letters = np.log(np.maximum(np.asarray(probs, np.float64) @ self.folded, FLOOR))  # (length, K)
        return self.words[length], (log_letters[np.arange(length), self.spelled[length]].sum(1)
                                    + self.log_prior[length])

    def log_evidence(self, readings: Sequence[np.ndarray]) -> float:
        """How likely one piece of ink is some listed word: the log of the summed scores (``scores``) of
        the words of each reading's length, for the reading where that is largest; -inf where no reading
        has a listed word of its length. Ways of parting a row into words compare by the sum of their
        words' evidence, as each word's share of the counts enters once a word."""
        summed = [np.logaddexp.reduce(score) for _, score in map(self.scores, readings) if len(score)]
        return float(max(summed, default=-np.inf))

    def rank(self, probs: np.ndarray, top_k: int = 3) -> list[tuple[str, float]]:
        """For a word's letters' probabilities over the model's classes, (length, C), the ``top_k``
        words of that length with their probabilities among them, surest first; [] if it has none."""
        return self.rank_readings([probs], top_k)[1]

    def rank_readings(self, readings: Sequence[np.ndarray], top_k: int = 3) -> tuple[int, list[tuple[str, float]]]:
        """For several readings of one word's ink, each its letters' probabilities (length, C) (the ways
        of cutting letters that touch, which may differ in length): the reading that spells the likeliest
        word most probably, and the ``top_k`` words with their probabilities over all readings, surest
        first. Reading 0 and [] when no reading has a listed word of its length."""
        scored = [self.scores(probs) for probs in readings]
        if not any(len(words) for words, _ in scored):
            return 0, []
        score = np.concatenate([score for _, score in scored])
        share = np.exp(score - score.max())
        share /= share.sum()
        if len(readings) == 1:  # most words: no letters touch
            best = np.argsort(-share, kind="stable")[:top_k]
            return 0, [(scored[0][0][i], float(share[i])) for i in best]
        # Two readings of one length list the same words: each word counts once, its shares summed.
        reading_of = np.repeat(np.arange(len(readings)), [len(words) for words, _ in scored])
        spelled, index = np.unique(np.array([w for words, _ in scored for w in words]), return_inverse=True)
        total = np.bincount(index, weights=share)
        best = np.argsort(-total, kind="stable")[:top_k]
        best_reading = int(reading_of[np.argmax(np.where(index == best[0], score, -np.inf))])
        return best_reading, [(str(spelled[i]), float(total[i])) for i in best]


def _parse_line(path: Path, number: int, line: str) -> tuple[str, float] | None:
    """A line's word and count (1 without one), or None for a blank line or a comment."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    count = 1.0
    if len(fields) == 2:
        try:
            count = float(fields[1])
        except ValueError:
            count = -1.0
    if len(fields) > 2 or not count > 0 or not np.isfinite(count):
        raise UserError(f"{path}: line {number}: expected a word, or a word and a count above 0, "
                        f"got {line.strip()!r}")
    return fields[0], count


def read_lexicon(path: str | Path, classes: list[str]) -> Lexicon:
    """The words of a word list that a model of ``classes`` can read (module docstring for the format)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":  # frequency lists are often shipped compressed
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; expected a word list, one word a line") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:  # a directory, no permission, not text, not gzip
        raise UserError(f"{path}: expected a UTF-8 text file of words, one a line ({e.__class__.__name__})") from None
    letters = "".join(sorted({c.lower() for c in classes}))
    index = {c: i for i, c in enumerate(letters)}
    folded = np.zeros((len(classes), len(letters)), np.float64)
    folded[np.arange(len(classes)), [index[c.lower()] for c in classes]] = 1

    counts: dict[str, float] = {}  # case-folded word -> summed count
    spelling: dict[str, str] = {}  # case-folded word -> its first spelling in the file
    left_out: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = _parse_line(path, number, line)
        if entry is None:
            continue
        word, count = entry
        key = word.lower()
        if any(c not in index for c in key):
            left_out.append(word)
            continue
        spelling.setdefault(key, word)
        counts[key] = counts.get(key, 0.0) + count
    if not counts:
        raise UserError(f"{path}: no word of the model's letters ({letters}); expected one word a line"
                        + (f"; its {len(left_out):,} hold other characters" if left_out else ""))
    if left_out:  # a word a user expects to be read, silently missing, would be worse than a line
        print(f"alphabet: note: {path}: {len(left_out):,} words left out, with characters the model does not "
              f"read (such as {left_out[0]!r}); it reads {letters}", file=sys.stderr, flush=True)

    total = sum(counts.values())
    words: dict[int, list[str]] = {}
    keys_by_length: dict[int, list[str]] = {}
    for key in counts:
        keys_by_length.setdefault(len(key), []).append(key)
    spelled, log_prior = {}, {}
    for length, keys in sorted(keys_by_length.items()):
        words[length] = [spelling[k] for k in keys]
        spelled[length] = np.array([[index[c] for c in k] for k in keys], np.intp).reshape(len(keys), length)
        log_prior[length] = np.log(np.array([counts[k] for k in keys]) / total)
    return Lexicon(str(path), list(classes), folded, letters, words, spelled, log_prior, len(left_out))
