"""Shared building blocks: what a runtime call does, GPU work joined to its launching call,
NVTX ranges, and the projection of calls onto the ranges that enclose them.

Everything here reads a Trace (see decodeprof.schema) and returns frames; nothing prints.
"""

from __future__ import annotations

import functools
import inspect

import polars as pl

from decodeprof.analyses.intervals import nested_pairs, points_in_nested_ranges
from decodeprof.trace import Trace

# What a CUDA runtime/driver call does, from its name (first match wins).
API_KINDS: tuple[tuple[str, str], ...] = (
    ("graph_launch", r"^cu(da)?GraphLaunch"),
    ("kernel_launch", r"^cu(da)?Launch(Cooperative)?Kernel"),
    ("memcpy", r"^cu(da)?Memcpy"),
    ("memset", r"^cu(da)?Memset"),
    ("sync", r"^cu(da)?(StreamSynchronize|DeviceSynchronize|EventSynchronize|CtxSynchronize)"),
)
LAUNCH_KINDS = ("graph_launch", "kernel_launch", "memcpy", "memset")
PAGEABLE = "(?i)pageable"  # in ENUM_CUDA_MEM_KIND's pageable name (CUDA_MEMOPR_MEMORY_KIND_PAGEABLE) or label (Pageable)


def per_trace(func):
    """Compute `func(trace, *args, **kwargs)` once per trace and argument set, kept in the
    trace's own `derived` store: analyses share joined frames (polars frames are immutable,
    so sharing is safe) instead of rebuilding them."""
    signature = inspect.signature(func)
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(trace: Trace, *args, **kwargs):
        bound = signature.bind(trace, *args, **kwargs)
        bound.apply_defaults()  # f(t) and f(t, steps=None) are one entry
        key = (name, tuple(bound.arguments.items())[1:])
        return trace.derived.get(key, lambda: func(trace, *args, **kwargs))

    return wrapper


def api_kind(name: pl.Expr) -> pl.Expr:
    """Expression: "graph_launch" | "kernel_launch" | "memcpy" | "memset" | "sync" | "other"."""
    expr = pl.when(name.str.contains(API_KINDS[0][1])).then(pl.lit(API_KINDS[0][0]))
    for kind, pattern in API_KINDS[1:]:
        expr = expr.when(name.str.contains(pattern)).then(pl.lit(kind))
    return expr.otherwise(pl.lit("other"))


def _api_kinds(names: pl.Series) -> pl.Expr:
    """api_kind of a name column, matched once per distinct name (a trace has a few dozen
    API names and millions of calls) and mapped back; same values as `api_kind`."""
    distinct = names.unique().drop_nulls()
    kinds = pl.DataFrame({"n": distinct}).select(api_kind(pl.col("n")))[:, 0]
    return pl.col("name").replace_strict(distinct, kinds, default="other", return_dtype=pl.Utf8)


@per_trace
def runtime_calls(trace: Trace) -> pl.DataFrame:
    """Runtime calls with `api_kind` added (columns prefixed api_ where they would clash)."""
    return trace.runtime.select(
        pl.col("start_ns").alias("api_start_ns"),
        pl.col("end_ns").alias("api_end_ns"),
        pl.col("dur_ns").alias("api_dur_ns"),
        pl.col("name").alias("api_name"),
        _api_kinds(trace.runtime.get_column("name")).alias("api_kind"),
        "global_tid",
        "global_pid",
        "correlation_id",
    )


ALL_OPS = ("kernel", "memcpy", "memset")
_COMMON = ("start_ns", "end_ns", "dur_ns", "device_id", "stream_id", "correlation_id", "global_pid", "graph_node_id")
WORK_COLUMNS = ("op", *_COMMON, "name", "bytes", "src_kind", "dst_kind")
CALL_COLUMNS = ("api_start_ns", "api_end_ns", "api_dur_ns", "api_name", "api_kind", "global_tid")


def _work_expr(op: str, column: str, frame: pl.DataFrame) -> pl.Expr:
    """Column `column` of gpu_work for the rows of `op` (read from `frame`)."""
    special = {
        "op": pl.lit(op),
        "name": {"kernel": pl.col("name"), "memcpy": pl.col("copy_kind"), "memset": pl.lit("memset")}[op],
        "bytes": pl.lit(None, pl.Int64) if op == "kernel" else pl.col("bytes"),
        "src_kind": pl.col("src_kind") if op == "memcpy" else pl.lit(None, pl.Utf8),
        "dst_kind": pl.col("dst_kind") if op == "memcpy" else pl.lit(None, pl.Utf8),
    }
    return special.get(column, pl.col(column)).alias(column)


def _work_side(trace: Trace, ops: tuple[str, ...], columns: tuple[str, ...]) -> pl.DataFrame:
    frames = {"kernel": trace.kernels, "memcpy": trace.memcpys, "memset": trace.memsets}
    parts = [frames[op].select(_work_expr(op, c, frames[op]) for c in columns) for op in ALL_OPS if op in ops]
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


@per_trace
def call_rows(trace: Trace, ops: tuple[str, ...]) -> pl.DataFrame:
    """(_w, _c): each work row's number in `_work_side` order and the row number of its
    launching call in trace.runtime (null when absent), as a left join on (correlation_id,
    global_pid) keeping the work order. Only these two UInt32 columns are joined; callers
    gather the columns they need. When work and calls all hold one and the same process
    (the usual trace) the process key is constant and the join runs on correlation_id
    alone: same pairs, a single-integer hash join."""
    if ops != ALL_OPS:  # a subset: the matching rows of the all-ops pairs, renumbered
        sizes = {"kernel": trace.kernels.height, "memcpy": trace.memcpys.height, "memset": trace.memsets.height}
        pairs, first, parts = call_rows(trace, ALL_OPS), 0, []
        for op in ALL_OPS:
            if op in ops:
                w = pl.col("_w")
                parts.append(pairs.filter((w >= first) & (w < first + sizes[op])).with_columns(w - first + sum(
                    sizes[o] for o in ALL_OPS[:ALL_OPS.index(op)] if o in ops)))
            first += sizes[op]
        return pl.concat(parts).with_columns(pl.col("_w").cast(pl.UInt32))
    work = _work_side(trace, ops, ("correlation_id", "global_pid")).with_row_index("_w")
    calls = trace.runtime.select("correlation_id", "global_pid").with_row_index("_c")
    pids = pl.concat([work.get_column("global_pid"), calls.get_column("global_pid")])
    if pids.null_count() == 0 and pids.n_unique() == 1:
        found = _sorted_lookup(calls.get_column("correlation_id"), work.get_column("correlation_id"))
        if found is not None:
            return work.select("_w", found.alias("_c"))
        pairs = work.join(calls.drop("global_pid"), on="correlation_id", how="left", maintain_order="left")
    else:
        pairs = work.join(calls, on=["correlation_id", "global_pid"], how="left", maintain_order="left")
    return pairs.select("_w", "_c")


def _sorted_lookup(keys: pl.Series, wanted: pl.Series) -> pl.Series | None:
    """Row number in `keys` of each value of `wanted` (null where absent), by binary search
    in the sorted keys: a left join's result when `keys` are unique and not null, without a
    hash table over millions of calls (at 1M kernels: ~40 MB instead of ~220 MB, and
    faster). None when the keys repeat or hold nulls (then a real join is needed)."""
    if keys.null_count() or keys.is_empty():
        return None
    order = None if keys.is_sorted() else keys.arg_sort()
    ordered = keys if order is None else keys.gather(order)
    if (ordered.diff() == 0).any():
        return None
    pos = ordered.search_sorted(wanted, side="left").clip(upper_bound=len(keys) - 1)
    hit = (ordered.gather(pos) == wanted).fill_null(False)
    rows = (pos if order is None else order.gather(pos)).cast(pl.UInt32)
    return pl.select(pl.when(hit).then(rows).otherwise(None)).to_series()


def gpu_work(trace: Trace, ops: tuple[str, ...] = ALL_OPS, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Kernels, memcpys and memsets in one frame, each joined to its launching runtime call.

    Columns: op ("kernel"|"memcpy"|"memset"), start_ns, end_ns, dur_ns, device_id, stream_id,
    correlation_id, global_pid, name (kernel name; copy kind for memcpys), bytes (null for
    kernels), graph_node_id, src_kind, dst_kind, and from the call (null where the call is
    absent): api_start_ns, api_end_ns, api_dur_ns, api_name, api_kind, global_tid.
    Rows: kernels, then memcpys, then memsets, each in frame order. `columns` picks a subset
    (in that order): the call is matched once per trace (`call_rows`) and only the named
    columns are gathered, so an analysis needing five columns never builds all nineteen.
    """
    columns = tuple(columns) if columns is not None else (*WORK_COLUMNS, *CALL_COLUMNS)
    ops = tuple(op for op in ALL_OPS if op in ops)
    pairs = call_rows(trace, ops)
    work_cols = tuple(c for c in columns if c in WORK_COLUMNS)
    call_cols = tuple(c for c in columns if c in CALL_COLUMNS)
    work = _work_side(trace, ops, work_cols) if work_cols else None
    if work is not None and pairs.height != work.height:  # a call key matched twice: rows repeat
        work = work.select(pl.all().gather(pairs.get_column("_w")))
    calls = runtime_calls(trace).select(pl.col(c).gather(pairs.get_column("_c")) for c in call_cols) if call_cols else None
    out = pl.concat([f for f in (work, calls) if f is not None], how="horizontal")
    return out.select(columns)


MEASURED = "measured"  # the targets' range around their timed iterations


def ranges(trace: Trace, names: tuple[str, ...] | None = None) -> pl.DataFrame:
    """NVTX ranges (marks dropped): range_id, range_name, range_start_ns, range_end_ns,
    range_dur_ns, global_tid. `range_id` is stable (row order of the nvtx frame).

    Where a thread has "measured" ranges, only they and the ranges inside them are kept: a
    capture without a capture range (the CPU device) also records the correctness check and
    the warm-up iterations, which the target's own metrics leave out too."""
    r = trace.nvtx.with_row_index("range_id").filter(pl.col("end_ns").is_not_null())
    measured = r.filter(pl.col("text") == MEASURED).select(
        "global_tid", pl.col("start_ns").alias("_m0"), pl.col("end_ns").alias("_m1"))
    if names is not None:
        r = r.filter(pl.col("text").is_in(list(names)))
    if measured.height:
        # a thread's measured ranges do not overlap: the one that opened last before a range
        # starts is the only one that can hold it (as-of join, not a pairwise one: a tiled
        # trace has hundreds of measured ranges)
        cols = r.columns
        held = r.sort("start_ns").join_asof(measured.sort("_m0"), left_on="start_ns", right_on="_m0",
                                            by="global_tid", strategy="backward", check_sortedness=False)
        tids = measured.select("global_tid").unique()
        keep = held.filter(pl.col("global_tid").is_null() | ~pl.col("global_tid").is_in(tids["global_tid"].implode())
                           | (pl.col("end_ns") <= pl.col("_m1")))
        r = keep.select(cols).sort("range_id")
    return r.select(
        pl.col("range_id").cast(pl.Int64),
        pl.col("text").alias("range_name"),
        pl.col("start_ns").alias("range_start_ns"),
        pl.col("end_ns").alias("range_end_ns"),
        pl.col("dur_ns").alias("range_dur_ns"),
        "global_tid",
    )


def in_ranges(frame: pl.DataFrame, rng: pl.DataFrame, *, at: str = "api_start_ns") -> pl.DataFrame:
    """Pair each row of `frame` with every range enclosing its `at` time on the same global_tid.

    Rows without a thread (no launching call found) match nothing. Inner join semantics.
    """
    return points_in_nested_ranges(
        frame.filter(pl.col("global_tid").is_not_null() & pl.col(at).is_not_null()),
        rng, at=at, start="range_start_ns", end="range_end_ns", by="global_tid",
    )


def in_ranges_chunks(frame: pl.DataFrame, rng: pl.DataFrame, *, at: str = "api_start_ns",
                     keep: tuple[str, ...] | None = None, keep_points: tuple[str, ...] | None = None,
                     whole: str | None = None):
    """`in_ranges` as a generator of chunks (see intervals.nested_pairs): no range spans two
    chunks (nor, with `whole`, two ranges of equal `whole`), so per-range (per-`whole`)
    aggregates can be taken chunk by chunk, one chunk in memory at a time.
    `keep` / `keep_points`: the range / frame columns to carry (default: all but global_tid /
    all)."""
    return nested_pairs(
        frame.filter(pl.col("global_tid").is_not_null() & pl.col(at).is_not_null()),
        rng, at=at, start="range_start_ns", end="range_end_ns", by="global_tid", keep=keep, keep_points=keep_points,
        whole=whole,
    )


def in_ranges_slim(frame: pl.DataFrame, rng: pl.DataFrame, *, at: str = "api_start_ns",
                   keep: tuple[str, ...], keep_points: tuple[str, ...]) -> pl.DataFrame:
    """The rows of `in_ranges(frame, rng)` with only the columns `keep_points` (of `frame`)
    then `keep` (of `rng`): built level by level, the unused columns never gathered."""
    chunks = list(in_ranges_chunks(frame, rng, at=at, keep=keep, keep_points=keep_points))
    if chunks:
        return pl.concat(chunks, how="vertical_relaxed")
    return in_ranges(frame, rng, at=at).select(*keep_points, *keep)


MAX_STEPS = 2**31  # steps per decode range: a count past this is damage, not a config


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < MAX_STEPS else None


def config_steps(trace: Trace, steps: int | None) -> int | None:
    """Decode steps per decode range: the target's config, else the `steps` option (each
    only when a whole number from 1 to 2^31)."""
    return _count(trace.target_metrics.config.get("steps")) or _count(steps)


def unmeasured(trace: Trace, out: pl.DataFrame, columns_from: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """`out` with the columns that come from an absent table set to null: a table the capture
    never recorded (e.g. no CUDA tracing) measured nothing, and a 0 would read as "none ran".
    columns_from: input frame name -> the output columns computed from it."""
    absent = {m.frame for m in trace.missing}
    cols = {c for frame, cs in columns_from.items() if frame in absent for c in cs if c in out.columns}
    return out.with_columns(pl.lit(None, out.schema[c]).alias(c) for c in sorted(cols)) if cols else out
