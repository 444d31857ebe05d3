"""The report in a real browser: headless Chromium (Debian's package; scripts/install_chromium.sh)
opens the rendered file from disk. Checks: no console errors, every Plotly chart drew an SVG,
one summary row per variant; a screenshot is kept as a test artefact
($DECODEPROF_ARTEFACTS if set, else pytest's tmp dir)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from decodeprof.report import assemble, load_variant, write_report

CHROMIUM = Path("/usr/bin/chromium")
H100 = Path(__file__).resolve().parent / "data" / "h100"
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
