"""The report's numbers on baseline, pinned and graph, checked against metrics.json (read with
json) and plain sqlite3 SQL on trace.sqlite: speedups, the best cell of the summary table, the
baseline choice, and the kernels/launches-per-step chart's data."""

from __future__ import annotations

import base64
import json
import re
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import report_sql as q  # noqa: E402

from decodeprof.report import assemble, load_variant, render_html  # noqa: E402
from decodeprof.report.build import SUMMARY_COLUMNS  # noqa: E402

H100 = Path(__file__).parent / "data" / "h100"
NAMES = ("baseline", "pinned", "graph")


@pytest.fixture(scope="module")
def variants():
    return [load_variant(H100 / n) for n in NAMES]


def decode_median(name: str) -> float:
    return q.metrics(name)["metrics"]["decode_ms"]["median"]


def column(key: str) -> int:
    return [c[0] for c in SUMMARY_COLUMNS].index(key)


def test_speedup_decode_is_baseline_over_variant_median(variants):
    report = assemble(variants)
    assert report.baseline == "baseline"
    col = column("speedup_decode")
    rows = {r["name"]: r for r in report.rows}
    for v in report.variants:
        expected = decode_median("baseline") / decode_median(v.name)
        assert rows[v.name]["cells"][col]["value"] == pytest.approx(expected, rel=1e-12)
    assert rows["baseline"]["cells"][col]["value"] == 1.0
    assert rows["graph"]["cells"][col]["value"] > rows["pinned"]["cells"][col]["value"] > 1.0


def test_best_decode_cell_is_the_smallest_metrics_median(variants):
    report = assemble(variants)
    fastest = min(NAMES, key=decode_median)
    assert fastest == "graph"
    col = column("decode_ms")
    best = [r["name"] for r in report.rows if r["cells"][col]["best"]]
    assert best == [fastest]
    for r in report.rows:
        assert r["cells"][col]["value"] == decode_median(r["name"])
        assert r["cells"][col]["fmt"] == "ms"
    # the speedup column's best (max) is the same variant
    assert [r["name"] for r in report.rows if r["cells"][column("speedup_decode")]["best"]] == [fastest]
    # and the rendered table highlights that cell, showing the metrics.json median
    html = render_html(report)
    table = html[html.index('id="summary-table"'):html.index("</table>", html.index('id="summary-table"'))]
    for tr in re.findall(r'<tr class="variant-row">(.*?)</tr>', table, re.S):
        name = re.search(r'href="#variant-([^"]+)"', tr).group(1)
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", tr, re.S)[1:]  # first cell: the name
        attrs, text = cells[col]
        assert ('class="best"' in attrs) == (name == fastest), name
        assert text == f"{decode_median(name):,.3f}"


def test_graph_as_baseline(variants):
    report = assemble(variants, baseline="graph")
    assert report.baseline == "graph"
    speedup = {r["name"]: r["cells"][column("speedup_decode")]["value"] for r in report.rows}
    assert speedup["graph"] == 1.0
    for name in NAMES:
        assert speedup[name] == pytest.approx(decode_median("graph") / decode_median(name), rel=1e-12)
    assert speedup["baseline"] < 1.0 and not report.notes
    assert report.sections["graph"].comparisons == []
    assert all(report.comparison(name, "graph").waterfall for name in ("baseline", "pinned"))
    # pinned is still explained against the rung it builds on first, the chosen baseline one click away
    assert [c.ref for c in report.sections["pinned"].comparisons] == ["baseline", "graph"]


_LAUNCH = " OR ".join(f"s.value GLOB '{p}{what}*'" for p in ("cu", "cuda") for what in (
    "GraphLaunch", "LaunchKernel", "LaunchCooperativeKernel", "Memcpy", "Memset"))


def _ranges(db, name):
    return db.execute("""SELECT n.start, n."end", n.globalTid FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
                         WHERE coalesce(n.text, s.value) = ? AND n."end" IS NOT NULL ORDER BY n.start""", (name,)).fetchall()


def launch_calls_in(variant: str, range_name: str) -> list[int]:
    """Launch/copy/memset/graph-launch API calls inside each NVTX range of that name (same thread)."""
    with q.connect(variant) as db:
        return [db.execute(f"""SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId
                                WHERE r.globalTid = ? AND r.start >= ? AND r.start < ? AND ({_LAUNCH})""",
                           (tid, s0, s1)).fetchone()[0] for s0, s1, tid in _ranges(db, range_name)]


def _values(y):
    """A Plotly trace's array: a list, or a typed array {"dtype", "bdata"} (plotly >= 6)."""
    if isinstance(y, dict):
        import numpy as np

        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def test_kernels_per_step_chart_matches_sql(variants):
    report = assemble(variants)
    chart = next(c for c in report.charts if c.id == "chart-kernels")
    data = {t["name"]: (list(t["x"]), _values(t["y"])) for t in json.loads(chart.figure_json)["data"]}
    assert set(data) == {"kernels per step", "launch calls per step"}
    kernels = dict(zip(*data["kernels per step"]))
    launches = dict(zip(*data["launch calls per step"]))
    assert list(kernels) == list(NAMES) == list(launches)
    # eager variants: NVTX "step" ranges, median over steps
    for name in ("baseline", "pinned"):
        per_step = q.kernels_per_step_range(name)
        assert len(per_step) == 3 * q.metrics(name)["config"]["steps"]
        assert kernels[name] == statistics.median(per_step) == 8
        assert launches[name] == statistics.median(launch_calls_in(name, "step")) == 8
    # graph: no step ranges; each decode range replays all steps from one cudaGraphLaunch
    steps = q.metrics("graph")["config"]["steps"]
    decode = q.decode_kernels("graph")
    n_ranges = len({i for i, *_ in decode})
    assert kernels["graph"] == len(decode) // (n_ranges * steps) == 8  # 513 kernels per range, 64 steps
    calls = launch_calls_in("graph", "decode")
    assert calls == [1] * n_ranges and q.decode_graph_launches("graph") == n_ranges
    assert launches["graph"] == pytest.approx(sum(calls) / (n_ranges * steps), rel=1e-12)  # 1/64


def test_assemble_leaves_the_variants_it_is_given_as_they_were(variants):
    """Two reports from the same loaded variants, with different baselines, do not change each
    other (assemble annotates copies)."""
    before = {v.name: (v.facts, v.frames) for v in variants}
    first = assemble(variants)
    assemble(variants, baseline="graph")
    assert {v.name: (v.facts, v.frames) for v in variants} == before
    base = next(r for r in first.rows if r["name"] == "baseline")
    assert base["cells"][column("speedup_decode")]["value"] == 1.0


def test_a_column_where_every_variant_ties_marks_no_best(variants):
    """Kernels per step is 8 for baseline, pinned and graph (SQL: kernels_per_step_range, and
    1539 graph kernels over 3 x 64 steps): nothing is better, so no cell is marked best."""
    report = assemble(variants)
    i = column("kernels_per_step")
    cells = [row["cells"][i] for row in report.rows]
    assert [c["value"] for c in cells] == [8, 8, 8]
    assert not any(c["best"] for c in cells)
