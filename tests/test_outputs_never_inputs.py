"""Outputs never destroy inputs: `-o` / `--json-out` pointing at an input, a trace, or a
non-regular file is refused before any work, and the file is left byte for byte as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

H100 = Path(__file__).parent / "data" / "h100"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "decodeprof", *args], capture_output=True, text=True, timeout=600)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture()
def run_copy(tmp_path):
    for name in ("baseline", "graph"):
        shutil.copytree(H100 / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("victim", ["trace.sqlite", "metrics.json", "trace.nsys-rep", "ncu.csv"])
def test_report_and_diff_output_on_an_input_is_refused(run_copy, victim):
    graph = run_copy / "graph"
    before = _digest(graph)
    for args in (("report", str(run_copy / "baseline"), str(graph), "-o", str(graph / victim)),
                 ("diff", str(run_copy / "baseline"), str(graph), "-o", str(graph / victim))):
        out = _cli(*args)
        assert out.returncode == 2, out.stdout
        assert "error:" in out.stderr and "Traceback" not in out.stderr
        assert _digest(graph) == before


def test_a_trace_elsewhere_is_not_overwritten(run_copy, tmp_path):
    other = tmp_path / "other.sqlite"
    shutil.copy(run_copy / "graph" / "trace.sqlite", other)
    renamed = tmp_path / "kept.html"  # a trace under another name is recognised by its header
    shutil.copy(run_copy / "graph" / "trace.sqlite", renamed)
    for target in (other, renamed):
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        out = _cli("report", str(run_copy / "baseline"), "-o", str(target))
        assert out.returncode == 2 and "holds a trace" in out.stderr
        assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_not_replaced(run_copy, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = _cli("report", str(run_copy / "baseline"), "-o", str(fifo))
    assert out.returncode == 2 and "not a regular file" in out.stderr
    assert fifo.exists() and not fifo.is_file()


def test_a_report_beside_its_inputs_is_fine(run_copy):
    out = _cli("report", str(run_copy / "baseline"), str(run_copy / "graph"), "-o", str(run_copy / "graph" / "report.html"))
    assert out.returncode == 0, out.stderr


def test_a_write_ahead_log_export_is_read_without_touching_it(tmp_path):
    """A copy of an export switched to WAL mode with rows still in its -wal file: analyze
    reads the rows in the log (the kernel count SQL sees) and leaves both files as they were,
    with no -shm made beside them."""
    import json
    import sqlite3

    src = tmp_path / "src.sqlite"
    shutil.copy(H100 / "graph" / "trace.sqlite", src)
    con = sqlite3.connect(src)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL SELECT * FROM CUPTI_ACTIVITY_KIND_KERNEL LIMIT 5")
    # five more kernels (not copies: a copy of a row is dropped as one), only in the log
    con.execute("UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET correlationId = correlationId + 1000000 "
                "WHERE rowid > (SELECT max(rowid) - 5 FROM CUPTI_ACTIVITY_KIND_KERNEL)")
    con.commit()
    kernels = con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    work = tmp_path / "in"
    work.mkdir()
    shutil.copy(src, work / "t.sqlite")
    shutil.copy(f"{src}-wal", work / "t.sqlite-wal")
    con.close()
    before = _digest(work)
    tmp = tmp_path / "tmp"  # where the log is read from a copy: nothing may stay behind there either
    tmp.mkdir()
    out = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(work / "t.sqlite"), "--json", "--only",
                          "kernel_summary"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TMPDIR": str(tmp)})
    assert out.returncode == 0, out.stderr
    assert not list(tmp.iterdir())
    assert sum(r["count"] for r in json.loads(out.stdout)["analyses"]["kernel_summary"]) == kernels
    assert _digest(work) == before and sorted(p.name for p in work.iterdir()) == ["t.sqlite", "t.sqlite-wal"]


def test_the_unprofiled_metrics_of_an_input_run_are_an_input(tmp_path):
    run = tmp_path / "graph"
    shutil.copytree(Path(__file__).parent / "data" / "h200" / "graph", run)
    before = _digest(run)
    for args in (("timeline", str(run), "-o", str(run / "metrics.unprofiled.json")),
                 ("report", str(run), "-o", str(run / "metrics.unprofiled.json"))):
        out = _cli(*args)
        assert out.returncode == 2 and "one of this command's inputs" in out.stderr
    assert _digest(run) == before
