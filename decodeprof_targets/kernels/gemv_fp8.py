"""Weight-only FP8 GEMV: E4M3 weights [N, K] with one fp32 scale per output channel, bf16
activations, fp32 accumulation; the scale multiplies the accumulator once after the K loop.
Reads N*K + 4N weight bytes: half of bf16's. Shares its body and launcher with gemv.py."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from decodeprof_targets.kernels import linear_tile
from decodeprof_targets.kernels.common import PLAIN, LaunchOptions
from decodeprof_targets.kernels.gemv import launch_gemv
from decodeprof_targets.kernels.quant import LinearWeight


@triton.jit
def fp8_gemv_kernel(x_ptr, stride_x,  # activations [B, K]
                    w_ptr, s_ptr, g_ptr,  # E4M3 weight [N, K], per-channel scale [N] fp32, (unused)
                    bias_ptr, out_ptr, stride_out, N, K: tl.constexpr, B: tl.constexpr, HAS_BIAS: tl.constexpr,
                    USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.gemv_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, K, B, 1, HAS_BIAS,
                          USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


def gemv_fp8(x: torch.Tensor, weight: LinearWeight, bias: torch.Tensor | None = None,
             out: torch.Tensor | None = None, opts: LaunchOptions = PLAIN) -> torch.Tensor:
    """out[B, N] = x @ (q * scale).T + bias, for weight = make_linear_weight(W, "fp8")."""
    return launch_gemv(fp8_gemv_kernel, "fp8", x, weight, bias, out, opts)
