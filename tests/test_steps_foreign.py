"""The decode-step model on traces of code not written here (tests/data/foreign, see its README):
transformers generate() with the default and the static cache, a gpt-fast-style loop eager,
compiled and with NVTX ranges of its own. Expected values come from each capture's
generation.json (tokens generated) and from plain SQL on the exports (sqlite3, no decodeprof
code on the expected side)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from decodeprof.analyses import run
from decodeprof.analyses.steps import MIN_STEPS, find_loop, step_model
from decodeprof.errors import DecodeprofError
from decodeprof.load import load_trace
from decodeprof.trace import StepRanges

FOREIGN = Path(__file__).parent / "data" / "foreign"
SOURCES = {"hf_eager": "op_pattern", "hf_static": "graph_launch", "gptfast": "op_pattern",
           "gptfast_compiled": "op_pattern", "gptfast_nvtx": "op_pattern"}


def db(name: str) -> Path:
    path = FOREIGN / name / "trace.sqlite"
    if not path.is_file():
        pytest.fail(f"fixture {path} not present")
    return path


def sql(name: str, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db(name)}?mode=ro", uri=True) as con:
        return con.execute(query).fetchall()


@pytest.fixture(scope="module")
def traces() -> dict:
    return {name: load_trace(db(name)) for name in SOURCES}


def generated(name: str) -> int:
    return json.loads((FOREIGN / name / "generation.json").read_text())["new_tokens"]


# Kernels whose launching call (same process, same thread) starts in [lo, hi): plain SQL.
KERNELS_IN = """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
  ON r.correlationId = k.correlationId AND r.globalTid / 16777216 = k.globalPid / 16777216
  WHERE r.globalTid = {tid} AND r.start >= {lo} AND r.start < {hi}"""


@pytest.mark.parametrize("name", list(SOURCES))
def test_steps_found_are_the_tokens_generated_less_one(traces, name):
    model = step_model(traces[name])
    assert model.source == SOURCES[name], model.tried
    assert abs(model.steps.height - (generated(name) - 1)) <= 1, model.summary
    assert model.summary.startswith(f"{model.steps.height} decode steps: ")
    assert not model.prefill.is_empty()  # what precedes the loop: the prompt's forward


@pytest.mark.parametrize("name", list(SOURCES))
def test_kernels_per_step_equal_sql_counts_in_each_step_window(traces, name):
    """Every step but a run's last (whose window ends at its own last call) holds exactly the
    kernels SQL finds launched from its first call to the next step's first call."""
    steps = step_model(traces[name]).steps.sort("step_index")
    tid = sql(name, "SELECT globalTid FROM CUPTI_ACTIVITY_KIND_RUNTIME GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")[0][0]
    starts = steps["cpu_start_ns"].to_list()
    want = [sql(name, KERNELS_IN.format(tid=tid, lo=lo, hi=hi))[0][0] for lo, hi in zip(starts, starts[1:])]
    assert steps["kernels"].to_list()[:-1] == want


def test_graph_steps_are_one_graph_launch_each_with_its_replayed_kernels(traces):
    """hf_static: 63 cudaGraphLaunch calls (SQL), one per step; each step holds the kernels that
    launch replays (same correlation id) plus the ones launched one by one until the next."""
    launches = sql("hf_static", """SELECT r.start, (SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k
        WHERE k.correlationId = r.correlationId) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON r.nameId = s.id
        WHERE s.value LIKE 'cudaGraphLaunch%' ORDER BY r.start""")
    steps = step_model(traces["hf_static"]).steps.sort("step_index")
    assert len(launches) == steps.height == generated("hf_static") - 1
    assert steps["cpu_start_ns"].to_list() == [start for start, _ in launches]
    assert all(n == launches[0][1] > 0 for _, n in launches)
    per = run("decode_step_summary", traces["hf_static"]).row(0, named=True)
    assert per["launches"] < 0.5 * run("decode_step_summary", traces["hf_eager"])["launches"][0]


def test_pattern_steps_equal_the_nvtx_steps_of_the_same_trace(traces):
    """gptfast_nvtx marks each decode step with its own NVTX range ("engine" domain): the steps
    the op pattern finds without them hold the kernels SQL counts per range."""
    per_range = [n for (n,) in sql("gptfast_nvtx", """WITH t AS (SELECT e.start, e.end, e.globalTid FROM NVTX_EVENTS e
        JOIN StringIds s ON e.textId = s.id WHERE s.value = 'next_token')
        SELECT (SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
                ON r.correlationId = k.correlationId WHERE r.globalTid = t.globalTid AND r.start >= t.start AND r.start < t.end)
        FROM t ORDER BY t.start""")]
    found = step_model(traces["gptfast_nvtx"]).steps
    assert len(per_range) == generated("gptfast_nvtx") - 1 == found.height
    assert found["kernels"].to_list() == per_range
    named = step_model(dataclasses.replace(traces["gptfast_nvtx"], step_ranges=StepRanges(step="engine:next_token")))
    assert named.source == "step_range" and named.steps["kernels"].to_list() == per_range
    inside = step_model(dataclasses.replace(traces["gptfast_nvtx"], step_ranges=StepRanges(decode="decode_loop")))
    assert inside.source == "op_pattern" and inside.steps["kernels"].to_list() == per_range


def test_a_range_name_that_matches_nothing_lists_the_ranges(traces):
    with pytest.raises(DecodeprofError, match=r"no NVTX range matches 'step' \(ranges in the trace: engine:decode_loop, engine:next_token\)"):
        step_model(dataclasses.replace(traces["gptfast_nvtx"], step_ranges=StepRanges(step="step")))
    with pytest.raises(DecodeprofError, match="not a valid regular expression"):
        step_model(dataclasses.replace(traces["gptfast_nvtx"], step_ranges=StepRanges(step="engine:(")))


def test_compiled_steps_keep_their_varying_copies(traces):
    """torch.compile's loop clones its token with one or two device copies per step: the pattern
    is read from the kernels, so the steps stay whole (24 kernels each, SQL-counted above) and
    the copies stay in the step they follow."""
    steps = step_model(traces["gptfast_compiled"]).steps
    assert set(steps["kernels"]) == {24} and steps["ops"].min() < steps["ops"].max()


def _decode(trace) -> dict:
    return run("decode_step_summary", trace).row(0, named=True)


def test_eager_generate_is_host_bound_and_static_cache_removes_most_idle(traces):
    """The issue's numbers, on these captures: the eager step leaves the GPU idle > 90% of the
    time; the static cache's graph cuts the median idle per step by more than half."""
    eager, static = _decode(traces["hf_eager"]), _decode(traces["hf_static"])
    assert eager["gpu_idle_pct"] > 90 and eager["syncs"] >= 1
    assert static["gpu_idle_ns"] < 0.5 * eager["gpu_idle_ns"]


# --- find_loop on token sequences built here (what each test says), not traces ----------------

def test_find_loop_prefers_the_step_over_a_layer_loop_inside_it():
    """A 6-layer step of 5 ops per layer plus 4 once-per-step ops, 40 steps: the layer repeats
    too but breaks at every step boundary; the step (34 ops) is found, from its first op."""
    layer, head, tail = [10, 11, 12, 13, 14], [1, 2], [3, 4]
    step = head + layer * 6 + tail
    loop = find_loop(np.array([90, 91, 92] + step * 40))
    assert loop.period == len(step) and loop.runs == ((3, 40),)


def test_find_loop_finds_each_generate_call_of_a_capture():
    """Three requests, each a distinct prefill then 20 steps of 8 ops: three runs of 20."""
    seq = []
    for r in range(3):
        seq += [50 + r, 60, 61, 62] + list(range(8)) * 20
    loop = find_loop(np.array(seq))
    assert loop.period == 8 and [b for _, b in loop.runs] == [20, 20, 20]


def test_find_loop_bridges_an_op_that_changes_with_the_sequence_length():
    """An attention kernel switching variant halfway (token 7 -> 70) does not split the loop."""
    seq = [40, 41] + [0, 1, 2, 3, 4, 5, 6, 7] * 15 + [0, 1, 2, 3, 4, 5, 6, 70] * 15
    loop = find_loop(np.array(seq))
    assert loop.period == 8 and loop.runs == ((2, 30),)


def test_find_loop_needs_min_steps_repeats():
    assert find_loop(np.array([1, 2, 3] * (MIN_STEPS - 1) + [9])) is None
    assert find_loop(np.arange(100)) is None


# --- the commands on foreign traces ------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "decodeprof", *args], capture_output=True, text=True, timeout=600)


def test_analyze_prints_the_verdict_first_and_keeps_it_in_json():
    out = _cli("analyze", str(db("hf_eager")))
    assert out.returncode == 0, out.stderr
    verdict, tables = out.stdout.index("What limits this decode"), out.stdout.index("kernel_summary")
    assert verdict < tables and "63 decode steps: repeating pattern of" in out.stdout
    assert "launch/host-bound" in out.stdout[verdict:tables]
    doc = json.loads(_cli("analyze", str(db("hf_static")), "--json").stdout)
    assert doc["verdict"]["source"] == "graph_launch" and doc["verdict"]["steps"].startswith("63 decode steps: one cudaGraphLaunch each")
    assert any(f["kind"] == "limit" for f in doc["verdict"]["findings"])
    summary = doc["analyses"]["decode_step_summary"][0]
    assert summary["found"] == doc["verdict"]["steps"] and summary["steps"] == 63


def test_analyze_with_named_ranges_and_a_bad_name():
    ok = _cli("analyze", str(db("gptfast_nvtx")), "--json", "--step-range", "engine:next_.*")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"]["source"] == "step_range"
    bad = _cli("analyze", str(db("gptfast_nvtx")), "--step-range", "nope")
    assert bad.returncode == 2 and "no NVTX range matches 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_report_names_foreign_traces_by_file_and_fills_per_step_columns(tmp_path):
    for name in ("hf_eager", "hf_static"):
        (tmp_path / f"{name}.sqlite").write_bytes(db(name).read_bytes())
    out = _cli("report", str(tmp_path / "hf_eager.sqlite"), str(tmp_path / "hf_static.sqlite"), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Baseline: hf_eager" in html and "<h3>hf_static</h3>" in html and "hf_eager (2)" not in html
    assert "launch/host-bound" in html and "fewer launches" in html


def test_diff_aligns_the_steps_of_two_foreign_traces():
    out = _cli("diff", str(db("hf_eager")), str(db("hf_static")), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    text = json.dumps(doc)
    assert "op_pattern" in text and "graph_launch" in text
    assert doc["verdict"].startswith("hf_static is") or "faster" in doc["verdict"]


def _second_process(src: Path, dst: Path) -> None:
    """A copy of `src` with every GPU op and runtime call repeated as a second process on a
    second device, 0.3 ms later (built here with SQL: a two-rank trace of the same loop)."""
    import shutil

    shutil.copy(src, dst)
    shift = {"start": "start + 300000", "end": '"end" + 300000'}
    with sqlite3.connect(dst) as con:
        for table, moved in (("CUPTI_ACTIVITY_KIND_KERNEL", {"globalPid": "globalPid + 16777216", "deviceId": "deviceId + 1"}),
                             ("CUPTI_ACTIVITY_KIND_MEMCPY", {"globalPid": "globalPid + 16777216", "deviceId": "deviceId + 1"}),
                             ("CUPTI_ACTIVITY_KIND_RUNTIME", {"globalTid": "globalTid + 16777216 * 16777216"})):
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            sel = ", ".join({**shift, **moved}.get(c, f'"{c}"') for c in cols)
            con.execute(f"INSERT INTO {table} SELECT {sel} FROM {table}")


def test_each_process_keeps_its_own_loop(tmp_path):
    """Two processes launching the same loop: each is its own decode run of 63 steps of 37
    kernels (one merged launch sequence interleaved them into nonsense)."""
    two = tmp_path / "two.sqlite"
    _second_process(db("gptfast"), two)
    model = step_model(load_trace(two))
    assert model.summary.startswith("126 decode steps in 2 processes")
    assert model.steps.group_by("decode_index").len().sort("decode_index")["len"].to_list() == [63, 63]
    assert set(model.steps["kernels"]) == {37} and model.steps["step_index"].to_list() == list(range(126))


def test_a_range_name_with_a_colon_is_matched_whole(traces):
    """"gen:next_token" names a range (no domain) before it is read as domain:name."""
    t = traces["gptfast_nvtx"]
    renamed = t.nvtx.with_columns(pl.when(pl.col("text") == "next_token").then(pl.lit("gen:next_token"))
                                  .otherwise(pl.col("text")).alias("text"), pl.lit("").alias("domain"))
    model = step_model(dataclasses.replace(t, nvtx=renamed, step_ranges=StepRanges(step="gen:next_token")))
    assert model.source == "step_range" and model.steps.height == 63


def test_find_loop_takes_a_loop_of_exactly_min_steps_short_ops():
    assert find_loop(np.array([1, 1, 1, 1])) == find_loop(np.array([7] * MIN_STEPS + [7]))
    assert find_loop(np.array([1, 1, 1, 1])).period == 1


def test_verdict_honours_steps_for_a_graph_trace_without_metrics(tmp_path):
    bare = tmp_path / "graph.sqlite"
    bare.write_bytes((Path(__file__).parent / "data" / "h200" / "graph" / "trace.sqlite").read_bytes())
    out = _cli("analyze", str(bare), "--json", "--steps", "64")
    doc = json.loads(out.stdout)
    assert doc["verdict"]["source"] == "decode_slice" and doc["verdict"]["steps"].startswith("192 decode steps")
