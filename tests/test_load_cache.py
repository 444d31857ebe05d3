"""The Parquet cache beside an export: same frames, reused while unchanged, rebuilt after.
Uses a SYNTHETIC export (tests/test_load_synthetic.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from decodeprof.load import load_trace
from decodeprof.load.cache import cache_dir
from test_load_synthetic import build_export

FRAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")


def test_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    path = build_export(tmp_path / "trace.sqlite", steps=3)
    cold = load_trace(path, cache=True)
    assert cache_dir(path).is_dir()
    import decodeprof.load.cache as cache_module

    with monkeypatch.context() as m:  # proof the warm read is served from Parquet: the export is not read
        m.setattr(cache_module, "read_export", lambda *a, **k: (_ for _ in ()).throw(AssertionError("export read")))
        warm = load_trace(path, cache=True)
    for name in FRAMES:
        assert warm.frame(name).equals(cold.frame(name)), name
    assert warm.meta == cold.meta and warm.missing == cold.missing
    assert load_trace(path).kernels.equals(cold.kernels)  # uncached read agrees

    # Change the export but restore its size and mtime: the content fingerprint (SQLite's
    # header moves on every write) still tells, and the export is read again.
    before = path.stat()
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE correlationId = 101")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert load_trace(path, cache=True).kernels.height == cold.kernels.height - 1


def test_unwritable_cache_is_skipped(tmp_path):
    path = build_export(tmp_path / "trace.sqlite", steps=1)
    cache_dir(path).write_text("a file where the cache folder would go")
    assert load_trace(path, cache=True).kernels.height == 3


def test_results_round_trip_and_key(tmp_path):
    """Analysis results kept under their key come back equal (dtypes included); a changed
    input named in the key (ncu CSV here) misses; an unwritable cache is skipped."""
    import polars as pl

    from decodeprof.analyses import run_all
    from decodeprof.load.cache import read_results, results_key, write_results

    path = build_export(tmp_path / "trace.sqlite", steps=3)
    ncu = tmp_path / "ncu.csv"
    ncu.write_text("not read here")
    trace = load_trace(path)
    frames = run_all(trace)
    key = results_key(path, ncu_csv=ncu, metrics_json=None, steps=None, outputs={"any": 1})
    assert read_results(path, key, list(frames)) is None
    write_results(path, key, frames, trace.meta, trace.missing, {"decode_steps": ["why"]})
    info, back = read_results(path, key, list(frames))
    assert list(back) == list(frames) and info["missing"] == trace.missing
    for name, frame in frames.items():
        assert back[name].schema == frame.schema and back[name].equals(frame), name
    assert read_results(path, key, ["not_kept"]) is None
    assert read_results(path, {**key, "steps": 4}, list(frames)) is None
    ncu.write_text("changed, longer than before")
    assert read_results(path, results_key(path, ncu_csv=ncu, metrics_json=None, steps=None, outputs={"any": 1}),
                        list(frames)) is None

    (tmp_path / "ro").mkdir()
    other = build_export(tmp_path / "ro" / "trace.sqlite", steps=1)
    cache_dir(other).write_text("a file where the cache folder would go")
    write_results(other, key, {"x": pl.DataFrame({"a": [1]})}, {}, (), {})  # no error
    assert read_results(other, key, ["x"]) is None


def test_cache_keeps_the_columns_read_and_serves_subsets(tmp_path, monkeypatch):
    """A load with `columns` keeps only those; a later load asking for more reads the export
    again (and keeps all), one asking for a subset of the kept columns is served."""
    import decodeprof.load.cache as cache_mod

    path = build_export(tmp_path / "trace.sqlite", steps=3)
    reads = []
    real = cache_mod.read_export
    monkeypatch.setattr(cache_mod, "read_export", lambda p, columns=None: reads.append(columns) or real(p, columns))
    few = {"kernels": ("start_ns", "end_ns", "name")}
    pruned = load_trace(path, cache=True, columns=few)
    assert pruned.kernels.columns == ["start_ns", "end_ns", "name"] and len(reads) == 1
    assert load_trace(path, cache=True, columns=few).kernels.equals(pruned.kernels) and len(reads) == 1
    whole = load_trace(path, cache=True)
    assert len(reads) == 2 and whole.kernels.equals(load_trace(path).kernels)
    again = load_trace(path, cache=True, columns=few)
    assert len(reads) == 2 and again.kernels.equals(pruned.kernels)


def test_an_edit_with_size_and_mtime_restored_is_not_served_from_the_cache(tmp_path):
    """The cache keys on a content fingerprint, not size and mtime alone: a kernel's end time
    changed in place (same size), the file's mtime put back, gives the new results."""
    import json
    import os
    import shutil
    import sqlite3
    import subprocess
    import sys

    export = tmp_path / "t.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "h100" / "graph" / "trace.sqlite", export)

    def total() -> int:
        out = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(export), "--cache", "--json",
                              "--only", "kernel_summary"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return sum(r["total_ns"] for r in json.loads(out.stdout)["analyses"]["kernel_summary"])

    before = total()
    st = export.stat()
    with sqlite3.connect(export) as con:
        con.execute('UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = "end" + 1000 WHERE rowid = 1')
    os.utime(export, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert export.stat().st_size == st.st_size and export.stat().st_mtime_ns == st.st_mtime_ns
    assert total() == before + 1000
