"""Decode steps and prefill, as sequences of GPU ops a diff can line up.

Eager variants mark each decode step with an NVTX "step" range: a step is the GPU work
launched inside it. CUDA-graph variants have one graph launch per "decode" range (or one
"prefill_decode" range around prefill + all steps), so the range's ops, in start order, are
cut into `steps` (config.steps) equal slices of p = N // steps ops. The N - steps * p ops
left over are prologue (prefill, for "prefill_decode") or epilogue (e.g. the final token
concat); the offset of the first slice is the one that makes the most slices repeat the same
name sequence, since a replayed decode step repeats the same kernels; among offsets that
tie (a periodic run fits any rotation) the latest wins, as leftovers at the end are usually
one epilogue op while those at the start are a whole prefill. A range with fewer ops than
steps where one kernel spans at least half of it (a persistent kernel running every step) is
cut in time: its GPU span in `steps` equal windows, each op listed in every window it overlaps
with its time clipped to the window; other ranges with too few ops (a truncated capture) are
left out.

A step's window runs from its first op start to the next step's first op start (the last
step of a range: to its last op end); busy is the union of its op intervals, idle the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.events import LAUNCH_KINDS, config_steps, in_ranges, ranges, runtime_calls
from decodeprof.analyses.intervals import union_ns
from decodeprof.analyses.kernel_summary import kernel_family
from decodeprof.analyses.step_slices import slice_offset, spans_steps, time_slices
from decodeprof.trace import Trace

OP_COLUMNS = ("op", "start_ns", "end_ns", "dur_ns", "name", "family", "grid", "block", "graph", "launch_api",
              "stream_id", "bytes")


@dataclass(frozen=True)
class StepPick:
    """The decode steps of one trace and the one picked to represent them.

    source: "step_range" | "decode_slice" | "time_slice" | "prefill_decode_slice" ("" when no steps).
    steps: one row per step (step, decode_index, window_ns, busy_ns, idle_ns, ops, launches).
    index: the picked step (row of `steps`), or None. ops: its GPU ops (OP_COLUMNS).
    prefill: the GPU ops of the first prefill (the median one by window when there are many).
    """

    source: str
    steps: pl.DataFrame
    index: int | None
    ops: pl.DataFrame
    prefill: pl.DataFrame

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
    ops = pl.concat([k, m, s], how="vertical_relaxed")
    calls = runtime_calls(trace).select("correlation_id", "global_pid", "api_start_ns", "api_kind", "global_tid")
    ops = ops.join(calls, on=["correlation_id", "global_pid"], how="left")
    return ops.with_columns(
        pl.when(pl.col("op") == "kernel").then(kernel_family(pl.col("name"))).otherwise(pl.col("op")).alias("family"),
        pl.col("graph_node_id").is_not_null().alias("graph"),
        pl.col("api_kind").alias("launch_api"),
    ).sort("start_ns")


def _ops_in(ops: pl.DataFrame, rng: pl.DataFrame) -> pl.DataFrame:
    """Ops whose launching call lies in a range of `rng`: + range_id, range_start_ns (sorted)."""
    return in_ranges(ops, rng).sort("range_start_ns", "start_ns")


def _launches_in(trace: Trace, rng: pl.DataFrame) -> pl.DataFrame:
    calls = runtime_calls(trace).filter(pl.col("api_kind").is_in(list(LAUNCH_KINDS)))
    return in_ranges(calls, rng).group_by("range_id").agg(pl.len().alias("launches"))


def _windows(labelled: pl.DataFrame) -> pl.DataFrame:
    """Per step (labelled with decode_index, step): window_ns, busy_ns, idle_ns, ops."""
    keys = ["decode_index", "step"]
    agg = labelled.group_by(keys).agg(pl.len().alias("ops"), pl.col("start_ns").min().alias("_s"),
                                      pl.col("end_ns").max().alias("_e"))
    busy = union_ns(labelled, by=keys)
    out = agg.join(busy, on=keys).sort(keys).with_columns(pl.col("_s").shift(-1).over("decode_index").alias("_n"))
    out = out.with_columns((pl.coalesce("_n", "_e") - pl.col("_s")).alias("window_ns"))
    return out.with_columns((pl.col("window_ns") - pl.col("busy_ns")).clip(lower_bound=0).alias("idle_ns"))


def _from_step_ranges(trace: Trace, ops: pl.DataFrame, rng: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    step_r = rng.filter(pl.col("range_name") == "step").sort("range_start_ns")
    step_r = step_r.with_row_index("step").with_columns(pl.col("step").cast(pl.Int64))
    dec = rng.filter(pl.col("range_name") == "decode").sort("range_start_ns").with_row_index("decode_index")
    owner = step_r.select("step", "range_start_ns").join_asof(
        dec.select(pl.col("decode_index").cast(pl.Int64), "range_start_ns"), on="range_start_ns", strategy="backward")
    labelled = _ops_in(ops, step_r.select("range_id", "range_start_ns", "range_end_ns", "global_tid", "step"))
    labelled = labelled.join(owner.select("step", "decode_index"), on="step", how="left")
    launches = _launches_in(trace, step_r).join(step_r.select("range_id", "step"), on="range_id")
    steps = _windows(labelled).join(launches.select("step", pl.col("launches").cast(pl.Float64)), on="step", how="left")
    return steps.with_columns(pl.col("launches").fill_null(0.0)), labelled


def _from_slices(trace: Trace, ops: pl.DataFrame, dec: pl.DataFrame, n: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    dec = dec.sort("range_start_ns").with_row_index("decode_index").with_columns(pl.col("decode_index").cast(pl.Int64))
    inside = _ops_in(ops, dec.select("range_id", "range_start_ns", "range_end_ns", "global_tid", "decode_index"))
    parts, prologues = [], []
    for (di,), group in inside.group_by(["decode_index"], maintain_order=True):
        o = slice_offset(group["name"].to_list(), n)
        if o is None:  # fewer ops than steps: cut in time if one kernel runs every step, else skipped
            if spans_steps(group):
                parts.append(_time_sliced(group, n))
            continue
        p = group.height // n
        group = group.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64))
        prologues.append(group.filter(pl.col("_i") < o).drop("_i"))
        body = group.filter((pl.col("_i") >= o) & (pl.col("_i") < o + n * p))
        parts.append(body.with_columns(((pl.col("_i") - o) // p).alias("step")).drop("_i"))
    if not parts:
        return pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    labelled = pl.concat(parts, how="diagonal_relaxed").with_columns((pl.col("decode_index") * n + pl.col("step")).alias("step"))
    launches = _launches_in(trace, dec).join(dec.select("range_id", "decode_index"), on="range_id")
    steps = _windows(labelled).join(
        launches.select("decode_index", (pl.col("launches") / n).alias("launches")), on="decode_index", how="left")
    return steps.with_columns(pl.col("launches").fill_null(0.0)), labelled, (pl.concat(prologues) if prologues
                                                                             else inside.clear())


def _time_sliced(group: pl.DataFrame, n: int) -> pl.DataFrame:
    """One decode range's ops when one kernel spans it: each op in every one of the n equal
    windows it overlaps (step_slices.time_slices), its duration clipped to the window."""
    _, clipped = time_slices(group, n)
    return clipped.with_columns((pl.col("end_ns") - pl.col("start_ns")).alias("dur_ns"), pl.lit(True).alias("time_sliced"))


def _median_index(steps: pl.DataFrame) -> int:
    order = steps.with_row_index("_r").sort("window_ns", "step")
    return int(order["_r"][(order.height - 1) // 2])


def _prefill_ops(ops: pl.DataFrame, rng: pl.DataFrame) -> pl.DataFrame:
    pre = rng.filter(pl.col("range_name") == "prefill").sort("range_start_ns")
    if pre.is_empty():
        return ops.clear()
    inside = _ops_in(ops, pre)
    spans = inside.group_by("range_id").agg((pl.col("end_ns").max() - pl.col("start_ns").min()).alias("w"))
    spans = spans.sort("w", "range_id")
    pick = spans["range_id"][(spans.height - 1) // 2] if spans.height else None
    return inside.filter(pl.col("range_id") == pick) if pick is not None else ops.clear()


def pick_step(trace: Trace, *, step: int | None = None, steps: int | None = None) -> StepPick:
    """The decode steps of `trace` and the representative one: `step` (0-based over all decode
    steps in time order) or the median step by window (lower median). See module docstring."""
    ops = gpu_ops(trace)
    rng = ranges(trace, ("step", "decode", "prefill", "prefill_decode"))
    empty_steps = pl.DataFrame(schema={"decode_index": pl.Int64, "step": pl.Int64, "window_ns": pl.Int64,
                                       "busy_ns": pl.Int64, "idle_ns": pl.Int64, "ops": pl.Int64, "launches": pl.Float64})
    source, prefill = "", _prefill_ops(ops, rng)
    n = config_steps(trace, steps)
    if (rng["range_name"] == "step").any():
        source, (per, labelled) = "step_range", _from_step_ranges(trace, ops, rng)
    elif n and (rng["range_name"] == "decode").any():
        source = "decode_slice"
        per, labelled, _ = _from_slices(trace, ops, rng.filter(pl.col("range_name") == "decode"), n)
        if "time_sliced" in labelled.columns and labelled["time_sliced"].fill_null(False).all():
            source = "time_slice"
    elif n and (rng["range_name"] == "prefill_decode").any():
        source = "prefill_decode_slice"
        per, labelled, pro = _from_slices(trace, ops, rng.filter(pl.col("range_name") == "prefill_decode"), n)
        if prefill.is_empty() and not pro.is_empty():
            prefill = pro.filter(pl.col("decode_index") == pro["decode_index"].min())
    else:
        per, labelled = pl.DataFrame(), pl.DataFrame()
    if per.is_empty():
        return StepPick("", empty_steps, None, ops.clear().select(OP_COLUMNS), prefill.select(OP_COLUMNS))
    per = per.select(*empty_steps.columns).cast(empty_steps.schema).sort("step")
    if step is not None and not 0 <= step < per.height:
        from decodeprof.errors import DecodeprofError

        raise DecodeprofError(f"{trace.source}: no decode step {step} (the trace has {per.height}, 0-based)",
                              f"pass --step between 0 and {per.height - 1}, or leave it out for the median step")
    index = step if step is not None else _median_index(per)
    chosen = per["step"][index]
    picked = labelled.filter(pl.col("step") == chosen).sort("start_ns")
    return StepPick(source, per, index, picked.select(OP_COLUMNS), prefill.sort("start_ns").select(OP_COLUMNS))
