"""Rules about one run on its own: its correctness check, how far its timings can be trusted,
and what limits its decode. Each a pure function `(name, v) -> list[Finding]` of the run's
facts (decodeprof.findings.facts.Facts).
"""

from __future__ import annotations

from decodeprof.findings.facts import Facts
from decodeprof.findings.finding import Finding, have as _have
from decodeprof.present.formats import (count, fixed, gbs_text, mb_text, ms_text, pct_text, significant, times_text,
                                        us_text)
from decodeprof.thresholds import (COPY_BOUND_PCT, DRAM_BOUND_PCT, IDLE_BOUND_PCT, PAGEABLE_MIN_BYTES,
                                   PROFILER_OVERHEAD_PCT, TOKEN_AGREEMENT_MIN, UNSTABLE_SPREAD)


def correctness(name: str, v: Facts) -> list[Finding]:
    """The target's own check against the eager reference: a failed check,
    a fallback, a free-running divergence (a warning when few tokens agree)."""
    out = []
    c = v.correctness
    if v.tokens_match is False:
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
    if v.fallbacks:
        out.append(Finding(name, "warning", "fell back", "The target fell back: " + "; ".join(map(str, v.fallbacks)) + ".", "no fallback", "summary", {}))
    return out


def host_bound(name: str, v: Facts) -> list[Finding]:
    """The GPU idles most of each decode step: the host's launches set the pace."""
    idle, busy, window = v.gpu_idle_pct, v.gpu_busy_per_step_ns, v.gpu_window_per_step_ns
    if not _have(idle, busy, window) or idle < IDLE_BOUND_PCT:
        return []
    launches, api = v.launches_per_step, v.cpu_api_per_step_ns
    per = f": {count(launches)} launch calls and {us_text(api)} of CUDA API time per step" if _have(launches, api) else ""
    ev = {"gpu_idle_pct": idle, "gpu_busy_per_step_ns": busy, "gpu_window_per_step_ns": window,
          "launches_per_step": launches, "cpu_api_per_step_ns": api}
    return [Finding(name, "limit", "launch/host-bound", f"The GPU idles {pct_text(idle)} of the decode steps' time (median step: kernels busy {us_text(busy)} of {us_text(window)}): the host cannot issue work fast enough{per}. Usually helps: capture the decode step in a CUDA graph (torch.compile mode=\"reduce-overhead\", a static KV cache), then fuse kernels.", f"GPU idle > {pct_text(IDLE_BOUND_PCT)} of decode-step time", "chart-step-time", ev)]


def host_syncs(name: str, v: Facts) -> list[Finding]:
    """The host waits for the GPU in every decode step (a token read back, a stop check)."""
    syncs = v.syncs_per_step
    if not syncs or syncs < 1:
        return []
    ev = {"syncs_per_step": syncs}
    return [Finding(name, "limit", "host synchronizes every step", f"The median decode step makes {count(syncs)} synchronizing call(s) (cudaStreamSynchronize and the like): the host waits for the GPU before launching the next step, so their work never overlaps. Usually from reading the token or a stop condition on the host; helps: keep the token on the device and check stop conditions every few steps, or replay the loop as a graph.", "one or more synchronizing calls in the median step", "chart-step-time", ev)]


def pageable_host_copies(name: str, v: Facts) -> list[Finding]:
    """Host-to-device copies from pageable memory block the host while the driver stages them."""
    n = v.pageable_h2d_copies
    if not n or (v.h2d_bytes or 0) < PAGEABLE_MIN_BYTES:
        return []
    ev = {"pageable_h2d_copies": n, "h2d_bytes": v.h2d_bytes, "h2d_bytes_per_s": v.h2d_bytes_per_s}
    rate = f" ({mb_text(v.h2d_bytes)} in all at {gbs_text(v.h2d_bytes_per_s)})" if _have(v.h2d_bytes, v.h2d_bytes_per_s) else ""
    return [Finding(name, "limit", "pageable copies", f"{count(n)} host-to-device copies read pageable memory{rate}: the driver stages them and the host blocks. Helps: pinned host buffers (pin_memory()) and non_blocking copies.", f"pageable H2D copies, with >= {mb_text(PAGEABLE_MIN_BYTES)} copied host to device", "chart-copy-bw", ev)]


def copy_bound(name: str, v: Facts) -> list[Finding]:
    """Copies take a large share of the GPU's time."""
    share = v.copy_share_pct
    if share is None or share < COPY_BOUND_PCT:
        return []
    return [Finding(name, "limit", "copy-bound", f"Copies take {pct_text(share)} of the GPU's busy time (copies + kernels): moving data, not computing, limits this run. Helps: pinned memory, fewer or larger copies, a copy stream that overlaps them with compute.", f"copies >= {pct_text(COPY_BOUND_PCT)} of GPU busy time", "chart-copy-bw", {"copy_share_pct": share})]


def kernel_bound(name: str, v: Facts) -> list[Finding]:
    """The GPU is busy most of each step: the kernels themselves limit the decode."""
    idle, families = v.gpu_idle_pct, v.kernel_family_pcts
    if idle is None or idle >= IDLE_BOUND_PCT:
        return []
    top = ", ".join(f"{fam} {pct_text(share)}" for fam, share in families[:3])
    dram_pct = v.ncu_dram_pct
    if dram_pct is None:
        roof = " Pass an ncu CSV (--ncu) to see how close they run to DRAM bandwidth."
    elif dram_pct >= DRAM_BOUND_PCT:
        roof = f" They run at {pct_text(dram_pct)} of peak DRAM throughput (ncu): bytes bound them; lower precision (FP8/FP4 weights) moves fewer."
    else:
        roof = f" They run at {pct_text(dram_pct)} of peak DRAM throughput (ncu): faster kernels (fusion, a persistent kernel) could still win."
    ev = {"gpu_idle_pct": idle, "kernel_families": families[:3], "ncu_dram_pct": dram_pct}
    return [Finding(name, "limit", "kernel-bound", f"The GPU is busy {pct_text(100 - idle)} of the decode steps' time: the kernels set the pace" + (f" (kernel time by family: {top})." if top else ".") + roof, f"GPU idle < {pct_text(IDLE_BOUND_PCT)} of decode-step time", "chart-kernels", ev)]


def measurement(name: str, v: Facts) -> list[Finding]:
    """How far the numbers shown can be trusted: the profiler's overhead, an unstable timing."""
    out = []
    over = v.profiler_overhead_pct
    if over is not None and over > PROFILER_OVERHEAD_PCT:
        ev = {"profiler_overhead_pct": over, "profiled_tpot_ms": v.profiled_tpot_ms, "tpot_ms": v.tpot_ms}
        cause = ("tracing each kernel a CUDA graph replays, --cuda-graph-trace=node" if v.decode_graph_launches
                 else "the tracer's cost on every launch")
        out.append(Finding(name, "warning", "profiler overhead", f"Under Nsight Systems each decode step took {ms_text(v.profiled_tpot_ms)} vs {ms_text(v.tpot_ms)} unprofiled (+{pct_text(over)}): the times shown come from the unprofiled run; the trace's own durations are inflated by this much ({cause}).", f"profiled TPOT > {pct_text(PROFILER_OVERHEAD_PCT)} above the unprofiled run's", "summary", ev, "profiler_overhead_pct"))
    ratio = v.ncu_over_nsys
    if ratio is not None:
        out.append(Finding(name, "info", "ncu and nsys durations", f"Nsight Compute timed the same kernels {times_text(ratio)} as long as this trace does (median over {v.ncu_matched_kernels} profiled kernels matched by name): ncu replays each kernel alone, once per counter pass, with the caches flushed before it and at the GPU's own clocks, so a small decode kernel that finds its weights in L2 when the steps run back to back takes longer; its per-kernel DRAM rates are those of cold runs, the trace's durations those of the real loop.", "ncu duration / the trace's median duration of the same kernel", "chart-bandwidth", {"ncu_over_nsys": ratio, "ncu_matched_kernels": v.ncu_matched_kernels}))
    spread = v.tpot_max_over_min
    if spread is not None and spread > UNSTABLE_SPREAD:
        out.append(Finding(name, "warning", "unstable timing", f"TPOT varied {times_text(spread)} between its fastest and slowest measured iteration ({v.timing_source}): host noise; compare medians with care or measure more iterations.", f"max / min of TPOT > {fixed(UNSTABLE_SPREAD, 1)}", "summary", {"tpot_spread": spread}, "tpot_ms"))
    return out


# What limits one run's decode.
LIMIT_RULES = (host_bound, host_syncs, pageable_host_copies, copy_bound, kernel_bound)
