"""Idle gaps: the distribution of GPU idle gaps between kernels on each stream."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import gpu_work, in_ranges_slim, per_trace, ranges, runtime_calls
from decodeprof.analyses.registry import analysis, shaped
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
    "call_name": pl.Utf8,
    "call_start_ns": pl.Int64,
    "call_dur_ns": pl.Int64,
    "overlap_ns": pl.Int64,
}


def _previous_end(k: pl.DataFrame, by: list[str]) -> pl.Series:
    """`end_ns.cum_max().shift(1).over(by)` for `k` sorted by `by`: its groups are runs of
    rows, so each run's ends are lifted above the runs before it (run number x span) and one
    running maximum serves all (no window group-by over every kernel). The window itself
    where ends are null or the lifted axis would overflow."""
    run = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by).fill_null(True)
    ends = k.get_column("end_ns")
    if k.is_empty() or ends.has_nulls():
        return k.select(pl.col("end_ns").cum_max().shift(1).over(by)).to_series()
    lo, span = int(ends.min()), int(ends.max()) - int(ends.min()) + 1
    runs = k.select(run.alias("_new"), run.cum_sum().cast(pl.Int64).alias("_run"))
    if int(runs.get_column("_run").max()) * span >= 2**62:  # pragma: no cover - absurd spans only
        return k.select(pl.col("end_ns").cum_max().shift(1).over(by)).to_series()
    lifted = (ends - lo + runs.get_column("_run") * span).cum_max() - runs.get_column("_run") * span + lo
    return pl.select(pl.when(runs.get_column("_new")).then(None).otherwise(lifted.shift(1))).to_series()


@per_trace  # idle_gaps and largest_gaps share it
def stream_gaps(trace: Trace, range_name: str = "decode") -> tuple[str, pl.DataFrame]:
    """(scope, kernels): each kernel with the gap before it on its stream (null for the first).

    Scope "<range_name>": kernels launched inside each such NVTX range, gaps taken within
    one range instance; "trace" when the trace has no such range: all kernels. Columns:
    group, device_id, stream_id, gap_start_ns (previous kernel end), gap_end_ns (this
    kernel's start), gap_ns (>= 0), next_kernel (this kernel's name).
    """
    rng = ranges(trace, (range_name,))
    k = gpu_work(trace, ("kernel",), ("device_id", "stream_id", "start_ns", "end_ns", "name", "api_start_ns", "global_tid"))
    if rng.is_empty():
        scope, k = "trace", k.with_columns(pl.lit(0, pl.Int64).alias("group"))
    else:
        scope, k = range_name, in_ranges_slim(k, rng, keep=("range_id",), keep_points=(
            "device_id", "stream_id", "start_ns", "end_ns", "name")).rename({"range_id": "group"})
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
    (default "decode"; the whole trace when there is none: scope "trace"), per device and
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
    """The `top` largest stream gaps (as in idle_gaps) and the runtime calls running during them.

    Reads: kernels, runtime, nvtx. One row per (gap, overlapping CUDA API call, any
    thread); a gap with no call gets one row with null call columns. Columns: gap_rank
    (1 = largest), scope, device_id, stream_id, gap_start_ns, gap_ns, next_kernel,
    call_name, call_start_ns, call_dur_ns, overlap_ns (call time inside the gap).
    """
    scope, gaps = stream_gaps(trace, range_name)
    gaps = (gaps.lazy().filter(pl.col("gap_ns").is_not_null() & (pl.col("gap_ns") > 0))
            .sort(["gap_ns", "gap_start_ns"], descending=[True, False]).head(top).collect())  # sort + head: a top-k
    if gaps.is_empty():
        return pl.DataFrame(schema=CALL_COLUMNS)
    gaps = gaps.with_row_index("gap_rank", offset=1).with_columns(pl.lit(scope).alias("scope"))
    calls = runtime_calls(trace).select(
        pl.col("api_name").alias("call_name"), pl.col("api_start_ns").alias("call_start_ns"),
        pl.col("api_end_ns").alias("_call_end"), pl.col("api_dur_ns").alias("call_dur_ns"),
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
    out = gaps.join(pairs.select("gap_rank", "call_name", "call_start_ns", "call_dur_ns", "overlap_ns"),
                    on="gap_rank", how="left").sort("gap_rank", "call_start_ns", nulls_last=True)
    return shaped(out, CALL_COLUMNS)
