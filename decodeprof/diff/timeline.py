"""Side-by-side timeline: one decode step of A above one of B, on the same time scale (Plotly).

Times are µs from each step's first op start (display units: this is the report layer).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from decodeprof.diff.steps import pick_step
from decodeprof.trace import Trace

FAMILY_COLORS = {
    "gemm": "#1f77b4", "elementwise": "#ff7f0e", "norm": "#2ca02c", "reduction": "#d62728", "embedding": "#9467bd",
    "copy": "#8c564b", "memcpy": "#8c564b", "memset": "#7f7f7f", "triton": "#e377c2", "nccl": "#17becf", "other": "#bcbd22",
}


def _bars(ops: pl.DataFrame, label: str, shown: set[str]) -> list[go.Bar]:
    if ops.is_empty():
        return []
    t0 = int(ops["start_ns"].min())
    bars = []
    for fam, group in ops.group_by("family", maintain_order=True):
        fam = fam[0]
        bars.append(go.Bar(
            y=[label] * group.height, x=(group["dur_ns"] / 1e3).to_list(), base=((group["start_ns"] - t0) / 1e3).to_list(),
            orientation="h", name=fam, legendgroup=fam, showlegend=fam not in shown,
            marker_color=FAMILY_COLORS.get(fam, "#999999"),
            customdata=list(zip(group["name"].to_list(), group["graph"].to_list())),
            hovertemplate="%{customdata[0]}<br>start %{base:.2f} µs, %{x:.2f} µs<br>graph node: %{customdata[1]}<extra></extra>",
        ))
        shown.add(fam)
    return bars


def step_timeline_figure(trace_a: Trace, trace_b: Trace, label_a: str, label_b: str, *, step: int | None = None,
                         steps: int | None = None, ops_a: pl.DataFrame | None = None,
                         ops_b: pl.DataFrame | None = None) -> go.Figure:
    """Plotly figure: the representative decode step of A (top row) and of B, same µs axis.

    `step`: 0-based decode step to show instead of the median one; `ops_a` / `ops_b`: an
    already picked step (StepPick.ops) to skip picking again. Bars are coloured by kernel family.
    """
    ops_a = ops_a if ops_a is not None else pick_step(trace_a, step=step, steps=steps).ops
    ops_b = ops_b if ops_b is not None else pick_step(trace_b, step=step, steps=steps).ops
    shown: set[str] = set()
    fig = go.Figure(_bars(ops_a, label_a, shown) + _bars(ops_b, label_b, shown))
    spans = [(o["end_ns"].max() - o["start_ns"].min()) / 1e3 for o in (ops_a, ops_b) if not o.is_empty()]
    fig.update_layout(
        barmode="overlay", height=260, margin=dict(l=10, r=10, t=40, b=40),
        title="One decode step, same time scale", xaxis_title="µs from the step's first kernel start",
        yaxis=dict(categoryorder="array", categoryarray=[label_b, label_a]),
        legend=dict(orientation="h", y=-0.35),
    )
    if spans:
        fig.update_xaxes(range=[0, max(spans) * 1.02])
    return fig
