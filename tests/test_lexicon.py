"""Word lists (``alphabet.lexicon``): a word's letters read as the likeliest listed word."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from alphabet.errors import UserError
from alphabet.lexicon import read_lexicon

LOWER = list("abcdefghijklmnopqrstuvwxyz")


def letter_probs(classes: list[str], *letters: dict[str, float]) -> np.ndarray:
    """One row per letter: the given probabilities, the rest spread evenly over the other classes."""
    rows = np.zeros((len(letters), len(classes)))
    for row, given in zip(rows, letters, strict=True):
        rest = (1 - sum(given.values())) / (len(classes) - len(given))
        row[:] = rest
        for letter, p in given.items():
            row[classes.index(letter)] = p
    return rows


def test_a_word_is_read_as_the_likeliest_listed_word(tmp_path):
    (tmp_path / "words.txt").write_text("queen\ngreen\nquick\nsun\n")
    lexicon = read_lexicon(tmp_path / "words.txt", LOWER)
    # Letter by letter this reads "gueen", which is not a word; g and q were close.
    probs = letter_probs(LOWER, {"g": 0.5, "q": 0.4}, {"u": 0.9}, {"e": 0.9}, {"e": 0.9}, {"n": 0.9})
    ranked = lexicon.rank(probs, top_k=3)
    assert [word for word, _ in ranked] == ["queen", "green", "quick"]
    # Each word's probability is the product of its letters', normalised over the listed words of its length.
    rest = 0.1 / 25
    queen, green = 0.4 * 0.9 * 0.9 * 0.9 * 0.9, 0.5 * rest * 0.9 * 0.9 * 0.9
    quick = 0.4 * 0.9 * rest * rest * rest
    total = queen + green + quick
    assert [p for _, p in ranked] == pytest.approx([queen / total, green / total, quick / total])
    assert lexicon.rank(probs, top_k=1) == ranked[:1]
    # No listed word has four letters.
    assert lexicon.rank(probs[:4]) == []


def test_evidence_is_how_likely_the_letters_are_some_listed_word(tmp_path):
    # What parting a row into words compares: the summed likelihood of a reading's listed words, each
    # weighed by its share of all the counts (so two words pay two shares), for the likeliest reading.
    (tmp_path / "words.txt").write_text("in 3\nto 3\ninto 1\nat 1\n")
    lexicon = read_lexicon(tmp_path / "words.txt", LOWER)
    i, n, t, o = ({c: 0.9} for c in "into")
    rest = 0.1 / 25
    two = letter_probs(LOWER, i, n)
    in_or_at = 3 / 8 * 0.9 * 0.9 + 1 / 8 * rest * rest  # "in" and "at"; "to" is read as well, at rest * rest
    assert lexicon.log_evidence([two]) == pytest.approx(np.log(in_or_at + 3 / 8 * rest * rest))
    four = letter_probs(LOWER, i, n, t, o)
    assert lexicon.log_evidence([four]) == pytest.approx(np.log(1 / 8 * 0.9 ** 4))
    # Of several readings of the ink, the likeliest counts; a length with no listed word adds nothing.
    assert lexicon.log_evidence([four, two, four[:3]]) == lexicon.log_evidence([two])
    assert lexicon.log_evidence([four[:3]]) == -np.inf


def test_counts_weigh_words_that_the_letters_cannot_tell_apart(tmp_path):
    text = "# word count\ngap 30\n\nqap 10\n"
    (tmp_path / "freq.txt").write_text(text)
    (tmp_path / "freq.txt.gz").write_bytes(gzip.compress(text.encode()))
    probs = letter_probs(LOWER, {"g": 0.45, "q": 0.45}, {"a": 0.9}, {"p": 0.9})
    for name in ("freq.txt", "freq.txt.gz"):  # a gzipped list reads as the plain one
        lexicon = read_lexicon(tmp_path / name, LOWER)
        assert lexicon.rank(probs) == [("gap", pytest.approx(0.75)), ("qap", pytest.approx(0.25))]


def test_case_is_folded_and_unreadable_words_are_left_out_with_a_note(tmp_path, capsys):
    (tmp_path / "words.txt").write_text("Paris\nparis 2\ndon't\nx2\nlondon\n")
    both_cases = [*LOWER, *(c.upper() for c in LOWER)]
    lexicon = read_lexicon(tmp_path / "words.txt", both_cases)
    note = capsys.readouterr().err.strip()
    assert note.startswith("alphabet: note: ") and "2 words left out" in note and "don't" in note
    assert lexicon.left_out == 2 and lexicon.words == {5: ["Paris"], 6: ["london"]}  # Paris and paris are one word
    # A model of both cases counts a letter's two cases together: P drawn capital or small.
    probs = letter_probs(both_cases, {"P": 0.3, "p": 0.3}, {"a": 0.9}, {"r": 0.9}, {"i": 0.9}, {"s": 0.9})
    assert lexicon.rank(probs) == [("Paris", 1.0)]


def test_readings_of_other_lengths_compete_and_a_word_spelled_twice_counts_once(tmp_path):
    # One piece of ink read whole ("m") or cut in two ("rn" or, cut elsewhere, "ri").
    (tmp_path / "words.txt").write_text("am\narn\nari\n")
    lexicon = read_lexicon(tmp_path / "words.txt", LOWER)
    a = {"a": 0.9}
    whole = letter_probs(LOWER, a, {"m": 0.1})
    cut_rn = letter_probs(LOWER, a, {"r": 0.6}, {"n": 0.6})
    cut_rn_again = letter_probs(LOWER, a, {"r": 0.5}, {"n": 0.5})
    cut_ri = letter_probs(LOWER, a, {"r": 0.6}, {"i": 0.3})
    best, ranked = lexicon.rank_readings([whole, cut_rn, cut_rn_again, cut_ri])
    assert best == 1  # the reading that spells the likeliest pair: a, r, n at 0.9 x 0.6 x 0.6
    score = {"am": 0.9 * 0.1, "arn": 0.9 * 0.6 * 0.6 + 0.9 * 0.5 * 0.5, "ari": 0.9 * 0.6 * 0.3}
    # Each word's probability sums over the readings that spell it; every reading here spells each
    # listed word of its length, so the others' words count too.
    rest = (1 - 0.6) / 25
    score["ari"] += 0.9 * 0.6 * rest + 0.9 * 0.5 * (0.5 / 25)
    score["arn"] += 0.9 * 0.6 * ((1 - 0.3) / 25)
    total = sum(score.values())
    assert [w for w, _ in ranked] == ["arn", "ari", "am"]
    assert [q for _, q in ranked] == pytest.approx([score[w] / total for w in ("arn", "ari", "am")])
    # The reading kept is one that spells the top word: here "arn", though "am" is the likeliest single
    # pair, because two cuts spell arn.
    sure_m = letter_probs(LOWER, a, {"m": 0.5})
    half_rn = letter_probs(LOWER, a, {"r": 0.6}, {"n": 0.62})
    best, ranked = lexicon.rank_readings([sure_m, half_rn, half_rn[[0, 1, 2]] * [[1], [1], [0.99]]])
    assert ranked[0][0] == "arn" and best == 1
    # With one reading, the words of its length alone: as ``rank``.
    assert lexicon.rank_readings([cut_ri])[1] == lexicon.rank(cut_ri)
    # No reading of a listed length: none.
    assert lexicon.rank_readings([whole[:1]]) == (0, [])


@pytest.mark.parametrize(("text", "fragment"), [
    ("cat\ndog 3 4\n", "line 2: expected a word, or a word and a count above 0, got 'dog 3 4'"),
    ("cat\ndog many\n", "line 2: expected a word, or a word and a count above 0"),
    ("cat 0\n", "line 1: expected a word, or a word and a count above 0"),
    ("cat -2\n", "line 1: expected a word, or a word and a count above 0"),
    ("cat nan\n", "line 1: expected a word, or a word and a count above 0"),
    ("# nothing\n\n", "no word of the model's letters (abcdefghijklmnopqrstuvwxyz); expected one word a line"),
    ("l'eau\n42\n", "no word of the model's letters (abcdefghijklmnopqrstuvwxyz); expected one word a line; "
                    "its 2 hold other characters"),
])
def test_a_bad_word_list_is_refused_naming_the_file_and_line(tmp_path, text, fragment):
    (tmp_path / "words.txt").write_text(text)
    with pytest.raises(UserError) as refused:
        read_lexicon(tmp_path / "words.txt", LOWER)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'words.txt'}: ") and fragment in message and "\n" not in message


def test_a_missing_or_unreadable_word_list_is_named(tmp_path):
    with pytest.raises(UserError, match="gone.txt: no such file; expected a word list, one word a line"):
        read_lexicon(tmp_path / "gone.txt", LOWER)
    with pytest.raises(UserError, match="expected a UTF-8 text file of words"):
        read_lexicon(tmp_path, LOWER)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00cat")
    with pytest.raises(UserError, match="binary.txt: expected a UTF-8 text file of words"):
        read_lexicon(tmp_path / "binary.txt", LOWER)
    (tmp_path / "plain.gz").write_text("cat\n")  # named .gz, not gzipped
    with pytest.raises(UserError, match="plain.gz: expected a UTF-8 text file of words"):
        read_lexicon(tmp_path / "plain.gz", LOWER)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"cat\ndog\n" * 100)[:30])  # truncated
    with pytest.raises(UserError, match="cut.gz: expected a UTF-8 text file of words"):
        read_lexicon(tmp_path / "cut.gz", LOWER)
