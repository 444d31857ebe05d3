"""Analyses on the real H100 captures (tests/data/h100/<variant>, see its README), checked
against values computed independently with plain SQL on each .sqlite export (sqlite3 here,
no decodeprof code on the expected side), plus the contract: every registered analysis
returns exactly its declared columns on an empty trace and on every fixture."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from decodeprof.analyses import ANALYSES, run, run_all
from decodeprof.trace import Trace

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("**/trace.sqlite"))
H100 = DATA / "h100"


def load(folder: Path) -> Trace:
    from decodeprof.load import load_trace

    return load_trace(folder)


@pytest.fixture(scope="module")
def traces() -> dict[Path, Trace]:
    return {}


def trace_of(traces: dict, path: Path) -> Trace:
    if path not in traces:
        traces[path] = load(path.parent if path.name == "trace.sqlite" else path)
    return traces[path]


def sql(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(query).fetchall()


def need(variant: str) -> Path:
    db = H100 / variant / "trace.sqlite"
    if not db.is_file():
        pytest.fail(f"fixture {db} not present")
    return db


# NVTX ranges with their text, and launches joined to their kernels, in SQL only.
RANGES = """WITH r AS (SELECT e.start, e.end, e.globalTid, coalesce(e.text, s.value) AS name
  FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id WHERE e.eventType = 59 AND e.end IS NOT NULL)"""
CALLS = """c AS (SELECT r.start, r.globalTid, r.correlationId, s.value AS name
  FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON r.nameId = s.id)"""


@pytest.mark.parametrize("name", list(ANALYSES))
def test_contract_on_empty_trace(name):
    out = run(name, Trace.empty(), steps=8)
    assert out.is_empty() and dict(out.schema) == ANALYSES[name].columns


@pytest.mark.parametrize("db", FIXTURES, ids=lambda p: str(p.parent.relative_to(DATA)))
def test_contract_on_every_fixture(db, traces):
    t = trace_of(traces, db)
    for name, out in run_all(t, steps=8).items():
        assert dict(out.schema) == ANALYSES[name].columns, name


def test_kernel_summary_counts_match_sql(traces):
    db = need("baseline")
    want = dict(sql(db, "SELECT s.value, count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON k.shortName = s.id GROUP BY 1"))
    out = run("kernel_summary", trace_of(traces, db))
    assert dict(zip(out["name"], out["count"])) == want


def test_kernels_per_step_match_sql(traces):
    db = need("baseline")
    want = [n for (n,) in sql(db, f"""{RANGES}, {CALLS}
        SELECT (SELECT count(*) FROM c JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
                WHERE c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end)
        FROM r WHERE r.name = 'step' ORDER BY r.start""")]
    out = run("decode_steps", trace_of(traces, db))
    assert len(want) == 192  # 3 iterations x 64 steps
    assert out["kernels"].to_list() == want


def test_graph_launches_per_decode_match_sql(traces):
    db = need("graph")
    per_decode = sql(db, f"""{RANGES}, {CALLS}
        SELECT count(*), sum((SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k WHERE k.correlationId = c.correlationId))
        FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        WHERE r.name = 'decode' AND c.name LIKE 'cudaGraphLaunch%' GROUP BY r.start ORDER BY r.start""")
    assert [n for n, _ in per_decode] == [1, 1, 1]  # one graph launch per decode range
    d = run("nvtx_projection", trace_of(traces, db)).filter(pl.col("range_name") == "decode").row(0, named=True)
    assert (d["graph_launches"], d["kernels"], d["graph_kernels"]) == (3, sum(k for _, k in per_decode), sum(k for _, k in per_decode))
    steps = run("decode_steps", trace_of(traces, db))
    assert steps.height == 3 * 64 and set(steps["source"]) == {"decode_slice"}
    assert steps["kernels"].sum() == sum(k for _, k in per_decode)


def pageable_h2d(db: Path) -> int:
    return sql(db, """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_MEMCPY m
        JOIN ENUM_CUDA_MEM_KIND s ON m.srcKind = s.id JOIN ENUM_CUDA_MEMCPY_OPER o ON m.copyKind = o.id
        WHERE s.name LIKE '%PAGEABLE' AND o.name = 'CUDA_MEMCPY_KIND_HTOD'""")[0][0]


def test_pageable_copies_in_baseline_not_pinned(traces):
    base, pinned = need("baseline"), need("pinned")
    for db, present in ((base, True), (pinned, False)):
        out = run("memory_throughput", trace_of(traces, db))
        flagged = out.filter(pl.col("pageable") & (pl.col("copy_kind") == "CUDA_MEMCPY_KIND_HTOD"))["count"].sum()
        assert flagged == pageable_h2d(db)
        assert (flagged > 0) is present


def test_graph_has_fewer_launches_and_less_idle_than_baseline(traces):
    base = run("decode_step_summary", trace_of(traces, need("baseline"))).row(0, named=True)
    graph = run("decode_step_summary", trace_of(traces, need("graph"))).row(0, named=True)
    assert base["launches"] >= 8 and graph["launches"] < 1
    assert graph["gpu_idle_pct"] < base["gpu_idle_pct"]


def test_graph_full_steps_exclude_the_prefill_inside_the_graph(traces):
    """graph_full replays prefill + 64 steps in one graph launch per iteration: the steps must
    hold the decode kernels only (the graph's kernels minus the prefill's, counted with SQL
    from the eager baseline's prefill range, which launches the same prefill kernels)."""
    db = need("graph_full")
    per_launch = sql(db, f"""{RANGES}, {CALLS}
        SELECT sum((SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k WHERE k.correlationId = c.correlationId))
        FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        WHERE r.name = 'prefill_decode' AND c.name LIKE 'cudaGraphLaunch%' GROUP BY r.start ORDER BY r.start""")
    base = need("baseline")
    prefill_kernels = sql(base, f"""{RANGES}, {CALLS}
        SELECT count(*) FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
        WHERE r.name = 'prefill' GROUP BY r.start ORDER BY r.start""")
    steps = run("decode_steps", trace_of(traces, db))
    assert steps.height == 3 * 64
    # each launch: prefill kernels, 64 x 8 decode kernels, one final concat (kept in the last step)
    assert [total for (total,) in per_launch] == [prefill_kernels[0][0] + 64 * 8 + 1] * 3
    last = steps["step"] == 63
    assert set(steps.filter(~last)["kernels"].to_list()) == {8}
    assert steps.filter(last)["kernels"].to_list() == [9, 9, 9]


def test_graph_full_decode_bandwidth_counts_the_decode_kernels_only(traces):
    """decode_bandwidth on graph_full: GPU time from the first decode kernel (after the prefill's,
    counted from the baseline's prefill range) to the last kernel of the launch, per range, by SQL;
    no host range holds the decode alone, so the host columns are null."""
    db = need("graph_full")
    prefill = sql(need("baseline"), f"""{RANGES}, {CALLS}
        SELECT count(*) FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
        WHERE r.name = 'prefill' GROUP BY r.start""")[0][0]
    kernels = sql(db, f"""{RANGES}, {CALLS}
        SELECT r.start, k.start, k.end FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
        WHERE r.name = 'prefill_decode' ORDER BY r.start, k.start""")
    by_range: dict[int, list[tuple[int, int]]] = {}
    for r_start, k_start, k_end in kernels:
        by_range.setdefault(r_start, []).append((k_start, k_end))
    want = sum(max(e for _, e in ks) - ks[prefill][0] for ks in by_range.values())
    row = run("decode_bandwidth", trace_of(traces, db)).row(0, named=True)
    assert (row["decode_ranges"], row["steps_per_decode"], row["decode_gpu_ns"]) == (3, 64, want)
    assert row["weight_bytes"] == 3 * 64 * row["weight_bytes_per_step"]
    assert row["decode_cpu_ns"] is None and row["achieved_wall_bytes_per_s"] is None


def test_wall_bandwidth_is_what_each_target_measured_and_under_the_peak(traces):
    """achieved_wall_bytes_per_s (decode range start -> the later of its end and its last kernel)
    agrees with the target's own CUDA-event weight GB/s, for eager and graph-launched decodes
    alike: a graph launch returns before its kernels finish, and the CPU range alone once gave
    figures above the GPU's peak."""
    for variant in ("baseline", "graph", "warp_specialized", "persistent", "persistent_smem"):
        trace = trace_of(traces, need(variant))
        row = run("decode_bandwidth", trace).row(0, named=True)
        own = trace.target_metrics.median("weight_gbps") * 1e9
        assert row["decode_wall_ns"] >= max(row["decode_cpu_ns"], row["decode_gpu_ns"]), variant
        assert 0.8 < row["achieved_wall_bytes_per_s"] / own < 1.2, variant
        assert row["achieved_wall_bytes_per_s"] < row["peak_bytes_per_s"], variant


def decode_range_kernels(db: Path) -> list[tuple[int, int, int, int]]:
    """Per "decode" range, in order: (kernels, summed kernel time, first start, last end) of the
    kernels its API calls launched (graph launches included)."""
    return sql(db, f"""{RANGES}, {CALLS}
        SELECT count(*), sum(k.end - k.start), min(k.start), max(k.end)
        FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
        WHERE r.name = 'decode' GROUP BY r.start ORDER BY r.start""")


def test_persistent_kernel_steps_are_cut_in_time(traces):
    """The persistent target runs all 64 steps in one kernel (after a memset of its barrier
    counter): with fewer kernels than steps, each decode range's GPU span is cut into 64 equal
    windows. The windows' busy time adds up to the kernels' time, which SQL sums here from the
    kernels launched by the decode range's graph launch (they do not overlap)."""
    db = need("persistent")
    per_decode = decode_range_kernels(db)
    steps = run("decode_steps", trace_of(traces, db))
    assert steps.height == 3 * 64 and set(steps["source"]) == {"time_slice"}
    for i, (count, busy, first, last) in enumerate(per_decode):
        assert count == 2  # the barrier memset and the persistent kernel
        mine = steps.filter(pl.col("decode_index") == i).sort("step")
        assert mine["gpu_busy_ns"].sum() == busy
        assert mine["gpu_start_ns"][0] == first
        assert mine["gpu_window_ns"].sum() == last - first
        assert mine["kernels"][0] == 2 and set(mine["kernels"][1:].to_list()) == {1}
    assert run("kernel_summary", trace_of(traces, db)).filter(
        pl.col("name") == "persistent_decode_kernel")["family"].to_list() == ["gemm"]


def test_shared_memory_persistent_kernel_is_one_kernel_per_decode_range(traces):
    """persistent_smem runs all 64 steps in one kernel and needs no memset (its exchange flags
    only grow): each decode range holds exactly that kernel, whose time SQL sums here; the 64
    time slices of a range add up to it, the kernel accounts for most of the decode time the
    target timed itself with CUDA events (metrics.json), and it counts as gemm."""
    import json

    db = need("persistent_smem")
    timed = json.loads((db.parent / "metrics.json").read_text())["metrics"]["decode_ms"]
    per_decode = decode_range_kernels(db)
    steps = run("decode_steps", trace_of(traces, db))
    assert steps.height == 3 * 64 and set(steps["source"]) == {"time_slice"}
    for i, (count, busy, first, last) in enumerate(per_decode):
        assert count == 1 and 0.8 * timed["min"] * 1e6 <= busy <= timed["max"] * 1e6
        mine = steps.filter(pl.col("decode_index") == i).sort("step")
        assert mine["gpu_busy_ns"].sum() == busy and mine["gpu_window_ns"].sum() == busy
        assert mine["gpu_start_ns"][0] == first and set(mine["kernels"].to_list()) == {1}
    summary = run("kernel_summary", trace_of(traces, db))
    assert summary.filter(pl.col("name") == "persistent_decode_smem_kernel")["family"].to_list() == ["gemm"]


def test_truncated_graph_range_is_not_cut_in_time(traces):
    """A graph decode range that lost most of its kernels (a truncated capture: here 10 of 513
    kept, on purpose) has fewer kernels than steps but no kernel spanning it: it is not passed
    off as 64 time slices, and the diff still lines up the intact ranges."""
    import dataclasses

    from decodeprof.diff import pick_step

    db = need("graph")
    full = trace_of(traces, db)
    first = run("decode_steps", full).filter(pl.col("decode_index") == 0)
    lo, hi = first["gpu_start_ns"].min(), first["gpu_start_ns"].max() + first["gpu_window_ns"][-1]
    inside = (pl.col("start_ns") >= lo) & (pl.col("start_ns") < hi)
    kept = pl.concat([full.kernels.filter(~inside), full.kernels.filter(inside).head(10)]).sort("start_ns")
    cut = dataclasses.replace(full, kernels=kept)
    steps = run("decode_steps", cut)
    assert "time_slice" not in set(steps["source"])
    assert steps.filter(pl.col("decode_index") == 0)["kernels"].sum() == 0
    # the range says so, and the median step leaves it out: it equals the intact ranges' median
    assert set(steps.filter(pl.col("decode_index") == 0)["source"]) == {"few_kernels"}
    assert set(steps.filter(pl.col("decode_index") > 0)["source"]) == {"decode_slice"}
    summary, intact = run("decode_step_summary", cut), run("decode_step_summary", full)
    assert summary["steps"][0] == 2 * 64 and summary["kernels"][0] == intact["kernels"][0]
    from decodeprof.analyses import run_all
    from decodeprof.report.variant import facts, missing_sentences

    frames = run_all(cut)
    assert any(m.startswith("decode range 0 (0-based) holds fewer kernels than steps")
               for m in missing_sentences(cut, frames, facts(cut, frames)))
    assert steps.filter(pl.col("decode_index") > 0)["kernels"].sum() == first["kernels"].sum() * 2
    picked = pick_step(cut)
    assert picked.source == "decode_slice" and picked.steps.height == 2 * 64


def test_when_every_range_has_fewer_kernels_than_steps_no_gpu_step_figure_is_made_up(traces):
    """A config that claims far more steps than the graph ran (each decode range then holds fewer
    kernels than steps) leaves nothing cut: the per-step GPU columns are null, not 0 kernels,
    and no "fewer kernels" win is claimed from them."""
    import dataclasses

    from decodeprof.analyses import run_all
    from decodeprof.findings import findings
    from decodeprof.report.variant import facts

    full = trace_of(traces, need("graph"))
    tm = full.target_metrics
    wrong = dataclasses.replace(full, target_metrics=dataclasses.replace(tm, config={**tm.config, "steps": 1000}))
    summary = run("decode_step_summary", wrong).row(0, named=True)
    assert summary["source"] == "few_kernels" and summary["cpu_dur_ns"] > 0
    assert [summary[c] for c in ("kernels", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns", "gpu_idle_pct")] == [None] * 5
    base = trace_of(traces, need("baseline"))
    f_wrong, f_base = facts(wrong, run_all(wrong)), facts(base, run_all(base))
    assert f_wrong["kernels_per_step"] is None
    assert "fewer kernels" not in [f.title for f in findings("graph", f_wrong, f_base)]


def test_queue_delay_is_never_negative_when_the_gpu_starts_inside_a_graph_launch(traces):
    """graph_full's one graph launch per iteration runs long enough that its first kernel starts
    before the call returns (SQL: start - call end < 0); the work did not queue at all: 0."""
    db = need("graph_full")
    early = sql(db, """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME c JOIN StringIds s ON c.nameId = s.id
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId
        WHERE s.value LIKE 'cudaGraphLaunch%' AND k.start < c.end""")[0][0]
    assert early > 0
    launches = run("launches", trace_of(traces, db))
    graph = launches.filter(pl.col("api_kind") == "graph_launch")
    assert graph.height and graph["queue_delay_ns"].min() == 0
    assert launches["queue_delay_ns"].drop_nulls().min() >= 0


def test_decode_idle_is_the_idle_inside_the_decode_ranges(traces):
    """graph: a gap charged to a "decode" range (the one ending at a kernel its graph launch
    replays) counts from the range start on, not from when the GPU went idle during the
    blocking pageable copies before it. SQL: every kernel's previous device-wide end (a
    window over start order), the kernels launched in each decode range, their gaps clipped
    to the range start."""
    db = need("graph")
    want = sql(db, f"""{RANGES}, {CALLS},
        k AS (SELECT start, "end", correlationId, deviceId,
                     max("end") OVER (PARTITION BY deviceId ORDER BY start, "end"
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
              FROM CUPTI_ACTIVITY_KIND_KERNEL)
        SELECT sum(k.start - max(k.prev_end, r.start)), sum(k.start - k.prev_end)
        FROM r JOIN c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
        JOIN k ON k.correlationId = c.correlationId
        WHERE r.name = 'decode' AND k.start > k.prev_end""")[0]
    inside, whole = want
    out = run("host_wait", trace_of(traces, db)).filter(pl.col("range_name") == "decode").row(0, named=True)
    assert out["gpu_idle_ns"] == inside and whole > inside  # some of those gaps began before the range
