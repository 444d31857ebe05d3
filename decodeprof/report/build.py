"""Assemble the report's data: variants -> summary rows, findings, waterfalls, charts.

    from decodeprof.report import load_variant, assemble, write_report
    report = assemble([load_variant(p) for p in paths])
    write_report(report, "report.html")

Nothing here formats numbers for display (decodeprof.present.formats does, through the page's
filters) or writes files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import polars as pl

from decodeprof.analyses.analysed import load_and_analyse
from decodeprof.analyses.breakdown import median_step_breakdown, waterfall
from decodeprof.analyses.comparison import setup_difference
from decodeprof.analyses.step_timeline import median_step_ops, median_step_work
from decodeprof.findings import Finding, compare, facts, limits, missing_sentences, own
from decodeprof.findings.diff import config_warnings
from decodeprof.report import charts
from decodeprof.report.multigpu import section as multigpu_section
from decodeprof.report import ladder
from decodeprof.report.variant import Variant, ordered, variant_name
from decodeprof.report.waterfall import fold
from decodeprof.thresholds import WATERFALL_FOLD_FRACTION
from decodeprof.trace import StepRanges, Trace

class Column(NamedTuple):
    key: str  # the fact shown (a decodeprof.findings.Facts field), or a speedup (SPEEDUPS)
    header: str  # words that wrap; the numbers below never do
    fmt: str  # how its cells read (decodeprof.present.formats.CELLS)
    better: str | None  # "min" | "max": the best cell is marked; None: no best
    title: str = ""  # what the number is, on hover over the header


SUMMARY_COLUMNS = (
    Column("ttft_ms", "TTFT (ms)", "ms", "min", "time to first token: copy, prefill and first token (median iteration)"),
    Column("tpot_ms", "TPOT (ms)", "ms", "min", "time per output token in decode (median iteration)"),
    Column("decode_ms", "Decode (ms)", "ms", "min", "decode loop per iteration (median)"),
    Column("total_ms", "Total (ms)", "ms", "min", "whole iteration: copy, prefill, decode, synchronize (median)"),
    Column("tokens_per_s", "Tokens/s", "int", "max", "decode tokens per second (median iteration)"),
    Column("speedup_decode", "Speed\u00adup decode (×)", "ratio", "max", "baseline decode time / this variant's"),
    Column("speedup_total", "Speed\u00adup total (×)", "ratio", "max", "baseline total time / this variant's"),
    Column("kernels_per_step", "Kernels / step", "count", "min", "kernels in the median decode step"),
    Column("launches_per_step", "Launches / step", "count", "min", "launch API calls in the median decode step"),
    Column("host_wait_per_iter_ns", "Host wait / iter (ms)", "ns_ms", "min", "host time in blocking CUDA calls per iteration (trace)"),
    Column("gpu_idle_pct", "GPU idle (%)", "pct", "min", "GPU idle share of the decode steps (median step)"),
    Column("achieved_bytes_per_s", "Weight BW (GB/s)", "gbps", "max", "weight bytes / decode GPU time, all decode ranges (trace)"),
    Column("bw_utilization_pct", "BW (% of peak)", "pct", "max", "weight bandwidth as a share of the GPU's peak"),
    Column("token_agreement_pct", "Tokens agree (%)", "pct", None, "free-running tokens equal to the eager reference's (metrics.json correctness)"),
    Column("profiler_overhead_pct", "Profiler over\u00adhead (%)", "pct", "min", "profiled TPOT over unprofiled TPOT, minus 1"),
)
# Speedup columns: the baseline's fact over the variant's.
SPEEDUPS = {"speedup_decode": "decode_ms", "speedup_total": "total_ms"}
# Warnings and losses whose fact is a summary column mark that cell; the list under the table
# repeats them, except the profiler overhead: its column is the warning, on nearly every run.
FLAG_KINDS = ("warning", "loss")
TABLE_ONLY = ("profiler_overhead_pct",)


@dataclass
class WaterfallView:
    variant: str
    ref: str  # the variant it is compared against
    rows: list[dict]  # part, base_ns, variant_ns, delta_ns; small changes folded into one "unchanged" row
    folded: list[dict]  # the parts in that row
    base_span_ns: float  # the reference's
    variant_span_ns: float
    delta_ns: float  # variant_span - base_span
    parts_sum_ns: float  # sum of the parts' deltas (equals delta_ns)
    fold_below_ns: float  # |change| under which a part is folded
    verb: str  # "saves" | "costs" | "changes": what the variant does to decode time
    chart: charts.Chart


@dataclass
class Comparison:
    """One variant against one reference: its findings, waterfall and a step side by side."""
    ref: str
    ladder: bool  # True: the rung it builds on; False: the report's baseline
    findings: list[dict]
    waterfall: WaterfallView | None = None
    waterfall_missing: str | None = None
    step_chart: charts.Chart | None = None


@dataclass
class Section:
    """A variant's part of the page: what it builds on, its own findings, its comparisons
    (the first shown, the others one click away)."""
    builds_on: str | None
    adds: str | None  # what it adds to `builds_on` (None off the ladder or with a rung missing)
    own: list[dict]
    comparisons: list[Comparison] = field(default_factory=list)


@dataclass
class Report:
    variants: list[Variant]
    baseline: str | None
    columns: tuple = SUMMARY_COLUMNS
    rows: list[dict] = field(default_factory=list)  # {"name", "cells": [{"value", "fmt", "best", "flag"}]}
    findings: dict[str, list[dict]] = field(default_factory=dict)  # each variant's own (no reference)
    sections: dict[str, Section] = field(default_factory=dict)
    flags: list[dict] = field(default_factory=list)  # {"variant", "findings"}: warnings and losses to read first
    ladder: list[tuple[str, int]] = field(default_factory=list)  # (variant, depth): the contents' tree
    charts: list[charts.Chart] = field(default_factory=list)
    environment: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    multigpu: object = None  # decodeprof.report.multigpu.Section, when a variant is a multi-GPU run

    def comparison(self, name: str, ref: str | None = None) -> Comparison | None:
        """`name`'s comparison against `ref` (default: the baseline)."""
        want = ref or self.baseline
        return next((c for c in self.sections[name].comparisons if c.ref == want), None) if name in self.sections else None


def load_variant(path: Path | str, name: str | None = None, step_ranges: StepRanges | None = None) -> Variant:
    """Load one run folder (or trace file), run every analysis, read its facts. `step_ranges`:
    the NVTX ranges the user names as decode loop and step (traces of other engines)."""
    path = Path(path)
    trace, frames = load_and_analyse(path, step_ranges)
    return variant(name or variant_name(path), path, trace, frames)


def variant(name: str, source: Path, trace: Trace, frames: dict[str, pl.DataFrame]) -> Variant:
    """A variant of an analysed trace (`frames`: decodeprof.analyses.analysed.analyse): its
    facts, what it lacks, its decode breakdown and its median step's ops."""
    f = facts(trace, frames)
    return Variant(name, source, trace, frames, f, missing_sentences(trace, frames, f),
                   median_step_breakdown(trace), median_step_ops(trace), median_step_work(trace))


def _summary_rows(variants: list[Variant], base: Variant | None, flagged: dict[str, dict[str, str]]) -> list[dict]:
    """One row per variant; `flagged[name][fact]`: the title of the warning or loss that marks
    that cell."""
    values = {v.name: _summary_values(v, base) for v in variants}
    best = {}
    for col in SUMMARY_COLUMNS:
        vals = [values[v.name][col.key] for v in variants if values[v.name][col.key] is not None]
        # a best needs a worse: a column where every variant ties marks none
        best[col.key] = (min if col.better == "min" else max)(vals) if col.better and len(set(vals)) > 1 else None
    return [{"name": v.name, "cells": [{"value": values[v.name][c.key], "fmt": c.fmt,
                                         "best": best[c.key] is not None and values[v.name][c.key] == best[c.key],
                                         "flag": flagged.get(v.name, {}).get(c.key)}
                                        for c in SUMMARY_COLUMNS]} for v in variants]


def _summary_values(v: Variant, base: Variant | None) -> dict[str, float | None]:
    """The summary row of `v`: each column's fact, or its speedup over `base`."""
    out = {}
    for col in SUMMARY_COLUMNS:
        if col.key in SPEEDUPS:
            b, x = (base.facts[SPEEDUPS[col.key]] if base else None), v.facts[SPEEDUPS[col.key]]
            out[col.key] = b / x if b is not None and x else None
        else:
            out[col.key] = v.facts[col.key]
    return out


def _environment(variants: list[Variant]) -> list[tuple[str, str]]:
    def uniq(key):
        vals = [str(v.facts[key]) for v in variants if v.facts[key]]
        return ", ".join(dict.fromkeys(vals)) or "unknown"

    configs = {}
    for v in variants:
        for k, x in v.facts.config.items():
            configs.setdefault(k, []).append(str(x))
    cfg = ", ".join(f"{k}={'/'.join(dict.fromkeys(xs))}" for k, xs in configs.items())
    return [("GPU", uniq("gpu")), ("torch", uniq("torch")), ("CUDA", uniq("cuda")),
            ("Nsight Systems", uniq("nsys")), ("Config", cfg or "unknown")]


def _finding_views(fs: list[Finding], anchor: str) -> list[dict]:
    """Findings for the template: the text, the chart id it points at (checked against the
    page's charts once assembled) and an element id of its own."""
    return [{"kind": f.kind, "title": f.title, "sentence": f.sentence, "threshold": f.threshold, "chart": f.chart,
             "fact": f.fact, "evidence": f.evidence, "id": f"{anchor}-{i}"} for i, f in enumerate(fs)]


def _verb(delta_ns: float, fold_below_ns: float) -> str:
    """What a variant does to decode time, in the waterfall's title: a change smaller than a
    folded part's is no saving and no cost."""
    return "saves" if delta_ns <= -fold_below_ns else "costs" if delta_ns >= fold_below_ns else "changes"


def _comparison(v: Variant, ref: Variant, base: Variant) -> Comparison:
    """`v` against `ref`: findings, the waterfall (small changes folded), one step side by side."""
    on_ladder = ref is not base
    suffix = f"-vs-{ref.name}" if on_ladder else ""
    chart_id = f"chart-waterfall-{v.name}{suffix}"
    out = Comparison(ref.name, on_ladder, [])
    ref_parts, ref_span = ref.breakdown.parts, ref.breakdown.span_ns_per_step
    parts, span = v.breakdown.parts, v.breakdown.span_ns_per_step
    wf = None
    if ref_span is None or span is None:
        who = ref.name if ref_span is None else v.name
        out.waterfall_missing = (f"no decode waterfall: {who} has no decode GPU span (needs an NVTX \"decode\" or "
                                 f"\"prefill_decode\" range with kernels and a step count)")
    else:
        wf = waterfall(ref_parts, parts)
        below = WATERFALL_FOLD_FRACTION * max(ref_span, span)
        shown, folded = fold(wf, below)
        verb = _verb(span - ref_span, below)
        out.waterfall = WaterfallView(v.name, ref.name, shown.to_dicts(), folded.to_dicts(), ref_span, span,
                                      span - ref_span, float(wf["delta_ns"].sum()), below, verb,
                                      charts.waterfall(chart_id, v.name, ref.name, shown, ref_span, span, verb))
    fs = compare(v.name, v.facts, ref.facts, wf, ref=ref.name if on_ladder else "the baseline", waterfall_chart=chart_id)
    out.findings = _finding_views(fs, f"finding-{v.name}{suffix or '-vs-baseline'}")
    if ref.facts.kernels_per_step is not None and v.facts.kernels_per_step is not None:
        out.step_chart = charts.step_diff(f"chart-stepdiff-{v.name}{suffix}", v, ref)
    return out


def _sections(variants: list[Variant], base: Variant | None) -> dict[str, Section]:
    names = [v.name for v in variants]
    by_name = {v.name: v for v in variants}
    out = {}
    for v in variants:
        if base is None or v is base:
            out[v.name] = Section(None, None, _finding_views(limits(v.name, v.facts), f"finding-{v.name}"))
            continue
        below = ladder.builds_on(v.name, names, base.name)
        rung = ladder.LADDER.get(v.name, (None, None))
        sec = Section(below, rung[1] if rung[0] == below else None, _finding_views(own(v.name, v.facts), f"finding-{v.name}"))
        refs = [by_name[below]] + ([base] if below != base.name else [])
        sec.comparisons = [_comparison(v, ref, base) for ref in refs]
        out[v.name] = sec
    return out


def _flags(variants: list[Variant], sections: dict[str, Section], baseline: str | None) -> tuple[dict, list[dict]]:
    """(cell flags {variant: {fact: title}}, the list under the summary table): the warnings of
    each variant on its own and its losses against the baseline."""
    cells, listed = {}, []
    for v in variants:
        sec = sections[v.name]
        vs_base = next((c.findings for c in sec.comparisons if c.ref == baseline), [])
        hits = [f for f in sec.own + vs_base if f["kind"] in FLAG_KINDS and (f["fact"] or f["kind"] == "warning")]
        for f in hits:
            if f["fact"]:
                cells.setdefault(v.name, {}).setdefault(f["fact"], f["title"])
        shown = [f for f in hits if f["fact"] not in TABLE_ONLY]
        if shown:
            listed.append({"variant": v.name, "findings": shown})
    return cells, listed


def _dedupe(variants: list[Variant]) -> list[Variant]:
    seen: dict[str, int] = {}
    for v in variants:
        n = seen.get(v.name, 0)
        seen[v.name] = n + 1
        if n:
            v.name = f"{v.name} ({n + 1})"
    return variants


def _link_charts(report: Report) -> None:
    """Findings point only at charts the page has (a rule names its chart whether or not it exists)."""
    ids = {c.id for c in report.charts} | {"summary"}
    for sec in report.sections.values():
        for c in sec.comparisons:
            ids |= {x.id for x in (c.step_chart, c.waterfall.chart if c.waterfall else None) if x is not None}
    for sec in report.sections.values():
        for fs in [sec.own] + [c.findings for c in sec.comparisons]:
            for f in fs:
                f["chart"] = f["chart"] if f["chart"] in ids else None


def assemble(variants: list[Variant], baseline: str | None = None) -> Report:
    """The report of `variants` against `baseline` (default: the one named "baseline"). The
    variants passed in are left as they are: the report renames and annotates copies."""
    variants = variants_in = _dedupe([dataclasses.replace(v) for v in variants])
    order = ordered([v.name for v in variants])
    variants = sorted(variants, key=lambda v: order.index(v.name))
    # the one named "baseline", else the first given (a report of traces from other engines)
    want = baseline or ("baseline" if any(v.name == "baseline" for v in variants) else (variants_in[0].name if variants_in else "baseline"))
    base = next((v for v in variants if v.name == want), None)
    report = Report(variants=variants, baseline=base.name if base else None)
    if base is None:
        report.notes.append(f"No variant named {want!r}: speedups, comparisons and waterfalls need one; "
                            "each variant is described on its own.")
    if len(variants) == 1:
        report.notes.append("One variant only: nothing to compare against.")
    for v in variants if base else []:
        if v is not base:  # a missing metrics.json is named among the variant's missing data
            report.notes += [f"{w}: the comparisons of {v.name} with {base.name} set different work side by side"
                             for w in config_warnings(setup_difference(base.trace, v.trace), base.name, v.name)
                             if not w.startswith("no target config")]
    report.environment = _environment(variants)
    report.charts = charts.overview(variants)
    report.sections = _sections(variants, base)
    report.findings = {name: sec.own for name, sec in report.sections.items()}
    _link_charts(report)
    cells, report.flags = _flags(variants, report.sections, report.baseline)
    report.rows = _summary_rows(variants, base, cells)
    report.ladder = ladder.tree([v.name for v in variants], report.baseline)
    report.multigpu = multigpu_section(variants)
    return report
