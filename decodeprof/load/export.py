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


def ensure_sqlite(rep_path: Path, *, log_path: Path | None = None) -> Path:
    """The SQLite export of `rep_path` (<same stem>.sqlite beside it), exported if needed.

    An existing export is reused when it is at least as new as the report and opens as a
    valid nsys export. Otherwise nsys (decodeprof.tools.find_nsys) exports to a temporary
    name that is renamed into place only on success, so no half-written .sqlite is left.
    nsys's output goes to `log_path` when given. Raises TraceFileError (no report),
    ToolNotFoundError (no nsys) or CaptureError (the export failed).
    """
    rep_path = Path(rep_path)
    if not rep_path.is_file():
        raise TraceFileError(f"{rep_path}: no such report file", "check the path; pass an nsys .nsys-rep or .sqlite")
    out = rep_path.with_suffix(".sqlite")
    if out.exists() and out.stat().st_mtime >= rep_path.stat().st_mtime and _valid_export(out):
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
    return out
