"""The report's multi-GPU section: per-rank table, communication per step, scaling, findings.

A variant enters the section when its trace holds several rank processes (analysis
`rank_summary`) or its metrics.json has `ranks` (decodeprof_targets/multigpu.py). The rank facts and the
findings are decodeprof.findings.multigpu's; this module lays them out with the communication
per step (collectives_per_step) and the scaling table. Numbers stay in ns / ms as stored (the
page's filters format them).

    from decodeprof.report.multigpu import section
    view = section(report.variants)      # None when no variant is a multi-GPU run
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from decodeprof.findings import Finding
from decodeprof.findings.multigpu import RankFacts, rank_facts, rank_findings, scaling, slowest_rank_note
from decodeprof.present.formats import integer
from decodeprof.schema import TargetMetrics

# Config keys that must match for a scaling comparison (warm-up, iterations, seed may differ).
SAME_CONFIG = ("batch", "prompt_len", "steps", "hidden", "vocab", "dtype", "device")


@dataclass
class RankView:
    variant: str
    world_size: int | None
    mode: str | None
    backend: str | None
    rows: list[RankFacts]  # one per rank
    comm_rows: list[dict]  # one per rank: comm per step over its decode ranges
    findings: list[dict] = field(default_factory=list)  # kind, title, sentence, threshold
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    variants: list[RankView]
    scaling: list[dict]  # variant, world_size, tokens_per_s, reference, reference_tokens_per_s, speedup, efficiency
    scaling_notes: list[str]


def _tm(v) -> TargetMetrics:
    return v.trace.target_metrics


def is_multigpu(v) -> bool:
    """Several rank processes in the trace, or per-rank metrics in metrics.json."""
    rs = v.frames.get("rank_summary", pl.DataFrame())
    return rs.height > 1 or bool(_tm(v).ranks)


def world_size(v) -> int | None:
    if _tm(v).world_size is not None:
        return _tm(v).world_size
    rs = v.frames.get("rank_summary", pl.DataFrame())
    return rs.height or None


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


def _view(f: Finding) -> dict:
    return {"kind": f.kind, "title": f.title, "sentence": f.sentence, "threshold": f.threshold, "fact": f.fact,
            "evidence": f.evidence}


def _same_config(a: TargetMetrics, b: TargetMetrics) -> bool:
    ca, cb = a.config, b.config
    return bool(ca) and all(ca.get(k) == cb.get(k) for k in SAME_CONFIG)


def _scaling(views: list[RankView], variants: list) -> tuple[list[dict], list[str]]:
    by_name = {v.name: v for v in variants}
    rows, notes = [], []
    for view in views:
        v = by_name[view.variant]
        n, tps = view.world_size, _tm(v).median("tokens_per_s")
        if not n or n < 2 or tps is None:
            continue
        refs = [r for r in variants if r is not v and _same_config(_tm(v), _tm(r))
                and (not is_multigpu(r) or (world_size(r) == 1 and _tm(r).mode == view.mode))
                and _tm(r).median("tokens_per_s")]
        refs.sort(key=lambda r: (not is_multigpu(r), r.name))  # a world-size-1 run of the same target first
        if not refs:
            notes.append(f"{v.name}: world size {n}, {integer(tps)} tokens/s across ranks; no single-GPU run with the same "
                         f"config ({', '.join(SAME_CONFIG)}) and mode in this report to compare with.")
            continue
        ref = refs[0]
        ref_tps = _tm(ref).median("tokens_per_s")
        speedup = tps / ref_tps
        rows.append({"variant": v.name, "world_size": n, "mode": view.mode, "tokens_per_s": tps, "reference": ref.name,
                     "reference_tokens_per_s": ref_tps, "speedup": speedup, "efficiency_pct": 100 * speedup / n})
        view.findings.append(_view(scaling(v.name, n, tps, ref.name, ref_tps)))
    return rows, notes


def section(variants: list) -> Section | None:
    """The multi-GPU section of the report, or None when no variant is a multi-GPU run."""
    views = []
    for v in variants:
        if not is_multigpu(v):
            continue
        tm = _tm(v)
        view = RankView(v.name, world_size(v), tm.mode, tm.backend, rank_facts(v.frames, tm), _comm_rows(v))
        view.findings = [_view(f) for f in rank_findings(v.name, view.rows, [c["comm_source"] for c in view.comm_rows])]
        note = slowest_rank_note(view.rows, tm.slowest_rank)
        if note:
            view.notes.append(note)
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
