"""The HTML report: every variant side by side, and why each optimization wins.

    from decodeprof.report import assemble, load_variant, write_report
    report = assemble([load_variant(p) for p in ["runs/baseline", "runs/graph"]])
    write_report(report, "report.html")

The report presents frames and findings: the frames are the analyses' (decodeprof.analyses,
with the decode breakdown and the step timelines), the sentences decodeprof.findings'.
variant.py holds one variant's trace, frames and facts; waterfall.py folds a waterfall for
its table; ladder.py says which variant each builds on; charts.py builds Plotly figures
(decodeprof.present.colours); build.py assembles; render.py writes HTML through the one
Jinja environment (decodeprof.present.html; templates in reports/templates; the Plotly bundle
in vendor/).
"""

__all__ = ["Report", "assemble", "load_variant", "render_html", "write_report"]


def __getattr__(name: str):
    # Loaded on first use: `analyze` reads facts from report.variant without paying for
    # plotly and jinja2, which only building and rendering a report need.
    if name in ("Report", "assemble", "load_variant"):
        from decodeprof.report import build

        return getattr(build, name)
    if name in ("render_html", "write_report"):
        from decodeprof.report import render

        return getattr(render, name)
    raise AttributeError(f"module 'decodeprof.report' has no attribute {name!r}")
