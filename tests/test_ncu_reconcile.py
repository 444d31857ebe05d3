"""Nsight Compute beside the trace: the DRAM rate from the read metric alone when the write
metric was not collected, and ncu's kernel durations set against the trace's for the same
kernels (kernel_dram's nsys_median_ns and ncu_over_nsys; the report's "ncu and nsys
durations" finding)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses import run
from decodeprof.load import load_trace

H100 = Path(__file__).resolve().parent / "data" / "h100"


@pytest.fixture(scope="module")
def graph():
    return load_trace(H100 / "graph")


def test_durations_are_set_against_the_trace_by_name(graph):
    d = run("kernel_dram", graph)
    matched = d.filter(pl.col("nsys_median_ns").is_not_null())
    assert matched.height == d.height > 0  # every profiled kernel of our targets is in the trace
    assert (matched["ncu_over_nsys"] == matched["duration_ns"] / matched["nsys_median_ns"]).all()
    # a vectorized_elementwise_kernel is matched to its own name, not to elementwise_kernel
    med = graph.kernels.group_by("name").agg(pl.col("dur_ns").median())
    want = med.filter(pl.col("name") == "vectorized_elementwise_kernel")["dur_ns"][0]
    vec = matched.filter(pl.col("kernel_name").str.contains("vectorized_elementwise_kernel"))
    assert vec.height and (vec["nsys_median_ns"] == want).all()
    # replayed cold, one at a time: ncu's durations are longer than the loop's
    assert matched["ncu_over_nsys"].median() > 1.0


def test_the_read_rate_stands_when_the_write_metric_was_not_collected(graph):
    reads_only = dataclasses.replace(graph, ncu_metrics=graph.ncu_metrics.filter(pl.col("metric") != "dram__bytes_write.sum"))
    d = run("kernel_dram", reads_only)
    assert d.height and (d["dram_bytes_counted"] == "read").all()
    assert (d["dram_bytes_per_s"] == 1e9 * d["dram_read_bytes"] / d["duration_ns"]).all()
    both = run("kernel_dram", graph)
    assert (both["dram_bytes_counted"] == "read+write").all()


def test_the_report_states_the_difference_and_why(graph):
    from decodeprof.analyses import run_all
    from decodeprof.findings import facts, limits

    found = [f for f in limits("graph", facts(graph, run_all(graph))) if f.title == "ncu and nsys durations"]
    assert len(found) == 1 and found[0].kind == "info"
    assert "caches flushed" in found[0].sentence and found[0].evidence["ncu_over_nsys"] > 1.0
