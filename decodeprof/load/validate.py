"""Rows the loader cannot use, dropped at the boundary and counted, never silently.

A row whose interval is impossible (no start, no end where the table always has one, an end
before its start) or whose byte count is negative would turn into negative totals, shares
outside 0-100% or gaps that are not there. Each frame's bad rows are dropped here and counted
by reason; the count travels with the trace (Trace.dropped) into every output.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

# frame -> (interval always closed?, has bytes)
CHECKED = {"kernels": (True, False), "memcpys": (True, True), "memsets": (True, True), "runtime": (True, False),
           "nvtx": (False, False)}
META_KEY = "dropped_rows"  # where the counts ride in Trace.meta (and so in every cache of it)


def drop_impossible(frames: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], list[dict]]:
    """(frames without their impossible rows, [{frame, reason, rows}] for each reason that dropped any)."""
    import polars as pl  # here: the commands read `sentences` without loading polars
    dropped, out = [], dict(frames)
    for name, (closed, has_bytes) in CHECKED.items():
        f = frames.get(name)
        if f is None or f.is_empty() or not {"start_ns", "end_ns"} <= set(f.columns):
            continue
        reasons = {"no start time": pl.col("start_ns").is_null(),
                   "ends before it starts": pl.col("end_ns").is_not_null() & (pl.col("end_ns") < pl.col("start_ns"))}
        if closed:
            reasons["no end time"] = pl.col("end_ns").is_null()
        if has_bytes and "bytes" in f.columns:
            reasons["negative byte count"] = pl.col("bytes") < 0
        counts = f.select(*(e.fill_null(False).sum().alias(r) for r, e in reasons.items())).row(0, named=True)
        if not any(counts.values()):
            continue
        bad = pl.any_horizontal(e.fill_null(False) for e in reasons.values())
        out[name] = f.filter(~bad)
        dropped += [{"frame": name, "reason": r, "rows": int(n)} for r, n in counts.items() if n]
    return out, dropped


def to_meta(dropped: list[dict]) -> dict[str, str]:
    return {META_KEY: json.dumps(dropped)} if dropped else {}


def sentences(meta: dict) -> list[str]:
    """One sentence per reason rows were dropped (from the trace's meta)."""
    try:
        items = json.loads(meta.get(META_KEY) or "[]")
    except ValueError:
        return []
    return [f"{d['rows']} {d['frame']} row(s) dropped: {d['reason']}" for d in items]
