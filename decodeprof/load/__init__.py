"""Loaders: nsys exports and ncu CSVs -> a Trace of typed polars frames (decodeprof.schema).

    from decodeprof.load import load_trace
    trace = load_trace("runs/graph")          # a run folder, a .sqlite or a .nsys-rep

Only this package knows SQL or CSV. No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from decodeprof.errors import TraceFileError
from decodeprof.load.export import ensure_sqlite

if TYPE_CHECKING:
    from decodeprof.schema import TargetMetrics
    from decodeprof.trace import Trace

__all__ = ["ensure_sqlite", "load_ncu_csv", "load_trace", "resolve_export"]


def __getattr__(name: str):
    # polars-backed loaders import on first use: exporting (capture side) needs no polars
    if name == "load_ncu_csv":
        from decodeprof.load.ncu_csv import load_ncu_csv

        return load_ncu_csv
    raise AttributeError(name)

RUN_FOLDER_NAMES = ("trace.sqlite", "trace.nsys-rep")


def _trace_in_folder(folder: Path) -> Path:
    # A run folder's trace.sqlite was exported right after capture, so it wins even when a
    # git checkout left it with an older mtime than trace.nsys-rep (which would otherwise
    # need an nsys able to read that report); the report is exported only when alone.
    for name in RUN_FOLDER_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.sqlite")) or sorted(folder.glob("*.nsys-rep"))
    if len(found) == 1:
        return found[0]
    what = "several traces" if found else "no trace"
    raise TraceFileError(
        f"{folder}: a folder with {what} (looked for {' or '.join(RUN_FOLDER_NAMES)})",
        "pass a run folder written by `decodeprof profile`, or the .sqlite / .nsys-rep itself",
    )


def resolve_export(path: Path | str) -> Path:
    """The .sqlite export for a .sqlite, a .nsys-rep (exported if needed) or a run folder."""
    path = Path(path)
    if path.is_dir():
        path = _trace_in_folder(path)
    if path.suffix == ".nsys-rep":
        return ensure_sqlite(path)
    if not path.exists():
        raise TraceFileError(f"{path}: no such file", "check the path; pass an nsys .sqlite or .nsys-rep, or a run folder")
    return path


def _metrics(path: Path) -> "TargetMetrics":
    """A target's metrics JSON, checked against its schema (decodeprof.load.target_metrics)."""
    from decodeprof.load import target_metrics

    return target_metrics.read(path)


def load_trace(path: Path | str, *, ncu_csv: Path | str | None = None, metrics_json: Path | str | None = None,
               cache: bool = False, columns: dict[str, tuple[str, ...]] | None = None) -> "Trace":
    """Load a trace: a .sqlite export, a .nsys-rep (exported beside it first) or a run folder.

    A run folder is one holding trace.sqlite (preferred) or trace.nsys-rep, and optionally
    metrics.json (-> Trace.target_metrics; a metrics.unprofiled.json beside it ->
    Trace.unprofiled_metrics) and ncu.csv (-> Trace.ncu_metrics); explicit
    `ncu_csv` / `metrics_json` arguments win. With `cache`, frames are kept as Parquet
    beside the export (decodeprof.load.cache) and reused while the export is unchanged.
    `columns`: {frame: schema columns} to load only those of a frame (e.g. the analyses'
    `decodeprof.analyses.FRAME_COLUMNS`); the frame then lacks the others.
    Rows dropped as impossible (the export's and the ncu CSV's) are counted in the meta
    (Trace.dropped()). A run folder's ncu.csv or metrics.json that is not a file is an error.
    Raises TraceFileError / NcuCsvError / CaptureError naming the file and the fix.
    """
    path = Path(path)
    folder = path if path.is_dir() else None
    export = resolve_export(path)
    if cache:
        from decodeprof.load.cache import read_export_cached

        frames, meta, missing = read_export_cached(export, columns)
    else:
        from decodeprof.load.nsys_sqlite import read_export

        frames, meta, missing = read_export(export, columns)
    if folder is not None:  # a run folder's own files, when there (one that is not a file: an error below)
        ncu_csv = ncu_csv or (folder / "ncu.csv" if (folder / "ncu.csv").exists() else None)
        metrics_json = metrics_json or (folder / "metrics.json" if (folder / "metrics.json").exists() else None)
    extra = {}
    if ncu_csv is not None:
        from decodeprof.load.ncu_csv import read_ncu_csv
        from decodeprof.load.validate import META_KEY

        extra["ncu_metrics"], dropped = read_ncu_csv(Path(ncu_csv))
        if dropped:
            meta = {**meta, META_KEY: json.dumps(json.loads(meta.get(META_KEY) or "[]") + dropped)}
    if metrics_json is not None:
        extra["target_metrics"] = _metrics(Path(metrics_json))
        from decodeprof.load.run_folder import UNPROFILED_METRICS

        unprofiled = Path(metrics_json).with_name(UNPROFILED_METRICS)
        if unprofiled.is_file():
            extra["unprofiled_metrics"] = _metrics(unprofiled)
    from decodeprof.trace import Trace

    return Trace(source=export, **frames, **extra, meta=meta, missing=missing)
