"""A Parquet cache beside an export (issue 11): its loaded frames, and analysis results.

<export>.decodeprof-cache/ holds one Parquet file per frame plus key.json. The key is the
export's size and mtime (ns) and the frame schema; any change reloads from SQLite. key.json
also lists the columns kept (`analyze` loads only those its analyses read): a load asking
for a column not kept reads the export again. The cache is written to a temporary folder
and renamed into place; a cache that cannot be written (read-only folder) is skipped, never
an error.

Analysis results live in the same folder, under results-<hash of their key>/: one Parquet
file per analysis and index.json (the key, the export's meta and missing tables, and why
each empty result is empty). Their key (`results_key`) adds what changes results: the
`steps` option, the size and mtime of the ncu CSV and metrics JSON (or their absence), the
analyses' declared outputs and RESULTS_FORMAT. A results folder of another key is removed
when results are written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl

from decodeprof import schema
from decodeprof.load.fingerprint import file_key, fingerprint
from decodeprof.load.nsys_sqlite import read_export
from decodeprof.trace import MissingData

CACHE_FORMAT = 2  # bump when what the loader keeps changes (2: the ENUM label-column note)
RESULTS_FORMAT = 2  # bump when an analysis changes what it computes
FRAME_NAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")


def cache_dir(export: Path) -> Path:
    return export.with_name(export.name + ".decodeprof-cache")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _key(export: Path) -> dict:
    layout = {n: {c: str(t) for c, t in schema.FRAMES[n].items()} for n in FRAME_NAMES}
    return {"format": CACHE_FORMAT, "file": fingerprint(export), "schema": _digest(layout)}


def _layout(columns: dict | None = None) -> dict:
    """{frame: {column: dtype}} of the frames loaded with `columns` (see load_trace)."""
    columns = columns or {}
    return {n: {c: str(t) for c, t in schema.FRAMES[n].items() if n not in columns or c in columns[n]}
            for n in FRAME_NAMES}


def _read(folder: Path, key: dict, columns: dict | None = None):
    try:
        info = json.loads((folder / "key.json").read_text())
        if info.get("key") != key:
            return None
        kept, wanted = info.get("layout") or _layout(), _layout(columns)
        if any(not wanted[n].items() <= kept[n].items() for n in FRAME_NAMES):
            return None  # the cache holds fewer columns than asked for
        frames = {n: pl.read_parquet(folder / f"{n}.parquet", columns=list(wanted[n])) for n in FRAME_NAMES}
        missing = tuple(MissingData(**m) for m in info["missing"])
        return frames, dict(info["meta"]), missing
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None


def _write(folder: Path, key: dict, frames, meta, missing, layout: dict) -> None:
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for n in FRAME_NAMES:
            frames[n].write_parquet(tmp / f"{n}.parquet", compression="lz4")
        info = {"key": key, "layout": layout, "meta": meta, "missing": [m.__dict__ for m in missing]}
        (tmp / "key.json").write_text(json.dumps(info))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def read_export_cached(export: Path, columns: dict | None = None):
    """Like nsys_sqlite.read_export, served from the Parquet cache while the export is
    unchanged and the cache holds the `columns` asked for (kept: the columns last read)."""
    folder, key = cache_dir(export), _key(export)
    hit = _read(folder, key, columns) if folder.is_dir() else None
    if hit is not None:
        return hit
    frames, meta, missing = read_export(export, columns)
    _write(folder, key, frames, meta, missing, _layout(columns))
    return frames, meta, missing


def results_key(export: Path, *, ncu_csv: Path | None, metrics_json: Path | None, steps: int | None,
                outputs: dict, step_ranges: list | None = None) -> dict:
    """What analysis results of `export` depend on; `outputs` is {analysis: {column: dtype}};
    `step_ranges`: the NVTX ranges named as decode loop and step ([decode, step])."""
    return {"format": RESULTS_FORMAT, "frames": _key(export), "steps": steps, "ncu_csv": file_key(ncu_csv),
            "metrics_json": file_key(metrics_json), "outputs": _digest(outputs), "step_ranges": step_ranges}


def _results_dir(export: Path, key: dict) -> Path:
    return cache_dir(export) / f"results-{_digest(key)}"


def read_results(export: Path, key: dict, names: list[str]):
    """(info, {name: frame}) for `names` if all were cached under `key`, else None. `info`
    holds the export's "meta" and "missing" (MissingData) and "empty_because"."""
    folder = _results_dir(export, key)
    try:
        info = json.loads((folder / "index.json").read_text())
        if info.get("key") != key or not set(names) <= set(info["empty_because"]):
            return None
        frames = {n: pl.read_parquet(folder / f"{n}.parquet") for n in names}
        return {"meta": dict(info["meta"]), "missing": tuple(MissingData(**m) for m in info["missing"]),
                "empty_because": {n: info["empty_because"][n] for n in names if frames[n].is_empty()},
                "verdict": info.get("verdict")}, frames
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None


def write_results(export: Path, key: dict, frames: dict, meta: dict, missing, empty_because: dict,
                  verdict: dict | None = None) -> None:
    """Keep `frames` (analysis results) under `key`, beside those of the same key already
    kept; skipped silently when the folder cannot be written."""
    folder = _results_dir(export, key)
    try:
        for old in cache_dir(export).glob("results-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            info = json.loads((folder / "index.json").read_text())
            kept = info["empty_because"] if info.get("key") == key else {}
        except (OSError, ValueError, KeyError, TypeError):
            kept = {}
        tmp = f".{os.getpid()}.tmp"
        for name, frame in frames.items():
            frame.write_parquet(folder / (name + tmp), compression="lz4")
            os.replace(folder / (name + tmp), folder / f"{name}.parquet")
        info = {"key": key, "meta": {k: str(v) for k, v in meta.items()}, "missing": [m.__dict__ for m in missing],
                "empty_because": {**kept, **{n: empty_because.get(n, []) for n in frames}}, "verdict": verdict}
        (folder / ("index" + tmp)).write_text(json.dumps(info))
        os.replace(folder / ("index" + tmp), folder / "index.json")
    except OSError:
        pass
