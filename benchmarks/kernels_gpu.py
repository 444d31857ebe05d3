"""GPU check of every decodeprof Triton kernel: correctness at awkward sizes, a side-by-side
benchmark against the bf16 torch path, and SASS proof that the TMA plan uses TMA.

    python benchmarks/kernels_gpu.py [--reps 7] [--calls 20]

Timing: each measurement captures `calls` back-to-back launches in one CUDA graph and replays it;
time per call = replay time / calls (launch overhead amortised like the targets' decode graph),
repeated `reps` times: median, and spread as min..max.
Bandwidth: GB/s = bytes / time, bytes = the weight in its format (N*K*2 bf16; N*K + 4N fp8;
N*K/2 + N*K/16 + 4 fp4) + B*K*2 activations in + B*N*2 out + 2N bias (gemv_bytes); for a whole
decode step, DecodeKernels.weight_bytes + 2*B*h (state) + B*h*2 (gathered embedding rows).
Prints one summary at the end; exits 1 if any correctness check failed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from decodeprof_targets import workload  # noqa: E402
from decodeprof_targets.kernels.common import LaunchOptions  # noqa: E402
from decodeprof_targets.kernels.fused_decode import (DecodeKernels, KernelPlan, linear_bias, lm_head_argmax,  # noqa: E402
                                          make_workspace)
from decodeprof_targets.kernels.gemv import gemv_bytes, tma_layout_problem  # noqa: E402
from decodeprof_targets.kernels.quant import make_linear_weight  # noqa: E402

PLANS = {
    "plain": LaunchOptions(num_stages=3),
    "tma2": LaunchOptions(use_tma=True, num_stages=2),
    "tma_ws": LaunchOptions(use_tma=True, warp_specialize=True, num_stages=2),
}
FORMATS = ("bf16", "fp8", "fp4")
failures: list[str] = []
summary: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        failures.append(f"{name} {detail}")


def time_graph(fn, calls: int, reps: int) -> list[float]:
    """Seconds per call of fn, one value per rep (CUDA graph of `calls` launches)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    g.replay()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) / 1e3 / calls)
    return out


def fmt_time(ts: list[float], nbytes: int) -> str:
    med = statistics.median(ts)
    return (f"{med * 1e6:8.2f} us (min {min(ts) * 1e6:.2f}, max {max(ts) * 1e6:.2f})  "
            f"{nbytes / med / 1e9:7.0f} GB/s  [{nbytes / 1e6:.2f} MB]")


def close(got: torch.Tensor, want: torch.Tensor, ulps: float = 2.0) -> bool:
    return bool(((got.float() - want.float()).abs() <= ulps * 2**-7 * want.float().abs() + 0.03).all())


def correctness() -> None:
    print("== correctness (awkward sizes, every format x plan) ==")
    for b, k, n in ((3, 96, 200), (1, 40, 72), (16, 1024, 1000), (4, 1024, 8192)):
        g = torch.Generator().manual_seed(b * k + n)
        x = torch.randn(b, k, generator=g).cuda().bfloat16()
        w = (torch.randn(n, k, generator=g) * k**-0.5).cuda().bfloat16()
        bias = (torch.randn(n, generator=g) * 0.1).cuda().bfloat16()
        for fmt in FORMATS:
            lw = make_linear_weight(w, fmt)
            ref = (x.float() @ lw.dequantized().T + bias.float())
            for plan, opts in PLANS.items():
                name = f"gemv {fmt:4} {plan:6} B={b} K={k} N={n}"
                if opts.use_tma and tma_layout_problem(lw):
                    print(f"  skip {name} (TMA refuses this weight: {tma_layout_problem(lw)})")
                    continue
                try:
                    out = linear_bias(x, lw, bias, opts=opts)
                    torch.cuda.synchronize()
                    check(name, close(out, ref), f"max err {(out.float() - ref).abs().max().item():.3g}")
                except Exception as exc:
                    check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                if fmt == "bf16" or plan == "plain":
                    name = f"lm_head_argmax {fmt:4} {plan:6} B={b} K={k} N={n}"
                    try:
                        logits = torch.empty(b, n, dtype=torch.bfloat16, device="cuda")
                        ws = make_workspace(lw, b, opts)
                        toks = [lm_head_argmax(x, lw, None, logits, ws, opts, fused).clone() for fused in (True, False)]
                        for _ in range(200):  # the arrival counter must survive many launches
                            lm_head_argmax(x, lw, toks[0], None, ws, opts, True)
                        torch.cuda.synchronize()
                        ok = (torch.equal(toks[0], toks[1]) and torch.equal(toks[1], torch.argmax(logits, -1))
                              and close(logits, ref - bias.float()) and ws.count.item() == 0)
                        check(name, ok)
                    except Exception as exc:
                        check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    cfg = workload.Config(batch=3, hidden=96, vocab=200)
    w = workload.make_weights(cfg)
    for fmt in FORMATS:
        for plan, opts in PLANS.items():
            name = f"decode step {fmt:4} {plan:6} (tokens vs the same-weights eager step)"
            try:
                dk = DecodeKernels(w, fmt, 3, KernelPlan(opts, opts, opts))
                import dataclasses

                ref_w = w if fmt == "bf16" else dataclasses.replace(w, **{
                    nm: make_linear_weight(getattr(w, nm), fmt).dequantized().bfloat16()
                    for nm in ("decode_w1", "decode_w2", "lm_head")})
                tok = torch.tensor([0, 7, 199], device="cuda")
                state = torch.randn(3, 96, device="cuda").bfloat16()
                rt, rs, rl = workload.decode_step(ref_w, tok, state)
                st, out = state.clone(), torch.empty_like(tok)
                logits = torch.empty_like(rl)
                dk.step(tok, st, out, logits)
                torch.cuda.synchronize()
                check(name, close(st, rs) and close(logits, rl) and torch.equal(out, torch.argmax(logits, -1)),
                      f"tokens equal eager: {torch.equal(out, rt)}")
            except Exception as exc:
                check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")


def benchmark(calls: int, reps: int) -> None:
    cfg = workload.Config()
    w = workload.make_weights(cfg)
    b, h, v = cfg.batch, cfg.hidden, cfg.vocab
    x = torch.randn(b, h, device="cuda").bfloat16()
    print(f"\n== benchmark (batch {b}, hidden {h}, vocab {v}; per call, CUDA graph of {calls}) ==")
    for label, wt, bias in (("linear h->h", w.decode_w2, w.decode_b2), ("lm_head h->V", w.lm_head, None)):
        nbytes = gemv_bytes(make_linear_weight(wt, "bf16"), b, bias=bias is not None)
        ts = time_graph(lambda: F.linear(x, wt, bias), calls, reps)
        base = statistics.median(ts)
        line = f"{label:13} torch bf16 (cuBLAS)        {fmt_time(ts, nbytes)}"
        print(line)
        summary.append(line)
        for fmt in FORMATS:
            lw = make_linear_weight(wt, fmt)
            nbytes = gemv_bytes(lw, b, bias=bias is not None)
            for plan, opts in PLANS.items():
                try:
                    if bias is not None:
                        out = torch.empty(b, h, device="cuda", dtype=torch.bfloat16)
                        fn = lambda: linear_bias(x, lw, bias, out, opts)  # noqa: E731
                    else:
                        ws, tok = make_workspace(lw, b, opts), torch.empty(b, dtype=torch.int64, device="cuda")
                        fn = lambda: lm_head_argmax(x, lw, tok, None, ws, opts)  # noqa: E731
                    ts = time_graph(fn, calls, reps)
                    line = (f"{label:13} triton {fmt:4} {plan:6}        {fmt_time(ts, nbytes)}  "
                            f"x{base / statistics.median(ts):.2f} vs torch bf16")
                except Exception as exc:
                    line = f"{label:13} triton {fmt:4} {plan:6}        FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                print(line)
                summary.append(line)
    # whole decode step
    tok = torch.zeros(b, dtype=torch.int64, device="cuda")
    state = torch.randn(b, h, device="cuda").bfloat16()
    step_bytes = workload.weight_bytes_per_step(w, b) + 2 * b * h * 2
    ts = time_graph(lambda: workload.decode_step(w, tok, state), calls, reps)
    base = statistics.median(ts)
    line = f"decode step   torch bf16 (stock kernels)  {fmt_time(ts, step_bytes)}"
    print(line)
    summary.append(line)
    for fmt in FORMATS:
        for plan, opts in PLANS.items():
            try:
                dk = DecodeKernels(w, fmt, b, KernelPlan(opts, opts, opts))
                out = torch.empty_like(tok)
                nbytes = dk.weight_bytes + b * h * 2 + 2 * b * h * 2
                ts = time_graph(lambda: dk.step(tok, state, out), calls, reps)
                line = (f"decode step   triton {fmt:4} {plan:6}        {fmt_time(ts, nbytes)}  "
                        f"x{base / statistics.median(ts):.2f} vs torch bf16")
            except Exception as exc:
                line = f"decode step   triton {fmt:4} {plan:6}        FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            print(line)
            summary.append(line)


def sass_proof() -> None:
    """Grep the SASS of every kernel compiled with a TMA plan (PTX when nvdisasm is missing) for
    UTMALDG / cp.async.bulk.tensor; shared memory size shows the stage buffers."""
    print("\n== TMA proof (SASS of the compiled kernels) ==")
    from decodeprof_targets.kernels.common import COMPILED

    tma = {name: c for name, c in COMPILED.items() if "[tma" in name}
    if not tma:
        check("TMA kernels compiled", False, "none found: did every TMA plan fail?")
    for name, compiled in sorted(tma.items()):
        asm = getattr(compiled, "asm", {})
        try:
            text = asm["sass"]
        except Exception as exc:  # nvdisasm missing: fall back to the PTX
            text = asm.get("ptx", "")
            print(f"  (no SASS for {name}: {type(exc).__name__}; grepping PTX)")
        hits = {op: text.count(op) for op in ("UTMALDG", "cp.async.bulk.tensor", "SYNCS", "mbarrier")}
        shared = getattr(getattr(compiled, "metadata", None), "shared", None)
        check(f"TMA in {name}", hits["UTMALDG"] > 0 or hits["cp.async.bulk.tensor"] > 0, str(hits))
        summary.append(f"{name}: {hits}, shared memory {shared} B")
    print("  (by hand: cuobjdump --dump-sass ~/.triton/cache/*/<kernel>.cubin | grep -c UTMALDG)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed repeats (median and min..max reported)")
    parser.add_argument("--calls", type=int, default=20, help="launches per CUDA graph replay")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: needs a CUDA GPU", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()} (sm_{''.join(map(str, torch.cuda.get_device_capability()))}), "
          f"torch {torch.__version__}")
    correctness()
    benchmark(args.calls, args.reps)
    sass_proof()
    print("\n== summary ==")
    for line in summary:
        print(line)
    print(f"correctness: {'all passed' if not failures else f'{len(failures)} FAILED'}")
    for f in failures:
        print(f"  FAILED {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
