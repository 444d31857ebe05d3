"""Fault campaign: mutate the committed fixtures, run every command on each, classify each run.

    .venv/bin/python scripts/fault_campaign.py              # the full set (a few minutes on 2 cores)
    .venv/bin/python scripts/fault_campaign.py --quick      # a sample (what tests/test_fault_campaign.py runs)
    .venv/bin/python scripts/fault_campaign.py --jobs 2 --seed 7 --only sqlite-null --list

Each mutation copies a fixture run folder (and a second, intact one for `report` and `diff`)
into its own temporary folder, damages one thing (an export's rows, tables, columns or bytes;
an ncu CSV; metrics.json / run.json; the folder's name; a flag) and runs decodeprof commands
on it in subprocesses, with a timeout, every input file hashed before and after. Each run is
one of:

  ok-equal      exit 0, the same result as the intact input
  ok-warned     exit 0, a different result, and a new warning naming what was dropped
  ok-shown      exit 0 on unusual but valid input (names, paths, flags) shown as written
  clean-error   non-zero exit with an error line and no traceback
failures:
  traceback     a Python traceback or a Rust panic (or death by a signal)
  hang          no exit within --timeout seconds
  input-modified an input file changed, appeared or vanished (or a file was left in HOME/TMPDIR)
  silent-false  exit 0, a result that differs from the intact one, and no new warning
  raw-escape    control characters from the trace reached the terminal
  markup-eaten  text in brackets ("[old]") missing from what was printed

Results are compared after the case folder's path is replaced by one placeholder (case and
intact folders have names of equal length, so wrapping is the same). Exit status: 1 when any
run failed.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
# fixture -> (folder, the intact run `report` and `diff` compare it with)
FIXTURES = {
    "h200-baseline": ("h200/baseline", "h200/graph"),
    "h200-graph": ("h200/graph", "h200/baseline"),
    "h100-graph": ("h100/graph", "h100/baseline"),
    "gptfast": ("foreign/gptfast", "foreign/gptfast_compiled"),
}
COPIED = ("trace.sqlite", "metrics.json", "metrics.unprofiled.json", "run.json", "ncu.csv", "generation.json")
FAILURES = ("traceback", "hang", "input-modified", "silent-false", "raw-escape", "markup-eaten")
EVERY_COMMAND = ("paths", "flags")  # families whose mutations run each of their commands
OUTCOMES = ("ok-equal", "ok-warned", "ok-shown", "clean-error", *FAILURES)
WARNING = re.compile(r"row\(s\) (?:dropped|kept)|\bdropped:|\bmissing:|\babsent\)|\bwarning\b|unreadable|not read\b"
                     r"|\bignored\b|outside the capture", re.I)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|panicked at|^thread '.*' panicked", re.M)
GENERATED = re.compile(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC")  # the report's date line
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # chart ids, new each run
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# ---------------------------------------------------------------- mutations


@dataclass(frozen=True)
class Mutation:
    """One damaged input: `apply(run)` changes the copied run folder `run` in place (or
    returns the folder to use instead); `commands` are the COMMANDS keys to run on it.
    `expect`: "equal" (damage: the intact result, a warning or an error) or "shown" (valid
    but unusual input: any exit-0 result, `marker` printed as written)."""

    family: str
    name: str
    fixture: str
    apply: Callable[[Path], Path | None]
    commands: tuple[str, ...] = ()
    expect: str = "equal"
    marker: str | None = None
    extra: tuple[str, ...] = ()  # flags added to each command line

    @property
    def id(self) -> str:
        return f"{self.family}/{self.name.replace(' ', '')}@{self.fixture}"


def _db(run: Path) -> Path:
    return run / "trace.sqlite"


def _unlock(db: Path, tables: tuple[str, ...]) -> None:
    """Drop the NOT NULL constraints of `tables` (nsys declares them; damage ignores them)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA writable_schema=ON")
    for t in tables:
        con.execute("UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE type = 'table' AND name = ?", (t,))
    version = con.execute("PRAGMA schema_version").fetchone()[0]
    con.execute(f"PRAGMA schema_version = {version + 1}")
    con.execute("PRAGMA writable_schema=OFF")
    con.commit()
    con.close()


def sql(*statements: str, unlock: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """Run `statements` on the copied export (NOT NULL lifted from `unlock` first)."""

    def apply(run: Path) -> None:
        if unlock:
            _unlock(_db(run), unlock)
        con = sqlite3.connect(_db(run))
        for s in statements:
            con.execute(s)
        con.commit()
        con.close()

    return apply


K, R, M, N, S = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_MEMCPY",
                 "NVTX_EVENTS", "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION")
ROW = "rowid IN (SELECT rowid FROM {t} ORDER BY rowid LIMIT 1 OFFSET (SELECT count(*) / 2 FROM {t}))"
I62, I63 = 2**62, 2**63 - 1


def _short(table: str) -> str:
    return {N: "nvtx", S: "sync"}.get(table, table.split("_")[-1].lower())


def set_row(table: str, assign: str, where: str | None = None) -> Callable[[Path], None]:
    where = where or ROW.format(t=table)
    return sql(f'UPDATE {table} SET {assign} WHERE {where}', unlock=(table,))


def _sqlite_mutations(rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []

    def add(family: str, name: str, apply, fixtures=("h200-baseline",), **kw) -> None:
        out.extend(Mutation(family, name, f, apply, **kw) for f in fixtures)

    both = ("h200-baseline", "h200-graph")
    # NULL where nsys never leaves one
    for table, cols in ((K, ("start", "end", "deviceId", "streamId", "correlationId", "globalPid", "shortName",
                             "demangledName", "gridX", "registersPerThread", "staticSharedMemory")),
                        (R, ("start", "end", "globalTid", "correlationId", "nameId")),
                        (M, ("start", "end", "bytes", "copyKind", "srcKind", "dstKind", "deviceId", "streamId")),
                        (N, ("start", "end", "eventType", "globalTid", "textId")),
                        (S, ("start", "end", "deprecatedSyncType", "streamId"))):
        for c in cols:
            add("sqlite-null", f"{_short(table)}.{c}", set_row(table, f'"{c}" = NULL'))
    add("sqlite-null", "kernel.start-many", sql(f'UPDATE {K} SET start = NULL WHERE rowid % 7 = 3', unlock=(K,)))
    add("sqlite-null", "stringids.value", sql("UPDATE StringIds SET value = NULL WHERE id = "
                                              f"(SELECT shortName FROM {K} LIMIT 1)", unlock=("StringIds",)))
    add("sqlite-null", "gpu.memoryBandwidth", sql("UPDATE TARGET_INFO_GPU SET memoryBandwidth = NULL"))
    add("sqlite-null", "gpu.smCount", sql("UPDATE TARGET_INFO_GPU SET smCount = NULL"))
    add("sqlite-null", "threadnames.nameId", sql("UPDATE ThreadNames SET nameId = NULL", unlock=("ThreadNames",)))
    # negative values
    for table, assign in ((K, "start = -1"), (K, '"end" = -1'), (K, "start = -1000000000000"), (R, "start = -1"),
                          (M, "bytes = -1"), (M, f"bytes = -{I62}"), (K, "deviceId = -1"), (K, "streamId = -1"),
                          (K, "gridX = -1"), (K, "registersPerThread = -5"), (K, "staticSharedMemory = -1"),
                          (N, f"start = -{I62}")):
        add("sqlite-negative", f"{_short(table)}.{assign}", set_row(table, assign))
    # huge values
    for table, assign in ((K, f"start = {I62}"), (K, f'"end" = {I62}'), (K, f'"end" = {I63}'), (K, f"start = {I63}"),
                          (R, '"end" = 4600000000000000000'), (M, f"bytes = {I62}"), (M, f"bytes = {I63}"),
                          (K, f"deviceId = {I62}"), (K, f"streamId = {I63}"), (K, f"correlationId = {I62}"),
                          (K, f"gridX = {I62}"), (K, "registersPerThread = 1099511627776"), (N, f'"end" = {I62}'),
                          (S, f'"end" = {I62}'), (R, f"globalTid = {I63}")):
        add("sqlite-huge", f"{_short(table)}.{assign}", set_row(table, assign))
    add("sqlite-huge", "memcpy.bytes-all-2^62", sql(f"UPDATE {M} SET bytes = {I62}"))
    add("sqlite-huge", "gpu.memoryBandwidth", sql(f"UPDATE TARGET_INFO_GPU SET memoryBandwidth = {I63}"))
    add("sqlite-huge", "gpu.clockRate", sql(f"UPDATE TARGET_INFO_GPU SET clockRate = {I62}, smCount = 0"))
    # values past 64 bits (SQLite stores them as REAL)
    for table, assign in ((K, "start = 1e30"), (K, '"end" = 9.3e18'), (M, "bytes = 1e300"), (K, '"end" = 9e999'),
                          (R, "start = -9e999"), (K, "start = start + 0.5")):
        add("sqlite-overflow", f"{_short(table)}.{assign}", set_row(table, assign))
    # order: ends before starts
    for table in (K, R, M, N, S):
        t = _short(table)
        add("sqlite-order", f"{t}.swap", set_row(table, 'start = "end", "end" = start'))
        add("sqlite-order", f"{t}.end-before-start", set_row(table, '"end" = start - 1000'))
    add("sqlite-order", "kernel.swap-many", sql(f'UPDATE {K} SET start = "end", "end" = start WHERE rowid % 5 = 0'))
    # duplicate rows
    for table, where in ((K, ROW.format(t=K)), (K, "1"), (R, "1"), (M, "1"), (N, "1"), (S, "1")):
        add("sqlite-duplicate", f"{_short(table)}.{'one' if where != '1' else 'all'}",
            sql(f"INSERT INTO {table} SELECT * FROM {table} WHERE {where}"))
    add("sqlite-duplicate", "threadnames.all", sql("INSERT INTO ThreadNames SELECT * FROM ThreadNames"))
    # whole tables gone
    for table in ("StringIds", "ENUM_CUDA_MEM_KIND", "ENUM_CUDA_MEMCPY_OPER", "ENUM_NSYS_EVENT_TYPE",
                  "ENUM_CUPTI_SYNC_TYPE", "TARGET_INFO_GPU", K, R, N, M, S, "ThreadNames", "PROCESSES",
                  "META_DATA_EXPORT", "ANALYSIS_DETAILS"):
        add("sqlite-drop-table", table, sql(f"DROP TABLE {table}"), fixtures=both)
    # renamed columns
    for table, cols in ((K, ("start", "end", "deviceId", "streamId", "correlationId", "shortName", "globalPid")),
                        (R, ("start", "end", "nameId", "globalTid", "correlationId")),
                        (M, ("srcKind", "copyKind", "bytes")), (N, ("text", "textId", "eventType", "end")),
                        ("StringIds", ("value", "id")), ("ENUM_CUDA_MEM_KIND", ("name",)), (S, ("deprecatedSyncType",))):
        for c in cols:
            add("sqlite-rename-column", f"{_short(table)}.{c}",
                sql(f'ALTER TABLE {table} RENAME COLUMN "{c}" TO "{c}_renamed"'))
    # TEXT / BLOB / REAL where integers belong
    for table, assign in ((K, "start = 'abc'"), (K, "\"end\" = x'00ff'"), (K, "deviceId = 'gpu0'"),
                          (K, "streamId = 1.5"), (K, "correlationId = 'x'"), (K, "shortName = 'name'"),
                          (R, "nameId = x'01'"), (R, "globalTid = 'abc'"), (M, "bytes = '1kB'"), (M, "copyKind = 'HTOD'"),
                          (N, "eventType = 'x'"), (N, "textId = 'abc'"), (N, "start = 1.5")):
        add("sqlite-type", f"{_short(table)}.{assign}", set_row(table, assign))
    add("sqlite-type", "kernel.start-text-all", sql(f"UPDATE {K} SET start = 'x' || start"))
    # unknown enum values
    for table, assign in ((M, "copyKind = 99"), (M, "srcKind = 99"), (M, "dstKind = 77"), (M, "srcKind = -1"),
                          (N, "eventType = 9999"), (S, "deprecatedSyncType = 42"), (S, "syncType = 42")):
        add("sqlite-enum", f"{_short(table)}.{assign}", set_row(table, assign))
    add("sqlite-enum", "memcpy.srcKind-all-99", sql(f"UPDATE {M} SET srcKind = 99"), fixtures=both)
    add("sqlite-enum", "mem-kind-pageable-row-gone", sql("DELETE FROM ENUM_CUDA_MEM_KIND WHERE id = 0"))
    # ids absent from StringIds
    add("sqlite-ids", "kernel.shortName", set_row(K, "shortName = 987654321"))
    add("sqlite-ids", "kernel.demangledName-all", sql(f"UPDATE {K} SET demangledName = 987654321"))
    add("sqlite-ids", "runtime.nameId", set_row(R, "nameId = 987654321"))
    add("sqlite-ids", "runtime.nameId-launches", sql(f"UPDATE {R} SET nameId = 987654321 WHERE nameId IN "
                                                     "(SELECT id FROM StringIds WHERE value LIKE 'cudaLaunchKernel%')"))
    add("sqlite-ids", "nvtx.textId-step", sql(f"UPDATE {N} SET textId = 987654321 WHERE textId IN "
                                              "(SELECT id FROM StringIds WHERE value = 'step')"))
    add("sqlite-ids", "threadnames.nameId", sql("UPDATE ThreadNames SET nameId = 987654321"))
    add("sqlite-ids", "stringids.kernel-name-gone",
        sql(f"DELETE FROM StringIds WHERE id = (SELECT shortName FROM {K} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"))
    # names that are valid but hostile to a terminal or a markup parser: shown as written
    top = f"(SELECT shortName FROM {K} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
    def named(text: str):
        return lambda run: _bind(run, f"UPDATE StringIds SET value = ? WHERE id = {top}", text)

    for name, text, marker in (("escape", "gemv\x1b[2J\x1b]0;pwned\x07\x1b[31mred", None),
                               ("markup", "gemv[red]x[/]", "[red]x[/]"), ("old", "gemv[old]", "[old]"),
                               ("nul", "gemv\x00tail", None), ("newline", "gemv\nnext line", None),
                               ("long", "k" * 100_000, None), ("unicode", "gemv\u202eevil\u200b\U0001F600", None)):
        add("names", f"kernel.{name}", named(text), expect="shown", marker=marker)
    add("names", "kernel.non-utf8", sql(f"UPDATE StringIds SET value = CAST(x'67656d76ff' AS TEXT) WHERE id = {top}"),
        expect="shown")
    add("names", "kernel.blob", sql(f"UPDATE StringIds SET value = x'67656d76' WHERE id = {top}"), expect="shown")
    add("names", "nvtx.markup-range", lambda run: _bind(
        run, f"INSERT INTO {N} (start, \"end\", eventType, text, globalTid, domainId) SELECT start + 10, start + 20, "
        f"eventType, ?, globalTid, domainId FROM {N} WHERE eventType = 59 LIMIT 1", "[bold]x[/][old]\x1b[31m"),
        expect="shown", marker="[old]")
    add("names", "gpu.markup", lambda run: _bind(run, "UPDATE TARGET_INFO_GPU SET name = ?", "H200 [old] [red]x[/] \x1b[31m"),
        expect="shown")
    add("names", "table.non-utf8-name", _non_utf8_table, expect="shown")
    # timestamps outside the capture
    span = "(SELECT duration FROM ANALYSIS_DETAILS)"
    add("sqlite-time", "kernel.after-capture", set_row(K, f"start = start + 10 * {span}, \"end\" = \"end\" + 10 * {span}"))
    add("sqlite-time", "kernel.long", set_row(K, f"\"end\" = start + 10 * {span}"))
    add("sqlite-time", "runtime.absurd-end", set_row(R, '"end" = 4611686018427387904'))
    add("sqlite-time", "nvtx.step-far-end", sql(f"UPDATE {N} SET \"end\" = 4000000000000000000 WHERE rowid = "
                                                f"(SELECT max(rowid) FROM {N})"))
    add("sqlite-time", "all-kernels-shifted", sql(f"UPDATE {K} SET start = start + 1000000000000000000, "
                                                  "\"end\" = \"end\" + 1000000000000000000"))
    # many NVTX ranges
    add("scale", "nvtx-5000-overlapping", _overlapping(5000), expect="shown")
    add("scale", "nvtx-5000-overlapping-wide", _overlapping(5000, None), expect="shown")
    add("scale", "nvtx-5000-nested", _nested(5000), expect="shown")
    add("scale", "nvtx-200000-overlapping", _overlapping(200_000), expect="shown")
    return out


def _bind(run: Path, statement: str, *params) -> None:
    con = sqlite3.connect(_db(run))
    con.execute(statement, params)
    con.commit()
    con.close()


def _non_utf8_table(run: Path) -> None:
    """A table whose name is not UTF-8 (written into the schema as raw bytes)."""
    con = sqlite3.connect(_db(run))
    con.execute("CREATE TABLE odd_name (x INTEGER)")
    con.commit()
    con.execute("PRAGMA writable_schema=ON")
    con.execute("UPDATE sqlite_master SET name = CAST(x'74ff' AS TEXT), tbl_name = CAST(x'74ff' AS TEXT), "
                "sql = 'CREATE TABLE \"' || CAST(x'74ff' AS TEXT) || '\" (x INTEGER)' WHERE name = 'odd_name'")
    version = con.execute("PRAGMA schema_version").fetchone()[0]
    con.execute(f"PRAGMA schema_version = {version + 1}")
    con.commit()
    con.close()


def _overlapping(n: int, depth: int | None = 20) -> Callable[[Path], None]:
    """`n` start/end ranges on the main thread over the decode, each starting a little after
    the one before and overlapping the next `depth` (None: lasting half the decode, so each
    overlaps every other): overlapping, never nested."""

    def apply(run: Path) -> None:
        con = sqlite3.connect(_db(run))
        lo, hi, tid = con.execute(f"SELECT min(start), max(\"end\"), globalTid FROM {N} WHERE eventType = 59").fetchone()
        step = max((hi - lo) // (2 * n), 1)
        length = (hi - lo) // 2 if depth is None else depth * step
        con.executemany(f"INSERT INTO {N} (start, \"end\", eventType, text, globalTid) VALUES (?, ?, 60, ?, ?)",
                        ((lo + i * step, lo + i * step + length, f"overlap{i % 50}", tid) for i in range(n)))
        con.commit()
        con.close()

    return apply


def _nested(n: int) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        con = sqlite3.connect(_db(run))
        lo, hi, tid = con.execute(f"SELECT min(start), max(\"end\"), globalTid FROM {N} WHERE eventType = 59").fetchone()
        con.executemany(f"INSERT INTO {N} (start, \"end\", eventType, text, globalTid) VALUES (?, ?, 59, ?, ?)",
                        ((lo + i, hi - i, f"level{i % 50}", tid) for i in range(n)))
        con.commit()
        con.close()

    return apply


def _file_mutations(rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []

    def add(name: str, apply, **kw) -> None:
        out.append(Mutation("sqlite-file", name, "h200-baseline", apply, **kw))

    def truncate(size_of: Callable[[int], int]):
        def apply(run: Path) -> None:
            db = _db(run)
            with open(db, "r+b") as f:
                f.truncate(size_of(db.stat().st_size))
        return apply

    def overwrite(offset_of: Callable[[int], int], data: bytes):
        def apply(run: Path) -> None:
            db = _db(run)
            with open(db, "r+b") as f:
                f.seek(offset_of(db.stat().st_size))
                f.write(data)
        return apply

    for label, size in (("0", lambda s: 0), ("50", lambda s: 50), ("100", lambda s: 100), ("4096", lambda s: 4096),
                        ("half", lambda s: s // 2), ("minus-1", lambda s: s - 1), ("minus-page", lambda s: s - 4096)):
        add(f"truncate-{label}", truncate(size))
    garbage = bytes(rng.randrange(256) for _ in range(4096))
    for label, offset, data in (("magic", lambda s: 0, b"SQLite format 4"), ("page-size", lambda s: 16, b"\x00\x03"),
                                ("page-count", lambda s: 28, b"\x7f\xff\xff\xff"), ("schema", lambda s: 100, garbage[:512]),
                                ("page-2", lambda s: 4096, garbage), ("middle", lambda s: s // 2 + 100, garbage[:700]),
                                ("last-page", lambda s: s - 4096, garbage), ("zero-page-5", lambda s: 4 * 4096, bytes(4096)),
                                ("zero-page-40", lambda s: 39 * 4096, bytes(4096)),
                                ("zero-page-mid", lambda s: (s // 8192) * 4096, bytes(4096))):
        add(f"garbage-{label}", overwrite(offset, data))

    def wal(keep_log: bool):
        def apply(run: Path) -> None:
            db, log = _db(run), Path(f"{_db(run)}-wal")
            con = sqlite3.connect(db)
            con.execute("PRAGMA journal_mode=WAL")
            con.close()
            if not keep_log:
                return
            before = db.read_bytes()
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_autocheckpoint=0")
            con.execute(f"DELETE FROM {K} WHERE rowid = (SELECT max(rowid) FROM {K})")  # a change only the log holds
            con.commit()
            frames = log.read_bytes()
            con.close()  # checkpoints into the file and deletes the log: put both back as they were
            db.write_bytes(before)
            log.write_bytes(frames)
        return apply

    add("wal-mode", wal(False))
    add("wal-with-log", wal(True), expect="shown")
    add("wal-garbage-log", lambda run: Path(f"{_db(run)}-wal").write_bytes(garbage))
    add("stray-shm", lambda run: Path(f"{_db(run)}-shm").write_bytes(bytes(32768)))
    add("journal-left", lambda run: Path(f"{_db(run)}-journal").write_bytes(garbage))
    add("folder-not-file", _replaced(_db, Path.mkdir))
    add("symlink-loop", _replaced(_db, lambda p: p.symlink_to(p.name)))
    add("fifo", _replaced(_db, os.mkfifo))
    add("not-nsys", sql(*(f"DROP TABLE \"{t}\"" for t in _nsys_tables())))
    add("page-size-64k", lambda run: _vacuum(run, "PRAGMA page_size = 65536"))
    add("auto-vacuum", lambda run: _vacuum(run, "PRAGMA auto_vacuum = FULL"))
    return out


def _replaced(which: Callable[[Path], Path], make: Callable[[Path], object]) -> Callable[[Path], None]:
    """Remove the file `which(run)` and make something else under its name."""

    def apply(run: Path) -> None:
        which(run).unlink()
        make(which(run))

    return apply


def _nsys_tables() -> tuple[str, ...]:
    return ("StringIds", "META_DATA_EXPORT", "NVTX_EVENTS", "ThreadNames", K, R, "TARGET_INFO_GPU")


def _vacuum(run: Path, pragma: str) -> None:
    con = sqlite3.connect(_db(run))
    con.execute(pragma)
    con.execute("VACUUM")
    con.close()


def _text_mutations(rng: random.Random) -> list[Mutation]:
    """ncu CSVs (details page: h200-graph; raw page: h100-graph)."""
    out: list[Mutation] = []

    def edit(fn: Callable[[str], str]):
        def apply(run: Path) -> None:
            p = run / "ncu.csv"
            p.write_text(fn(p.read_text(encoding="utf-8", errors="surrogateescape")), encoding="utf-8",
                         errors="surrogateescape")
        return apply

    def raw(fn: Callable[[bytes], bytes]):
        def apply(run: Path) -> None:
            p = run / "ncu.csv"
            p.write_bytes(fn(p.read_bytes()))
        return apply

    def header_index(text: str) -> int:
        lines = text.splitlines(keepends=True)
        return next(i for i, ln in enumerate(lines) if ln.startswith('"ID"'))

    def on_lines(fn: Callable[[list[str], int], None]):
        def inner(text: str) -> str:
            lines = text.splitlines(keepends=True)
            fn(lines, header_index(text))
            return "".join(lines)
        return edit(inner)

    def drop_column(name: str):
        def fn(lines: list[str], h: int) -> None:
            import csv
            import io
            rows = list(csv.reader(io.StringIO("".join(lines[h:]))))
            if name not in rows[0]:
                return
            i = rows[0].index(name)
            buf = io.StringIO()
            csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([r[:i] + r[i + 1:] for r in rows])
            lines[h:] = buf.getvalue().splitlines(keepends=True)
        return fn

    def set_cell(value: str, column: str | None = None):
        """Put `value` in one kernel row's `column` (default: its last cell)."""
        def fn(lines: list[str], h: int) -> None:
            import csv
            header = next(csv.reader([lines[h]]))
            i = h + 2 + (len(lines) - h - 2) // 2
            cells = next(csv.reader([lines[i]]))
            j = header.index(column) if column in header else len(cells) - 1
            cells[j] = value
            lines[i] = ",".join('"' + c.replace('"', '""') + '"' for c in cells) + "\n"
        return fn

    for fixture in ("h200-graph", "h100-graph"):
        def add(name: str, apply, **kw) -> None:
            out.append(Mutation("ncu-csv", name, fixture, apply, commands=("json", "report"), **kw))

        add("nul-bytes", raw(lambda b: b[: len(b) // 2] + b"\x00" * 16 + b[len(b) // 2:]))
        add("nul-first", raw(lambda b: b"\x00" + b))
        add("field-128k", on_lines(set_cell("9" * 131072)))
        add("name-128k", on_lines(set_cell("k" * 131072, "Kernel Name")), expect="shown")
        add("value-1e400", on_lines(set_cell("1e400")))
        add("value-minus-1e400", on_lines(set_cell("-1e400")))
        add("value-nan", on_lines(set_cell("nan")))
        add("value-1e308", on_lines(set_cell("1.7e308")))
        add("duplicate-header", on_lines(lambda ls, h: ls.insert(h + 2, ls[h])))
        add("duplicate-columns", on_lines(lambda ls, h: ls.__setitem__(h, ls[h].rstrip("\n") + "," + ls[h])))
        add("no-metric-value", on_lines(drop_column("Metric Value")))
        add("no-kernel-name", on_lines(drop_column("Kernel Name")))
        add("no-id", on_lines(drop_column("ID")))
        add("no-unit", on_lines(drop_column("Metric Unit")))
        add("truncated-in-quote", raw(lambda b: b[: len(b) * 2 // 3] + b'"abc'))
        add("non-utf8", raw(lambda b: b.replace(b"Kernel", b"Kern\xffel", 3)))
        add("empty", raw(lambda b: b""))
        add("header-only", edit(lambda t: "".join(t.splitlines(keepends=True)[: header_index(t) + 1])))
        add("crlf", raw(lambda b: b.replace(b"\n", b"\r\n")))
        add("bom", raw(lambda b: b"\xef\xbb\xbf" + b))
        add("id-huge", on_lines(set_cell("99999999999999999999999", "ID")))
        add("kernel-escape", raw(lambda b: b.replace(b'"void ', b'"\x1b[31mvoid [old] ', 5)), expect="shown")
        add("not-a-file", _replaced(lambda run: run / "ncu.csv", Path.mkdir))
        add("utf16", raw(lambda b: b.decode("utf-8", "replace").encode("utf-16")))
    return out


def _json_mutations(rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []
    deep = "[" * 100_000 + "]" * 100_000

    def write(name: str, fn: Callable[[dict | None], object | str | bytes]):
        def apply(run: Path) -> None:
            p = run / name
            doc = json.loads(p.read_text()) if p.exists() else None
            value = fn(doc)
            if isinstance(value, bytes):
                p.write_bytes(value)
            else:
                p.write_text(value if isinstance(value, str) else json.dumps(value))
        return apply

    def numbers(value):
        def fn(doc):
            def walk(v):
                if isinstance(v, bool):
                    return v
                if isinstance(v, (int, float)):
                    return value
                if isinstance(v, dict):
                    return {k: walk(x) for k, x in v.items()}
                if isinstance(v, list):
                    return [walk(x) for x in v]
                return v
            return walk(doc)
        return fn

    def patch(path: tuple[str, ...], value):
        def fn(doc):
            node = doc
            for k in path[:-1]:
                if not isinstance(node.get(k), dict):
                    node[k] = {}
                node = node[k]
            node[path[-1]] = value
            return doc
        return fn

    cases = [
        ("list", lambda d: []), ("string", lambda d: "x"), ("null", lambda d: None), ("empty", lambda d: ""),
        ("truncated", lambda d: json.dumps(d)[:100]), ("non-utf8", lambda d: json.dumps(d).encode() + b"\xff"),
        ("deep", lambda d: deep), ("deep-inside", lambda d: json.dumps({**d, "config": {"x": "DEEP"}}).replace('"DEEP"', deep)),
        ("huge", lambda d: {**d, "pad": ["x" * 1000] * 20000}),
        ("zeros", numbers(0)), ("negative", numbers(-1)), ("nan", lambda d: json.dumps(numbers(float("nan"))(d))),
        ("infinity", lambda d: json.dumps(numbers(float("inf"))(d))), ("huge-numbers", numbers(1e308)),
        ("strings", numbers("12")), ("metrics-string", patch(("metrics",), "x")),
        ("decode-ms-string", patch(("metrics", "decode_ms"), "fast")),
        ("decode-median-zero", patch(("metrics", "decode_ms", "median"), 0)),
        ("steps-zero", patch(("config", "steps"), 0)), ("steps-negative", patch(("config", "steps"), -1)),
        ("steps-1e9", patch(("config", "steps"), 1_000_000_000)), ("steps-string", patch(("config", "steps"), "64")),
        ("steps-2^63", patch(("config", "steps"), 2**63)),
        ("weight-bytes-zero", patch(("weight_bytes_per_step",), 0)),
        ("weight-bytes-negative", patch(("weight_bytes_per_step",), -1)),
        ("weight-bytes-1e30", patch(("weight_bytes_per_step",), 1e30)),
        ("weight-bytes-string", patch(("weight_bytes_per_step",), "20MB")),
        ("peak-zero", patch(("device", "peak_gbps"), 0)), ("config-list", patch(("config",), [1, 2])),
        ("device-markup", patch(("device", "name"), "H200 [old] [red]x[/]")),
        ("duplicate-keys", lambda d: json.dumps(d)[:-1] + ', "metrics": 5}'),
    ]
    for label, fn in cases:
        out.append(Mutation("metrics-json", label, "h200-baseline", write("metrics.json", fn),
                            commands=("json", "report", "diff")))
    for label in ("list", "zeros", "nan", "deep", "non-utf8", "decode-median-zero", "metrics-string"):
        fn = dict(cases)[label]
        out.append(Mutation("metrics-json", f"unprofiled-{label}", "h200-baseline",
                            write("metrics.unprofiled.json", fn), commands=("json", "report")))
    for label, fn in (("list", lambda d: []), ("deep", lambda d: deep), ("non-utf8", lambda d: b"\xff\xfe{"),
                      ("empty", lambda d: ""), ("status-failed", patch(("status",), "failed")),
                      ("status-list", patch(("status",), [1])), ("huge", lambda d: {**(d or {}), "pad": ["x" * 1000] * 20000})):
        out.append(Mutation("run-json", label, "h200-baseline", write("run.json", fn), commands=("report", "json")))
    return out


def _path_mutations(rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []

    def rename(new: str | bytes):
        def apply(run: Path) -> Path:
            target = Path(os.fsdecode(os.path.join(os.fsencode(run.parent), new if isinstance(new, bytes) else new.encode())))
            target.parent.mkdir(parents=True, exist_ok=True)  # "[red]x[/]" is a folder "[red]x[" holding "]"
            run.rename(target)
            return target
        return apply

    for label, name, marker in (("markup", "[red]x[/]", "[red]x[/]"), ("old", "run[old]", "[old]"),
                                ("bold", "run [bold]b[/bold]", "[bold]b[/bold]"), ("escape", "a\x1b[31mb\x1b]0;t\x07", None),
                                ("non-utf8", b"run\xff\xfe", None), ("spaces", "run with  spaces", "run with  spaces"),
                                ("unicode", "r\u00fcn-\u202e\U0001F600", None), ("long", "r" * 200, "r" * 200),
                                ("percent", "%s%n%d{0}", "%s%n%d{0}"), ("shell", "$(touch pwned);`id`", "$(touch pwned)"),
                                ("newline", "run\nname", None), ("dash", "-run", None)):
        out.append(Mutation("paths", label, "h200-baseline", rename(name), commands=("tables", "json", "timeline"),
                            expect="shown", marker=marker))

    def link(run: Path) -> Path:
        target = run.with_name("link")
        target.symlink_to(run.name)
        return target

    out.append(Mutation("paths", "symlink", "h200-baseline", link, commands=("tables", "report"), expect="shown"))
    return out


def _flag_mutations(rng: random.Random) -> list[Mutation]:
    nothing = lambda run: None  # noqa: E731
    cases = (("steps-1e9", ("json",), ("--steps", "1000000000")), ("steps-1e6", ("json",), ("--steps", "1000000")),
             ("rows-1e20", ("tables",), ("--rows", "1e20")), ("rows-1e9", ("tables",), ("--rows", "1000000000")),
             ("step-huge", ("timeline",), ("--step", "1000000000000")), ("only-unknown", ("json",), ("--only", "nosuch")),
             ("decode-range-bad-regex", ("json",), ("--decode-range", "(")),
             ("decode-range-markup", ("tables",), ("--decode-range", "[red]x[/]")),
             ("step-range-long", ("json",), ("--step-range", "a" * 10000)),
             ("diff-step-huge", ("diff",), ("--step", "99999999")))
    return [Mutation("flags", label, "h200-baseline", nothing, commands=cmds, expect="shown", extra=extra)
            for label, cmds, extra in cases]


COMMAND_KEYS = ("tables", "json", "csv", "report", "diff", "diff-html", "timeline")
ROTATION = ("json", "tables", "json", "csv", "json", "report", "json", "diff", "json", "timeline", "json", "diff-html")


def all_mutations(seed: int) -> list[Mutation]:
    """Every mutation, each with the commands it runs: its own list where it names several
    for every run (paths, names, flags: each printer must cope), else one command, taken in
    turn from its own list or from ROTATION, so that every command meets every family."""
    rng = random.Random(seed)
    found = [*_sqlite_mutations(rng), *_file_mutations(rng), *_text_mutations(rng), *_json_mutations(rng),
             *_path_mutations(rng), *_flag_mutations(rng)]
    out = []
    for i, m in enumerate(found):
        if m.family not in EVERY_COMMAND:
            choices = m.commands or ROTATION
            m = Mutation(m.family, m.name, m.fixture, m.apply, (choices[i % len(choices)],), m.expect, m.marker, m.extra)
        out.append(m)
    return out


def quick_sample(mutations: list[Mutation], seed: int, per_family: int = 1,
                 commands: tuple[str, ...] | None = None) -> list[Mutation]:
    """`per_family` mutations of each family (seeded), each with one command (of `commands`,
    when given), the commands taken in turn."""
    rng = random.Random(seed)
    by_family: dict[str, list[Mutation]] = defaultdict(list)
    for m in mutations:
        if "200000" not in m.name and m.fixture in ("h200-baseline", "h200-graph"):
            by_family[m.family].append(m)
    picked = [m for fam in sorted(by_family) for m in rng.sample(by_family[fam], min(per_family, len(by_family[fam])))]
    out = []
    for i, m in enumerate(picked):
        choices = [c for c in m.commands if commands is None or c in commands] or list(commands or m.commands)
        out.append(Mutation(m.family, m.name, m.fixture, m.apply, (choices[i % len(choices)],), m.expect, m.marker,
                            m.extra))
    return out


# ---------------------------------------------------------------- commands and runs


def commands(help_text: str) -> dict[str, list[str]]:
    """Command lines per key ({run}, {other}, {out} filled in per case), as this CLI spells them."""
    json_flag = ["--json"] if "--json" in help_text else ["--format", "json"]
    csv_flag = ["--csv", "{out}/csv"] if "--csv " in help_text else ["--format", "csv", "-o", "{out}/analysis.csv"]
    return {
        "tables": ["analyze", "{run}"],
        "json": ["analyze", "{run}", *json_flag],
        "csv": ["analyze", "{run}", *csv_flag],
        "report": ["report", "{other}", "{run}", "-o", "{out}/report.html"],
        "diff": ["diff", "{other}", "{run}", "--json"],
        "diff-html": ["diff", "{run}", "{other}", "-o", "{out}/diff.html"],
        "timeline": ["timeline", "{run}", "-o", "{out}/timeline.json"],
    }


@dataclass
class Run:
    mutation: Mutation | None
    command: str
    rc: int | None
    seconds: float
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]
    changed: list[str] = field(default_factory=list)
    outcome: str = ""
    detail: str = ""


def _hashes(folder: Path, skip: Path) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        rootp = Path(root)
        if rootp == skip or skip in rootp.parents:
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if (rootp / d).is_symlink()]:
            p = rootp / name
            try:
                if p.is_symlink():
                    out[str(p.relative_to(folder))] = "link:" + os.readlink(p)
                elif p.is_file():
                    out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
                else:
                    out[str(p.relative_to(folder))] = "special"
            except OSError as exc:
                out[str(p.relative_to(folder))] = f"unreadable:{exc.errno}"
    return out


def _execute(case: Path, run: Path, other: Path, argv: list[str], timeout: float) -> tuple:
    out = case / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    home, tmp = case / "home", case / "tmp"
    for d in (home, tmp):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    fill = {"{run}": os.fsdecode(run), "{other}": os.fsdecode(other), "{out}": os.fsdecode(out)}
    args = [fill.get(a, a.replace("{out}", os.fsdecode(out))) for a in argv]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "COLUMNS", "LINES")}
    env.update(HOME=str(home), TMPDIR=str(tmp), NO_COLOR="1", TERM="dumb", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=str(REPO))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "decodeprof", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=case, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        rc = None
    seconds = time.monotonic() - start
    outputs = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            outputs[str(p.relative_to(out))] = p.read_bytes()
    left = [str(p.relative_to(case)) for d in (home, tmp) for p in d.rglob("*")]
    return rc, seconds, stdout, stderr, outputs, left


def _normalise(data: bytes, case: Path) -> str:
    text = data.decode("utf-8", "replace")
    root = os.fsdecode(case)
    for form in (root, json.dumps(root)[1:-1], html.escape(root), html.escape(root, quote=False)):
        text = text.replace(form, "<CASE>")
    return UUID.sub("<uuid>", GENERATED.sub("Generated <time>", text))


def _result(run: Run, case: Path) -> object:
    """What a command produced, comparable across case folders."""
    parts: dict[str, object] = {}
    for label, data in (("stdout", run.stdout), *run.outputs.items()):
        text = _normalise(data, case)
        if label.endswith(".json") or (label == "stdout" and run.command in ("json", "diff")):
            try:
                parts[label] = json.loads(text)
                continue
            except ValueError:
                pass
        parts[label] = text
    return parts


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


WARNING_KEYS = ("warnings", "dropped", "missing")  # JSON fields whose every string is a warning


def _warned(value) -> list[str]:
    """The strings under WARNING_KEYS anywhere in a JSON value."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (_strings(v) if k in WARNING_KEYS else _warned(v))]
    if isinstance(value, list):
        return [s for v in value for s in _warned(v)]
    return []


def _warnings(run: Run, result: dict) -> set[str]:
    """Sentences of the output and stderr that warn (WARNING, or a JSON warning field), as a set."""
    found = {re.sub(r"\s+", " ", s).strip() for v in result.values() for s in _warned(v)}
    texts = [run.stderr.decode("utf-8", "replace")]
    for v in result.values():
        texts += _strings(v) if not isinstance(v, str) else re.split(r"<[^>]+>|\n", v)
    for t in texts:
        for line in t.splitlines() or [t]:
            if WARNING.search(line):
                found.add(re.sub(r"\s+", " ", html.unescape(line)).strip())
    return found


def classify(run: Run, intact: Run | None, intact_result, case: Path) -> None:
    err = run.stderr.decode("utf-8", "replace")
    printed = run.stdout.decode("utf-8", "replace") + err
    m = run.mutation
    if run.changed:
        run.outcome, run.detail = "input-modified", ", ".join(run.changed[:4])
    elif run.rc is None:
        run.outcome, run.detail = "hang", f"no exit after {run.seconds:.0f} s"
    elif TRACEBACK.search(printed) or run.rc < 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        run.outcome, run.detail = "traceback", (lines[-1] if lines else f"signal {-run.rc}")[:300]
    elif CONTROL.search(printed.replace("\r", "")):
        hit = CONTROL.search(printed.replace("\r", ""))
        run.outcome, run.detail = "raw-escape", repr(printed[max(hit.start() - 40, 0):hit.end() + 20])
    elif run.rc != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        run.outcome, run.detail = "clean-error", (lines[0] if lines else f"exit {run.rc}, nothing on stderr")[:300]
    else:
        result = _result(run, case)
        printed_text = re.sub(r"\s+", "", "".join(_strings(result)) + err)
        if m is not None and m.marker and m.expect == "shown" and run.command in ("tables", "json", "timeline") and \
                re.sub(r"\s+", "", m.marker) not in printed_text:
            run.outcome, run.detail = "markup-eaten", f"{m.marker!r} not printed"
        elif intact_result is not None and result == intact_result:
            run.outcome = "ok-equal"
        elif m is not None and m.expect == "shown":
            run.outcome = "ok-shown"
        else:
            new = _warnings(run, result) - (_warnings(intact, intact_result) if intact is not None else set())
            if new:
                run.outcome, run.detail = "ok-warned", sorted(new)[0][:300]
            else:
                run.outcome, run.detail = "silent-false", _first_difference(result, intact_result)


def _first_difference(a, b, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(b)} items -> {len(a)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    if isinstance(a, str) and isinstance(b, str):
        la, lb = a.splitlines(), b.splitlines()
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                return f"{where} line {i + 1}: {y.strip()[:120]!r} -> {x.strip()[:120]!r}"
        return f"{where}: {len(lb)} lines -> {len(la)}"
    return f"{where}: {str(b)[:100]!r} -> {str(a)[:100]!r}"


class Campaign:
    def __init__(self, root: Path, timeout: float, help_text: str) -> None:
        self.root, self.timeout = root, timeout
        self.commands = commands(help_text)
        self.intact: dict[tuple[str, str], tuple[Run, object]] = {}
        self.numbers = itertools.count(1)

    def _case(self, prefix: str, fixture: str) -> tuple[Path, Path, Path]:
        case = self.root / f"{prefix}{next(self.numbers):05d}"
        folder, other = FIXTURES[fixture]
        run, oth = case / Path(folder).name, case / "other" / Path(other).name
        for src, dst in ((DATA / folder, run), (DATA / other, oth)):
            dst.mkdir(parents=True)
            for name in COPIED:
                if (src / name).is_file():
                    shutil.copyfile(src / name, dst / name)
        return case, run, oth

    def baseline(self, fixture: str, command: str) -> None:
        case, run, other = self._case("i", fixture)
        self.intact[(fixture, command)] = self._run(None, command, case, run, other)

    def _run(self, m: Mutation | None, command: str, case: Path, run: Path, other: Path) -> tuple[Run, object]:
        before = _hashes(case, case / "out")
        argv = self.commands[command] + list(m.extra if m else ())
        rc, seconds, stdout, stderr, outputs, left = _execute(case, run, other, argv, self.timeout)
        after = _hashes(case, case / "out")
        after = {k: v for k, v in after.items() if not k.startswith(("home", "tmp"))}
        before = {k: v for k, v in before.items() if not k.startswith(("home", "tmp"))}
        changed = [f"{k} changed" for k in before if k in after and before[k] != after[k]]
        changed += [f"{k} removed" for k in before if k not in after] + [f"{k} written" for k in after if k not in before]
        changed += [f"{k} left behind" for k in left] if rc is not None else []
        r = Run(m, command, rc, seconds, stdout, stderr, outputs, changed)
        return r, _result(r, case) if rc == 0 else None

    def mutated(self, m: Mutation) -> list[Run]:
        case, run, other = self._case("c", m.fixture)
        try:
            moved = m.apply(run)
        except Exception as exc:  # noqa: BLE001 -- a mutation this fixture cannot take
            return [Run(m, "-", 0, 0.0, b"", b"", {}, outcome="skipped", detail=f"mutation not applied: {exc}")]
        run = moved if isinstance(moved, Path) else run
        runs = []
        for command in m.commands:
            r, _ = self._run(m, command, case, run, other)
            intact, intact_result = self.intact.get((m.fixture, command), (None, None))
            classify(r, intact, intact_result, case)
            runs.append(r)
        return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a sample: one mutation per family, one command each")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="runs at a time (default: CPU count)")
    p.add_argument("--seed", type=int, default=20, help="seed for the rows damaged and the sample taken")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a run counts as a hang")
    p.add_argument("--only", action="append", help="only mutations whose id contains this (repeatable)")
    p.add_argument("--commands", help="only these commands, comma-separated (of: " + ", ".join(COMMAND_KEYS) + "): "
                   "a mutation runs its own among them, else all of them")
    p.add_argument("--every", action="store_true", help="with --commands: each mutation runs every one of them")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--json-out", type=Path, help="also write every run's outcome as JSON here")
    args = p.parse_args(argv)
    chosen = tuple(args.commands.split(",")) if args.commands else None
    if chosen and not set(chosen) <= set(COMMAND_KEYS):
        p.error(f"--commands: choose from {', '.join(COMMAND_KEYS)}")
    summary = run_campaign(quick=args.quick, jobs=args.jobs, seed=args.seed, timeout=args.timeout, only=args.only,
                           list_only=args.list, keep=args.keep, commands=chosen, every=args.every)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=1))
    return 1 if summary.get("failures") else 0


def run_campaign(*, quick: bool = False, jobs: int = 2, seed: int = 20, timeout: float = 30.0,
                 only: list[str] | None = None, list_only: bool = False, keep: bool = False,
                 per_family: int = 1, printer=print, progress: bool = True,
                 commands: tuple[str, ...] | None = None, every: bool = False) -> dict:
    """Run the campaign; print the counts and failures; return {"counts", "families", "failures", "runs"}."""
    mutations = all_mutations(seed)
    if only:
        mutations = [m for m in mutations if any(o in m.id for o in only)]
    if quick:
        mutations = quick_sample(mutations, seed, per_family, commands)
    elif commands:
        mutations = [Mutation(m.family, m.name, m.fixture, m.apply, commands if every else tuple(
            c for c in m.commands if c in commands) or commands, m.expect, m.marker, m.extra) for m in mutations]
    if list_only:
        for m in mutations:
            printer(f"{m.id:60} {','.join(m.commands)} {m.expect}")
        return {"counts": {}, "families": {}, "failures": [], "runs": []}
    help_text = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", "--help"], capture_output=True, text=True,
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    root = Path(tempfile.mkdtemp(prefix="decodeprof-faults-"))
    campaign = Campaign(root, timeout, help_text)
    started = time.monotonic()
    try:
        needed = sorted({(m.fixture, c) for m in mutations for c in m.commands})
        with ThreadPoolExecutor(max(jobs, 1)) as pool:
            list(pool.map(lambda fc: campaign.baseline(*fc), needed))
            for (fixture, command), (r, _) in sorted(campaign.intact.items()):
                if r.rc != 0:
                    printer(f"intact {fixture} {command}: exit {r.rc}: {r.stderr.decode(errors='replace')[-300:]}")
            runs = []
            for i, rs in enumerate(pool.map(campaign.mutated, mutations), 1):
                runs += rs
                for r in rs:
                    if r.outcome in FAILURES and progress:
                        print(f"  {r.outcome:14} {r.mutation.id} [{r.command}] {r.detail}", file=sys.stderr)
                if i % 50 == 0 and progress:
                    print(f"{i}/{len(mutations)} mutations, {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        if keep:
            printer(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return _summarise(runs, time.monotonic() - started, printer)


def _summarise(runs: list[Run], seconds: float, printer) -> dict:
    counts = Counter(r.outcome for r in runs)
    families: dict[str, Counter] = defaultdict(Counter)
    for r in runs:
        families[r.mutation.family][r.outcome] += 1
    shown = [o for o in (*OUTCOMES, "skipped") if counts[o]]
    mutated = len({r.mutation.id for r in runs})
    printer(f"{len(runs)} runs over {mutated} mutated inputs in {seconds:.0f} s")
    printer("  ".join(f"{o} {counts[o]}" for o in OUTCOMES + ("skipped",) if counts[o] or o in FAILURES))
    printer(f"\n{'family':22}" + "".join(f"{o:>15}" for o in shown))
    for fam in sorted(families):
        printer(f"{fam:22}" + "".join(f"{families[fam][o]:>15}" for o in shown))
    failures = [r for r in runs if r.outcome in FAILURES]
    if failures:
        printer("\nfailures:")
    for r in sorted(failures, key=lambda r: (r.outcome, r.mutation.id, r.command)):
        printer(f"  {r.outcome:14} {r.mutation.id} [{r.command}] {r.detail}")
    slow = sorted(runs, key=lambda r: -r.seconds)[:3]
    printer("\nslowest: " + ", ".join(f"{r.mutation.id} [{r.command}] {r.seconds:.1f} s" for r in slow))
    return {"counts": dict(counts), "families": {f: dict(c) for f, c in families.items()},
            "failures": [{"outcome": r.outcome, "mutation": r.mutation.id, "command": r.command, "detail": r.detail}
                         for r in failures],
            "runs": [{"mutation": r.mutation.id, "command": r.command, "outcome": r.outcome, "detail": r.detail,
                      "seconds": round(r.seconds, 2)} for r in runs]}


if __name__ == "__main__":
    sys.exit(main())
