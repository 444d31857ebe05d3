"""A Parquet cache of a loaded export's frames, beside the export (issue 11).

<export>.decodeprof-cache/ holds one Parquet file per frame plus key.json. The key is the
export's size and mtime (ns) and the frame schema; any change reloads from SQLite. The
cache is written to a temporary folder and renamed into place; a cache that cannot be
written (read-only folder) is skipped, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl

from decodeprof import schema
from decodeprof.load.nsys_sqlite import read_export
from decodeprof.trace import MissingData

CACHE_FORMAT = 1
FRAME_NAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")


def cache_dir(export: Path) -> Path:
    return export.with_name(export.name + ".decodeprof-cache")


def _key(export: Path) -> dict:
    st = export.stat()
    layout = json.dumps({n: {c: str(t) for c, t in schema.FRAMES[n].items()} for n in FRAME_NAMES}, sort_keys=True)
    return {"format": CACHE_FORMAT, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "schema": hashlib.sha256(layout.encode()).hexdigest()[:16]}


def _read(folder: Path, key: dict):
    try:
        info = json.loads((folder / "key.json").read_text())
        if info.get("key") != key:
            return None
        frames = {n: pl.read_parquet(folder / f"{n}.parquet") for n in FRAME_NAMES}
        missing = tuple(MissingData(**m) for m in info["missing"])
        return frames, dict(info["meta"]), missing
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None


def _write(folder: Path, key: dict, frames, meta, missing) -> None:
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for n in FRAME_NAMES:
            frames[n].write_parquet(tmp / f"{n}.parquet", compression="lz4")
        info = {"key": key, "meta": meta, "missing": [m.__dict__ for m in missing]}
        (tmp / "key.json").write_text(json.dumps(info))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def read_export_cached(export: Path):
    """Like nsys_sqlite.read_export, served from the Parquet cache while the export is unchanged."""
    folder, key = cache_dir(export), _key(export)
    hit = _read(folder, key) if folder.is_dir() else None
    if hit is not None:
        return hit
    frames, meta, missing = read_export(export)
    _write(folder, key, frames, meta, missing)
    return frames, meta, missing
