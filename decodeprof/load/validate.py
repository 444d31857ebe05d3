"""Rows the loader cannot use, dropped at the boundary and counted, never silently.

A row whose interval is impossible (no start, no end where the table always has one, an end
before its start, a time outside the capture or past +-2^61 ns), that lacks a value nsys
always writes (a device, stream, process, thread, correlation id, name id, byte count or
memory kind) or holds an id CUPTI could not have written, that repeats an earlier row
exactly, or whose byte count is negative or past 1 PiB, would turn into negative totals,
shares outside 0-100%, sums that wrap around Int64, doubled kernels or gaps that are not
there. Each frame's bad rows are dropped here and counted, each under its first reason.
Rows kept with something unknown are counted too: a kind missing from its ENUM table, a
name id missing from StringIds (the loader counts those), a launch configuration out of
range (shown as null), an NVTX range without a name. The counts travel with the trace
(Trace.dropped) into every output. A core frame that loses more than half its rows, or
durations or bytes that add up past 2^62, refuse the export (`check_refusal`,
`check_sums`): such an export is damaged, not a trace with a few bad rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

META_KEY = "dropped_rows"  # where the counts ride in Trace.meta (and so in every cache of it)
TIME_LIMIT_NS = 2**61  # no trace time lies this far from its capture's start (73 years)
BYTES_LIMIT = 2**50  # 1 PiB: more than any device holds, and 4096 such rows still sum in Int64
SUM_LIMIT = 2**62  # a frame's durations or bytes summed must stay this far inside Int64


@dataclass(frozen=True)
class Checked:
    """What is checked in one frame: whether its rows always have an end, whether it
    counts bytes, the columns nsys never leaves null (column -> what it is, for the
    reason), the columns that make two rows the same event, and its kind columns."""

    closed: bool
    has_bytes: bool
    required: dict[str, str]
    identity: tuple[str, ...]
    kinds: dict[str, str]  # column -> the export column whose number it holds when unnamed
    cupti: bool = True  # CUDA activity: recorded only while the capture runs
    optional: dict[str, str] | None = None  # like `required`, where the export has the column at all


_GPU = {"device_id": "device id", "stream_id": "stream id", "correlation_id": "correlation id"}
_PID = {"global_pid": "process id"}
CHECKED = {
    "kernels": Checked(True, False, {**_GPU, "name": "name id"},
                       ("start_ns", "end_ns", "device_id", "stream_id", "correlation_id", "global_pid"), {}, optional=_PID),
    "memcpys": Checked(True, True, {**_GPU, "bytes": "byte count", "copy_kind": "copy kind", "src_kind": "memory kind",
                                    "dst_kind": "memory kind"},
                       ("start_ns", "end_ns", "device_id", "stream_id", "correlation_id", "global_pid", "bytes"),
                       {"copy_kind": "copyKind", "src_kind": "srcKind", "dst_kind": "dstKind"}, optional=_PID),
    "memsets": Checked(True, True, {**_GPU, "bytes": "byte count"},
                       ("start_ns", "end_ns", "device_id", "stream_id", "correlation_id", "global_pid", "bytes"), {},
                       optional=_PID),
    "runtime": Checked(True, False, {"global_tid": "thread id", "correlation_id": "correlation id", "name": "name id"},
                       ("start_ns", "end_ns", "global_tid", "correlation_id"), {}),
    # sync types are not checked: nsys 2025's syncType holds codes its ENUM table never names
    "syncs": Checked(True, False, {}, ("start_ns", "end_ns", "device_id", "stream_id", "correlation_id", "sync_type"), {}),
    "nvtx": Checked(False, False, {"global_tid": "thread id"},
                    ("start_ns", "end_ns", "global_tid", "text", "domain", "event_kind"), {"event_kind": "eventType"},
                    cupti=False),
}
CORE = ("kernels", "runtime", "memcpys", "nvtx")  # refused, not trimmed, when most rows are bad
RANGE_KINDS = ("push_pop", "start_end")
# ids CUPTI writes as 32-bit (devices: far fewer): a value outside is damage, not an id
ID_LIMITS = {"device_id": 2**16, "stream_id": 2**32, "correlation_id": 2**32}
# a kernel's launch configuration: CUDA's own limits, widened; outside, shown as unknown
CONFIG_LIMITS = {"grid_x": 2**32, "grid_y": 2**32, "grid_z": 2**32, "block_x": 2**16, "block_y": 2**16,
                 "block_z": 2**16, "registers_per_thread": 2**16, "shared_memory_bytes": 2**40}


def _reasons(name: str, f: pl.DataFrame, spec: Checked, capture: tuple[int, int] | None) -> dict[str, pl.Expr]:
    import polars as pl

    start, end = pl.col("start_ns"), pl.col("end_ns")
    out = {"no start time": start.is_null()}
    if spec.closed:
        out["no end time"] = end.is_null()
    elif "event_kind" in f.columns:
        out["a range without an end"] = end.is_null() & pl.col("event_kind").is_in(RANGE_KINDS)
    out["ends before it starts"] = end.is_not_null() & (end < start)
    out["a time past +-2^61 ns"] = (start.abs() >= TIME_LIMIT_NS) | (end.abs() >= TIME_LIMIT_NS)
    if capture is not None:
        lo, hi = capture
        out[f"outside the capture ({lo:,} to {hi:,} ns)"] = ((start < lo) if spec.cupti else pl.lit(False)) | (end > hi)
    for col, what in spec.required.items():
        if col in f.columns:
            out[f"no {what}"] = out.get(f"no {what}", pl.lit(False)) | pl.col(col).is_null()
    for col, what in (spec.optional or {}).items():
        if col in f.columns and f.get_column(col).null_count() < f.height:  # all null: a column this export lacks
            out[f"no {what}"] = pl.col(col).is_null()
    for col, limit in ID_LIMITS.items():
        if col in f.columns and col in spec.required:
            out[f"{spec.required[col]} out of range"] = (pl.col(col) < 0) | (pl.col(col) >= limit)
    if spec.has_bytes and "bytes" in f.columns:
        out["negative byte count"] = pl.col("bytes") < 0
        out["byte count past 1 PiB"] = pl.col("bytes") >= BYTES_LIMIT
    return out


def _duplicates(f: pl.DataFrame, spec: Checked) -> pl.Series | None:
    """Rows equal to an earlier row in every identity column (the first copy is kept), or
    None when there are none. Two copies share a start: starts are checked for repeats in
    sorted order first (the frames come sorted: 1 ms at 2.4M calls, where hashing every row
    took 2 s), and only rows whose start repeats are compared in full."""
    import polars as pl

    key = [c for c in spec.identity if c in f.columns]
    if len(key) < 3:
        return None
    starts = f.get_column("start_ns")
    ordered = starts if starts.is_sorted() else starts.sort()
    repeats = ordered.filter(ordered.diff() == 0)
    if repeats.is_empty():
        return None
    rows = f.with_row_index("_row").filter(pl.col("start_ns").is_in(repeats.unique().implode()))
    later = rows.filter(~pl.struct(key).is_first_distinct()).get_column("_row")
    return pl.int_range(f.height, dtype=later.dtype, eager=True).is_in(later.implode())


def drop_impossible(frames: dict[str, pl.DataFrame], *, capture: tuple[int, int] | None = None,
                    named: frozenset[str] = frozenset(), processes: frozenset[int] = frozenset()
                    ) -> tuple[dict[str, pl.DataFrame], list[dict]]:
    """(frames without their impossible rows, [{frame, reason, rows[, action]}] for each
    reason that dropped any, and each unnamed kind kept). `capture`: the capture's first and
    last ns where the export states them (CUDA activity outside it, and NVTX ending after
    it, is dropped; unless most rows lie outside: then the times are on another clock).
    `named`: kind columns whose ENUM table is present (an unnamed kind in one is counted;
    where the table is absent, the trace's `missing` says so once). `processes`: the
    process ids the export lists (PROCESSES): a row of another process is damage (unless
    most rows are: then the list is not this trace's). A kernel's launch configuration out
    of range is shown as unknown (null) and counted."""
    import polars as pl  # here: the commands read `sentences` without loading polars

    dropped, out = [], dict(frames)
    if capture is not None and not _on_capture_clock(frames, capture):
        capture = None
    listed = pl.Series(sorted(processes), dtype=pl.Int64) if processes else None
    if listed is not None and not _mostly_listed(frames, listed):
        listed = None
    for name, spec in CHECKED.items():
        f = frames.get(name)
        if f is None or f.is_empty() or not {"start_ns", "end_ns"} <= set(f.columns):
            continue
        reasons = _reasons(name, f, spec, capture)
        if listed is not None and "global_pid" in f.columns:
            reasons["a process the export does not list"] = ~pl.col("global_pid").is_in(listed.implode())
        flags = f.select(**{r: e.fill_null(False) for r, e in reasons.items()})
        dup = _duplicates(f, spec)
        if dup is not None:
            flags = flags.with_columns(dup.alias("a copy of an earlier row"))
        anything = flags.select(pl.any_horizontal(pl.all())).to_series()
        if anything.any():
            # each row counts once, under the first reason it meets
            bad, counts = pl.zeros(f.height, pl.Boolean, eager=True), {}
            for reason in flags.columns:
                hit = flags.get_column(reason) & ~bad
                counts[reason] = int(hit.sum())
                bad = bad | hit
            f = f.filter(~bad)
            out[name] = f
            dropped += [{"frame": name, "reason": r, "rows": n} for r, n in counts.items() if n]
        config = [c for c in CONFIG_LIMITS if c in f.columns]
        if config:
            outside = pl.any_horizontal((pl.col(c) < 0) | (pl.col(c) >= CONFIG_LIMITS[c]) for c in config).fill_null(False)
            n = int(f.select(outside.sum()).item())
            if n:
                f = f.with_columns(pl.when((pl.col(c) >= 0) & (pl.col(c) < CONFIG_LIMITS[c])).then(pl.col(c)).alias(c)
                                   for c in config)
                out[name] = f
                dropped.append({"frame": name, "reason": "launch configuration out of range (shown as unknown)",
                                "rows": n, "action": "kept"})
        if name == "nvtx" and {"text", "event_kind"} <= set(f.columns):
            n = int(f.select((pl.col("text").is_null() & pl.col("event_kind").is_in(RANGE_KINDS)).sum()).item())
            if n:
                dropped.append({"frame": name, "reason": "a range without a name (text and textId empty)", "rows": n,
                                "action": "kept"})
        for col, raw in spec.kinds.items():
            if col in f.columns and col in named:
                n = int(f.select(pl.col(col).str.starts_with(f"{raw}=").sum()).item() or 0)
                if n:
                    dropped.append({"frame": name, "reason": f"{col.replace('_', ' ')} unknown to the export's ENUM "
                                    f"table (kept as {raw}=<number>)", "rows": n, "action": "kept"})
    return out, dropped


def _on_capture_clock(frames: dict[str, pl.DataFrame], capture: tuple[int, int]) -> bool:
    """Whether most event rows start inside `capture`: else the export's times are on
    another clock than its stated capture (shifted, normalized, or tiled copies of a trace),
    and the window says nothing about a single row."""
    import polars as pl

    inside = total = 0
    for name in CHECKED:
        f = frames.get(name)
        if f is not None and f.height and "start_ns" in f.columns:
            total += f.height
            inside += int(f.select(pl.col("start_ns").is_between(*capture).sum()).item())
    return inside * 2 >= total


def _mostly_listed(frames: dict[str, pl.DataFrame], listed: pl.Series) -> bool:
    import polars as pl

    inside = total = 0
    for name in CHECKED:
        f = frames.get(name)
        if f is not None and f.height and "global_pid" in f.columns:
            total += f.height
            inside += int(f.select(pl.col("global_pid").is_in(listed.implode()).sum()).item())
    return inside * 2 >= total


def check_sums(frames: dict[str, pl.DataFrame]) -> str | None:
    """A sentence when a frame's durations or bytes add up past 2^62 (an Int64 sum would
    wrap around), else None."""
    for name, f in frames.items():
        for col in ("dur_ns", "bytes"):
            if name in CHECKED and col in f.columns and f.height:
                total = f.get_column(col).cast(float).abs().sum()
                if total >= SUM_LIMIT:
                    return f"the {name} {col} add up to {total:.3g}, past 2^62"
    return None


def check_refusal(before: dict[str, int], after: dict[str, pl.DataFrame], dropped: list[dict]) -> str | None:
    """A sentence when a core frame lost more than half its rows (`before`: row counts), else None."""
    for name in CORE:
        lost = before.get(name, 0) - (after[name].height if name in after else 0)
        if lost * 2 > before.get(name, 0) > 0:
            why = "; ".join(f"{d['rows']} {d['reason']}" for d in dropped if d["frame"] == name and "action" not in d)
            return f"{lost} of its {before[name]} {name} rows are impossible ({why})"
    return None


def to_meta(dropped: list[dict]) -> dict[str, str]:
    return {META_KEY: json.dumps(dropped)} if dropped else {}


def sentences(meta: dict) -> list[str]:
    """One sentence per reason rows were dropped or kept unnamed (from the trace's meta)."""
    try:
        items = json.loads(meta.get(META_KEY) or "[]")
    except ValueError:
        return []
    return [f"{d['rows']} {d['frame']} row(s) {d.get('action', 'dropped')}: {d['reason']}" for d in items]
