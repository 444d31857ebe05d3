"""Read an Nsight Systems SQLite export into the frames of decodeprof.schema.

Each frame is one SQL query that selects only the columns it needs, with the ENUM_*
lookups done as joins in SQL; StringIds lookups and arithmetic (pid/tid from globalTid,
shared memory sums, kHz) happen in polars (see _Export.name for why), and
`schema.conform` checks the result.

Version differences handled by asking the file which columns exist (PRAGMA table_info):
greenContextId and graphNodeId appear in newer exports; syncType vs deprecatedSyncType;
TARGET_INFO_GPU (newer) vs TARGET_INFO_CUDA_GPU (older); META_DATA_EXPORT vs
EXPORT_META_DATA. A missing optional column is a null column; a missing table is an
empty frame plus a MissingData entry that names the nsys flag that would capture it. A
table without a column every export has (REQUIRED) is refused; a missing StringIds or
ENUM_* table (LOOKUPS) is a MissingData entry too, the numbers then shown as they are
("shortName=17", "copyKind=1"), never guessed. Rows are checked in
decodeprof.load.validate: what it drops or keeps unknown is counted in the meta.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from decodeprof import schema
from decodeprof.errors import TraceFileError
from decodeprof.load._sqlite import columns, connect, has_log, read_sql, table_names
from decodeprof.load.validate import check_refusal, check_sums, drop_impossible, to_meta
from decodeprof.trace import MissingData

TID_MASK = 0xFFFFFF  # nsys serializes globalTid as (... << 48) | (pid << 24) | tid
CUDA_FIX = "capture with `nsys profile --trace=cuda`"
MAYBE_NONE = "; if CUDA was traced, the program made none"


@dataclass(frozen=True)
class _Source:
    """One frame's source table and the capture fix to name when the export lacks it."""

    table: str
    fix: str


SOURCES = {
    "kernels": _Source("CUPTI_ACTIVITY_KIND_KERNEL", CUDA_FIX + " (no GPU kernels were recorded)"),
    "runtime": _Source("CUPTI_ACTIVITY_KIND_RUNTIME", CUDA_FIX + " (no CUDA API calls were recorded)"),
    "memcpys": _Source("CUPTI_ACTIVITY_KIND_MEMCPY", CUDA_FIX + MAYBE_NONE),
    "memsets": _Source("CUPTI_ACTIVITY_KIND_MEMSET", CUDA_FIX + MAYBE_NONE),
    "syncs": _Source("CUPTI_ACTIVITY_KIND_SYNCHRONIZATION", CUDA_FIX + MAYBE_NONE),
    "nvtx": _Source("NVTX_EVENTS", "capture with `nsys profile --trace=nvtx` and mark the decode loop with NVTX ranges"),
    "gpus": _Source("TARGET_INFO_GPU", CUDA_FIX + " on a machine with an NVIDIA GPU"),
    "threads": _Source("ThreadNames", "capture with `nsys profile --trace=osrt` (or CPU sampling) to record thread names"),
}


# Columns every nsys export has in these tables (the loader asks, never assumes, for the
# others). A table without one was edited or damaged: its rows cannot be read as events.
REQUIRED = {
    "CUPTI_ACTIVITY_KIND_KERNEL": ("start", "end", "deviceId", "streamId", "correlationId", "globalPid", "shortName"),
    "CUPTI_ACTIVITY_KIND_RUNTIME": ("start", "end", "globalTid", "correlationId", "nameId"),
    "CUPTI_ACTIVITY_KIND_MEMCPY": ("start", "end", "deviceId", "streamId", "correlationId", "globalPid", "bytes",
                                   "copyKind", "srcKind", "dstKind"),
    "CUPTI_ACTIVITY_KIND_MEMSET": ("start", "end", "deviceId", "streamId", "correlationId", "globalPid", "bytes"),
    "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION": ("start", "end"),
    "NVTX_EVENTS": ("start", "end", "eventType", "globalTid"),
    "StringIds": ("id", "value"),
}
REEXPORT = "the file was edited or damaged: export the report again with `nsys export --type sqlite`"


@dataclass(frozen=True)
class _Lookup:
    """A table that names the numbers of others (StringIds, an ENUM_* table): the frame
    whose rows it names, and what is shown when it is absent."""

    table: str
    frame: str  # the frame that needs it (no rows there: its absence does not matter)
    what: str  # the MissingData frame: what becomes unreadable
    shown: str


LOOKUPS = (
    _Lookup("StringIds", "kernels", "names", "kernel, CUDA API, NVTX and thread names are shown as their ids "
            "(shortName=<id>)"),
    _Lookup("ENUM_CUDA_MEMCPY_OPER", "memcpys", "copy kinds", "copy kinds are shown as copyKind=<number>"),
    _Lookup("ENUM_CUDA_MEM_KIND", "memcpys", "memory kinds", "memory kinds are shown as srcKind=/dstKind=<number>: "
            "pageable copies cannot be told"),
    _Lookup("ENUM_CUPTI_SYNC_TYPE", "syncs", "sync types", "sync types are shown as syncType=<number>"),
    _Lookup("ENUM_NSYS_EVENT_TYPE", "nvtx", "NVTX event types", "NVTX events are kept by number (eventType=<n>), "
            "ranges and marks not told apart"),
)


class _Export:
    """An open export: its path, a read-only connection and its table/column catalogue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = connect(path)
        self.tables = table_names(self.con)
        self._cols: dict[str, list[str]] = {}
        self._strings: pl.DataFrame | None = None
        self.notes: list[dict] = []  # rows a reader dropped or kept unnamed: {frame, reason, rows[, action]}

    def cols(self, table: str) -> list[str]:
        if table not in self._cols:
            self._cols[table] = columns(self.con, table) if table in self.tables else []
        return self._cols[table]

    def read(self, sql: str) -> pl.DataFrame:
        return read_sql(self.path, self.con, sql)

    def pick(self, table: str, alias: str, wanted: dict[str, str]) -> list[str]:
        """`alias.col AS out` for each wanted column the table has (others become nulls later)."""
        have = set(self.cols(table))
        return [f'{alias}."{c}" AS {out}' for c, out in wanted.items() if c in have]

    def has_enum(self, enum: str) -> bool:
        return enum in self.tables and {"id"} <= set(self.cols(enum)) and bool({"name", "label"} & set(self.cols(enum)))

    def enum_join(self, enum: str, alias: str, on: str) -> tuple[str, str]:
        """(select item, join clause) naming `on` from ENUM table `enum`, or nothing if absent
        (or without its id and name columns)."""
        if not self.has_enum(enum):
            return "", ""
        field = "name" if "name" in self.cols(enum) else "label"
        return f", {alias}.{field} AS {alias}_name", f" LEFT JOIN {enum} AS {alias} ON {alias}.id = {on}"

    def strings(self) -> pl.DataFrame:
        """StringIds as (id, value), read once."""
        if self._strings is None:
            self._strings = (
                self.read("SELECT s.id AS id, s.value AS value FROM StringIds AS s").with_columns(
                    pl.col("id").cast(pl.Int64, strict=False), pl.col("value").cast(pl.Utf8))
                .filter(pl.col("id").is_not_null()).unique("id", keep="first", maintain_order=True)
                if "StringIds" in self.tables else pl.DataFrame(schema={"id": pl.Int64, "value": pl.Utf8})
            )
        return self._strings

    def name(self, frame: pl.DataFrame, id_col: str, out: str, *, label: str, of: str) -> pl.DataFrame:
        """Add `out` = StringIds.value for `id_col`; an id StringIds lacks is shown as
        "<label>=<id>" (never a blank that merges unlike rows), counted against frame `of`.
        Looked up here rather than joined in SQL: the result strings then share StringIds'
        buffers (measured on 1M kernels with long demangled names: SQL join 0.73 s / 579 MB
        peak, this about 0.1 s / +40 MB)."""
        if id_col not in frame.columns:
            return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(out))
        lookup = self.strings()
        ids = pl.col(id_col).cast(pl.Int64, strict=False)
        value = ids.replace_strict(lookup["id"], lookup["value"], default=None, return_dtype=pl.Utf8)
        unnamed = pl.lit(f"{label}=") + ids.cast(pl.Utf8)
        frame = frame.with_columns(pl.coalesce(value, unnamed).alias(out))
        if "StringIds" in self.tables:
            n = frame.select((ids.is_not_null() & value.is_null()).sum()).item()
            if n:
                self.notes.append({"frame": of, "reason": f"{label} id absent from StringIds (kept as {label}=<id>)",
                                   "rows": int(n), "action": "kept"})
        return frame


def _with_nulls(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Add each absent column as nulls so later expressions can name it."""
    return frame.with_columns(pl.lit(None).alias(n) for n in names if n not in frame.columns)


def _kind(frame: pl.DataFrame, raw: str, label: str, out: str) -> pl.Expr:
    """The ENUM name, or "raw=<n>" where the ENUM table or the row is missing: never a guess."""
    fallback = pl.lit(f"{raw}=") + pl.col(raw).cast(pl.Utf8)
    name = pl.col(label) if label in frame.columns else pl.lit(None, dtype=pl.Utf8)
    return pl.when(pl.col(raw).is_null()).then(None).otherwise(pl.coalesce(name, fallback)).alias(out)


def _integer(frame: pl.DataFrame, col: str) -> pl.Expr:
    """Column `col` as Int64; where the export holds something else there (text, a REAL with a
    fraction or past Int64), null: the row then lacks that time, never gets a rounded one."""
    c = pl.col(col)
    if frame.schema[col].is_integer() or frame.schema[col] == pl.Null:
        return c.cast(pl.Int64, strict=False)
    as_float = c.cast(pl.Float64, strict=False)
    return pl.when(as_float == as_float.floor()).then(c.cast(pl.Int64, strict=False))


def _timed(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.with_columns(_integer(frame, "start_ns").alias("start_ns"), _integer(frame, "end_ns").alias("end_ns"))
    return frame.with_columns((pl.col("end_ns") - pl.col("start_ns")).alias("dur_ns"))


def _split_tid(col: str = "global_tid") -> list[pl.Expr]:
    gt = pl.col(col).cast(pl.Int64, strict=False)
    return [(gt - (gt & TID_MASK)).alias("global_pid"), (gt & TID_MASK).alias("tid")]


GPU_ACTIVITY = {"start": "start_ns", "end": "end_ns", "deviceId": "device_id", "streamId": "stream_id",
                "correlationId": "correlation_id", "globalPid": "global_pid", "graphNodeId": "graph_node_id"}


# Kernel columns computed from more than one export column, or named otherwise.
_KERNEL_DERIVED = {"dur_ns": ("start_ns", "end_ns"), "shared_memory_bytes": ("static_smem", "dynamic_smem"),
                   "name": ("short_id",), "demangled_name": ("demangled_id",)}


def read_kernels(ex: _Export, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """The kernels frame; `columns`: only these (schema names), the others never read. At 1M
    kernels the analyses' nine columns read in 0.35 s, all eighteen in 0.89 s."""
    t = SOURCES["kernels"].table
    wanted = {**GPU_ACTIVITY, "gridX": "grid_x", "gridY": "grid_y", "gridZ": "grid_z", "blockX": "block_x",
              "blockY": "block_y", "blockZ": "block_z", "registersPerThread": "registers_per_thread",
              "staticSharedMemory": "static_smem", "dynamicSharedMemory": "dynamic_smem"}
    wanted |= {"shortName": "short_id", "demangledName": "demangled_id"}
    if columns is not None:
        needed = {"start_ns", "end_ns", *columns}
        needed |= {src for c in columns for src in _KERNEL_DERIVED.get(c, ())}
        wanted = {c: out for c, out in wanted.items() if out in needed}
    df = ex.read(f"SELECT {', '.join(ex.pick(t, 'k', wanted))} FROM {t} AS k")
    for id_col, out, label in (("short_id", "name", "shortName"), ("demangled_id", "demangled_name", "demangledName")):
        if columns is None or out in columns:
            df = ex.name(df, id_col, out, label=label, of="kernels")
    df = _timed(_with_nulls(df, list(wanted.values())))
    if columns is not None and "shared_memory_bytes" not in columns:
        return df
    return df.with_columns(
        (pl.col("static_smem").cast(pl.Int64, strict=False) + pl.col("dynamic_smem").cast(pl.Int64, strict=False))
        .alias("shared_memory_bytes"),
    )


def read_runtime(ex: _Export) -> pl.DataFrame:
    t = SOURCES["runtime"].table
    wanted = {"start": "start_ns", "end": "end_ns", "globalTid": "global_tid", "correlationId": "correlation_id",
              "nameId": "name_id"}
    df = ex.name(ex.read(f"SELECT {', '.join(ex.pick(t, 'r', wanted))} FROM {t} AS r"), "name_id", "name",
                 label="nameId", of="runtime")
    df = _with_nulls(df, list(wanted.values()))
    return _timed(df).with_columns(*_split_tid())


def read_memcpys(ex: _Export) -> pl.DataFrame:
    t = SOURCES["memcpys"].table
    wanted = {**GPU_ACTIVITY, "bytes": "bytes", "copyKind": "copyKind", "srcKind": "srcKind", "dstKind": "dstKind"}
    parts = [ex.enum_join("ENUM_CUDA_MEMCPY_OPER", "ck", "m.copyKind"),
             ex.enum_join("ENUM_CUDA_MEM_KIND", "sk", "m.srcKind"),
             ex.enum_join("ENUM_CUDA_MEM_KIND", "dk", "m.dstKind")]
    df = ex.read(f"SELECT {', '.join(ex.pick(t, 'm', wanted))}{''.join(p[0] for p in parts)} "
                 f"FROM {t} AS m{''.join(p[1] for p in parts)}")
    df = _with_nulls(df, list(wanted.values()))
    return _timed(df).with_columns(
        _kind(df, "copyKind", "ck_name", "copy_kind"), _kind(df, "srcKind", "sk_name", "src_kind"),
        _kind(df, "dstKind", "dk_name", "dst_kind"),
    )


def read_memsets(ex: _Export) -> pl.DataFrame:
    t = SOURCES["memsets"].table
    wanted = {**GPU_ACTIVITY, "bytes": "bytes"}
    df = _with_nulls(ex.read(f"SELECT {', '.join(ex.pick(t, 'm', wanted))} FROM {t} AS m"), list(wanted.values()))
    return _timed(df)


def read_syncs(ex: _Export) -> pl.DataFrame:
    t = SOURCES["syncs"].table
    wanted = {k: v for k, v in GPU_ACTIVITY.items() if k != "graphNodeId"}
    wanted |= {"syncType": "syncType", "deprecatedSyncType": "deprecatedSyncType"}
    have = set(ex.cols(t))
    # Exports that have both columns (nsys 2025) label with deprecatedSyncType, the CUPTI code
    # ENUM_CUPTI_SYNC_TYPE names: their syncType holds another code set (2 for both
    # cudaStreamSynchronize and cudaStreamWaitEvent, 1 for cudaEventQuery), so a row without a
    # deprecated value stays unlabelled rather than mislabelled.
    if {"syncType", "deprecatedSyncType"} <= have:
        on = "s.deprecatedSyncType"
    else:
        on = "s.syncType" if "syncType" in have else "s.deprecatedSyncType"
    e_sel, e_join = ex.enum_join("ENUM_CUPTI_SYNC_TYPE", "st", on)
    df = ex.read(f"SELECT {', '.join(ex.pick(t, 's', wanted))}{e_sel} FROM {t} AS s{e_join}")
    df = _with_nulls(df, list(wanted.values()))
    if "deprecatedSyncType" in have:  # the name where the CUPTI code is known, else "syncType=<n>"
        old = pl.col("deprecatedSyncType").cast(pl.Int64, strict=False)
        df = df.with_columns(pl.when(old.is_not_null()).then(old).otherwise(pl.col("syncType")).alias("syncType"))
    return _timed(df).with_columns(_kind(df, "syncType", "st_name", "sync_type"))


NVTX_KINDS = {"pushpop": "push_pop", "startend": "start_end", "mark": "mark"}


def _nvtx_kind(enum_name: str | None) -> str | None:
    """push_pop / start_end / mark from an ENUM_NSYS_EVENT_TYPE name; None for other types."""
    key = (enum_name or "").lower().replace("_", "")
    if not key.startswith("nvtx") or "domain" in key or "category" in key:
        return None
    for token, kind in NVTX_KINDS.items():
        if token in key:
            return kind
    return None


def read_nvtx(ex: _Export) -> pl.DataFrame:
    t = SOURCES["nvtx"].table
    wanted = {"start": "start_ns", "end": "end_ns", "eventType": "eventType", "text": "text",
              "globalTid": "global_tid", "domainId": "domainId", "textId": "text_id"}
    e_sel, e_join = ex.enum_join("ENUM_NSYS_EVENT_TYPE", "et", "n.eventType")
    df = ex.read(f"SELECT {', '.join(ex.pick(t, 'n', wanted))}{e_sel} FROM {t} AS n{e_join}")
    df = _with_nulls(ex.name(df, "text_id", "tx_value", label="textId", of="nvtx"), list(wanted.values())).with_columns(
        pl.coalesce(pl.col("text").cast(pl.Utf8), pl.col("tx_value").cast(pl.Utf8)).alias("text"), *_split_tid())
    number = pl.col("eventType").cast(pl.Int64, strict=False).cast(pl.Utf8)  # null where no integer
    if "et_name" in df.columns:
        names = df.get_column("et_name").cast(pl.Utf8).unique().to_list()
        kinds = {n: _nvtx_kind(n) for n in names}
        domain_types = [n for n in names if n and n.lower().replace("_", "").endswith("domaincreate")]
        kind = pl.col("et_name").cast(pl.Utf8).replace_strict(kinds, default=None, return_dtype=pl.Utf8)
        unknown = pl.lit("eventType=") + number  # a type the ENUM table lacks
        df = df.with_columns(pl.when(pl.col("et_name").is_null()).then(unknown).otherwise(kind).alias("event_kind"))
    else:  # no enum table: keep every row and say which numeric type it was
        domain_types = []
        df = df.with_columns((pl.lit("eventType=") + number).alias("event_kind"))
    domains = (
        df.filter(pl.col("et_name").is_in(domain_types))
        .select("global_pid", pl.col("domainId").cast(pl.Int64, strict=False), pl.col("text").alias("domain"))
        .unique(["global_pid", "domainId"], keep="first")
        if domain_types else pl.DataFrame(schema={"global_pid": pl.Int64, "domainId": pl.Int64, "domain": pl.Utf8})
    )
    untyped = df.select(number.is_null().sum()).item()
    if untyped:
        ex.notes.append({"frame": "nvtx", "reason": "no event type", "rows": int(untyped)})
    df = df.filter(pl.col("event_kind").is_not_null()).with_columns(pl.col("domainId").cast(pl.Int64, strict=False))
    df = df.join(domains, on=["global_pid", "domainId"], how="left", maintain_order="left")
    domain = (
        pl.when(pl.col("domainId").is_null() | (pl.col("domainId") == 0)).then(pl.lit(""))
        .otherwise(pl.coalesce(pl.col("domain"), pl.lit("domainId=") + pl.col("domainId").cast(pl.Utf8)))
    )
    return _timed(df).with_columns(domain.alias("domain"))


# What a GPU's figures can be (far past any GPU made, short of a number that breaks a ratio):
# outside, the figure is unknown, never a bandwidth of 9.2e18 B/s behind a 0% utilization.
GPU_LIMITS = {"sm_count": (1, 100_000, "SM count"), "memory_bandwidth_bytes_per_s": (1, 10**15, "memory bandwidth"),
              "memory_bytes": (1, 2**50, "memory size"), "clock_rate_khz": (1, 10**8, "clock rate")}


def read_gpus(ex: _Export) -> tuple[pl.DataFrame, str | None]:
    """GPU rows from TARGET_INFO_GPU (clockRate in Hz, memoryBandwidth in B/s), or the older
    TARGET_INFO_CUDA_GPU (CUPTI units: coreClockRate kHz, globalMemoryBandwidth kB/s)."""
    if "TARGET_INFO_GPU" in ex.tables:
        table, fields = "TARGET_INFO_GPU", {
            "device_id": ("id", 1), "name": ("name", None), "sm_count": ("smCount", 1),
            "memory_bandwidth_bytes_per_s": ("memoryBandwidth", 1), "memory_bytes": ("totalMemory", 1),
            "clock_rate_khz": ("clockRate", 1 / 1000), "cc_major": ("computeMajor", 1), "cc_minor": ("computeMinor", 1)}
    elif "TARGET_INFO_CUDA_GPU" in ex.tables:
        table, fields = "TARGET_INFO_CUDA_GPU", {
            "device_id": ("deviceId" if "deviceId" in ex.cols("TARGET_INFO_CUDA_GPU") else "id", 1),
            "name": ("name", None), "sm_count": ("numMultiprocessors", 1),
            "memory_bandwidth_bytes_per_s": ("globalMemoryBandwidth", 1000),
            "memory_bytes": ("totalGlobalMem" if "totalGlobalMem" in ex.cols("TARGET_INFO_CUDA_GPU") else "totalMemory", 1),
            "clock_rate_khz": ("coreClockRate", 1), "cc_major": ("computeCapabilityMajor", 1),
            "cc_minor": ("computeCapabilityMinor", 1)}
    else:
        return schema.empty("gpus"), None
    have = set(ex.cols(table))
    rows, unknown = [], {}
    for rec in ex.con.execute(f"SELECT * FROM {table}").fetchall():
        raw = dict(zip(ex.cols(table), rec))
        row = {}
        for out, (col, scale) in fields.items():
            v = raw.get(col) if col in have else None
            row[out] = _text(v) if scale is None else _scaled(v, scale)
            lo, hi, what = GPU_LIMITS.get(out, (None, None, None))
            if what and col in have and not (row[out] is not None and lo <= row[out] <= hi):
                row[out] = None
                unknown[what] = unknown.get(what, 0) + 1
        cc = None if row["cc_major"] is None else f"{row['cc_major']}.{row['cc_minor'] or 0}"
        rows.append({**row, "compute_capability": cc})
    ex.notes += [{"frame": "gpus", "reason": f"{what} missing or implausible (unknown)", "rows": n, "action": "kept"}
                 for what, n in unknown.items()]
    frame = pl.DataFrame(rows, schema={**schema.FRAMES["gpus"], "cc_major": pl.Int64, "cc_minor": pl.Int64}, orient="row") \
        if rows else schema.empty("gpus")
    return frame.unique("device_id", keep="first", maintain_order=True), table


def _text(value) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None if value is None else str(value)


def _scaled(value, scale: float) -> int | None:
    """`value` x `scale` as an integer within Int64, or None where it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = int(round(value * scale))
    except (OverflowError, ValueError):  # inf, nan
        return None
    return out if -(2**63) <= out < 2**63 else None


def read_threads(ex: _Export) -> pl.DataFrame:
    wanted = {"globalTid": "global_tid", "nameId": "name_id"}
    df = ex.read(f"SELECT {', '.join(ex.pick('ThreadNames', 't', wanted))} FROM ThreadNames AS t")
    df = _with_nulls(ex.name(df, "name_id", "thread_name", label="nameId", of="threads"),
                     list(wanted.values())).with_columns(*_split_tid())
    if "PROCESSES" in ex.tables and {"globalPid", "name"} <= set(ex.cols("PROCESSES")):
        procs = ex.read("SELECT p.globalPid AS global_pid, p.name AS process_name FROM PROCESSES AS p")
        procs = procs.with_columns(pl.col("global_pid").cast(pl.Int64, strict=False), pl.col("process_name").cast(pl.Utf8))
        df = df.join(procs.unique("global_pid", keep="first"), on="global_pid", how="left", maintain_order="left")
    else:
        df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("process_name"))
    return df.unique("global_tid", keep="first", maintain_order=True)


def read_meta(ex: _Export) -> dict[str, str]:
    """Export metadata key-values, plus nsys_version and schema_version when stated."""
    meta: dict[str, str] = {}
    for table in ("META_DATA_EXPORT", "EXPORT_META_DATA", "META_DATA_CAPTURE"):
        if table in ex.tables and {"name", "value"} <= set(ex.cols(table)):
            for name, value in ex.con.execute(f"SELECT name, value FROM {table}"):
                meta.setdefault(str(name), "" if value is None else str(value))
    for key, src in (("nsys_version", "EXPORT_PRODUCT_VERSION"), ("schema_version", "EXPORT_SCHEMA_VERSION")):
        if src in meta:
            meta[key] = meta[src]
    return meta


READERS = {"kernels": read_kernels, "runtime": read_runtime, "memcpys": read_memcpys, "memsets": read_memsets,
           "syncs": read_syncs, "nvtx": read_nvtx, "threads": read_threads}


def _frame(name: str, ex: _Export, columns: tuple[str, ...] | None) -> pl.DataFrame:
    """Frame `name` as the schema declares it, in one contiguous chunk: connectorx returns
    dozens of chunks, and every later gather, join or sort over chunked columns is slower
    (a random gather of the 2.4M runtime rows at 1M kernels: 41 ms chunked, 11 ms not;
    the rechunk itself takes ~50 ms, once)."""
    frame = READERS[name](ex, columns) if name == "kernels" else READERS[name](ex)
    ints = [c for c, t in schema.FRAMES[name].items() if t == pl.Int64 and c in frame.columns]
    frame = frame.with_columns(_integer(frame, c).alias(c) for c in ints if not frame.schema[c].is_integer())
    return schema.conform(name, frame, columns).rechunk()


def _check_columns(ex: _Export) -> None:
    """Raise TraceFileError naming a table that lacks a column every export has (REQUIRED)."""
    for table, needed in REQUIRED.items():
        if table in ex.tables:
            absent = [c for c in needed if c not in ex.cols(table)]
            if absent:
                raise TraceFileError(f"{ex.path}: table {table} has no column {', '.join(absent)}, which every "
                                     "Nsight Systems export has", REEXPORT)


def _lookups_missing(ex: _Export, frames: dict[str, pl.DataFrame]) -> list[MissingData]:
    """A MissingData for each naming table (LOOKUPS) absent (or without its columns) where
    the frame it names has rows."""
    out = []
    if not any(t in ex.tables for t in ("META_DATA_EXPORT", "EXPORT_META_DATA")):
        out.append(MissingData("export metadata", "META_DATA_EXPORT (or EXPORT_META_DATA)",
                               f"the nsys version and export options are unknown; {REEXPORT}"))
    for lk in LOOKUPS:
        present = "StringIds" in ex.tables if lk.table == "StringIds" else ex.has_enum(lk.table)
        f = frames.get(lk.frame)
        if not present and f is not None and f.height:
            out.append(MissingData(lk.what, lk.table, f"{lk.shown}; {REEXPORT}"))
        elif present and lk.table != "StringIds" and "name" not in ex.cols(lk.table) and f is not None and f.height:
            # named by the label column instead ("Device", not "CUDA_MEMOPR_MEMORY_KIND_DEVICE"):
            # the same rows and numbers under other words, which a diff against a whole export shows
            out.append(MissingData(f"{lk.what} names", lk.table,
                                   f"{lk.what} are shown by the table's label column instead; {REEXPORT}", column="name"))
    return out


def _processes(ex: _Export) -> frozenset[int]:
    """The global process ids PROCESSES lists (empty where it lists none)."""
    if "PROCESSES" not in ex.tables or "globalPid" not in ex.cols("PROCESSES"):
        return frozenset()
    return frozenset(v for (v,) in ex.con.execute("SELECT globalPid FROM PROCESSES") if isinstance(v, int))


def read_capture(ex: _Export, meta: dict[str, str]) -> tuple[int, int] | None:
    """(first, last) ns of the capture on the events' clock: 0 to ANALYSIS_DETAILS.duration
    (events are stamped from the session start), widened by 1% (at least 1 ms) at the end.
    None where the export does not state it, or its times were normalized or shifted."""
    if "ANALYSIS_DETAILS" not in ex.tables or "duration" not in ex.cols("ANALYSIS_DETAILS"):
        return None
    if meta.get("EXPORT_PARAM_TIME_NORMALIZE", "false").lower() != "false" or any(
            meta.get(k, "0").strip() not in ("0", "") for k in ("EXPORT_PARAM_TIME_SHIFT", "EXPORT_CONFIG_TIME_SHIFT")):
        return None
    durations = [d for (d,) in ex.con.execute("SELECT duration FROM ANALYSIS_DETAILS") if isinstance(d, int) and d > 0]
    if len(durations) != 1:
        return None
    return 0, durations[0] + max(durations[0] // 100, 1_000_000)


def integrity_problem(path: Path) -> str | None:
    """SQLite's own check of the export's pages and indexes (`PRAGMA quick_check`): None where
    it passes, else its first complaint. A damaged page in a table the frames never read, or
    an index that disagrees with its table, reads without an error: only this finds it. On its
    own connection, so it runs beside the frame reads (1.2 s alone on a 191 MB export with 1M
    kernels; see benchmarks/RESULTS.md for what it adds to a load)."""
    con = connect(path)
    try:
        return quick_check(con)
    finally:
        con.close()


def quick_check(con: sqlite3.Connection) -> str | None:
    rows = con.execute("PRAGMA quick_check(1)").fetchall()
    first = str(rows[0][0]) if rows and rows[0] else "no answer"
    return None if first == "ok" else first


def read_export(path: Path, columns: dict[str, tuple[str, ...]] | None = None
                ) -> tuple[dict[str, pl.DataFrame], dict[str, str], tuple[MissingData, ...]]:
    """All frames of the export at `path`, its metadata, and what it lacks.

    `columns`: {frame: schema columns} to load only those columns of a frame (the others
    are absent from it, not null); frames not named are whole. The kernels are read in a
    second thread while the other frames are read here (~0.2 s less at 1M kernels on 2
    cores; connectorx holds the GIL for part of its work, so not twice as fast).
    Impossible rows are dropped and counted (decodeprof.load.validate, in meta); an export
    whose core frames are mostly impossible, lacks a column every export has, or fails
    SQLite's integrity check (`integrity_problem`, run beside the reads) raises TraceFileError."""
    columns = columns or {}
    ex = _Export(path)
    try:
        _check_columns(ex)
        frames: dict[str, pl.DataFrame] = {}
        missing: list[MissingData] = []
        kernels = None
        with ThreadPoolExecutor(2) as pool:
            # an export with a write-ahead log is already a copy in memory: checked there, after
            # the reads, rather than copied a second time
            checked = None if has_log(path) else pool.submit(integrity_problem, path)
            if SOURCES["kernels"].table in ex.tables:
                ex.strings()  # read once, here: the thread only looks names up
                ex.cols(SOURCES["kernels"].table)  # the catalogue is read on this thread
                kernels = pool.submit(_frame, "kernels", ex, columns.get("kernels"))
            for name in READERS:
                src = SOURCES[name]
                if src.table not in ex.tables:
                    frames[name] = schema.conform(name, schema.empty(name), columns.get(name))
                    missing.append(MissingData(name, src.table, src.fix))
                elif name == "kernels":
                    frames[name] = None  # keeps the frame order; filled below
                else:
                    frames[name] = _frame(name, ex, columns.get(name))
            if kernels is not None:
                frames["kernels"] = kernels.result()
        problem = checked.result() if checked is not None else quick_check(ex.con)
        if problem:
            raise TraceFileError(f"{path}: fails SQLite's integrity check ({problem[:300]})",
                                 "the file is damaged: export it again with `nsys export --type sqlite`")
        gpus, gpu_table = read_gpus(ex)
        frames["gpus"] = schema.conform("gpus", gpus, columns.get("gpus"))
        if gpu_table is None:
            missing.append(MissingData("gpus", "TARGET_INFO_GPU (or TARGET_INFO_CUDA_GPU)", SOURCES["gpus"].fix))
        lookups = _lookups_missing(ex, frames)
        meta = read_meta(ex)
        named = frozenset(c for c, t in (("copy_kind", "ENUM_CUDA_MEMCPY_OPER"), ("src_kind", "ENUM_CUDA_MEM_KIND"),
                                         ("dst_kind", "ENUM_CUDA_MEM_KIND"), ("sync_type", "ENUM_CUPTI_SYNC_TYPE"),
                                         ("event_kind", "ENUM_NSYS_EVENT_TYPE")) if ex.has_enum(t))
        before = {n: f.height for n, f in frames.items()}
        frames, dropped = drop_impossible(frames, capture=read_capture(ex, meta), named=named,
                                          processes=_processes(ex))
        order = list(READERS)
        notes = sorted(ex.notes, key=lambda d: (order.index(d["frame"]) if d["frame"] in order else len(order), d["reason"]))
        refused = check_refusal(before, frames, notes + dropped) or check_sums(frames)
        if refused:
            raise TraceFileError(f"{path}: {refused}", REEXPORT)
        return frames, {**meta, **to_meta(notes + dropped)}, tuple(missing + lookups)
    except sqlite3.DatabaseError as exc:
        raise TraceFileError(f"{path}: cannot read the export ({exc})",
                             "the file may be damaged: export it again with `nsys export --type sqlite`") from exc
    finally:
        ex.con.close()
