"""Assemble the report's data: variants -> summary rows, findings, waterfalls, charts.

    from decodeprof.report import load_variant, assemble, write_report
    report = assemble([load_variant(p) for p in paths])
    write_report(report, "report.html")

Nothing here formats numbers for display (render.py's filters do) or writes files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from decodeprof.analyses import run_all
from decodeprof.diff.totals import config_warnings
from decodeprof.findings import Finding, findings, limits
from decodeprof.load import load_trace
from decodeprof.report import charts
from decodeprof.report.multigpu import section as multigpu_section
from decodeprof.report.variant import Variant, facts, missing_sentences, ordered, variant_name
from decodeprof.report.waterfall import decode_breakdown, waterfall
from decodeprof.trace import StepRanges

# Summary table: (fact key, header, display format (render.py `fmt`), better: "min" | "max").
SUMMARY_COLUMNS = (
    ("ttft_ms", "TTFT (ms)", "ms", "min"),
    ("tpot_ms", "TPOT (ms)", "ms", "min"),
    ("decode_ms", "Decode (ms)", "ms", "min"),
    ("total_ms", "Total (ms)", "ms", "min"),
    ("tokens_per_s", "Tokens/s", "int", "max"),
    ("speedup_decode", "Speedup, decode (×)", "ratio", "max"),
    ("speedup_total", "Speedup, total (×)", "ratio", "max"),
    ("kernels_per_step", "Kernels / step", "count", "min"),
    ("launches_per_step", "Launches / step", "count", "min"),
    ("host_wait_per_iter_ns", "Host wait / iter (ms)", "ns_ms", "min"),
    ("gpu_idle_pct", "GPU idle in decode (%)", "pct", "min"),
    ("achieved_bytes_per_s", "Weight BW (GB/s)", "gbps", "max"),
    ("bw_utilization_pct", "BW, % of peak", "pct", "max"),
    ("profiler_overhead_pct", "Profiler overhead (%)", "pct", "min"),
)


@dataclass
class WaterfallView:
    variant: str
    rows: list[dict]  # part, base_ns, variant_ns, delta_ns
    base_span_ns: float
    variant_span_ns: float
    delta_ns: float  # variant_span - base_span
    parts_sum_ns: float  # sum of the parts' deltas (equals delta_ns)
    chart: charts.Chart


@dataclass
class Report:
    variants: list[Variant]
    baseline: str | None
    columns: tuple = SUMMARY_COLUMNS
    rows: list[dict] = field(default_factory=list)  # {"name", "cells": [{"value", "fmt", "best"}]}
    findings: dict[str, list[dict]] = field(default_factory=dict)
    waterfalls: dict[str, WaterfallView] = field(default_factory=dict)
    waterfall_missing: dict[str, str] = field(default_factory=dict)
    charts: list[charts.Chart] = field(default_factory=list)
    environment: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    multigpu: object = None  # decodeprof.report.multigpu.Section, when a variant is a multi-GPU run


def load_variant(path: Path | str, name: str | None = None, step_ranges: StepRanges | None = None) -> Variant:
    """Load one run folder (or trace file), run every analysis, read its facts. `step_ranges`:
    the NVTX ranges the user names as decode loop and step (traces of other engines)."""
    path = Path(path)
    trace = load_trace(path)
    if step_ranges:
        trace = dataclasses.replace(trace, step_ranges=step_ranges)
    frames = run_all(trace)
    f = facts(trace, frames)
    return Variant(name or variant_name(path), path, trace, frames, f, missing_sentences(trace, frames, f))


def _summary_rows(variants: list[Variant], base: Variant | None) -> list[dict]:
    for v in variants:
        for key, metric in (("speedup_decode", "decode_ms"), ("speedup_total", "total_ms")):
            b, x = (base.facts.get(metric) if base else None), v.facts.get(metric)
            v.facts[key] = b / x if b is not None and x else None
    best = {}
    for key, _, _, better in SUMMARY_COLUMNS:
        vals = [v.facts.get(key) for v in variants if v.facts.get(key) is not None]
        # a best needs a worse: a column where every variant ties marks none
        best[key] = (min if better == "min" else max)(vals) if len(set(vals)) > 1 else None
    return [{"name": v.name, "cells": [{"value": v.facts.get(k), "fmt": fmt,
                                         "best": best[k] is not None and v.facts.get(k) == best[k]}
                                        for k, _, fmt, _ in SUMMARY_COLUMNS]} for v in variants]


def _environment(variants: list[Variant]) -> list[tuple[str, str]]:
    def uniq(key):
        vals = [str(v.facts.get(key)) for v in variants if v.facts.get(key)]
        return ", ".join(dict.fromkeys(vals)) or "unknown"

    configs = {}
    for v in variants:
        for k, x in v.facts.get("config", {}).items():
            configs.setdefault(k, []).append(str(x))
    cfg = ", ".join(f"{k}={'/'.join(dict.fromkeys(xs))}" for k, xs in configs.items())
    return [("GPU", uniq("gpu")), ("torch", uniq("torch")), ("CUDA", uniq("cuda")),
            ("Nsight Systems", uniq("nsys")), ("Config", cfg or "unknown")]


def _finding_view(f: Finding, chart_ids: set[str]) -> dict:
    return {"kind": f.kind, "title": f.title, "sentence": f.sentence, "threshold": f.threshold,
            "chart": f.chart if f.chart in chart_ids else None}


def _waterfalls(variants: list[Variant], base: Variant | None, report: Report) -> dict[str, pl.DataFrame]:
    frames = {}
    if base is None:
        return frames
    base_parts, base_span = decode_breakdown(base.trace)
    for v in variants:
        if v is base:
            continue
        parts, span = decode_breakdown(v.trace)
        if base_span is None or span is None:
            who = base.name if base_span is None else v.name
            report.waterfall_missing[v.name] = (f"no savings waterfall: {who} has no decode GPU span (needs an NVTX "
                                                f"\"decode\" or \"prefill_decode\" range with kernels and a step count)")
            continue
        wf = waterfall(base_parts, parts)
        frames[v.name] = wf
        total = float(wf["delta_ns"].sum())
        report.waterfalls[v.name] = WaterfallView(
            v.name, wf.to_dicts(), base_span, span, span - base_span, total,
            charts.waterfall(v.name, base.name, wf, base_span, span))
    return frames


def _dedupe(variants: list[Variant]) -> list[Variant]:
    seen: dict[str, int] = {}
    for v in variants:
        n = seen.get(v.name, 0)
        seen[v.name] = n + 1
        if n:
            v.name = f"{v.name} ({n + 1})"
    return variants


def assemble(variants: list[Variant], baseline: str | None = None) -> Report:
    """The report of `variants` against `baseline` (default: the one named "baseline"). The
    variants passed in are left as they are: the report renames and annotates copies."""
    variants = variants_in = _dedupe([dataclasses.replace(v, facts=dict(v.facts)) for v in variants])
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
                             for w in config_warnings(base.trace, v.trace, base.name, v.name)
                             if not w.startswith("no target config")]
    report.rows = _summary_rows(variants, base)
    report.environment = _environment(variants)
    wfs = _waterfalls(variants, base, report)
    report.charts = charts.overview(variants) + charts.step_diffs(variants, base)
    ids = {c.id for c in report.charts} | {w.chart.id for w in report.waterfalls.values()} | {"summary"}
    for v in variants:
        fs = findings(v.name, v.facts, base.facts if base else None, wfs.get(v.name))
        if base is not None and v is not base:  # what limits it on its own (the baseline's own list has them)
            fs += [f for f in limits(v.name, v.facts) if f.kind == "limit"]
        report.findings[v.name] = [_finding_view(f, ids) for f in fs]
    report.multigpu = multigpu_section(variants)
    return report
