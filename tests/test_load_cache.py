"""The Parquet cache beside an export: same frames, reused while unchanged, rebuilt after.
Uses a SYNTHETIC export (tests/test_load_synthetic.py)."""

from __future__ import annotations

import os
import sqlite3

from decodeprof.load import load_trace
from decodeprof.load.cache import cache_dir
from test_load_synthetic import build_export

FRAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")


def test_cache_round_trip_and_invalidation(tmp_path):
    path = build_export(tmp_path / "trace.sqlite", steps=3)
    cold = load_trace(path, cache=True)
    assert cache_dir(path).is_dir()
    warm = load_trace(path, cache=True)
    for name in FRAMES:
        assert warm.frame(name).equals(cold.frame(name)), name
    assert warm.meta == cold.meta and warm.missing == cold.missing
    assert load_trace(path).kernels.equals(cold.kernels)  # uncached read agrees

    # Change the export but restore its size and mtime: the cache key still matches, so the
    # cached (old) frames come back -- proof the second read is served from Parquet.
    before = path.stat()
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE correlationId = 101")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert load_trace(path, cache=True).kernels.height == cold.kernels.height
    # A new mtime invalidates it and the export is read again.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert load_trace(path, cache=True).kernels.height == cold.kernels.height - 1


def test_unwritable_cache_is_skipped(tmp_path):
    path = build_export(tmp_path / "trace.sqlite", steps=1)
    cache_dir(path).write_text("a file where the cache folder would go")
    assert load_trace(path, cache=True).kernels.height == 3
