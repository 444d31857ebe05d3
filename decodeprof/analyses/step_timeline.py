"""One decode step as a sequence of GPU ops: the frames the step timelines and the diff's
alignment show (projections of the decode-step model, analyses/steps.py).

    pick = pick_step(trace)             # the steps, the median one, its ops and the prefill's
    ops = median_step_ops(trace)        # the median step's ops alone (no prefill)
    work = median_step_work(trace)      # GPU work clipped to the median step's GPU window

Times are integer ns; the charts convert them for display.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.events import runtime_calls
from decodeprof.analyses.kernel_summary import kernel_family
from decodeprof.analyses.steps import step_model
from decodeprof.errors import DecodeprofError
from decodeprof.trace import Trace

OP_COLUMNS = ("op", "start_ns", "end_ns", "dur_ns", "name", "family", "grid", "block", "graph", "launch_api",
              "stream_id", "bytes")
WORK_COLUMNS = {"start_ns": pl.Int64, "end_ns": pl.Int64, "stream_id": pl.Int64, "name": pl.Utf8, "family": pl.Utf8,
                "offset_ns": pl.Int64, "shown_ns": pl.Int64, "dur_ns": pl.Int64, "clipped": pl.Boolean}


@dataclass(frozen=True)
class StepPick:
    """The decode steps of one trace and the one picked to represent them.

    source: the step model's source ("step_range", "decode_slice", "time_slice", "graph_launch",
    "op_pattern"; "" when no steps).
    steps: one row per cut step (step = step_index, decode_index, window_ns, busy_ns, idle_ns, ops, launches).
    index: the picked step (row of `steps`), or None (no steps, or none with GPU work).
    ops: its GPU ops (OP_COLUMNS). prefill: the GPU ops of the first prefill (the median one by
    window when there are many).
    """

    source: str
    steps: pl.DataFrame
    index: int | None
    ops: pl.DataFrame
    prefill: pl.DataFrame
    found: str = ""  # the step model's sentence: how many steps, from which source

    def row(self) -> dict:
        return {} if self.index is None else self.steps.row(self.index, named=True)


def _label(copy_kind: pl.Expr, src: pl.Expr, dst: pl.Expr) -> pl.Expr:
    short = lambda e: e.str.replace(r"^.*_", "")  # noqa: E731 - "CUDA_MEMOPR_MEMORY_KIND_PAGEABLE" -> "PAGEABLE"
    return pl.format("memcpy {} ({} -> {})", short(copy_kind), short(src).str.to_lowercase(), short(dst).str.to_lowercase())


def gpu_ops(trace: Trace) -> pl.DataFrame:
    """Kernels, memcpys and memsets with their launching call: OP_COLUMNS + api_start_ns, global_tid.

    name: the kernel name, "memcpy HTOD (pageable -> device)" for copies, "memset";
    grid/block: "x,y,z" strings (null for copies); graph: replayed from a CUDA graph;
    launch_api: the launching call's api_kind (kernel_launch, graph_launch, memcpy, ...).
    """
    dims = lambda p: pl.format("{},{},{}", pl.col(f"{p}_x"), pl.col(f"{p}_y"), pl.col(f"{p}_z"))  # noqa: E731
    common = ["start_ns", "end_ns", "dur_ns", "stream_id", "correlation_id", "global_pid", "graph_node_id"]
    k = trace.kernels.select(pl.lit("kernel").alias("op"), *common, "name", dims("grid").alias("grid"),
                             dims("block").alias("block"), pl.lit(None, pl.Int64).alias("bytes"))
    m = trace.memcpys.select(pl.lit("memcpy").alias("op"), *common,
                             _label(pl.col("copy_kind"), pl.col("src_kind"), pl.col("dst_kind")).alias("name"),
                             pl.lit(None, pl.Utf8).alias("grid"), pl.lit(None, pl.Utf8).alias("block"), "bytes")
    s = trace.memsets.select(pl.lit("memset").alias("op"), *common, pl.lit("memset").alias("name"),
                             pl.lit(None, pl.Utf8).alias("grid"), pl.lit(None, pl.Utf8).alias("block"), "bytes")
    ops = pl.concat([k, m, s], how="vertical_relaxed").with_row_index("_op")  # gpu_work's order
    calls = runtime_calls(trace).select("correlation_id", "global_pid", "api_start_ns", "api_kind", "global_tid")
    ops = ops.join(calls, on=["correlation_id", "global_pid"], how="left", maintain_order="left")
    return ops.with_columns(
        pl.when(pl.col("op") == "kernel").then(kernel_family(pl.col("name"))).otherwise(pl.col("op")).alias("family"),
        pl.col("graph_node_id").is_not_null().alias("graph"),
        pl.col("api_kind").alias("launch_api"),
    ).sort("start_ns")


def _rich(trace: Trace, ops: pl.DataFrame) -> pl.DataFrame:
    """The model's ops (by `_op`, times as the model has them: clipped for time slices) with
    the columns a diff shows (OP_COLUMNS), in start order."""
    if ops.is_empty():
        return gpu_ops(trace).clear().select(OP_COLUMNS)
    rich = gpu_ops(trace).drop("start_ns", "end_ns", "dur_ns")
    keep = ops.select("_op", "start_ns", "end_ns", (pl.col("end_ns") - pl.col("start_ns")).alias("dur_ns"))
    return keep.join(rich, on="_op", how="left").sort("start_ns", "_op").select(OP_COLUMNS)


def pick_step(trace: Trace, *, step: int | None = None, steps: int | None = None) -> StepPick:
    """The decode steps of `trace` (the decode-step model, analyses/steps.py) and the
    representative one: `step` (step_index: 0-based over all decode steps in time order) or
    the model's median step. Steps without GPU work (a trace without CUDA kernels) have no
    median: `index` is then None."""
    model = step_model(trace, steps=steps)
    cut = model.cut.sort("step_index")
    per = cut.select("decode_index", pl.col("step_index").alias("step"), pl.col("gpu_window_ns").alias("window_ns"),
                     pl.col("gpu_busy_ns").alias("busy_ns"), pl.col("gpu_idle_ns").alias("idle_ns"), "ops", "launches")
    prefill = _rich(trace, model.prefill)
    chosen = step if step is not None else model.median_index
    if per.is_empty() or chosen is None:
        return StepPick(model.source, per, None, _rich(trace, model.ops.clear()), prefill, model.summary)
    if chosen not in set(per["step"].to_list()):
        raise DecodeprofError(f"{trace.source}: no decode step {step} (the trace has {per.height}, 0-based)",
                              f"pass --step between 0 and {per.height - 1}, or leave it out for the median step")
    index = per["step"].to_list().index(chosen)
    return StepPick(model.source, per, index, _rich(trace, model.step_ops(chosen)), prefill, model.summary)


def median_step_ops(trace: Trace) -> pl.DataFrame:
    """The GPU ops of the model's median decode step (OP_COLUMNS, start order); empty without one."""
    model = step_model(trace)
    index = model.median_index
    return _rich(trace, model.ops.clear() if index is None else model.step_ops(index))


def median_step_work(trace: Trace) -> pl.DataFrame:
    """Kernels and copies that run during the median decode step's GPU window, clipped to it.

    A persistent kernel runs through every step and a step's first op can start before its
    window: each row says how much of it lies inside. Columns (WORK_COLUMNS): start_ns,
    end_ns (the op's own), stream_id, name (kernel name; copy kind for copies), family
    (kernel family; "memcpy"), offset_ns (from the window's start to the visible part's
    start), shown_ns (the part inside the window), dur_ns (the whole op), clipped (the op
    runs past the window). Empty without a median step.
    """
    model = step_model(trace)
    index = model.median_index
    if index is None:
        return pl.DataFrame(schema=WORK_COLUMNS)
    row = model.steps.filter(pl.col("step_index") == index).row(0, named=True)
    t0, t1 = row["gpu_start_ns"], row["gpu_start_ns"] + row["gpu_window_ns"]
    k = trace.kernels.select("start_ns", "end_ns", "stream_id", "name", kernel_family(pl.col("name")).alias("family"))
    c = trace.memcpys.select("start_ns", "end_ns", "stream_id", pl.col("copy_kind").alias("name"), pl.lit("memcpy").alias("family"))
    work = pl.concat([k, c]).filter((pl.col("end_ns") > t0) & (pl.col("start_ns") < t1))
    a, b = pl.max_horizontal("start_ns", pl.lit(t0)), pl.min_horizontal("end_ns", pl.lit(t1))
    out = work.with_columns((a - t0).alias("offset_ns"), (b - a).alias("shown_ns"),
                            (pl.col("end_ns") - pl.col("start_ns")).alias("dur_ns"),
                            ((pl.col("start_ns") < t0) | (pl.col("end_ns") > t1)).alias("clipped"))
    return out.select(pl.col(c).cast(t) for c, t in WORK_COLUMNS.items())
