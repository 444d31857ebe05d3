"""fp4: the decode MLP and lm_head with 4-bit (E2M1) weights, decode loop under one CUDA graph.

On Blackwell (sm_100+) with Transformer Engine: te.Linear under te.fp8_autocast with the
NVFP4BlockScaling recipe (FP4 tensor-core GEMMs). Otherwise (Hopper, or no TE: always, on our
machines) it falls back, with the reason in `fallbacks`, to weight-only FP4: E2M1 codes packed
two per byte, one E4M3 scale per 16-element block and one fp32 scale per tensor (NVFP4's
layout), dequantized in registers by the fused Triton kernels (fp4_fused_ln_linear_gelu_kernel,
fp4_gemv_kernel, fp4_lm_head_argmax_kernel): 0.5625 bytes per weight, 28% of bf16's.
DECODEPROF_KERNEL_MODE=plain|ws|tma2 picks the Triton kernels' loading scheme (default plain:
the pointer-load kernels, the fastest on the H100; ws/tma2 measured 1.4-2.8x slower: benchmarks/RESULTS.md).

Tolerance: checked teacher-forced by the harness. Measured on CPU with the Triton interpreter
(batch 3, hidden 96, vocab 200, bf16, 16 steps, seed 0): teacher-forced token agreement 0.71,
max |logit error| 0.51; one-step max_rel 0.22, mean_rel 0.16 (4-bit weights, random untrained
model: top-2 logits are close). Bound: agreement >= 0.6, max |logit error| <= 1.0. This target
trades accuracy for bytes; `active` reports the one-step error, the harness the agreement.
"""

from __future__ import annotations

import torch

from decodeprof_targets.harness import Tolerance
from decodeprof_targets.kernels.graph_loop import (GraphKernelLoop, choose_plan, describe_error, eager_step, kernel_mode,
                                     logits_error, probe_inputs, run_step)
from decodeprof_targets.workload import Config, Weights

TOLERANCE = Tolerance(min_token_agreement=0.6, max_abs_logit_err=1.0)


def build(cfg: Config, w: Weights) -> GraphKernelLoop:
    from decodeprof_targets.kernels.te_linear import TeLinears, te_status

    fallbacks: list[str] = []
    step, path, linears = None, "triton_weight_only_e2m1_block16", None
    te, why = te_status("nvfp4", torch.device(cfg.device))
    if te is not None:
        try:
            linears = TeLinears(te, w, cfg.batch, "nvfp4")
            step = eager_step(w, linears.linear)
            tok, state = probe_inputs(cfg, w)
            run_step(cfg, step, tok, state)
            path = "te_nvfp4_block_scaling"
        except Exception as exc:
            step, why = None, f"TE NVFP4 failed on a probe step ({type(exc).__name__}: {str(exc)[:200]})"
    active: list[str] = []
    if step is None:
        fallbacks.append(f"FP4 tensor-core path (TE NVFP4) not used: {why}; "
                         "using weight-only E2M1 with in-kernel dequantization")
        linears, notes, more = choose_plan(cfg, w, "fp4", kernel_mode())
        step = linears.step
        active += notes
        fallbacks += more
    active = [f"fp4_path={path}", *active, describe_error(logits_error(cfg, w, step))]
    return GraphKernelLoop(cfg, w, step, weight_bytes=linears.weight_bytes, active=active, fallbacks=fallbacks,
                             tolerance=TOLERANCE)
