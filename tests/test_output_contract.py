"""Every output decodeprof writes, rendered for every shipped run and for an empty trace, held
to one contract (as pyinstrument holds each of its renderers): it renders without error; JSON
parses (no NaN or Infinity) and has its documented keys; each CSV starts with its header; a
terminal table and an HTML page show no "None", "nan" or "inf" where a number belongs; and no
trace string reaches a page unescaped (every "<" in a page opens one of its own tags, and JSON
inside a <script> holds no "<").

Outputs: analyze's tables, JSON and CSVs; the report's HTML; diff's terminal text, JSON and
HTML; the timeline's trace-event JSON. Runs: every folder under tests/data/h200 and
tests/data/foreign, the capture without CUDA tables (tests/data/cpu_nsys2022: decode steps
with no GPU work) and Trace.empty(). The diff of each run is taken against its kind's
reference run (h200/baseline, foreign/hf_eager), the empty trace against both.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from decodeprof.analyses.analysed import analyse, load_and_analyse
from decodeprof.commands.analyze import render as analyze_tables, write_analyses_json, write_csvs
from decodeprof.diff import diff_traces
from decodeprof.diff.html import render_html as diff_html
from decodeprof.diff.terminal import render as diff_terminal
from decodeprof.errors import DecodeprofError
from decodeprof.perfetto import WINDOWS, trace_events, window, write_trace_events
from decodeprof.report import assemble, render_html
from decodeprof.report.build import variant
from decodeprof.trace import Trace

DATA = Path(__file__).resolve().parent / "data"
KINDS = {"h200": "baseline", "foreign": "hf_eager"}  # fixture folder -> its reference run
RUNS = [f"{kind}/{p.name}" for kind in KINDS for p in sorted((DATA / kind).iterdir()) if p.is_dir()]
NO_CUDA = "cpu_nsys2022"
REFERENCE = {**{name: f"{name.split('/')[0]}/{KINDS[name.split('/')[0]]}" for name in RUNS}, NO_CUDA: "h200/baseline"}
RUNS.append(NO_CUDA)
EMPTY = "empty"

# The tags the report and diff pages are written with: any other "<name" is trace text.
PAGE_TAGS = {"html", "head", "meta", "title", "style", "script", "body", "nav", "main", "div", "span", "a", "button",
             "h1", "h2", "h3", "h4", "p", "pre", "ol", "ul", "li", "table", "thead", "tbody", "tr", "th", "td",
             "details", "summary", "strong", "code", "section", "wbr", "br", "em"}
NOT_A_NUMBER = re.compile(r"\b(None|nan|NaN|inf|Infinity)\b")


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[Trace, dict[str, pl.DataFrame]]]:
    """Every run loaded and analysed once: {name: (trace, frames)}."""
    out = {name: load_and_analyse(DATA / name) for name in RUNS}
    empty = Trace.empty()
    out[EMPTY] = (empty, analyse(empty))
    return out


def _no_nan(text: str) -> dict | list:
    def reject(constant):
        raise AssertionError(f"JSON holds {constant}")

    return json.loads(text, parse_constant=reject)


def check_terminal(text: str) -> None:
    assert text.strip()
    assert not NOT_A_NUMBER.search(text), NOT_A_NUMBER.search(text).group(0)


def check_page(html: str, trace: Trace) -> None:
    """A page: JSON in <script> parses and holds no "<"; outside scripts every "<" opens one of
    the page's own tags and no "None"/"nan" stands in the text; no kernel name appears raw."""
    assert html.lstrip().lower().startswith("<!doctype html>")
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        if "application/json" in attrs:
            _no_nan(body)
            assert "<" not in body
    outside = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    outside = re.sub(r"<style>.*?</style>", "", outside, flags=re.S)
    tags = {m.group(1).lower() for m in re.finditer(r"<(?:/|!)?([^\s>/]*)", outside)} - {"doctype", ""}
    assert tags <= PAGE_TAGS, f"not tags of the page (trace text unescaped?): {sorted(tags - PAGE_TAGS)}"
    text = re.sub(r"<[^>]*>", " ", outside)
    assert not NOT_A_NUMBER.search(text), NOT_A_NUMBER.search(text).group(0)
    for name in trace.kernels["name"].unique().to_list():
        if "<" in name:
            assert name not in html


def _diffs(name: str) -> list[tuple[str, str]]:
    """(A, B) pairs to diff for run `name`: its kind's reference against it; the empty trace
    against each reference, both ways."""
    if name == EMPTY:
        return [pair for kind, ref in KINDS.items() for pair in ((f"{kind}/{ref}", EMPTY), (EMPTY, f"{kind}/{ref}"))]
    return [(REFERENCE[name], name)]


@pytest.mark.parametrize("name", [*RUNS, EMPTY])
def test_analyze_tables_json_and_csv(name, runs, tmp_path):
    trace, analysed = runs[name]
    frames = {n: f for n, f in analysed.items() if n != "run_info"}  # what analyze runs: the registered analyses
    out = io.StringIO()
    analyze_tables(trace, frames, Console(file=out, width=100), max_rows=20)
    check_terminal(out.getvalue())
    buf = io.BytesIO()
    write_analyses_json(trace, frames, name, buf)
    doc = _no_nan(buf.getvalue().decode())
    assert doc["version"] == 1 and list(doc["analyses"]) == list(frames)
    assert {"trace", "meta", "missing", "empty_because", "verdict", "dropped", "analyses"} <= set(doc)
    for path in write_csvs(frames, tmp_path / "csv"):
        frame = frames[path.stem]
        rows = list(csv.reader(io.StringIO(path.read_text())))
        assert rows and rows[0] == frame.columns, path.name
        assert len(rows) == 1 + frame.height, path.name


@pytest.mark.parametrize("name", [*RUNS, EMPTY])
def test_diff_terminal_json_and_html(name, runs):
    for a, b in _diffs(name):
        (ta, _), (tb, _) = runs[a], runs[b]
        d = diff_traces(ta, tb, label_a=a, label_b=b)
        out = io.StringIO()
        diff_terminal(d, Console(file=out, width=100))
        check_terminal(out.getvalue())
        doc = _no_nan(json.dumps(d.to_json(), allow_nan=False))
        assert doc["version"] == 1 and doc["verdict"] == d.verdict.sentence
        assert set(doc["tables"]) == {"launches", "host_wait", "copies", "nvtx", "kernels", "metrics"}
        page = diff_html(d)
        check_page(page, ta)
        check_page(page, tb)


@pytest.mark.parametrize("name", [*RUNS, EMPTY])
def test_timeline_json(name, runs, tmp_path):
    """Every window: the trace-event JSON, or a typed error saying why there is none."""
    trace, _ = runs[name]
    written = 0
    for which in WINDOWS:
        try:
            win = window(trace, which)
        except DecodeprofError as e:
            assert str(e)
            continue
        path = write_trace_events(trace_events(trace, win), tmp_path / f"{which}.json")
        doc = _no_nan(path.read_text())
        assert doc["traceEvents"] and all(e["ph"] in ("X", "M") for e in doc["traceEvents"])
        written += 1
    assert written or name == EMPTY


@pytest.mark.parametrize("kind", list(KINDS))
def test_report_html(kind, runs):
    """One report of every run of a kind and the empty trace: comparisons against an empty run,
    and an empty run's own section, render like the others."""
    names = [n for n in RUNS if n.startswith(f"{kind}/")] + [EMPTY]
    variants = [variant(n.split("/")[-1], DATA / n, *runs[n]) for n in names]
    report = assemble(variants, baseline=KINDS[kind])
    page = render_html(report)
    for n in names:
        check_page(page, runs[n][0])
    assert page.count('class="variant-row"') == len(names)


def test_report_of_the_empty_trace_alone(runs):
    page = render_html(assemble([variant(EMPTY, Path("<empty>"), *runs[EMPTY])]))
    check_page(page, runs[EMPTY][0])
    assert "One variant only" in page


def test_trace_text_with_markup_is_escaped_everywhere(runs):
    """Synthetic on purpose: no capture names its kernels or ranges with markup, so h200/graph's
    are renamed to carry some; every page and terminal output must show them as text."""
    base, frames = runs["h200/graph"]
    evil = "<script>alert(1)</script>"
    trace = dataclasses.replace(base, kernels=base.kernels.with_columns((pl.lit(evil) + pl.col("name")).alias("name")),
                                nvtx=base.nvtx.with_columns((pl.col("text") + pl.lit(f" {evil}")).alias("text")))
    hostile = variant("hostile", DATA / "h200" / "graph", trace, analyse(trace))
    page = render_html(assemble([variant("graph", DATA / "h200" / "graph", base, frames), hostile], baseline="graph"))
    check_page(page, trace)
    assert evil not in page
    d = diff_traces(base, trace, label_a="graph", label_b=evil)
    check_page(diff_html(d), trace)
    assert evil not in diff_html(d)
    out = io.StringIO()
    diff_terminal(d, Console(file=out, width=100))
    assert evil in out.getvalue()  # shown as text on a terminal (rich markup escaped)


def test_analyze_columns_read_as_present_tables_writes_them(runs):
    """analyze's own column formatting and decodeprof.present.tables.column_cells agree on every
    column of every run, until analyze formats through column_cells."""
    from decodeprof.commands import analyze
    from decodeprof.present.tables import column_cells

    display = getattr(analyze, "_display", None)
    if display is None:
        pytest.skip("analyze formats its columns with decodeprof.present.tables")
    for name, (_, frames) in runs.items():
        for frame_name, frame in frames.items():
            for column in frame.columns:
                values = frame[column].to_list()
                assert display(column, values) == column_cells(column, values), (name, frame_name, column)
