"""Idle gaps: the distribution of GPU idle gaps between kernels on each stream."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import gpu_work, in_ranges_slim, per_trace, ranges, runtime_calls
from decodeprof.analyses.intervals import fits_one_axis
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.analyses.steps import step_model
from decodeprof.trace import Trace

COLUMNS = {
    "scope": pl.Utf8,
    "device_id": pl.Int64,
    "stream_id": pl.Int64,
    "kernels": pl.Int64,
    "gaps": pl.Int64,
    "median_ns": pl.Float64,
    "p90_ns": pl.Float64,
    "max_ns": pl.Int64,
    "total_ns": pl.Int64,
}
CALL_COLUMNS = {
    "gap_rank": pl.Int64,
    "scope": pl.Utf8,
    "device_id": pl.Int64,
    "stream_id": pl.Int64,
    "gap_start_ns": pl.Int64,
    "gap_ns": pl.Int64,
    "next_kernel": pl.Utf8,
    "calls": pl.Int64,
    "call_overlap_ns": pl.Int64,
    "top_call": pl.Utf8,
    "top_call_calls": pl.Int64,
    "top_call_overlap_ns": pl.Int64,
}


def _previous_end(k: pl.DataFrame, by: list[str]) -> pl.Series:
    """The latest end among the earlier rows of each row's group (`by`; null for a group's
    first row), for `k` sorted by `by`: a null end is skipped, never a reason to forget the
    ends before it. Its groups are runs of rows, so each run's ends are lifted above the runs
    before it (run number x span) and one running maximum serves all (no window group-by over
    every kernel). A window where ends are null or the lifted axis would overflow."""
    run = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by).fill_null(True)
    ends = k.get_column("end_ns")
    window = pl.col("end_ns").cum_max().forward_fill().shift(1).over(by)
    if k.is_empty() or ends.has_nulls():
        return k.select(window).to_series()
    lo, span = int(ends.min()), int(ends.max()) - int(ends.min()) + 1
    runs = k.select(run.alias("_new"), run.cum_sum().cast(pl.Int64).alias("_run"))
    if not fits_one_axis(int(runs.get_column("_run").max()) * span):  # times near 2^62
        return k.select(window).to_series()
    lifted = (ends - lo + runs.get_column("_run") * span).cum_max() - runs.get_column("_run") * span + lo
    return pl.select(pl.when(runs.get_column("_new")).then(None).otherwise(lifted.shift(1))).to_series()


@per_trace  # idle_gaps and largest_gaps share it
def stream_gaps(trace: Trace, range_name: str = "decode") -> tuple[str, pl.DataFrame]:
    """(scope, kernels): each kernel with the gap before it on its stream (null for the first).

    Scope "<range_name>": kernels launched inside each such NVTX range, gaps taken within
    one range instance. Without such a range, for the default "decode": the decode steps the
    decode-step model found (scope "decode steps (<source>)", gaps taken within one decode
    run); else "trace": all kernels. Columns: group, device_id, stream_id, gap_start_ns
    (previous kernel end), gap_end_ns (this kernel's start), gap_ns (>= 0), next_kernel.
    """
    rng = ranges(trace, (range_name,))
    k = gpu_work(trace, ("kernel",), ("device_id", "stream_id", "start_ns", "end_ns", "name", "api_start_ns", "global_tid"))
    model = step_model(trace) if rng.is_empty() and range_name == "decode" else None
    if rng.height:
        scope, k = range_name, in_ranges_slim(k, rng, keep=("range_id",), keep_points=(
            "device_id", "stream_id", "start_ns", "end_ns", "name")).rename({"range_id": "group"})
    elif model is not None and model.cut.height:
        # the model's op rows are numbered in gpu_work's all-ops order, whose kernels come first
        steps_ops = model.ops.filter((pl.col("op") == "kernel") & pl.col("step_index").is_in(model.cut["step_index"].implode()))
        scope = f"decode steps ({model.source})"
        k = k.with_row_index("_op").join(steps_ops.select("_op", pl.col("decode_index").alias("group")), on="_op").drop("_op")
    else:
        scope, k = "trace", k.with_columns(pl.lit(0, pl.Int64).alias("group"))
    by = ["group", "device_id", "stream_id"]
    k = k.sort([*by, "start_ns"])
    k = k.with_columns(_previous_end(k, by).alias("gap_start_ns"))
    gaps = k.select(
        *by, "gap_start_ns", pl.col("start_ns").alias("gap_end_ns"),
        (pl.col("start_ns") - pl.col("gap_start_ns")).clip(lower_bound=0).alias("gap_ns"),
        pl.col("name").alias("next_kernel"),
    )
    return scope, gaps


@analysis("idle_gaps", columns=COLUMNS, needs=("kernels",))
def idle_gaps(trace: Trace, *, range_name: str = "decode") -> pl.DataFrame:
    """Gap between consecutive kernels on each stream, inside the decode range(s).

    Reads: kernels, runtime, nvtx. Kernels launched inside each `range_name` range
    (default "decode"; without one, the decode steps found by the decode-step model; the
    whole trace when there are none: scope "trace"), per device and
    stream, in start order; a gap is next start - previous end (0 when they touch or
    overlap). One row per (device, stream): scope, device_id, stream_id, kernels, gaps,
    median_ns, p90_ns, max_ns, total_ns (gap statistics in ns).
    """
    scope, gaps = stream_gaps(trace, range_name)
    if gaps.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    by = ["device_id", "stream_id"]
    out = gaps.group_by(by).agg(
        pl.len().alias("kernels"),
        pl.col("gap_ns").count().alias("gaps"),
        pl.col("gap_ns").median().alias("median_ns"),
        pl.col("gap_ns").quantile(0.9, interpolation="linear").alias("p90_ns"),
        pl.col("gap_ns").max().alias("max_ns"),
        pl.col("gap_ns").sum().alias("total_ns"),
    ).with_columns(pl.lit(scope).alias("scope")).sort(by)
    return shaped(out, COLUMNS)


@analysis("largest_gaps", columns=CALL_COLUMNS, needs=("kernels", "runtime"))
def largest_gaps(trace: Trace, *, range_name: str = "decode", top: int = 5) -> pl.DataFrame:
    """The `top` largest stream gaps (as in idle_gaps), each with the CUDA API calls during it.

    Reads: kernels, runtime, nvtx. One row per gap: gap_rank (1 = largest), scope, device_id,
    stream_id, gap_start_ns, gap_ns, next_kernel; the runtime calls (any thread) overlapping
    it: calls (how many), call_overlap_ns (their time inside the gap, summed), top_call (the
    call name with the most time inside the gap), top_call_calls, top_call_overlap_ns. A gap
    with no call has calls 0 and null top_call.
    """
    scope, gaps = stream_gaps(trace, range_name)
    gaps = (gaps.lazy().filter(pl.col("gap_ns").is_not_null() & (pl.col("gap_ns") > 0))
            .sort(["gap_ns", "gap_start_ns"], descending=[True, False]).head(top).collect())  # sort + head: a top-k
    if gaps.is_empty():
        return pl.DataFrame(schema=CALL_COLUMNS)
    gaps = gaps.with_row_index("gap_rank", offset=1).with_columns(pl.lit(scope).alias("scope"))
    calls = runtime_calls(trace).select(
        pl.col("api_name").alias("call_name"), pl.col("api_start_ns").alias("call_start_ns"),
        pl.col("api_end_ns").alias("_call_end"),
    )
    # The calls during `top` gaps: one vectorised filter of the calls per gap (top is small),
    # the same pairs as an interval join of gaps x calls without its setup over all calls.
    pairs = pl.concat([
        calls.filter((pl.col("call_start_ns") < g["gap_end_ns"]) & (pl.col("_call_end") > g["gap_start_ns"]))
        .with_columns(pl.lit(g["gap_rank"], gaps.schema["gap_rank"]).alias("gap_rank"),
                      (pl.min_horizontal(pl.lit(g["gap_end_ns"]), "_call_end")
                       - pl.max_horizontal(pl.lit(g["gap_start_ns"]), "call_start_ns")).alias("overlap_ns"))
        for g in gaps.select("gap_rank", "gap_start_ns", "gap_end_ns").iter_rows(named=True)
    ])
    by_name = pairs.group_by("gap_rank", "call_name").agg(pl.len().alias("n"), pl.col("overlap_ns").sum().alias("ns"))
    top_call = by_name.sort("ns", "call_name", descending=[True, False]).group_by("gap_rank", maintain_order=True).first()
    summed = pairs.group_by("gap_rank").agg(pl.len().alias("calls"), pl.col("overlap_ns").sum().alias("call_overlap_ns"))
    out = gaps.join(summed, on="gap_rank", how="left").join(
        top_call.select("gap_rank", pl.col("call_name").alias("top_call"), pl.col("n").alias("top_call_calls"),
                        pl.col("ns").alias("top_call_overlap_ns")), on="gap_rank", how="left",
    ).with_columns(pl.col("calls").fill_null(0), pl.col("call_overlap_ns").fill_null(0)).sort("gap_rank")
    return shaped(out, CALL_COLUMNS)
