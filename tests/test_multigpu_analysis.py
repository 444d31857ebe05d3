"""Multi-GPU analyses (decodeprof/analyses/multigpu.py) and the report's multi-GPU section.

Fixtures: tests/data/cpu-multigpu/{tp1,tp2,tp4,dp2} (gloo ranks on the CPU under Debian's nsys
2022.4, NVTX only; see its README) and tests/data/h100-multigpu/ws1_tp_graph (world size 1,
NCCL, decode in a CUDA graph). Expected values come from plain SQL on each .sqlite export
(sqlite3 here, no decodeprof code on the expected side) and from metrics.json read as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses import ANALYSES, run
from decodeprof.schema import TargetMetrics
from decodeprof.trace import Trace

DATA = Path(__file__).parent / "data"
CPU = DATA / "cpu-multigpu"
WS1 = DATA / "h100-multigpu" / "ws1_tp_graph"
NAMES = ("rank_summary", "collectives_per_step", "comm_overlap")

# NVTX push/pop ranges with their text and pid (nsys packs the pid in bits 24-47 of globalTid),
# and the "measured" range of each thread.
RANGES = """WITH r AS (SELECT e.start, e.end, e.globalTid AS tid, (e.globalTid >> 24) & 16777215 AS pid,
                  coalesce(e.text, s.value) AS name
           FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id WHERE e.eventType = 59 AND e.end IS NOT NULL),
 m AS (SELECT * FROM r WHERE name = 'measured'),
 inm AS (SELECT r.* FROM r JOIN m ON r.tid = m.tid AND r.start >= m.start AND r.start < m.end AND r.name <> 'measured')"""


def sql(folder: Path, query: str) -> list[tuple]:
    db = folder / "trace.sqlite"
    if not db.is_file():
        pytest.fail(f"fixture {db} not present")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(query).fetchall()


_traces: dict[Path, Trace] = {}


def trace(folder: Path) -> Trace:
    from decodeprof.load import load_trace

    if folder not in _traces:
        _traces[folder] = load_trace(folder)
    return _traces[folder]


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


CPU_RUNS = [CPU / n for n in ("tp1", "tp2", "tp4", "dp2")]


@pytest.mark.parametrize("folder", CPU_RUNS + [WS1], ids=lambda p: p.name)
def test_ranks_are_the_processes_with_a_measured_range(folder):
    pids = [p for (p,) in sql(folder, f"{RANGES} SELECT DISTINCT pid FROM m ORDER BY pid")]
    m = metrics(folder)
    assert len(pids) == m["world_size"]
    out = run("rank_summary", trace(folder))
    assert sorted(out["pid"].to_list()) == pids
    assert dict(zip(out["pid"], out["rank"])) == {r["pid"]: r["rank"] for r in m["ranks"]}
    assert set(out["rank_source"]) == {"metrics.json"}


@pytest.mark.parametrize("folder", CPU_RUNS + [WS1], ids=lambda p: p.name)
def test_collective_ranges_and_decode_time_per_rank_match_sql(folder):
    want = {pid: (n, ns) for pid, n, ns in sql(folder, f"""{RANGES}
        SELECT pid, count(*), sum(end - start) FROM inm WHERE name IN ('allreduce', 'allgather') GROUP BY pid""")}
    dec = {pid: (n, ns) for pid, n, ns in sql(folder, f"""{RANGES}
        SELECT pid, count(*), sum(end - start) FROM inm WHERE name = 'decode' GROUP BY pid""")}
    out = run("rank_summary", trace(folder))
    for r in out.iter_rows(named=True):
        assert (r["collective_ranges"], r["collective_range_ns"]) == want.get(r["pid"], (0, 0))
        assert (r["decode_ranges"], r["decode_ns"]) == dec[r["pid"]]
    slowest = max(dec, key=lambda p: dec[p][1])
    assert out.filter(pl.col("slowest"))["pid"].to_list() == [slowest]


@pytest.mark.parametrize("folder", CPU_RUNS, ids=lambda p: p.name)
def test_comm_fraction_and_per_step_match_sql(folder):
    """rank_summary's comm_fraction and comm_per_step_ns from SQL alone: the collective ranges
    that start inside a measured decode range (same thread), over decode time and step ranges."""
    rows = sql(folder, f"""{RANGES}, d AS (SELECT * FROM inm WHERE name = 'decode')
        SELECT d.pid, sum(d.end - d.start),
          sum((SELECT count(*) FROM inm s WHERE s.name = 'step' AND s.tid = d.tid AND s.start >= d.start AND s.start < d.end)),
          sum((SELECT coalesce(sum(c.end - c.start), 0) FROM inm c WHERE c.name IN ('allreduce', 'allgather')
               AND c.tid = d.tid AND c.start >= d.start AND c.start < d.end))
        FROM d GROUP BY d.pid""")
    out = {r["pid"]: r for r in run("rank_summary", trace(folder)).iter_rows(named=True)}
    for pid, decode_ns, steps, comm_ns in rows:
        assert out[pid]["comm_fraction"] == pytest.approx(comm_ns / decode_ns, rel=1e-12)
        assert out[pid]["comm_per_step_ns"] == pytest.approx(comm_ns / steps, rel=1e-12)


def test_tp2_counts():
    """2 measured iterations x (prefill: 1 allreduce + 1 allgather; 4 steps x 2) = 10 + 10 per rank."""
    counts = sql(CPU / "tp2", f"""{RANGES}
        SELECT pid, name, count(*) FROM inm WHERE name IN ('allreduce', 'allgather') GROUP BY pid, name ORDER BY pid, name""")
    assert [c for *_, c in counts] == [10, 10, 10, 10]
    out = run("rank_summary", trace(CPU / "tp2"))
    assert out["collective_ranges"].to_list() == [20, 20]
    assert out["steps"].to_list() == [8, 8] and out["iterations"].to_list() == [2, 2]
    # CPU trace (no CUDA tracing): GPU columns are unmeasured, null rather than 0
    assert out["kernels"].to_list() == [None, None] and out["collective_gpu_ops"].to_list() == [None, None]
    assert out["collective_gpu_source"].to_list() == [None, None]


@pytest.mark.parametrize("folder", [CPU / "tp2", CPU / "tp4", CPU / "dp2"], ids=lambda p: p.name)
def test_comm_per_decode_range_matches_sql(folder):
    want = sql(folder, f"""{RANGES}, d AS (SELECT * FROM inm WHERE name = 'decode')
        SELECT d.pid, d.end - d.start,
          (SELECT count(*) FROM inm s WHERE s.name = 'step' AND s.tid = d.tid AND s.start >= d.start AND s.start < d.end),
          (SELECT coalesce(sum(c.end - c.start), 0) FROM inm c WHERE c.name IN ('allreduce', 'allgather')
             AND c.tid = d.tid AND c.start >= d.start AND c.start < d.end)
        FROM d ORDER BY d.pid, d.start""")
    out = run("collectives_per_step", trace(folder)).sort("pid", "decode_index")
    got = list(zip(out["pid"], out["decode_ns"], out["steps"], out["comm_range_ns"]))
    assert got == want
    assert out["comm_per_step_ns"].to_list() == pytest.approx([c / s for *_, s, c in want])
    assert set(out["comm_source"]) == ({"none"} if folder.name == "dp2" else {"nvtx_range"})


def test_ws1_graph_collectives_are_device_copies():
    """World size 1, decode in a CUDA graph: no NCCL kernel; each step's all_gather is one
    replayed device-to-device copy (64 per decode range), plus one per eager prefill all_gather."""
    copies = f"""{RANGES}, c AS (SELECT rt.start, rt.globalTid AS tid, rt.correlationId FROM CUPTI_ACTIVITY_KIND_RUNTIME rt),
      w AS (SELECT mc.start, mc.end, mc.graphNodeId AS node, c.start AS call, c.tid FROM CUPTI_ACTIVITY_KIND_MEMCPY mc
            JOIN ENUM_CUDA_MEMCPY_OPER o ON mc.copyKind = o.id JOIN c ON c.correlationId = mc.correlationId
            WHERE o.name = 'CUDA_MEMCPY_KIND_DTOD'
              AND EXISTS (SELECT 1 FROM m WHERE m.tid = c.tid AND c.start >= m.start AND c.start < m.end)
              AND (mc.graphNodeId IS NOT NULL OR EXISTS (SELECT 1 FROM r WHERE r.name IN ('allreduce', 'allgather')
                   AND r.tid = c.tid AND c.start >= r.start AND c.start < r.end)))"""
    assert sql(WS1, "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON k.shortName = s.id WHERE lower(s.value) LIKE '%nccl%'") == [(0,)]
    total = sql(WS1, f"{copies} SELECT count(*), sum(end - start) FROM w")[0]
    per_decode = sql(WS1, f"""{copies}, d AS (SELECT * FROM inm WHERE name = 'decode')
        SELECT count(w.start), sum(w.end - w.start) FROM d LEFT JOIN w ON w.tid = d.tid AND w.call >= d.start AND w.call < d.end
        GROUP BY d.start ORDER BY d.start""")
    assert total == (195, 209090) and [n for n, _ in per_decode] == [64, 64, 64]
    rs = run("rank_summary", trace(WS1)).row(0, named=True)
    assert (rs["collective_gpu_ops"], rs["collective_gpu_ns"], rs["collective_gpu_source"]) == (*total, "dtod_copy")
    assert rs["steps"] == 3 * metrics(WS1)["config"]["steps"]
    cs = run("collectives_per_step", trace(WS1))
    assert list(zip(cs["collective_gpu_ops"], cs["collective_gpu_ns"])) == per_decode
    assert set(cs["comm_source"]) == {"gpu_work"} and set(cs["step_source"]) == {"decode_slice"}
    assert cs["comm_per_step_ns"].to_list() == pytest.approx([ns / 64 for _, ns in per_decode])


def test_ws1_collectives_share_the_compute_stream():
    streams = sql(WS1, """SELECT count(DISTINCT streamId) FROM (SELECT streamId FROM CUPTI_ACTIVITY_KIND_KERNEL
        UNION ALL SELECT streamId FROM CUPTI_ACTIVITY_KIND_MEMCPY)""")
    assert streams == [(1,)]  # one stream: nothing can overlap
    ov = run("comm_overlap", trace(WS1)).row(0, named=True)
    assert (ov["rank"], ov["collective_gpu_ops"], ov["collective_gpu_ns"], ov["overlapped_ns"], ov["overlap_fraction"]) == (0, 195, 209090, 0, 0.0)


@pytest.mark.parametrize("folder", CPU_RUNS, ids=lambda p: p.name)
def test_no_gpu_overlap_rows_on_cpu_traces(folder):
    out = run("comm_overlap", trace(folder))
    assert out.is_empty() and dict(out.schema) == ANALYSES["comm_overlap"].columns


@pytest.mark.parametrize("name", NAMES)
def test_empty_on_single_gpu_and_empty_traces(name):
    for t in (Trace.empty(), trace(DATA / "h100" / "baseline")) if (DATA / "h100" / "baseline" / "trace.sqlite").is_file() else (Trace.empty(),):
        out = run(name, t, steps=8)
        assert out.is_empty() and dict(out.schema) == ANALYSES[name].columns


def test_rank_order_falls_back_to_pids_without_metrics():
    from dataclasses import replace

    t = replace(trace(CPU / "tp4"), target_metrics=TargetMetrics())
    out = run("rank_summary", t)
    assert out["rank"].to_list() == [0, 1, 2, 3] and out["pid"].to_list() == sorted(out["pid"].to_list())
    assert set(out["rank_source"]) == {"pid order"}
    assert out["steps"].to_list() == [8, 8, 8, 8]  # step ranges, no config needed


# --- the report's section -------------------------------------------------------------------

def _report(folders):
    from decodeprof.report import assemble, load_variant, render_html

    report = assemble([load_variant(f) for f in folders])
    return report, render_html(report)


def test_report_has_multigpu_section_with_ranks_and_scaling():
    report, page = _report([WS1, CPU / "tp1", CPU / "tp2"])
    mg = report.multigpu
    assert [v.variant for v in mg.variants] == ["ws1_tp_graph", "tp1", "tp2"]  # variants not ours keep the order given
    tp2 = next(v for v in mg.variants if v.variant == "tp2")
    assert [r["rank"] for r in tp2.rows] == [0, 1] and tp2.world_size == 2
    m1, m2 = metrics(CPU / "tp1"), metrics(CPU / "tp2")
    s = mg.scaling[0]
    speedup = m2["metrics"]["tokens_per_s"]["median"] / m1["metrics"]["tokens_per_s"]["median"]
    assert (s["variant"], s["reference"], s["world_size"]) == ("tp2", "tp1", 2)
    assert s["speedup"] == pytest.approx(speedup) and s["efficiency_pct"] == pytest.approx(50 * speedup)
    kinds = {f["title"]: f["kind"] for f in tp2.findings}
    # gloo on a 2-core machine: collectives are most of decode, 2 ranks are far slower than 1
    assert kinds["communication-bound decode"] == "warning" and kinds["poor scaling"] == "loss"
    assert 'id="multigpu"' in page and page.count('class="rank-row"') == 1 + 2 + 1
    assert 'id="multigpu-scaling-table"' in page and "ws1_tp_graph: world size 1" in page
    ws1 = next(v for v in mg.variants if v.variant == "ws1_tp_graph")
    assert ws1.rows[0]["collective_gpu_ns"] == 209090 and ws1.rows[0]["overlap_pct"] == 0.0
    assert {f["title"] for f in ws1.findings} == {"communication is a minor share", "communication not overlapped"}


def test_comm_fraction_finding_backs_its_number():
    report, _ = _report([CPU / "tp4"])
    view = report.multigpu.variants[0]
    worst = max(view.rows, key=lambda r: r["comm_fraction_pct"])
    f = next(f for f in view.findings if f["title"] == "communication-bound decode")
    assert f"Rank {worst['rank']} spends {worst['comm_fraction_pct']:.1f}%" in f["sentence"]
    assert "no single-GPU run" in report.multigpu.scaling_notes[0]


def test_no_multigpu_section_for_single_gpu_runs():
    base = DATA / "h100" / "baseline"
    if not (base / "trace.sqlite").is_file():
        pytest.fail("fixture h100/baseline not present")
    report, page = _report([base])
    assert report.multigpu is None and 'id="multigpu"' not in page
