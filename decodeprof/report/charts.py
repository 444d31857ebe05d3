"""Plotly figures of the report, each readable without hovering: title, axis units, labels.

Each function takes the report's variants (decodeprof.report.variant.Variant) and returns a
`Chart` (element id, title, the figure as JSON) or None when no variant has the data.
Trace-derived text (kernel names contain `<`) is HTML-escaped: Plotly renders labels as
HTML-like markup, and entities display as the characters they stand for.

Every figure uses only trace types of the vendored basic Plotly bundle (decodeprof.present.html.BUNDLE_TRACE_TYPES:
the waterfall is drawn as floating bars) and one template (TEMPLATE), which the page holds once
instead of in every figure. Labels on bars are never drawn below MIN_TEXT_PX: one that does not
fit is left out, and its value stays in the hover text and the axis.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import plotly.graph_objects as go
import polars as pl

from decodeprof.present import colours
from decodeprof.present.formats import count, fixed, gbps, mb_text, ns_us, pct_text, us_text
from decodeprof.present.step_timeline import step_timeline_figure

TEMPLATE = "plotly_white"
MIN_TEXT_PX = 10  # bar labels smaller than this are hidden (Plotly's uniformtext), not shrunk
LAYOUT = dict(template=TEMPLATE, height=380, margin=dict(l=70, r=30, t=60, b=60),
              font=dict(family="system-ui, sans-serif", size=12), legend=dict(orientation="h", y=-0.2),
              uniformtext=dict(minsize=MIN_TEXT_PX, mode="hide"))


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure_json: str  # {"data": [...], "layout": {...}} as Plotly serialises it
    note: str = ""


def esc(text) -> str:
    return html.escape(str(text), quote=False)


def template_json() -> str:
    """TEMPLATE as the figures would carry it: the page sets it on each figure before drawing."""
    return json.dumps(json.loads(go.Figure(layout=dict(template=TEMPLATE)).to_json())["layout"]["template"])


def _chart(cid: str, title: str, fig: go.Figure, note: str = "", subtitle: str = "") -> Chart:
    """`title` names what the chart shows, `subtitle` over what (a median step, a mean, which
    traces): both stay short enough for half the page's width."""
    fig.update_layout(**LAYOUT)
    fig.update_layout(title=dict(text=esc(title), subtitle=dict(text=esc(subtitle)), automargin=True, yref="container"),
                      margin_t=80 if subtitle else LAYOUT["margin"]["t"])
    figure = json.loads(fig.to_json())
    figure["layout"].pop("template", None)  # the page holds TEMPLATE once (render.py)
    return Chart(cid, title, json.dumps(figure, separators=(",", ":")), note)


def step_time(variants) -> Chart | None:
    """Median decode step on the GPU: busy (kernels) vs idle, stacked, µs."""
    rows = [(v.name, v.facts.gpu_busy_per_step_ns, v.facts.gpu_idle_per_step_ns) for v in variants
            if v.facts.gpu_busy_per_step_ns is not None and v.facts.gpu_idle_per_step_ns is not None]
    if not rows:
        return None
    names = [esc(r[0]) for r in rows]
    busy = [r[1] / 1e3 for r in rows]
    idle = [r[2] / 1e3 for r in rows]
    fig = go.Figure([
        go.Bar(name="GPU busy (kernels)", x=names, y=busy, marker_color=colours.BUSY, text=[ns_us(r[1]) for r in rows],
               textposition="inside"),
        go.Bar(name="GPU idle", x=names, y=idle, marker_color=colours.IDLE, text=[ns_us(r[2]) for r in rows],
               textposition="inside"),
    ])
    fig.update_layout(barmode="stack", yaxis_title="µs per decode step (median step)", xaxis_title="variant")
    return _chart("chart-step-time", "Decode step on the GPU: busy vs idle", fig,
                  subtitle="µs, the median decode step of each variant's trace")


def kernels_per_step(variants) -> Chart | None:
    """Kernels executed and launch API calls per decode step (median)."""
    rows = [(v.name, v.facts.kernels_per_step, v.facts.launches_per_step) for v in variants
            if v.facts.kernels_per_step is not None and v.facts.launches_per_step is not None]
    if not rows:
        return None
    names = [esc(r[0]) for r in rows]
    fig = go.Figure([
        go.Bar(name="kernels per step", x=names, y=[r[1] for r in rows], marker_color=colours.BUSY,
               text=[count(r[1]) for r in rows], textposition="outside"),
        go.Bar(name="launch calls per step", x=names, y=[r[2] for r in rows], marker_color=colours.SECOND,
               text=[count(r[2]) for r in rows], textposition="outside"),
    ])
    fig.update_layout(barmode="group", yaxis_title="count per decode step (median)", xaxis_title="variant")
    return _chart("chart-kernels", "Kernels and launch calls per decode step", fig,
                  subtitle="the median decode step of each variant's trace")


def timeline(variants) -> Chart | None:
    """One decode step per variant: kernels and copies on their streams, clipped to the step's
    GPU window (µs from the window's start)."""
    traces = {}
    for v in variants:
        work = v.step_work
        if work is None or work.is_empty():
            continue
        for r in work.iter_rows(named=True):
            fam = r["family"]
            t = traces.setdefault(fam, {"y": [], "x": [], "base": [], "text": []})
            t["y"].append(esc(f"{v.name} · stream {r['stream_id']}"))
            t["x"].append(r["shown_ns"] / 1e3)
            t["base"].append(r["offset_ns"] / 1e3)
            whole = us_text(r["dur_ns"]) + (", the part inside this step shown" if r["clipped"] else "")
            t["text"].append(f"{esc(r['name'])}<br>{whole}")
    if not traces:
        return None
    fig = go.Figure([go.Bar(name=esc(f), orientation="h", y=t["y"], x=t["x"], base=t["base"], hovertext=t["text"],
                            hoverinfo="text", marker_color=colours.family_colour(f), marker_line_width=0.5,
                            marker_line_color=colours.BAR_EDGE)
                     for f, t in sorted(traces.items())])
    fig.update_layout(barmode="overlay", xaxis_title="time since the start of the step's GPU window (µs)",
                      xaxis_rangemode="tozero", yaxis=dict(autorange="reversed", automargin=True),
                      height=max(300, 60 + 40 * len({y for t in traces.values() for y in t["y"]})))
    note = ("Bars are kernels coloured by family (and copies), cut at the step's GPU window: a kernel that runs "
            "through several steps (a persistent kernel) shows only its part inside this one (hover for its whole "
            "duration). Gaps between bars are GPU idle time.")
    return _chart("chart-timeline", "One decode step per variant: GPU work on each stream", fig, note,
                  subtitle="the median step (by GPU window) of each trace, cut at that window")


def copy_bandwidth(variants) -> Chart | None:
    """Host-to-device copy bandwidth, pageable vs pinned, GB/s."""
    names, vals, colors, text, hover = [], [], [], [], []
    for v in variants:
        m = v.frames.get("memory_throughput", pl.DataFrame())
        if m.is_empty():
            continue
        for r in m.filter(pl.col("copy_kind").str.contains("HTOD")).iter_rows(named=True):
            kind = "pageable" if r["pageable"] else "pinned"
            names.append(esc(f"{v.name} ({kind})"))
            vals.append(r["gb_per_s"] or 0.0)
            colors.append(colours.IDLE if r["pageable"] else colours.GAIN)
            text.append(fixed(r["gb_per_s"] or 0, 1))
            hover.append(f"{esc(v.name)}, {kind}: {fixed(r['gb_per_s'] or 0, 1)} GB/s, {count(r['count'])} copies, "
                         f"{mb_text(r['bytes'], 0)}")
    if not names:
        return None
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colors, text=text, textposition="outside", hovertext=hover,
                           hoverinfo="text", showlegend=False, cliponaxis=False))
    fig.update_layout(yaxis_title="H2D bandwidth (GB/s = bytes / copy time)", xaxis_title="variant (host memory kind)")
    return _chart("chart-copy-bw", "Host-to-device copy bandwidth", fig,
                  subtitle="all H2D copies of each trace; red: pageable host memory, green: pinned")


def bandwidth(variants) -> Chart | None:
    """Achieved weight bandwidth in decode vs the GPU's peak (a roofline for a memory-bound loop)."""
    rows = [(v.name, v.facts.achieved_bytes_per_s, v.facts.bw_utilization_pct, v.facts.peak_bytes_per_s)
            for v in variants if v.facts.achieved_bytes_per_s is not None]
    if not rows:
        return None
    peak = max((r[3] for r in rows if r[3]), default=None)
    hover = [f"{esc(r[0])}: {gbps(r[1], 0)} GB/s" + (f", {pct_text(r[2])} of peak" if r[2] is not None else "") for r in rows]
    fig = go.Figure(go.Bar(x=[esc(r[0]) for r in rows], y=[r[1] / 1e9 for r in rows], marker_color=colours.BUSY,
                           text=[gbps(r[1], 0) for r in rows], textposition="outside", hovertext=hover,
                           hoverinfo="text", showlegend=False, cliponaxis=False))
    if peak:
        fig.add_hline(y=peak / 1e9, line_dash="dash", line_color=colours.IDLE,
                      annotation_text=f"GPU peak {gbps(peak, 0)} GB/s", annotation_position="top left")
    fig.update_layout(yaxis_title="weight bytes / decode GPU time (GB/s)", xaxis_title="variant",
                      yaxis_range=[0, (peak or max(r[1] for r in rows)) / 1e9 * 1.15])
    return _chart("chart-bandwidth", "Decode weight bandwidth vs the GPU's peak", fig,
                  subtitle="memory roofline: weight bytes / decode GPU time, all decode ranges of each trace")


def waterfall(cid: str, name: str, ref: str, wf: pl.DataFrame, ref_span: float, var_span: float, verb: str) -> Chart:
    """Decode span per step of `ref`, each part's change to `name`, and `name`'s span (µs per
    step, mean over the decode steps), as floating bars: each change spans the running total
    before and after it (green: it shrinks the span, red: it grows it)."""
    labels = [esc(f"{ref} median step")] + [esc(p) for p in wf["part"].to_list()] + [esc(f"{name} median step")]
    base, height, colors, text = [0.0], [ref_span / 1e3], [colours.BUSY], [ns_us(ref_span)]
    level = ref_span / 1e3
    for delta_ns in wf["delta_ns"].to_list():
        d = delta_ns / 1e3
        base.append(min(level, level + d))
        height.append(abs(d))
        colors.append(colours.GAIN if d < 0 else colours.IDLE)
        text.append(ns_us(delta_ns, sign=True))
        level += d
    base.append(0.0)
    height.append(var_span / 1e3)
    colors.append(colours.BUSY)
    text.append(ns_us(var_span))
    fig = go.Figure(go.Bar(x=labels, y=height, base=base, marker_color=colors, text=text, textposition="outside",
                           hovertext=[f"{lab}: {t} µs" for lab, t in zip(labels, text)], hoverinfo="text",
                           showlegend=False, cliponaxis=False))
    fig.update_layout(yaxis_title="µs per decode step (mean)", xaxis_tickangle=-30, height=420, yaxis_rangemode="tozero")
    return _chart(cid, f"Where {name} {verb} decode time vs {ref}", fig,
                  subtitle="GPU decode span, µs per step, mean over all decode steps")


def step_diff(cid: str, v, ref) -> Chart:
    """The median decode step of `ref` above `v`'s, same time scale (the diff command's timeline)."""
    fig = step_timeline_figure(ref.step_ops, v.step_ops, ref.name, v.name)
    return _chart(cid, f"One decode step: {ref.name} above {v.name}", fig,
                  subtitle="the median step of each trace, on the same µs scale")


def overview(variants) -> list[Chart]:
    """The cross-variant charts that exist for these variants, in report order."""
    return [c for c in (step_time(variants), kernels_per_step(variants), timeline(variants),
                        copy_bandwidth(variants), bandwidth(variants)) if c is not None]
