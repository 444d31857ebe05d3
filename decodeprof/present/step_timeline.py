"""Side-by-side timeline: one decode step of A above one of B, on the same time scale (Plotly).

Takes the steps' op frames (analyses.step_timeline: OP_COLUMNS, times in ns) and draws them
in µs from each step's first op start.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from decodeprof.present.colours import family_colour


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
            marker_color=family_colour(fam),
            customdata=list(zip(group["name"].to_list(), group["graph"].to_list())),
            hovertemplate="%{customdata[0]}<br>start %{base:.2f} µs, %{x:.2f} µs<br>graph node: %{customdata[1]}<extra></extra>",
        ))
        shown.add(fam)
    return bars


def step_timeline_figure(ops_a: pl.DataFrame, ops_b: pl.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Plotly figure: the decode step of A (top row) and of B, same µs axis, bars coloured by
    kernel family."""
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
