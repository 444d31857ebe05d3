"""`decodeprof analyze`: tables, --json (documented shape), --csv, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from decodeprof.analyses import ANALYSES, run_all
from decodeprof.cli import app

DATA = Path(__file__).parent / "data"
GRAPH = DATA / "h100" / "graph"
CPU = DATA / "cpu_nsys2022" / "trace.sqlite"
runner = CliRunner()


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"fixture {path} not present")
    return path


def test_help():
    r = runner.invoke(app, ["analyze", "--help"])
    assert r.exit_code == 0 and "--format" in r.output and "--output" in r.output and "--steps" in r.output


def test_tables_on_graph_run_folder():
    r = runner.invoke(app, ["analyze", str(need(GRAPH)), "--rows", "3"])
    assert r.exit_code == 0, r.output
    for name in ANALYSES:
        assert name in r.output


def test_json_is_the_documented_object():
    r = runner.invoke(app, ["analyze", str(need(GRAPH)), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) == {"version", "trace", "meta", "missing", "empty_because", "dropped", "verdict", "analyses"}
    assert d["dropped"] == []
    assert d["verdict"]["source"] == "decode_slice" and d["verdict"]["steps"].startswith("192 decode steps: 3 'decode' range(s)")
    assert "kernel-bound" in [f["title"] for f in d["verdict"]["findings"]]
    assert d["version"] == 1 and list(d["analyses"]) == list(ANALYSES)
    decode = [row for row in d["analyses"]["nvtx_projection"] if row["range_name"] == "decode"][0]
    assert decode["graph_launches"] == 3
    assert d["analyses"]["kernel_dram"], "ncu.csv beside the trace is picked up"


def test_json_reports_missing_inputs_on_cpu_only_trace():
    r = runner.invoke(app, ["analyze", str(need(CPU)), "--json"])
    d = json.loads(r.output)
    assert any(m["frame"] == "kernels" for m in d["missing"])
    assert d["analyses"]["kernel_summary"] == [] and d["empty_because"]["kernel_summary"]
    assert len(d["analyses"]["decode_steps"]) == 12  # 3 measured iterations x 4 step ranges (warm-up left out), CPU side only


def test_csv_writes_one_file_per_analysis(tmp_path):
    r = runner.invoke(app, ["analyze", str(need(CPU)), "--csv", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.csv")) == sorted(ANALYSES)


def test_only_and_exclusive_outputs(tmp_path):
    r = runner.invoke(app, ["analyze", str(need(CPU)), "--json", "--only", "decode_steps"])
    assert list(json.loads(r.output)["analyses"]) == ["decode_steps"]
    assert runner.invoke(app, ["analyze", str(CPU), "--json", "--csv", str(tmp_path)]).exit_code != 0
    bad = runner.invoke(app, ["analyze", str(CPU), "--only", "nope"])
    assert bad.exit_code != 0


def test_missing_file_is_a_clear_error(tmp_path):
    r = runner.invoke(app, ["analyze", str(tmp_path / "nope.sqlite")])
    assert r.exit_code != 0
    assert "nope.sqlite" in str(r.exception) or "nope.sqlite" in r.output


def test_streamed_json_equals_the_documented_object():
    """--json streams each frame through polars' writer; it must parse to exactly the object
    analyses_json builds row by row (non-finite floats as null included)."""
    import io
    import json as _json

    from decodeprof.analyses import run_all
    from decodeprof.commands.analyze import analyses_json, write_analyses_json
    from decodeprof.load import load_trace

    for name in ("baseline", "graph"):
        trace = load_trace(Path(__file__).parent / "data" / "h100" / name)
        frames = run_all(trace)
        buf = io.BytesIO()
        write_analyses_json(trace, frames, "x", buf)
        assert _json.loads(buf.getvalue()) == _json.loads(_json.dumps(analyses_json(trace, frames, "x")))


def test_cache_serves_results_without_reading_the_trace(tmp_path, monkeypatch):
    """--cache keeps each analysis' result as Parquet beside the export: a second run prints
    the same JSON without loading the trace (the frame loader is never called and the frames
    cache, removed, is not rebuilt); a changed metrics.json or --steps computes anew."""
    import os
    import shutil

    import decodeprof.load.cache as cache_mod
    import decodeprof.load.nsys_sqlite as nsys_sqlite

    run = tmp_path / "graph"
    shutil.copytree(need(GRAPH), run, ignore=shutil.ignore_patterns("*.decodeprof-cache"))
    export = run / "trace.sqlite"
    reads = []
    real = nsys_sqlite.read_export
    monkeypatch.setattr(nsys_sqlite, "read_export", lambda p, *a: reads.append(p) or real(p, *a))
    monkeypatch.setattr(cache_mod, "read_export", lambda p, *a: reads.append(p) or real(p, *a))

    first = runner.invoke(app, ["analyze", str(run), "--json", "--cache"])
    assert first.exit_code == 0, first.output
    assert len(reads) == 1
    plain = runner.invoke(app, ["analyze", str(run), "--json"])
    assert json.loads(plain.output) == json.loads(first.output)
    folder = cache_mod.cache_dir(export)
    for frame in folder.glob("*.parquet"):  # the frames cache (results live in results-*/)
        frame.unlink()
    (folder / "key.json").unlink()
    reads.clear()

    second = runner.invoke(app, ["analyze", str(run), "--json", "--cache"])
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert reads == [] and not (folder / "key.json").exists(), "served from the results cache"
    tables = runner.invoke(app, ["analyze", str(run), "--cache", "--rows", "3"])
    only = runner.invoke(app, ["analyze", str(run), "--json", "--cache", "--only", "launch_overhead"])
    assert reads == [] and all(name in tables.output for name in ANALYSES)
    assert json.loads(only.output)["analyses"] == {"launch_overhead": json.loads(first.output)["analyses"]["launch_overhead"]}

    metrics = run / "metrics.json"
    data = json.loads(metrics.read_text())
    data["weight_bytes_per_step"] = 2 * data["weight_bytes_per_step"]
    metrics.write_text(json.dumps(data))
    st = metrics.stat()
    os.utime(metrics, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = runner.invoke(app, ["analyze", str(run), "--json", "--cache"])
    assert third.exit_code == 0, third.output
    assert len(reads) == 1, "a changed metrics.json invalidates the results"
    assert third.output != first.output
    assert json.loads(third.output) == json.loads(runner.invoke(app, ["analyze", str(run), "--json"]).output)
    assert len(list(folder.glob("results-*"))) == 1, "results of the old key are removed"
    steps = runner.invoke(app, ["analyze", str(run), "--json", "--cache", "--steps", "4"])
    assert steps.exit_code == 0 and len(reads) == 2, "--steps is part of the key"


def test_chunked_json_rows_are_the_same_bytes():
    """`analyze --json` after analysing writes big frames a slice at a time (less memory):
    the bytes equal polars' one-shot writer's, whatever the slice size."""
    import io

    from decodeprof.analyses import run_all
    from decodeprof.commands.analyze import write_analyses_json
    from decodeprof.load import load_trace

    trace = load_trace(need(DATA / "h100" / "baseline"))
    frames = run_all(trace)
    whole = io.BytesIO()
    write_analyses_json(trace, frames, "x", whole)
    for rows in (1, 7, 10_000):
        sliced = io.BytesIO()
        write_analyses_json(trace, frames, "x", sliced, chunk_rows=rows)
        assert sliced.getvalue() == whole.getvalue(), rows


def test_terminal_escapes_in_trace_strings_never_reach_the_terminal():
    """A kernel named with an escape sequence and rich markup: the tables and the verdict
    print it inert (no ESC byte, the markup shown as text)."""
    import dataclasses
    import io

    import polars as pl
    from rich.console import Console

    from decodeprof.commands.analyze import render
    from decodeprof.load import load_trace

    t = load_trace(need(GRAPH))
    evil = "\x1b]0;pwned\x07\x1b[31m[bold]k[/bold]"
    t = dataclasses.replace(t, kernels=t.kernels.with_columns(pl.lit(evil).alias("name")))
    out = io.StringIO()
    render(t, run_all(t), Console(file=out, width=200, force_terminal=False), max_rows=3)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "[bold]k[/bold]" in text
