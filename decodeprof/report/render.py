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


REPORT_JSON_VERSION = 1
_FINDING_KEYS = ("kind", "title", "sentence", "threshold", "fact", "evidence")  # the page's element ids left out


def report_json(report) -> dict:
    """The report as data (`decodeprof report --format json`, docs/report.md): per run, its
    facts (the numbers its findings state; ns, bytes, percent 0-100), what it lacks, and its
    findings (with the raw numbers they rest on), on its own and against each run it is compared
    with; and the multi-GPU section's ranks, scaling and findings when a run has several ranks."""
    import dataclasses

    from decodeprof.present.json_values import json_safe

    def views(found: list[dict]) -> list[dict]:
        return [{k: f[k] for k in _FINDING_KEYS} for f in found]

    runs = []
    for v in report.variants:
        section = report.sections.get(v.name)
        runs.append({
            "name": v.name, "source": str(v.source), "facts": dataclasses.asdict(v.facts), "missing": list(v.missing),
            "findings": views(section.own if section else report.findings.get(v.name, [])),
            "comparisons": [{"against": c.ref, "builds_on": c.ladder, "findings": views(c.findings)}
                            for c in (section.comparisons if section else [])],
        })
    multigpu = None
    if report.multigpu is not None:
        multigpu = {"runs": [{"run": v.variant, "world_size": v.world_size, "mode": v.mode, "backend": v.backend,
                              "ranks": [dataclasses.asdict(r) for r in v.rows], "communication": v.comm_rows,
                              "findings": views(v.findings), "notes": v.notes} for v in report.multigpu.variants],
                    "scaling": report.multigpu.scaling, "notes": report.multigpu.scaling_notes}
    return json_safe({"version": REPORT_JSON_VERSION, "baseline": report.baseline, "runs": runs,
                      "read_first": [{"run": f["variant"], "findings": views(f["findings"])} for f in report.flags],
                      "multigpu": multigpu, "notes": list(report.notes)})
