"""Diff two traces of the decode loop: what ran, step by step, and what it cost.

    from decodeprof.diff import diff_traces
    d = diff_traces(trace_a, trace_b, label_a="baseline", label_b="graph")
    d.verdict, d.step_alignment, d.to_json()

The frames come from decodeprof.analyses.comparison (totals, the picked steps, their
alignment); the sentences over them from decodeprof.diff.compare. Rendering lives in
decodeprof.diff.terminal (rich) and decodeprof.diff.html (Jinja2 + Plotly).
"""

from decodeprof.analyses.alignment import align_ops, alignment_summary
from decodeprof.analyses.step_timeline import StepPick, pick_step
from decodeprof.diff.compare import JSON_VERSION, TraceDiff, diff_traces, regressions

__all__ = ["JSON_VERSION", "StepPick", "TraceDiff", "align_ops", "alignment_summary", "diff_traces", "pick_step",
           "regressions"]
