"""Sweep the pointer-path tiling (BLOCK_N x num_warps x accumulation path) of the three decode kernels per
format and role on the GPU, in one process: each candidate is checked against torch (dequantized
weights) and timed in a CUDA graph of `calls` launches (median of `reps`; GB/s from the bytes it
must read). Roles: k1 = embed+LayerNorm+Linear+GELU (N=h), k2 = Linear (N=h), k3 = lm_head+argmax
(N=V). Variant 0 = x through shared memory (the earlier tile), 1 = registers only (linear_acc_registers),
2 = tensor cores (linear_acc_dot; also with block_k and num_stages). Whole steps run with the winners
and with the tensor-core tiles on TMA loads, with and without warp specialization.
Prints a table, the winners as a DECODEPROF_TILES string (also written to --out), and whole decode
steps (CUDA graph) with the winners.

    python benchmarks/tune_gemv.py [--out tiles.txt] [--calls 20] [--reps 7] [--acc-paths 0,1,2] [--budget-s S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.kernels_gpu import close, time_graph  # noqa: E402
from decodeprof_targets import workload  # noqa: E402
from decodeprof_targets.kernels.common import TILES_ENV, VEC_TILES, LaunchOptions, Tile  # noqa: E402
from decodeprof_targets.kernels.fused_decode import (DecodeKernels, KernelPlan, linear_bias, lm_head_argmax,  # noqa: E402
                                          ln_linear_gelu, make_workspace)
from decodeprof_targets.kernels.gemv import gemv_bytes  # noqa: E402
from decodeprof_targets.kernels.quant import make_linear_weight  # noqa: E402

CANDIDATES = {  # Tile(block_n, num_warps, acc_path[, block_k, num_stages])
    "k1": [Tile(2, 1, 1), Tile(4, 1, 1), Tile(4, 2, 1), Tile(4, 4, 1), Tile(8, 4, 1), Tile(8, 8, 1), Tile(16, 8, 1),
           Tile(16, 4, 2, 256, 2), Tile(16, 4, 2, 256, 3), Tile(16, 4, 2, 128, 4), Tile(16, 2, 2, 256, 3),
           Tile(16, 8, 2, 256, 3), Tile(16, 4, 2, 512, 2), Tile(32, 4, 2, 256, 3), Tile(16, 4, 2, 1024, 1)],
    "k3": [Tile(4, 2, 1), Tile(8, 2, 1), Tile(8, 4, 1), Tile(8, 8, 1), Tile(16, 4, 1), Tile(16, 8, 1), Tile(32, 8, 1),
           Tile(16, 4, 2, 256, 3), Tile(32, 4, 2, 256, 3), Tile(64, 4, 2, 256, 3), Tile(32, 8, 2, 256, 3),
           Tile(64, 8, 2, 256, 3), Tile(32, 4, 2, 128, 4), Tile(64, 4, 2, 128, 4), Tile(32, 4, 2, 512, 2),
           Tile(128, 8, 2, 256, 3), Tile(16, 4, 2, 1024, 1), Tile(32, 4, 2, 1024, 1)],
}
CANDIDATES["k2"] = CANDIDATES["k1"]


def opts_for(tile: Tile) -> LaunchOptions:
    return LaunchOptions(block_n=tile.block_n, num_warps=tile.num_warps, acc_path=tile.acc_path,
                         block_k=tile.block_k, num_stages=tile.num_stages or 3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop sweeping after this many seconds")
    ap.add_argument("--acc-paths", default="0,1,2", help="accumulation paths to sweep (the current default always runs)")
    ap.add_argument("--formats", default="bf16,fp8,fp4", help="weight formats to sweep")
    args = ap.parse_args()
    t_start = time.time()
    cfg = workload.Config()
    w = workload.make_weights(cfg)
    b, h = cfg.batch, cfg.hidden
    x = torch.randn(b, h, device="cuda").bfloat16()
    tok = torch.randint(0, cfg.vocab, (b,), device="cuda")
    state = torch.randn(b, h, device="cuda").bfloat16()
    acc_paths = {int(v) for v in args.acc_paths.split(",")}
    best: dict[str, tuple[float, Tile]] = {}
    print(f"device: {torch.cuda.get_device_name()}  batch {b} hidden {h} vocab {cfg.vocab}")
    with torch.no_grad():
        xln = F.layer_norm(F.embedding(tok, w.embed) + state, (h,), w.decode_ln_w, w.decode_ln_b)
    base = {
        "k1": statistics.median(time_graph(lambda: F.gelu(F.linear(F.layer_norm(F.embedding(tok, w.embed) + state, (h,), w.decode_ln_w, w.decode_ln_b), w.decode_w1, w.decode_b1)), args.calls, args.reps)),
        "k2": statistics.median(time_graph(lambda: F.linear(x, w.decode_w2, w.decode_b2), args.calls, args.reps)),
        "k3": statistics.median(time_graph(lambda: torch.argmax(F.linear(x, w.lm_head), -1), args.calls, args.reps)),
    }
    for r, t in base.items():
        print(f"{r} torch bf16 (stock ops)  {t * 1e6:7.2f} us")
    for fmt in args.formats.split(","):
        for role, wt, bias in (("k1", w.decode_w1, w.decode_b1), ("k2", w.decode_w2, w.decode_b2), ("k3", w.lm_head, None)):
            lw = make_linear_weight(wt, fmt)
            n = wt.shape[0]
            if role == "k1":
                ref = F.gelu((xln.float() @ lw.dequantized().T + bias.float()).bfloat16().float())
            else:
                ref = x.float() @ lw.dequantized().T + (bias.float() if bias is not None else 0)
            nbytes = gemv_bytes(lw, b, bias=bias is not None)
            cands = [VEC_TILES[(fmt, role)]] + [c for c in CANDIDATES[role] if c.acc_path in acc_paths]
            for tile in cands:
                if time.time() - t_start > args.budget_s:
                    print("budget reached: sweep stopped")
                    break
                opts = opts_for(tile)
                label = f"{role} {fmt:4} {tile.spec():14}"
                try:
                    if role == "k1":
                        out = torch.empty(b, n, device="cuda", dtype=torch.bfloat16)
                        ln_linear_gelu(tok, w.embed, state, w.decode_ln_w, w.decode_ln_b, lw, bias, out, opts)
                        ok = close(out, ref, ulps=4.0)
                        fn = lambda: ln_linear_gelu(tok, w.embed, state, w.decode_ln_w, w.decode_ln_b, lw, bias, out, opts)  # noqa: E731
                    elif role == "k2":
                        out = torch.empty(b, n, device="cuda", dtype=torch.bfloat16)
                        linear_bias(x, lw, bias, out, opts)
                        ok = close(out, ref)
                        fn = lambda: linear_bias(x, lw, bias, out, opts)  # noqa: E731
                    else:
                        ws, tk = make_workspace(lw, b, opts), torch.empty(b, dtype=torch.int64, device="cuda")
                        logits = torch.empty(b, n, device="cuda", dtype=torch.bfloat16)
                        lm_head_argmax(x, lw, tk, logits, ws, opts)
                        ok = close(logits, ref) and torch.equal(tk, torch.argmax(logits, -1))
                        fn = lambda: lm_head_argmax(x, lw, tk, None, ws, opts)  # noqa: E731
                    ts = time_graph(fn, args.calls, args.reps)
                    t = statistics.median(ts)
                    print(f"{label}  {t * 1e6:7.2f} us (min {min(ts) * 1e6:.2f} max {max(ts) * 1e6:.2f})"
                          f"  {nbytes / t / 1e9:6.0f} GB/s  x{base[role] / t:.2f} vs torch bf16  {'ok' if ok else 'WRONG'}", flush=True)
                    key = f"{fmt}:{role}"
                    if ok and (key not in best or t < best[key][0]):
                        best[key] = (t, tile)
                except Exception as exc:
                    msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
                    print(f"{label}  FAILED {type(exc).__name__}: {msg}", flush=True)
    tiles = ",".join(f"{k}={tile.spec()}" for k, (_, tile) in best.items())
    print(f"winners: {TILES_ENV}={tiles}")
    if args.out:
        Path(args.out).write_text(tiles + "\n")
    os.environ[TILES_ENV] = tiles
    sb = statistics.median(time_graph(lambda: workload.decode_step(w, tok, state), args.calls, args.reps))
    print(f"step torch bf16 (stock kernels) {sb * 1e6:7.2f} us")
    step_plans = {"winners": KernelPlan(),
                  "dot+tma2": KernelPlan(*[LaunchOptions(use_tma=True, num_stages=2, acc_path=2)] * 3),
                  "dot+tma+ws": KernelPlan(*[LaunchOptions(use_tma=True, warp_specialize=True, num_stages=2, acc_path=2)] * 3)}
    for fmt in ("bf16", "fp8", "fp4"):
        for name, plan in step_plans.items():
            try:
                dk = DecodeKernels(w, fmt, b, plan)
                out = torch.empty_like(tok)
                st = state.clone()
                nbytes = dk.weight_bytes + b * h * 2 + 2 * b * h * 2
                ts = time_graph(lambda: dk.step(tok, st, out), args.calls, args.reps)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
                print(f"step {fmt:4} {name:10} FAILED {type(exc).__name__}: {msg}", flush=True)
                continue
            t = statistics.median(ts)
            print(f"step {fmt:4} {name:10} {t * 1e6:7.2f} us (min {min(ts) * 1e6:.2f} max {max(ts) * 1e6:.2f})  "
                  f"{nbytes / t / 1e9:6.0f} GB/s  x{sb / t:.2f} vs torch bf16", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
