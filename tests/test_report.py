"""The HTML report rendered from the committed runs: content, waterfall identity, escaping,
missing data, one variant, atomic writes, and the CLI command `make demo` runs."""

from __future__ import annotations

import dataclasses
import json
import re
import html
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import report_sql as q  # noqa: E402

from decodeprof.present import files, html as page  # noqa: E402
from decodeprof.report import assemble, load_variant, render  # noqa: E402
from decodeprof.report.render import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H100 = REPO / "tests" / "data" / "h100"
H200 = REPO / "tests" / "data" / "h200"
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
    # one JSON blob per chart, and the figures' shared template once
    assert html.count("<script type=\"application/json\"") == len(re.findall(r'<div class="chart"', html)) + 1
    assert html.count('id="plotly-template"') == 1 and html.count('"template"') == 0
    assert len(re.findall(r"Plotly\.newPlot", html)) == 1
    assert html.count(f"plotly.js v{page.PLOTLY_JS_VERSION}") == 1  # the vendored basic bundle, inlined once
    assert not re.search(r'<script[^>]+src=', html) and not re.search(r'<link[^>]+href=', html)


def _waterfalls(report):
    """(variant, comparison) for every waterfall of the report."""
    return [(name, c) for name, sec in report.sections.items() for c in sec.comparisons if c.waterfall]


def test_waterfall_parts_sum_to_the_difference(full):
    report, html = full
    # every variant but the baseline itself gets one against the baseline (graph_full's from its
    # "prefill_decode" ranges), and one against the variant it builds on when that is not the baseline
    assert {n for n, c in _waterfalls(report) if not c.ladder} == set(report.findings) - {"baseline"}
    assert {(n, c.ref) for n, c in _waterfalls(report) if c.ladder} == {
        ("streams", "pinned"), ("graph_full", "graph"), ("fp8", "graph"), ("fp4", "fp8"), ("warp_specialized", "graph"),
        ("double_buffer_tma", "warp_specialized"), ("persistent", "warp_specialized"), ("persistent_smem", "persistent")}
    for name, c in _waterfalls(report):
        w = c.waterfall
        # the folded rows keep the identity: shown rows (one of them "unchanged (N parts)") sum to the difference
        assert sum(r["delta_ns"] for r in w.rows) == pytest.approx(w.variant_span_ns - w.base_span_ns, abs=1e-6)
        parts = [r["part"] for r in w.rows if not r["part"].startswith("unchanged (")] + [r["part"] for r in w.folded]
        assert len(parts) == len(set(parts))
        assert all(abs(r["delta_ns"]) < w.fold_below_ns for r in w.folded)
        assert w.parts_sum_ns == pytest.approx(w.delta_ns, abs=1e-6)
        # the spans are the median decode steps' GPU windows: the values analyze and diff show
        window = {v.name: v.frames["decode_step_summary"]["gpu_window_ns"][0] for v in report.variants}
        assert w.base_span_ns == window[c.ref] and w.variant_span_ns == window[name]
        table = html[html.index(f'id="waterfall-{name}{"-vs-" + c.ref if c.ladder else ""}"'):]
        shown_sum = re.search(r'class="parts-sum">([^<]+)<', table).group(1)
        shown_delta = re.search(r'class="span-delta">([^<]+)<', table).group(1)
        assert shown_sum == shown_delta
        assert not c.waterfall_missing
    gf = next(v for v in report.variants if v.name == "graph_full")
    assert gf.facts.kernels_per_step == 8  # per-step figures from "prefill_decode", prefill left out
    assert not any(m.startswith('no NVTX "decode" range') for m in gf.missing)


def test_graph_waterfall_is_mostly_idle_removed(full):
    report, _ = full
    w = report.comparison("graph").waterfall
    rows = {r["part"]: r["delta_ns"] for r in w.rows + w.folded}
    idle = rows.pop("GPU idle (nothing running)")
    assert idle < -100_000 and all(abs(d) < abs(idle) / 100 for d in rows.values())
    # what barely changed is folded into one row; GPU idle is shown
    assert [r["part"] for r in w.rows][0] == "GPU idle (nothing running)"
    assert w.rows[-1]["part"] == f"unchanged ({len(w.folded)} parts)" and len(w.folded) >= 2
    assert w.verb == "saves" and "Where graph saves decode time vs baseline" in w.chart.figure_json


def test_findings_link_to_charts_that_exist(full):
    report, html = full
    for sec in report.sections.values():
        for f in sec.own + [f for c in sec.comparisons for f in c.findings]:
            assert f'id="{f["id"]}"' in html
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
    from decodeprof.findings import facts, missing_sentences

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
    saved = (v.name, v.facts)
    try:
        v.name = "<b>graph</b>"
        v.facts = dataclasses.replace(v.facts, ncu_top_kernel=evil)
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

    monkeypatch.setattr(files.os, "replace", no_replace)
    with pytest.raises(OSError):
        files.write_atomic(target, "NEW")
    assert target.read_text() == "OLD REPORT"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_cli_report_as_make_demo_runs_it(tmp_path):
    out = tmp_path / "reports" / "out" / "decodeprof-report.html"
    runs = sorted(str(p.relative_to(REPO)) for p in H200.iterdir())  # includes README.md, as the glob does
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "report", *runs, "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "skipping tests/data/h200/README.md" in proc.stderr
    # the vendored basic bundle (1.2 MB) and 12 variants' charts and findings: under 1.5 MB
    assert 1_000_000 < out.stat().st_size < 1_500_000


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


def test_cli_report_as_json_states_what_the_page_states(tmp_path):
    """--format html,json: one assembly, two files; every finding title in the JSON is on the page."""
    import json

    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "report", str(H100 / "baseline"), str(H100 / "graph"),
                           "--format", "html,json", "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    page = (tmp_path / "r.html").read_text()
    assert doc["version"] == 1 and doc["baseline"] == "baseline" and [r["name"] for r in doc["runs"]] == ["baseline", "graph"]
    graph = doc["runs"][1]
    assert graph["comparisons"][0]["against"] == "baseline" and graph["facts"]["kernels_per_step"] > 0
    titles = [f["title"] for r in doc["runs"] for f in r["findings"] + [x for c in r["comparisons"] for x in c["findings"]]]
    assert titles and all(html.escape(t) in page for t in titles)
    # FORCE_COLOR: stderr taken for a terminal, so the progress display runs (and would take stdout)
    alone = subprocess.run([sys.executable, "-m", "decodeprof", "report", str(H100 / "graph"), "--format", "json"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "FORCE_COLOR": "1"})
    assert alone.returncode == 0 and json.loads(alone.stdout)["runs"][0]["name"] == "graph"  # stdout: the JSON only
    assert not (tmp_path / "report.html").exists()


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
    with_steps = {v.name for v in report.variants if v.facts.kernels_per_step is not None} - {"baseline"}
    ids = {report.comparison(name).step_chart.id for name in with_steps}
    assert ids == {f"chart-stepdiff-{name}" for name in with_steps} and ids
    assert all(f'id="{cid}"' in html for cid in ids)
    assert report.comparison("fp4", "fp8").step_chart.id == "chart-stepdiff-fp4-vs-fp8"


def test_variants_run_with_different_configs_are_flagged():
    """A variant that ran a different batch or step count than the baseline: its speedups compare
    different work, and the report says so (the diff says it too)."""
    import dataclasses

    base, graph = load_variant(H100 / "baseline"), load_variant(H100 / "graph")
    tm = graph.trace.target_metrics
    graph.trace = dataclasses.replace(graph.trace, target_metrics=dataclasses.replace(tm, config={**tm.config, "batch": 8, "steps": 32}))
    notes = assemble([base, graph]).notes
    assert notes == ["configs differ (baseline vs graph): batch 4 vs 8, steps 64 vs 32: the comparisons of graph "
                     "with baseline set different work side by side"]
    assert assemble([load_variant(H100 / "baseline"), load_variant(H100 / "graph")]).notes == []


def test_the_vendored_bundle_is_the_one_its_readme_names():
    import hashlib

    readme = (page.VENDOR / "README.md").read_text()
    digest = hashlib.sha256(page.PLOTLY_JS.read_bytes()).hexdigest()
    assert digest in readme and f"v{page.PLOTLY_JS_VERSION}" in readme
    assert page.PLOTLY_JS.read_text()[:200].count(f"v{page.PLOTLY_JS_VERSION}") == 1
    assert "</script" not in page.PLOTLY_JS.read_text().lower()  # safe inside one <script> element
    import plotly

    bundled = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()[:200]
    assert f"plotly.js v{page.PLOTLY_JS_VERSION}" in bundled  # the plotly.js the Python package emits figures for


def _trace_types(figure_json: str) -> set[str]:
    return {t.get("type", "scatter") for t in json.loads(figure_json)["data"]}


def test_every_chart_uses_only_the_bundle_trace_types(full):
    report, _ = full
    charts = list(report.charts) + [x for sec in report.sections.values() for c in sec.comparisons
                                    for x in (c.step_chart, c.waterfall.chart if c.waterfall else None) if x]
    assert len(charts) > 20
    for chart in charts:
        assert _trace_types(chart.figure_json) <= page.BUNDLE_TRACE_TYPES, chart.id


def test_the_diff_page_uses_the_same_bundle(variants):
    from decodeprof.diff.compare import diff_traces
    from decodeprof.diff.html import render_html as diff_html

    html = diff_html(diff_traces(variants["baseline"].trace, variants["graph"].trace, label_a="baseline", label_b="graph"))
    assert page.plotly_js() in html and len(html) < 1_500_000
    figures = re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html, re.S)
    assert figures and all({t.get("type") for t in json.loads(f)} <= page.BUNDLE_TRACE_TYPES for f in figures)


def test_the_step_timeline_clips_each_kernel_to_its_step_window(variants):
    """persistent's one kernel runs 1,029 µs (all 64 steps of a decode range) and persistent_smem's
    starts before the median step's window: the chart draws only the part inside the window."""
    for name in ("persistent", "persistent_smem", "baseline", "graph"):
        v = variants[name]
        work = v.step_work
        steps = v.frames["decode_steps"]
        median = steps.filter(steps["step_index"] == v.frames["decode_step_summary"]["median_step_index"][0])
        window_ns = median["gpu_window_ns"][0]  # the median step's, the one the chart shows
        assert work["offset_ns"].min() >= 0 and (work["offset_ns"] + work["shown_ns"]).max() <= window_ns, name
        assert ((work["shown_ns"] < work["dur_ns"]) == work["clipped"]).all(), name
    whole = variants["persistent"].step_work.sort("dur_ns", descending=True).row(0, named=True)
    assert whole["clipped"] and whole["dur_ns"] > 1_000_000 and whole["shown_ns"] < 20_000


def test_waterfall_titles_say_costs_when_the_variant_is_slower(full):
    report, html = full
    compile_ = report.comparison("compile").waterfall
    assert compile_.delta_ns > 0 and compile_.verb == "costs"
    assert "Where compile costs decode time vs baseline" in compile_.chart.figure_json
    assert "Where compile saves" not in html
    for name, c in _waterfalls(report):
        w = c.waterfall
        assert (w.verb == "saves") == (w.delta_ns <= -w.fold_below_ns), name
        assert (w.verb == "costs") == (w.delta_ns >= w.fold_below_ns), name


def test_fold_sums_the_small_parts_into_one_row():
    import polars as pl

    from decodeprof.analyses.breakdown import WATERFALL_COLUMNS
    from decodeprof.report.waterfall import fold

    wf = pl.DataFrame({"part": ["GPU idle (nothing running)", "kernels: gemm", "kernels: norm", "kernels: other"],
                       "base_ns": [100.0, 50.0, 10.0, 5.0], "variant_ns": [10.0, 51.0, 9.5, 5.0],
                       "delta_ns": [-90.0, 1.0, -0.5, 0.0]}, schema=WATERFALL_COLUMNS)
    shown, folded = fold(wf, 2.0)
    assert shown["part"].to_list() == ["GPU idle (nothing running)", "unchanged (3 parts)"]
    assert shown.row(1) == ("unchanged (3 parts)", 65.0, 65.5, 0.5) and folded.height == 3
    assert shown["delta_ns"].sum() == wf["delta_ns"].sum()
    # one small part alone is shown as it is
    shown, folded = fold(wf, 0.3)
    assert shown.equals(wf) and folded.is_empty()


def test_each_variant_is_explained_against_the_rung_it_builds_on(full):
    from decodeprof.report import ladder

    report, html = full
    names = [v.name for v in report.variants]
    expected = {"pinned": "baseline", "streams": "pinned", "compile": "baseline", "graph": "baseline",
                "graph_full": "graph", "fp8": "graph", "fp4": "fp8", "warp_specialized": "graph",
                "double_buffer_tma": "warp_specialized", "persistent": "warp_specialized", "persistent_smem": "persistent"}
    assert {n: report.sections[n].builds_on for n in names if n != "baseline"} == expected
    assert report.sections["baseline"].builds_on is None and report.sections["baseline"].comparisons == []
    for name, below in expected.items():
        refs = [c.ref for c in report.sections[name].comparisons]
        assert refs == ([below] if below == "baseline" else [below, "baseline"])
        assert report.sections[name].adds == ladder.adds(name)
    # the baseline comparison sits in a closed <details> one click below the first
    fp4 = html[html.index('id="variant-fp4"'):html.index('id="variant-warp_specialized"')]
    assert fp4.index("<h4>Against fp8, the variant it builds on</h4>") < fp4.index('<details class="against">')
    assert "<summary>Against the baseline: " in fp4
    assert "Decode time 2.110 ms vs 1.439 ms in fp8: 1.47x slower." in fp4  # fp4 loses to the rung below it
    # a rung missing from the report: the next one down; a name off the ladder: the baseline
    assert ladder.builds_on("fp4", ["baseline", "graph", "fp4"], "baseline") == "graph"
    assert ladder.builds_on("persistent_smem", ["baseline", "persistent_smem"], "baseline") == "baseline"
    assert ladder.builds_on("hf_static", ["hf_eager", "hf_static"], "hf_eager") == "hf_eager"
    assert ladder.builds_on("graph", ["graph"], None) is None


def test_contents_and_navigation(full):
    report, html = full
    assert '<nav id="topbar"' in html and '<nav id="toc"' in html
    for anchor in ("summary", "variants", "charts", "missing", "environment"):
        assert f'href="#{anchor}"' in html and f'id="{anchor}"' in html
    # every variant in the contents, indented under the one it builds on
    assert [n for n, _ in report.ladder] and {n for n, _ in report.ladder} == {v.name for v in report.variants}
    assert dict(report.ladder)["persistent_smem"] == 4  # baseline > graph > warp_specialized > persistent > it
    assert html.count('<details class="variant"') == len(report.variants)


def test_low_token_agreement_is_flagged_in_the_summary(full):
    """fp4's free-running tokens agree 3.1% with the reference: its cell in the summary table is
    marked and the warning is listed under the table, not only in its section."""
    report, html = full
    col = [c.key for c in report.columns].index("token_agreement_pct")
    row = next(r for r in report.rows if r["name"] == "fp4")
    assert row["cells"][col]["flag"] == "low token agreement" and row["cells"][col]["value"] == pytest.approx(3.0769, abs=1e-3)
    assert next(r for r in report.rows if r["name"] == "graph")["cells"][col]["flag"] is None
    listed = {item["variant"]: [f["title"] for f in item["findings"]] for item in report.flags}
    assert "low token agreement" in listed["fp4"] and "low token agreement" in listed["fp8"]
    assert "slower first token" in listed["persistent_smem"]  # 6.1 ms vs 2.7 ms
    assert all("profiler overhead" not in titles for titles in listed.values())  # its column carries it
    flags = html[html.index('id="flags"'):]
    assert 'href="#variant-fp4">fp4</a>: ' in flags[:flags.index("</div>")]
