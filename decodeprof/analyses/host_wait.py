"""Host wait: host time blocked in synchronizing calls, and GPU idle split by its cause."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.events import PAGEABLE, gpu_work, in_ranges, ranges, runtime_calls
from decodeprof.analyses.intervals import sums_in_ranges
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

ALL = "(all)"
COLUMNS = {
    "range_name": pl.Utf8,
    "blocking_calls": pl.Int64,
    "host_wait_ns": pl.Int64,
    "sync_wait_ns": pl.Int64,
    "memcpy_wait_ns": pl.Int64,
    "gpu_gaps": pl.Int64,
    "gpu_idle_ns": pl.Int64,
    "gpu_idle_host_bound_ns": pl.Int64,
    "gpu_idle_inter_kernel_ns": pl.Int64,
    "gpu_idle_unknown_ns": pl.Int64,
}


def blocking_calls(trace: Trace) -> pl.DataFrame:
    """Runtime calls that block the host: runtime_calls' columns + wait_kind.

    wait_kind: "sync" (stream/device/event/context synchronize), "sync_memcpy" (cudaMemcpy
    without Async), "pageable_async_memcpy" (an Async copy whose host side is pageable
    memory: the driver stages it synchronously).
    """
    calls = runtime_calls(trace).filter(pl.col("api_kind").is_in(["sync", "memcpy"]))  # the only kinds that block
    pageable = trace.memcpys.filter(
        pl.col("src_kind").str.contains(PAGEABLE) | pl.col("dst_kind").str.contains(PAGEABLE)
    ).select("correlation_id", "global_pid").unique().with_columns(pl.lit(True).alias("_pageable"))
    calls = calls.join(pageable, on=["correlation_id", "global_pid"], how="left")
    is_async = pl.col("api_name").str.contains("Async")
    kind = (
        pl.when(pl.col("api_kind") == "sync").then(pl.lit("sync"))
        .when((pl.col("api_kind") == "memcpy") & ~is_async).then(pl.lit("sync_memcpy"))
        .when((pl.col("api_kind") == "memcpy") & is_async & pl.col("_pageable").fill_null(False))
        .then(pl.lit("pageable_async_memcpy"))
    )
    return calls.with_columns(kind.alias("wait_kind")).filter(pl.col("wait_kind").is_not_null()).drop("_pageable")


def gpu_gaps(trace: Trace) -> pl.DataFrame:
    """Every interval where a device runs no kernel, between two kernels, classified.

    Kernels sorted by start per device; a gap precedes a kernel that starts after every
    earlier kernel ended. cause: "host_bound" (that kernel's launch call began after the
    GPU went idle: the GPU waited for the host), "inter_kernel" (it was already queued),
    "unknown" (launch call not in the trace). Columns: device_id, gap_start_ns, gap_end_ns,
    gap_ns, cause, and the next kernel's name, stream_id, api_start_ns, api_name, global_tid.
    """
    k = gpu_work(trace, ("kernel",), (
        "device_id", "start_ns", "end_ns", "name", "stream_id", "api_start_ns", "api_name", "global_tid",
    )).sort("device_id", "start_ns").with_columns(
        pl.col("end_ns").cum_max().forward_fill().shift(1).over("device_id").alias("gap_start_ns")
    )
    cause = (
        pl.when(pl.col("api_start_ns").is_null()).then(pl.lit("unknown"))
        .when(pl.col("api_start_ns") >= pl.col("gap_start_ns")).then(pl.lit("host_bound"))
        .otherwise(pl.lit("inter_kernel"))
    )
    return k.filter(pl.col("start_ns") > pl.col("gap_start_ns")).select(
        "device_id", "gap_start_ns", pl.col("start_ns").alias("gap_end_ns"),
        (pl.col("start_ns") - pl.col("gap_start_ns")).alias("gap_ns"), cause.alias("cause"),
        "name", "stream_id", "api_start_ns", "api_name", "global_tid",
    )


def _gap_sums(gaps: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return gaps.group_by(by).agg(
        pl.len().alias("gpu_gaps"),
        pl.col("gap_ns").sum().alias("gpu_idle_ns"),
        *(pl.col("gap_ns").filter(pl.col("cause") == c).sum().alias(f"gpu_idle_{c}_ns")
          for c in ("host_bound", "inter_kernel", "unknown")),
    )


def _gaps_per_range_name(gaps: pl.DataFrame, rng: pl.DataFrame) -> pl.DataFrame:
    """_gap_sums by range_name of the gaps in each range: counts and sums per range
    (`sums_in_ranges`, no (gap x range) pairs) added up per name, names without gaps
    dropped."""
    slim = gaps.select("api_start_ns", "global_tid", "gap_ns", "cause")
    values = {"gpu_gaps": pl.lit(1), "gpu_idle_ns": pl.col("gap_ns"),
              **{f"gpu_idle_{c}_ns": pl.when(pl.col("cause") == c).then(pl.col("gap_ns")).otherwise(0)
                 for c in ("host_bound", "inter_kernel", "unknown")}}
    sums = sums_in_ranges(slim, rng, at="api_start_ns", start="range_start_ns", end="range_end_ns", by="global_tid",
                          values=values)
    return sums.group_by("range_name").agg(pl.col(list(values)).sum()).filter(pl.col("gpu_gaps") > 0)


def _outside_starts(gaps: pl.DataFrame, rng: pl.DataFrame) -> pl.DataFrame:
    """Per range name and cause, the idle charged to a range that lies before the range began.

    A gap is charged to the ranges around the launch call of the kernel that ends it, but
    may have begun earlier (the GPU went idle during a blocking copy before the range):
    only its part from the range start on is idle inside the range. Only the first gap of
    a range on each device can begin before it (a later kernel launched in the range runs,
    and so ends, after the range start), so that gap is found per (range, device) by an
    as-of join on the launch time, not by pairing every gap with every range.
    Columns: range_name, cause, outside_ns."""
    g = gaps.filter(pl.col("api_start_ns").is_not_null() & pl.col("global_tid").is_not_null()).select(
        "device_id", "global_tid", "api_start_ns", "gap_start_ns", "cause").sort("api_start_ns")
    if g.is_empty() or rng.is_empty():
        return pl.DataFrame(schema={"range_name": pl.Utf8, "cause": pl.Utf8, "outside_ns": pl.Int64})
    r = rng.select("range_name", "range_start_ns", "range_end_ns", "global_tid").join(
        g.select("device_id").unique(), how="cross").sort("range_start_ns")
    first = r.join_asof(g, left_on="range_start_ns", right_on="api_start_ns", by=["global_tid", "device_id"],
                        strategy="forward", check_sortedness=False)
    first = first.filter(pl.col("api_start_ns").is_not_null() & (pl.col("api_start_ns") < pl.col("range_end_ns"))
                         & (pl.col("gap_start_ns") < pl.col("range_start_ns")))
    return first.group_by("range_name", "cause").agg(
        (pl.col("range_start_ns") - pl.col("gap_start_ns")).sum().alias("outside_ns"))


def _inside_only(per: pl.DataFrame, outside: pl.DataFrame) -> pl.DataFrame:
    """`per` (range_name rows of _gap_sums' columns) less the idle that began before each range."""
    if outside.is_empty():
        return per
    wide = outside.pivot(on="cause", index="range_name", values="outside_ns")
    causes = [c for c in ("host_bound", "inter_kernel", "unknown") if c in wide.columns]
    out = per.join(wide, on="range_name", how="left")
    return out.with_columns(
        *(pl.col(f"gpu_idle_{c}_ns") - pl.col(c).fill_null(0) for c in causes),
        (pl.col("gpu_idle_ns") - pl.sum_horizontal(pl.col(c).fill_null(0) for c in causes)).alias("gpu_idle_ns"),
    ).drop(causes)


def _sums(waits: pl.DataFrame, gaps: pl.DataFrame | None, by: list[str], *, gap_sums: pl.DataFrame | None = None) -> pl.DataFrame:
    w = waits.group_by(by).agg(
        pl.len().alias("blocking_calls"),
        pl.col("api_dur_ns").sum().alias("host_wait_ns"),
        pl.col("api_dur_ns").filter(pl.col("wait_kind") == "sync").sum().alias("sync_wait_ns"),
        pl.col("api_dur_ns").filter(pl.col("wait_kind") != "sync").sum().alias("memcpy_wait_ns"),
    )
    g = gap_sums if gap_sums is not None else _gap_sums(gaps, by)
    return w.join(g, on=by, how="full", coalesce=True)


@analysis("host_wait", columns=COLUMNS, needs=("runtime", "kernels"))
def host_wait(trace: Trace) -> pl.DataFrame:
    """Host blocked in synchronizing calls, and GPU idle split into host-bound vs queued gaps.

    Reads: runtime, memcpys (memory kinds), kernels, nvtx. First row "(all)" is the whole
    trace; then one row per NVTX range name (calls and gaps inside nested ranges count in
    each). A gap belongs to the ranges around the launch call of the kernel that ends it,
    charged from the range start on: idle that began before the range (during a blocking
    copy before it, say) is not idle inside it.
    Columns: range_name; blocking_calls; host_wait_ns (time in blocking calls) =
    sync_wait_ns (synchronize calls) + memcpy_wait_ns (synchronous or pageable copies);
    gpu_gaps (idle intervals between kernels, per device); gpu_idle_ns (their total) =
    gpu_idle_host_bound_ns (next kernel not yet launched when the GPU went idle) +
    gpu_idle_inter_kernel_ns (next kernel already queued) + gpu_idle_unknown_ns (launch call
    not found).
    """
    waits, gaps = blocking_calls(trace), gpu_gaps(trace)
    if waits.is_empty() and gaps.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    total = _sums(waits.with_columns(pl.lit(ALL).alias("range_name")),
                  gaps.with_columns(pl.lit(ALL).alias("range_name")), ["range_name"])
    rng = ranges(trace)
    w_in = in_ranges(waits, rng)
    order = rng.group_by("range_name").agg(pl.col("range_start_ns").min().alias("_first"))
    gap_sums = _inside_only(_gaps_per_range_name(gaps, rng), _outside_starts(gaps, rng))
    per = _sums(w_in, None, ["range_name"], gap_sums=gap_sums).join(order, on="range_name", how="left").sort("_first", "range_name")
    out = pl.concat([total, per.drop("_first")], how="vertical_relaxed")
    ints = [c for c in COLUMNS if c != "range_name"]
    return shaped(out.with_columns(pl.col(ints).fill_null(0)), COLUMNS)
