"""decodeprof diff on the H100 sample runs (tests/data/h100): alignment with known answers,
eager -> graph mapping, copy diff, config warnings, regression exit codes, JSON, HTML."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from decodeprof.diff import alignment_summary, diff_traces, pick_step, regressions
from decodeprof.load import load_trace

DATA = Path(__file__).parent / "data" / "h100"
LAUNCH_SQL = ("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
              "WHERE s.value LIKE 'cudaLaunchKernel%' OR s.value LIKE 'cuLaunchKernel%'")


@pytest.fixture(scope="module")
def traces():
    return {v: load_trace(DATA / v) for v in ("baseline", "pinned", "graph", "graph_full")}


def _sql(path: Path, query: str):
    with sqlite3.connect(path) as con:
        return con.execute(query).fetchone()[0]


def test_identical_traces_diff_to_nothing(traces):
    d = diff_traces(traces["baseline"], traces["baseline"])
    for aligned in (d.step_alignment, d.prefill_alignment):
        s = alignment_summary(aligned)
        assert s["identical"] and s["matched"] == aligned.height > 0
        assert aligned["dur_change_ns"].to_list() == [0] * aligned.height
    assert d.step_alignment.height == 8 and d.prefill_alignment.height == 7
    for name, table in d.tables.items():
        assert set(table["presence"]) <= {"both"}, name
        for col in (c for c in table.columns if c.startswith("delta_")):
            assert table[col].fill_null(0).abs().max() in (0, 0.0, None), (name, col)
    assert d.warnings == []
    assert d.step["speedup"] == 1.0
    assert regressions(d, 0.0) == []


def test_one_kernel_removed_shows_exactly_that_kernel(traces, tmp_path):
    base = traces["baseline"]
    pick = pick_step(base)
    assert pick.source == "step_range" and pick.steps.height == 192 and pick.ops.height == 8
    victim = pick.ops.row(2, named=True)  # third kernel of the representative step
    shutil.copy(DATA / "baseline" / "metrics.json", tmp_path / "metrics.json")
    shutil.copy(DATA / "baseline" / "trace.sqlite", tmp_path / "trace.sqlite")
    with sqlite3.connect(tmp_path / "trace.sqlite") as con:
        n = con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE start = ? AND end = ?",
                        (victim["start_ns"], victim["end_ns"])).rowcount
    assert n == 1
    d = diff_traces(base, load_trace(tmp_path), step=pick.index)
    al = d.step_alignment
    assert al["status"].to_list() == ["matched", "matched", "removed"] + ["matched"] * 5
    removed = al.filter(pl.col("status") == "removed").row(0, named=True)
    assert (removed["a_name"], removed["a_index"], removed["b_name"]) == (victim["name"], 2, None)
    assert alignment_summary(d.prefill_alignment)["identical"]
    kern = d.tables["kernels"].filter(pl.col("name") == victim["name"]).row(0, named=True)
    assert kern["delta_count"] == -1


def test_baseline_vs_graph_maps_eager_launches_to_graph_nodes(traces):
    d = diff_traces(traces["baseline"], traces["graph"], label_a="baseline", label_b="graph")
    s = alignment_summary(d.step_alignment)
    assert s["matched"] == 8 and s["eager_to_graph"] == 8 and s["removed"] == s["added"] == 0
    assert d.pick_b.source == "decode_slice" and d.pick_b.steps.height == 3 * 64
    # launch calls, counted independently in SQL: 1560 one-by-one launches -> 27 (prefill only)
    a_sql = _sql(DATA / "baseline" / "trace.sqlite", LAUNCH_SQL)
    b_sql = _sql(DATA / "graph" / "trace.sqlite", LAUNCH_SQL)
    row = d.tables["launches"].filter(pl.col("api_kind") == "kernel_launch").row(0, named=True)
    assert (row["a_calls"], row["b_calls"], row["delta_calls"]) == (a_sql, b_sql, b_sql - a_sql) == (1560, 27, -1533)
    graph_sql = _sql(DATA / "graph" / "trace.sqlite", "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN "
                     "StringIds s ON s.id = r.nameId WHERE s.value LIKE 'cudaGraphLaunch%'")
    g = d.tables["launches"].filter(pl.col("api_kind") == "graph_launch").row(0, named=True)
    assert (g["presence"], g["b_calls"]) == ("only_b", graph_sql) == ("only_b", 3)
    assert d.step["a_launches"] == 8.0 and d.step["b_launches"] == 3 / 192
    assert d.step["speedup"] > 5 and d.step["gain_idle_pct"] > 90
    # the median steps (165.3 µs and 29.1 µs, the values analyze shows), not means over all steps
    assert d.verdict.sentence.startswith("graph is 5.7x faster per decode step than baseline (165.3 µs -> 29.1 µs")
    assert "GPU idle removed" in d.verdict.sentence and d.verdict.kind == "win"


def test_graph_full_slices_prefill_then_steps(traces):
    p = pick_step(traces["graph_full"])
    assert p.source == "decode_slice" and p.steps.height == 192  # one name for cut ranges, prefill_decode too
    assert p.ops["name"][0] == "indexSelectSmallIndex" and p.ops.height == 8
    assert p.prefill.height == 7 and p.prefill["name"][0] == "vectorized_gather_kernel"
    d = diff_traces(traces["baseline"], traces["graph_full"])
    assert alignment_summary(d.prefill_alignment)["eager_to_graph"] == 7


def test_persistent_kernel_is_cut_into_steps_in_time():
    """The persistent target's decode is a memset and one kernel for 64 steps: each step lists
    the kernel clipped to its window, and the steps' busy time adds up to the time of the
    kernels the decode ranges launched (summed here in SQL)."""
    path = DATA / "persistent" / "trace.sqlite"
    if not path.is_file():
        pytest.fail("persistent sample run not present")
    p = pick_step(load_trace(path.parent))
    assert p.source == "time_slice" and p.steps.height == 192
    assert p.ops["name"].to_list() == ["persistent_decode_kernel"]
    # the kernels launched from inside the NVTX "decode" ranges (memset + persistent kernel, apart in time)
    decode_ns = _sql(path, """
        WITH d AS (SELECT e.start, e.end, e.globalTid FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id
                   WHERE e.eventType = 59 AND coalesce(e.text, s.value) = 'decode')
        SELECT sum(k.end - k.start) FROM d JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
          ON r.globalTid = d.globalTid AND r.start >= d.start AND r.start < d.end
        JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = r.correlationId""")
    assert p.steps["busy_ns"].sum() == decode_ns


def test_baseline_vs_pinned_shows_the_pageable_copy_gone(traces):
    d = diff_traces(traces["baseline"], traces["pinned"], label_a="baseline", label_b="pinned")
    pageable_sql = _sql(DATA / "baseline" / "trace.sqlite",
                        "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_MEMCPY m JOIN ENUM_CUDA_MEM_KIND k ON k.id = m.srcKind "
                        "WHERE k.name = 'CUDA_MEMOPR_MEMORY_KIND_PAGEABLE'")
    copies = d.tables["copies"]
    gone = copies.filter(pl.col("src_kind").str.contains("PAGEABLE")).row(0, named=True)
    assert (gone["presence"], gone["a_count"], gone["b_count"]) == ("only_a", pageable_sql, None) == ("only_a", 6, None)
    new = copies.filter(pl.col("src_kind").str.contains("PINNED")).row(0, named=True)
    assert new["presence"] == "only_b" and new["b_bytes"] == gone["a_bytes"] == 3 * 8192 + 3 * 16_000_000  # token ids + payload
    assert any(h.startswith("copy gone: 6 x HTOD pageable -> device") for h in d.highlights)
    assert alignment_summary(d.step_alignment)["identical"]


def _variant_copy(tmp_path: Path, variant: str, **config) -> Path:
    out = tmp_path / variant
    out.mkdir()
    shutil.copy(DATA / variant / "trace.sqlite", out / "trace.sqlite")
    metrics = json.loads((DATA / variant / "metrics.json").read_text())
    metrics["config"].update(config)
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out


def test_differing_configs_produce_a_warning(traces, tmp_path):
    other = load_trace(_variant_copy(tmp_path, "graph", batch=8, steps=64))
    d = diff_traces(traces["baseline"], other, label_a="baseline", label_b="graph")
    assert d.warnings == ["configs differ (baseline vs graph): batch 4 vs 8"]
    other = load_trace(_variant_copy(tmp_path, "pinned", batch=2, steps=32))
    d = diff_traces(traces["baseline"], other, label_a="baseline", label_b="pinned")
    assert d.warnings[0] == "configs differ (baseline vs pinned): batch 4 vs 2, steps 64 vs 32"
    # the H100 pinned sample's TTFT spread over its 3 iterations: flagged, not hidden
    assert d.warnings[1:] == ["pinned: ttft_ms varied 1.96x over its 3 iterations (max/min > 1.5: host noise; "
                              "its median is less certain)"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "decodeprof", "diff", *args], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])


def test_cli_exit_on_regression_both_ways():
    base, graph = str(DATA / "baseline"), str(DATA / "graph")
    ok = _cli(base, graph, "--exit-on-regression", "5")
    assert ok.returncode == 0, ok.stderr
    bad = _cli(graph, base, "--exit-on-regression", "5")
    assert bad.returncode == 1
    assert "error:" in bad.stderr and "decode time" in bad.stderr and "tokens/s" in bad.stderr
    same = _cli(base, base, "--exit-on-regression", "0")
    assert same.returncode == 0


def test_cli_exit_on_regression_with_nothing_to_compare_is_an_error_not_a_pass(tmp_path):
    """Bare traces (no metrics.json) and a graph run without --steps: no measure at all."""
    for v in ("graph", "compile"):
        shutil.copy(DATA / v / "trace.sqlite", tmp_path / f"{v}.sqlite")
    proc = _cli(str(tmp_path / "graph.sqlite"), str(tmp_path / "compile.sqlite"), "--exit-on-regression", "5")
    assert proc.returncode == 2
    assert "--exit-on-regression has nothing to compare" in proc.stderr and "--steps N" in proc.stderr
    with_steps = _cli(str(tmp_path / "graph.sqlite"), str(tmp_path / "compile.sqlite"), "--steps", "64",
                      "--exit-on-regression", "5")
    assert with_steps.returncode == 1  # compile's eager step is slower than graph's


def test_cli_terminal_first_screen_shows_the_mechanism():
    out = _cli(str(DATA / "baseline"), str(DATA / "graph")).stdout
    first = "\n".join(out.splitlines()[:24])
    assert "graph is 5.7x faster per decode step" in first
    assert "eager->graph" in first and "launch calls" in first


def test_cli_json_parses_and_html_is_self_contained(tmp_path):
    html = tmp_path / "diff.html"
    res = _cli(str(DATA / "baseline" / "trace.sqlite"), str(DATA / "pinned"), "--json", "-o", str(html))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["version"] == 1
    assert set(data) >= {"a", "b", "warnings", "verdict", "highlights", "decode_step", "step_alignment",
                         "prefill_alignment", "tables"}
    assert set(data["tables"]) == {"launches", "host_wait", "copies", "nvtx", "kernels", "metrics"}
    assert data["step_alignment"]["summary"]["matched"] == 8
    text = html.read_text()
    assert text.count("plotly.js v") == 1 and "<script src=" not in text
    assert "pinned is 1.2x faster" in text


def test_step_option_out_of_range_fails_loudly(traces):
    from decodeprof.errors import DecodeprofError

    with pytest.raises(DecodeprofError, match="no decode step 999"):
        pick_step(traces["baseline"], step=999)


def test_align_fused_replaced_removed_added_synthetic():
    """Synthetic on purpose: every status on a few named ops (the shipped fusions are below)."""
    from decodeprof.diff import align_ops

    def ops(*names):
        fam = {"mm": "gemm", "add": "elementwise", "mul": "elementwise", "fused": "triton", "tri_mm": "gemm",
               "norm": "norm", "argmax": "reduction"}
        return pl.DataFrame([{"name": n, "family": fam[n], "grid": "1,1,1", "block": "128,1,1", "graph": False,
                              "dur_ns": 1000} for n in names])

    al = align_ops(ops("norm", "mm", "add", "mul", "argmax"), ops("norm", "tri_mm", "fused", "argmax"))
    assert al.select("status", "a_name", "b_name", "group").rows() == [
        ("matched", "norm", "norm", 0), ("replaced", "mm", "tri_mm", 1),
        ("fused", "add", "fused", 2), ("fused", "mul", None, 2), ("matched", "argmax", "argmax", 3)]
    s = alignment_summary(al)
    assert (s["matched"], s["replaced"], s["fused_from"], s["fused_into"]) == (2, 1, 2, 1)
    assert not s["identical"]


def test_fused_kernels_are_paired_with_what_they_absorb():
    """graph -> warp_specialized: embedding, add, LayerNorm, W1 GEMM and GELU fuse into
    fused_ln_linear_gelu_kernel; W2 GEMM is replaced by gemv_kernel; the lm_head GEMM and its
    argmax reduction fuse into lm_head_argmax_kernel. (Kernel names by SQL per step: 8 -> 3.)"""
    a, b = load_trace(DATA / "graph"), load_trace(DATA / "warp_specialized")
    al = diff_traces(a, b).step_alignment
    groups = al.group_by("group", maintain_order=True).agg(
        pl.col("status").first(), pl.col("a_name").drop_nulls(), pl.col("b_name").drop_nulls())
    assert [(st, len(an), bn) for _, st, an, bn in groups.iter_rows()] == [
        ("fused", 5, ["fused_ln_linear_gelu_kernel"]), ("replaced", 1, ["gemv_kernel"]),
        ("fused", 2, ["lm_head_argmax_kernel"])]
    assert al["a_name"].to_list()[:3] == ["indexSelectSmallIndex", "vectorized_elementwise_kernel",
                                          "vectorized_layer_norm_kernel"]
    whole = diff_traces(b, load_trace(DATA / "persistent_smem")).step_alignment  # 3 kernels -> 1
    assert set(whole["status"]) == {"fused"} and whole["b_name"].drop_nulls().to_list() == ["persistent_decode_smem_kernel"]


def test_alignment_keeps_every_op_once_in_order():
    """On random op sequences: each A and each B op appears in exactly one row, in order."""
    import random

    from decodeprof.diff import align_ops

    rng = random.Random(7)
    fams = ["gemm", "norm", "elementwise", "reduction", "embedding"]
    for _ in range(300):
        def ops(n):
            return pl.DataFrame([{"name": f"k{rng.randrange(6)}", "family": rng.choice(fams), "grid": "1", "block": "1",
                                  "graph": False, "dur_ns": 1} for _ in range(n)],
                                schema={"name": pl.Utf8, "family": pl.Utf8, "grid": pl.Utf8, "block": pl.Utf8,
                                        "graph": pl.Boolean, "dur_ns": pl.Int64})
        na, nb = rng.randrange(0, 12), rng.randrange(0, 12)
        al = align_ops(ops(na), ops(nb))
        assert al["a_index"].drop_nulls().to_list() == list(range(na))
        assert al["b_index"].drop_nulls().to_list() == list(range(nb))


def test_verdict_ratios_keep_two_decimals_near_one_and_add_the_targets_own_timing():
    """warp_specialized -> double_buffer_tma is 22.5 -> 21.6 us per step: 1.04x, not "1.0x";
    the decode medians come from the two metrics.json files."""
    a, b = load_trace(DATA / "warp_specialized"), load_trace(DATA / "double_buffer_tma")
    d = diff_traces(a, b, label_a="warp_specialized", label_b="double_buffer_tma")
    ratio = d.step["a_window_ns"] / d.step["b_window_ns"]
    assert d.verdict.sentence.startswith(f"double_buffer_tma is {ratio:.2f}x faster per decode step")
    ma, mb = (json.loads((DATA / v / "metrics.json").read_text())["metrics"]["decode_ms"]["median"]
              for v in ("warp_specialized", "double_buffer_tma"))
    assert f"the targets' own decode time (CUDA events, median): {ma:.3f} ms -> {mb:.3f} ms" in d.verdict.sentence


def test_highlight_counts_only_matched_ops_as_moved_into_the_graph(traces):
    d = diff_traces(traces["baseline"], traces["graph"], step=0)
    line = next(h for h in d.highlights if h.startswith("decode step:"))
    al = d.step_alignment
    moved = al.filter((pl.col("status") == "matched") & (pl.col("launch_change") == "eager->graph")).height
    matched = al.filter(pl.col("status") == "matched").height
    assert f"{matched} matched, {moved} of them" in line and moved <= matched


def test_align_split_added_and_unlike_pairs_synthetic():
    """Synthetic on purpose (no shipped pair splits a kernel): one A op facing several B ops is
    split; a lone leftover pair of different kernel families is removed + added, not replaced."""
    from decodeprof.diff import align_ops

    fam = {"mm": "gemm", "gelu": "elementwise", "argmax": "reduction", "mm_a": "gemm", "mm_b": "gemm",
           "norm": "norm", "tri_mm": "gemm"}

    def ops(*names):
        return pl.DataFrame([{"name": n, "family": fam[n], "grid": "1", "block": "1", "graph": False, "dur_ns": 1}
                             for n in names])

    split = align_ops(ops("norm", "mm"), ops("norm", "mm_a", "mm_b"))
    assert split.select("status", "a_name", "b_name").rows() == [
        ("matched", "norm", "norm"), ("split", "mm", "mm_a"), ("split", None, "mm_b")]
    unlike = align_ops(ops("mm", "gelu"), ops("tri_mm", "argmax"))
    assert unlike.select("status", "a_name", "b_name").rows() == [
        ("replaced", "mm", "tri_mm"), ("removed", "gelu", None), ("added", None, "argmax")]


def test_cli_format_and_output_convention(tmp_path):
    """--format json on stdout; --format json,html -o BASE writes BASE.json and BASE.html."""
    a, b = str(DATA / "baseline"), str(DATA / "graph")
    res = _cli(a, b, "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == 1
    base = tmp_path / "d"
    res = _cli(a, b, "--format", "json,html", "-o", str(base))
    assert res.returncode == 0, res.stderr
    assert json.loads(base.with_suffix(".json").read_text())["version"] == 1
    assert "<html" in base.with_suffix(".html").read_text()[:500].lower()
    res = _cli(a, b, "--format", "html")
    assert res.returncode == 2 and "pass -o PATH" in res.stderr
