"""The one Jinja environment of every HTML page decodeprof writes (the report, the diff), and
the Plotly bundle those pages inline.

Autoescape is on: every trace-derived string (kernel names contain `<`) is escaped; an
undefined name in a template is an error (StrictUndefined), never an empty string. Numbers
are formatted by the filters (decodeprof.present.formats), never in templates.

The Plotly JS is the vendored basic bundle (decodeprof/report/vendor/README.md: where it comes
from, its version and checksum), which draws the trace types in BUNDLE_TRACE_TYPES.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from decodeprof import TEMPLATES, thresholds
from decodeprof.present import formats

VENDOR = Path(__file__).resolve().parents[1] / "report" / "vendor"  # shipped as decodeprof.report's package data
PLOTLY_JS = VENDOR / "plotly-basic.min.js"
PLOTLY_JS_VERSION = "4.1.1"  # the plotly.js that Python plotly 7.1 emits figures for
BUNDLE_TRACE_TYPES = frozenset({"bar", "pie", "scatter"})  # what the basic bundle draws


def json_script(text: str) -> Markup:
    """JSON text made safe inside <script type="application/json">: <, >, & as \\u escapes."""
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def breakable(name) -> Markup:
    """A name that may wrap after its underscores (double_buffer_tma in a narrow column)."""
    return Markup(str(escape(str(name))).replace("_", "_<wbr>"))


def _cell_filter(kind: str):
    return lambda v: formats.cell(kind, v)


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """Templates from `templates`; filters: one per cell kind (formats.CELLS: ms, ns_us, pct,
    ...; "—" when missing), fmt(value, kind), json_script, breakable; global: thresholds."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update({kind: _cell_filter(kind) for kind in formats.CELLS})
    env.filters.update(fmt=lambda v, kind: formats.cell(kind, v), json_script=json_script, breakable=breakable)
    env.globals.update(thresholds=thresholds)
    return env


def plotly_js() -> Markup:
    """The vendored Plotly bundle, for a <script> element (it holds no "</script")."""
    banner = f"/* plotly.js v{PLOTLY_JS_VERSION}, basic bundle (bar, pie, scatter); see decodeprof/report/vendor */\n"
    return Markup(banner + PLOTLY_JS.read_text(encoding="utf-8"))
