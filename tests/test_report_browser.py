"""The report in a real browser: headless Chromium (Debian's package; scripts/install_chromium.sh)
opens the rendered file from disk. Checks: no console errors, every Plotly chart drew an SVG,
one summary row per variant; a screenshot is kept as a test artefact
($DECODEPROF_ARTEFACTS if set, else pytest's tmp dir).

The demo report (`make demo`: the H200 samples) is also laid out at window widths 900 and
1400: a test-only copy of the page carries a script that measures it once drawn, opens every
collapsed section, measures again and writes the results into the DOM, which --dump-dom
prints. It checks the navigation, that nothing is wider than the window, that no network
resource was loaded, and the file's size."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from decodeprof.report import assemble, load_variant, write_report

CHROMIUM = Path("/usr/bin/chromium")
H100 = Path(__file__).resolve().parent / "data" / "h100"
H200 = Path(__file__).resolve().parent / "data" / "h200"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} absent: run scripts/install_chromium.sh (apt-get install chromium)"),
]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    variants = [load_variant(p) for p in sorted(H100.iterdir()) if p.is_dir()]
    html = write_report(assemble(variants), tmp / "report.html")
    return tmp, html, len(variants)


def test_report_draws_in_chromium(page):
    tmp, html, n_variants = page
    proc = chromium(tmp, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if re.search(r"error|uncaught|exception", line, re.I)]
    assert not errors, "console errors:\n" + "\n".join(errors)
    assert re.search(r'<pre id="js-errors"></pre>', dom), "window error handler caught something"

    tags = list(re.finditer(r'<div\b[^>]*\bdata-figure="([^"]+)-data"[^>]*>', dom))
    assert len(tags) >= 6  # 5 overview charts + at least one waterfall
    for i, tag in enumerate(tags):
        cid = tag.group(1)
        body = dom[tag.end():tags[i + 1].start() if i + 1 < len(tags) else len(dom)]
        assert 'data-drawn="1"' in tag.group(0), f"{cid}: Plotly.newPlot did not resolve"
        assert re.search(r'<svg[^>]*class="main-svg"', body), f"{cid}: no SVG drawn"
        assert re.search(r"<(rect|path)\b", body), f"{cid}: empty SVG"

    table = dom[dom.index('id="summary-table"'):]
    table = table[:table.index("</table>")]
    assert table.count('class="variant-row"') == n_variants


def test_screenshot_artefact(page):
    tmp, html, _ = page
    folder = Path(os.environ.get("DECODEPROF_ARTEFACTS", tmp))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "decodeprof-report.png"
    proc = chromium(tmp, "--virtual-time-budget=10000", "--window-size=1400,4000", f"--screenshot={shot}", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if folder != tmp:
        shutil.copy(html, folder / html.name)


# Injected into a copy of the page: measure once the charts are drawn, open every <details>
# (as "Expand all" does), measure again, write the results into the DOM for --dump-dom.
MEASURE = """<script>
window.addEventListener("load", function () {
  function measure() {
    var w = document.documentElement.clientWidth, wide = [];
    document.querySelectorAll("main *, nav *").forEach(function (el) {
      var r = el.getBoundingClientRect();
      if (r.width && (r.right > w + 0.5 || r.left < -0.5)) { wide.push((el.id || el.className || el.tagName) + " " + Math.round(r.left) + ".." + Math.round(r.right)); }
    });
    return {clientWidth: w, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 20),
            charts: document.querySelectorAll("div.chart").length,
            drawn: Array.prototype.filter.call(document.querySelectorAll("div.chart[data-drawn]"),
                                               function (c) { return c.querySelector("svg.main-svg rect, svg.main-svg path"); }).length,
            height: document.documentElement.scrollHeight};
  }
  setTimeout(function () {
    var nav = document.getElementById("topbar");
    var out = {closed: measure(), nav: nav ? getComputedStyle(nav).position : null,
               toc: document.querySelectorAll("#toc a[href^='#variant-']").length,
               variants: document.querySelectorAll("details.variant").length};
    document.getElementById("open-all").click();
    setTimeout(function () {
      out.open = measure();
      out.resources = performance.getEntriesByType("resource").map(function (e) { return e.name; });
      var pre = document.createElement("pre");
      pre.id = "layout-check";
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    }, 1500);
  }, 1500);
});
</script>"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo report, as `make demo` renders it, and a copy of it with MEASURE injected."""
    tmp = tmp_path_factory.mktemp("demo")
    variants = [load_variant(p) for p in sorted(H200.iterdir()) if p.is_dir()]
    html = write_report(assemble(variants), tmp / "decodeprof-report.html")
    probe = tmp / "probe.html"
    probe.write_text(html.read_text().replace("</body>", MEASURE + "</body>"))
    return tmp, html, probe, len(variants)


def test_demo_report_is_small_and_offline(demo):
    _, html, _, _ = demo
    assert html.stat().st_size < 1_500_000
    text = html.read_text()
    # nothing to fetch: no external script, style sheet, image or frame (plain <a href> links may go anywhere)
    assert not re.search(r"<(script|img|iframe|link|source|video|audio)\b[^>]*\b(src|href)\s*=", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", text.split("<script>", 1)[0], re.I)


@pytest.mark.parametrize("width", [900, 1400])
def test_demo_report_layout(demo, width):
    tmp, _, probe, n_variants = demo
    proc = chromium(tmp, "--enable-logging=stderr", "--v=0", f"--window-size={width},1000",
                    "--virtual-time-budget=20000", "--dump-dom", probe.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console output:\n" + "\n".join(console)
    assert '<pre id="js-errors"></pre>' in proc.stdout, "window error handler caught something"
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, "the measuring script did not finish"
    got = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    # navigation: a bar that stays on screen, contents linking every variant's (collapsible) section
    assert got["nav"] == "sticky" and got["toc"] == n_variants == got["variants"]
    for state in ("closed", "open"):
        m = got[state]
        assert m["clientWidth"] <= width
        assert m["scrollWidth"] <= m["clientWidth"] and not m["wide"], f"{state} at {width}px: {m['wide']}"
    assert got["open"]["drawn"] == got["open"]["charts"] > 20  # every chart drew, the collapsed ones too
    assert got["closed"]["height"] < got["open"]["height"]
    assert not [r for r in got["resources"] if re.match(r"https?:", r)], got["resources"]
