"""ensure_sqlite: reuse, export to a temp name then rename, failure reporting.

Most tests stand a small shell script in for nsys through $NSYS (decodeprof.tools honours
it): the script copies a SYNTHETIC export (tests/test_load_synthetic.py) to the --output
path, or fails. One test, marked nsys, runs the real Nsight Systems when it is installed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from decodeprof.errors import CaptureError, ToolNotFoundError, TraceFileError
from decodeprof.load import ensure_sqlite, load_trace
from test_load_synthetic import build_export

CPU_2022 = Path(__file__).parent / "data" / "cpu_nsys2022"


def _exported_from(export: Path, report: str) -> Path:
    """Give a SYNTHETIC export the metadata nsys writes: the report it was exported from."""
    with sqlite3.connect(export) as con:
        con.execute("CREATE TABLE IF NOT EXISTS META_DATA_EXPORT (name TEXT, value TEXT)")
        con.execute("INSERT INTO META_DATA_EXPORT VALUES ('EXPORT_PARAM_INPUT_PATH_ABS', ?)", (report,))
    return export


def _fake_nsys(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-nsys"
    # Called as: nsys export --type sqlite --output OUT REP  ($5 is OUT)
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.fixture
def rep(tmp_path):
    path = tmp_path / "run" / "trace.nsys-rep"
    path.parent.mkdir()
    path.write_bytes(b"NVIDIA Tegra Profiler Report 1.\n(a fake body: the fake nsys below never reads it)")
    return path


def test_exports_beside_the_report_and_logs(tmp_path, rep, monkeypatch):
    source = build_export(tmp_path / "src.sqlite", steps=2)
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, f'echo "exporting $6"; cp {source} "$5"')))
    log = tmp_path / "export.log"
    out = ensure_sqlite(rep, log_path=log)
    assert out == rep.with_suffix(".sqlite") and out.read_bytes() == source.read_bytes()
    assert "exporting" in log.read_text() and "--type sqlite" in log.read_text()
    assert sorted(p.name for p in rep.parent.iterdir()) == ["trace.nsys-rep", "trace.sqlite"]  # no temp left
    assert load_trace(rep).kernels.height == 6  # 2 steps x 3 kernels, through the .nsys-rep path


def test_reuses_a_current_export_without_running_nsys(tmp_path, rep, monkeypatch):
    out = _exported_from(build_export(rep.with_suffix(".sqlite"), steps=1), str(rep))
    os.utime(out, (time.time() + 10, time.time() + 10))
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, "echo should not run; exit 3")))
    assert ensure_sqlite(rep) == out


def test_reexports_a_stale_export_of_this_report(tmp_path, rep, monkeypatch):
    source = _exported_from(build_export(tmp_path / "src.sqlite", steps=3), str(rep))
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, f'cp {source} "$5"')))
    stale = _exported_from(build_export(rep.with_suffix(".sqlite"), steps=1), str(rep))
    os.utime(stale, (time.time() - 100, time.time() - 100))
    assert ensure_sqlite(rep) == stale and stale.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("neighbour", ["garbage", "another report's export", "an export that names no report",
                                       "another folder's report of the same name"])
def test_a_neighbour_that_is_not_this_reports_export_is_never_touched(tmp_path, rep, monkeypatch, capfd, neighbour):
    """trace.sqlite beside trace.nsys-rep, newer or older, but not provably its export: it is
    neither analysed in the report's place nor overwritten; the export goes to a new name,
    said on stderr, and is reused from there."""
    source = _exported_from(build_export(tmp_path / "src.sqlite", steps=3), str(rep))
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, f'cp {source} "$5"')))
    other = rep.with_suffix(".sqlite")
    if neighbour == "garbage":
        other.write_bytes(b"garbage that is newer than the report")
    else:
        build_export(other, steps=1)
        if neighbour == "another report's export":
            _exported_from(other, "other.nsys-rep")
        elif neighbour == "another folder's report of the same name":
            _exported_from(other, "/elsewhere/hf_eager/trace.nsys-rep")
    os.utime(other, (time.time() + 10, time.time() + 10))
    before = other.read_bytes()
    out = ensure_sqlite(rep)
    assert out == rep.with_suffix(".export.sqlite") and out.read_bytes() == source.read_bytes()
    assert other.read_bytes() == before
    assert "not this report's export" in capfd.readouterr().err
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, "echo should not run; exit 3")))
    os.utime(out, (time.time() + 20, time.time() + 20))
    assert ensure_sqlite(rep) == out


def test_failure_names_the_report_shows_nsys_output_and_leaves_nothing(tmp_path, rep, monkeypatch):
    body = 'echo "Importer error: Version not supported" >&2; echo partial > "$5"; exit 1'
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, body)))
    with pytest.raises(CaptureError) as info:
        ensure_sqlite(rep)
    assert str(rep) in info.value.message and "Version not supported" in info.value.message
    assert ".sqlite" in info.value.hint
    assert sorted(p.name for p in rep.parent.iterdir()) == ["trace.nsys-rep"]


def test_nsys_that_writes_no_valid_export_fails(tmp_path, rep, monkeypatch):
    monkeypatch.setenv("NSYS", str(_fake_nsys(tmp_path, 'echo half > "$5"; exit 0')))
    with pytest.raises(CaptureError):
        ensure_sqlite(rep)
    assert not rep.with_suffix(".sqlite").exists()


def test_missing_nsys_is_a_tool_error(rep, monkeypatch, tmp_path):
    monkeypatch.setenv("NSYS", str(tmp_path / "no-such-nsys"))
    with pytest.raises(ToolNotFoundError):
        ensure_sqlite(rep)


def test_missing_report(tmp_path):
    with pytest.raises(TraceFileError):
        ensure_sqlite(tmp_path / "absent.nsys-rep")


def _real_nsys():
    from decodeprof.tools import find_nsys

    try:
        return find_nsys()
    except ToolNotFoundError:
        return None


@pytest.mark.nsys
@pytest.mark.skipif(_real_nsys() is None, reason="Nsight Systems not installed (scripts/install_nsys.sh)")
def test_real_nsys_exports_the_2022_report(tmp_path):
    rep = tmp_path / "trace.nsys-rep"
    shutil.copy(CPU_2022 / "trace.nsys-rep", rep)
    out = ensure_sqlite(rep)
    count = "SELECT COUNT(*) FROM NVTX_EVENTS"
    with sqlite3.connect(out) as a, sqlite3.connect(CPU_2022 / "trace.sqlite") as b:
        assert a.execute(count).fetchone() == b.execute(count).fetchone()
