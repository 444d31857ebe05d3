"""`decodeprof timeline`: Chrome trace-event JSON (what Perfetto's viewer opens), checked
against the Trace Event Format's rules for the two phases it writes, and its events against
the trace's own rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses.steps import step_model
from decodeprof.load import load_trace
from decodeprof.perfetto import trace_events, window

DATA = Path(__file__).parent / "data"


def check_trace_event_format(doc: dict) -> None:
    """The JSON Object Format: traceEvents, each a complete event (name, cat, ph "X", ts and
    dur in µs, >= 0, pid, tid) or a metadata event naming a process or thread."""
    assert set(doc) >= {"traceEvents"} and doc.get("displayTimeUnit") in (None, "ms", "ns")
    for e in doc["traceEvents"]:
        assert isinstance(e["name"], str) and isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "X":
            assert isinstance(e["cat"], str) and e["ts"] >= 0 and e["dur"] >= 0
            assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
        else:
            assert e["ph"] == "M" and e["name"] in ("process_name", "process_sort_index", "thread_name") and e["args"]


def test_whole_run_holds_every_kernel_copy_range_and_step():
    t = load_trace(DATA / "h200" / "graph")
    doc = trace_events(t, window(t, "all"))
    check_trace_event_format(doc)
    by_cat = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            by_cat[e["cat"]] = by_cat.get(e["cat"], 0) + 1
    assert by_cat["kernel"] == t.kernels.height
    assert by_cat["copy"] == t.memcpys.height + t.memsets.height
    assert by_cat["decode_step"] == step_model(t).steps.height == 192
    assert by_cat["cuda_api"] == t.runtime.height
    json.dumps(doc, allow_nan=False)


def test_median_step_window_of_a_foreign_trace():
    """hf_static's median step: its graph launch, the 34 kernels it replays and the ops
    launched one by one, on one GPU stream, inside the window."""
    t = load_trace(DATA / "foreign" / "hf_static" / "trace.sqlite")
    model = step_model(t)
    win = window(t, "median-step")
    doc = trace_events(t, win)
    check_trace_event_format(doc)
    steps = [e for e in doc["traceEvents"] if e.get("cat") == "decode_step"]
    assert any(e["name"].startswith(f"step {model.median_index} ") for e in steps)
    kernels = [e for e in doc["traceEvents"] if e.get("cat") == "kernel"]
    assert len(kernels) >= model.step_ops(model.median_index).filter(pl.col("op") == "kernel").height
    assert all(0 <= e["ts"] <= (win.end_ns - win.start_ns) / 1e3 for e in kernels)


def test_cli_writes_the_file_and_refuses_bad_windows(tmp_path):
    out = tmp_path / "step.json"
    ok = subprocess.run([sys.executable, "-m", "decodeprof", "timeline", str(DATA / "h200" / "baseline"), "-o", str(out)],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    check_trace_event_format(json.loads(out.read_text()))
    bad = subprocess.run([sys.executable, "-m", "decodeprof", "timeline", str(DATA / "h200" / "baseline"), "-o", str(out),
                          "--window", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown window 'nope'" in bad.stderr


@pytest.mark.parametrize("steps", [0, 5])
def test_chosen_step(steps):
    t = load_trace(DATA / "h200" / "baseline")
    win = window(t, "median-step", step=steps)
    assert f"decode step {steps} (chosen" in win.what


def test_step_with_another_window_is_an_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "decodeprof", "timeline", str(DATA / "h200" / "graph"), "-o",
                          str(tmp_path / "t.json"), "--window", "decode", "--step", "3"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and "--window median-step" in out.stderr
