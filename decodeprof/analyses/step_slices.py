"""Cutting a CUDA graph's replayed kernels into decode steps.

A graph variant launches all decode steps at once, so no NVTX range marks a step. A replayed
decode repeats the same kernel sequence every step: with N kernels for `steps` steps, each
step has p = N // steps kernels and N - steps * p are left over (prefill before the steps in
graph_full's "prefill_decode" graph, a final token concat after them). The first step starts
at the offset that makes the most slices repeat the same name sequence.
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


def label_steps(kernels: pl.DataFrame, steps: int, *, keep_prologue: bool) -> pl.DataFrame:
    """`kernels` (with decode_index, name, start_ns) + a `step` column (0..steps-1).

    Kernels before the first step go to step 0 when keep_prologue, else are dropped (prefill
    inside graph_full's graph); kernels after the last step go to the last step."""
    parts = []
    for (_,), group in kernels.sort("decode_index", "start_ns").group_by(["decode_index"], maintain_order=True):
        offset = slice_offset(group["name"].to_list(), steps)
        if offset is None:
            continue
        per = group.height // steps
        index = pl.int_range(pl.len(), dtype=pl.Int64)
        group = group.with_columns(((index - offset) // per).clip(0, steps - 1).alias("step"), (index < offset).alias("_pro"))
        parts.append(group.filter(~pl.col("_pro")) if not keep_prologue else group)
    if not parts:
        return kernels.clear().with_columns(pl.lit(None, pl.Int64).alias("step"))
    return pl.concat(parts).drop("_pro")
