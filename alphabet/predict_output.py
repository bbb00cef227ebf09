"""How ``alphabet predict`` shows its readings: lines of text for people, JSON for programs.

With a threshold (``--accept P``), a letter whose top probability is under P is marked unsure, for
a person to check, and a count of the letters accepted goes to stderr, so that stdout keeps its
one line per image (or per letter of a word). With a word list (``--lexicon``), words are marked
and counted instead: a word whose likeliest listed word is less probable than P, or that has none.
"""

from __future__ import annotations

import json
import sys

from alphabet.predict import TextChoices, TextLine, WordChoices, WordLetter, text_of, word_of

Top = list[tuple[str, float]]  # a reading's letters with their probabilities, surest first; [] if blank


def is_sure(top: Top, accept: float | None) -> bool | None:
    """Whether a reading's top probability reaches ``accept``; None without a threshold or for a blank image."""
    return None if accept is None or not top else top[0][1] >= accept


def _unsure_mark(top: Top, accept: float | None) -> str:
    return "  (unsure)" if is_sure(top, accept) is False else ""


def _say_accepted(tops: list[Top], accept: float | None) -> None:
    """How many readings the threshold accepted, on stderr, so that stdout keeps one line per image."""
    read = [top for top in tops if top]
    if accept is not None and read:
        sure = sum(bool(is_sure(top, accept)) for top in read)
        print(f"accepted {sure} of {len(read)} letters (top probability >= {accept:g}); "
              f"{len(read) - sure} marked (unsure)", file=sys.stderr)


def _reading_json(top: Top, accept: float | None) -> dict:
    """A reading's top-k, and with ``accept`` whether it is sure."""
    shown = {"top": [{"letter": c, "probability": q} for c, q in top]}
    return shown if accept is None else {**shown, "sure": is_sure(top, accept)}


def _letter_json(box: tuple[int, int, int, int], top: Top, accept: float | None) -> dict:
    return {"box": list(box), **_reading_json(top, accept)}


def print_letters(results: list[tuple[str, Top]], as_json: bool, accept: float | None) -> None:
    """One image of one letter a line: its top-k, or blank."""
    if as_json:
        print(json.dumps([{"image": p, "blank": not top, **_reading_json(top, accept)} for p, top in results],
                         indent=2))
    else:
        for path, top in results:
            print(f"{path}: " + ("  ".join(f"{c} {q:.3f}" for c, q in top) or "blank (no ink found)")
                  + _unsure_mark(top, accept))
    _say_accepted([top for _, top in results], accept)


def word_sure(letters: list[WordLetter], choices: WordChoices | None, accept: float | None) -> bool | None:
    """With a lexicon, whether the word's likeliest reading there reaches ``accept`` (a word not in it is
    not sure); without one, whether all its letters do. None without a threshold or for a blank image."""
    if accept is None or not letters:
        return None
    if choices is not None:
        return bool(choices) and choices[0][1] >= accept
    return all(is_sure(top, accept) for _, top in letters)


def _choices_json(letters: list[WordLetter], choices: WordChoices | None) -> dict:
    """With a lexicon: the letters' own reading, and the word's choices in the lexicon."""
    if choices is None:
        return {}
    return {"letters_word": word_of(letters),
            "lexicon": [{"word": word, "probability": q} for word, q in choices]}


def _say_accepted_words(words: list[tuple[list[WordLetter], WordChoices]], accept: float | None) -> None:
    """As ``_say_accepted``, for words read in a lexicon."""
    read = [(letters, choices) for letters, choices in words if letters]
    if accept is not None and read:
        sure = sum(bool(word_sure(letters, choices, accept)) for letters, choices in read)
        print(f"accepted {sure} of {len(read)} words (lexicon probability >= {accept:g}); "
              f"{len(read) - sure} marked (unsure)", file=sys.stderr)


def _lexicon_note(letters: list[WordLetter], choices: WordChoices, accept: float | None) -> str:
    if not choices:
        return f"  (no {len(letters)}-letter word in the lexicon)"
    unsure = ", unsure" if word_sure(letters, choices, accept) is False else ""
    read = word_of(letters)
    differs = f"; letters read {read}" if read.lower() != choices[0][0].lower() else ""
    return f"  (lexicon {choices[0][1]:.3f}{unsure}{differs})"


def print_words(results: list[tuple[str, list[WordLetter], WordChoices | None]], as_json: bool,
                accept: float | None) -> None:
    """A word per image: the word read (with a lexicon, its likeliest word there, and the others), then
    each letter's box and top-k."""
    if as_json:
        shown = []
        for path, letters, choices in results:
            item = {"image": path, "word": word_of(letters, choices), **_choices_json(letters, choices),
                    "letters": [_letter_json(box, top, accept) for box, top in letters]}
            if accept is not None:
                item["sure"] = bool(word_sure(letters, choices, accept))
            shown.append(item)
        print(json.dumps(shown, indent=2))
    else:
        for path, letters, choices in results:
            if not letters:
                print(f"{path}: blank (no ink found)")
                continue
            if choices is None:
                unsure = sum(is_sure(top, accept) is False for _, top in letters)
                note = f"  ({unsure} of {len(letters)} letters unsure)" if unsure else ""
            else:
                note = _lexicon_note(letters, choices, accept)
            print(f"{path}: {word_of(letters, choices)}{note}")
            if choices and len(choices) > 1:
                print("  words: " + "  ".join(f"{word} {q:.3f}" for word, q in choices))
            for (left, top_edge, right, bottom), top in letters:
                print(f"  x {left}-{right}, y {top_edge}-{bottom}: " + "  ".join(f"{c} {q:.3f}" for c, q in top)
                      + ("" if choices is not None else _unsure_mark(top, accept)))
    if results and results[0][2] is not None:
        _say_accepted_words([(letters, choices) for _, letters, choices in results], accept)
    else:
        _say_accepted([top for _, letters, _ in results for _, top in letters], accept)


def print_text(results: list[tuple[str, list[TextLine], TextChoices | None]], as_json: bool,
               accept: float | None) -> None:
    """Each image's lines of words (with a lexicon, each word its likeliest there); with ``accept``, a
    letter read less surely stands in [brackets], or with a lexicon a word."""
    if as_json:
        print(json.dumps([{"image": path, "text": text_of(lines, choices),
                           "lines": [{"text": text_of([line], choices and [choices[n]]),
                                      "words": [{"word": word_of(word, choices and choices[n][w]),
                                                 **_choices_json(word, choices and choices[n][w]),
                                                 "letters": [_letter_json(box, top, accept) for box, top in word]}
                                                for w, word in enumerate(line)]}
                                     for n, line in enumerate(lines)]}
                          for path, lines, choices in results], indent=2))
        return

    def shown(word: list[WordLetter], choices: WordChoices | None) -> str:
        if choices is not None:
            read = word_of(word, choices)
            return f"[{read}]" if word_sure(word, choices, accept) is False else read
        return "".join(f"[{top[0][0]}]" if is_sure(top, accept) is False else top[0][0] for _, top in word)

    for path, lines, choices in results:
        print(f"{path}: blank (no ink found)" if not lines else
              f"{path}:" + "".join("\n  " + " ".join(shown(word, choices[n][w] if choices else None)
                                                       for w, word in enumerate(line))
                                   for n, line in enumerate(lines)))
    if results and results[0][2] is not None:
        _say_accepted_words([(word, choices[n][w]) for _, lines, choices in results
                             for n, line in enumerate(lines) for w, word in enumerate(line)], accept)
    else:
        _say_accepted([top for _, lines, _ in results for line in lines for word in line for _, top in word], accept)
