"""Render the report to one self-contained HTML file: the one Jinja environment
(decodeprof.present.html: autoescape, StrictUndefined, the unit formatters as filters) and the
vendored Plotly bundle inlined once. The whole page is rendered first, then written
atomically (decodeprof.present.files), so a failure never leaves a half-written report.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from decodeprof import TEMPLATES
from decodeprof.present.files import write_atomic  # noqa: F401  (decodeprof.perfetto writes with it)
from decodeprof.present.html import environment, plotly_js
from decodeprof.report import charts


def render_html(report, *, templates: Path = TEMPLATES) -> str:
    """The whole page as a string (nothing written)."""
    return environment(templates).get_template("base.html.j2").render(
        report=report, plotly_js=plotly_js(), plotly_template=charts.template_json(),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(report, path: Path | str, *, templates: Path = TEMPLATES) -> Path:
    """Render `report` and write it atomically to `path`; returns the path."""
    return write_atomic(path, render_html(report, templates=templates))
