"""Sweep the pointer-path tiling (BLOCK_N x num_warps) of the decode GEMV kernels on the GPU, in
one process: each candidate is checked against torch (dequantized weights) and timed in a CUDA
graph of `calls` launches (median of `reps`; GB/s from gemv_bytes). Prints a table, the winners
as a DECODEPROF_TILES string (also written to --out), and whole decode steps with the winners.

    python benchmarks/tune_gemv.py [--out tiles.txt] [--calls 20] [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.kernels_gpu import close, time_graph  # noqa: E402
from targets import workload  # noqa: E402
from targets.kernels.common import TILES_ENV, LaunchOptions  # noqa: E402
from targets.kernels.fused_decode import DecodeKernels, KernelPlan, linear_bias, lm_head_argmax, make_workspace  # noqa: E402
from targets.kernels.gemv import gemv_bytes  # noqa: E402
from targets.kernels.quant import make_linear_weight  # noqa: E402

CANDIDATES = {
    1024: [(2, 2), (4, 4), (4, 2), (8, 4), (8, 8), (2, 1), (4, 1)],
    8192: [(4, 4), (8, 4), (8, 8), (16, 8), (16, 4), (32, 8), (4, 2), (8, 2)],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    cfg = workload.Config()
    w = workload.make_weights(cfg)
    b, h = cfg.batch, cfg.hidden
    x = torch.randn(b, h, device="cuda").bfloat16()
    best: dict[str, tuple[float, int, int]] = {}
    print(f"device: {torch.cuda.get_device_name()}  batch {b} hidden {h} vocab {cfg.vocab}")
    for label, wt, bias in (("linear", w.decode_w2, w.decode_b2), ("lm_head", w.lm_head, None)):
        base = statistics.median(time_graph(lambda: F.linear(x, wt, bias), args.calls, args.reps))
        print(f"{label:8} torch bf16          {base * 1e6:7.2f} us")
        n = wt.shape[0]
        for fmt in ("bf16", "fp8", "fp4"):
            lw = make_linear_weight(wt, fmt)
            ref = x.float() @ lw.dequantized().T + (bias.float() if bias is not None else 0)
            nbytes = gemv_bytes(lw, b, bias=bias is not None)
            for bn, nw in CANDIDATES[n]:
                opts = LaunchOptions(block_n=bn, num_warps=nw)
                try:
                    if bias is not None:
                        out = torch.empty(b, n, device="cuda", dtype=torch.bfloat16)
                        linear_bias(x, lw, bias, out, opts)
                        ok = close(out, ref)
                        fn = lambda: linear_bias(x, lw, bias, out, opts)  # noqa: E731
                    else:
                        ws, tok = make_workspace(lw, b, opts), torch.empty(b, dtype=torch.int64, device="cuda")
                        logits = torch.empty(b, n, device="cuda", dtype=torch.bfloat16)
                        lm_head_argmax(x, lw, tok, logits, ws, opts)
                        ok = close(logits, ref) and torch.equal(tok, torch.argmax(logits, -1))
                        fn = lambda: lm_head_argmax(x, lw, tok, None, ws, opts)  # noqa: E731
                    t = statistics.median(time_graph(fn, args.calls, args.reps))
                    print(f"{label:8} {fmt:4} BN={bn:2} warps={nw}  {t * 1e6:7.2f} us  {nbytes / t / 1e9:6.0f} GB/s  "
                          f"x{base / t:.2f} vs torch bf16  {'ok' if ok else 'WRONG'}")
                    key = f"{fmt}:{n}"
                    if ok and (key not in best or t < best[key][0]):
                        best[key] = (t, bn, nw)
                except Exception as exc:
                    print(f"{label:8} {fmt:4} BN={bn:2} warps={nw}  FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
    tiles = ",".join(f"{k}={bn}x{nw}" for k, (_, bn, nw) in best.items())
    print(f"winners: {TILES_ENV}={tiles}")
    if args.out:
        Path(args.out).write_text(tiles + "\n")
    os.environ[TILES_ENV] = tiles
    tok = torch.zeros(b, dtype=torch.int64, device="cuda")
    state = torch.randn(b, h, device="cuda").bfloat16()
    base = statistics.median(time_graph(lambda: workload.decode_step(w, tok, state), args.calls, args.reps))
    print(f"step torch bf16 (stock kernels) {base * 1e6:7.2f} us")
    for fmt in ("bf16", "fp8", "fp4"):
        for plan, opts in (("plain", LaunchOptions()), ("tma2", LaunchOptions(use_tma=True, num_stages=2))):
            dk = DecodeKernels(w, fmt, b, KernelPlan(opts, opts, opts))
            out = torch.empty_like(tok)
            nbytes = dk.weight_bytes + b * h * 2 + 2 * b * h * 2
            t = statistics.median(time_graph(lambda: dk.step(tok, state, out), args.calls, args.reps))
            print(f"step {fmt:4} {plan:5} {t * 1e6:7.2f} us  {nbytes / t / 1e9:6.0f} GB/s  x{base / t:.2f} vs torch bf16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
