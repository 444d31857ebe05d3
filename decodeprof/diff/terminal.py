"""The diff on a terminal (rich). The first screenful is the mechanism: warnings, verdict,
highlights, then the aligned decode step; totals tables follow."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from decodeprof.analyses.alignment import alignment_summary
from decodeprof.diff import tables
from decodeprof.diff.compare import TraceDiff
from decodeprof.present import formats
from decodeprof.present.tables import printable
from decodeprof.thresholds import UNSTABLE_SPREAD

STATUS_STYLE = {"matched": "", "replaced": "yellow", "fused": "cyan", "split": "cyan", "removed": "red", "added": "green"}


def _us(ns) -> str:
    return tables.cell(tables.US, ns)


def _alignment_table(title: str, aligned: pl.DataFrame) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for col in ("status", "launch", "A kernel", "A µs", "B kernel", "B µs", "Δ µs"):
        t.add_column(col, overflow="fold", justify="right" if "µs" in col else "left")
    for r in aligned.iter_rows(named=True):
        style = STATUS_STYLE.get(r["status"], "")
        launch = r["launch_change"] or ""
        t.add_row(r["status"], launch, escape(printable(r["a_name"] or "")), _us(r["a_dur_ns"]), escape(printable(r["b_name"] or "")),
                  _us(r["b_dur_ns"]), _us(r["dur_change_ns"]), style=style)
    return t


def _compare_table(table: tables.Table, frame: pl.DataFrame, rows: int) -> Table:
    """The key column, then A, B and the change (%) of each value the terminal shows."""
    values = tuple(v for v in table.values if v.column not in tables.TERMINAL_LEAVES_OUT.get(table.name, ()))
    t = Table(title=table.title, title_justify="left", title_style="bold")
    t.add_column(table.key, overflow="fold")
    for v in values:
        t.add_column(f"A {v.header}", justify="right")
        t.add_column(f"B {v.header}", justify="right")
        t.add_column("Δ%", justify="right")
    for cells in tables.rows(table, frame.head(rows), values):
        t.add_row(escape(printable(cells[0])), *cells[1:])
    return t


def _metrics_table(frame: pl.DataFrame, source: str, rows: int) -> Table:
    """The targets' own timings: median (min-max) over N iterations per run, change of the
    medians; '!' marks a run whose max/min exceeds UNSTABLE_SPREAD (host noise)."""
    t = Table(title=f"Target metrics: median (min-max) over N iterations ({source})", title_justify="left",
              title_style="bold")
    t.add_column("metric", overflow="fold")
    for header in ("A", "A range", "B", "B range", "Δ%"):
        t.add_column(header, justify="right", no_wrap=True)
    num = lambda v: formats.cell_with(formats.significant, v, blank="")  # noqa: E731
    for r in frame.head(rows).iter_rows(named=True):
        cells = [escape(r["metric"])]
        for side in ("a", "b"):
            lo, hi = r[f"{side}_min"], r[f"{side}_max"]
            flag = "!" if lo and hi and lo > 0 and hi / lo > UNSTABLE_SPREAD else ""
            n = f" n={r[f'{side}_iters']}" if r[f"{side}_iters"] else ""
            cells += [num(r[f"{side}_median"]) + flag, ("" if lo is None else f"{num(lo)}-{num(hi)}") + n]
        cells.append(tables.change(r["change_median_pct"]))
        t.add_row(*cells)
    return t


def render(d: TraceDiff, console: Console, *, rows: int = 12) -> None:
    """Print the diff: mechanism first (verdict, highlights, aligned step), then totals."""
    for side, label, source in (("A", d.label_a, d.source_a), ("B", d.label_b, d.source_b)):
        label = printable(label)  # trace strings and paths reach the terminal without control characters
        named = escape(label) if label.startswith(f"{side} (") else f"[bold]{side}[/] {escape(label)}"  # same target: "A (graph)"
        console.print(f"{named}: {escape(printable(str(source)))}")
    for w in d.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(printable(w))}")
    console.print(f"\n[bold]{escape(printable(d.verdict.sentence))}[/]")
    for h in d.highlights:
        console.print(f"  • {escape(printable(h))}")
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
    for table in tables.TABLES:
        if table.name != "metrics" and (table.name != "copies" or t["copies"].height):
            console.print(_compare_table(table, t[table.name], rows))
    if t["metrics"].height:
        console.print(_metrics_table(t["metrics"], d.timing_source, rows))
