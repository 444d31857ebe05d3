"""double_buffer_tma: the same three fused Triton kernels as warp_specialized, with every weight
tile streamed by TMA (tl.make_tensor_descriptor -> UTMALDG bulk tensor copies into shared memory)
and a 2-stage software pipeline on the K loop (num_stages=2: the copy of tile i+1 is in flight
while tile i goes through the tensor cores (tl.dot); mbarriers signal completion). No warp
specialization, so the difference to warp_specialized is that one feature. benchmarks/kernels_gpu.py greps the SASS
for UTMALDG to prove TMA is used. Falls back to pointer loads (reason in `fallbacks`) below Hopper.

Tolerance: as warp_specialized (tokens equal; last logits within 0.125).
"""

from __future__ import annotations

from decodeprof_targets.harness import Tolerance
from decodeprof_targets.kernels.graph_loop import GraphKernelLoop, choose_plan
from decodeprof_targets.workload import Config, Weights

TOLERANCE = Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.125)


def build(cfg: Config, w: Weights) -> GraphKernelLoop:
    kernels, active, fallbacks = choose_plan(cfg, w, "bf16", "tma2")
    return GraphKernelLoop(cfg, w, kernels.step, weight_bytes=kernels.weight_bytes, active=active, fallbacks=fallbacks, tolerance=TOLERANCE)
