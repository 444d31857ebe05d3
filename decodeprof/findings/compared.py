"""Rules comparing a run with its reference: what changed, each a Finding past its threshold.

Each rule is a pure function `(name, v, b, ref) -> list[Finding]` of the run's facts `v` and
the reference's `b` (decodeprof.findings.facts.Facts); `ref` is the words its sentences name
the reference by ("the baseline", or the variant a step of the optimization ladder builds on).
"""

from __future__ import annotations

import polars as pl

from decodeprof.findings.facts import Facts
from decodeprof.findings.finding import Finding, have as _have, reduction as _drop
from decodeprof.present.formats import count, gbs_text, mb_text, ms_text, pct_text, times_text, us_text
from decodeprof.thresholds import (BW_GAIN_MIN, BYTES_REDUCTION_MIN, COPY_BW_GAIN_MIN, DRAM_BOUND_PCT,
                                   HOST_WAIT_GROWTH_MIN, HOST_WAIT_MIN_NS, KERNEL_REDUCTION_MIN, LAUNCH_REDUCTION_MIN,
                                   ON_CHIP_RATIO, OVERLAP_GAIN_MIN, OVERLAP_MIN, REDUCTION_MIN, SLOWDOWN_MAX,
                                   SPEEDUP_MIN, TTFT_CHANGE_MIN)

BASELINE = "the baseline"


def speed(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Decode and total time vs the reference: a win, a loss, or no significant change."""
    out = []
    for key, label, bt, vt in (("decode_ms", "decode time", b.decode_ms, v.decode_ms),
                               ("total_ms", "total time per iteration", b.total_ms, v.total_ms)):
        if not _have(vt, bt) or not vt:
            continue
        s = bt / vt
        ev = {"baseline_ms": bt, "variant_ms": vt, "speedup": s}
        thr = f"win at >= {times_text(SPEEDUP_MIN)}, loss at <= {times_text(SLOWDOWN_MAX)} (medians of the {v.timing_source})"
        said = f"{label.capitalize()} {ms_text(vt)} vs {ms_text(bt)} in {ref}"
        if s >= SPEEDUP_MIN:
            out.append(Finding(name, "win", f"faster {label}", f"{said}: {times_text(s)} faster.", thr, "chart-step-time", ev, key))
        elif s <= SLOWDOWN_MAX:
            out.append(Finding(name, "loss", f"slower {label}", f"{said}: {times_text(1 / s)} slower.", thr, "chart-step-time", ev, key))
        else:
            out.append(Finding(name, "no_win", f"no {label} change", f"{said} ({times_text(s)}): within the {times_text(SPEEDUP_MIN)} threshold, not a win.", thr, "chart-step-time", ev, key))
    return out


def first_token(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Time to first token (copy + prefill + first token) vs the reference: a clear change either way."""
    bt, vt = b.ttft_ms, v.ttft_ms
    if not _have(bt, vt) or not bt or not vt:
        return []
    ev = {"baseline_ttft_ms": bt, "variant_ttft_ms": vt, "ratio": vt / bt}
    thr = (f"stated when TTFT changes by >= {times_text(TTFT_CHANGE_MIN)} either way (medians of the "
           f"{v.timing_source})")
    if vt >= TTFT_CHANGE_MIN * bt:
        return [Finding(name, "loss", "slower first token", f"Time to first token is {ms_text(vt)} vs {ms_text(bt)} in {ref}: {times_text(vt / bt)} longer before the first token, whatever the decode loop gains afterwards.", thr, "summary", ev, "ttft_ms")]
    if bt >= TTFT_CHANGE_MIN * vt:
        return [Finding(name, "win", "faster first token", f"Time to first token is {ms_text(vt)} vs {ms_text(bt)} in {ref}: {times_text(bt / vt)} shorter.", thr, "summary", ev, "ttft_ms")]
    return []


def pageable_copies(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Pinned memory: pageable H2D copies gone, H2D bandwidth up."""
    if not (b.pageable_h2d_copies and v.h2d_copies):
        return []
    if v.pageable_h2d_copies or not _have(v.h2d_bytes_per_s, b.h2d_bytes_per_s):
        return []
    gain = v.h2d_bytes_per_s / b.h2d_bytes_per_s
    ev = {"baseline_pageable_h2d_copies": b.pageable_h2d_copies, "variant_pageable_h2d_copies": 0,
          "baseline_h2d_bytes_per_s": b.h2d_bytes_per_s, "variant_h2d_bytes_per_s": v.h2d_bytes_per_s, "gain": gain}
    thr = f"no pageable H2D copy left and H2D bandwidth >= {times_text(COPY_BW_GAIN_MIN, 0)} {ref}'s"
    if gain >= COPY_BW_GAIN_MIN:
        return [Finding(name, "win", "pageable copies gone", f"All {v.h2d_copies} H2D copies read pinned memory ({ref}'s {b.pageable_h2d_copies} were pageable, staged by the driver): H2D runs at {gbs_text(v.h2d_bytes_per_s)} vs {gbs_text(b.h2d_bytes_per_s)}, {times_text(gain, 1)}.", thr, "chart-copy-bw", ev)]
    return [Finding(name, "no_win", "pinned copies not faster", f"Pageable H2D copies are gone but H2D bandwidth is {gbs_text(v.h2d_bytes_per_s)} vs {gbs_text(b.h2d_bytes_per_s)} ({times_text(gain, 1)}): below the threshold.", thr, "chart-copy-bw", ev)]


def host_wait(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Host time blocked in synchronizing calls and synchronous/pageable copies, per iteration:
    down (a win), or up by a share and an amount that matter."""
    bv, vv = b.host_wait_per_iter_ns, v.host_wait_per_iter_ns
    if not _have(bv, vv) or not bv:
        return []
    if _drop(bv, vv) >= REDUCTION_MIN:
        ev = {"baseline_host_wait_per_iter_ns": bv, "variant_host_wait_per_iter_ns": vv, "reduction": _drop(bv, vv)}
        return [Finding(name, "win", "host blocked less", f"The host waits {us_text(vv)} per iteration in blocking CUDA calls vs {us_text(bv)} in {ref} ({pct_text(100 * _drop(bv, vv))} less).", f"host wait per iteration down >= {pct_text(100 * REDUCTION_MIN)}", "chart-copy-bw", ev, "host_wait_per_iter_ns")]
    if vv < (1 + HOST_WAIT_GROWTH_MIN) * bv or vv - bv < HOST_WAIT_MIN_NS:
        return []
    ev = {"baseline_host_wait_per_iter_ns": bv, "variant_host_wait_per_iter_ns": vv, "growth": vv / bv - 1}
    thr = f"host wait per iteration up >= {pct_text(100 * HOST_WAIT_GROWTH_MIN)} and by >= {us_text(HOST_WAIT_MIN_NS)}"
    text = f"The host waits {us_text(vv)} per iteration in blocking CUDA calls vs {us_text(bv)} in {ref} (+{pct_text(100 * (vv / bv - 1))})"
    bt, vt = b.total_ms, v.total_ms
    if _have(bt, vt) and vt and bt / vt >= SPEEDUP_MIN:  # the GPU work ends later than the host's launches
        return [Finding(name, "info", "host waits longer", text + f", while the iteration is {times_text(bt / vt)} faster: the host issues its work sooner and then waits at the synchronize for the GPU to finish.", thr, "chart-copy-bw", ev)]
    return [Finding(name, "loss", "host blocked more", text + ": time the host spends blocked instead of issuing work, with no faster iteration to show for it.", thr, "chart-copy-bw", ev, "host_wait_per_iter_ns")]


def copy_overlap(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Streams: is copy time hidden under compute on another stream?"""
    frac = v.copy_overlap_fraction
    if frac is None or not (v.copy_streams_apart or frac > (b.copy_overlap_fraction or 0.0) + OVERLAP_GAIN_MIN):
        return []
    ev = {"copy_ns": v.copy_ns, "overlapped_ns": v.copy_overlapped_ns, "overlap_fraction": frac}
    thr = f">= {pct_text(100 * OVERLAP_MIN)} of copy time overlapped with kernels on other streams"
    if frac >= OVERLAP_MIN:
        return [Finding(name, "win", "copies hidden under compute", f"{pct_text(100 * frac)} of copy time ({us_text(v.copy_overlapped_ns)} of {us_text(v.copy_ns)}) runs while kernels execute on another stream.", thr, "chart-timeline", ev)]
    return [Finding(name, "no_win", "copies not overlapped", f"Copies run on their own stream, but only {pct_text(100 * frac)} of copy time ({us_text(v.copy_overlapped_ns)} of {us_text(v.copy_ns)}) overlaps kernels: there is little compute running while they copy, so the copy stream hides almost nothing.", thr, "chart-timeline", ev)]


def launches(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """CUDA graphs: one graph launch replaces N kernel launches; CPU API time per step down."""
    out = []
    bl, vl = b.launches_per_step, v.launches_per_step
    if _have(bl, vl) and bl and _drop(bl, vl) >= LAUNCH_REDUCTION_MIN:
        ev = {"baseline_launches_per_step": bl, "variant_launches_per_step": vl,
              "decode_graph_launches": v.decode_graph_launches, "decode_kernels": v.decode_kernels}
        if v.decode_graph_launches:
            per = v.decode_kernels / v.decode_graph_launches
            text = (f"{count(v.decode_graph_launches)} cudaGraphLaunch calls replay {count(v.decode_kernels)} decode kernels "
                    f"({count(per)} per launch): {count(vl)} launch calls per step vs {count(bl)} in {ref}.")
        else:
            text = f"{count(vl)} launch calls per decode step vs {count(bl)} in {ref}."
        out.append(Finding(name, "win", "fewer launches", text, f"launch calls per step down >= {pct_text(100 * LAUNCH_REDUCTION_MIN)}", "chart-kernels", ev))
    ba, va = b.cpu_api_per_step_ns, v.cpu_api_per_step_ns
    if _have(ba, va) and ba and _drop(ba, va) >= REDUCTION_MIN:
        ev = {"baseline_cpu_api_per_step_ns": ba, "variant_cpu_api_per_step_ns": va}
        out.append(Finding(name, "win", "less CPU API time", f"CUDA API time on the CPU is {us_text(va)} per decode step vs {us_text(ba)} in {ref} ({pct_text(100 * _drop(ba, va))} less).", f"CPU API time per step down >= {pct_text(100 * REDUCTION_MIN)}", "chart-kernels", ev))
    return out


def trace_launches(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Whole-trace launch calls vs kernels, when per-step counts are unavailable on a side."""
    if _have(v.launches_per_step, b.launches_per_step):
        return []
    bl, vl, vk = b.trace_launch_calls, v.trace_launch_calls, v.trace_kernels
    if not _have(bl, vl, vk) or not bl or _drop(bl, vl) < LAUNCH_REDUCTION_MIN:
        return []
    ev = {"baseline_trace_launch_calls": bl, "variant_trace_launch_calls": vl, "variant_trace_kernels": vk,
          "baseline_trace_kernels": b.trace_kernels}
    return [Finding(name, "win", "fewer launches", f"In the whole trace, {count(vl)} kernel/graph launch calls run {count(vk)} kernels vs {count(bl)} launch calls for {count(b.trace_kernels or 0)} kernels in {ref}: graph replay replaces per-kernel launches.", f"launch calls down >= {pct_text(100 * LAUNCH_REDUCTION_MIN)} (whole trace: no per-step split available)", "summary", ev)]


def gpu_idle(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """GPU idle per decode step (median), the launch-bound gap the host leaves."""
    bi, vi = b.gpu_idle_per_step_ns, v.gpu_idle_per_step_ns
    if not _have(bi, vi, b.gpu_idle_pct, v.gpu_idle_pct) or not bi or _drop(bi, vi) < REDUCTION_MIN:
        return []
    ev = {"baseline_gpu_idle_per_step_ns": bi, "variant_gpu_idle_per_step_ns": vi,
          "baseline_gpu_idle_pct": b.gpu_idle_pct, "variant_gpu_idle_pct": v.gpu_idle_pct}
    return [Finding(name, "win", "GPU idles less", f"The GPU idles {us_text(vi)} in the median decode step ({pct_text(v.gpu_idle_pct)} of all decode-step time) vs {us_text(bi)} ({pct_text(b.gpu_idle_pct)}) in {ref}.", f"GPU idle per step (median) down >= {pct_text(100 * REDUCTION_MIN)}", "chart-step-time", ev)]


def kernels(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Compile / fused kernels: fewer kernels per step."""
    bk, vk = b.kernels_per_step, v.kernels_per_step
    if not _have(bk, vk) or not bk or _drop(bk, vk) < KERNEL_REDUCTION_MIN:
        return []
    ev = {"baseline_kernels_per_step": bk, "variant_kernels_per_step": vk}
    thr = f"kernels per step down >= {pct_text(100 * KERNEL_REDUCTION_MIN)}"
    ranges, in_ranges, steps = v.decode_ranges, v.decode_kernels, v.config.get("steps")
    if v.step_source == "time_slice" and _have(ranges, in_ranges, steps) and ranges:
        # one kernel spans the decode: each step's window holds it, so "1 per step" undersells it
        ev.update(variant_kernels_per_decode_range=in_ranges / ranges, steps_per_decode_range=steps)
        return [Finding(name, "win", "fewer kernels", f"{count(in_ranges / ranges)} {'kernel runs' if in_ranges == ranges else 'kernels run'} all {count(steps)} decode steps of a decode range (a persistent kernel) vs {count(bk)} per step in {ref}: no launch and no kernel boundary between steps.", thr, "chart-kernels", ev)]
    return [Finding(name, "win", "fewer kernels", f"{count(vk)} kernels per decode step vs {count(bk)} in {ref}: fused kernels read the activations once.", thr, "chart-kernels", ev)]


def weight_bytes(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Low precision: fewer weight bytes streamed per step."""
    bb, vb = b.weight_bytes_per_step, v.weight_bytes_per_step
    if not _have(bb, vb) or not bb or _drop(bb, vb) < BYTES_REDUCTION_MIN:
        return []
    ev = {"baseline_weight_bytes_per_step": bb, "variant_weight_bytes_per_step": vb}
    return [Finding(name, "win", "fewer bytes per step", f"Each decode step streams {mb_text(vb)} of weights vs {mb_text(bb)} in {ref} ({pct_text(100 * _drop(bb, vb))} less).", f"weight bytes per step down >= {pct_text(100 * BYTES_REDUCTION_MIN)}", "chart-bandwidth", ev)]


def bandwidth(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Achieved weight bandwidth (trace GPU time) up, and its share of the GPU's peak."""
    bb, vb = b.achieved_bytes_per_s, v.achieved_bytes_per_s
    if not _have(bb, vb, v.bw_utilization_pct, v.peak_bytes_per_s) or not bb or vb / bb < BW_GAIN_MIN:
        return []
    ev = {"baseline_bytes_per_s": bb, "variant_bytes_per_s": vb, "variant_utilization_pct": v.bw_utilization_pct}
    return [Finding(name, "win", "more bandwidth", f"Decode streams weights at {gbs_text(vb)} ({pct_text(v.bw_utilization_pct)} of the {gbs_text(v.peak_bytes_per_s)} peak) vs {gbs_text(bb)} in {ref}, {times_text(vb / bb, 1)}.", f"achieved weight bandwidth up >= {times_text(BW_GAIN_MIN, 1)}", "chart-bandwidth", ev)]


def dram(name: str, v: Facts, b: Facts, ref: str = BASELINE) -> list[Finding]:
    """Nsight Compute: time-weighted DRAM throughput of the profiled kernels."""
    vd = v.ncu_dram_pct
    if vd is None:
        return []
    ev = {"ncu_dram_pct": vd, "ncu_kernels": v.ncu_kernels, "top_kernel": v.ncu_top_kernel, "top_dram_pct": v.ncu_top_dram_pct}
    bd = b.ncu_dram_pct
    thr = f"DRAM throughput (time-weighted over profiled kernels) >= {pct_text(DRAM_BOUND_PCT)} of peak counts as bandwidth-bound"
    vs = f" vs {pct_text(bd)} in {ref}" if bd is not None and b is not v else ""
    delivered, pulled = v.achieved_bytes_per_s, v.ncu_dram_bytes_per_s
    if _have(delivered, pulled) and pulled > 0 and delivered >= ON_CHIP_RATIO * pulled:
        # (ncu flushes the caches before each profiled kernel: a kernel that re-reads its
        # weights across steps from L2 or shared memory pulls far fewer bytes than it uses)
        ev |= {"delivered_weight_bytes_per_s": delivered, "ncu_dram_bytes_per_s": pulled}
        return [Finding(name, "win", "weights served on chip", f"Decode uses weights at {gbs_text(delivered)} (trace) while its kernels pull only {gbs_text(pulled)} from DRAM (ncu, {pct_text(vd)} of peak): {times_text(delivered / pulled, 1)} more than DRAM supplies, so the steps re-read the weights from L2 or shared memory and DRAM bandwidth no longer bounds a step.", f"weight bytes used per second >= {times_text(ON_CHIP_RATIO, 1)} the DRAM bytes per second of the profiled kernels", "chart-bandwidth", ev)]
    if vd >= DRAM_BOUND_PCT:
        return [Finding(name, "win", "near the DRAM roofline", f"Profiled kernels run at {pct_text(vd)} of peak DRAM throughput{vs} (ncu, {v.ncu_kernels} kernels).", thr, "chart-bandwidth", ev)]
    return [Finding(name, "info", "kernels below the DRAM roofline", f"Profiled kernels run at {pct_text(vd)} of peak DRAM throughput{vs} (ncu, {v.ncu_kernels} kernels; best {pct_text(v.ncu_top_dram_pct)} in {v.ncu_top_kernel}): small decode kernels leave bandwidth unused, so faster kernels could still win.", thr, "chart-bandwidth", ev)]


# The comparing rules after `speed` (whose loss alone makes "why it loses").
RULES = (first_token, pageable_copies, host_wait, copy_overlap, launches, trace_launches, gpu_idle, kernels,
         weight_bytes, bandwidth, dram)


def largest_cause(wf: pl.DataFrame | None, sign: float) -> str:
    if wf is None or wf.is_empty():
        return ""
    parts = wf.filter(pl.col("delta_ns") * sign > 0)
    if parts.is_empty():
        return ""
    top = parts.sort(pl.col("delta_ns").abs(), descending=True).row(0, named=True)
    return f" The largest change in the decode waterfall is {top['part']}: {'+' if top['delta_ns'] > 0 else '-'}{us_text(abs(top['delta_ns']))} per step."
