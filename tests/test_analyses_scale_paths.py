"""The faster paths `decodeprof analyze` takes at scale give exactly the results of the plain
ones: analyses on traces loaded with only FRAME_COLUMNS (every fixture), range sums without
pairs (sums_in_ranges vs points_in_ranges + group-by, on random SYNTHETIC frames: nulls,
reversed and overlapping ranges, several threads), and the run-lifted running maximum of
idle_gaps vs polars' window."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses import ANALYSES, FRAME_COLUMNS, run_all
from decodeprof.analyses.idle_gaps import _previous_end
from decodeprof.analyses.intervals import points_in_ranges, sums_in_ranges
from decodeprof.load import load_trace

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("**/trace.sqlite"))


@pytest.mark.parametrize("db", FIXTURES, ids=lambda p: str(p.parent.relative_to(DATA)))
def test_analyses_on_pruned_frames_equal_whole_frames(db):
    whole = load_trace(db.parent)
    pruned = load_trace(db.parent, columns=FRAME_COLUMNS)
    for frame, cols in FRAME_COLUMNS.items():
        assert pruned.frame(frame).columns == [c for c in whole.frame(frame).columns if c in cols]
        assert pruned.frame(frame).equals(whole.frame(frame).select(pruned.frame(frame).columns))
    expected, got = run_all(whole), run_all(pruned)
    for name in ANALYSES:
        assert got[name].equals(expected[name]), name


def _random_case(rnd: random.Random) -> tuple[pl.DataFrame, pl.DataFrame]:
    n, m = rnd.randint(0, 40), rnd.randint(0, 15)
    points = pl.DataFrame({
        "t": [rnd.choice([None, *range(50)]) for _ in range(n)],
        "tid": [rnd.choice([None, 1, 2, 3]) for _ in range(n)],
        "v": [rnd.choice([None, 1, 5, -2]) for _ in range(n)],
    }, schema={"t": pl.Int64, "tid": pl.Int64, "v": pl.Int64})
    rows = []
    for i in range(m):
        start = rnd.randint(0, 50)
        rows.append((i, None if rnd.random() < 0.1 else start, start + rnd.randint(-3, 20), rnd.choice([None, 1, 2, 4])))
    ranges = pl.DataFrame(rows, schema={"rid": pl.Int64, "s": pl.Int64, "e": pl.Int64, "tid": pl.Int64}, orient="row")
    return points, ranges


def test_sums_in_ranges_equal_summed_pairs():
    rnd = random.Random(3)
    for _ in range(300):
        points, ranges = _random_case(rnd)
        got = sums_in_ranges(points, ranges, at="t", start="s", end="e", by="tid",
                             values={"c": pl.lit(1), "sv": pl.col("v"), "pos": pl.col("v") > 0})
        kept = points.filter(pl.col("t").is_not_null() & pl.col("tid").is_not_null())
        pairs = points_in_ranges(kept, ranges.filter(pl.col("s").is_not_null()), at="t", start="s", end="e", by="tid")
        sums = pairs.group_by("rid").agg(pl.len().cast(pl.Int64).alias("c"), pl.col("v").sum().alias("sv"),
                                         (pl.col("v") > 0).sum().cast(pl.Int64).alias("pos"))
        expected = ranges.join(sums, on="rid", how="left").with_columns(pl.col("c", "sv", "pos").fill_null(0))
        assert got.sort("rid").equals(expected.sort("rid").select(got.columns)), (points, ranges)


def test_sums_in_ranges_sums_each_key_apart_where_one_axis_would_overflow():
    points = pl.DataFrame({"t": [0, 2**61, 2**62 - 5], "tid": [1, 2, 2], "v": [1, 1, 4]})
    ranges = pl.DataFrame({"s": [0, 2**62 - 9, 0], "e": [1, 2**62, 1], "tid": [1, 2, None]})
    got = sums_in_ranges(points, ranges, at="t", start="s", end="e", by="tid", values={"v": pl.col("v")})
    assert got["v"].to_list() == [1, 4, 0]


def test_previous_end_equals_the_window():
    rnd = random.Random(5)
    for _ in range(200):
        n = rnd.randint(0, 30)
        k = pl.DataFrame({
            "group": [rnd.choice([None, 0, 1]) for _ in range(n)], "device_id": [rnd.choice([0, 1]) for _ in range(n)],
            "stream_id": [rnd.choice([7, 8]) for _ in range(n)], "start_ns": [rnd.randint(0, 100) for _ in range(n)],
        }, schema={"group": pl.Int64, "device_id": pl.Int64, "stream_id": pl.Int64, "start_ns": pl.Int64})
        k = k.with_columns((pl.col("start_ns") + pl.Series([rnd.randint(0, 30) for _ in range(n)], dtype=pl.Int64))
                           .alias("end_ns"))
        by = ["group", "device_id", "stream_id"]
        k = k.sort([*by, "start_ns"])
        expected = k.select(pl.col("end_ns").cum_max().shift(1).over(by)).to_series()
        assert _previous_end(k, by).equals(expected), k


@pytest.mark.parametrize("n, seconds", [(5_000, 1.0), (200_000, 5.0)])
def test_overlapping_ranges_join_in_time_linear_in_the_pairs(n, seconds):
    """n start/end ranges on one thread (SYNTHETIC), each overlapping the next 20 (never
    nested), over 4,000 calls: every (call, range) pair found, in bounded time. The ranges
    once went one nesting level at a time (5,000 levels: 27-49 s)."""
    import time

    from decodeprof.analyses.events import in_ranges_chunks

    span, step = 4_000 * 100, max(4_000 * 100 // n, 1)
    calls = pl.DataFrame({"api_start_ns": range(0, span, 100), "global_tid": [7] * 4_000, "c": range(4_000)})
    rng = pl.DataFrame({"range_id": range(n), "range_start_ns": [i * step for i in range(n)],
                        "range_end_ns": [i * step + 20 * step for i in range(n)], "global_tid": [7] * n})
    t0 = time.perf_counter()
    pairs = sum(chunk.height for chunk in in_ranges_chunks(calls, rng, keep=("range_id",), keep_points=("c",)))
    elapsed = time.perf_counter() - t0
    want = sum(len(range(-(-s // 100) * 100, min(e, span), 100)) for s, e in
               zip(rng["range_start_ns"], rng["range_end_ns"]))
    assert pairs == want
    assert elapsed < seconds, f"{n} overlapping ranges joined in {elapsed:.2f} s"
