"""The HTML report: every variant side by side, and why each optimization wins.

    from decodeprof.report import assemble, load_variant, write_report
    report = assemble([load_variant(p) for p in ["runs/baseline", "runs/graph"]])
    write_report(report, "report.html")

variant.py reads facts from analysis frames; waterfall.py splits decode time exactly;
charts.py builds Plotly figures; build.py assembles; render.py writes HTML (templates in
reports/templates). Findings live in decodeprof.findings.
"""

from decodeprof.report.build import Report, assemble, load_variant
from decodeprof.report.render import render_html, write_report

__all__ = ["Report", "assemble", "load_variant", "render_html", "write_report"]
