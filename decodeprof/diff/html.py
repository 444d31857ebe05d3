"""The diff as one self-contained HTML file: the one Jinja environment (decodeprof.present.html:
autoescape, StrictUndefined), the vendored Plotly bundle inlined once (it draws the
timeline's bars), written atomically (decodeprof.present.files)."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from decodeprof.diff import tables
from decodeprof.diff.compare import JSON_VERSION, TraceDiff
from decodeprof.present import formats
from decodeprof.present.files import write_atomic
from decodeprof.present.html import environment, plotly_js
from decodeprof.present.step_timeline import step_timeline_figure


def _table(d: TraceDiff, table: tables.Table) -> dict:
    return {"title": table.title, "key": table.key, "headers": [v.header for v in table.values],
            "rows": tables.rows(table, d.tables[table.name])}


def render_html(d: TraceDiff) -> str:
    """The HTML text of the diff (see reports/templates/diff.html.j2)."""
    fig = step_timeline_figure(d.pick_a.ops, d.pick_b.ops, d.label_a, d.label_b)
    timeline = Markup(fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%"))
    alignments = [("Decode step, aligned", list(d.step_alignment.iter_rows(named=True))),
                  ("Prefill, aligned", list(d.prefill_alignment.iter_rows(named=True)))]
    return environment().get_template("diff.html.j2").render(
        d=d, source_a=str(d.source_a), source_b=str(d.source_b), timeline=timeline,
        plotly_js=plotly_js(), alignments=alignments, tables=[_table(d, t) for t in tables.TABLES],
        us=lambda ns: formats.cell_with(tables.US, ns, blank=""), json_version=JSON_VERSION,
    )


def write_html(d: TraceDiff, path: Path | str) -> Path:
    """Write the HTML atomically (the whole page rendered first)."""
    return write_atomic(path, render_html(d))
