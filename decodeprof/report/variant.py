"""One variant of the report: its trace, its analysis frames, and the facts read from them.

`facts(trace, frames)` flattens the analysis frames (and the target's metrics.json, kept in
Trace.target_metrics) into one dict of plain numbers in the project's units (ns, bytes,
bytes/s, percent 0-100); a fact the trace cannot give is None, and `missing` says why.
Findings, the summary table and the charts all read these facts and frames, never a trace's
tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from decodeprof.analyses.breakdown import Breakdown
from decodeprof.analyses.run_info import run_info
from decodeprof.trace import Trace
from targets import registry

# Report order for the variants this project ships (the registry's order); any other name follows.
KNOWN_ORDER = tuple(registry.TARGETS)


@dataclass
class Variant:
    name: str
    source: Path
    trace: Trace
    frames: dict[str, pl.DataFrame]
    facts: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    breakdown: Breakdown | None = None  # its decode time per step in parts (the waterfalls' input)
    step_ops: pl.DataFrame | None = None  # the median decode step's GPU ops (analyses.step_timeline)
    step_work: pl.DataFrame | None = None  # GPU work clipped to the median step's window


def _first(frame: pl.DataFrame, column: str, where: pl.Expr | None = None):
    f = frame.filter(where) if where is not None else frame
    if f.is_empty() or column not in f.columns:
        return None
    return f[column][0]


def _median(metrics: dict, key: str):
    m = metrics.get(key) if isinstance(metrics, dict) else None
    if isinstance(m, dict) and isinstance(m.get("median"), (int, float)):
        return float(m["median"])
    return None


def _spread(metrics: dict, key: str) -> float | None:
    """max / min of a timing over the measured iterations (> UNSTABLE_SPREAD: host noise)."""
    m = metrics.get(key) if isinstance(metrics, dict) else None
    if isinstance(m, dict) and isinstance(m.get("min"), (int, float)) and isinstance(m.get("max"), (int, float)) and m["min"] > 0:
        return float(m["max"]) / float(m["min"])
    return None


def _agreement_pct(correctness) -> float | None:
    """Free-running tokens equal to the eager reference's, percent (metrics.json correctness)."""
    a = correctness.get("token_agreement") if isinstance(correctness, dict) else None
    return 100.0 * float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else None


def _metrics_facts(trace: Trace, tm: dict) -> dict:
    shown, source = trace.timings()
    traced = _median(tm.get("metrics") or {}, "tpot_ms")  # the profiled run's
    clean = _median(shown, "tpot_ms") if source == "unprofiled run" else None
    return {
        "timing_source": source,
        "ttft_ms": _median(shown, "ttft_ms"),
        "tpot_ms": _median(shown, "tpot_ms"),
        "decode_ms": _median(shown, "decode_ms"),
        "total_ms": _median(shown, "total_ms"),
        "tokens_per_s": _median(shown, "tokens_per_s"),
        "tpot_spread": _spread(shown, "tpot_ms"),
        "profiled_tpot_ms": traced,
        "profiler_overhead_pct": 100.0 * (traced / clean - 1.0) if traced is not None and clean else None,
        "metrics_weight_gbps": _median(shown, "weight_gbps"),
        "weight_bytes_per_step": tm.get("weight_bytes_per_step") if isinstance(tm.get("weight_bytes_per_step"), int) else None,
        "active": list(tm.get("active") or []),
        "fallbacks": list(tm.get("fallbacks") or []),
        "tokens_match": (tm.get("correctness") or {}).get("tokens_match"),
        "token_agreement_pct": _agreement_pct(tm.get("correctness")),
        "correctness": dict(tm.get("correctness") or {}),
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
        return {"kernel_families": [], "copy_share_pct": None}
    fam = k.group_by("family").agg(pl.col("total_ns").sum()).sort("total_ns", "family", descending=[True, False])
    total = int(fam["total_ns"].sum())
    families = [(f, 100.0 * t / total) for f, t in fam.iter_rows()] if total else []
    share = 100.0 * copy_ns / (copy_ns + total) if copy_ns is not None and copy_ns + total > 0 else None
    return {"kernel_families": families, "copy_share_pct": share}


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
        "decode_graph_kernels": _first(nv, "graph_kernels", pl.col("range_name") == "decode"),
        "decode_graph_launches": _first(nv, "graph_launches", pl.col("range_name") == "decode"),
        "decode_launch_calls": _first(lo, "launches", pl.col("range_name") == "decode"),
        "trace_launch_calls": _first(lo, "launches", pl.col("range_name") == "(all)"),
        "trace_kernels": _first(lo, "kernels", pl.col("range_name") == "(all)"),
        "host_wait_ns": host_wait,
        "host_wait_per_iter_ns": host_wait / iters if host_wait is not None and iters else None,
        "host_blocking_calls": _first(hw, "blocking_calls", pl.col("range_name") == "(all)"),
    }


def _bandwidth_facts(frames: dict, tm_facts: dict) -> dict:
    bw = frames.get("decode_bandwidth", pl.DataFrame())
    out = {
        "achieved_bytes_per_s": _first(bw, "achieved_bytes_per_s"),
        "peak_bytes_per_s": _first(bw, "peak_bytes_per_s"),
        "bw_utilization_pct": _first(bw, "utilization_pct"),
        "bw_source": "trace" if _first(bw, "achieved_bytes_per_s") is not None else None,
    }
    return out


def _ncu_facts(frames: dict) -> dict:
    d = frames.get("kernel_dram", pl.DataFrame())
    d = d.filter(pl.col("duration_ns").is_not_null() & pl.col("dram_throughput_pct").is_not_null()) if not d.is_empty() else d
    if d.is_empty():
        return {"ncu_kernels": 0, "ncu_dram_pct": None, "ncu_top_kernel": None, "ncu_top_dram_pct": None,
                "ncu_dram_bytes_per_s": None}
    top = d.sort("dram_throughput_pct", descending=True).row(0, named=True)
    weighted = float((d["dram_throughput_pct"] * d["duration_ns"]).sum() / d["duration_ns"].sum())
    moved = d.filter(pl.col("dram_bytes_per_s").is_not_null())  # (read + write) bytes over all their time
    per_s = float(1e9 * (moved["dram_read_bytes"] + moved["dram_write_bytes"]).sum() / moved["duration_ns"].sum()) \
        if moved.height else None
    return {"ncu_kernels": d.height, "ncu_dram_pct": weighted, "ncu_dram_bytes_per_s": per_s,
            "ncu_top_kernel": top["kernel_name"], "ncu_top_dram_pct": top["dram_throughput_pct"]}


def _device_facts(trace: Trace, info: pl.DataFrame) -> dict:
    tm = trace.target_metrics if isinstance(trace.target_metrics, dict) else {}
    dev = tm.get("device") or {}
    return {
        "gpu": _first(info, "gpu"),
        "torch": dev.get("torch"),
        "cuda": dev.get("cuda"),
        "nsys": trace.meta.get("nsys_version"),
        "config": dict(tm.get("config") or {}),
    }


def facts(trace: Trace, frames: dict[str, pl.DataFrame]) -> dict:
    """Every number the report states about one variant (None when the trace cannot say)."""
    tm = trace.target_metrics if isinstance(trace.target_metrics, dict) else {}
    info = frames["run_info"] if "run_info" in frames else run_info(trace)
    out = _metrics_facts(trace, tm)
    out.update(_step_facts(frames))
    out.update(_copy_facts(frames))
    out.update(_kernel_facts(frames, out.get("copy_ns")))
    out["copy_stream_apart"] = bool(_first(info, "copy_streams_apart"))
    out.update(_launch_facts(frames))
    out.update(_bandwidth_facts(frames, out))
    out.update(_ncu_facts(frames))
    out.update(_device_facts(trace, info))
    out["trace_kernel_rows"] = _first(info, "kernels")
    out["ncu_rows"] = _first(info, "ncu_rows")
    out["steps_found"] = _first(info, "steps_found")
    return out


def missing_sentences(trace: Trace, frames: dict[str, pl.DataFrame], f: dict) -> list[str]:
    """What this variant's report cannot show, and why, one sentence each."""
    out = [m.sentence() for m in trace.missing if m.frame != "memsets"] + trace.dropped()
    if not trace.target_metrics:
        out.append("no metrics.json beside the trace: TTFT, TPOT, tokens/s and weight bytes per step unknown")
    if f.get("trace_kernel_rows") and f.get("decode_ranges") is None and f.get("steps") is None:
        out.append(f"{f['steps_found']}: per-step kernels, launches, GPU idle and the savings waterfall are unavailable")
    steps = frames.get("decode_steps", pl.DataFrame())
    if steps.height and "few_kernels" in steps["source"].to_list():
        short = sorted(set(steps.filter(pl.col("source") == "few_kernels")["decode_index"].to_list()))
        one = len(short) == 1
        out.append(f"decode range{'' if one else 's'} {', '.join(map(str, short))} (0-based) "
                   f"{'holds' if one else 'hold'} fewer kernels than steps and no kernel spans "
                   f"{'it' if one else 'them'} (a truncated capture?): {'its' if one else 'their'} steps show "
                   "0 kernels and the per-step medians leave them out")
    if not f.get("ncu_rows"):
        out.append("no Nsight Compute data (ncu.csv): per-kernel DRAM throughput unavailable "
                   "(capture with `decodeprof profile <target> --ncu`)")
    return out


_RUN_FOLDER = re.compile(r"^(?P<label>[A-Za-z0-9][A-Za-z0-9_.-]*?)-\d{8}-\d{6}(-\d+)?$")


def variant_name(path: Path) -> str:
    """A run folder's name, less the time stamp `decodeprof profile` appends (runs/graph-20261125-101500
    -> graph); a run folder's own trace file (trace.sqlite, trace.nsys-rep) is named by its folder,
    any other trace file by its file name (hf_eager.sqlite -> hf_eager)."""
    if path.is_file() and path.stem.split(".")[0] != "trace":
        return path.name.split(".")[0] or path.stem
    name = (path.parent.name if path.is_file() else path.name) or path.stem
    stamped = _RUN_FOLDER.match(name)
    return stamped.group("label") if stamped else name


def ordered(names: list[str]) -> list[str]:
    """Our targets in their ladder order, then any other variant in the order given."""
    known = [n for n in KNOWN_ORDER if n in names]
    return known + [n for n in dict.fromkeys(names) if n not in KNOWN_ORDER]
