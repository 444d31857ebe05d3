"""warp_specialized: the decode step as three fused Triton kernels (bf16) under one CUDA graph:
(1) embed + state + LayerNorm + Linear + GELU, (2) Linear, (3) lm_head with the argmax fused in.
On Hopper the weight tiles come through TMA descriptors into tensor-core (tl.dot) tiles, and the
K loops of kernels 1 and 2 are warp-specialized (`tl.range(..., warp_specialize=True)`, 2 stages:
producer warps issue the TMA copies, consumer warps run the MMAs); kernel 3 runs the same TMA
pipeline without warp specialization (Triton 3.6 miscompiled it: see decodeprof_targets/kernels/graph_loop.py).
Elsewhere, or if that plan fails its probe, plain pointer loads (reason in `fallbacks`).

Tolerance: tokens must equal the eager reference (1.0). Logits differ from cuBLAS's only by the
fp32 summation order, i.e. by a bf16 rounding step: on CPU (Triton interpreter, batch 3, hidden
96, vocab 200, 16 steps) the last logits were within 0.03 with all tokens equal; the bound below
(0.125 = 2 bf16 ulps at |logit| in [4, 8)) leaves room for the GPU's different summation order.
"""

from __future__ import annotations

from decodeprof_targets.harness import Tolerance
from decodeprof_targets.kernels.graph_loop import GraphKernelLoop, choose_plan
from decodeprof_targets.workload import Config, Weights

TOLERANCE = Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.125)


def build(cfg: Config, w: Weights) -> GraphKernelLoop:
    kernels, active, fallbacks = choose_plan(cfg, w, "bf16", "ws")
    return GraphKernelLoop(cfg, w, kernels.step, weight_bytes=kernels.weight_bytes, active=active, fallbacks=fallbacks, tolerance=TOLERANCE)
