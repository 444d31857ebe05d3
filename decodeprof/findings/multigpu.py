"""Multi-GPU findings: what one multi-GPU run's ranks show (communication share, the slowest
rank, overlap of collectives with compute) and how it scales against a single-GPU run of the
same config. Facts per rank are read once from the analysis frames (rank_summary,
comm_overlap) and metrics.json's per-rank results, typed, units in the names.

    ranks = rank_facts(frames, metrics)
    for f in rank_findings("tp2", ranks, comm_sources): print(f.sentence)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from decodeprof.findings.finding import Finding
from decodeprof.schema import TargetMetrics, median_of
from decodeprof.present.formats import integer, ms_text, pct_text, times_text, us_text
from decodeprof.thresholds import (COLLECTIVE_OVERLAP_MIN, COMM_BOUND_FRACTION, IMBALANCE_MIN, SCALING_EFFICIENCY_MIN,
                                   SPEEDUP_MIN)


@dataclass(frozen=True)
class RankFacts:
    """One rank: its trace figures (rank_summary, comm_overlap) beside metrics.json's."""

    rank: int | None
    pid: int | None
    decode_ns: int | None  # its measured decode ranges, summed
    decode_vs_fastest: float | None
    decode_per_iter_ns: float | None
    metrics_decode_ms: float | None
    collectives: int | None  # collective ranges
    comm_per_step_ns: float | None
    comm_fraction_pct: float | None  # of its decode time
    metrics_comm_per_step_ns: float | None
    collective_gpu_ns: int | None
    overlap_pct: float | None  # of collective GPU time under compute on another stream
    slowest_trace: bool
    slowest_metrics: bool

    def __getitem__(self, name: str):
        """`rank["decode_ns"]`: a field by name; KeyError for any other name."""
        if name not in _RANK_FIELDS:
            raise KeyError(f"{name!r} is not a rank fact (decodeprof.findings.multigpu.RankFacts)")
        return getattr(self, name)


_RANK_FIELDS = frozenset(f.name for f in dataclasses.fields(RankFacts))


def rank_facts(frames: dict[str, pl.DataFrame], metrics: TargetMetrics) -> list[RankFacts]:
    """One RankFacts per rank of the trace or of metrics.json (`metrics`: the run's metrics.json)."""
    rs = frames.get("rank_summary", pl.DataFrame())
    ov = frames.get("comm_overlap", pl.DataFrame())
    overlap = {r["rank"]: r["overlap_fraction"] for r in ov.iter_rows(named=True)} if ov.height else {}
    per_rank = {r.rank: r for r in metrics.ranks}
    ranks = sorted(set(per_rank) | set(rs["rank"].to_list() if rs.height else []), key=lambda r: (r is None, r))
    trace = {r["rank"]: r for r in rs.iter_rows(named=True)} if rs.height else {}
    slowest_metrics = metrics.slowest_rank
    out = []
    for rank in ranks:
        t, m = trace.get(rank, {}), (per_rank[rank].timings if rank in per_rank else {})
        comm_ms = median_of(m, "comm_ms_per_step")
        out.append(RankFacts(
            rank=rank, pid=t.get("pid", per_rank[rank].pid if rank in per_rank else None),
            decode_ns=t.get("decode_ns"), decode_vs_fastest=t.get("decode_vs_fastest"),
            decode_per_iter_ns=t["decode_ns"] / t["decode_ranges"] if t.get("decode_ranges") else None,
            metrics_decode_ms=median_of(m, "decode_ms"),
            collectives=t.get("collective_ranges"), comm_per_step_ns=t.get("comm_per_step_ns"),
            comm_fraction_pct=100 * t["comm_fraction"] if t.get("comm_fraction") is not None else None,
            metrics_comm_per_step_ns=1e6 * comm_ms if comm_ms is not None else None,
            collective_gpu_ns=t.get("collective_gpu_ns") if t.get("collective_gpu_ops") else None,
            overlap_pct=100 * overlap[rank] if overlap.get(rank) is not None else None,
            slowest_trace=bool(t.get("slowest")), slowest_metrics=rank == slowest_metrics,
        ))
    return out


def _communication(name: str, ranks: list[RankFacts], comm_sources: list[str]) -> list[Finding]:
    fr = [r for r in ranks if r.decode_ns and r.comm_fraction_pct is not None]
    chart = f"multigpu-ranks-{name}"
    if fr and all(s == "none" for s in comm_sources):
        return [Finding(name, "info", "no communication in decode", "No rank runs a collective inside its decode ranges (no allreduce/allgather range, no collective GPU work): nothing to pay per step for communication.", "stated when no decode range holds a collective", chart)]
    if not fr:
        return []
    worst = max(fr, key=lambda r: r.comm_fraction_pct)
    thr = f"communication-bound at >= {pct_text(100 * COMM_BOUND_FRACTION)} of decode time in collectives"
    per_step = f", {us_text(worst.comm_per_step_ns)} per step" if worst.comm_per_step_ns is not None else ""
    ev = {"rank": worst.rank, "comm_fraction_pct": worst.comm_fraction_pct, "comm_per_step_ns": worst.comm_per_step_ns}
    if worst.comm_fraction_pct >= 100 * COMM_BOUND_FRACTION:
        return [Finding(name, "warning", "communication-bound decode", f"Rank {worst.rank} spends {pct_text(worst.comm_fraction_pct)} of its decode time in collectives{per_step}: communication, not the weights, sets the step time.", thr, chart, ev)]
    return [Finding(name, "info", "communication is a minor share", f"Collectives take at most {pct_text(worst.comm_fraction_pct)} of a rank's decode time (rank {worst.rank}{per_step}).", thr, chart, ev)]


def _balance(name: str, ranks: list[RankFacts]) -> list[Finding]:
    rows = [r for r in ranks if r.decode_ns]
    if len(rows) < 2:
        return []
    slow = max(rows, key=lambda r: (r.decode_ns, -r.rank))
    fast = min(rows, key=lambda r: (r.decode_ns, r.rank))
    ratio = slow.decode_ns / fast.decode_ns
    thr = f"imbalanced at >= {times_text(IMBALANCE_MIN)} the fastest rank's decode time (trace, sum of measured decode ranges)"
    ev = {"slowest_rank": slow.rank, "slowest_decode_ns": slow.decode_ns, "fastest_rank": fast.rank,
          "fastest_decode_ns": fast.decode_ns, "ratio": ratio}
    if ratio >= IMBALANCE_MIN:
        return [Finding(name, "warning", "slowest rank", f"Rank {slow.rank} is the slowest: {ms_text(slow.decode_ns / 1e6)} in decode vs {ms_text(fast.decode_ns / 1e6)} on rank {fast.rank} ({times_text(ratio, 3)}): the run goes as fast as its slowest rank.", thr, f"multigpu-ranks-{name}", ev)]
    return [Finding(name, "info", "ranks balanced", f"Rank {slow.rank} is the slowest at {ms_text(slow.decode_ns / 1e6)} in decode, {times_text(ratio, 3)} the fastest (rank {fast.rank}, {ms_text(fast.decode_ns / 1e6)}): within the threshold.", thr, f"multigpu-ranks-{name}", ev)]


def _overlap(name: str, ranks: list[RankFacts]) -> list[Finding]:
    ov = [r for r in ranks if r.overlap_pct is not None]
    if not ov:
        return []
    low = min(ov, key=lambda r: r.overlap_pct)
    thr = f"overlapped at >= {pct_text(100 * COLLECTIVE_OVERLAP_MIN)} of collective GPU time under compute on another stream"
    hidden = low.overlap_pct >= 100 * COLLECTIVE_OVERLAP_MIN
    kind, title = ("win", "communication hidden under compute") if hidden else ("no_win", "communication not overlapped")
    ev = {"rank": low.rank, "overlap_pct": low.overlap_pct, "collective_gpu_ns": low.collective_gpu_ns}
    return [Finding(name, kind, title, f"On rank {low.rank}, {pct_text(low.overlap_pct)} of its {us_text(low.collective_gpu_ns)} of collective GPU work runs while a compute kernel runs on another stream (least-overlapped rank).", thr, f"multigpu-ranks-{name}", ev)]


def rank_findings(name: str, ranks: list[RankFacts], comm_sources: list[str]) -> list[Finding]:
    """What run `name`'s ranks show: communication's share of decode, the slowest rank, the
    overlap of collectives with compute. `comm_sources`: where each rank's communication per
    step comes from (collectives_per_step's comm_source; all "none": no collective in decode)."""
    return _communication(name, ranks, comm_sources) + _balance(name, ranks) + _overlap(name, ranks)


def slowest_rank_note(ranks: list[RankFacts], metrics_slowest) -> str | None:
    """A sentence when the trace's slowest rank is not metrics.json's `slowest_rank`."""
    trace_slow = next((r.rank for r in ranks if r.slowest_trace), None)
    if len([r for r in ranks if r.decode_ns]) > 1 and isinstance(metrics_slowest, int) and trace_slow is not None \
            and trace_slow != metrics_slowest:
        return (f"The trace's slowest rank ({trace_slow}, by summed decode ranges) differs from metrics.json's "
                f"slowest_rank ({metrics_slowest}, by median decode time per iteration): the ranks are close.")
    return None


def scaling(name: str, world_size: int, tokens_per_s: float, reference: str, reference_tokens_per_s: float) -> Finding:
    """Tokens/s at `world_size` ranks against a single-GPU run of the same config."""
    speedup = tokens_per_s / reference_tokens_per_s
    eff = speedup / world_size
    thr = (f"win at >= {times_text(SPEEDUP_MIN)}; loss when below {pct_text(100 * SCALING_EFFICIENCY_MIN)} of linear "
           f"scaling ({world_size} x the single-GPU tokens/s)")
    sentence = (f"{world_size} ranks give {integer(tokens_per_s)} tokens/s vs {integer(reference_tokens_per_s)} on one "
                f"({reference}): {times_text(speedup)}, {pct_text(100 * eff)} of linear scaling.")
    ev = {"tokens_per_s": tokens_per_s, "reference_tokens_per_s": reference_tokens_per_s, "speedup": speedup,
          "efficiency": eff}
    if eff < SCALING_EFFICIENCY_MIN:
        return Finding(name, "loss", "poor scaling", sentence, thr, "multigpu-scaling-table", ev)
    if speedup >= SPEEDUP_MIN:
        return Finding(name, "win", "scales", sentence, thr, "multigpu-scaling-table", ev)
    return Finding(name, "no_win", "no scaling gain", sentence, thr, "multigpu-scaling-table", ev)
