"""The diff as one self-contained HTML file (Jinja2, autoescape on; Plotly JS inlined once: the
report's vendored basic bundle, decodeprof/report/vendor, which draws the timeline's bars)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from decodeprof import TEMPLATES
from decodeprof.diff.compare import JSON_VERSION, TraceDiff
from decodeprof.present.step_timeline import step_timeline_figure


# (table name, title, key column, [(value, header, scale)])
TABLES = (
    ("launches", "Launch and sync calls (whole trace)", "api_kind", [("calls", "calls", 1), ("api_ns", "API ms", 1e6)]),
    ("host_wait", "Host wait and GPU idle per NVTX range (ms)", "range_name",
     [("host_wait_ns", "host wait", 1e6), ("gpu_idle_ns", "GPU idle", 1e6), ("gpu_idle_host_bound_ns", "host-bound idle", 1e6)]),
    ("copies", "Copies", "copy", [("count", "count", 1), ("bytes", "MB", 1e6), ("dur_ns", "ms", 1e6), ("gb_per_s", "GB/s", 1)]),
    ("nvtx", "NVTX ranges, per instance (µs)", "range_name",
     [("count", "count", 1), ("cpu_span_ns", "CPU", 1e3), ("gpu_busy_ns", "GPU busy", 1e3), ("kernels", "kernels", 1)]),
    ("kernels", "Kernels by name (whole trace)", "name", [("count", "count", 1), ("total_ns", "total µs", 1e3)]),
    ("metrics", "Target metrics (median of iterations)", "metric", [("median", "median", 1)]),
)


def _num(v, scale: float = 1) -> str:
    if v is None:
        return ""
    if isinstance(v, int) and scale == 1:
        return f"{v:,}"
    return f"{v / scale:,.2f}"


def _table(d: TraceDiff, name: str, title: str, key: str, values) -> dict:
    frame = d.tables[name]
    if name == "copies" and frame.height:
        import polars as pl

        frame = frame.with_columns(pl.format("{} {} -> {}", *(pl.col(c).str.replace(r"^.*_", "")
                                                               for c in ("copy_kind", "src_kind", "dst_kind"))).alias("copy"))
    rows = []
    for r in frame.iter_rows(named=True):
        cells = [str(r[key])]
        for v, _, scale in values:
            pct = r[f"change_{v}_pct"]
            cells += [_num(r[f"a_{v}"], scale), _num(r[f"b_{v}"], scale), "" if pct is None else f"{pct:+.0f}%"]
        rows.append(cells)
    return {"title": title, "key": key, "headers": [h for _, h, _ in values], "rows": rows}


def render_html(d: TraceDiff) -> str:
    """The HTML text of the diff (see reports/templates/diff.html.j2)."""
    from decodeprof.report.render import plotly_js

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"], default=True))
    fig = step_timeline_figure(d.pick_a.ops, d.pick_b.ops, d.label_a, d.label_b)
    timeline = Markup(fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%"))
    alignments = [("Decode step, aligned", list(d.step_alignment.iter_rows(named=True))),
                  ("Prefill, aligned", list(d.prefill_alignment.iter_rows(named=True)))]
    return env.get_template("diff.html.j2").render(
        d=d, source_a=str(d.source_a), source_b=str(d.source_b), timeline=timeline,
        plotly_js=plotly_js(), alignments=alignments,
        tables=[_table(d, *t) for t in TABLES], us=lambda ns: _num(ns, 1e3), json_version=JSON_VERSION,
    )


def write_html(d: TraceDiff, path: Path | str) -> Path:
    """Write the HTML atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(d)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
