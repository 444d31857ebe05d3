"""Plotly figures of the report, each readable without hovering: title, axis units, labels.

Each function takes the report's variants (decodeprof.report.variant.Variant) and returns a
`Chart` (element id, title, the figure as JSON) or None when no variant has the data.
Trace-derived text (kernel names contain `<`) is HTML-escaped: Plotly renders labels as
HTML-like markup, and entities display as the characters they stand for.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import plotly.graph_objects as go
import polars as pl

from decodeprof.analyses import kernel_family

FAMILY_COLORS = {
    "gemm": "#4C78A8", "elementwise": "#F58518", "norm": "#54A24B", "reduction": "#E45756",
    "embedding": "#72B7B2", "copy": "#B279A2", "nccl": "#FF9DA6", "triton": "#9D755D",
    "other": "#BAB0AC", "memcpy": "#EECA3B", "memset": "#EECA3B",
}
LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=70, r=30, t=60, b=60),
              font=dict(family="system-ui, sans-serif", size=12), legend=dict(orientation="h", y=-0.2))


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure_json: str  # {"data": [...], "layout": {...}} as Plotly serialises it
    note: str = ""


def esc(text) -> str:
    return html.escape(str(text), quote=False)


def _chart(cid: str, title: str, fig: go.Figure, note: str = "") -> Chart:
    fig.update_layout(**LAYOUT)
    fig.update_layout(title=dict(text=esc(title)))
    return Chart(cid, title, fig.to_json(), note)


def step_time(variants) -> Chart | None:
    """Median decode step on the GPU: busy (kernels) vs idle, stacked, µs."""
    rows = [(v.name, v.facts["gpu_busy_per_step_ns"], v.facts["gpu_idle_per_step_ns"]) for v in variants
            if v.facts.get("gpu_busy_per_step_ns") is not None and v.facts.get("gpu_idle_per_step_ns") is not None]
    if not rows:
        return None
    names = [esc(r[0]) for r in rows]
    busy = [r[1] / 1e3 for r in rows]
    idle = [r[2] / 1e3 for r in rows]
    fig = go.Figure([
        go.Bar(name="GPU busy (kernels)", x=names, y=busy, marker_color="#4C78A8", text=[f"{b:.1f}" for b in busy], textposition="inside"),
        go.Bar(name="GPU idle", x=names, y=idle, marker_color="#E45756", text=[f"{i:.1f}" for i in idle], textposition="inside"),
    ])
    fig.update_layout(barmode="stack", yaxis_title="time per decode step (µs, median)", xaxis_title="variant")
    return _chart("chart-step-time", "Decode step on the GPU: busy vs idle (median step, µs)", fig)


def kernels_per_step(variants) -> Chart | None:
    """Kernels executed and launch API calls per decode step (median)."""
    rows = [(v.name, v.facts["kernels_per_step"], v.facts["launches_per_step"]) for v in variants
            if v.facts.get("kernels_per_step") is not None and v.facts.get("launches_per_step") is not None]
    if not rows:
        return None
    names = [esc(r[0]) for r in rows]
    fig = go.Figure([
        go.Bar(name="kernels per step", x=names, y=[r[1] for r in rows], marker_color="#4C78A8",
               text=[f"{r[1]:g}" for r in rows], textposition="outside"),
        go.Bar(name="launch calls per step", x=names, y=[r[2] for r in rows], marker_color="#F58518",
               text=[f"{r[2]:.3g}" for r in rows], textposition="outside"),
    ])
    fig.update_layout(barmode="group", yaxis_title="count per decode step (median)", xaxis_title="variant")
    return _chart("chart-kernels", "Kernels and launch calls per decode step", fig)


def _one_step(v) -> pl.DataFrame:
    """GPU work of the decode step whose GPU window is the median one, times from its start."""
    steps = v.frames.get("decode_steps", pl.DataFrame())
    if steps.is_empty() or steps["gpu_start_ns"].null_count() == steps.height:
        return pl.DataFrame()
    s = steps.drop_nulls("gpu_start_ns")
    med = s["gpu_window_ns"].median()
    row = s.with_columns((pl.col("gpu_window_ns") - med).abs().alias("_d")).sort("_d", "cpu_start_ns").row(0, named=True)
    t0, t1 = row["gpu_start_ns"], row["gpu_start_ns"] + row["gpu_window_ns"]
    k = v.trace.kernels.select("start_ns", "end_ns", "stream_id", "name", kernel_family(pl.col("name")).alias("family"))
    c = v.trace.memcpys.select("start_ns", "end_ns", "stream_id", pl.col("copy_kind").alias("name"), pl.lit("memcpy").alias("family"))
    work = pl.concat([k, c]).filter((pl.col("end_ns") > t0) & (pl.col("start_ns") < t1))
    return work.with_columns(((pl.col("start_ns") - t0) / 1e3).alias("x0"), ((pl.col("end_ns") - pl.col("start_ns")) / 1e3).alias("w"))


def timeline(variants) -> Chart | None:
    """One decode step per variant: kernels and copies on their streams (µs from step start)."""
    traces = {}
    for v in variants:
        work = _one_step(v)
        if work.is_empty():
            continue
        for r in work.iter_rows(named=True):
            fam = r["family"]
            t = traces.setdefault(fam, {"y": [], "x": [], "base": [], "text": []})
            t["y"].append(esc(f"{v.name} · stream {r['stream_id']}"))
            t["x"].append(r["w"])
            t["base"].append(r["x0"])
            t["text"].append(esc(r["name"]))
    if not traces:
        return None
    fig = go.Figure([go.Bar(name=esc(f), orientation="h", y=t["y"], x=t["x"], base=t["base"], hovertext=t["text"],
                            marker_color=FAMILY_COLORS.get(f, "#BAB0AC"), marker_line_width=0.5, marker_line_color="#fff")
                     for f, t in sorted(traces.items())])
    fig.update_layout(barmode="overlay", xaxis_title="time since the step's first kernel (µs)",
                      yaxis=dict(autorange="reversed"), height=max(300, 60 + 40 * len({y for t in traces.values() for y in t["y"]})))
    return _chart("chart-timeline", "One decode step per variant (the median step): GPU work on each stream", fig,
                  "Bars are kernels coloured by family (and copies); gaps between bars are GPU idle time.")


def copy_bandwidth(variants) -> Chart | None:
    """Host-to-device copy bandwidth, pageable vs pinned, GB/s."""
    names, vals, colors, text = [], [], [], []
    for v in variants:
        m = v.frames.get("memory_throughput", pl.DataFrame())
        if m.is_empty():
            continue
        for r in m.filter(pl.col("copy_kind").str.contains("HTOD")).iter_rows(named=True):
            kind = "pageable" if r["pageable"] else "pinned"
            names.append(esc(f"{v.name} ({kind})"))
            vals.append(r["gb_per_s"] or 0.0)
            colors.append("#E45756" if r["pageable"] else "#54A24B")
            text.append(f"{r['gb_per_s'] or 0:.1f} GB/s, {r['bytes'] / 1e6:.0f} MB")
    if not names:
        return None
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colors, text=text, textposition="outside", showlegend=False))
    fig.update_layout(yaxis_title="H2D bandwidth (GB/s = bytes / copy time)", xaxis_title="variant (host memory kind)")
    return _chart("chart-copy-bw", "Host-to-device copy bandwidth (red: pageable, green: pinned)", fig)


def bandwidth(variants) -> Chart | None:
    """Achieved weight bandwidth in decode vs the GPU's peak (a roofline for a memory-bound loop)."""
    rows = [(v.name, v.facts["achieved_bytes_per_s"], v.facts.get("bw_utilization_pct"), v.facts.get("peak_bytes_per_s"))
            for v in variants if v.facts.get("achieved_bytes_per_s") is not None]
    if not rows:
        return None
    peak = max((r[3] for r in rows if r[3]), default=None)
    fig = go.Figure(go.Bar(x=[esc(r[0]) for r in rows], y=[r[1] / 1e9 for r in rows], marker_color="#4C78A8",
                           text=[f"{r[1] / 1e9:,.0f} GB/s" + (f" ({r[2]:.1f}% of peak)" if r[2] is not None else "") for r in rows],
                           textposition="outside", showlegend=False))
    if peak:
        fig.add_hline(y=peak / 1e9, line_dash="dash", line_color="#E45756",
                      annotation_text=f"GPU peak {peak / 1e9:,.0f} GB/s", annotation_position="top left")
    fig.update_layout(yaxis_title="weight bytes streamed / decode GPU time (GB/s)", xaxis_title="variant",
                      yaxis_range=[0, (peak or max(r[1] for r in rows)) / 1e9 * 1.15])
    return _chart("chart-bandwidth", "Decode weight bandwidth vs the GPU's peak (memory roofline)", fig)


def waterfall(name: str, base_name: str, wf: pl.DataFrame, base_span: float, var_span: float) -> Chart:
    """The savings waterfall of one variant vs the baseline, µs per decode step."""
    labels = [esc(f"{base_name} decode step")] + [esc(p) for p in wf["part"].to_list()] + [esc(f"{name} decode step")]
    values = [base_span / 1e3] + [d / 1e3 for d in wf["delta_ns"].to_list()] + [var_span / 1e3]
    measure = ["absolute"] + ["relative"] * wf.height + ["total"]
    fig = go.Figure(go.Waterfall(x=labels, y=values, measure=measure, text=[f"{v:+,.1f}" if m == "relative" else f"{v:,.1f}" for v, m in zip(values, measure)],
                                 textposition="outside", decreasing=dict(marker_color="#54A24B"),
                                 increasing=dict(marker_color="#E45756"), totals=dict(marker_color="#4C78A8"), showlegend=False))
    fig.update_layout(yaxis_title="GPU decode span per step (µs, mean)", xaxis_tickangle=-30, height=420)
    return _chart(f"chart-waterfall-{name}", f"Where {name} saves decode time vs {base_name} (µs per step)", fig)


def step_diffs(variants, base) -> list[Chart]:
    """Per variant: one decode step of the baseline above one of the variant, same time scale
    (the diff command's timeline). Variants without decode steps get none."""
    if base is None or base.facts.get("kernels_per_step") is None:
        return []
    from decodeprof.diff.steps import pick_step
    from decodeprof.diff.timeline import step_timeline_figure

    base_ops = pick_step(base.trace).ops
    out = []
    for v in variants:
        if v is base or v.facts.get("kernels_per_step") is None:
            continue
        fig = step_timeline_figure(base.trace, v.trace, base.name, v.name, ops_a=base_ops)
        out.append(_chart(f"chart-stepdiff-{v.name}", f"One decode step: {base.name} above {v.name} (same µs scale)", fig))
    return out


def overview(variants) -> list[Chart]:
    """The cross-variant charts that exist for these variants, in report order."""
    return [c for c in (step_time(variants), kernels_per_step(variants), timeline(variants),
                        copy_bandwidth(variants), bandwidth(variants)) if c is not None]
