"""The decode breakdown: a trace's median decode step split exactly into parts, and the
part-by-part difference of two traces' (the savings waterfall).

Definition: the step model's median decode step (analyses/steps.py: the lower median by GPU
window, the step and values analyze, the report's findings and diff show), its GPU window
`span` (first op start -> last op end of the step), and every kernel and copy that runs inside
the window, clipped to it (a persistent kernel that runs through every step counts its part in
this one).
* `K_f` = clipped kernel durations of family f summed (kernel_family); `busy_k` = union of
  the kernel intervals; `busy_all` = union of kernels and copies.
* Then, exactly, in integer ns:  span = sum_f K_f - overlap + copy_only + idle, with
  overlap = sum_f K_f - busy_k (kernels running concurrently, counted once),
  copy_only = busy_all - busy_k (a copy runs, no kernel), idle = span - busy_all.
  busy_all and idle equal decode_step_summary's gpu_busy_ns and gpu_idle_ns.

The waterfall of a trace vs a reference is the part-by-part difference; the differences sum
to the difference of the spans (tests check the identity on every shipped pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.intervals import union_ns
from decodeprof.analyses.steps import step_model
from decodeprof.trace import Trace

IDLE = "GPU idle (nothing running)"
COPY = "copies/memsets with no kernel running"
OVERLAP = "kernel concurrency (counted once)"
BREAKDOWN_COLUMNS = {"part": pl.Utf8, "ns_per_step": pl.Float64}
WATERFALL_COLUMNS = {"part": pl.Utf8, "base_ns": pl.Float64, "variant_ns": pl.Float64, "delta_ns": pl.Float64}


@dataclass(frozen=True)
class Breakdown:
    """parts: BREAKDOWN_COLUMNS (part, ns_per_step: signed, the concurrency part is negative);
    span_ns_per_step: the median step's GPU window the parts sum to; None (and no parts)
    when the step model found no decode step."""

    parts: pl.DataFrame
    span_ns_per_step: float | None


def kernel_part(family: str) -> str:
    return f"kernels: {family}"


def median_step_breakdown(trace: Trace) -> Breakdown:
    """The median decode step's GPU window split exactly into kernel families, concurrency,
    copies with no kernel running and idle (module docstring); None span without a step."""
    from decodeprof.analyses.step_timeline import median_step_work

    work = median_step_work(trace)
    model = step_model(trace)
    if model.median_index is None:
        return Breakdown(pl.DataFrame(schema=BREAKDOWN_COLUMNS), None)
    span = int(model.steps.filter(pl.col("step_index") == model.median_index)["gpu_window_ns"][0])
    shown = work.select("family", pl.col("offset_ns").alias("start_ns"),
                        (pl.col("offset_ns") + pl.col("shown_ns")).alias("end_ns"), pl.lit(0).alias("range_id"))
    kern = shown.filter(pl.col("family") != "memcpy")
    fam = (kern.group_by("family").agg((pl.col("end_ns") - pl.col("start_ns")).sum().alias("ns")).sort("family")
           if kern.height else pl.DataFrame(schema={"family": pl.Utf8, "ns": pl.Int64}))
    busy_k = int(union_ns(kern, by=["range_id"])["busy_ns"].sum()) if kern.height else 0
    busy_all = int(union_ns(shown, by=["range_id"])["busy_ns"].sum()) if shown.height else 0
    k_sum = int(fam["ns"].sum()) if fam.height else 0
    rows = [(kernel_part(f), int(ns)) for f, ns in fam.iter_rows()]
    rows += [(OVERLAP, -(k_sum - busy_k)), (COPY, busy_all - busy_k), (IDLE, span - busy_all)]
    assert sum(ns for _, ns in rows) == span  # the identity, in integer ns
    parts = pl.DataFrame({"part": [p for p, _ in rows], "ns_per_step": [float(ns) for _, ns in rows]},
                         schema=BREAKDOWN_COLUMNS)
    return Breakdown(parts, float(span))


def waterfall(base: pl.DataFrame, variant: pl.DataFrame) -> pl.DataFrame:
    """Part-by-part difference (variant - base) of two Breakdown.parts frames.

    Columns: part, base_ns, variant_ns, delta_ns (per decode step; a part absent on one side
    counts 0 there). Order: GPU idle first, kernel families by |delta| descending, then
    copies and concurrency. sum(delta_ns) == variant span - base span.
    """
    if base.is_empty() or variant.is_empty():
        return pl.DataFrame(schema=WATERFALL_COLUMNS)
    j = base.rename({"ns_per_step": "base_ns"}).join(
        variant.rename({"ns_per_step": "variant_ns"}), on="part", how="full", coalesce=True
    ).with_columns(pl.col("base_ns").fill_null(0.0), pl.col("variant_ns").fill_null(0.0))
    j = j.with_columns((pl.col("variant_ns") - pl.col("base_ns")).alias("delta_ns"))
    rank = (pl.when(pl.col("part") == IDLE).then(0).when(pl.col("part").str.starts_with("kernels: ")).then(1)
            .when(pl.col("part") == COPY).then(2).otherwise(3))
    j = j.with_columns(rank.alias("_r"), pl.col("delta_ns").abs().alias("_a")).sort(["_r", "_a", "part"], descending=[False, True, False])
    return j.select(list(WATERFALL_COLUMNS)).cast(WATERFALL_COLUMNS)
