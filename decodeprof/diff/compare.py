"""diff_traces: everything the diff shows, the comparison frames (decodeprof.analyses.comparison)
and the sentences over them (decodeprof.findings.diff); pure, no printing.

The frames are analyses.comparison's: the decode-step numbers (window, busy, idle, launches)
are those of one representative step of each trace, the step model's median step (the lower
median by GPU window, the same step and value analyze and the report show), or --step.
Window = busy + idle within that step, so the gain splits exactly into kernel time saved and
GPU idle removed; the aligned op sequences come from the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from decodeprof.analyses.alignment import alignment_summary
from decodeprof.analyses.comparison import compare_traces
from decodeprof.analyses.step_timeline import StepPick
from decodeprof.findings import Finding
from decodeprof.findings import diff as said
from decodeprof.present.json_values import finite
from decodeprof.trace import Trace

JSON_VERSION = 1


@dataclass(frozen=True)
class TraceDiff:
    label_a: str
    label_b: str
    source_a: Path
    source_b: Path
    gpu_a: str | None
    gpu_b: str | None
    timing_source: str  # where A's target timings come from: "unprofiled run", "profiled run" or "none"
    pick_a: StepPick
    pick_b: StepPick
    step_alignment: pl.DataFrame
    prefill_alignment: pl.DataFrame
    step: dict  # analyses.comparison.step_change: a_/b_ window_ns, busy_ns, idle_ns, launches, ops; steps
    verdict: Finding  # its sentence is the diff's first line
    warnings: list[str]
    highlights: list[str] = field(default_factory=list)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The documented JSON object (docs/diff.md); integer ns, bytes, percent 0-100."""
        rows = lambda df: [{k: finite(v) for k, v in r.items()} for r in df.iter_rows(named=True)]  # noqa: E731
        pick = lambda p: {"source": p.source, "steps": p.steps.height, "index": p.index,  # noqa: E731
                          "row": {k: finite(v) for k, v in p.row().items()}}
        return {
            "version": JSON_VERSION,
            "a": {"label": self.label_a, "trace": str(self.source_a), "gpu": self.gpu_a, "step": pick(self.pick_a)},
            "b": {"label": self.label_b, "trace": str(self.source_b), "gpu": self.gpu_b, "step": pick(self.pick_b)},
            "warnings": list(self.warnings),
            "verdict": self.verdict.sentence,
            "highlights": list(self.highlights),
            "decode_step": {k: finite(v) for k, v in self.step.items()},
            "step_alignment": {"summary": alignment_summary(self.step_alignment), "rows": rows(self.step_alignment)},
            "prefill_alignment": {"summary": alignment_summary(self.prefill_alignment),
                                  "rows": rows(self.prefill_alignment)},
            "tables": {name: rows(df) for name, df in self.tables.items()},
        }


def diff_traces(a: Trace, b: Trace, *, label_a: str = "A", label_b: str = "B", step: int | None = None,
                steps: int | None = None) -> TraceDiff:
    """Diff trace `b` against trace `a`. `step`: 0-based decode step (over all decode steps in
    time order) to align instead of the median one, in both; `steps`: decode steps per
    decode range when a trace's metrics lack config.steps."""
    c = compare_traces(a, b, step=step, steps=steps)
    warnings = said.config_warnings(c.setup, label_a, label_b)
    for lbl, p in ((label_a, c.pick_a), (label_b, c.pick_b)):
        if p.index is None:
            warnings.append(f"{lbl}: {p.found or 'no decode steps found'}")
    warnings += said.unstable_warnings(c.tables["metrics"], label_a, label_b)
    # what the loader dropped or kept unnamed changes the numbers: said here as analyze says it
    warnings += [f"{lbl}: {sentence}" for lbl, t in ((label_a, a), (label_b, b)) for sentence in t.dropped()]
    # a table one export has and the other lacks makes their numbers differ for that reason alone
    lacks = {side: {m.table: m for m in t.missing} for side, t in (("a", a), ("b", b))}
    warnings += [f"{lbl}: missing: {m.sentence()}" for lbl, mine, other in ((label_a, lacks["a"], lacks["b"]),
                                                                            (label_b, lacks["b"], lacks["a"]))
                 for table, m in mine.items() if table not in other]
    both = c.pick_a.index is not None and c.pick_b.index is not None
    return TraceDiff(
        label_a=label_a, label_b=label_b, source_a=a.source, source_b=b.source, gpu_a=c.setup.gpu_a,
        gpu_b=c.setup.gpu_b, timing_source=a.timings()[1], pick_a=c.pick_a, pick_b=c.pick_b,
        step_alignment=c.step_alignment, prefill_alignment=c.prefill_alignment, step=c.step,
        verdict=said.verdict(c.step, label_a, label_b, c.tables["metrics"]), warnings=warnings, tables=c.tables,
        highlights=said.highlights(c.step_alignment if both else c.step_alignment.clear(), c.step, c.tables),
    )


def regressions(d: TraceDiff, pct: float) -> list[str]:
    """Sentences, one per measure on which B is slower than A by more than `pct` percent
    (decodeprof.findings.diff.regressions); raises DecodeprofError when nothing can be measured."""
    return said.regressions(d.tables["metrics"], d.step, d.label_a, d.label_b, pct)


