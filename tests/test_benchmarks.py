"""The benchmark harness: the figures it derives and how it keeps docs/BENCHMARKS.md's sections apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_asha_floor_is_the_share_quoted_in_the_readme(bench):
    # rungs 3, 9 of 12: 3 + 6/3 + 3/9 epochs per trial; rungs 1, 3, 9: 1 + 2/3 + 6/9 + 3/27
    assert bench.asha_floor(12, 3, 3) == pytest.approx((3 + 2 + 1 / 3) / 12)
    assert round(bench.asha_floor(12, 3, 3), 2) == 0.44
    assert round(bench.asha_floor(12, 1, 3), 2) == 0.20
    assert bench.asha_floor(12, 12, 3) == 1.0  # no rung below max_t: nothing to prune


def test_each_search_variant_and_seed_set_has_its_own_name(bench):
    names = {bench.search_variant(True, space, trials, grace, seeds)[3]
             for space in ("tuned", "wide") for trials in (None, 32) for grace in (None, 1)
             for seeds in ((0,), (0, 1), (2, 3))}
    assert len(names) == 2 * 2 * 2 * 3
    assert bench.search_variant(True)[3] == ""  # the default run keeps the plain section name
    assert bench.search_variant(True, "wide", 32, 1, (2, 3)) == (32, 12, 1, "_wide_32trials_grace1_seeds2-3")


def test_a_section_is_replaced_in_place_and_the_others_kept(bench, tmp_path, monkeypatch):
    doc = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(bench, "DOC", doc)
    bench.write_section("search-seeds0-1", "## first pair\n\nold figures", "cmd a")
    bench.write_section("search-seeds2-3", "## second pair", "cmd b")
    bench.write_section("search-seeds0-1", "## first pair\n\nnew figures", "cmd a")
    text = doc.read_text()
    assert "new figures" in text and "old figures" not in text
    assert text.index("first pair") < text.index("second pair")  # replaced where it stood
    assert text.count("<!-- bench:search-seeds0-1 -->") == 1 and "## second pair" in text
