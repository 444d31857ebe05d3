"""The decode breakdown: a trace's decode time per step split exactly into parts, and the
part-by-part difference of two traces' (the savings waterfall).

Definition (decode range totals, per decode step):

* A decode window is, per NVTX "decode" range, first kernel start -> last kernel end of the
  kernels launched inside it (launching call on the same thread; graph-replayed kernels
  share their cudaGraphLaunch's correlation id). Without "decode" ranges, per
  "prefill_decode" range (graph_full: one graph runs both) the work from the first decode
  kernel on, as decode_steps cuts it (the prefill's kernels left out). `span` = the windows'
  lengths summed.
* Inside the windows: `K_f` = kernel durations of family f summed (kernel_family);
  `busy_k` = union of kernel intervals; `busy_all` = union of kernels and of the copies and
  memsets launched in the decode range, clipped to the window.
* Then, exactly, in integer ns:  span = sum_f K_f - overlap + copy_only + idle, with
  overlap = sum_f K_f - busy_k (kernels running concurrently, counted once),
  copy_only = busy_all - busy_k (a copy or memset runs, no kernel), idle = span - busy_all.
* A trace without those ranges (any other engine): per decode run of the decode-step model
  (analyses/steps.py), the ops of its steps, first op start -> last op end.
* Every part is divided by the decode steps in the trace (decode ranges x config.steps, else
  the number of "step" ranges), so traces with different step counts compare.

The waterfall of a trace vs a reference is the part-by-part difference; the differences sum
to the difference of the spans (tests check the identity on every shipped pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.decode_steps import decode_windows
from decodeprof.analyses.events import config_steps, gpu_work, in_ranges, ranges
from decodeprof.analyses.intervals import union_ns
from decodeprof.analyses.kernel_summary import kernel_family
from decodeprof.analyses.steps import step_model
from decodeprof.trace import Trace

IDLE = "GPU idle (nothing running)"
COPY = "copies/memsets with no kernel running"
OVERLAP = "kernel concurrency (counted once)"
BREAKDOWN_COLUMNS = {"part": pl.Utf8, "ns_per_step": pl.Float64}
WATERFALL_COLUMNS = {"part": pl.Utf8, "base_ns": pl.Float64, "variant_ns": pl.Float64, "delta_ns": pl.Float64}


@dataclass(frozen=True)
class Breakdown:
    """parts: BREAKDOWN_COLUMNS (part, ns_per_step: signed, the concurrency part is negative);
    span_ns_per_step: the decode span per step the parts sum to; None (and no parts) when
    the trace has no decode range with kernels or no step count."""

    parts: pl.DataFrame
    span_ns_per_step: float | None


def kernel_part(family: str) -> str:
    return f"kernels: {family}"


def _steps(trace: Trace, decode_ranges: int) -> int | None:
    if not ranges(trace, ("decode", "prefill_decode")).height:  # steps found without our ranges
        return step_model(trace).cut.height or None
    n = config_steps(trace, None)
    if n is not None:
        return n * decode_ranges
    step_ranges = ranges(trace, ("step",)).height
    return step_ranges or None


def decode_breakdown(trace: Trace) -> Breakdown:
    """The decode span per step split as the module docstring says (exact in integer ns)."""
    empty = Breakdown(pl.DataFrame(schema=BREAKDOWN_COLUMNS), None)
    work = _decode_work(trace) if trace.kernels.height else None
    if work is None:
        return empty
    kern = work.filter(pl.col("op") == "kernel")
    if kern.is_empty():
        return empty
    steps = _steps(trace, kern["range_id"].n_unique())
    if not steps:
        return empty
    window = kern.group_by("range_id").agg(pl.col("start_ns").min().alias("_w0"), pl.col("end_ns").max().alias("_w1"))
    span = int((window["_w1"] - window["_w0"]).sum())
    fam = kern.group_by(kernel_family(pl.col("name")).alias("family")).agg(pl.col("dur_ns").sum().alias("ns")).sort("family")
    busy_k = int(union_ns(kern, by=["range_id"])["busy_ns"].sum())
    other = work.filter(pl.col("op") != "kernel").join(window, on="range_id").select(
        "range_id",
        pl.max_horizontal("start_ns", "_w0").alias("start_ns"),
        pl.min_horizontal("end_ns", "_w1").alias("end_ns"),
    ).filter(pl.col("end_ns") > pl.col("start_ns"))
    both = pl.concat([kern.select("range_id", "start_ns", "end_ns"), other], how="vertical_relaxed")
    busy_all = int(union_ns(both, by=["range_id"])["busy_ns"].sum())
    k_sum = int(fam["ns"].sum())
    rows = [(kernel_part(f), int(ns)) for f, ns in fam.iter_rows()]
    rows += [(OVERLAP, -(k_sum - busy_k)), (COPY, busy_all - busy_k), (IDLE, span - busy_all)]
    assert sum(ns for _, ns in rows) == span  # the identity, in integer ns
    parts = pl.DataFrame({"part": [p for p, _ in rows], "ns_per_step": [ns / steps for _, ns in rows]},
                         schema=BREAKDOWN_COLUMNS)
    return Breakdown(parts, span / steps)


def _decode_work(trace: Trace) -> pl.DataFrame | None:
    """GPU work launched in the decode ranges, or None without any (see the module docstring)."""
    rng = ranges(trace, ("decode",))
    if rng.height:
        return in_ranges(gpu_work(trace), rng)
    rng = ranges(trace, ("prefill_decode",))
    if rng.is_empty():  # a trace without our ranges: the ops of the decode steps the model found, per decode run
        model = step_model(trace)
        ops = model.ops.filter(pl.col("step_index").is_in(model.cut["step_index"].implode()))
        if ops.is_empty():
            return None
        work = gpu_work(trace).with_row_index("_op").drop("start_ns", "end_ns")
        return ops.select("_op", "start_ns", "end_ns", pl.col("decode_index").alias("range_id")).join(
            work, on="_op", how="left").drop("_op")
    windows = decode_windows(trace).select("range_id", "first_ns")
    if windows.is_empty():
        return None
    return (in_ranges(gpu_work(trace), rng).join(windows, on="range_id")
            .filter(pl.col("start_ns") >= pl.col("first_ns")).drop("first_ns"))


def waterfall(base: pl.DataFrame, variant: pl.DataFrame) -> pl.DataFrame:
    """Part-by-part difference (variant - base) of two Breakdown.parts frames.

    Columns: part, base_ns, variant_ns, delta_ns (per decode step; a part absent on one side
    counts 0 there). Order: GPU idle first, kernel families by |delta| descending, then
    copies and concurrency. sum(delta_ns) == variant span - base span.
    """
    if base.is_empty() or variant.is_empty():
        return pl.DataFrame(schema=WATERFALL_COLUMNS)
    j = base.rename({"ns_per_step": "base_ns"}).join(
        variant.rename({"ns_per_step": "variant_ns"}), on="part", how="full", coalesce=True
    ).with_columns(pl.col("base_ns").fill_null(0.0), pl.col("variant_ns").fill_null(0.0))
    j = j.with_columns((pl.col("variant_ns") - pl.col("base_ns")).alias("delta_ns"))
    rank = (pl.when(pl.col("part") == IDLE).then(0).when(pl.col("part").str.starts_with("kernels: ")).then(1)
            .when(pl.col("part") == COPY).then(2).otherwise(3))
    j = j.with_columns(rank.alias("_r"), pl.col("delta_ns").abs().alias("_a")).sort(["_r", "_a", "part"], descending=[False, True, False])
    return j.select(list(WATERFALL_COLUMNS)).cast(WATERFALL_COLUMNS)
