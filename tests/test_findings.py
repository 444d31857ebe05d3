"""Findings on the committed H100 runs, checked against numbers computed with plain SQL
(tests/report_sql.py), plus the threshold logic on hand-made fact dicts (synthetic on purpose:
the shipped runs contain no losing variant, and a loss must still be explained)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import report_sql as q  # noqa: E402

from decodeprof.findings import findings  # noqa: E402
from decodeprof.load.target_metrics import parse  # noqa: E402
from decodeprof.thresholds import ON_CHIP_RATIO, OVERLAP_MIN  # noqa: E402
from decodeprof.report import load_variant  # noqa: E402

H100 = Path(__file__).parent / "data" / "h100"


@pytest.fixture(scope="module")
def v():
    names = [p.name for p in sorted(H100.iterdir()) if p.is_dir()]
    return {n: load_variant(H100 / n) for n in names}


def by_title(fs, title):
    hits = [f for f in fs if f.title == title]
    assert hits, f"no finding {title!r} in {[f.title for f in fs]}"
    return hits[0]


def test_pinned_pageable_copies_gone_matches_sql(v):
    fs = findings("pinned", v["pinned"].facts, v["baseline"].facts)
    f = by_title(fs, "pageable copies gone")
    n_b, pageable_b, bytes_b, ns_b = q.h2d("baseline")
    n_p, pageable_p, bytes_p, ns_p = q.h2d("pinned")
    assert (pageable_b, pageable_p) == (6, 0)
    assert f.kind == "win"
    assert f.evidence["baseline_pageable_h2d_copies"] == pageable_b
    assert f.evidence["baseline_h2d_bytes_per_s"] == pytest.approx(1e9 * bytes_b / ns_b, rel=1e-12)
    assert f.evidence["variant_h2d_bytes_per_s"] == pytest.approx(1e9 * bytes_p / ns_p, rel=1e-12)
    assert f"{1e9 * bytes_p / ns_p / 1e9:,.1f} GB/s" in f.sentence  # 54.6 GB/s
    assert f.chart == "chart-copy-bw" and "2x" in f.threshold


def test_graph_one_launch_replaces_many_matches_sql(v):
    f = by_title(findings("graph", v["graph"].facts, v["baseline"].facts), "fewer launches")
    launches, kernels = q.decode_graph_launches("graph"), len(q.decode_kernels("graph"))
    assert (launches, kernels) == (3, 1539)
    assert f.evidence["decode_graph_launches"] == launches
    assert f.evidence["decode_kernels"] == kernels
    assert f"{launches} cudaGraphLaunch calls replay {kernels:,} decode kernels" in f.sentence


def test_graph_idle_and_cpu_time_down(v):
    fs = findings("graph", v["graph"].facts, v["baseline"].facts)
    idle = by_title(fs, "GPU idles less")
    assert idle.evidence["variant_gpu_idle_per_step_ns"] < 0.75 * idle.evidence["baseline_gpu_idle_per_step_ns"]
    assert by_title(fs, "less CPU API time").kind == "win"


def test_bandwidth_matches_sql(v):
    f = by_title(findings("graph", v["graph"].facts, v["baseline"].facts), "more bandwidth")
    for name, key in (("baseline", "baseline_bytes_per_s"), ("graph", "variant_bytes_per_s")):
        wbytes = q.metrics(name)["weight_bytes_per_step"]
        span = q.decode_span_per_step(name)  # ns per step
        assert f.evidence[key] == pytest.approx(1e9 * wbytes / span, rel=1e-9)


def test_baseline_launch_bound_and_kernels_per_step(v):
    fs = findings("baseline", v["baseline"].facts, None)
    f = by_title(fs, "launch/host-bound")
    assert f.kind == "limit" and f.evidence["gpu_idle_pct"] > 50
    assert v["baseline"].facts.kernels_per_step == statistics.median(q.kernels_per_step_range("baseline")) == 8


def test_streams_overlap_says_no_win_with_sql_numbers(v):
    f = by_title(findings("streams", v["streams"].facts, v["baseline"].facts), "copies not overlapped")
    copy_ns, overlapped = q.copy_overlap("streams")
    assert f.kind == "no_win"
    assert (f.evidence["copy_ns"], f.evidence["overlapped_ns"]) == (copy_ns, overlapped)
    assert f.evidence["overlap_fraction"] == pytest.approx(overlapped / copy_ns) and overlapped / copy_ns < OVERLAP_MIN


def test_speed_findings_use_metrics_medians(v):
    for name in ("pinned", "graph", "graph_full"):
        f = by_title(findings(name, v[name].facts, v["baseline"].facts), "faster decode time")
        b, x = q.metrics("baseline")["metrics"]["decode_ms"]["median"], q.metrics(name)["metrics"]["decode_ms"]["median"]
        assert f.evidence["speedup"] == pytest.approx(b / x)
    f = by_title(findings("streams", v["streams"].facts, v["baseline"].facts), "no decode time change")
    assert f.kind == "no_win"


def test_every_shipped_variant_is_explained(v):
    for name, var in v.items():
        fs = findings(name, var.facts, None if name == "baseline" else v["baseline"].facts)
        assert fs, f"{name}: no finding"
        for f in fs:
            assert f.threshold and f.sentence and any(ch.isdigit() for ch in f.sentence)


def _facts(**kw):
    from decodeprof.findings import Facts

    base = {"decode_ms": 10.0, "total_ms": 12.0, "launches_per_step": 8.0, "kernels_per_step": 8.0,
            "gpu_idle_per_step_ns": 100_000.0, "gpu_idle_pct": 80.0, "cpu_api_per_step_ns": 40_000.0}
    base.update(kw)
    return Facts(**base)


def test_loss_is_explained_by_the_largest_waterfall_part():
    import polars as pl

    wf = pl.DataFrame({"part": ["GPU idle (nothing running)", "kernels: gemm"], "base_ns": [1.0, 1.0],
                       "variant_ns": [1.0, 30_001.0], "delta_ns": [0.0, 30_000.0]})
    fs = findings("slow", _facts(decode_ms=12.0, total_ms=14.0), _facts(), wf)
    assert [f.kind for f in fs].count("loss") >= 2
    why = by_title(fs, "why it loses")
    assert "kernels: gemm: +30.0 µs per step" in why.sentence


def test_no_win_is_said():
    fs = findings("same", _facts(decode_ms=9.9), _facts())
    assert by_title(fs, "does not win").kind == "no_win"


def _ncu_dram_bytes_per_s(variant: str) -> float:
    """(DRAM read + write bytes) / kernel time over every kernel of the run's ncu.csv, by the csv module."""
    import csv
    import io

    text = (H100 / variant / "ncu.csv").read_text()
    rows = list(csv.reader(io.StringIO("\n".join(ln for ln in text.splitlines() if ln.startswith('"')))))
    head, units, data = rows[0], rows[1], rows[2:]
    assert units[head.index("gpu__time_duration.sum")] == "ns"

    def total(metric: str) -> float:
        return sum(float(r[head.index(metric)].replace(",", "")) for r in data)

    return 1e9 * (total("dram__bytes_read.sum") + total("dram__bytes_write.sum")) / total("gpu__time_duration.sum")


def test_persistent_kernels_are_found_to_serve_weights_on_chip(v):
    for name in ("persistent", "persistent_smem"):
        f = by_title(findings(name, v[name].facts, v["baseline"].facts), "weights served on chip")
        delivered = 1e9 * q.metrics(name)["weight_bytes_per_step"] / q.decode_span_per_step(name)
        assert f.evidence["delivered_weight_bytes_per_s"] == pytest.approx(delivered, rel=1e-9)
        assert f.evidence["ncu_dram_bytes_per_s"] == pytest.approx(_ncu_dram_bytes_per_s(name), rel=1e-9)
        assert delivered >= ON_CHIP_RATIO * _ncu_dram_bytes_per_s(name)
    # kernels that stream their weights from DRAM every step stay "below the roofline", not on chip
    for name in ("graph", "fp8", "warp_specialized"):
        titles = [f.title for f in findings(name, v[name].facts, v["baseline"].facts)]
        assert "kernels below the DRAM roofline" in titles and "weights served on chip" not in titles


def test_a_persistent_kernel_is_credited_per_decode_range_not_per_step(v):
    """persistent_smem's one kernel spans all 64 steps (time-sliced steps): the finding counts
    the kernels of a decode range by SQL (kernels launched from its decode ranges / ranges)."""
    with q.connect("persistent_smem") as db:
        per_range = db.execute("""
            WITH r AS (SELECT e.start, e.end, e.globalTid FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id
                       WHERE e.eventType = 59 AND coalesce(e.text, s.value) = 'decode')
            SELECT count(*) * 1.0 / (SELECT count(*) FROM r) FROM r
            JOIN CUPTI_ACTIVITY_KIND_RUNTIME c ON c.globalTid = r.globalTid AND c.start >= r.start AND c.start < r.end
            JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = c.correlationId""").fetchone()[0]
    f = by_title(findings("persistent_smem", v["persistent_smem"].facts, v["baseline"].facts), "fewer kernels")
    assert f.evidence["variant_kernels_per_decode_range"] == per_range == 1
    assert f.sentence.startswith("1 kernel runs all 64 decode steps of a decode range")


def test_unprofiled_timings_are_shown_and_the_profiler_overhead_flagged(v):
    """A run folder with metrics.unprofiled.json shows its times; the profiled run's TPOT
    (metrics.json) gives the overhead, flagged past 10%. Here the unprofiled copy of the graph
    sample's metrics is made 25% faster by hand (the shipped samples predate the unprofiled run)."""
    import copy
    import dataclasses

    from decodeprof.findings import limits
    from decodeprof.thresholds import PROFILER_OVERHEAD_PCT
    from decodeprof.findings import facts

    g = v["graph"]
    clean = copy.deepcopy(dict(g.trace.target_metrics.document))
    for key in ("tpot_ms", "decode_ms", "total_ms", "ttft_ms"):
        for q in ("min", "median", "max"):
            clean["metrics"][key][q] *= 0.75
    f = facts(dataclasses.replace(g.trace, unprofiled_metrics=parse(clean)), g.frames)
    traced = g.trace.target_metrics.median("tpot_ms")
    assert f.timing_source == "unprofiled run" and f.tpot_ms == pytest.approx(0.75 * traced)
    assert f.profiler_overhead_pct == pytest.approx(100 / 3) and f.profiler_overhead_pct > PROFILER_OVERHEAD_PCT
    warned = by_title(limits("graph", f), "profiler overhead")
    assert warned.kind == "warning" and warned.evidence["profiled_tpot_ms"] == traced
    assert g.facts.timing_source == "profiled run" and g.facts.profiler_overhead_pct is None


def test_an_unstable_timing_is_flagged(v):
    import copy
    import dataclasses

    from decodeprof.findings import facts

    g = v["graph"]
    noisy = copy.deepcopy(dict(g.trace.target_metrics.document))
    noisy["metrics"]["tpot_ms"]["max"] = 2 * noisy["metrics"]["tpot_ms"]["min"]
    f = facts(dataclasses.replace(g.trace, target_metrics=parse(noisy)), g.frames)
    assert f.tpot_max_over_min == pytest.approx(2.0)
    assert by_title(findings("graph", f, v["baseline"].facts), "unstable timing").kind == "warning"
