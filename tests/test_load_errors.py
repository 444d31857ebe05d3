"""Bad input to decodeprof.load: each case is one TraceFileError naming the file, the problem
and the fix. Inputs are built here (a SYNTHETIC export from tests/test_load_synthetic.py
is the valid file that gets damaged)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from decodeprof.errors import TraceFileError
from decodeprof.load import load_trace
from test_load_synthetic import build_export


def _fails(path, *words):
    with pytest.raises(TraceFileError) as info:
        load_trace(path)
    err = info.value
    assert str(path) in err.message
    for word in words:
        assert word in err.message
    assert err.hint  # says what to do
    return err


def test_missing_file(tmp_path):
    _fails(tmp_path / "nope.sqlite", "no such file")


def test_missing_report(tmp_path):
    _fails(tmp_path / "nope.nsys-rep", "no such report")


def test_a_text_file_named_nsys_rep_is_not_sent_to_nsys(tmp_path, monkeypatch):
    monkeypatch.setenv("NSYS", "/nonexistent")  # nsys must not even be looked for
    path = tmp_path / "trace.nsys-rep"
    path.write_text("hello\n")
    _fails(path, "not an Nsight Systems report")


def test_truncated_export(tmp_path):
    path = build_export(tmp_path / "t.sqlite", steps=20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _fails(path, "truncated")


def test_file_cut_inside_the_header(tmp_path):
    path = tmp_path / "t.sqlite"
    path.write_bytes(build_export(tmp_path / "full.sqlite").read_bytes()[:50])
    _fails(path, "not an SQLite database")


def test_not_sqlite(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("start,end\n1,2\n")
    _fails(path, "not an SQLite database")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    _fails(path, "not an SQLite database")


def test_sqlite_that_is_not_an_nsys_export(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    _fails(path, "not an Nsight Systems export")


def test_corrupt_pages(tmp_path):
    path = build_export(tmp_path / "c.sqlite", steps=50)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page: len(data)] = b"\xff" * (len(data) - page)  # keep the header page, garble the rest
    path.write_bytes(bytes(data))
    _fails(path)


def test_folder_without_a_trace(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    _fails(tmp_path, "no trace")


def test_folder_with_several_traces_and_no_trace_sqlite(tmp_path):
    build_export(tmp_path / "a.sqlite")
    build_export(tmp_path / "b.sqlite")
    _fails(tmp_path, "several traces")


def test_bad_metrics_json_in_a_run_folder(tmp_path):
    build_export(tmp_path / "trace.sqlite")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(TraceFileError) as info:
        load_trace(tmp_path)
    assert str(tmp_path / "metrics.json") in info.value.message


def test_impossible_rows_are_dropped_counted_and_said(tmp_path):
    """Kernels and a copy ending before they start, and a negative byte count (a
    damaged export, made here from the graph sample with SQL): each row is dropped at the
    loader, counted by reason, and said in every output; no total goes negative."""
    import json
    import shutil
    import subprocess
    import sys

    db = tmp_path / "t.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "h100" / "graph" / "trace.sqlite", db)
    with sqlite3.connect(db) as con:
        con.execute('UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = start - 5000 WHERE rowid IN (1, 2)')
        con.execute('UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET "end" = start - 1 WHERE rowid = 1')
        con.execute("UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET bytes = -1 WHERE rowid = 2")
        kernels = con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    out = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(db), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert sorted(doc["dropped"]) == ["1 memcpys row(s) dropped: ends before it starts",
                                      "1 memcpys row(s) dropped: negative byte count",
                                      "2 kernels row(s) dropped: ends before it starts"]
    summary = doc["analyses"]["kernel_summary"]
    assert sum(r["count"] for r in summary) == kernels - 2 and min(r["min_ns"] for r in summary) >= 0
    tables = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(db), "--only", "kernel_summary"],
                            capture_output=True, text=True, timeout=300)
    assert "dropped: 2 kernels row(s) dropped: ends before it starts" in tables.stdout
    from decodeprof.report import load_variant

    assert "2 kernels row(s) dropped: ends before it starts" in load_variant(db).missing
