"""Launch overhead: how long each launch call takes, and how long its work then queues."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import call_rows, in_ranges_chunks, in_ranges_slim, per_trace, ranges, runtime_calls
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

ALL = "(all)"
LAUNCH_COLUMNS = {
    "api_name": pl.Utf8,
    "api_kind": pl.Utf8,
    "api_start_ns": pl.Int64,
    "api_dur_ns": pl.Int64,
    "global_tid": pl.Int64,
    "correlation_id": pl.Int64,
    "kernels": pl.Int64,
    "first_kernel": pl.Utf8,
    "kernel_start_ns": pl.Int64,
    "queue_delay_ns": pl.Int64,
}
SUMMARY_COLUMNS = {
    "range_name": pl.Utf8,
    "launches": pl.Int64,
    "kernels": pl.Int64,
    "api_total_ns": pl.Int64,
    "api_median_ns": pl.Float64,
    "api_p90_ns": pl.Float64,
    "queue_median_ns": pl.Float64,
    "queue_p90_ns": pl.Float64,
}


@analysis("launches", columns=LAUNCH_COLUMNS, needs=("runtime", "kernels"))
@per_trace  # launch_overhead reuses it
def launches(trace: Trace) -> pl.DataFrame:
    """One row per kernel or graph launch call, with the queue delay of its first kernel.

    Reads: runtime, kernels. Columns: api_name, api_kind ("kernel_launch"|"graph_launch"),
    api_start_ns, api_dur_ns (host time in the call), global_tid, correlation_id, kernels
    (kernel executions with this correlation id: 1 for a launch, the graph's kernel count
    for a graph launch), first_kernel (name), kernel_start_ns (its start),
    queue_delay_ns (first kernel start - call end, 0 when the GPU began before the call
    returned, as it does during a long graph launch; null when no kernel was traced).
    """
    every = runtime_calls(trace)
    # Only the row number and the two times go through filter, join and sort; the other
    # columns are gathered once, in the final order, by row number (~1/3 less peak memory
    # at 1M kernels than carrying all of them through each step; same rows, same order).
    calls = every.select("api_start_ns", "api_end_ns", "api_kind").with_row_index("_c").filter(
        pl.col("api_kind").is_in(["kernel_launch", "graph_launch"])).drop("api_kind")
    if calls.is_empty():
        return pl.DataFrame(schema=LAUNCH_COLUMNS)
    # Kernels grouped by the row of their launching call (matched once per trace on
    # correlation_id and process, shared with gpu_work): one small integer key. The first
    # kernel of a call is the one with the smallest start (arg_min: no sort of all kernels).
    pairs = call_rows(trace, ("kernel",))
    k = trace.kernels.select("name", "start_ns")
    if pairs.height != k.height:  # a call key matched twice: a kernel counts for each call
        k = k[pairs.get_column("_w")]
    k = k.with_columns(pairs.get_column("_c")).filter(pl.col("_c").is_not_null())
    if not (k.get_column("_c").sort().diff() == 0).any():  # one kernel per call (eager): no group-by
        k = k.select("_c", pl.lit(1, pl.UInt32).alias("kernels"), pl.col("name").alias("first_kernel"),
                     pl.col("start_ns").alias("kernel_start_ns"))
    else:
        k = k.group_by("_c").agg(
            pl.len().alias("kernels"),
            pl.col("name").get(pl.col("start_ns").arg_min()).alias("first_kernel"),
            pl.col("start_ns").min().alias("kernel_start_ns"),
        )
    out = calls.join(k, on="_c", how="left").with_columns(
        pl.col("kernels").fill_null(0),
        (pl.col("kernel_start_ns") - pl.col("api_end_ns")).clip(lower_bound=0).alias("queue_delay_ns"),
    ).drop("api_end_ns").sort("api_start_ns")
    rows = out.get_column("_c")
    out = out.with_columns(every.get_column(c).gather(rows) for c in ("api_name", "api_kind", "api_dur_ns", "global_tid",
                                                                     "correlation_id"))
    return shaped(out, LAUNCH_COLUMNS)


def _summary(frame: pl.DataFrame, by: str = "range_name") -> pl.DataFrame:
    return frame.group_by(by).agg(
        pl.len().alias("launches"),
        pl.col("kernels").sum(),
        pl.col("api_dur_ns").sum().alias("api_total_ns"),
        pl.col("api_dur_ns").median().alias("api_median_ns"),
        pl.col("api_dur_ns").quantile(0.9, interpolation="linear").alias("api_p90_ns"),
        pl.col("queue_delay_ns").median().alias("queue_median_ns"),
        pl.col("queue_delay_ns").quantile(0.9, interpolation="linear").alias("queue_p90_ns"),
    )


@analysis("launch_overhead", columns=SUMMARY_COLUMNS, needs=("runtime", "kernels"))
def launch_overhead(trace: Trace) -> pl.DataFrame:
    """Launch API time and queue delay per NVTX range name (and "(all)" first).

    Reads: runtime, kernels, nvtx; built on `launches`. A launch belongs to every range
    enclosing its call on the same thread. Columns: range_name, launches (kernel + graph
    launch calls), kernels (their kernel executions), api_total_ns, api_median_ns,
    api_p90_ns (host time per call), queue_median_ns, queue_p90_ns (first kernel start -
    call end: large when the GPU is busy with earlier work, i.e. the host runs ahead).
    """
    per = launches(trace)
    if per.is_empty():
        return pl.DataFrame(schema=SUMMARY_COLUMNS)
    rng = ranges(trace)
    # The (launch x range) pairs carry only what _summary reads, and the range name as a
    # small integer code (_name).
    names = rng.select("range_name").unique(maintain_order=True).with_row_index("_name")
    coded = rng.join(names, on="range_name", how="left", nulls_equal=True)
    slim = per.select("api_start_ns", "global_tid", "kernels", "api_dur_ns", "queue_delay_ns")
    points = ("kernels", "api_dur_ns", "queue_delay_ns")
    # Summaries per chunk of pairs, each holding every pair of the names it covers (medians
    # do not add up across chunks)
    parts = [_summary(c, "_name") for c in in_ranges_chunks(slim, coded, keep=("_name",), keep_points=points,
                                                            whole="_name")]
    per_name = pl.concat(parts) if parts else _summary(in_ranges_slim(slim, coded, keep=("_name",), keep_points=points),
                                                       "_name")
    summary = per_name.join(names, on="_name", how="left").select("range_name", pl.exclude("_name", "range_name"))
    order = rng.group_by("range_name").agg(pl.col("range_start_ns").min().alias("_first"))
    by_range = summary.join(order, on="range_name").sort("_first", "range_name").drop("_first")
    out = pl.concat([_summary(per.with_columns(pl.lit(ALL).alias("range_name"))), by_range], how="vertical_relaxed")
    return shaped(out, SUMMARY_COLUMNS)
