"""Turn a .nsys-rep into the .sqlite export next to it, reusing an up-to-date one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from decodeprof.errors import CaptureError, DecodeprofError, TraceFileError
from decodeprof.load._sqlite import connect

EXPORT_TIMEOUT_S = 3600
REPORT_MAGIC = b"NVIDIA Tegra Profiler Report"  # how every .nsys-rep begins (2022.4 and 2025.3 alike)
PASS_SQLITE_HINT = (
    "export it where a matching nsys runs (`nsys export --type sqlite --output trace.sqlite trace.nsys-rep`; "
    "Debian's nsys 2022.4 cannot open reports written by nsys 2025) and pass the .sqlite instead"
)


def _valid_export(path: Path) -> bool:
    try:
        connect(path).close()
        return True
    except DecodeprofError:
        return False


def exported_from(export: Path) -> Path | None:
    """The report path an nsys export says it was made from (nsys records it: 2025's
    META_DATA_EXPORT EXPORT_PARAM_INPUT_PATH_ABS / _FILE, 2022's EXPORT_META_DATA
    EXPORT_INPUT_PATH_ABS / _FILE), or None when the file is no export or does not say."""
    import sqlite3

    try:
        con = connect(export)
    except DecodeprofError:
        return None
    try:
        for table, prefix in (("META_DATA_EXPORT", "EXPORT_PARAM_INPUT"), ("EXPORT_META_DATA", "EXPORT_INPUT")):
            for key in (f"{prefix}_PATH_ABS", f"{prefix}_FILE"):
                try:
                    row = con.execute(f"SELECT value FROM {table} WHERE name = ?", (key,)).fetchone()
                except sqlite3.DatabaseError:
                    break
                if row and row[0]:
                    return Path(str(row[0]))
        return None
    finally:
        con.close()


def _belongs(export: Path, rep_path: Path) -> bool:
    """The export was made from this report: the path it records is the report's, or (a run
    folder copied elsewhere) ends in the same folder and file name. A bare file name, all an
    export may say, must equal the report's."""
    source = exported_from(export)
    if source is None:
        return False
    rep = rep_path.resolve()
    if not source.is_absolute() or len(source.parts) < 2:
        return source.name == rep.name
    return source == rep or source.parts[-2:] == rep.parts[-2:]


def _export_path(rep_path: Path) -> tuple[Path, bool]:
    """(where the export of `rep_path` lives or goes, whether a current one is there). The
    neighbour <stem>.sqlite is this report's when its export metadata names the report
    (`_belongs`): then
    it is reused while it is as new as the report, and replaced when stale. Any other file
    there (another report's export, a file that says nothing) is never touched: the export
    goes to <stem>.export.sqlite (then -2, -3 ...), under the same rule."""
    candidates = [rep_path.with_suffix(".sqlite"), rep_path.with_suffix(".export.sqlite"),
                  *(rep_path.with_suffix(f".export-{i}.sqlite") for i in range(2, 100))]
    for out in candidates:
        if not out.exists():
            return out, False
        if _belongs(out, rep_path):
            return out, out.stat().st_mtime >= rep_path.stat().st_mtime
    raise TraceFileError(f"{rep_path}: every export name beside it is taken by files of other reports",
                         "move the report into a folder of its own, or pass its .sqlite export")


def ensure_sqlite(rep_path: Path, *, log_path: Path | None = None) -> Path:
    """The SQLite export of `rep_path`, exported if needed (see `_export_path` for where:
    <same stem>.sqlite beside it unless that file provably belongs to another report).

    nsys (decodeprof.tools.find_nsys) exports to a temporary name that is renamed into place
    only on success, so no half-written .sqlite is left; an export made to another name than
    <stem>.sqlite is said on stderr. nsys's output goes to `log_path` when given. Raises
    TraceFileError (no report), ToolNotFoundError (no nsys) or CaptureError (the export failed).
    """
    rep_path = Path(rep_path)
    if not rep_path.is_file():
        raise TraceFileError(f"{rep_path}: no such report file", "check the path; pass an nsys .nsys-rep or .sqlite")
    out, current = _export_path(rep_path)
    if current:
        return out
    with rep_path.open("rb") as fh:
        if fh.read(len(REPORT_MAGIC)) != REPORT_MAGIC:
            raise TraceFileError(f"{rep_path}: not an Nsight Systems report (it lacks the header every .nsys-rep starts with)",
                                 "pass the .nsys-rep that `nsys profile` wrote, or its .sqlite export")

    from decodeprof.tools import find_nsys  # raises ToolNotFoundError with the install hint

    nsys = find_nsys()
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial.sqlite")
    tmp.unlink(missing_ok=True)
    cmd = [str(nsys), "export", "--type", "sqlite", "--output", str(tmp), str(rep_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False)
        output, code = (proc.stdout or "") + (proc.stderr or ""), proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\n(timed out after {EXPORT_TIMEOUT_S} s)", None
    except OSError as exc:
        output, code = str(exc), None
    if log_path is not None:
        Path(log_path).write_text(f"$ {' '.join(cmd)}\n{output}")
    if code != 0 or not tmp.exists() or not _valid_export(tmp):
        tmp.unlink(missing_ok=True)
        tail = "\n".join(output.strip().splitlines()[-8:]) or "(no output)"
        status = "timed out or could not start" if code is None else f"exit status {code}"
        raise CaptureError(f"nsys export of {rep_path} failed ({status}):\n{tail}", PASS_SQLITE_HINT)
    os.replace(tmp, out)
    if out != rep_path.with_suffix(".sqlite"):
        import sys

        sys.stderr.write(f"note: exported {rep_path.name} to {out.name}: {rep_path.with_suffix('.sqlite').name} "
                         "beside it is not this report's export (left untouched)\n")
    return out
