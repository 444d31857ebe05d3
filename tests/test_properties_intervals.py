"""Property tests of the interval code (decodeprof.analyses.intervals, the gaps of idle_gaps and
host_wait) on SYNTHETIC intervals drawn by hypothesis: unsorted, overlapping, touching,
zero-length, ending before they start, with nulls, and with times near 2^62 ns.

Invariants: busy time never exceeds its window, shares stay within 0-100%, no duration or
gap is negative, a union is never longer than the lengths summed, and on small inputs every
result equals a brute-force reference written here in plain Python (integers that cannot
overflow). Examples are few and small so the file runs in seconds.
"""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decodeprof import schema
from decodeprof.analyses.host_wait import gpu_gaps
from decodeprof.analyses.idle_gaps import _previous_end
from decodeprof.analyses.intervals import (
    merge,
    overlapping,
    points_in_nested_ranges,
    points_in_ranges,
    sums_in_ranges,
    union_ns,
)
from decodeprof.analyses.kernel_summary import kernel_summary
from decodeprof.trace import Trace

HUGE = 2**62
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small = st.integers(-20, 300)
huge = st.integers(HUGE - 2_000, HUGE)
time_ = st.one_of(small, huge)
maybe = st.one_of(st.none(), time_)


@st.composite
def intervals(draw, *, nulls: bool = False, inverted: bool = True, groups: int = 3, max_size: int = 25):
    """[(group, start, end)]: unsorted; lengths 0 to 60, some ending before they start;
    each interval's times small or near 2^62 (so spans reach 2^62)."""
    rows = []
    for _ in range(draw(st.integers(0, max_size))):
        g = draw(st.integers(0, groups - 1))
        s = draw(time_)
        length = draw(st.integers(-10 if inverted else 0, 60))
        e = min(s + length, HUGE)
        if nulls and draw(st.integers(0, 9)) == 0:
            s, e = draw(st.sampled_from([(None, e), (s, None), (None, None)]))
        rows.append((g, s, e))
    return rows


def _frame(rows, names=("g", "start_ns", "end_ns")) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={n: pl.Int64 for n in names}, orient="row")


def _union(pairs) -> int:
    """Length of the union of half-open [s, e) (empty when e <= s), in exact Python integers."""
    total, reach = 0, None
    for s, e in sorted((s, e) for s, e in pairs if s is not None and e is not None and e > s):
        if reach is None or s > reach:
            total, reach = total + e - s, e
        elif e > reach:
            total, reach = total + e - reach, e
    return total


@FAST
@given(intervals(nulls=True))
def test_union_ns_equals_brute_force_and_stays_inside_its_window(rows):
    f = _frame(rows)
    got = dict(union_ns(f, by=["g"]).select("g", "busy_ns").iter_rows())
    for g in {r[0] for r in rows}:
        mine = [(s, e) for gg, s, e in rows if gg == g and s is not None and e is not None]
        if not mine:
            continue
        busy = got[g]
        assert busy == _union(mine)
        assert 0 <= busy <= sum(max(e - s, 0) for s, e in mine)
        assert busy <= max(e for _, e in mine) - min(s for s, _ in mine) or busy == 0
    whole = union_ns(f, by=[])["busy_ns"][0]
    assert whole == _union((s, e) for _, s, e in rows)


@FAST
@given(intervals(nulls=True))
def test_union_ns_extents(rows):
    f = _frame(rows)
    out = union_ns(f, by=["g"], extents=True)
    for g, busy, first, last, n in out.select("g", "busy_ns", "first_start_ns", "last_end_ns", "intervals").iter_rows():
        mine = [(s, e) for gg, s, e in rows if gg == g and s is not None and e is not None]
        assert (first, last, n) == (min(s for s, _ in mine), max(e for _, e in mine), len(mine))
        assert 0 <= busy


@FAST
@given(intervals(nulls=True, inverted=False))
def test_merge_gives_disjoint_segments_covering_the_union(rows):
    f = _frame(rows)
    seg = merge(f, by=["g"])
    for g in {r[0] for r in rows}:
        mine = [(s, e) for gg, s, e in rows if gg == g and s is not None and e is not None]
        segs = sorted(seg.filter(pl.col("g") == g).select("seg_start_ns", "seg_end_ns", "members").rows())
        assert sum(m for _, _, m in segs) == len(mine)
        assert all(s <= e for s, e, _ in segs)
        assert all(a[1] < b[0] for a, b in zip(segs, segs[1:]))  # disjoint, not even touching
        assert sum(e - s for s, e, _ in segs) == _union(mine)
        for s, e in mine:  # every interval lies inside one segment
            assert any(a <= s and e <= b for a, b, _ in segs)


@FAST
@given(intervals(groups=2, inverted=False, max_size=12), intervals(groups=1, inverted=False, max_size=12))
def test_overlapping_pairs_equal_brute_force(a_rows, b_rows):
    a = _frame([(i, s, e) for i, (_, s, e) in enumerate(a_rows)], ("a", "as", "ae"))
    b = _frame([(i, s, e) for i, (_, s, e) in enumerate(b_rows)], ("b", "bs", "be"))
    got = overlapping(a, b, a_start="as", a_end="ae", b_start="bs", b_end="be")
    want = sorted((i, j, min(ae, be) - max(as_, bs)) for i, as_, ae in a.rows() for j, bs, be in b.rows()
                  if as_ < be and ae > bs)
    assert sorted(got.select("a", "b", "overlap_ns").rows()) == want
    for i, j, ns in want:
        assert 0 <= ns <= min(a_rows[i][2] - a_rows[i][1], b_rows[j][2] - b_rows[j][1])


def _points(draw, n_max=25):
    n = draw(st.integers(0, n_max))
    return [(i, draw(st.one_of(st.none(), st.integers(0, 2))), draw(maybe)) for i in range(n)]


@FAST
@given(st.data())
def test_points_in_ranges_equal_brute_force(data):
    pts = _points(data.draw)
    rngs = [(i, g, s, e) for i, (g, s, e) in enumerate(data.draw(intervals(nulls=True)))]
    points = pl.DataFrame(pts, schema={"pid": pl.Int64, "g": pl.Int64, "t": pl.Int64}, orient="row")
    ranges = pl.DataFrame(rngs, schema={"rid": pl.Int64, "g": pl.Int64, "rs": pl.Int64, "re": pl.Int64}, orient="row")
    want = sorted((p, r) for p, pg, t in pts for r, rg, s, e in rngs
                  if pg is not None and pg == rg and None not in (t, s, e) and s <= t < e)
    for fn in (points_in_ranges, points_in_nested_ranges):
        got = fn(points, ranges, at="t", start="rs", end="re", by="g")
        assert sorted(got.select("pid", "rid").rows()) == want, fn.__name__
    plain = points_in_ranges(points.drop("g"), ranges.drop("g"), at="t", start="rs", end="re")
    assert sorted(plain.select("pid", "rid").rows()) == sorted(
        (p, r) for p, _, t in pts for r, _, s, e in rngs if None not in (t, s, e) and s <= t < e)


@FAST
@given(st.data())
def test_sums_in_ranges_equal_brute_force(data):
    pts = [(p, g, t, data.draw(st.one_of(st.none(), st.integers(0, HUGE // 64)))) for p, g, t in _points(data.draw)]
    rngs = [(i, g, s, e) for i, (g, s, e) in enumerate(data.draw(intervals(nulls=True)))]
    points = pl.DataFrame(pts, schema={"pid": pl.Int64, "g": pl.Int64, "t": pl.Int64, "v": pl.Int64}, orient="row")
    ranges = pl.DataFrame(rngs, schema={"rid": pl.Int64, "g": pl.Int64, "rs": pl.Int64, "re": pl.Int64}, orient="row")
    got = sums_in_ranges(points, ranges, at="t", start="rs", end="re", by="g", values={"n": pl.lit(1), "v": pl.col("v")})
    for rid, g, s, e in rngs:
        inside = [v for _, pg, t, v in pts if pg is not None and pg == g and None not in (t, s, e) and s <= t < e]
        row = got.filter(pl.col("rid") == rid).row(0, named=True)
        assert (row["n"], row["v"]) == (len(inside), sum(v or 0 for v in inside))


@FAST
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), maybe), max_size=30))
def test_previous_end_is_the_running_maximum_per_group(rows):
    k = pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.Int64, "end_ns": pl.Int64}, orient="row").sort("a", "b")
    got = _previous_end(k, ["a", "b"]).to_list()
    want, reach, last = [], None, None
    for a, b, e in k.rows():
        if (a, b) != last:
            reach, last = None, (a, b)
            want.append(None)
        else:
            want.append(reach)
        reach = e if reach is None else (reach if e is None else max(reach, e))
    assert got == want


def _kernels(rows) -> Trace:
    """A trace of kernels only: (device, stream, start, end) each, names by stream."""
    k = pl.DataFrame([{"start_ns": s, "end_ns": e, "dur_ns": e - s, "device_id": d, "stream_id": st_, "correlation_id": i,
                       "global_pid": 1, "name": f"k{st_}", "demangled_name": f"k{st_}"}
                      for i, (d, st_, s, e) in enumerate(rows)] or None, schema={
        c: t for c, t in schema.FRAMES["kernels"].items()
        if c in ("start_ns", "end_ns", "dur_ns", "device_id", "stream_id", "correlation_id", "global_pid", "name",
                 "demangled_name")})
    return Trace(source="synthetic", kernels=schema.conform("kernels", k.with_columns(
        *(pl.lit(None, t).alias(c) for c, t in schema.FRAMES["kernels"].items() if c not in k.columns))))


kernel_rows = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), time_, st.integers(0, 60)).map(
    lambda r: (r[0], r[1], min(r[2], HUGE - 60), min(r[2], HUGE - 60) + r[3])), max_size=25)


@FAST
@given(kernel_rows)
def test_gpu_gaps_and_busy_time_add_up_to_each_devices_window(rows):
    """Per device: gaps between kernels are positive, and idle gaps + busy (the union of the
    kernels) = the window from the first start to the last end, in integer ns."""
    trace = _kernels(rows)
    gaps = gpu_gaps(trace)
    assert (gaps["gap_ns"] > 0).all()
    for d in {r[0] for r in rows}:
        mine = [(s, e) for dd, _, s, e in rows if dd == d]
        window = max(e for _, e in mine) - min(s for s, _ in mine)
        busy = _union(mine)
        idle = int(gaps.filter(pl.col("device_id") == d)["gap_ns"].sum())
        assert 0 <= busy <= window
        assert busy + idle == window


@FAST
@given(kernel_rows)
def test_kernel_shares_stay_within_0_and_100(rows):
    out = kernel_summary(_kernels(rows))
    if out.is_empty():
        return
    shares = out["share_pct"].drop_nulls()
    assert ((shares >= 0) & (shares <= 100)).all()
    for c in out.columns:
        if c.endswith("_ns") and out[c].dtype.is_integer():
            assert (out[c].drop_nulls() >= 0).all(), c
    if out["total_ns"].sum():
        assert abs(shares.sum() - 100) < 1e-6
