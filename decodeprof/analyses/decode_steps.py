"""Decode-step view: what one decode step costs on the CPU and on the GPU."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import (LAUNCH_KINDS, config_steps, gpu_work, in_ranges, in_ranges_slim, per_trace, ranges,
                                        runtime_calls, unmeasured)
from decodeprof.analyses.intervals import points_in_ranges, sums_in_ranges, union_ns
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.analyses.step_slices import label_steps, spans_steps_expr, time_slices
from decodeprof.trace import Trace

COLUMNS = {
    "decode_index": pl.Int64,
    "step": pl.Int64,
    "source": pl.Utf8,
    "cpu_start_ns": pl.Int64,
    "cpu_dur_ns": pl.Int64,
    "cpu_api_ns": pl.Int64,
    "launches": pl.Float64,
    "kernels": pl.Int64,
    "gpu_start_ns": pl.Int64,
    "gpu_window_ns": pl.Int64,
    "gpu_busy_ns": pl.Int64,
    "gpu_idle_ns": pl.Int64,
}


def _decode_index(rng: pl.DataFrame, name: str = "decode") -> pl.DataFrame:
    dec = rng.filter(pl.col("range_name") == name).sort("range_start_ns")
    return dec.with_row_index("decode_index").with_columns(pl.col("decode_index").cast(pl.Int64))


def _gpu_columns(steps: pl.DataFrame, kern: pl.DataFrame) -> pl.DataFrame:
    """Add gpu_* columns given kernels labelled (decode_index, step)."""
    keys = ["decode_index", "step"]
    agg = kern.group_by(keys).agg(
        pl.len().alias("kernels"),
        pl.col("start_ns").min().alias("gpu_start_ns"),
        pl.col("end_ns").max().alias("_last_end"),
    )
    busy = union_ns(kern, by=keys).rename({"busy_ns": "gpu_busy_ns"})
    out = steps.join(agg, on=keys, how="left", nulls_equal=True).join(busy, on=keys, how="left", nulls_equal=True)
    out = out.sort(keys, nulls_last=True).with_columns(
        pl.col("gpu_start_ns").shift(-1).over("decode_index").alias("_next_start")
    )
    return out.with_columns(
        pl.col("kernels").fill_null(0),
        pl.col("gpu_busy_ns").fill_null(0),
        (pl.coalesce("_next_start", "_last_end") - pl.col("gpu_start_ns")).alias("gpu_window_ns"),
    ).with_columns(
        (pl.col("gpu_window_ns") - pl.col("gpu_busy_ns")).clip(lower_bound=0).alias("gpu_idle_ns")
    )


_RANGE_KEYS = ("range_id", "range_start_ns", "range_end_ns", "global_tid")
_GPU = ("kernels", "gpu_start_ns", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns", "gpu_idle_pct")
# kernels reach a step through their launching call: without runtime rows none can be placed
_FROM_TABLES = {"kernels": _GPU, "runtime": ("cpu_api_ns", "launches", *_GPU)}


def _calls(trace: Trace) -> pl.DataFrame:  # only the columns used below: less to gather per (call, range)
    return runtime_calls(trace).select("api_start_ns", "global_tid", "api_dur_ns", "api_kind")


def _kernels(trace: Trace) -> pl.DataFrame:
    return gpu_work(trace, ("kernel",), ("start_ns", "end_ns", "name", "api_start_ns", "global_tid"))


def _call_sums(trace: Trace, step_r: pl.DataFrame) -> pl.DataFrame:
    """(range_id, cpu_api_ns, launches) of the calls inside each step range (sums only:
    `sums_in_ranges`, no (call x range) pairs; those pairs when its key axis overflows)."""
    launch = pl.col("api_kind").is_in(list(LAUNCH_KINDS))
    sums = sums_in_ranges(_calls(trace), step_r, at="api_start_ns", start="range_start_ns", end="range_end_ns",
                          by="global_tid", values={"cpu_api_ns": pl.col("api_dur_ns"), "launches": launch})
    if sums is not None:
        return sums.select("range_id", "cpu_api_ns", pl.col("launches").cast(pl.Float64))
    return in_ranges_slim(_calls(trace), step_r, keep=("range_id",), keep_points=("api_dur_ns", "api_kind")).group_by(
        "range_id").agg(pl.col("api_dur_ns").sum().alias("cpu_api_ns"), launch.sum().cast(pl.Float64).alias("launches"))


def _from_step_ranges(trace: Trace, rng: pl.DataFrame) -> pl.DataFrame:
    step_r = rng.filter(pl.col("range_name") == "step")
    dec = _decode_index(rng).select("decode_index", "range_start_ns", "range_end_ns", "global_tid")
    steps = points_in_ranges(
        step_r.select("range_id", pl.col("range_start_ns").alias("_s"), pl.col("range_dur_ns"), "global_tid"),
        dec, at="_s", start="range_start_ns", end="range_end_ns", by="global_tid",
    ).select("range_id", "decode_index")
    steps = step_r.join(steps, on="range_id", how="left").sort("range_start_ns").with_columns(
        pl.col("range_start_ns").rank("ordinal").over("decode_index").cast(pl.Int64).sub(1).alias("step")
    )
    calls = _call_sums(trace, step_r.select(_RANGE_KEYS))
    steps = steps.join(calls, on="range_id", how="left").select(
        "range_id", "decode_index", "step", pl.lit("step_range").alias("source"),
        pl.col("range_start_ns").alias("cpu_start_ns"), pl.col("range_dur_ns").alias("cpu_dur_ns"),
        pl.col("cpu_api_ns").fill_null(0), pl.col("launches").fill_null(0.0),
    )
    kern = in_ranges_slim(_kernels(trace), step_r.select(_RANGE_KEYS), keep=("range_id",),
                          keep_points=("start_ns", "end_ns")).join(
        steps.select("range_id", "decode_index", "step"), on="range_id"
    )
    return _gpu_columns(steps, kern)


def _from_decode_slices(trace: Trace, rng: pl.DataFrame, n_steps: int, name: str) -> pl.DataFrame:
    dec = _decode_index(rng, name)
    steps = dec.join(pl.DataFrame({"step": range(n_steps)}, schema={"step": pl.Int64}), how="cross")
    calls = in_ranges(_calls(trace), dec).group_by("decode_index").agg(
        pl.col("api_dur_ns").sum().alias("_api"),
        pl.col("api_kind").is_in(list(LAUNCH_KINDS)).sum().alias("_launches"),
    )
    steps = steps.join(calls, on="decode_index", how="left").select(
        "decode_index", "step", pl.lit("decode_slice").alias("source"),
        (pl.col("range_start_ns") + pl.col("range_dur_ns") * pl.col("step") // n_steps).alias("cpu_start_ns"),
        (pl.col("range_dur_ns") // n_steps).alias("cpu_dur_ns"),
        (pl.col("_api").fill_null(0) // n_steps).alias("cpu_api_ns"),
        (pl.col("_launches").fill_null(0) / n_steps).alias("launches"),
    )
    in_dec = in_ranges(_kernels(trace), dec)
    kern = label_steps(in_dec, n_steps, keep_prologue=name == "decode")
    out = _gpu_columns(steps, kern)
    # Fewer kernels than steps: no kernel sequence to cut. A range one kernel spans (a persistent
    # kernel running every step) is cut in time instead; the others (a truncated capture) stay
    # empty and say so (source "few_kernels").
    few = in_dec.join(kern.select("decode_index").unique(), on="decode_index", how="anti")
    few = few.group_by("decode_index").agg(spans_steps_expr().alias("_spans")).filter("_spans").select("decode_index")
    uncut = dec.select("decode_index").join(kern.select("decode_index").unique(), on="decode_index", how="anti")
    short = uncut.join(few, on="decode_index", how="anti")["decode_index"]
    if short.len():
        out = out.with_columns(pl.when(pl.col("decode_index").is_in(short.implode()))
                               .then(pl.lit("few_kernels")).otherwise(pl.col("source")).alias("source"))
    if few.is_empty():
        return out
    timed = _time_slices(in_dec.join(few, on="decode_index"), n_steps)
    cols = [c for c in out.columns if not c.startswith("_")]
    out = out.join(few, on="decode_index", how="anti").select(cols)
    return pl.concat([out, steps.join(timed, on=["decode_index", "step"]).with_columns(
        pl.lit("time_slice").alias("source")).select(cols)], how="vertical_relaxed")


def _time_slices(kern: pl.DataFrame, n_steps: int) -> pl.DataFrame:
    """Per (decode_index, step): the decode's GPU span cut into `n_steps` equal windows
    (step_slices.time_slices); kernels = kernels running in the window (one spanning several
    windows counts in each), busy = union of the kernel intervals clipped to it."""
    windows, clipped = time_slices(kern.select("decode_index", "start_ns", "end_ns"), n_steps)
    keys = ["decode_index", "step"]
    busy = union_ns(clipped, by=keys).rename({"busy_ns": "gpu_busy_ns"})
    count = clipped.group_by(keys).agg(pl.len().cast(pl.Int64).alias("kernels"))
    return windows.join(count, on=keys, how="left").join(busy, on=keys, how="left").select(
        *keys, pl.col("kernels").fill_null(0), pl.col("window_start_ns").alias("gpu_start_ns"),
        (pl.col("window_end_ns") - pl.col("window_start_ns")).alias("gpu_window_ns"), pl.col("gpu_busy_ns").fill_null(0),
    ).with_columns((pl.col("gpu_window_ns") - pl.col("gpu_busy_ns")).clip(lower_bound=0).alias("gpu_idle_ns"))


@analysis("decode_steps", columns=COLUMNS, needs=("nvtx", "runtime", "kernels"))
@per_trace  # decode_step_summary reuses it
def decode_steps(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row per decode step: CPU time, launches, kernels, GPU busy and idle time.

    Reads: nvtx ("step" and "decode" ranges), runtime, kernels; target_metrics config.steps.
    With "step" ranges (eager variants) each step range is a step (source "step_range").
    Without them (CUDA-graph variants) each "decode" range (graph_full: "prefill_decode",
    prefill kernels dropped) is cut into `steps` slices (config.steps, else the `steps`
    option; source "decode_slice"): CPU time and API counts are divided evenly, and the
    replayed kernels are cut into steps where their name sequence repeats (step_slices).
    A decode range with fewer kernels than steps, one of which spans at least half of it (a
    persistent kernel running every step), is cut in time instead (source "time_slice"): its GPU span in equal windows, kernels =
    kernels running in the window (a kernel spanning several windows counts in each), busy
    = the kernel time inside the window. Any other range with fewer kernels than steps (a
    truncated capture) is not cut: its steps show 0 kernels (source "few_kernels").
    Columns: decode_index (0-based "decode" range, null if the step has none), step
    (0-based within it), source, cpu_start_ns, cpu_dur_ns (range time), cpu_api_ns (CUDA
    API time inside it, same thread), launches (launch/copy/memset/graph API calls;
    fractional for slices), kernels, gpu_start_ns (first kernel start),
    gpu_window_ns (first kernel start -> next step's first kernel start, or this step's
    last kernel end for the last step), gpu_busy_ns (union of kernel intervals),
    gpu_idle_ns (window - busy, >= 0). Columns whose table the capture lacks (no CUDA
    tracing: no kernels or runtime rows) are null, not 0.
    """
    rng = ranges(trace, ("step", "decode", "prefill_decode"))
    if rng.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    if (rng["range_name"] == "step").any():
        out = _from_step_ranges(trace, rng)
    else:
        n = config_steps(trace, steps)
        if n is None:
            return pl.DataFrame(schema=COLUMNS)
        name = "decode" if (rng["range_name"] == "decode").any() else "prefill_decode"
        out = _from_decode_slices(trace, rng, n, name)
    return shaped(unmeasured(trace, out.sort("cpu_start_ns", "step"), _FROM_TABLES), COLUMNS)


def decode_windows(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """Per decode range whose steps were cut (not "few_kernels"): range_id, decode_index,
    first_ns (its first step's first kernel start), last_ns (its last step's end). For
    "prefill_decode" ranges this is the decode alone: decode_steps leaves the prefill out."""
    per = decode_steps(trace, steps=steps).filter(
        (pl.col("source") != "few_kernels") & pl.col("decode_index").is_not_null() & pl.col("gpu_start_ns").is_not_null())
    rng = ranges(trace, ("decode", "prefill_decode"))
    if per.is_empty() or rng.is_empty():
        return pl.DataFrame(schema={"range_id": pl.Int64, "decode_index": pl.Int64, "first_ns": pl.Int64, "last_ns": pl.Int64})
    win = per.group_by("decode_index").agg(pl.col("gpu_start_ns").min().alias("first_ns"),
                                           (pl.col("gpu_start_ns") + pl.col("gpu_window_ns")).max().alias("last_ns"))
    name = "decode" if (rng["range_name"] == "decode").any() else "prefill_decode"
    return _decode_index(rng, name).select("range_id", "decode_index").join(win, on="decode_index")


SUMMARY_COLUMNS = {
    "source": pl.Utf8,
    "decode_ranges": pl.Int64,
    "steps": pl.Int64,
    "cpu_dur_ns": pl.Float64,
    "cpu_api_ns": pl.Float64,
    "launches": pl.Float64,
    "kernels": pl.Float64,
    "gpu_window_ns": pl.Float64,
    "gpu_busy_ns": pl.Float64,
    "gpu_idle_ns": pl.Float64,
    "gpu_idle_pct": pl.Float64,
}


@analysis("decode_step_summary", columns=SUMMARY_COLUMNS, needs=("nvtx", "runtime", "kernels"))
def decode_step_summary(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row: the median decode step, over the steps of decode_steps.

    Steps of "few_kernels" ranges (which hold no kernels) are left out. When every range is one, the CPU medians
    still stand but kernels and the gpu_* columns are null: nothing was cut, so there is no
    per-step GPU figure (a zero would read as "no kernels").

    Columns: source, decode_ranges (distinct decode ranges), steps (rows), then the median
    over steps of cpu_dur_ns, cpu_api_ns, launches, kernels, gpu_window_ns, gpu_busy_ns,
    gpu_idle_ns; gpu_idle_pct = 100 * sum(gpu_idle_ns) / sum(gpu_window_ns).
    """
    per = decode_steps(trace, steps=steps)
    if per.is_empty():
        return pl.DataFrame(schema=SUMMARY_COLUMNS)
    cut = per.filter(pl.col("source") != "few_kernels")
    gpu = ("kernels", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns")
    out = (cut if cut.height else per).select(
        pl.col("source").first(),
        pl.col("decode_index").drop_nulls().n_unique().alias("decode_ranges"),
        pl.len().alias("steps"),
        *(pl.col(c).median() for c in ("cpu_dur_ns", "cpu_api_ns", "launches", *gpu)),
        (100.0 * pl.col("gpu_idle_ns").sum() / pl.col("gpu_window_ns").sum()).alias("gpu_idle_pct"),
    )
    if not cut.height:
        out = out.with_columns(pl.lit(None).alias(c) for c in (*gpu, "gpu_idle_pct"))
    return shaped(unmeasured(trace, out, _FROM_TABLES), SUMMARY_COLUMNS)
