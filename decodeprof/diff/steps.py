"""Decode steps and prefill, as sequences of GPU ops a diff can line up.

The steps are the decode-step model's (analyses/steps.py: NVTX ranges, CUDA graph replays
or the repeating op pattern); this module only gathers the columns a diff shows for the ops
of the picked step and of the prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.events import runtime_calls
from decodeprof.analyses.kernel_summary import kernel_family
from decodeprof.analyses.steps import step_model
from decodeprof.trace import Trace

OP_COLUMNS = ("op", "start_ns", "end_ns", "dur_ns", "name", "family", "grid", "block", "graph", "launch_api",
              "stream_id", "bytes")


@dataclass(frozen=True)
class StepPick:
    """The decode steps of one trace and the one picked to represent them.

    source: the step model's source ("step_range", "decode_slice", "time_slice", "graph_launch",
    "op_pattern"; "" when no steps).
    steps: one row per cut step (step = step_index, decode_index, window_ns, busy_ns, idle_ns, ops, launches).
    index: the picked step (row of `steps`), or None. ops: its GPU ops (OP_COLUMNS).
    prefill: the GPU ops of the first prefill (the median one by window when there are many).
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
    the model's median step."""
    model = step_model(trace, steps=steps)
    cut = model.cut.sort("step_index")
    per = cut.select("decode_index", pl.col("step_index").alias("step"), pl.col("gpu_window_ns").alias("window_ns"),
                     pl.col("gpu_busy_ns").alias("busy_ns"), pl.col("gpu_idle_ns").alias("idle_ns"), "ops", "launches")
    prefill = _rich(trace, model.prefill)
    if per.is_empty():
        return StepPick(model.source, per, None, _rich(trace, model.ops.clear()), prefill, model.summary)
    if step is not None and step not in set(per["step"].to_list()):
        from decodeprof.errors import DecodeprofError

        raise DecodeprofError(f"{trace.source}: no decode step {step} (the trace has {per.height}, 0-based)",
                              f"pass --step between 0 and {per.height - 1}, or leave it out for the median step")
    chosen = step if step is not None else model.median_index
    index = per["step"].to_list().index(chosen)
    return StepPick(model.source, per, index, _rich(trace, model.step_ops(chosen)), prefill, model.summary)
