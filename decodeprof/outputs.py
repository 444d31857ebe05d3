"""Where a command will write, checked before it does the work: a run must not end in a
traceback after minutes of capture or analysis because its output path was a typo."""

from __future__ import annotations

import os
from pathlib import Path

from decodeprof.load.run_folder import UNPROFILED_METRICS
from decodeprof.errors import DecodeprofError
from decodeprof.load._sqlite import SQLITE_MAGIC
from decodeprof.load.export import REPORT_MAGIC


# Files a run folder holds that commands read: an output written over one destroys an input.
RUN_FOLDER_INPUTS = ("trace.sqlite", "trace.nsys-rep", "metrics.json", UNPROFILED_METRICS, "ncu.csv", "run.json")
# The first bytes of the files decodeprof reads as traces: writing over them loses a capture.
TRACE_HEADERS = (SQLITE_MAGIC, REPORT_MAGIC)  # exports and .nsys-rep reports
TRACE_SUFFIXES = (".sqlite", ".nsys-rep", ".qdrep", ".sqlite3", ".db")


def writable_file(path: Path, what: str, *, inputs: tuple[Path, ...] = ()) -> Path:
    """`path` as a file to (over)write, its missing folders made later by the writer; raises
    DecodeprofError naming `what` when it is a folder, a device, FIFO or other non-regular
    file (the atomic rename would replace it), one of the `inputs` (or a file the command
    reads in an input run folder), an existing trace or export, or its folder cannot be made
    or written. Checked before any work is done."""
    if path.is_dir():
        raise DecodeprofError(f"cannot write the {what} to {path}: it is a folder", f"pass a file name, e.g. {path / 'out'}")
    if path.exists() and not path.is_file():
        raise DecodeprofError(f"cannot write the {what} to {path}: it is not a regular file (a device, FIFO or socket)",
                              "pass the path of a regular file or a new one")
    target = path.resolve()
    for given in inputs:
        given = Path(given).resolve()
        read = [given] if not given.is_dir() else [given / n for n in RUN_FOLDER_INPUTS] + [
            p for p in given.glob("*") if p.suffix in TRACE_SUFFIXES]
        if target in read:
            raise DecodeprofError(f"cannot write the {what} to {path}: it is one of this command's inputs",
                                  "choose another output path; inputs are never written")
    if path.is_file() and (path.suffix in TRACE_SUFFIXES or _starts_with_trace_header(path)):
        raise DecodeprofError(f"cannot write the {what} to {path}: it holds a trace (an nsys report or SQLite export)",
                              "choose another output path; traces are never overwritten")
    _check_folder(path.parent, what, path)
    return path


def _starts_with_trace_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(max(len(h) for h in TRACE_HEADERS))
    except OSError:
        return False
    return any(head.startswith(h) for h in TRACE_HEADERS)


def writable_folder(path: Path, what: str) -> Path:
    """`path` as a folder to write files into (made later by the writer if missing)."""
    if path.exists() and not path.is_dir():
        raise DecodeprofError(f"cannot write the {what} into {path}: it is a file", "pass a folder")
    _check_folder(path, what, path)
    return path


def _check_folder(folder: Path, what: str, target: Path) -> None:
    """The folder, or the nearest part of it that exists, must be a folder this user can write."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DecodeprofError(f"cannot write the {what} to {target}: {existing} is a file, not a folder",
                              "choose a path in a folder you can write")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DecodeprofError(f"cannot write the {what} to {target}: {existing} is not writable",
                              "choose a path in a folder you can write")
