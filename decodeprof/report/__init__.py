"""The HTML report: every variant side by side, and why each optimization wins.

    from decodeprof.report import assemble, load_variant, write_report
    report = assemble([load_variant(p) for p in ["runs/baseline", "runs/graph"]])
    write_report(report, "report.html")

variant.py reads facts from analysis frames; waterfall.py splits decode time exactly;
ladder.py says which variant each builds on; charts.py builds Plotly figures; build.py
assembles; render.py writes HTML (templates in reports/templates; the Plotly bundle it
inlines in vendor/). Findings live in decodeprof.findings.
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
