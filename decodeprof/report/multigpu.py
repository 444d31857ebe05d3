"""The report's multi-GPU section: per-rank table, communication per step, scaling, findings.

A variant enters the section when its trace holds several rank processes (analysis
`rank_summary`) or its metrics.json has `ranks` (targets/multigpu.py). Everything is read from
the variant's analysis frames and metrics.json; numbers stay in ns / ms as stored (render.py's
filters format them) and each finding carries its numbers and threshold, like
decodeprof.findings.

    from decodeprof.report.multigpu import section
    view = section(report.variants)      # None when no variant is a multi-GPU run
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from decodeprof.present.formats import integer, ms_text, pct_text, times_text, us_text

# Thresholds (a finding is stated only past these).
from decodeprof.thresholds import (COMM_BOUND_FRACTION, COLLECTIVE_OVERLAP_MIN, IMBALANCE_MIN,  # noqa: F401
                                   SCALING_EFFICIENCY_MIN, SPEEDUP_MIN)
# Config keys that must match for a scaling comparison (warm-up, iterations, seed may differ).
SAME_CONFIG = ("batch", "prompt_len", "steps", "hidden", "vocab", "dtype", "device")


@dataclass
class RankView:
    variant: str
    world_size: int | None
    mode: str | None
    backend: str | None
    rows: list[dict]  # one per rank, see _rank_rows
    comm_rows: list[dict]  # one per rank: comm per step over its decode ranges
    findings: list[dict] = field(default_factory=list)  # kind, title, sentence, threshold
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    variants: list[RankView]
    scaling: list[dict]  # variant, world_size, tokens_per_s, reference, reference_tokens_per_s, speedup, efficiency
    scaling_notes: list[str]


def _tm(v) -> dict:
    return v.trace.target_metrics if isinstance(v.trace.target_metrics, dict) else {}


def _median(metrics: dict | None, key: str):
    m = (metrics or {}).get(key)
    return float(m["median"]) if isinstance(m, dict) and isinstance(m.get("median"), (int, float)) else None


def is_multigpu(v) -> bool:
    """Several rank processes in the trace, or per-rank metrics in metrics.json."""
    rs = v.frames.get("rank_summary", pl.DataFrame())
    return rs.height > 1 or bool(_tm(v).get("ranks"))


def world_size(v) -> int | None:
    ws = _tm(v).get("world_size")
    if isinstance(ws, int):
        return ws
    rs = v.frames.get("rank_summary", pl.DataFrame())
    return rs.height or None


def _rank_rows(v) -> list[dict]:
    rs = v.frames.get("rank_summary", pl.DataFrame())
    ov = v.frames.get("comm_overlap", pl.DataFrame())
    overlap = {r["rank"]: r["overlap_fraction"] for r in ov.iter_rows(named=True)} if ov.height else {}
    per_rank = {r.get("rank"): r for r in _tm(v).get("ranks") or [] if isinstance(r, dict)}
    ranks = sorted(set(per_rank) | set(rs["rank"].to_list() if rs.height else []), key=lambda r: (r is None, r))
    trace = {r["rank"]: r for r in rs.iter_rows(named=True)} if rs.height else {}
    slowest_metrics = _tm(v).get("slowest_rank")
    rows = []
    for rank in ranks:
        t, m = trace.get(rank, {}), (per_rank.get(rank) or {}).get("metrics")
        rows.append({
            "rank": rank, "pid": t.get("pid", (per_rank.get(rank) or {}).get("pid")),
            "decode_ns": t.get("decode_ns"), "decode_vs_fastest": t.get("decode_vs_fastest"),
            "decode_per_iter_ns": t["decode_ns"] / t["decode_ranges"] if t.get("decode_ranges") else None,
            "metrics_decode_ms": _median(m, "decode_ms"),
            "collectives": t.get("collective_ranges"), "comm_per_step_ns": t.get("comm_per_step_ns"),
            "comm_fraction_pct": 100 * t["comm_fraction"] if t.get("comm_fraction") is not None else None,
            "metrics_comm_per_step_ns": 1e6 * c if (c := _median(m, "comm_ms_per_step")) is not None else None,
            "collective_gpu_ns": t.get("collective_gpu_ns") if t.get("collective_gpu_ops") else None,
            "overlap_pct": 100 * overlap[rank] if overlap.get(rank) is not None else None,
            "slowest_trace": bool(t.get("slowest")), "slowest_metrics": rank == slowest_metrics,
        })
    return rows


def _comm_rows(v) -> list[dict]:
    cs = v.frames.get("collectives_per_step", pl.DataFrame())
    if cs.is_empty():
        return []
    out = cs.group_by("rank").agg(
        pl.len().alias("decode_ranges"), pl.col("steps").sum(), pl.col("comm_source").unique().sort().str.join("+"),
        pl.col("comm_per_step_ns").min().alias("min_ns"), pl.col("comm_per_step_ns").median().alias("median_ns"),
        pl.col("comm_per_step_ns").max().alias("max_ns"), pl.col("step_comm_range_median_ns").median().alias("step_median_ns"),
    ).sort("rank")
    return out.to_dicts()


def _finding(kind, title, sentence, threshold) -> dict:
    return {"kind": kind, "title": title, "sentence": sentence, "threshold": threshold}


def _findings(view: RankView, v) -> list[dict]:
    out, rows = [], [r for r in view.rows if r["decode_ns"]]
    fr = [r for r in rows if r["comm_fraction_pct"] is not None]
    if fr and all(c.get("comm_source") == "none" for c in view.comm_rows):
        out.append(_finding("info", "no communication in decode", "No rank runs a collective inside its decode ranges (no allreduce/allgather range, no collective GPU work): nothing to pay per step for communication.", "stated when no decode range holds a collective"))
    elif fr:
        worst = max(fr, key=lambda r: r["comm_fraction_pct"])
        thr = f"communication-bound at >= {pct_text(100 * COMM_BOUND_FRACTION)} of decode time in collectives"
        per_step = f", {us_text(worst['comm_per_step_ns'])} per step" if worst["comm_per_step_ns"] is not None else ""
        if worst["comm_fraction_pct"] >= 100 * COMM_BOUND_FRACTION:
            out.append(_finding("warning", "communication-bound decode", f"Rank {worst['rank']} spends {pct_text(worst['comm_fraction_pct'])} of its decode time in collectives{per_step}: communication, not the weights, sets the step time.", thr))
        else:
            out.append(_finding("info", "communication is a minor share", f"Collectives take at most {pct_text(worst['comm_fraction_pct'])} of a rank's decode time (rank {worst['rank']}{per_step}).", thr))
    if len(rows) > 1:
        slow = max(rows, key=lambda r: (r["decode_ns"], -r["rank"]))
        fast = min(rows, key=lambda r: (r["decode_ns"], r["rank"]))
        ratio = slow["decode_ns"] / fast["decode_ns"]
        thr = f"imbalanced at >= {times_text(IMBALANCE_MIN)} the fastest rank's decode time (trace, sum of measured decode ranges)"
        if ratio >= IMBALANCE_MIN:
            out.append(_finding("warning", "slowest rank", f"Rank {slow['rank']} is the slowest: {ms_text(slow['decode_ns'] / 1e6)} in decode vs {ms_text(fast['decode_ns'] / 1e6)} on rank {fast['rank']} ({times_text(ratio, 3)}): the run goes as fast as its slowest rank.", thr))
        else:
            out.append(_finding("info", "ranks balanced", f"Rank {slow['rank']} is the slowest at {ms_text(slow['decode_ns'] / 1e6)} in decode, {times_text(ratio, 3)} the fastest (rank {fast['rank']}, {ms_text(fast['decode_ns'] / 1e6)}): within the threshold.", thr))
    ov = [r for r in view.rows if r["overlap_pct"] is not None]
    if ov:
        low = min(ov, key=lambda r: r["overlap_pct"])
        thr = f"overlapped at >= {pct_text(100 * COLLECTIVE_OVERLAP_MIN)} of collective GPU time under compute on another stream"
        kind, title = ("win", "communication hidden under compute") if low["overlap_pct"] >= 100 * COLLECTIVE_OVERLAP_MIN else ("no_win", "communication not overlapped")
        out.append(_finding(kind, title, f"On rank {low['rank']}, {pct_text(low['overlap_pct'])} of its {us_text(low['collective_gpu_ns'])} of collective GPU work runs while a compute kernel runs on another stream (least-overlapped rank).", thr))
    trace_slow = next((r["rank"] for r in view.rows if r["slowest_trace"]), None)
    metrics_slow = _tm(v).get("slowest_rank")
    if len(rows) > 1 and isinstance(metrics_slow, int) and trace_slow is not None and trace_slow != metrics_slow:
        view.notes.append(f"The trace's slowest rank ({trace_slow}, by summed decode ranges) differs from metrics.json's "
                          f"slowest_rank ({metrics_slow}, by median decode time per iteration): the ranks are close.")
    return out


def _same_config(a: dict, b: dict) -> bool:
    ca, cb = a.get("config") or {}, b.get("config") or {}
    return bool(ca) and all(ca.get(k) == cb.get(k) for k in SAME_CONFIG)


def _scaling(views: list[RankView], variants: list) -> tuple[list[dict], list[str]]:
    by_name = {v.name: v for v in variants}
    rows, notes = [], []
    for view in views:
        v = by_name[view.variant]
        n, tps = view.world_size, _median(_tm(v).get("metrics"), "tokens_per_s")
        if not n or n < 2 or tps is None:
            continue
        refs = [r for r in variants if r is not v and _same_config(_tm(v), _tm(r))
                and (not is_multigpu(r) or (world_size(r) == 1 and _tm(r).get("mode") == view.mode))
                and _median(_tm(r).get("metrics"), "tokens_per_s")]
        refs.sort(key=lambda r: (not is_multigpu(r), r.name))  # a world-size-1 run of the same target first
        if not refs:
            notes.append(f"{v.name}: world size {n}, {integer(tps)} tokens/s across ranks; no single-GPU run with the same "
                         f"config ({', '.join(SAME_CONFIG)}) and mode in this report to compare with.")
            continue
        ref = refs[0]
        ref_tps = _median(_tm(ref).get("metrics"), "tokens_per_s")
        speedup = tps / ref_tps
        rows.append({"variant": v.name, "world_size": n, "mode": view.mode, "tokens_per_s": tps, "reference": ref.name,
                     "reference_tokens_per_s": ref_tps, "speedup": speedup, "efficiency_pct": 100 * speedup / n})
        thr = (f"win at >= {times_text(SPEEDUP_MIN)}; loss when below {pct_text(100 * SCALING_EFFICIENCY_MIN)} of linear "
               f"scaling ({n} x the single-GPU tokens/s)")
        eff = speedup / n
        sentence = (f"{n} ranks give {integer(tps)} tokens/s vs {integer(ref_tps)} on one ({ref.name}): {times_text(speedup)}, "
                    f"{pct_text(100 * eff)} of linear scaling.")
        if eff < SCALING_EFFICIENCY_MIN:
            view.findings.append(_finding("loss", "poor scaling", sentence, thr))
        elif speedup >= SPEEDUP_MIN:
            view.findings.append(_finding("win", "scales", sentence, thr))
        else:
            view.findings.append(_finding("no_win", "no scaling gain", sentence, thr))
    return rows, notes


def section(variants: list) -> Section | None:
    """The multi-GPU section of the report, or None when no variant is a multi-GPU run."""
    views = []
    for v in variants:
        if not is_multigpu(v):
            continue
        tm = _tm(v)
        view = RankView(v.name, world_size(v), tm.get("mode"), tm.get("backend"), _rank_rows(v), _comm_rows(v))
        view.findings = _findings(view, v)
        rs = v.frames.get("rank_summary", pl.DataFrame())
        if rs.is_empty():
            view.notes.append("the trace shows no rank process (no NVTX \"measured\" range): numbers from metrics.json only")
        elif world_size(v) and rs.height != world_size(v):
            view.notes.append(f"the trace holds {rs.height} rank processes but metrics.json says world size {world_size(v)}")
        if any(r.get("comm_source") == "gpu_work" for r in view.comm_rows):
            view.notes.append("decode collectives run inside a CUDA graph (no NVTX range): communication per step is their "
                              "GPU time (NCCL kernels, or device copies when the process has none, as at world size 1)")
        views.append(view)
    if not views:
        return None
    rows, notes = _scaling(views, variants)
    return Section(views, rows, notes)
