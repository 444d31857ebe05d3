"""Weight-only FP4 GEMV: E2M1 weights packed two per byte ([N, K_pad/2] uint8, low nibble first),
one E4M3 scale per 16-element block ([N, K_pad/16]) and one fp32 scale per tensor (NVFP4's
layout), dequantized on the fly in registers (no FP4 tensor cores needed: works on Hopper).
Reads N*K/2 + N*K/16 + 4 weight bytes: 28% of bf16's. The packed tile is split into even
(low nibble) and odd (high nibble) elements, each multiplied by the matching strided x values,
so no interleave shuffle is needed."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from decodeprof_targets.kernels import linear_tile
from decodeprof_targets.kernels.common import PLAIN, LaunchOptions
from decodeprof_targets.kernels.gemv import launch_gemv
from decodeprof_targets.kernels.quant import LinearWeight


@triton.jit
def fp4_gemv_kernel(x_ptr, stride_x,  # activations [B, K]
                    w_ptr, s_ptr, g_ptr,  # packed E2M1 [N, K_pad/2] u8, block scales [N, K_pad/16] e4m3, [1] fp32
                    bias_ptr, out_ptr, stride_out, N, K: tl.constexpr, B: tl.constexpr, HAS_BIAS: tl.constexpr,
                    USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.gemv_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, K, B, 2, HAS_BIAS,
                          USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


def gemv_fp4(x: torch.Tensor, weight: LinearWeight, bias: torch.Tensor | None = None,
             out: torch.Tensor | None = None, opts: LaunchOptions = PLAIN) -> torch.Tensor:
    """out[B, N] = x @ dequantize_fp4(weight).T + bias, for weight = make_linear_weight(W, "fp4")."""
    return launch_gemv(fp4_gemv_kernel, "fp4", x, weight, bias, out, opts)
