"""The diff on a terminal (rich). The first screenful is the mechanism: warnings, verdict,
highlights, then the aligned decode step; totals tables follow."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from decodeprof.analyses.alignment import alignment_summary
from decodeprof.diff.compare import TraceDiff

STATUS_STYLE = {"matched": "", "replaced": "yellow", "fused": "cyan", "split": "cyan", "removed": "red", "added": "green"}


def _us(ns) -> str:
    return "" if ns is None else f"{ns / 1e3:,.2f}"


def _pct(v) -> str:
    return "" if v is None else f"{v:+.0f}%"


def _alignment_table(title: str, aligned: pl.DataFrame) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for col in ("status", "launch", "A kernel", "A µs", "B kernel", "B µs", "Δ µs"):
        t.add_column(col, overflow="fold", justify="right" if "µs" in col else "left")
    for r in aligned.iter_rows(named=True):
        style = STATUS_STYLE.get(r["status"], "")
        launch = r["launch_change"] or ""
        t.add_row(r["status"], launch, escape(r["a_name"] or ""), _us(r["a_dur_ns"]), escape(r["b_name"] or ""),
                  _us(r["b_dur_ns"]), _us(r["dur_change_ns"]), style=style)
    return t


def _compare_table(title: str, frame: pl.DataFrame, key: str, values: list[tuple[str, str, float]], rows: int) -> Table:
    """values: (value name, header, scale) -> columns A, B, change%."""
    t = Table(title=title, title_justify="left", title_style="bold")
    t.add_column(key, overflow="fold")
    for _, header, _ in values:
        t.add_column(f"A {header}", justify="right")
        t.add_column(f"B {header}", justify="right")
        t.add_column("Δ%", justify="right")
    fmt = lambda v, scale: "" if v is None else f"{v / scale:,.2f}" if scale != 1 or isinstance(v, float) else f"{v:,}"  # noqa: E731
    for r in frame.head(rows).iter_rows(named=True):
        cells = [escape(str(r[key]))]
        for v, _, scale in values:
            cells += [fmt(r[f"a_{v}"], scale), fmt(r[f"b_{v}"], scale), _pct(r[f"change_{v}_pct"])]
        t.add_row(*cells)
    return t


def _metrics_table(frame: pl.DataFrame, source: str, rows: int) -> Table:
    """The targets' own timings: median (min-max) over N iterations per run, change of the
    medians; '!' marks a run whose max/min exceeds UNSTABLE_SPREAD (host noise)."""
    from decodeprof.thresholds import UNSTABLE_SPREAD

    t = Table(title=f"Target metrics: median (min-max) over N iterations ({source})", title_justify="left",
              title_style="bold")
    t.add_column("metric", overflow="fold")
    for header in ("A", "A range", "B", "B range", "Δ%"):
        t.add_column(header, justify="right", no_wrap=True)
    num = lambda v: "" if v is None else f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"  # noqa: E731
    for r in frame.head(rows).iter_rows(named=True):
        cells = [escape(r["metric"])]
        for side in ("a", "b"):
            lo, hi = r[f"{side}_min"], r[f"{side}_max"]
            flag = "!" if lo and hi and lo > 0 and hi / lo > UNSTABLE_SPREAD else ""
            n = f" n={r[f'{side}_iters']}" if r[f"{side}_iters"] else ""
            cells += [num(r[f"{side}_median"]) + flag, ("" if lo is None else f"{num(lo)}-{num(hi)}") + n]
        cells.append(_pct(r["change_median_pct"]))
        t.add_row(*cells)
    return t


def render(d: TraceDiff, console: Console, *, rows: int = 12) -> None:
    """Print the diff: mechanism first (verdict, highlights, aligned step), then totals."""
    for side, label, source in (("A", d.label_a, d.source_a), ("B", d.label_b, d.source_b)):
        named = escape(label) if label.startswith(f"{side} (") else f"[bold]{side}[/] {escape(label)}"  # same target: "A (graph)"
        console.print(f"{named}: {escape(str(source))}")
    for w in d.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(w)}")
    console.print(f"\n[bold]{escape(d.verdict)}[/]")
    for h in d.highlights:
        console.print(f"  • {escape(h)}")
    pa, pb = d.pick_a.row(), d.pick_b.row()
    how = lambda p, r: f"step {r['step']} of {p.steps.height} ({p.source}, {_us(r['window_ns'])} µs)" if r else "none"  # noqa: E731
    s = alignment_summary(d.step_alignment)
    console.print(_alignment_table(
        f"Decode step, aligned: A {how(d.pick_a, pa)} vs B {how(d.pick_b, pb)}"
        + ((" — identical" if not s["eager_to_graph"] else " — same kernels") if s["identical"] else ""),
        d.step_alignment))
    if d.prefill_alignment.height:
        console.print(_alignment_table("Prefill, aligned", d.prefill_alignment))
    t = d.tables
    console.print(_compare_table("Launch and sync calls (whole trace)", t["launches"], "api_kind",
                                 [("calls", "calls", 1), ("api_ns", "API ms", 1e6)], rows))
    console.print(_compare_table("Host wait and GPU idle per NVTX range (ms)", t["host_wait"], "range_name",
                                 [("host_wait_ns", "host wait", 1e6), ("gpu_idle_ns", "GPU idle", 1e6)], rows))
    if t["copies"].height:
        copies = t["copies"].with_columns(pl.format("{} {} -> {}", pl.col("copy_kind").str.replace(r"^.*_", ""),
                                                    pl.col("src_kind").str.replace(r"^.*_", ""),
                                                    pl.col("dst_kind").str.replace(r"^.*_", "")).alias("copy"))
        console.print(_compare_table("Copies", copies, "copy", [("count", "count", 1), ("bytes", "MB", 1e6),
                                                                ("dur_ns", "ms", 1e6), ("gb_per_s", "GB/s", 1)], rows))
    console.print(_compare_table("NVTX ranges, per instance (µs)", t["nvtx"], "range_name",
                                 [("count", "count", 1), ("cpu_span_ns", "CPU", 1e3), ("gpu_busy_ns", "GPU busy", 1e3)], rows))
    console.print(_compare_table("Kernels by name (whole trace)", t["kernels"], "name",
                                 [("count", "count", 1), ("total_ns", "total µs", 1e3)], rows))
    if t["metrics"].height:
        console.print(_metrics_table(t["metrics"], d.timing_source, rows))
