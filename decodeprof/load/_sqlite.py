"""Open an nsys SQLite export safely and read SQL results straight into polars.

The reader: ADBC's SQLite driver (returns Arrow, read by polars without pyarrow; measured
with connectorx and sqlite3 in benchmarks/load_readers.py), falling back to the standard
library's sqlite3 when the driver is not installed or cannot read a query (a column whose
type changes between batches). The loaders keep expressions out of SQL and do arithmetic in
polars, so every column is a table's own.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING
from pathlib import Path

from decodeprof.errors import TraceFileError

if TYPE_CHECKING:
    import polars as pl

SQLITE_MAGIC = b"SQLite format 3\x00"
# Tables whose presence marks a file as an Nsight Systems export.
NSYS_MARKERS = (
    "StringIds", "META_DATA_EXPORT", "EXPORT_META_DATA", "NVTX_EVENTS", "ThreadNames",
    "CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME", "TARGET_INFO_GPU",
)
EXPORT_HINT = "export the report with `nsys export --type sqlite --output trace.sqlite trace.nsys-rep`"


def check_sqlite_file(path: Path) -> None:
    """Raise TraceFileError unless `path` is a complete SQLite file (header and length)."""
    if not path.exists():
        raise TraceFileError(f"{path}: no such file", "check the path; pass an nsys .sqlite or .nsys-rep, or a run folder")
    if not path.is_file():
        raise TraceFileError(f"{path}: not a file", "pass an nsys .sqlite or .nsys-rep, or a run folder")
    with path.open("rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise TraceFileError(f"{path}: not an SQLite database (empty, truncated or another format)", EXPORT_HINT)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its "version-valid-for" matches the change counter.
    if header[24:28] == header[92:96] and page_count and path.stat().st_size < page_size * page_count:
        raise TraceFileError(
            f"{path}: truncated SQLite file ({path.stat().st_size} bytes, header says {page_size * page_count})",
            "copy or export the file again; " + EXPORT_HINT,
        )


def write_ahead(path: Path) -> bool:
    """The file is in SQLite's write-ahead-log mode (header bytes 18-19 are 2) or has a -wal
    file beside it. A read-write open of such a file checkpoints the log into it and deletes
    the -wal file (connectorx does); nsys never writes one, but a user's copy may be one."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02" or Path(f"{path}-wal").exists()


def _with_log(path: Path) -> sqlite3.Connection:
    """An in-memory database holding `path` with its -wal log applied: read from a copy of
    both in a temporary folder (even read-only, SQLite makes a -shm file beside what it
    opens), which is removed before this returns (no exit hook: the command may end with
    os._exit)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="decodeprof-wal-"))
    try:
        copy = folder / "export.sqlite"
        shutil.copyfile(path, copy)
        shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        disk = sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)
        try:
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            disk.backup(memory)
        finally:
            disk.close()
        return memory
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def has_log(path: Path) -> bool:
    """A write-ahead-log export whose -wal file is there: `connect` reads it into memory."""
    return write_ahead(path) and Path(f"{path}-wal").exists()


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to a checked SQLite file that looks like an nsys export. The
    input is never written: opened with mode=ro; a write-ahead-log file with an empty log
    also immutable (no -shm made), one with a log read into memory (`_with_log`)."""
    check_sqlite_file(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    logged = has_log(path)
    if write_ahead(path) and not logged:
        uri += "&immutable=1"
    try:
        # check_same_thread=False: read_export reads the kernels in a second thread, whose
        # sqlite3 fallback (read_sql) uses this connection (serialized by SQLite itself).
        con = _with_log(path) if logged else sqlite3.connect(uri, uri=True, check_same_thread=False)
        con.text_factory = _text  # a damaged string is shown with U+FFFD, never a crash
        names = table_names(con)
    except sqlite3.DatabaseError as exc:
        raise TraceFileError(f"{path}: cannot read as SQLite ({exc})", EXPORT_HINT) from exc
    if not any(m in names for m in NSYS_MARKERS):
        con.close()
        raise TraceFileError(
            f"{path}: an SQLite database but not an Nsight Systems export (no StringIds or nsys tables)",
            EXPORT_HINT,
        )
    return con


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _cell(value):
    """A value as polars can type it next to others of its column: a BLOB (which nsys never
    writes) becomes text, so a number column holding one reads as text and the loader's
    checks see a row without that number, instead of a frame that cannot be built."""
    return _text(value) if isinstance(value, bytes) else value


def table_names(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]


ADBC_BATCH_ROWS = 65536  # rows per Arrow batch: 16 chunks for 1M kernels (1024 rows: ~1000 chunks, more memory)


def _read_adbc(path: Path, sql: str) -> "pl.DataFrame":
    """`sql` through ADBC's SQLite driver into polars, read-only, without pyarrow (the Arrow
    stream goes to polars through the Arrow PyCapsule interface). Raises ImportError when the
    driver is not installed. The driver types each column from its first batch and turns
    mixed values within one into text or float: the loader reads such columns value by value
    (nsys_sqlite._integer), as it does the sqlite3 path's; a type change in a later batch
    raises, and the caller reads the query through sqlite3 instead."""
    import adbc_driver_sqlite.dbapi as adbc
    import polars as pl

    with adbc.connect(f"{path.resolve().as_uri()}?mode=ro") as con, con.cursor() as cur:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(ADBC_BATCH_ROWS)})
        cur.execute(sql)
        frame = pl.DataFrame(cur.fetch_arrow())
    if any(dtype in (pl.Binary, pl.Object) for dtype in frame.dtypes):
        raise ValueError("a column holds bytes")  # a BLOB, which nsys never writes
    # The driver passes TEXT through unchecked: a damaged string that is not UTF-8 would make
    # polars fail later, anywhere. Checked here (raises), so the sqlite3 path reads such a
    # cell with U+FFFD in place of its bad bytes and the loader's checks see it.
    text = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    if text:
        frame.select(pl.col(c).cast(pl.Binary).cast(pl.String, strict=True) for c in text)
    return frame


def read_sql(path: Path, con: sqlite3.Connection, sql: str) -> "pl.DataFrame":
    """Run `sql` on the export at `path`: ADBC's SQLite driver when it can (about 4x faster
    than sqlite3 at 1M kernels, a quarter of its memory: benchmarks/RESULTS.md), else the
    standard library's sqlite3 on `con`."""
    import polars as pl  # here, not at import: the capture side (export) runs without polars

    try:
        if write_ahead(path):  # a log to read: `con` reads it from a copy, never beside the input
            raise ImportError
        return _read_adbc(path, sql)
    except ImportError:
        pass  # the driver is not installed: the sqlite3 path below
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 -- a type change between batches, or a damaged page
        pass  # the sqlite3 path below types by value and reports real errors
    try:
        cur = con.execute(sql)
    except sqlite3.DatabaseError as exc:
        raise TraceFileError(f"{path}: query failed ({exc})", "the export may be damaged; " + EXPORT_HINT) from exc
    names = [d[0] for d in cur.description]
    try:
        rows = cur.fetchall()
    except sqlite3.DatabaseError as exc:
        raise TraceFileError(f"{path}: query failed ({exc})", "the export may be damaged; " + EXPORT_HINT) from exc
    if not rows:
        return pl.DataFrame(schema={n: pl.Null for n in names})
    try:
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, OverflowError):  # mixed types: numbers, text, BLOBs
        columns = [[_cell(v) for v in col] for col in zip(*rows)]
        return pl.DataFrame({n: _series(n, c) for n, c in zip(names, columns)})


def _series(name: str, values: list) -> "pl.Series":
    """A column of mixed SQLite values: typed by polars where it can, else as text."""
    import polars as pl

    try:
        return pl.Series(name, values, strict=False)
    except (pl.exceptions.PolarsError, TypeError, OverflowError):
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8)
