"""Interval helpers against brute force on random SYNTHETIC intervals (a property test:
exact answers come from a plain Python double loop, affordable only because inputs are tiny)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from decodeprof.analyses.intervals import merge, nesting_levels, points_in_nested_ranges, points_in_ranges, union_ns


def nested_ranges(rng: random.Random, tid: int, lo: int, hi: int, depth: int) -> list[tuple]:
    out, t = [], lo
    while depth and t < hi - 4:
        s = rng.randint(t, (t + hi) // 2)
        e = rng.randint(s + 1, hi)
        out.append((tid, s, e))
        out += nested_ranges(rng, tid, s, e, depth - 1)
        t = e + rng.randint(0, 3)  # siblings may touch (start == previous end)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_nested_join_matches_brute_force(seed):
    rng = random.Random(seed)
    rows = nested_ranges(rng, 1, 0, 400, 4) + nested_ranges(rng, 2, 0, 400, 3)
    rows += [(1, rng.randint(0, 300), 0) for _ in range(3)]  # start/end style: may overlap anything
    rows = [(tid, s, e if e else s + rng.randint(1, 100)) for tid, s, e in rows]
    ranges = pl.DataFrame(rows, schema={"global_tid": pl.Int64, "rs": pl.Int64, "re": pl.Int64}, orient="row").with_row_index("rid")
    points = pl.DataFrame({"pid": range(300), "global_tid": [rng.choice([1, 2, 3]) for _ in range(300)],
                           "t": [rng.randint(0, 420) for _ in range(300)]})
    want = sorted((p, r) for p, pt, t in points.iter_rows() for r, rt, s, e in ranges.iter_rows() if pt == rt and s <= t < e)
    for fn in (points_in_ranges, points_in_nested_ranges):
        got = fn(points, ranges, at="t", start="rs", end="re", by="global_tid")
        assert sorted(got.select("pid", "rid").iter_rows()) == want, fn.__name__


def test_nesting_levels_are_depths():
    r = pl.DataFrame({"g": [1, 1, 1, 1], "s": [0, 1, 2, 5], "e": [10, 4, 3, 9]})
    assert nesting_levels(r, start="s", end="e", by="g").to_list() == [0, 1, 2, 1]


def test_merge_and_union():
    f = pl.DataFrame({"g": [1, 1, 1, 2], "start_ns": [0, 5, 20, 0], "end_ns": [10, 12, 30, 1]})
    assert merge(f, by=["g"]).select("g", "seg_start_ns", "seg_end_ns", "members").rows() == [(1, 0, 12, 2), (1, 20, 30, 1), (2, 0, 1, 1)]
    assert sorted(union_ns(f, by=["g"]).rows()) == [(1, 22), (2, 1)]
    assert union_ns(f, by=[])["busy_ns"][0] == 22  # g2 [0,1] lies inside [0,12]
