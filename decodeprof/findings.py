"""Findings: why a variant wins (or does not), each a sentence backed by the trace's numbers.

A finding is stated only when its evidence clears a threshold, which it names; when a
variant does not win or loses, a finding says so and points at the largest cause seen.
Every rule is a pure function of two fact dicts (decodeprof.report.variant.facts: numbers in
ns, bytes, bytes/s, percent 0-100) plus the waterfall frame; none reads a trace or prints.
A comparing rule takes `ref`, the words its sentences name the reference by ("the baseline",
or the variant a step of the optimization ladder builds on).

    from decodeprof.findings import findings
    for f in findings("graph", graph_facts, baseline_facts, waterfall_frame): print(f.sentence)
    compare("fp8", fp8_facts, graph_facts, ref="graph")   # only what changed against graph
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from decodeprof.present.formats import (count, fixed, gbs_text, mb_text, ms_text, pct_text, significant, times_text,
                                        us_text)
from decodeprof.thresholds import (BW_GAIN_MIN, BYTES_REDUCTION_MIN, COPY_BOUND_PCT, COPY_BW_GAIN_MIN,  # noqa: F401
                                   DRAM_BOUND_PCT, HOST_WAIT_GROWTH_MIN, HOST_WAIT_MIN_NS, IDLE_BOUND_PCT,
                                   KERNEL_REDUCTION_MIN, LAUNCH_REDUCTION_MIN, ON_CHIP_RATIO, OVERLAP_MIN,
                                   PAGEABLE_MIN_BYTES, PROFILER_OVERHEAD_PCT, REDUCTION_MIN, SLOWDOWN_MAX,
                                   SPEEDUP_MIN, TOKEN_AGREEMENT_MIN, TTFT_CHANGE_MIN, UNSTABLE_SPREAD)


@dataclass(frozen=True)
class Finding:
    variant: str
    kind: str  # "win" | "no_win" | "loss" | "info" | "warning" | "limit" (what limits one trace)
    title: str
    sentence: str
    threshold: str
    chart: str  # element id of the chart that shows the evidence
    evidence: dict = field(default_factory=dict)  # raw numbers (ns, bytes, bytes/s, %, counts)
    fact: str | None = None  # the fact (report.variant.facts key) it judges, when one number carries it


def _have(*values) -> bool:
    return all(v is not None for v in values)


def _drop(base: float, new: float) -> float:
    return (base - new) / base if base else 0.0


BASELINE = "the baseline"


def speed(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Decode and total time vs the reference: a win, a loss, or no significant change."""
    out = []
    for key, label in (("decode_ms", "decode time"), ("total_ms", "total time per iteration")):
        if not _have(v.get(key), b.get(key)) or not v[key]:
            continue
        s = b[key] / v[key]
        ev = {"baseline_ms": b[key], "variant_ms": v[key], "speedup": s}
        thr = f"win at >= {times_text(SPEEDUP_MIN)}, loss at <= {times_text(SLOWDOWN_MAX)} (medians of the {v.get('timing_source', 'profiled run')})"
        if s >= SPEEDUP_MIN:
            out.append(Finding(name, "win", f"faster {label}", f"{label.capitalize()} {ms_text(v[key])} vs {ms_text(b[key])} in {ref}: {times_text(s)} faster.", thr, "chart-step-time", ev, key))
        elif s <= SLOWDOWN_MAX:
            out.append(Finding(name, "loss", f"slower {label}", f"{label.capitalize()} {ms_text(v[key])} vs {ms_text(b[key])} in {ref}: {times_text(1 / s)} slower.", thr, "chart-step-time", ev, key))
        else:
            out.append(Finding(name, "no_win", f"no {label} change", f"{label.capitalize()} {ms_text(v[key])} vs {ms_text(b[key])} in {ref} ({times_text(s)}): within the {times_text(SPEEDUP_MIN)} threshold, not a win.", thr, "chart-step-time", ev, key))
    return out


def first_token(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Time to first token (copy + prefill + first token) vs the reference: a clear change either way."""
    bt, vt = b.get("ttft_ms"), v.get("ttft_ms")
    if not _have(bt, vt) or not bt or not vt:
        return []
    ev = {"baseline_ttft_ms": bt, "variant_ttft_ms": vt, "ratio": vt / bt}
    thr = (f"stated when TTFT changes by >= {times_text(TTFT_CHANGE_MIN)} either way (medians of the "
           f"{v.get('timing_source', 'profiled run')})")
    if vt >= TTFT_CHANGE_MIN * bt:
        return [Finding(name, "loss", "slower first token", f"Time to first token is {ms_text(vt)} vs {ms_text(bt)} in {ref}: {times_text(vt / bt)} longer before the first token, whatever the decode loop gains afterwards.", thr, "summary", ev, "ttft_ms")]
    if bt >= TTFT_CHANGE_MIN * vt:
        return [Finding(name, "win", "faster first token", f"Time to first token is {ms_text(vt)} vs {ms_text(bt)} in {ref}: {times_text(bt / vt)} shorter.", thr, "summary", ev, "ttft_ms")]
    return []


def pageable_copies(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Pinned memory: pageable H2D copies gone, H2D bandwidth up."""
    if not (b.get("pageable_h2d_copies") and v.get("h2d_copies")):
        return []
    if v["pageable_h2d_copies"] or not _have(v.get("h2d_bytes_per_s"), b.get("h2d_bytes_per_s")):
        return []
    gain = v["h2d_bytes_per_s"] / b["h2d_bytes_per_s"]
    ev = {"baseline_pageable_h2d_copies": b["pageable_h2d_copies"], "variant_pageable_h2d_copies": 0,
          "baseline_h2d_bytes_per_s": b["h2d_bytes_per_s"], "variant_h2d_bytes_per_s": v["h2d_bytes_per_s"], "gain": gain}
    thr = f"no pageable H2D copy left and H2D bandwidth >= {times_text(COPY_BW_GAIN_MIN, 0)} {ref}'s"
    if gain >= COPY_BW_GAIN_MIN:
        return [Finding(name, "win", "pageable copies gone", f"All {v['h2d_copies']} H2D copies read pinned memory ({ref}'s {b['pageable_h2d_copies']} were pageable, staged by the driver): H2D runs at {gbs_text(v['h2d_bytes_per_s'])} vs {gbs_text(b['h2d_bytes_per_s'])}, {times_text(gain, 1)}.", thr, "chart-copy-bw", ev)]
    return [Finding(name, "no_win", "pinned copies not faster", f"Pageable H2D copies are gone but H2D bandwidth is {gbs_text(v['h2d_bytes_per_s'])} vs {gbs_text(b['h2d_bytes_per_s'])} ({times_text(gain, 1)}): below the threshold.", thr, "chart-copy-bw", ev)]


def host_wait(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Host time blocked in synchronizing calls and synchronous/pageable copies, per iteration:
    down (a win), or up by a share and an amount that matter."""
    bv, vv = b.get("host_wait_per_iter_ns"), v.get("host_wait_per_iter_ns")
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
    bt, vt = b.get("total_ms"), v.get("total_ms")
    if _have(bt, vt) and vt and bt / vt >= SPEEDUP_MIN:  # the GPU work ends later than the host's launches
        return [Finding(name, "info", "host waits longer", text + f", while the iteration is {times_text(bt / vt)} faster: the host issues its work sooner and then waits at the synchronize for the GPU to finish.", thr, "chart-copy-bw", ev)]
    return [Finding(name, "loss", "host blocked more", text + ": time the host spends blocked instead of issuing work, with no faster iteration to show for it.", thr, "chart-copy-bw", ev, "host_wait_per_iter_ns")]


def copy_overlap(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Streams: is copy time hidden under compute on another stream?"""
    frac = v.get("copy_overlap_fraction")
    if frac is None or not (v.get("copy_stream_apart") or frac > (b.get("copy_overlap_fraction") or 0.0) + 0.05):
        return []
    ev = {"copy_ns": v.get("copy_ns"), "overlapped_ns": v.get("copy_overlapped_ns"), "overlap_fraction": frac}
    thr = f">= {pct_text(100 * OVERLAP_MIN)} of copy time overlapped with kernels on other streams"
    if frac >= OVERLAP_MIN:
        return [Finding(name, "win", "copies hidden under compute", f"{pct_text(100 * frac)} of copy time ({us_text(v['copy_overlapped_ns'])} of {us_text(v['copy_ns'])}) runs while kernels execute on another stream.", thr, "chart-timeline", ev)]
    return [Finding(name, "no_win", "copies not overlapped", f"Copies run on their own stream, but only {pct_text(100 * frac)} of copy time ({us_text(v['copy_overlapped_ns'])} of {us_text(v['copy_ns'])}) overlaps kernels: there is little compute running while they copy, so the copy stream hides almost nothing.", thr, "chart-timeline", ev)]


def launches(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """CUDA graphs: one graph launch replaces N kernel launches; CPU API time per step down."""
    out = []
    bl, vl = b.get("launches_per_step"), v.get("launches_per_step")
    if _have(bl, vl) and bl and _drop(bl, vl) >= LAUNCH_REDUCTION_MIN:
        ev = {"baseline_launches_per_step": bl, "variant_launches_per_step": vl,
              "decode_graph_launches": v.get("decode_graph_launches"), "decode_kernels": v.get("decode_kernels")}
        if v.get("decode_graph_launches"):
            per = v["decode_kernels"] / v["decode_graph_launches"]
            text = (f"{count(v['decode_graph_launches'])} cudaGraphLaunch calls replay {count(v['decode_kernels'])} decode kernels "
                    f"({count(per)} per launch): {count(vl)} launch calls per step vs {count(bl)} in {ref}.")
        else:
            text = f"{count(vl)} launch calls per decode step vs {count(bl)} in {ref}."
        out.append(Finding(name, "win", "fewer launches", text, f"launch calls per step down >= {pct_text(100 * LAUNCH_REDUCTION_MIN)}", "chart-kernels", ev))
    ba, va = b.get("cpu_api_per_step_ns"), v.get("cpu_api_per_step_ns")
    if _have(ba, va) and ba and _drop(ba, va) >= REDUCTION_MIN:
        ev = {"baseline_cpu_api_per_step_ns": ba, "variant_cpu_api_per_step_ns": va}
        out.append(Finding(name, "win", "less CPU API time", f"CUDA API time on the CPU is {us_text(va)} per decode step vs {us_text(ba)} in {ref} ({pct_text(100 * _drop(ba, va))} less).", f"CPU API time per step down >= {pct_text(100 * REDUCTION_MIN)}", "chart-kernels", ev))
    return out


def trace_launches(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Whole-trace launch calls vs kernels, when per-step counts are unavailable on a side."""
    if _have(v.get("launches_per_step"), b.get("launches_per_step")):
        return []
    bl, vl, vk = b.get("trace_launch_calls"), v.get("trace_launch_calls"), v.get("trace_kernels")
    if not _have(bl, vl, vk) or not bl or _drop(bl, vl) < LAUNCH_REDUCTION_MIN:
        return []
    ev = {"baseline_trace_launch_calls": bl, "variant_trace_launch_calls": vl, "variant_trace_kernels": vk,
          "baseline_trace_kernels": b.get("trace_kernels")}
    return [Finding(name, "win", "fewer launches", f"In the whole trace, {count(vl)} kernel/graph launch calls run {count(vk)} kernels vs {count(bl)} launch calls for {count(b.get('trace_kernels') or 0)} kernels in {ref}: graph replay replaces per-kernel launches.", f"launch calls down >= {pct_text(100 * LAUNCH_REDUCTION_MIN)} (whole trace: no per-step split available)", "summary", ev)]


def gpu_idle(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """GPU idle per decode step (median), the launch-bound gap the host leaves."""
    bi, vi = b.get("gpu_idle_per_step_ns"), v.get("gpu_idle_per_step_ns")
    if not _have(bi, vi, b.get("gpu_idle_pct"), v.get("gpu_idle_pct")) or not bi or _drop(bi, vi) < REDUCTION_MIN:
        return []
    ev = {"baseline_gpu_idle_per_step_ns": bi, "variant_gpu_idle_per_step_ns": vi,
          "baseline_gpu_idle_pct": b.get("gpu_idle_pct"), "variant_gpu_idle_pct": v.get("gpu_idle_pct")}
    return [Finding(name, "win", "GPU idles less", f"The GPU idles {us_text(vi)} in the median decode step ({pct_text(v['gpu_idle_pct'])} of all decode-step time) vs {us_text(bi)} ({pct_text(b['gpu_idle_pct'])}) in {ref}.", f"GPU idle per step (median) down >= {pct_text(100 * REDUCTION_MIN)}", "chart-step-time", ev)]


def kernels(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Compile / fused kernels: fewer kernels per step."""
    bk, vk = b.get("kernels_per_step"), v.get("kernels_per_step")
    if not _have(bk, vk) or not bk or _drop(bk, vk) < KERNEL_REDUCTION_MIN:
        return []
    ev = {"baseline_kernels_per_step": bk, "variant_kernels_per_step": vk}
    thr = f"kernels per step down >= {pct_text(100 * KERNEL_REDUCTION_MIN)}"
    ranges, in_ranges, steps = v.get("decode_ranges"), v.get("decode_kernels"), (v.get("config") or {}).get("steps")
    if v.get("step_source") == "time_slice" and _have(ranges, in_ranges, steps) and ranges:
        # one kernel spans the decode: each step's window holds it, so "1 per step" undersells it
        ev.update(variant_kernels_per_decode_range=in_ranges / ranges, steps_per_decode_range=steps)
        return [Finding(name, "win", "fewer kernels", f"{count(in_ranges / ranges)} {'kernel runs' if in_ranges == ranges else 'kernels run'} all {count(steps)} decode steps of a decode range (a persistent kernel) vs {count(bk)} per step in {ref}: no launch and no kernel boundary between steps.", thr, "chart-kernels", ev)]
    return [Finding(name, "win", "fewer kernels", f"{count(vk)} kernels per decode step vs {count(bk)} in {ref}: fused kernels read the activations once.", thr, "chart-kernels", ev)]


def weight_bytes(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Low precision: fewer weight bytes streamed per step."""
    bb, vb = b.get("weight_bytes_per_step"), v.get("weight_bytes_per_step")
    if not _have(bb, vb) or not bb or _drop(bb, vb) < BYTES_REDUCTION_MIN:
        return []
    ev = {"baseline_weight_bytes_per_step": bb, "variant_weight_bytes_per_step": vb}
    return [Finding(name, "win", "fewer bytes per step", f"Each decode step streams {mb_text(vb)} of weights vs {mb_text(bb)} in {ref} ({pct_text(100 * _drop(bb, vb))} less).", f"weight bytes per step down >= {pct_text(100 * BYTES_REDUCTION_MIN)}", "chart-bandwidth", ev)]


def bandwidth(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Achieved weight bandwidth (trace GPU time) up, and its share of the GPU's peak."""
    bb, vb = b.get("achieved_bytes_per_s"), v.get("achieved_bytes_per_s")
    if not _have(bb, vb, v.get("bw_utilization_pct"), v.get("peak_bytes_per_s")) or not bb or vb / bb < BW_GAIN_MIN:
        return []
    ev = {"baseline_bytes_per_s": bb, "variant_bytes_per_s": vb, "variant_utilization_pct": v.get("bw_utilization_pct")}
    return [Finding(name, "win", "more bandwidth", f"Decode streams weights at {gbs_text(vb)} ({pct_text(v['bw_utilization_pct'])} of the {gbs_text(v['peak_bytes_per_s'])} peak) vs {gbs_text(bb)} in {ref}, {times_text(vb / bb, 1)}.", f"achieved weight bandwidth up >= {times_text(BW_GAIN_MIN, 1)}", "chart-bandwidth", ev)]


def dram(name: str, v: dict, b: dict, ref: str = BASELINE) -> list[Finding]:
    """Nsight Compute: time-weighted DRAM throughput of the profiled kernels."""
    vd = v.get("ncu_dram_pct")
    if vd is None:
        return []
    ev = {"ncu_dram_pct": vd, "ncu_kernels": v.get("ncu_kernels"), "top_kernel": v.get("ncu_top_kernel"), "top_dram_pct": v.get("ncu_top_dram_pct")}
    bd = b.get("ncu_dram_pct")
    thr = f"DRAM throughput (time-weighted over profiled kernels) >= {pct_text(DRAM_BOUND_PCT)} of peak counts as bandwidth-bound"
    vs = f" vs {pct_text(bd)} in {ref}" if bd is not None and b is not v else ""
    delivered, pulled = v.get("achieved_bytes_per_s"), v.get("ncu_dram_bytes_per_s")
    if _have(delivered, pulled) and pulled > 0 and delivered >= ON_CHIP_RATIO * pulled:
        # (ncu flushes the caches before each profiled kernel: a kernel that re-reads its
        # weights across steps from L2 or shared memory pulls far fewer bytes than it uses)
        ev |= {"delivered_weight_bytes_per_s": delivered, "ncu_dram_bytes_per_s": pulled}
        return [Finding(name, "win", "weights served on chip", f"Decode uses weights at {gbs_text(delivered)} (trace) while its kernels pull only {gbs_text(pulled)} from DRAM (ncu, {pct_text(vd)} of peak): {times_text(delivered / pulled, 1)} more than DRAM supplies, so the steps re-read the weights from L2 or shared memory and DRAM bandwidth no longer bounds a step.", f"weight bytes used per second >= {times_text(ON_CHIP_RATIO, 1)} the DRAM bytes per second of the profiled kernels", "chart-bandwidth", ev)]
    if vd >= DRAM_BOUND_PCT:
        return [Finding(name, "win", "near the DRAM roofline", f"Profiled kernels run at {pct_text(vd)} of peak DRAM throughput{vs} (ncu, {v['ncu_kernels']} kernels).", thr, "chart-bandwidth", ev)]
    return [Finding(name, "info", "kernels below the DRAM roofline", f"Profiled kernels run at {pct_text(vd)} of peak DRAM throughput{vs} (ncu, {v['ncu_kernels']} kernels; best {pct_text(v['ncu_top_dram_pct'])} in {v['ncu_top_kernel']}): small decode kernels leave bandwidth unused, so faster kernels could still win.", thr, "chart-bandwidth", ev)]


def correctness(name: str, v: dict, b: dict | None = None) -> list[Finding]:
    """The target's own check against the eager reference (`b` is not read): a failed check,
    a fallback, a free-running divergence (a warning when few tokens agree)."""
    out = []
    c = v.get("correctness") or {}
    if v.get("tokens_match") is False:
        forced, choice = c.get("teacher_forced"), c.get("choice_agreement")
        tol = c.get("tolerance") or {}
        if forced or choice is not None:  # the run passed its checks; free-running divergence is reported, not hidden
            margin = c.get("reference_margin_at_divergence")  # runs recorded before choice_agreement
            at = f" from position {c['first_divergent_step']}" if c.get("first_divergent_step") is not None else ""
            near = f", where the reference's top-2 logit margin is {significant(margin, 3)}" if margin is not None and choice is None else ""
            agreement = c.get("token_agreement")
            low = agreement is not None and agreement < TOKEN_AGREEMENT_MIN
            text = (f"Free-running tokens agree {pct_text(100 * agreement)} with the eager reference: they diverge{at}{near} "
                    f"(a near-tie, flipped by different rounding or quantization).")
            if low:
                text += " Most of the generated text differs from the reference's, so compare its speed knowing that."
            thr = [f"a warning below {pct_text(100 * TOKEN_AGREEMENT_MIN)} free-running agreement"] if low else []
            if choice is not None:
                window = 2 * tol.get("max_abs_logit_err", 0.0)
                text += (f" Fed the variant's own tokens, the reference finds {pct_text(100 * choice)} of them within {significant(window, 3)} "
                         f"of its best logit (largest gap {significant(c.get('largest_choice_gap', 0.0), 3)}).")
                thr.append(f"chosen tokens within {significant(window, 3)} of the reference's best logit on >= "
                           f"{pct_text(100 * tol.get('min_token_agreement', 1.0))} of tokens")
            if forced:
                text += (f" Teacher-forced, each step agrees {pct_text(100 * forced['token_agreement'])} "
                         f"with max |logit error| {significant(forced['max_abs_logit_err'], 3)}.")
                thr.append(f"teacher-forced token agreement >= {pct_text(100 * tol.get('min_token_agreement', 1.0))} and "
                           f"max |logit error| <= {tol.get('max_abs_logit_err', 0.0)}")
            kind, title = ("warning", "low token agreement") if low else ("info", "tokens diverge at a near-tie")
            out.append(Finding(name, kind, title, text, "; ".join(thr), "summary", {"correctness": c}, "token_agreement_pct"))
        else:
            out.append(Finding(name, "warning", "tokens differ", "The target's correctness check failed: its tokens differ from the eager reference, so its speed does not count.", "tokens must match the reference", "summary", {}, "token_agreement_pct"))
    if v.get("fallbacks"):
        out.append(Finding(name, "warning", "fell back", "The target fell back: " + "; ".join(map(str, v["fallbacks"])) + ".", "no fallback", "summary", {}))
    return out


def _largest_cause(wf: pl.DataFrame | None, sign: float) -> str:
    if wf is None or wf.is_empty():
        return ""
    parts = wf.filter(pl.col("delta_ns") * sign > 0)
    if parts.is_empty():
        return ""
    top = parts.sort(pl.col("delta_ns").abs(), descending=True).row(0, named=True)
    return f" The largest change in the decode waterfall is {top['part']}: {'+' if top['delta_ns'] > 0 else '-'}{us_text(abs(top['delta_ns']))} per step."


# --- what limits one trace's decode (no baseline needed) --------------------------------------

def host_bound(name: str, v: dict) -> list[Finding]:
    """The GPU idles most of each decode step: the host's launches set the pace."""
    idle, busy, window = v.get("gpu_idle_pct"), v.get("gpu_busy_per_step_ns"), v.get("gpu_window_per_step_ns")
    if not _have(idle, busy, window) or idle < IDLE_BOUND_PCT:
        return []
    launches, api = v.get("launches_per_step"), v.get("cpu_api_per_step_ns")
    per = f": {count(launches)} launch calls and {us_text(api)} of CUDA API time per step" if _have(launches, api) else ""
    ev = {"gpu_idle_pct": idle, "gpu_busy_per_step_ns": busy, "gpu_window_per_step_ns": window,
          "launches_per_step": launches, "cpu_api_per_step_ns": api}
    return [Finding(name, "limit", "launch/host-bound", f"The GPU idles {pct_text(idle)} of the decode steps' time (median step: kernels busy {us_text(busy)} of {us_text(window)}): the host cannot issue work fast enough{per}. Usually helps: capture the decode step in a CUDA graph (torch.compile mode=\"reduce-overhead\", a static KV cache), then fuse kernels.", f"GPU idle > {pct_text(IDLE_BOUND_PCT)} of decode-step time", "chart-step-time", ev)]


def host_syncs(name: str, v: dict) -> list[Finding]:
    """The host waits for the GPU in every decode step (a token read back, a stop check)."""
    syncs = v.get("syncs_per_step")
    if not syncs or syncs < 1:
        return []
    ev = {"syncs_per_step": syncs}
    return [Finding(name, "limit", "host synchronizes every step", f"The median decode step makes {count(syncs)} synchronizing call(s) (cudaStreamSynchronize and the like): the host waits for the GPU before launching the next step, so their work never overlaps. Usually from reading the token or a stop condition on the host; helps: keep the token on the device and check stop conditions every few steps, or replay the loop as a graph.", "one or more synchronizing calls in the median step", "chart-step-time", ev)]


def pageable_host_copies(name: str, v: dict) -> list[Finding]:
    """Host-to-device copies from pageable memory block the host while the driver stages them."""
    n = v.get("pageable_h2d_copies")
    if not n or (v.get("h2d_bytes") or 0) < PAGEABLE_MIN_BYTES:
        return []
    ev = {"pageable_h2d_copies": n, "h2d_bytes": v.get("h2d_bytes"), "h2d_bytes_per_s": v.get("h2d_bytes_per_s")}
    rate = f" ({mb_text(v['h2d_bytes'])} in all at {gbs_text(v['h2d_bytes_per_s'])})" if _have(v.get("h2d_bytes"), v.get("h2d_bytes_per_s")) else ""
    return [Finding(name, "limit", "pageable copies", f"{count(n)} host-to-device copies read pageable memory{rate}: the driver stages them and the host blocks. Helps: pinned host buffers (pin_memory()) and non_blocking copies.", f"pageable H2D copies, with >= {mb_text(PAGEABLE_MIN_BYTES)} copied host to device", "chart-copy-bw", ev)]


def copy_bound(name: str, v: dict) -> list[Finding]:
    """Copies take a large share of the GPU's time."""
    share = v.get("copy_share_pct")
    if share is None or share < COPY_BOUND_PCT:
        return []
    return [Finding(name, "limit", "copy-bound", f"Copies take {pct_text(share)} of the GPU's busy time (copies + kernels): moving data, not computing, limits this run. Helps: pinned memory, fewer or larger copies, a copy stream that overlaps them with compute.", f"copies >= {pct_text(COPY_BOUND_PCT)} of GPU busy time", "chart-copy-bw", {"copy_share_pct": share})]


def kernel_bound(name: str, v: dict) -> list[Finding]:
    """The GPU is busy most of each step: the kernels themselves limit the decode."""
    idle, families = v.get("gpu_idle_pct"), v.get("kernel_families") or []
    if idle is None or idle >= IDLE_BOUND_PCT:
        return []
    top = ", ".join(f"{fam} {pct_text(share)}" for fam, share in families[:3])
    dram_pct = v.get("ncu_dram_pct")
    if dram_pct is None:
        roof = " Pass an ncu CSV (--ncu) to see how close they run to DRAM bandwidth."
    elif dram_pct >= DRAM_BOUND_PCT:
        roof = f" They run at {pct_text(dram_pct)} of peak DRAM throughput (ncu): bytes bound them; lower precision (FP8/FP4 weights) moves fewer."
    else:
        roof = f" They run at {pct_text(dram_pct)} of peak DRAM throughput (ncu): faster kernels (fusion, a persistent kernel) could still win."
    ev = {"gpu_idle_pct": idle, "kernel_families": families[:3], "ncu_dram_pct": dram_pct}
    return [Finding(name, "limit", "kernel-bound", f"The GPU is busy {pct_text(100 - idle)} of the decode steps' time: the kernels set the pace" + (f" (kernel time by family: {top})." if top else ".") + roof, f"GPU idle < {pct_text(IDLE_BOUND_PCT)} of decode-step time", "chart-kernels", ev)]


def measurement(name: str, v: dict) -> list[Finding]:
    """How far the numbers shown can be trusted: the profiler's overhead, an unstable timing."""
    out = []
    over = v.get("profiler_overhead_pct")
    if over is not None and over > PROFILER_OVERHEAD_PCT:
        ev = {"profiler_overhead_pct": over, "profiled_tpot_ms": v.get("profiled_tpot_ms"), "tpot_ms": v.get("tpot_ms")}
        cause = ("tracing each kernel a CUDA graph replays, --cuda-graph-trace=node" if v.get("decode_graph_launches")
                 else "the tracer's cost on every launch")
        out.append(Finding(name, "warning", "profiler overhead", f"Under Nsight Systems each decode step took {ms_text(v['profiled_tpot_ms'])} vs {ms_text(v['tpot_ms'])} unprofiled (+{pct_text(over)}): the times shown come from the unprofiled run; the trace's own durations are inflated by this much ({cause}).", f"profiled TPOT > {pct_text(PROFILER_OVERHEAD_PCT)} above the unprofiled run's", "summary", ev, "profiler_overhead_pct"))
    spread = v.get("tpot_spread")
    if spread is not None and spread > UNSTABLE_SPREAD:
        out.append(Finding(name, "warning", "unstable timing", f"TPOT varied {times_text(spread)} between its fastest and slowest measured iteration ({v.get('timing_source')}): host noise; compare medians with care or measure more iterations.", f"max / min of TPOT > {fixed(UNSTABLE_SPREAD, 1)}", "summary", {"tpot_spread": spread}, "tpot_ms"))
    return out


LIMIT_RULES = (host_bound, host_syncs, pageable_host_copies, copy_bound, kernel_bound)


def limits(name: str, v: dict) -> list[Finding]:
    """What limits one trace's decode, from its own facts (no baseline): each with its
    evidence and the change that usually helps. The verdict `analyze` prints first."""
    return [f for rule in LIMIT_RULES for f in rule(name, v)] + dram(name, v, v) + correctness(name, v, v) + measurement(name, v)


# The comparing rules after `speed` (whose loss alone makes "why it loses").
COMPARE_RULES = (first_token, pageable_copies, host_wait, copy_overlap, launches, trace_launches, gpu_idle, kernels,
                 weight_bytes, bandwidth, dram)
RULES = (correctness, speed) + COMPARE_RULES
KIND_ORDER = ("warning", "win", "loss", "no_win", "limit", "info")


def _ordered(fs: list[Finding]) -> list[Finding]:
    return sorted(fs, key=lambda f: KIND_ORDER.index(f.kind))


def compare(name: str, v: dict, b: dict, wf: pl.DataFrame | None = None, *, ref: str = BASELINE,
            waterfall_chart: str | None = None) -> list[Finding]:
    """What changed from the reference (facts `b`, named `ref` in the sentences) to variant
    `name` (facts `v`): the comparing rules, then a verdict. Slower than the reference: "why it
    loses", naming the part of the waterfall `wf` (variant - reference) that grew most; no win
    at all: "does not win". `waterfall_chart`: the id of that waterfall's chart."""
    chart = waterfall_chart or f"chart-waterfall-{name}"
    timing = speed(name, v, b, ref)
    out = timing + [f for rule in COMPARE_RULES for f in rule(name, v, b, ref)]
    cause = _largest_cause(wf, +1.0)
    if cause and any(f.kind == "loss" for f in timing):  # only with the waterfall's numbers as evidence
        out.append(Finding(name, "loss", "why it loses", f"This variant is slower than {ref}." + cause, "see the waterfall", chart, {}))
    elif not any(f.kind == "win" for f in out):
        out.append(Finding(name, "no_win", "does not win", f"No measured win clears its threshold against {ref}." + _largest_cause(wf, -1.0), "each finding's own threshold", chart, {}))
    return _ordered(out)


def own(name: str, v: dict) -> list[Finding]:
    """What one variant shows without a reference: its correctness check, how far its timings
    can be trusted, and what limits its decode (`limits` less the ncu DRAM finding, which
    `compare` states against the reference)."""
    return _ordered(correctness(name, v) + measurement(name, v) + [f for rule in LIMIT_RULES for f in rule(name, v)])


def findings(name: str, v: dict, b: dict | None, wf: pl.DataFrame | None = None) -> list[Finding]:
    """Every finding for variant `name` (facts `v`) against the baseline's facts `b`.

    With no baseline (`b` None, or the variant is the baseline) only what limits the variant
    on its own is described (`limits`). Otherwise its correctness, `compare` against the
    baseline and its measurement warnings.
    """
    if b is None or b is v:
        return limits(name, v)
    return _ordered(correctness(name, v) + compare(name, v, b, wf) + measurement(name, v))
