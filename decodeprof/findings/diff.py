"""The diff's sentences: the verdict (a Finding: how much faster or slower B's decode step is
and where the change went), the highlights (the mechanism in a few sentences), the warnings
(what differs in how the runs were set up, timings too noisy to trust) and the regressions a
CI gate fails on. All read the comparison frames (decodeprof.analyses.comparison); the
thresholds are decodeprof.thresholds', the same the report's findings use.
"""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.alignment import alignment_summary
from decodeprof.analyses.comparison import SetupDifference
from decodeprof.errors import DecodeprofError
from decodeprof.findings.finding import Finding
from decodeprof.present.formats import (count, fixed, integer, ms, ms_text, ns_ms_text, pct_text, plain, size_text,
                                        speedup_text, times_text, us_text)
from decodeprof.thresholds import HOST_WAIT_CHANGE_SHOWN, SLOWDOWN_MAX, SPEEDUP_MIN, UNSTABLE_SPREAD


def config_warnings(setup: SetupDifference, label_a: str = "A", label_b: str = "B") -> list[str]:
    """Sentences naming what differs between the two runs: GPU, then config keys (batch, steps...)."""
    out = []
    if setup.gpu_a and setup.gpu_b and setup.gpu_a != setup.gpu_b:
        out.append(f"GPUs differ: {label_a} ran on {setup.gpu_a}, {label_b} on {setup.gpu_b}")
    if setup.config:
        out.append(f"configs differ ({label_a} vs {label_b}): " + ", ".join(f"{k} {a} vs {b}" for k, a, b in setup.config))
    if not setup.config_a or not setup.config_b:
        missing = [lbl for lbl, c in ((label_a, setup.config_a), (label_b, setup.config_b)) if not c]
        out.append(f"no target config for {' and '.join(missing)} (no metrics.json): cannot check batch/steps match")
    return out


def unstable_warnings(metrics: pl.DataFrame, label_a: str = "A", label_b: str = "B") -> list[str]:
    """One sentence per run and timing whose max/min over its iterations exceeds
    UNSTABLE_SPREAD: host noise that makes its median less certain."""
    out = []
    for r in metrics.iter_rows(named=True):
        if not r["metric"].endswith("_ms"):
            continue
        for side, label in (("a", label_a), ("b", label_b)):
            lo, hi = r[f"{side}_min"], r[f"{side}_max"]
            if lo and hi and lo > 0 and hi / lo > UNSTABLE_SPREAD:
                out.append(f"{label}: {r['metric']} varied {times_text(hi / lo)} over its {r[f'{side}_iters'] or '?'} "
                           f"iterations (max/min > {plain(UNSTABLE_SPREAD)}: host noise; its median is less certain)")
    return out


def verdict(step: dict, label_a: str, label_b: str, metrics: pl.DataFrame | None = None) -> Finding:
    """How much faster (or slower) B's decode step is, and where the change went, in one
    sentence; with both runs' metrics.json, also the targets' own decode time (median), which
    counts what the GPU windows leave out (the CPU side of a graph launch before its first
    kernel). `step`: analyses.comparison.step_change; `metrics`: the metrics totals frame."""
    thr = (f"faster at >= {times_text(SPEEDUP_MIN)}, slower at <= {times_text(SLOWDOWN_MAX)} the GPU time of the "
           f"{step.get('which', 'median step')}")
    if step.get("speedup") is None:
        return Finding(label_b, "info", "no decode steps to compare",
                       f"no decode steps to compare in {label_a} or {label_b} (the warnings say what was tried)", thr, "")
    x, a, b = step["speedup"], step["a_window_ns"], step["b_window_ns"]
    ev = {k: step[k] for k in ("a_window_ns", "b_window_ns", "speedup", "gain_idle_pct", "gain_busy_pct")}
    window = f"{us_text(a)} -> {us_text(b)} GPU time of the {step.get('which', 'median step')}"
    if SLOWDOWN_MAX < x < SPEEDUP_MIN:
        return Finding(label_b, "no_win", "same time per decode step",
                       f"{label_b} and {label_a} take the same time per decode step ({window}; {speedup_text(x)}, within the "
                       f"{times_text(SPEEDUP_MIN)} threshold)" + _own_timing(metrics), thr, "", ev)
    idle, busy = step["gain_idle_pct"], step["gain_busy_pct"]
    if x > 1:
        head = f"{label_b} is {speedup_text(x)} faster per decode step than {label_a} ({window})"
        why = (f"{pct_text(idle, 0)} of the gain is GPU idle removed" if idle >= busy
               else f"{pct_text(busy, 0)} of the gain is kernel time saved")
    else:
        head = f"{label_b} is {speedup_text(1 / x)} slower per decode step than {label_a} ({window})"
        why = (f"{pct_text(idle, 0)} of the loss is added GPU idle" if idle >= busy
               else f"{pct_text(busy, 0)} of the loss is added kernel time")
    launches = ""
    if step["a_launches"] is not None and step["b_launches"] is not None and step["a_launches"] != step["b_launches"]:
        launches = f"; launch calls per step {count(step['a_launches'])} -> {count(step['b_launches'])}"
    kind, title = ("win", "faster per decode step") if x > 1 else ("loss", "slower per decode step")
    return Finding(label_b, kind, title, f"{head}; {why}{launches}{_own_timing(metrics)}", thr, "", ev)


def _own_timing(metrics: pl.DataFrame | None) -> str:
    row = metrics.filter((pl.col("metric") == "decode_ms") & (pl.col("presence") == "both")) if metrics is not None else None
    if row is None or not row.height or not row["a_median"][0] or not row["b_median"][0]:
        return ""
    a, b = row["a_median"][0], row["b_median"][0]
    change = speedup_text(a / b) if a >= b else f"{speedup_text(b / a)} slower"
    return f"; the targets' own decode time (CUDA events, median): {ms_text(a)} -> {ms_text(b)} ({change})"


def _names(frame: pl.DataFrame, col: str) -> str:
    names = list(dict.fromkeys(frame[col].drop_nulls().to_list()))  # distinct, in order
    return ", ".join(names[:4]) + (f" (+{len(names) - 4} more names)" if len(names) > 4 else "")


def highlights(step_al: pl.DataFrame, step: dict, tables: dict[str, pl.DataFrame]) -> list[str]:
    """The mechanism in a few sentences: what the aligned step shows, launches, idle, copies."""
    out = []
    s = alignment_summary(step_al)
    if step_al.height:
        line = f"decode step: {s['a_ops']} ops -> {s['b_ops']}; {s['matched']} matched"
        regraphed = step_al.filter((pl.col("status") == "matched") & (pl.col("launch_change") == "eager->graph")).height
        if regraphed:
            line += f", {regraphed} of them launched one by one before and now replayed as CUDA graph nodes"
        out.append(line)
        if s["fused"]:
            fused = step_al.filter(pl.col("status") == "fused")
            out.append(f"fused: {s['fused_from']} ops ({_names(fused, 'a_name')}) became {s['fused_into']} "
                       f"({_names(fused, 'b_name')})")
        for status, col in (("replaced", "a_name"), ("removed", "a_name"), ("added", "b_name"), ("split", "a_name")):
            if s[status]:
                rows = step_al.filter(pl.col("status") == status)
                extra = f" -> {_names(rows, 'b_name')}" if status == "replaced" else ""
                out.append(f"{status}: {s[status]} ({_names(rows, col)}{extra})")
    if step.get("a_idle_ns") is not None and step.get("b_idle_ns") is not None:
        out.append(f"GPU idle per decode step {us_text(step['a_idle_ns'])} -> {us_text(step['b_idle_ns'])}, kernel time "
                   f"{us_text(step['a_busy_ns'])} -> {us_text(step['b_busy_ns'])}, launch calls "
                   f"{count(step['a_launches'])} -> {count(step['b_launches'])}")
    calls = {r["api_kind"]: r for r in tables["launches"].iter_rows(named=True)}
    parts = [f"{k.replace('_', ' ')} calls {calls[k]['a_calls'] or 0} -> {calls[k]['b_calls'] or 0}"
             for k in ("kernel_launch", "graph_launch") if k in calls and calls[k]["delta_calls"]]
    if parts:
        out.append("whole trace: " + ", ".join(parts))
    for r in tables["copies"].iter_rows(named=True):
        kind = f"{r['copy_kind'].rsplit('_', 1)[-1]} {r['src_kind'].rsplit('_', 1)[-1].lower()} -> " \
               f"{r['dst_kind'].rsplit('_', 1)[-1].lower()}"
        if r["presence"] == "only_a":
            out.append(f"copy gone: {r['a_count']} x {kind} ({size_text(r['a_bytes'])}, {ns_ms_text(r['a_dur_ns'], 2)}, "
                       f"{fixed(r['a_gb_per_s'], 1)} GB/s)")
        elif r["presence"] == "only_b":
            out.append(f"copy new: {r['b_count']} x {kind} ({size_text(r['b_bytes'])}, {ns_ms_text(r['b_dur_ns'], 2)}, "
                       f"{fixed(r['b_gb_per_s'], 1)} GB/s)")
    hw = tables["host_wait"].filter(pl.col("range_name") == "(all)")
    if hw.height and hw["a_host_wait_ns"][0] is not None and hw["b_host_wait_ns"][0] is not None:
        a, b = hw["a_host_wait_ns"][0], hw["b_host_wait_ns"][0]
        if abs(b - a) > HOST_WAIT_CHANGE_SHOWN * max(a, 1):
            out.append(f"host blocked in sync/copy calls {ns_ms_text(a, 2)} -> {ns_ms_text(b, 2)} (whole trace)")
    return out


def regressions(metrics: pl.DataFrame, step: dict, label_a: str, label_b: str, pct: float) -> list[str]:
    """Sentences, one per measure on which B is slower than A by more than `pct` percent.

    Measures: the targets' decode_ms and tokens_per_s medians when both traces carry
    metrics (`metrics`: the metrics totals frame), else the median decode step's GPU window
    (`step`: analyses.comparison.step_change). With neither, raises DecodeprofError: a
    regression gate that cannot measure must not pass.
    """
    m = {r["metric"]: r for r in metrics.iter_rows(named=True) if r["presence"] == "both"}
    out = []
    if "decode_ms" in m or "tokens_per_s" in m:
        if "decode_ms" in m and (c := m["decode_ms"]["change_median_pct"]) is not None and c > pct:
            out.append(f"decode time {ms(m['decode_ms']['a_median'])} -> {ms_text(m['decode_ms']['b_median'])} "
                       f"({pct_text(c, sign=True)} > {plain(pct)}%)")
        if "tokens_per_s" in m and (c := m["tokens_per_s"]["change_median_pct"]) is not None and -c > pct:
            out.append(f"tokens/s {integer(m['tokens_per_s']['a_median'])} -> {integer(m['tokens_per_s']['b_median'])} "
                       f"({pct_text(c)}, worse than -{plain(pct)}%)")
        return out
    a, b = step["a_window_ns"], step["b_window_ns"]
    if not (a and b):
        raise DecodeprofError("--exit-on-regression has nothing to compare: the runs lack metrics.json on both "
                              "sides and decode steps in " + ("both traces" if not (a or b) else
                                                               f"{label_a if not a else label_b}"),
                              "pass run folders with their metrics.json, or --steps N for CUDA-graph traces")
    if 100.0 * (b - a) / a > pct:
        out.append(f"decode step GPU time {us_text(a)} -> {us_text(b)} ({pct_text(100.0 * (b - a) / a, sign=True)} > "
                   f"{plain(pct)}%)")
    return out
