"""Overlap: how much copy time runs while kernels execute on other streams."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.intervals import merge, overlapping
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

ALL = "(all)"
COLUMNS = {
    "copy_kind": pl.Utf8,
    "device_id": pl.Int64,
    "stream_id": pl.Int64,
    "copies": pl.Int64,
    "bytes": pl.Int64,
    "copy_ns": pl.Int64,
    "overlapped_ns": pl.Int64,
    "overlap_fraction": pl.Float64,
}


def copy_overlap(trace: Trace) -> pl.DataFrame:
    """Each memcpy with overlapped_ns: its time intersected with the union of kernels
    running on other streams of the same device (segments are disjoint, so the sum is exact).
    One loop turn per distinct copy stream (a handful), none per event."""
    copies = trace.memcpys.with_row_index("_copy").select(
        "_copy", "copy_kind", "device_id", "stream_id", "bytes", "start_ns", "end_ns", "dur_ns"
    )
    parts = []
    for dev, stream in copies.select("device_id", "stream_id").unique().sort("device_id", "stream_id").iter_rows():
        mine = copies.filter((pl.col("device_id") == dev) & (pl.col("stream_id") == stream))
        others = trace.kernels.filter((pl.col("device_id") == dev) & (pl.col("stream_id") != stream))
        segs = merge(others, by=[])
        pairs = overlapping(mine, segs, a_start="start_ns", a_end="end_ns", b_start="seg_start_ns", b_end="seg_end_ns")
        parts.append(mine.join(pairs.group_by("_copy").agg(pl.col("overlap_ns").sum().alias("overlapped_ns")),
                               on="_copy", how="left").with_columns(pl.col("overlapped_ns").fill_null(0)))
    if not parts:
        return copies.with_columns(pl.lit(0, pl.Int64).alias("overlapped_ns")).drop("_copy")
    return pl.concat(parts).sort("_copy").drop("_copy")


def _agg(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.group_by(by).agg(
        pl.len().alias("copies"), pl.col("bytes").sum(), pl.col("dur_ns").sum().alias("copy_ns"),
        pl.col("overlapped_ns").sum(),
    ).with_columns((pl.col("overlapped_ns") / pl.col("copy_ns")).alias("overlap_fraction"))


@analysis("overlap", columns=COLUMNS, needs=("memcpys", "kernels"))
def overlap(trace: Trace) -> pl.DataFrame:
    """Fraction of copy time that overlaps kernels on other streams of the same device.

    Reads: memcpys, kernels. First row "(all)" (device_id and stream_id null) over every
    copy, then one row per (copy_kind, device_id, stream_id). Columns: copy_kind,
    device_id, stream_id, copies, bytes, copy_ns (sum of copy durations), overlapped_ns
    (copy time during which a kernel ran on another stream), overlap_fraction =
    overlapped_ns / copy_ns (0-1; near 0 for serialized copies, near 1 when a copy stream
    hides H2D behind compute).
    """
    per = copy_overlap(trace)
    if per.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    total = _agg(per.with_columns(pl.lit(ALL).alias("copy_kind")), ["copy_kind"])
    by = _agg(per, ["copy_kind", "device_id", "stream_id"]).sort("copy_kind", "device_id", "stream_id")
    return shaped(pl.concat([total, by], how="diagonal_relaxed"), COLUMNS)
