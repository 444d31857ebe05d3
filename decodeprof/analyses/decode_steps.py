"""Decode-step view: what one decode step costs on the CPU and on the GPU (projections of the
decode-step model in analyses/steps.py)."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import ranges, unmeasured
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.analyses.steps import STEP_COLUMNS, step_model
from decodeprof.trace import Trace

COLUMNS = dict(STEP_COLUMNS)


_GPU = ("ops", "kernels", "gpu_start_ns", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns", "gpu_idle_pct")
# kernels reach a step through their launching call: without runtime rows none can be placed
_FROM_TABLES = {"kernels": _GPU, "runtime": ("cpu_api_ns", "launches", "syncs", *_GPU)}


def _explain(trace: Trace) -> list[str]:
    return [step_model(trace).summary]


@analysis("decode_steps", columns=COLUMNS, needs=("runtime", "kernels"), explain=_explain)
def decode_steps(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row per decode step: CPU time, launches, kernels, GPU busy and idle time.

    A projection of the decode-step model (analyses/steps.py, which says how the steps were
    found: NVTX ranges, CUDA graph replays or the repeating op pattern). `steps`: decode steps
    per decode range for traces whose metrics do not say (graph targets' "decode" ranges).
    Columns: decode_index (0-based decode run), step (0-based within it), step_index (0-based
    over all steps in time order), source ("step_range", "decode_slice", "time_slice",
    "graph_launch", "op_pattern"; "few_kernels": a decode range holding fewer ops than steps,
    not cut: no GPU figures), cpu_start_ns, cpu_dur_ns (the step's CPU window), cpu_api_ns
    (CUDA API time of the calls starting in it, same thread), launches (launch/copy/memset/
    graph calls; fractional when a decode range is cut into slices), syncs (synchronizing
    calls, likewise), ops (GPU ops: kernels, copies, memsets), kernels, gpu_start_ns (first op
    start), gpu_window_ns (to the next step's first op start, or the run's last op end),
    gpu_busy_ns (union of op intervals), gpu_idle_ns (window - busy, >= 0). Columns whose table
    the capture lacks (no CUDA tracing) are null, not 0.
    """
    return shaped(unmeasured(trace, step_model(trace, steps=steps).steps, _FROM_TABLES), COLUMNS)


def decode_windows(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """Per decode run whose steps were cut: decode_index, first_ns (its first step's first op
    start), last_ns (its last step's window end), range_id (the NVTX "decode"/"prefill_decode"
    range it came from, null for steps found without ranges). For "prefill_decode" ranges this
    is the decode alone: the model leaves the prefill out."""
    model = step_model(trace, steps=steps)
    per = model.cut.filter(pl.col("gpu_start_ns").is_not_null())
    schema = {"range_id": pl.Int64, "decode_index": pl.Int64, "first_ns": pl.Int64, "last_ns": pl.Int64}
    if per.is_empty():
        return pl.DataFrame(schema=schema)
    win = per.group_by("decode_index").agg(pl.col("gpu_start_ns").min().alias("first_ns"),
                                           (pl.col("gpu_start_ns") + pl.col("gpu_window_ns")).max().alias("last_ns"))
    rng = ranges(trace, ("decode", "prefill_decode"))
    if model.source in ("decode_slice", "time_slice") and rng.height:
        name = "decode" if (rng["range_name"] == "decode").any() else "prefill_decode"
        ids = rng.filter(pl.col("range_name") == name).sort("range_start_ns").with_row_index("decode_index").select(
            pl.col("decode_index").cast(pl.Int64), "range_id")
        win = win.join(ids, on="decode_index", how="left")
    else:
        win = win.with_columns(pl.lit(None, pl.Int64).alias("range_id"))
    return win.select(*schema).cast(schema).sort("decode_index")


SUMMARY_COLUMNS = {
    "source": pl.Utf8,
    "found": pl.Utf8,
    "decode_ranges": pl.Int64,
    "steps": pl.Int64,
    "median_step_index": pl.Int64,
    "cpu_dur_ns": pl.Float64,
    "cpu_api_ns": pl.Float64,
    "launches": pl.Float64,
    "syncs": pl.Float64,
    "ops": pl.Float64,
    "kernels": pl.Float64,
    "gpu_window_ns": pl.Float64,
    "gpu_busy_ns": pl.Float64,
    "gpu_idle_ns": pl.Float64,
    "gpu_idle_pct": pl.Float64,
}


def lower_median(values: pl.Series) -> float | None:
    """The lower median (an observed value, never an average of two; None when empty): the
    median step's window is the lower median of the windows, so summary and picked step agree."""
    kept = values.drop_nulls().sort()
    return None if kept.is_empty() else float(kept[(kept.len() - 1) // 2])


@analysis("decode_step_summary", columns=SUMMARY_COLUMNS, needs=("runtime", "kernels"), explain=_explain)
def decode_step_summary(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row: medians over the decode steps of decode_steps, and how they were found.

    Steps of "few_kernels" ranges (which hold no kernels) are left out. When every range is one, the CPU medians
    still stand but kernels and the gpu_* columns are null: nothing was cut, so there is no
    per-step GPU figure (a zero would read as "no kernels").

    Columns: source, found (the step model's sentence: how many steps, from which source),
    decode_ranges (distinct decode runs), steps (rows), median_step_index (step_index of the
    median step, the one diff and the report's step charts show), then the lower median over
    steps of cpu_dur_ns, cpu_api_ns, launches and syncs; ops, kernels, gpu_window_ns,
    gpu_busy_ns and gpu_idle_ns of the median step itself (its window is the lower median of
    the windows; its busy and idle add up to it and are the values the report's waterfall and
    diff show for that step); gpu_idle_pct = 100 * sum(gpu_idle_ns) / sum(gpu_window_ns) over
    the steps (a ratio of sums, not a median).
    """
    model = step_model(trace, steps=steps)
    per = decode_steps(trace, steps=steps)
    if per.is_empty():
        return pl.DataFrame(schema=SUMMARY_COLUMNS)
    cut = per.filter(pl.col("source") != "few_kernels")
    gpu = ("ops", "kernels", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns")
    median = cut.filter(pl.col("step_index") == model.median_index) if model.median_index is not None else cut.clear()
    median_row = median.row(0, named=True) if median.height else {}
    out = (cut if cut.height else per).select(
        pl.col("source").first(),
        pl.lit(model.summary).alias("found"),
        pl.col("decode_index").drop_nulls().n_unique().alias("decode_ranges"),
        pl.len().alias("steps"),
        pl.lit(model.median_index, pl.Int64).alias("median_step_index"),
        *(pl.lit(lower_median((cut if cut.height else per)[c]), pl.Float64).alias(c)
          for c in ("cpu_dur_ns", "cpu_api_ns", "launches", "syncs")),
        *(pl.lit(median_row.get(c), pl.Float64).alias(c) for c in gpu),
        (100.0 * pl.col("gpu_idle_ns").sum() / pl.col("gpu_window_ns").sum()).alias("gpu_idle_pct"),
    )
    if not cut.height:
        out = out.with_columns(pl.lit(None).alias(c) for c in (*gpu, "gpu_idle_pct"))
    return shaped(unmeasured(trace, out, _FROM_TABLES), SUMMARY_COLUMNS)
