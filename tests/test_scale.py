"""Tiled traces (benchmarks/scale.py) are honest: N copies of a real export give N times its
rows and N times every count the analyses report. Not timed: the timing is the benchmark's.

Expected values come from SQL on the fixture itself (COUNT over its tables), not from the
analyses' output on it.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses import run
from decodeprof.load import load_trace

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests/data/h100/baseline/trace.sqlite"
COPIES = 3


def _count(path: Path, sql: str) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def tiled(tmp_path_factory) -> Path:
    if not FIXTURE.is_file():
        pytest.fail(f"{FIXTURE} not present")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from load_readers import tile

    n = _count(FIXTURE, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    target = tmp_path_factory.mktemp("tiled") / "TILED-x3-baseline.sqlite"
    info = tile(FIXTURE, target, n * COPIES)
    assert info["copies"] == COPIES
    return target


@pytest.mark.parametrize("table", ["CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME",
                                   "CUPTI_ACTIVITY_KIND_MEMCPY", "NVTX_EVENTS", "OSRT_API"])
def test_tiled_rows_are_copies_of_the_fixture(tiled, table):
    assert _count(tiled, f"SELECT COUNT(*) FROM {table}") == COPIES * _count(FIXTURE, f"SELECT COUNT(*) FROM {table}")


def test_tiles_do_not_overlap_in_time_or_correlation(tiled):
    # Every kernel still finds its own launch call: kernels joined to runtime calls on
    # correlationId give COPIES times the fixture's matches (shifted ids never collide).
    join = ("SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL AS k JOIN CUPTI_ACTIVITY_KIND_RUNTIME AS r "
            "ON r.correlationId = k.correlationId")
    assert _count(tiled, join) == COPIES * _count(FIXTURE, join)
    span = _count(FIXTURE, "SELECT MAX(end) - MIN(start) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    tiled_span = _count(tiled, "SELECT MAX(end) - MIN(start) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    assert tiled_span > (COPIES - 1) * span


def test_analyses_scale_with_the_copies(tiled):
    one, many = load_trace(FIXTURE), load_trace(tiled)
    kernels = _count(FIXTURE, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    launch = " OR ".join(f"s.value LIKE '{p}%'" for p in (
        "cuLaunchKernel", "cudaLaunchKernel", "cuLaunchCooperativeKernel", "cudaLaunchCooperativeKernel",
        "cuGraphLaunch", "cudaGraphLaunch"))
    launch_calls = _count(FIXTURE, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME AS r JOIN StringIds AS s "
                                   f"ON s.id = r.nameId WHERE {launch}")
    steps = _count(FIXTURE, "SELECT COUNT(*) FROM NVTX_EVENTS AS n LEFT JOIN StringIds AS s ON s.id = n.textId "
                            "WHERE COALESCE(n.text, s.value) = 'step' AND n.end IS NOT NULL")
    assert kernels and launch_calls and steps

    ks = run("kernel_summary", many)
    assert ks["count"].sum() == COPIES * kernels
    assert run("launches", many).height == COPIES * launch_calls
    assert run("decode_steps", many).height == COPIES * steps

    # Per NVTX range name: instances, kernels and copies scale exactly; so do kernel counts
    # per name, and the median decode step is the fixture's.
    cols = ["range_name", "count", "kernels", "memcpys", "memcpy_bytes", "graph_launches"]
    a = run("nvtx_projection", one).select(cols).sort("range_name")
    b = run("nvtx_projection", many).select(cols).sort("range_name")
    assert b.select(pl.exclude("range_name")).equals(a.select(pl.exclude("range_name")) * COPIES)
    per_name = run("kernel_summary", one).select("name", "count").sort("name")
    assert run("kernel_summary", many).select("name", "count").sort("name").with_columns(
        pl.col("count") // COPIES).equals(per_name)
    s1, s3 = run("decode_step_summary", one), run("decode_step_summary", many)
    assert s3["kernels"][0] == s1["kernels"][0] and s3["launches"][0] == s1["launches"][0]
