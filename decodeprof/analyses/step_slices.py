"""Cutting a CUDA graph's replayed kernels into decode steps.

A graph variant launches all decode steps at once, so no NVTX range marks a step. A replayed
decode repeats the same kernel sequence every step: with N kernels for `steps` steps, each
step has p = N // steps kernels and N - steps * p are left over (prefill before the steps in
graph_full's "prefill_decode" graph, a final token concat after them). The first step starts
at the offset that makes the most slices repeat the same name sequence. A range with fewer
kernels than steps can still be cut in time when one kernel spans it (`spans_steps_expr`).
"""

from __future__ import annotations

from collections import Counter

import polars as pl


def slice_offset(names: list[str], steps: int) -> int | None:
    """Index of the first kernel of step 0 when `names` holds `steps` repeats plus leftovers;
    None when there are fewer kernels than steps. Offsets that tie (rotations of a periodic
    run) go to the latest: leftovers at the end are usually one epilogue kernel, while those
    at the start are a whole prefill."""
    p = len(names) // steps
    if p == 0:
        return None
    best, best_score = 0, -1
    for o in range(len(names) - steps * p + 1):
        score = max(Counter(tuple(names[o + s * p:o + (s + 1) * p]) for s in range(steps)).values())
        if score >= best_score:
            best, best_score = o, score
    return best


def spans_steps_expr() -> pl.Expr:
    """Aggregation over a decode range's ops (start_ns, end_ns): one op covers at least half of
    the range's GPU span, i.e. a persistent kernel running every step, whose steps can only be
    cut in time. A range that merely has too few ops (a truncated capture) does not qualify."""
    span = pl.col("end_ns").max() - pl.col("start_ns").min()
    return (span > 0) & (2 * (pl.col("end_ns") - pl.col("start_ns")).max() >= span)


def spans_steps(ops: pl.DataFrame) -> bool:
    """spans_steps_expr for one range's ops."""
    return not ops.is_empty() and bool(ops.select(spans_steps_expr()).item())


def time_slices(ops: pl.DataFrame, steps: int, *, by: str = "decode_index") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cut each range's GPU span (first op start to last op end, per `by`) into `steps` equal
    windows. Returns (windows: by, step, window_start_ns, window_end_ns; clipped: every op in
    every window it overlaps, + step, start_ns/end_ns clipped to the window)."""
    span = ops.group_by(by).agg(pl.col("start_ns").min().alias("_s0"), pl.col("end_ns").max().alias("_s1"))
    windows = span.join(pl.DataFrame({"step": range(steps)}, schema={"step": pl.Int64}), how="cross").select(
        by, "step",
        (pl.col("_s0") + (pl.col("_s1") - pl.col("_s0")) * pl.col("step") // steps).alias("window_start_ns"),
        (pl.col("_s0") + (pl.col("_s1") - pl.col("_s0")) * (pl.col("step") + 1) // steps).alias("window_end_ns"),
    )
    clipped = ops.join(windows, on=by).with_columns(
        pl.max_horizontal("start_ns", "window_start_ns").alias("start_ns"),
        pl.min_horizontal("end_ns", "window_end_ns").alias("end_ns"),
    ).filter(pl.col("start_ns") < pl.col("end_ns")).drop("window_start_ns", "window_end_ns")
    return windows, clipped
