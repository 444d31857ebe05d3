"""Multi-GPU runs: one nsys trace holding every rank's process (torchrun under nsys).

A rank is a process with an NVTX "measured" range; everything below is scoped to the measured
iterations (NVTX ranges starting, GPU work launched, inside "measured" on the same thread).
The rank number comes from the target's metrics.json (`ranks[r].pid`, decodeprof_targets/multigpu.py)
when every rank process is listed there, else from the processes' pid order. The process id is
read from nsys's global id (bits 24-47 of globalPid).

Communication is seen two ways:
- host view: the target's NVTX ranges "allreduce" / "allgather" around each collective (wall
  time of the call, waiting for the slower rank included; on the CPU (gloo) the whole
  collective). Under a CUDA graph the decode collectives have no range.
- GPU view: NCCL kernels (name contains "nccl"); for a process without NCCL kernels, device-
  to-device copies launched inside a collective range or replayed from a CUDA graph (at world
  size 1 NCCL runs a collective as a device copy; in a graph such a copy cannot be told apart
  from another device copy, so every replayed one counts).

Traces of other targets (one process, no collective range, no NCCL kernel, no `ranks` in the
metrics) give no rows.
"""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import MEASURED, config_steps, gpu_work, in_ranges, per_trace, ranges, unmeasured
from decodeprof.analyses.intervals import merge, overlapping, points_in_ranges
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

COLLECTIVE_RANGES = ("allreduce", "allgather")
SCOPED_RANGES = ("iteration", "decode", "step", *COLLECTIVE_RANGES)
NCCL = r"(?i)nccl"
DTOD = "DTOD"  # substring of ENUM_CUDA_MEMCPY_OPER's device-to-device label
PID_SHIFT, PID_MASK = 24, 0xFFFFFF  # nsys global ids: pid in bits 24-47


def pid_of(global_pid: pl.Expr) -> pl.Expr:
    """Expression: the OS process id packed in an nsys globalPid."""
    return (global_pid // (1 << PID_SHIFT)) % (PID_MASK + 1)


def _metrics_pids(trace: Trace) -> dict[int, int]:
    """pid -> rank from metrics.json `ranks` (empty when absent or malformed)."""
    return {r.pid: r.rank for r in trace.target_metrics.ranks if r.pid is not None and r.rank is not None}


def _is_multigpu_run(trace: Trace, processes: int, scoped: pl.DataFrame) -> bool:
    return (processes > 1 or bool(_metrics_pids(trace))
            or scoped["range_name"].is_in(list(COLLECTIVE_RANGES)).any()
            or trace.kernels["name"].str.contains(NCCL).any())


@per_trace
def _scoped_ranges(trace: Trace) -> pl.DataFrame:
    """NVTX ranges named in SCOPED_RANGES inside a "measured" range of their thread (`ranges`
    keeps only those on a thread that has one; threads without one are dropped here):
    range_id, range_name, range_start_ns, range_end_ns, range_dur_ns, global_tid, global_pid."""
    rng = ranges(trace, (MEASURED, *SCOPED_RANGES))
    pids = trace.nvtx.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("range_id"), "global_pid")
    rng = rng.join(pids, on="range_id", how="left")
    measured = rng.filter(pl.col("range_name") == MEASURED).select("global_tid").unique()
    return rng.filter(pl.col("range_name") != MEASURED).join(measured, on="global_tid", how="semi")


@per_trace
def rank_table(trace: Trace) -> pl.DataFrame:
    """One row per rank process: global_pid, pid, rank, rank_source ("metrics.json" when
    every rank's pid is in metrics.json `ranks`, else "pid order"). Empty unless the trace is
    a multi-GPU run (see the module docstring)."""
    schema = {"global_pid": pl.Int64, "pid": pl.Int64, "rank": pl.Int64, "rank_source": pl.Utf8}
    measured = ranges(trace, (MEASURED,))
    if measured.is_empty():
        return pl.DataFrame(schema=schema)
    pids = trace.nvtx.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("range_id"), "global_pid")
    procs = (measured.join(pids, on="range_id").select("global_pid").unique().drop_nulls()
             .with_columns(pid_of(pl.col("global_pid")).alias("pid")).sort("pid"))
    if not _is_multigpu_run(trace, procs.height, _scoped_ranges(trace)):
        return pl.DataFrame(schema=schema)
    known = _metrics_pids(trace)
    if known and all(p in known for p in procs["pid"].to_list()):
        out = procs.with_columns(pl.col("pid").replace_strict(known, return_dtype=pl.Int64).alias("rank"),
                                 pl.lit("metrics.json").alias("rank_source"))
    else:
        out = procs.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("rank"),
                                 pl.lit("pid order").alias("rank_source"))
    return out.sort("rank").select(list(schema)).cast(schema)


@per_trace
def measured_work(trace: Trace) -> pl.DataFrame:
    """Kernels and memcpys launched inside a "measured" range of the same thread (one row each):
    _w (row id), op, start_ns, end_ns, dur_ns, device_id, stream_id, global_pid, name (kernel
    name; copy kind for memcpys), graph_node_id, api_start_ns, global_tid."""
    cols = ["op", "start_ns", "end_ns", "dur_ns", "device_id", "stream_id", "global_pid", "name",
            "graph_node_id", "api_start_ns", "global_tid"]
    work = gpu_work(trace, ("kernel", "memcpy")).select(cols).with_row_index("_w")
    measured = ranges(trace, (MEASURED,))
    hit = in_ranges(work, measured)
    return work.filter(pl.col("_w").is_in(hit["_w"].unique().implode()))


@per_trace
def collective_work(trace: Trace) -> pl.DataFrame:
    """The GPU work of collectives in the measured iterations: measured_work's columns plus
    source ("nccl_kernel" | "dtod_copy"). NCCL kernels; for a process with none, device-to-
    device copies launched inside an allreduce/allgather range or replayed from a CUDA graph."""
    w = measured_work(trace)
    nccl = w.filter((pl.col("op") == "kernel") & pl.col("name").str.contains(NCCL))
    dtod = w.filter((pl.col("op") == "memcpy") & pl.col("name").str.contains(DTOD)
                    & ~pl.col("global_pid").is_in(nccl["global_pid"].unique().implode()))
    in_coll = in_ranges(dtod, ranges(trace, COLLECTIVE_RANGES))["_w"].unique()
    dtod = dtod.filter(pl.col("_w").is_in(in_coll.implode()) | pl.col("graph_node_id").is_not_null())
    return pl.concat([nccl.with_columns(pl.lit("nccl_kernel").alias("source")),
                      dtod.with_columns(pl.lit("dtod_copy").alias("source"))])


def _per_rank(frame: pl.DataFrame, *aggs: pl.Expr) -> pl.DataFrame:
    return frame.group_by("global_pid").agg(*aggs)


def _source(col: str = "source") -> pl.Expr:
    return pl.col(col).unique().sort().str.join("+")


RANK_COLUMNS = {
    "rank": pl.Int64,
    "pid": pl.Int64,
    "global_pid": pl.Int64,
    "rank_source": pl.Utf8,
    "iterations": pl.Int64,
    "decode_ranges": pl.Int64,
    "steps": pl.Int64,
    "decode_ns": pl.Int64,
    "kernels": pl.Int64,
    "kernel_ns": pl.Int64,
    "collective_ranges": pl.Int64,
    "collective_range_ns": pl.Int64,
    "collective_gpu_ops": pl.Int64,
    "collective_gpu_ns": pl.Int64,
    "collective_gpu_source": pl.Utf8,
    "decode_comm_ns": pl.Int64,
    "comm_per_step_ns": pl.Float64,
    "comm_fraction": pl.Float64,
    "decode_vs_fastest": pl.Float64,
    "slowest": pl.Boolean,
}


def _steps_per_decode(trace: Trace, scoped: pl.DataFrame, steps: int | None) -> pl.DataFrame:
    """Measured decode ranges with decode_index (0-based per process), steps and step_source."""
    dec = scoped.filter(pl.col("range_name") == "decode").sort("global_pid", "range_start_ns").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("global_pid").alias("decode_index"))
    step_r = scoped.filter(pl.col("range_name") == "step")
    per = points_in_ranges(step_r.select(pl.col("range_id").alias("_step"), pl.col("range_start_ns").alias("_at"), "global_tid"),
                           dec.select("range_id", "range_start_ns", "range_end_ns", "global_tid"),
                           at="_at", start="range_start_ns", end="range_end_ns", by="global_tid")
    counts = per.group_by("range_id").agg(pl.len().cast(pl.Int64).alias("_steps"))
    n = config_steps(trace, steps)
    return dec.join(counts, on="range_id", how="left").with_columns(
        pl.when(pl.col("_steps").is_not_null()).then(pl.lit("step_range")).otherwise(pl.lit("decode_slice")).alias("step_source"),
        pl.coalesce("_steps", pl.lit(n, pl.Int64)).alias("steps"),
    ).drop("_steps")


@analysis("rank_summary", columns=RANK_COLUMNS, needs=("nvtx",))
def rank_summary(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row per rank of a multi-GPU run: its measured decode time, kernels and collectives.

    Reads: nvtx ("measured", "iteration", "decode", "step", "allreduce", "allgather" ranges),
    kernels, memcpys, runtime; metrics.json `ranks` (pid -> rank) and config.steps. All counts
    and times are inside the rank's "measured" range. Columns: rank, pid (OS process id),
    global_pid, rank_source ("metrics.json" | "pid order"), iterations, decode_ranges, steps
    (step ranges in decode; graph decode: decode_ranges x config.steps, else the `steps`
    option), decode_ns (sum of decode range durations, host clock), kernels, kernel_ns (sum of
    kernel durations, NCCL kernels included), collective_ranges and collective_range_ns
    (allreduce/allgather NVTX ranges and their summed duration: host view, waits included),
    collective_gpu_ops and collective_gpu_ns (collective GPU work, see collective_work),
    collective_gpu_source ("nccl_kernel" | "dtod_copy", null without GPU collectives),
    decode_comm_ns (collectives_per_step's comm_ns summed over the rank's decode ranges),
    comm_per_step_ns = decode_comm_ns / steps, comm_fraction = decode_comm_ns / decode_ns (0-1),
    decode_vs_fastest (decode_ns / the smallest decode_ns of any rank, 1 = fastest), slowest
    (true for the one rank with the largest decode_ns; ties: lowest rank).
    """
    ranks = rank_table(trace)
    if ranks.is_empty():
        return pl.DataFrame(schema=RANK_COLUMNS)
    scoped = _scoped_ranges(trace)
    dec = _steps_per_decode(trace, scoped, steps)
    iters = _per_rank(scoped.filter(pl.col("range_name") == "iteration"), pl.len().alias("iterations"))
    decode = _per_rank(dec, pl.len().alias("decode_ranges"), pl.col("steps").sum().alias("steps"),
                       pl.col("range_dur_ns").sum().alias("decode_ns"))
    coll = _per_rank(scoped.filter(pl.col("range_name").is_in(list(COLLECTIVE_RANGES))),
                     pl.len().alias("collective_ranges"), pl.col("range_dur_ns").sum().alias("collective_range_ns"))
    kern = _per_rank(measured_work(trace).filter(pl.col("op") == "kernel"),
                     pl.len().alias("kernels"), pl.col("dur_ns").sum().alias("kernel_ns"))
    gpu = _per_rank(collective_work(trace), pl.len().alias("collective_gpu_ops"),
                    pl.col("dur_ns").sum().alias("collective_gpu_ns"), _source().alias("collective_gpu_source"))
    comm = collectives_per_step(trace, steps=steps).group_by("rank").agg(pl.col("comm_ns").sum().alias("decode_comm_ns"))
    out = ranks.join(comm, on="rank", how="left")
    for part in (iters, decode, coll, kern, gpu):
        out = out.join(part, on="global_pid", how="left")
    zero = ("iterations", "decode_ranges", "decode_ns", "kernels", "kernel_ns", "collective_ranges",
            "collective_range_ns", "collective_gpu_ops", "collective_gpu_ns", "decode_comm_ns")
    out = out.with_columns(pl.col(c).fill_null(0) for c in zero).sort("rank").with_columns(
        (pl.col("decode_comm_ns") / pl.col("steps")).alias("comm_per_step_ns"),
        (pl.col("decode_comm_ns") / pl.col("decode_ns")).alias("comm_fraction"))
    fastest = out.filter(pl.col("decode_ns") > 0)["decode_ns"].min()
    slow = out.sort(["decode_ns", "rank"], descending=[True, False])["rank"][0]
    out = out.with_columns(
        (pl.col("decode_ns") / fastest if fastest else pl.lit(None, pl.Float64)).alias("decode_vs_fastest"),
        ((pl.col("rank") == slow) & (pl.col("decode_ns") > 0)).alias("slowest"),
    )
    gpu_cols = ("kernels", "kernel_ns", "collective_gpu_ops", "collective_gpu_ns")
    return shaped(unmeasured(trace, out, {"kernels": gpu_cols, "runtime": gpu_cols}), RANK_COLUMNS)


STEP_COLUMNS = {
    "rank": pl.Int64,
    "pid": pl.Int64,
    "decode_index": pl.Int64,
    "step_source": pl.Utf8,
    "steps": pl.Int64,
    "decode_ns": pl.Int64,
    "collectives": pl.Int64,
    "comm_range_ns": pl.Int64,
    "step_comm_range_median_ns": pl.Float64,
    "collective_gpu_ops": pl.Int64,
    "collective_gpu_ns": pl.Int64,
    "comm_source": pl.Utf8,
    "comm_ns": pl.Int64,
    "comm_per_step_ns": pl.Float64,
    "comm_fraction": pl.Float64,
}


@analysis("collectives_per_step", columns=STEP_COLUMNS, needs=("nvtx",))
def collectives_per_step(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """Communication per decode step: one row per (rank, measured decode range).

    Reads: as rank_summary. Columns: rank, pid, decode_index (0-based measured decode range of
    the rank), step_source ("step_range": step ranges counted; "decode_slice": graph decode,
    steps = config.steps or the `steps` option), steps, decode_ns (range duration),
    collectives and comm_range_ns (allreduce/allgather ranges starting in the decode range,
    their count and summed duration), step_comm_range_median_ns (median over the step ranges
    of the collective-range time inside each step; null without step ranges),
    collective_gpu_ops and collective_gpu_ns (collective GPU work launched in the decode range:
    for a graph, everything its launch replayed), comm_source ("nvtx_range" when collective
    ranges exist, else "gpu_work" when collective GPU work does, else "none"), comm_ns (the
    source's time: comm_range_ns, collective_gpu_ns or 0), comm_per_step_ns = comm_ns / steps,
    comm_fraction = comm_ns / decode_ns (0-1).
    """
    ranks = rank_table(trace)
    if ranks.is_empty():
        return pl.DataFrame(schema=STEP_COLUMNS)
    scoped = _scoped_ranges(trace)
    dec = _steps_per_decode(trace, scoped, steps).join(ranks.select("global_pid", "rank", "pid"), on="global_pid")
    win = dec.select(pl.col("range_id").alias("_dec"), pl.col("range_start_ns").alias("_ds"),
                     pl.col("range_end_ns").alias("_de"), "global_tid")
    coll = scoped.filter(pl.col("range_name").is_in(list(COLLECTIVE_RANGES)))
    in_dec = points_in_ranges(coll.select("range_dur_ns", pl.col("range_start_ns").alias("_at"), "global_tid"),
                              win, at="_at", start="_ds", end="_de", by="global_tid")
    by_range = in_dec.group_by("_dec").agg(pl.len().alias("collectives"), pl.col("range_dur_ns").sum().alias("comm_range_ns"))
    step_r = scoped.filter(pl.col("range_name") == "step").select(
        pl.col("range_id").alias("_step"), pl.col("range_start_ns").alias("_ss"), pl.col("range_end_ns").alias("_se"), "global_tid")
    per_step = points_in_ranges(coll.select("range_dur_ns", pl.col("range_start_ns").alias("_at"), "global_tid"),
                                step_r, at="_at", start="_ss", end="_se", by="global_tid")
    per_step = per_step.group_by("_step").agg(pl.col("range_dur_ns").sum().alias("_c"))
    per_step = step_r.join(per_step, on="_step", how="left").with_columns(pl.col("_c").fill_null(0))
    step_med = points_in_ranges(per_step.select("_c", pl.col("_ss").alias("_at"), "global_tid"), win,
                                at="_at", start="_ds", end="_de", by="global_tid").group_by("_dec").agg(
        pl.col("_c").median().alias("step_comm_range_median_ns"))
    work = collective_work(trace).select("dur_ns", "api_start_ns", "global_tid")
    gpu = in_ranges(work, win.rename({"_ds": "range_start_ns", "_de": "range_end_ns"})).group_by("_dec").agg(
        pl.len().alias("collective_gpu_ops"), pl.col("dur_ns").sum().alias("collective_gpu_ns"))
    out = dec.rename({"range_id": "_dec", "range_dur_ns": "decode_ns"})
    for part in (by_range, step_med, gpu):
        out = out.join(part, on="_dec", how="left")
    out = out.with_columns(pl.col(c).fill_null(0) for c in ("collectives", "comm_range_ns", "collective_gpu_ops", "collective_gpu_ns"))
    out = out.with_columns(
        pl.when(pl.col("collectives") > 0).then(pl.lit("nvtx_range"))
        .when(pl.col("collective_gpu_ops") > 0).then(pl.lit("gpu_work")).otherwise(pl.lit("none")).alias("comm_source"),
        pl.when(pl.col("collectives") > 0).then(pl.col("comm_range_ns"))
        .otherwise(pl.col("collective_gpu_ns")).alias("comm_ns"),
    ).with_columns(
        (pl.col("comm_ns") / pl.col("steps")).alias("comm_per_step_ns"),
        (pl.col("comm_ns") / pl.col("decode_ns")).alias("comm_fraction"),
    )
    gpu_cols = ("collective_gpu_ops", "collective_gpu_ns")
    return shaped(unmeasured(trace, out.sort("rank", "decode_index"), {"kernels": gpu_cols, "runtime": gpu_cols}), STEP_COLUMNS)


OVERLAP_COLUMNS = {
    "rank": pl.Int64,
    "pid": pl.Int64,
    "device_id": pl.Int64,
    "collective_gpu_ops": pl.Int64,
    "collective_gpu_ns": pl.Int64,
    "overlapped_ns": pl.Int64,
    "overlap_fraction": pl.Float64,
}


@analysis("comm_overlap", columns=OVERLAP_COLUMNS, needs=("kernels",))
def comm_overlap(trace: Trace) -> pl.DataFrame:
    """How much collective GPU time runs while the rank computes on another stream.

    Reads: kernels, memcpys, runtime, nvtx. One row per (rank, device) with collective GPU work
    in the measured iterations (none on CPU-only traces). Columns: rank, pid, device_id,
    collective_gpu_ops, collective_gpu_ns (summed durations, see collective_work),
    overlapped_ns (collective time intersected with the union of the same process's other
    kernels (not NCCL) on other streams of the same device), overlap_fraction = overlapped_ns /
    collective_gpu_ns (0-1; 0 when communication and compute are serialized on one stream).
    """
    ranks = rank_table(trace)
    if ranks.is_empty():  # before collective_work: on a single-process trace it is never built
        return pl.DataFrame(schema=OVERLAP_COLUMNS)
    coll = collective_work(trace).with_row_index("_c")
    if coll.is_empty():
        return pl.DataFrame(schema=OVERLAP_COLUMNS)
    compute = trace.kernels.filter(~pl.col("name").str.contains(NCCL))
    parts = []
    for gpid, dev, stream in coll.select("global_pid", "device_id", "stream_id").unique().sort(pl.all()).iter_rows():
        mine = coll.filter((pl.col("global_pid") == gpid) & (pl.col("device_id") == dev) & (pl.col("stream_id") == stream))
        others = compute.filter((pl.col("global_pid") == gpid) & (pl.col("device_id") == dev) & (pl.col("stream_id") != stream))
        pairs = overlapping(mine.select("_c", "start_ns", "end_ns"), merge(others, by=[]),
                            a_start="start_ns", a_end="end_ns", b_start="seg_start_ns", b_end="seg_end_ns")
        parts.append(mine.join(pairs.group_by("_c").agg(pl.col("overlap_ns").sum().alias("overlapped_ns")), on="_c", how="left"))
    per = pl.concat(parts).with_columns(pl.col("overlapped_ns").fill_null(0))
    out = per.group_by("global_pid", "device_id").agg(
        pl.len().alias("collective_gpu_ops"), pl.col("dur_ns").sum().alias("collective_gpu_ns"), pl.col("overlapped_ns").sum(),
    ).join(ranks.select("global_pid", "rank", "pid"), on="global_pid").with_columns(
        (pl.col("overlapped_ns") / pl.col("collective_gpu_ns")).alias("overlap_fraction"))
    return shaped(out.sort("rank", "device_id"), OVERLAP_COLUMNS)
