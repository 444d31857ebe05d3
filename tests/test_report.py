"""The HTML report rendered from the committed runs: content, waterfall identity, escaping,
missing data, one variant, atomic writes, and the CLI command `make demo` runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import report_sql as q  # noqa: E402

from decodeprof.report import assemble, load_variant, render  # noqa: E402
from decodeprof.report.render import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H100 = REPO / "tests" / "data" / "h100"
CPU_TRACE = REPO / "tests" / "data" / "cpu_nsys2022"


@pytest.fixture(scope="module")
def variants():
    return {p.name: load_variant(p) for p in sorted(H100.iterdir()) if p.is_dir()}


@pytest.fixture(scope="module")
def full(variants):
    report = assemble(list(variants.values()))
    return report, render.render_html(report)


def test_summary_has_one_row_per_variant(full, variants):
    report, html = full
    assert html.count('class="variant-row"') == len(variants)
    assert report.variants[0].name == "baseline"
    for name in variants:
        assert f'href="#variant-{name}"' in html
    assert 'class="best"' in html and "NVIDIA H100 80GB HBM3" in html and "2.11.0+cu130" in html


def test_plotly_inlined_once_and_no_network(full):
    _, html = full
    assert html.count("<script type=\"application/json\"") == len(re.findall(r'<div class="chart"', html))
    assert len(re.findall(r"Plotly\.newPlot", html)) == 1
    assert not re.search(r'<script[^>]+src=', html) and not re.search(r'<link[^>]+href=', html)


def test_waterfall_parts_sum_to_the_difference(full):
    report, html = full
    # every variant but the baseline itself gets one (graph_full's from its "prefill_decode" ranges)
    assert set(report.waterfalls) == set(report.findings) - {"baseline"}
    for name, w in report.waterfalls.items():
        assert sum(r["delta_ns"] for r in w.rows) == pytest.approx(w.variant_span_ns - w.base_span_ns, abs=1e-6)
        assert w.parts_sum_ns == pytest.approx(w.delta_ns, abs=1e-6)
        # the spans are the SQL ones: per decode range first kernel start -> last kernel end
        assert w.base_span_ns == pytest.approx(q.decode_span_per_step("baseline"), rel=1e-12)
        assert w.variant_span_ns == pytest.approx(q.decode_span_per_step(name), rel=1e-12)
        table = html[html.index(f'id="waterfall-{name}"'):]
        shown_sum = re.search(r'class="parts-sum">([^<]+)<', table).group(1)
        shown_delta = re.search(r'class="span-delta">([^<]+)<', table).group(1)
        assert shown_sum == shown_delta
    assert report.waterfall_missing == {}
    gf = next(v for v in report.variants if v.name == "graph_full")
    assert gf.facts["kernels_per_step"] == 8  # per-step figures from "prefill_decode", prefill left out
    assert not any(m.startswith('no NVTX "decode" range') for m in gf.missing)


def test_graph_waterfall_is_mostly_idle_removed(full):
    report, _ = full
    rows = {r["part"]: r["delta_ns"] for r in report.waterfalls["graph"].rows}
    idle = rows.pop("GPU idle (nothing running)")
    assert idle < -100_000 and all(abs(d) < abs(idle) / 100 for d in rows.values())


def test_findings_link_to_charts_that_exist(full):
    report, html = full
    for fs in report.findings.values():
        for f in fs:
            if f["chart"]:
                assert f'id="{f["chart"]}"' in html


def test_missing_data_is_said(full):
    _, html = full
    assert "no Nsight Compute data (ncu.csv)" in html  # baseline, pinned, ... have no ncu.csv


def test_a_trace_without_decode_ranges_finds_its_steps_or_says_what_it_tried():
    """graph's NVTX ranges removed: its steps are found in the replayed kernels' repeating
    pattern (3 iterations x 64 steps); with too few kernels left to repeat, the report says
    which sources it tried and how to name ranges."""
    import dataclasses

    import polars as pl

    from decodeprof.analyses import run_all
    from decodeprof.analyses.steps import step_model
    from decodeprof.report.variant import facts, missing_sentences

    trace = load_variant(H100 / "graph").trace
    bare = dataclasses.replace(trace, nvtx=trace.nvtx.filter(~pl.col("text").is_in(["decode", "step", "prefill_decode"])))
    model = step_model(bare)
    assert model.source == "op_pattern" and model.steps.height == 3 * 64 and set(model.steps["kernels"]) == {8}
    few = dataclasses.replace(bare, kernels=bare.kernels.head(4))
    frames = run_all(few)
    said = missing_sentences(few, frames, facts(few, frames))
    assert any(m.startswith("no decode steps found (") and "--decode-range" in m and "repeating op pattern" in m
               and "savings waterfall are unavailable" in m for m in said)


def test_trace_without_cuda_data_still_renders(tmp_path, variants):
    cpu = load_variant(CPU_TRACE)
    assert cpu.trace.kernels.is_empty()
    out = write_report(assemble([variants["baseline"], cpu]), tmp_path / "r.html")
    html = out.read_text()
    assert html.count('class="variant-row"') == 2
    assert "CUPTI_ACTIVITY_KIND_KERNEL" in html  # the loader's sentence: which table, how to capture
    assert "no metrics.json" in html


def test_one_variant_renders(tmp_path, variants):
    html = write_report(assemble([variants["graph"]]), tmp_path / "one.html").read_text()
    assert html.count('class="variant-row"') == 1
    # the first variant given is the baseline when none is named "baseline"
    assert "One variant only" in html and "No variant named" not in html and "Baseline: graph" in html
    assert "kernels below the DRAM roofline" in html  # graph has ncu.csv


def test_trace_text_is_escaped(tmp_path, variants):
    evil = "void k<float>(<script>alert(1)</script>)"
    v = variants["graph"]
    saved = (v.name, dict(v.facts))
    try:
        v.name = "<b>graph</b>"
        v.facts["ncu_top_kernel"] = evil
        html = render.render_html(assemble([variants["baseline"], v]))
    finally:
        v.name, v.facts = saved[0], saved[1]
    assert evil not in html and "<b>graph</b>" not in html
    assert "void k&lt;float&gt;(&lt;script&gt;alert(1)&lt;/script&gt;)" in html
    for blob in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in blob  # JSON inside <script> carries \u003c, never a raw <


def test_write_is_atomic_when_rendering_fails(tmp_path, variants, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("OLD REPORT")

    def boom():
        raise RuntimeError("render failed")

    monkeypatch.setattr(render, "plotly_js", boom)
    with pytest.raises(RuntimeError):
        write_report(assemble([variants["baseline"]]), target)
    assert target.read_text() == "OLD REPORT"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("OLD REPORT")

    def no_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(render.os, "replace", no_replace)
    with pytest.raises(OSError):
        render.write_atomic(target, "NEW")
    assert target.read_text() == "OLD REPORT"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_cli_report_as_make_demo_runs_it(tmp_path):
    out = tmp_path / "reports" / "out" / "decodeprof-report.html"
    runs = sorted(str(p.relative_to(REPO)) for p in H100.iterdir())  # includes README.md, as the glob does
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "report", *runs, "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "skipping tests/data/h100/README.md" in proc.stderr
    assert out.stat().st_size > 1_000_000


def _run_folder(src: Path, dst: Path, status: str = "ok", files: tuple[str, ...] | None = None) -> Path:
    """A run folder as `decodeprof profile` leaves it: the sample run's files and a run.json."""
    dst.mkdir()
    for f in src.iterdir():
        if files is None or f.name in files:
            (dst / f.name).symlink_to(f)
    (dst / "run.json").write_text(json.dumps({"status": status, **({"error": "step 'nsys' failed: exit status 2"}
                                                                   if status != "ok" else {})}))
    return dst


def test_cli_report_on_profile_folders_finds_the_baseline_and_skips_failed_runs(tmp_path):
    """Folders named <target>-<stamp> by `profile` are named by their target (so the default
    baseline is found); a folder whose capture failed before its export is skipped with its
    error, one that failed after it (e.g. the ncu step) is shown with a note."""
    runs = [_run_folder(H100 / "baseline", tmp_path / "baseline-20261125-101500"),
            _run_folder(H100 / "graph", tmp_path / "graph-20261125-101502-2", status="failed"),
            _run_folder(H100 / "pinned", tmp_path / "pinned-20261125-101600", status="failed",
                        files=("metrics.json",))]
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "report", *map(str, runs), "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"skipping {runs[2]}: its capture ended failed: step 'nsys' failed" in proc.stderr
    assert f"note: {runs[1]}: its capture ended failed: step 'nsys' failed: exit status 2; its exported trace is shown" in proc.stderr
    html = out.read_text()
    assert "No variant named" not in html and html.count('class="variant-row"') == 2
    assert 'href="#variant-baseline"' in html and 'href="#variant-graph"' in html and "graph-20261125" not in html
    assert 'href="#variant-pinned"' not in html


def test_cli_report_unknown_baseline_is_an_error_naming_the_variants(tmp_path):
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "report", str(H100 / "baseline"), str(H100 / "graph"),
                           "--baseline", "basline", "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not out.exists()
    assert "no variant named 'basline' among: baseline, graph" in proc.stderr and "Traceback" not in proc.stderr


def test_variant_name_drops_the_profile_time_stamp():
    from decodeprof.report.variant import variant_name

    assert variant_name(Path("runs/graph_full-20261125-101500")) == "graph_full"
    assert variant_name(Path("runs/fp8-20261125-101500-3")) == "fp8"
    assert variant_name(Path("tests/data/h100/baseline")) == "baseline"
    assert variant_name(H100 / "graph" / "trace.sqlite") == "graph"  # a trace file: its folder's name


def test_cli_report_help():
    from typer.testing import CliRunner

    from decodeprof.cli import app

    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "decodeprof report" in result.output and "Example" in result.output


def test_several_variants_get_a_step_timeline_against_the_baseline(full):
    report, html = full
    with_steps = {v.name for v in report.variants if v.facts.get("kernels_per_step") is not None} - {"baseline"}
    ids = {c.id for c in report.charts if c.id.startswith("chart-stepdiff-")}
    assert ids == {f"chart-stepdiff-{name}" for name in with_steps} and ids
    assert all(f'id="{cid}"' in html for cid in ids)


def test_variants_run_with_different_configs_are_flagged():
    """A variant that ran a different batch or step count than the baseline: its speedups compare
    different work, and the report says so (the diff says it too)."""
    import dataclasses

    base, graph = load_variant(H100 / "baseline"), load_variant(H100 / "graph")
    tm = {**graph.trace.target_metrics, "config": {**graph.trace.target_metrics["config"], "batch": 8, "steps": 32}}
    graph.trace = dataclasses.replace(graph.trace, target_metrics=tm)
    notes = assemble([base, graph]).notes
    assert notes == ["configs differ (baseline vs graph): batch 4 vs 8, steps 64 vs 32: the comparisons of graph "
                     "with baseline set different work side by side"]
    assert assemble([load_variant(H100 / "baseline"), load_variant(H100 / "graph")]).notes == []
