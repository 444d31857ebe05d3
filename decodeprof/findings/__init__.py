"""Findings: why a run wins (or does not), each a sentence backed by its numbers.

A finding is stated only when its evidence clears a threshold (decodeprof.thresholds), which
it names; when a run does not win or loses, a finding says so and points at the largest cause
seen. Rules are pure functions of typed facts (facts.py: read once from the analysis frames,
units in the field names) and, for a comparison, the waterfall frame; none reads a trace or
prints. Modules: facts (Facts), finding (Finding), single (one run on its own), compared
(against a reference), multigpu (ranks and scaling), diff (the diff's verdict and sentences).

    from decodeprof.findings import facts, findings
    f = facts(trace, frames)
    for x in findings("graph", f, baseline_facts, waterfall_frame): print(x.sentence)
    compare("fp8", fp8_facts, graph_facts, ref="graph")   # only what changed against graph
"""

from __future__ import annotations

import polars as pl

from decodeprof.findings import compared, single
from decodeprof.findings.compared import BASELINE, largest_cause
from decodeprof.findings.facts import Facts, facts, missing_sentences
from decodeprof.findings.finding import KINDS, Finding, ordered

__all__ = ["BASELINE", "KINDS", "Facts", "Finding", "compare", "facts", "findings", "limits", "missing_sentences", "own"]


def limits(name: str, v: Facts) -> list[Finding]:
    """What limits one run's decode, from its own facts (no reference): each with its evidence
    and the change that usually helps. The verdict `analyze` prints first."""
    return ([f for rule in single.LIMIT_RULES for f in rule(name, v)] + compared.dram(name, v, v)
            + single.correctness(name, v) + single.measurement(name, v))


def compare(name: str, v: Facts, b: Facts, wf: pl.DataFrame | None = None, *, ref: str = BASELINE,
            waterfall_chart: str | None = None) -> list[Finding]:
    """What changed from the reference (facts `b`, named `ref` in the sentences) to run `name`
    (facts `v`): the comparing rules, then a verdict. Slower than the reference: "why it
    loses", naming the part of the waterfall `wf` (run - reference) that grew most; no win at
    all: "does not win". `waterfall_chart`: the id of that waterfall's chart."""
    chart = waterfall_chart or f"chart-waterfall-{name}"
    timing = compared.speed(name, v, b, ref)
    out = timing + [f for rule in compared.RULES for f in rule(name, v, b, ref)]
    cause = largest_cause(wf, +1.0)
    if cause and any(f.kind == "loss" for f in timing):  # only with the waterfall's numbers as evidence
        out.append(Finding(name, "loss", "why it loses", f"This variant is slower than {ref}." + cause, "see the waterfall", chart, {}))
    elif not any(f.kind == "win" for f in out):
        out.append(Finding(name, "no_win", "does not win", f"No measured win clears its threshold against {ref}." + largest_cause(wf, -1.0), "each finding's own threshold", chart, {}))
    return ordered(out)


def own(name: str, v: Facts) -> list[Finding]:
    """What one run shows without a reference: its correctness check, how far its timings can
    be trusted, and what limits its decode (`limits` less the ncu DRAM finding, which `compare`
    states against the reference)."""
    return ordered(single.correctness(name, v) + single.measurement(name, v)
                   + [f for rule in single.LIMIT_RULES for f in rule(name, v)])


def findings(name: str, v: Facts, b: Facts | None, wf: pl.DataFrame | None = None) -> list[Finding]:
    """Every finding for run `name` (facts `v`) against the baseline's facts `b`.

    With no baseline (`b` None, or the run is the baseline) only what limits the run on its
    own is described (`limits`). Otherwise its correctness, `compare` against the baseline and
    its measurement warnings.
    """
    if b is None or b is v:
        return limits(name, v)
    return ordered(single.correctness(name, v) + compare(name, v, b, wf) + single.measurement(name, v))
