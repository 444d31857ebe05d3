"""Diff two traces of the decode loop: what ran, step by step, and what it cost.

    from decodeprof.diff import diff_traces
    d = diff_traces(trace_a, trace_b, label_a="baseline", label_b="graph")
    d.verdict, d.step_alignment, d.to_json()

Pure: Trace in, frames and sentences out. Rendering lives in decodeprof.diff.terminal
(rich), decodeprof.diff.html (Jinja2 + Plotly) and decodeprof.diff.timeline (Plotly).
"""

from decodeprof.diff.align import align_ops, alignment_summary
from decodeprof.diff.compare import JSON_VERSION, TraceDiff, diff_traces, regressions
from decodeprof.diff.steps import StepPick, pick_step

__all__ = ["JSON_VERSION", "StepPick", "TraceDiff", "align_ops", "alignment_summary", "diff_traces", "pick_step",
           "regressions"]
