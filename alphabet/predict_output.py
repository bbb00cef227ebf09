"""How ``alphabet predict`` shows its readings: lines of text for people, JSON for programs.

With a threshold (``--accept P``), a letter whose top probability is under P is marked unsure, for
a person to check, and a count of the letters accepted goes to stderr, so that stdout keeps its
one line per image (or per letter of a word).
"""

from __future__ import annotations

import json
import sys

from alphabet.predict import TextLine, WordLetter, text_of

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


def print_words(results: list[tuple[str, list[WordLetter]]], as_json: bool, accept: float | None) -> None:
    """A word per image: the letters read, then each letter's box and top-k."""
    words = ["".join(top[0][0] for _, top in letters) for _, letters in results]
    if as_json:
        shown = []
        for (path, letters), word in zip(results, words, strict=True):
            item = {"image": path, "word": word, "letters": [_letter_json(box, top, accept) for box, top in letters]}
            if accept is not None:
                item["sure"] = bool(letters) and all(is_sure(top, accept) for _, top in letters)
            shown.append(item)
        print(json.dumps(shown, indent=2))
        return
    for (path, letters), word in zip(results, words, strict=True):
        unsure = sum(is_sure(top, accept) is False for _, top in letters)
        print(f"{path}: {word or 'blank (no ink found)'}"
              + (f"  ({unsure} of {len(letters)} letters unsure)" if unsure else ""))
        for (left, top_edge, right, bottom), top in letters:
            print(f"  x {left}-{right}, y {top_edge}-{bottom}: " + "  ".join(f"{c} {q:.3f}" for c, q in top)
                  + _unsure_mark(top, accept))
    _say_accepted([top for _, letters in results for _, top in letters], accept)


def print_text(results: list[tuple[str, list[TextLine]]], as_json: bool, accept: float | None) -> None:
    """Each image's lines of words; with ``accept``, a letter read less surely stands in [brackets]."""
    if as_json:
        print(json.dumps([{"image": path, "text": text_of(lines),
                           "lines": [{"text": text_of([line]),
                                      "words": [{"word": text_of([[word]]),
                                                 "letters": [_letter_json(box, top, accept) for box, top in word]}
                                                for word in line]}
                                     for line in lines]}
                          for path, lines in results], indent=2))
        return

    def shown(word: list) -> str:
        return "".join(f"[{top[0][0]}]" if is_sure(top, accept) is False else top[0][0] for _, top in word)

    for path, lines in results:
        print(f"{path}: blank (no ink found)" if not lines else
              f"{path}:" + "".join("\n  " + " ".join(map(shown, line)) for line in lines))
    _say_accepted([top for _, lines in results for line in lines for word in line for _, top in word], accept)
