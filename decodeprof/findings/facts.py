"""Facts: every number the findings, the report's summary and its charts state about one run,
read once from its analysis frames and its metrics.json, typed, with the unit in each name
(ns, bytes, bytes/s, ms for the target's own timings, percent 0-100). A fact the trace cannot
give is None; `missing_sentences` says why.

    f = facts(trace, frames)          # frames: run_all(trace), with run_info when at hand
    f.kernels_per_step, f.gpu_idle_pct

A name that is not a field fails loudly: `f.kernel_per_step` raises AttributeError,
`f["kernel_per_step"]` KeyError; building Facts with one is a TypeError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from decodeprof.analyses.run_info import run_info
from decodeprof.schema import TargetMetrics, Timing, median_of
from decodeprof.trace import Trace


@dataclass(frozen=True)
class Facts:
    # The target's own timings (metrics.json; the unprofiled run's where there is one): medians.
    timing_source: str = "none"  # "unprofiled run" | "profiled run" | "none"
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    decode_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    tpot_max_over_min: float | None = None  # max / min TPOT over the measured iterations
    profiled_tpot_ms: float | None = None  # the profiled run's (metrics.json)
    profiler_overhead_pct: float | None = None  # profiled TPOT over unprofiled TPOT, minus 1
    weight_bytes_per_step: int | None = None
    active: tuple[str, ...] = ()  # the optimizations the target ran with
    fallbacks: tuple[str, ...] = ()
    tokens_match: bool | None = None
    token_agreement_pct: float | None = None  # free-running tokens equal to the eager reference's
    correctness: dict = field(default_factory=dict)  # metrics.json "correctness", as written
    # The median decode step (decode_step_summary).
    step_source: str | None = None
    steps: int | None = None
    syncs_per_step: float | None = None
    kernels_per_step: float | None = None
    launches_per_step: float | None = None
    cpu_api_per_step_ns: float | None = None
    cpu_per_step_ns: float | None = None
    gpu_window_per_step_ns: float | None = None
    gpu_busy_per_step_ns: float | None = None
    gpu_idle_per_step_ns: float | None = None
    gpu_idle_pct: float | None = None  # of all decode-step time
    # Copies (memory_throughput, overlap).
    h2d_copies: int = 0
    pageable_h2d_copies: int = 0
    h2d_bytes: int | None = None
    h2d_ns: int | None = None
    h2d_bytes_per_s: float | None = None
    copy_ns: int | None = None
    copy_overlapped_ns: int | None = None
    copy_overlap_fraction: float | None = None  # 0-1
    copy_streams_apart: bool = False  # some copy runs on a stream that runs no kernel
    copy_share_pct: float | None = None  # copies' share of the GPU's busy time (copies + kernels)
    kernel_family_pcts: tuple[tuple[str, float], ...] = ()  # (family, % of kernel time), largest first
    # Launches and host wait (nvtx_projection, launch_overhead, host_wait).
    iterations: int | None = None
    decode_ranges: int | None = None
    decode_kernels: int | None = None
    decode_graph_launches: int | None = None
    trace_launch_calls: int | None = None
    trace_kernels: int | None = None
    host_wait_ns: int | None = None
    host_wait_per_iter_ns: float | None = None
    host_blocking_calls: int | None = None
    # Weight bandwidth in decode (decode_bandwidth).
    achieved_bytes_per_s: float | None = None
    peak_bytes_per_s: float | None = None
    bw_utilization_pct: float | None = None
    # Nsight Compute (kernel_dram).
    ncu_kernels: int = 0
    ncu_dram_pct: float | None = None  # time-weighted over the profiled kernels
    ncu_dram_bytes_per_s: float | None = None
    ncu_top_kernel: str | None = None
    ncu_top_dram_pct: float | None = None
    ncu_over_nsys: float | None = None  # median over profiled kernels of ncu's duration / the trace's median
    ncu_matched_kernels: int = 0  # profiled kernels found by name in the trace
    # The run (run_info, metrics.json device and config).
    gpu: str | None = None
    torch: str | None = None
    cuda: str | None = None
    nsys: str | None = None
    config: dict = field(default_factory=dict)
    trace_kernel_rows: int = 0
    ncu_rows: int = 0
    steps_found: str = ""  # the decode-step model's sentence

    def __getitem__(self, name: str):
        """`facts["kernels_per_step"]`: a field by name; KeyError for any other name."""
        if name not in FIELDS:
            raise KeyError(f"{name!r} is not a fact (decodeprof.findings.facts.Facts)")
        return getattr(self, name)


FIELDS = frozenset(f.name for f in dataclasses.fields(Facts))


def _first(frame: pl.DataFrame, column: str, where: pl.Expr | None = None):
    f = frame.filter(where) if where is not None else frame
    if f.is_empty() or column not in f.columns:
        return None
    return f[column][0]


def _spread(timings: Mapping[str, Timing], key: str) -> float | None:
    """max / min of a timing over the measured iterations (> UNSTABLE_SPREAD: host noise)."""
    t = timings.get(key)
    return t.max / t.min if t is not None and t.min and t.max is not None else None


def _metrics_facts(trace: Trace, tm: TargetMetrics) -> dict:
    shown, source = trace.timings()
    traced = tm.median("tpot_ms")  # the profiled run's
    clean = median_of(shown, "tpot_ms") if source == "unprofiled run" else None
    agreement = tm.token_agreement
    return {
        "timing_source": source,
        "ttft_ms": median_of(shown, "ttft_ms"),
        "tpot_ms": median_of(shown, "tpot_ms"),
        "decode_ms": median_of(shown, "decode_ms"),
        "total_ms": median_of(shown, "total_ms"),
        "tokens_per_s": median_of(shown, "tokens_per_s"),
        "tpot_max_over_min": _spread(shown, "tpot_ms"),
        "profiled_tpot_ms": traced,
        "profiler_overhead_pct": 100.0 * (traced / clean - 1.0) if traced is not None and clean else None,
        "weight_bytes_per_step": tm.weight_bytes_per_step,
        "active": tm.active,
        "fallbacks": tm.fallbacks,
        "tokens_match": tm.tokens_match,
        "token_agreement_pct": 100.0 * agreement if agreement is not None else None,
        "correctness": dict(tm.correctness),
    }


def _step_facts(frames: dict) -> dict:
    s = frames.get("decode_step_summary", pl.DataFrame())
    return {
        "step_source": _first(s, "source"),
        "steps": _first(s, "steps"),
        "syncs_per_step": _first(s, "syncs"),
        "kernels_per_step": _first(s, "kernels"),
        "launches_per_step": _first(s, "launches"),
        "cpu_api_per_step_ns": _first(s, "cpu_api_ns"),
        "cpu_per_step_ns": _first(s, "cpu_dur_ns"),
        "gpu_window_per_step_ns": _first(s, "gpu_window_ns"),
        "gpu_busy_per_step_ns": _first(s, "gpu_busy_ns"),
        "gpu_idle_per_step_ns": _first(s, "gpu_idle_ns"),
        "gpu_idle_pct": _first(s, "gpu_idle_pct"),
    }


def _copy_facts(frames: dict) -> dict:
    m = frames.get("memory_throughput", pl.DataFrame())
    h2d = m.filter(pl.col("copy_kind").str.contains("HTOD")) if not m.is_empty() else m
    ov = frames.get("overlap", pl.DataFrame())
    h2d_bytes = int(h2d["bytes"].sum()) if not h2d.is_empty() else None
    h2d_ns = int(h2d["dur_ns"].sum()) if not h2d.is_empty() else None
    return {
        "h2d_copies": int(h2d["count"].sum()) if not h2d.is_empty() else 0,
        "pageable_h2d_copies": int(h2d.filter(pl.col("pageable"))["count"].sum()) if not h2d.is_empty() else 0,
        "h2d_bytes": h2d_bytes,
        "h2d_ns": h2d_ns,
        "h2d_bytes_per_s": 1e9 * h2d_bytes / h2d_ns if h2d_ns else None,
        "copy_ns": _first(ov, "copy_ns", pl.col("copy_kind") == "(all)"),
        "copy_overlapped_ns": _first(ov, "overlapped_ns", pl.col("copy_kind") == "(all)"),
        "copy_overlap_fraction": _first(ov, "overlap_fraction", pl.col("copy_kind") == "(all)"),
    }


def _kernel_facts(frames: dict, copy_ns: int | None) -> dict:
    """Kernel time by family (share of all kernel time, largest first) and the copies' share
    of the GPU's busy time."""
    k = frames.get("kernel_summary", pl.DataFrame())
    if k.is_empty():
        return {"kernel_family_pcts": (), "copy_share_pct": None}
    fam = k.group_by("family").agg(pl.col("total_ns").sum()).sort("total_ns", "family", descending=[True, False])
    total = int(fam["total_ns"].sum())
    families = tuple((f, 100.0 * t / total) for f, t in fam.iter_rows()) if total else ()
    share = 100.0 * copy_ns / (copy_ns + total) if copy_ns is not None and copy_ns + total > 0 else None
    return {"kernel_family_pcts": families, "copy_share_pct": share}


def _launch_facts(frames: dict) -> dict:
    nv = frames.get("nvtx_projection", pl.DataFrame())
    lo = frames.get("launch_overhead", pl.DataFrame())
    hw = frames.get("host_wait", pl.DataFrame())
    iters = _first(nv, "count", pl.col("range_name") == "iteration")
    host_wait = _first(hw, "host_wait_ns", pl.col("range_name") == "(all)")
    return {
        "iterations": iters,
        "decode_ranges": _first(nv, "count", pl.col("range_name") == "decode"),
        "decode_kernels": _first(nv, "kernels", pl.col("range_name") == "decode"),
        "decode_graph_launches": _first(nv, "graph_launches", pl.col("range_name") == "decode"),
        "trace_launch_calls": _first(lo, "launches", pl.col("range_name") == "(all)"),
        "trace_kernels": _first(lo, "kernels", pl.col("range_name") == "(all)"),
        "host_wait_ns": host_wait,
        "host_wait_per_iter_ns": host_wait / iters if host_wait is not None and iters else None,
        "host_blocking_calls": _first(hw, "blocking_calls", pl.col("range_name") == "(all)"),
    }


def _bandwidth_facts(frames: dict) -> dict:
    bw = frames.get("decode_bandwidth", pl.DataFrame())
    return {
        "achieved_bytes_per_s": _first(bw, "achieved_bytes_per_s"),
        "peak_bytes_per_s": _first(bw, "peak_bytes_per_s"),
        "bw_utilization_pct": _first(bw, "utilization_pct"),
    }


def _ncu_facts(frames: dict) -> dict:
    d = frames.get("kernel_dram", pl.DataFrame())
    d = d.filter(pl.col("duration_ns").is_not_null() & pl.col("dram_throughput_pct").is_not_null()) if not d.is_empty() else d
    if d.is_empty():
        return {}
    top = d.sort("dram_throughput_pct", descending=True).row(0, named=True)
    weighted = float((d["dram_throughput_pct"] * d["duration_ns"]).sum() / d["duration_ns"].sum())
    moved = d.filter(pl.col("dram_bytes_per_s").is_not_null())  # (read + write) bytes over all their time
    # read + write bytes over all their time (read alone where the write metric was not collected)
    per_s = float((moved["dram_bytes_per_s"] * moved["duration_ns"]).sum() / moved["duration_ns"].sum()) \
        if moved.height else None
    ratio = d["ncu_over_nsys"].drop_nulls() if "ncu_over_nsys" in d.columns else pl.Series([], dtype=pl.Float64)
    return {"ncu_kernels": d.height, "ncu_dram_pct": weighted, "ncu_dram_bytes_per_s": per_s,
            "ncu_top_kernel": top["kernel_name"], "ncu_top_dram_pct": top["dram_throughput_pct"],
            "ncu_over_nsys": float(ratio.median()) if ratio.len() else None, "ncu_matched_kernels": ratio.len()}


def _run_facts(trace: Trace, tm: TargetMetrics, info: pl.DataFrame) -> dict:
    return {
        "gpu": _first(info, "gpu"),
        "torch": tm.torch,
        "cuda": tm.cuda,
        "nsys": trace.meta.get("nsys_version"),
        "config": dict(tm.config),
        "copy_streams_apart": bool(_first(info, "copy_streams_apart")),
        "trace_kernel_rows": _first(info, "kernels") or 0,
        "ncu_rows": _first(info, "ncu_rows") or 0,
        "steps_found": _first(info, "steps_found") or "",
    }


def facts(trace: Trace, frames: dict[str, pl.DataFrame]) -> Facts:
    """Every number the findings and the report state about one run (None when the trace
    cannot say). `frames`: the registered analyses' results; run_info is computed when absent."""
    tm = trace.target_metrics
    info = frames["run_info"] if "run_info" in frames else run_info(trace)
    copies = _copy_facts(frames)
    return Facts(**_metrics_facts(trace, tm), **_step_facts(frames), **copies,
                 **_kernel_facts(frames, copies["copy_ns"]), **_launch_facts(frames), **_bandwidth_facts(frames),
                 **_ncu_facts(frames), **_run_facts(trace, tm, info))


def missing_sentences(trace: Trace, frames: dict[str, pl.DataFrame], f: Facts) -> list[str]:
    """What this run's report cannot show, and why, one sentence each."""
    out = [m.sentence() for m in trace.missing if m.frame != "memsets"] + trace.dropped()
    if not trace.target_metrics:
        out.append("no metrics.json beside the trace: TTFT, TPOT, tokens/s and weight bytes per step unknown")
    if f.trace_kernel_rows and f.decode_ranges is None and f.steps is None:
        out.append(f"{f.steps_found}: per-step kernels, launches, GPU idle and the savings waterfall are unavailable")
    steps = frames.get("decode_steps", pl.DataFrame())
    if steps.height and "few_kernels" in steps["source"].to_list():
        short = sorted(set(steps.filter(pl.col("source") == "few_kernels")["decode_index"].to_list()))
        one = len(short) == 1
        out.append(f"decode range{'' if one else 's'} {', '.join(map(str, short))} (0-based) "
                   f"{'holds' if one else 'hold'} fewer kernels than steps and no kernel spans "
                   f"{'it' if one else 'them'} (a truncated capture?): {'its' if one else 'their'} steps show "
                   "0 kernels and the per-step medians leave them out")
    if not f.ncu_rows:
        out.append("no Nsight Compute data (ncu.csv): per-kernel DRAM throughput unavailable "
                   "(capture with `decodeprof profile <target> --ncu`)")
    return out
