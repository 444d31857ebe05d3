"""Render the report to one self-contained HTML file (Jinja2 + Plotly JS inlined once).

The Plotly JS is the vendored basic bundle (vendor/README.md: where it comes from, its version
and checksum), which draws the trace types in BUNDLE_TRACE_TYPES; the diff page inlines the same.

Autoescape is on: every trace-derived string (kernel names contain `<`) is escaped. Numbers
are formatted by the filters below, never in templates. The file is written atomically: the
whole page is rendered first, written to a temporary file beside the target, then renamed
over it (os.replace), so a failure never leaves a half-written report.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from decodeprof import TEMPLATES, thresholds
from decodeprof.report import charts

DASH = "—"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def ms(v) -> str:  # value already in ms
    return DASH if _missing(v) else f"{v:,.3f}"


def ns_ms(v) -> str:
    return DASH if _missing(v) else f"{v / 1e6:,.3f}"


def ns_us(v) -> str:
    return DASH if _missing(v) else f"{v / 1e3:,.1f}"


def signed_us(v) -> str:
    return DASH if _missing(v) else f"{v / 1e3:+,.1f}"


def gbps(v) -> str:  # bytes/s -> GB/s
    return DASH if _missing(v) else f"{v / 1e9:,.1f}"


def pct(v) -> str:
    return DASH if _missing(v) else f"{v:.1f}"


def ratio(v) -> str:
    return DASH if _missing(v) else f"{v:.2f}×"


def count(v) -> str:
    if _missing(v):
        return DASH
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3g}"


def integer(v) -> str:
    return DASH if _missing(v) else f"{v:,.0f}"


FORMATS = {"ms": ms, "ns_ms": ns_ms, "ns_us": ns_us, "gbps": gbps, "pct": pct, "ratio": ratio,
           "count": count, "int": integer}


def fmt(value, kind: str) -> str:
    """Format `value` for display as `kind` (a key of FORMATS)."""
    return FORMATS[kind](value)


def json_script(text: str) -> Markup:
    """JSON text made safe inside <script type="application/json">: <, >, & as \\u escapes."""
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def breakable(name) -> Markup:
    """A variant name that may wrap after its underscores (double_buffer_tma in a narrow column)."""
    return Markup(str(escape(str(name))).replace("_", "_<wbr>"))


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FORMATS)
    env.filters.update(fmt=fmt, json_script=json_script, signed_us=signed_us, breakable=breakable)
    env.globals.update(thresholds=thresholds)
    return env


VENDOR = Path(__file__).resolve().parent / "vendor"
PLOTLY_JS = VENDOR / "plotly-basic.min.js"
PLOTLY_JS_VERSION = "4.1.1"  # the plotly.js that Python plotly 7.1 emits figures for
BUNDLE_TRACE_TYPES = frozenset({"bar", "pie", "scatter"})  # what the basic bundle draws


def plotly_js() -> Markup:
    """The vendored Plotly bundle, for a <script> element (it holds no "</script")."""
    banner = f"/* plotly.js v{PLOTLY_JS_VERSION}, basic bundle (bar, pie, scatter); see decodeprof/report/vendor */\n"
    return Markup(banner + PLOTLY_JS.read_text(encoding="utf-8"))


def render_html(report, *, templates: Path = TEMPLATES) -> str:
    """The whole page as a string (nothing written)."""
    env = environment(templates)
    return env.get_template("base.html.j2").render(
        report=report, plotly_js=plotly_js(), plotly_template=charts.template_json(),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_atomic(path: Path | str, text: str) -> Path:
    """Write `text` to `path` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(report, path: Path | str, *, templates: Path = TEMPLATES) -> Path:
    """Render `report` and write it atomically to `path`; returns the path."""
    return write_atomic(path, render_html(report, templates=templates))
