"""NVTX projection: GPU work attributed to the NVTX ranges enclosing its launching call."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import gpu_work, in_ranges, in_ranges_chunks, ranges, runtime_calls, unmeasured
from decodeprof.analyses.intervals import union_ns
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

COLUMNS = {
    "range_name": pl.Utf8,
    "count": pl.Int64,
    "cpu_span_ns": pl.Int64,
    "gpu_span_ns": pl.Int64,
    "gpu_busy_ns": pl.Int64,
    "kernels": pl.Int64,
    "graph_kernels": pl.Int64,
    "graph_launches": pl.Int64,
    "memcpys": pl.Int64,
    "memcpy_bytes": pl.Int64,
    "first_range_start_ns": pl.Int64,
}


WORK_COLUMNS = ("op", "start_ns", "end_ns", "graph_node_id", "bytes", "api_start_ns", "global_tid")
RANGE_COLUMNS = ("range_id", "range_start_ns", "range_end_ns", "global_tid")


def attributed_work(trace: Trace) -> pl.DataFrame:
    """GPU work (kernels, memcpys, memsets) x enclosing NVTX range: one row per pair.

    A graph-replayed kernel shares its cudaGraphLaunch call's correlation id, so it lands in
    the ranges around that call, once per launch. Columns: op, start_ns, end_ns,
    graph_node_id, bytes, api_start_ns, global_tid, range_id, range_start_ns, range_end_ns.
    """
    return in_ranges(gpu_work(trace, columns=WORK_COLUMNS), ranges(trace).select(RANGE_COLUMNS))


KERNEL_COLUMNS = ("start_ns", "end_ns", "graph_node_id", "api_start_ns", "global_tid")


def _kernels_per_instance(kern: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per range instance of (kernel x range) pairs: span, counts, and busy time. Span and
    count come from union_ns' own group-by (one pass, not two) when no time is null."""
    stats = union_ns(kern, by=["range_id"], extents=True)
    if kern.get_column("start_ns").has_nulls() or kern.get_column("end_ns").has_nulls():
        per_inst = kern.group_by("range_id").agg(
            (pl.col("end_ns").max() - pl.col("start_ns").min()).alias("gpu_span_ns"),
            pl.len().alias("kernels"),
        )
    else:
        per_inst = stats.select("range_id", (pl.col("last_end_ns") - pl.col("first_start_ns")).alias("gpu_span_ns"),
                                pl.col("intervals").alias("kernels"))
    if kern.get_column("graph_node_id").null_count() < kern.height:
        graphs = kern.group_by("range_id").agg(pl.col("graph_node_id").is_not_null().sum().alias("graph_kernels"))
        per_inst = per_inst.join(graphs, on="range_id", how="left")
    else:  # no kernel replayed from a graph (eager variants): no group-by needed
        per_inst = per_inst.with_columns(pl.lit(0, pl.UInt32).alias("graph_kernels"))
    return per_inst, stats.select("range_id", pl.col("busy_ns").alias("gpu_busy_ns"))


@analysis("nvtx_projection", columns=COLUMNS, needs=("nvtx", "runtime", "kernels"))
def nvtx_projection(trace: Trace) -> pl.DataFrame:
    """Per NVTX range name: CPU span, and the GPU work launched inside it.

    Reads: nvtx, runtime, kernels, memcpys, memsets. Work belongs to every range that
    encloses the start of its launching runtime call on the same thread (nested ranges
    each count it). One row per range name, in order of first appearance:
    range_name; count (range instances); cpu_span_ns (sum of range durations);
    gpu_span_ns (per instance: first kernel start -> last kernel end, summed);
    gpu_busy_ns (per instance: union of kernel intervals, summed; < span when idle,
    never double-counts concurrent streams); kernels (kernel executions attributed);
    graph_kernels (those replayed from a CUDA graph); graph_launches (cudaGraphLaunch calls
    in the range); memcpys, memcpy_bytes (copies attributed, bytes);
    first_range_start_ns (trace clock). Columns whose table the capture lacks are null (work
    is attributed through its runtime call, so without runtime rows all of them are).
    """
    rng = ranges(trace)
    if rng.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    # Kernels one nesting level of ranges at a time (each range's pairs lie in one chunk):
    # the (kernel x range) pairs of all levels never exist at once. Only the columns used
    # are gathered; memsets are not reported.
    keys = rng.select(RANGE_COLUMNS)
    kernels = gpu_work(trace, ("kernel",), KERNEL_COLUMNS)
    parts = [_kernels_per_instance(chunk) for chunk in in_ranges_chunks(
        kernels, keys, keep=("range_id",), keep_points=("start_ns", "end_ns", "graph_node_id"))]
    if not parts:
        parts = [_kernels_per_instance(in_ranges(kernels, keys))]
    per_inst, busy = (pl.concat([p[i] for p in parts], how="vertical_relaxed") for i in range(2))
    copies = in_ranges(gpu_work(trace, ("memcpy",), ("bytes", "api_start_ns", "global_tid")), keys).group_by("range_id").agg(
        pl.len().alias("memcpys"), pl.col("bytes").sum().alias("memcpy_bytes")
    )
    graph_calls = in_ranges(runtime_calls(trace).filter(pl.col("api_kind") == "graph_launch"), rng)
    graphs = graph_calls.group_by("range_id").agg(pl.len().alias("graph_launches"))
    inst = rng
    for part in (per_inst, busy, copies, graphs):
        inst = inst.join(part, on="range_id", how="left")
    out = (
        inst.group_by("range_name")
        .agg(
            pl.len().alias("count"),
            pl.col("range_dur_ns").sum().alias("cpu_span_ns"),
            *(pl.col(c).fill_null(0).sum() for c in
              ("gpu_span_ns", "gpu_busy_ns", "kernels", "graph_kernels", "graph_launches", "memcpys", "memcpy_bytes")),
            pl.col("range_start_ns").min().alias("first_range_start_ns"),
        )
        .sort(["first_range_start_ns", "range_name"])
    )
    kernel_cols = ("gpu_span_ns", "gpu_busy_ns", "kernels", "graph_kernels")
    copy_cols = ("memcpys", "memcpy_bytes")
    return shaped(unmeasured(trace, out, {"kernels": kernel_cols, "memcpys": copy_cols,
                                          "runtime": (*kernel_cols, *copy_cols, "graph_launches")}), COLUMNS)
