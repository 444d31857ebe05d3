"""Skinny GEMM (GEMV) for decode: out[B, N] = x[B, K] @ W[N, K].T (+ bias), B <= 16.

`gemv_kernel` reads dense weights (the activation dtype, bf16 at the default shape); the FP8 and
FP4 twins in gemv_fp8.py / gemv_fp4.py share its body and this host launcher. One program per
BLOCK_N output columns; BLOCK_N shrinks until there are at least as many programs as SMs
(N=1024 -> 4 columns, 256 programs on an H100), so no split-K is needed at the decode shapes.

Bytes moved per call (the bandwidth formula the benchmark uses):
    weight bytes (N*K*2 bf16, N*K + 4N fp8, N*K/2 + N*K/16 + 4 fp4) + B*K*2 (x) + B*N*2 (out) + 2N (bias).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels import linear_tile
from decodeprof_targets.kernels.common import (DOT_BLOCK_K, DOT_MIN, MAX_BATCH, PLAIN, LaunchOptions, check_rows, check_tensor, ensure_allocator,
                                    num_sms, pick_block_k, pick_block_n, pick_vec_block_k, pick_vec_block_n, remember,
                                    tma_unsupported_reason)
from decodeprof_targets.kernels.quant import LinearWeight

ACT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


@triton.jit
def gemv_kernel(x_ptr, stride_x,  # activations [B, K], row stride
                w_ptr, s_ptr, g_ptr,  # weight [N, K] (scales unused for dense weights)
                bias_ptr, out_ptr, stride_out,  # bias [N] (if HAS_BIAS), out [B, N]
                N, K: tl.constexpr, B: tl.constexpr, HAS_BIAS: tl.constexpr,
                USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.gemv_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, K, B, 0, HAS_BIAS,
                          USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


def check_weight(name: str, weight: LinearWeight, device: torch.device, act_dtype: torch.dtype) -> None:
    n, k = weight.n, weight.k
    if weight.fmt == "bf16":
        check_tensor(f"{name}.w", weight.w, dtype=act_dtype, shape=(n, k), device=device)
    elif weight.fmt == "fp8":
        check_tensor(f"{name}.w", weight.w, dtype=torch.float8_e4m3fn, shape=(n, k), device=device)
        check_tensor(f"{name}.scale", weight.scale, dtype=torch.float32, shape=(n,), device=device)
    elif weight.fmt == "fp4":
        kp = -(-k // 16) * 16
        check_tensor(f"{name}.w", weight.w, dtype=torch.uint8, shape=(n, kp // 2), device=device)
        check_tensor(f"{name}.scale", weight.scale, dtype=torch.float8_e4m3fn, shape=(n, kp // 16), device=device)
        check_tensor(f"{name}.gscale", weight.gscale, dtype=torch.float32, shape=(1,), device=device)
    else:
        raise TargetError(f"{name} has unknown weight format {weight.fmt!r}")


def tma_layout_problem(weight: LinearWeight) -> str | None:
    """TMA needs a 16-byte aligned base and row pitch; None when this weight qualifies."""
    pitch = weight.w.shape[1] * weight.w.element_size()
    if pitch % 16:
        return f"weight row pitch {pitch} B is not a multiple of 16 B"
    if weight.w.data_ptr() % 16:
        return "weight base address is not 16-byte aligned"
    return None


def resolve_tma(opts: LaunchOptions, weight: LinearWeight) -> None:
    if not opts.use_tma:
        return
    reason = tma_unsupported_reason(weight.w.device) or tma_layout_problem(weight)
    if reason:
        raise TargetError(f"use_tma requested but unavailable: {reason}", "launch with LaunchOptions(use_tma=False)")
    ensure_allocator()


class KernelTiles(NamedTuple):
    """Everything a launch needs to know about its tiling."""

    block_n: int
    block_k: int
    num_warps: int
    acc_path: int
    num_stages: int
    block_b: int  # batch rows per tile (padded to a power of two; >= 16 for tl.dot)


def tiles(weight: LinearWeight, opts: LaunchOptions, role: str | None = None, batch: int = 1,
          act_dtype: torch.dtype = torch.bfloat16) -> KernelTiles:
    """The tiling for this weight and kernel role (k1/k2/k3; None: by N).
    TMA (accumulation paths other than 2): tiles of at most 256 along K (the box limit), BLOCK_N from pick_block_n, accumulation path 0 (unused).
    Pointer loads, accumulation paths 0/1: BLOCK_K = 32 lanes x 16 bytes (in storage units: elements, or
    bytes for packed FP4), BLOCK_N / warps / accumulation path from pick_vec_block_n.
    Accumulation path 2 (tl.dot): BLOCK_K in elements (default DOT_BLOCK_K), every dimension >= 16; it needs
    16-bit activations (fp32 would run as TF32), so fp32 activations fall back to accumulation path 1; it
    honours use_tma (at most 256 elements per TMA box dimension) and warp_specialize."""
    block_b = triton.next_power_of_2(batch)
    if opts.use_tma and opts.acc_path != 2:
        block_n = pick_block_n(weight.n, num_sms(weight.w.device))
        block_k = pick_block_k(weight.k, block_n, opts.num_warps, packed=weight.fmt == "fp4")
        return KernelTiles(block_n, block_k, opts.num_warps, 0, opts.num_stages, block_b)
    tile = pick_vec_block_n(weight.fmt, weight.n, num_sms(weight.w.device), opts, role)
    stages = tile.num_stages or opts.num_stages
    if tile.acc_path == 2 and act_dtype in (torch.bfloat16, torch.float16):
        block_k = tile.block_k or DOT_BLOCK_K
        block_k = max(min(block_k, triton.next_power_of_2(weight.k)), 2 * DOT_MIN)
        warps = tile.num_warps
        if opts.use_tma:  # the plan's pipeline depth and warps (the table's are for pointer loads)
            block_k = min(block_k, 256 if weight.fmt != "fp4" else 512)  # box: <= 256 bytes-or-elements
            stages, warps = opts.num_stages, opts.num_warps
        return KernelTiles(max(tile.block_n, DOT_MIN), block_k, warps, 2, stages, max(block_b, DOT_MIN))
    acc_path = 1 if tile.acc_path == 2 else tile.acc_path
    unit = 16 // weight.w.element_size()
    block_k = pick_vec_block_k(weight.w.shape[1], unit)
    return KernelTiles(tile.block_n, block_k, tile.num_warps, acc_path, stages, block_b)


def scale_args(weight: LinearWeight) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel scale pointers; dense weights pass the weight itself (never read)."""
    return (weight.scale if weight.scale is not None else weight.w,
            weight.gscale if weight.gscale is not None else weight.w)


def launch_gemv(kernel, fmt: str, x: torch.Tensor, weight: LinearWeight, bias: torch.Tensor | None,
                out: torch.Tensor | None, opts: LaunchOptions) -> torch.Tensor:
    """Check arguments, pick tiles, launch one GEMV kernel; returns out [B, N]."""
    if weight.fmt != fmt:
        raise TargetError(f"this kernel reads {fmt} weights, got a {weight.fmt} LinearWeight")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise TargetError(f"x must be a 2-D tensor [B, K], got {getattr(x, 'shape', type(x))}")
    b, k = x.shape
    if not 1 <= b <= MAX_BATCH:
        raise TargetError(f"batch {b} outside 1..{MAX_BATCH}: these are skinny-GEMM kernels", "use torch matmul for large batches")
    check_tensor("x", x, dtype=ACT_DTYPES, device=x.device, contiguous=False)
    check_rows("x", x, b, weight.k)
    check_weight("weight", weight, x.device, x.dtype if fmt == "bf16" else weight.w.dtype)
    if bias is not None:
        check_tensor("bias", bias, dtype=x.dtype, shape=(weight.n,), device=x.device)
    if out is None:
        out = torch.empty(b, weight.n, dtype=x.dtype, device=x.device)
    check_tensor("out", out, dtype=x.dtype, device=x.device, contiguous=False)
    check_rows("out", out, b, weight.n)
    resolve_tma(opts, weight)
    t = tiles(weight, opts, batch=b, act_dtype=x.dtype)
    s, g = scale_args(weight)
    grid = (triton.cdiv(weight.n, t.block_n),)
    compiled = kernel[grid](x, x.stride(0), weight.w, s, g, bias if bias is not None else x, out, out.stride(0), weight.n,
                 K=k, B=b, HAS_BIAS=bias is not None, USE_TMA=opts.use_tma, WS=opts.warp_specialize,
                 NUM_STAGES=t.num_stages, BLOCK_B=t.block_b, BLOCK_N=t.block_n, BLOCK_K=t.block_k,
                 ACC_PATH=t.acc_path, num_warps=t.num_warps)
    remember(kernel, opts, compiled)
    return out


def gemv(x: torch.Tensor, weight: LinearWeight, bias: torch.Tensor | None = None, out: torch.Tensor | None = None,
         opts: LaunchOptions = PLAIN) -> torch.Tensor:
    """Dense-weight GEMV (weight.fmt == "bf16": the activation dtype)."""
    return launch_gemv(gemv_kernel, "bf16", x, weight, bias, out, opts)


def gemv_bytes(weight: LinearWeight, batch: int, act_bytes: int = 2, bias: bool = True) -> int:
    """Bytes one call must move: the weight (and scales) once, x in, out, bias."""
    return weight.nbytes + batch * weight.k * act_bytes + batch * weight.n * act_bytes + (weight.n * act_bytes if bias else 0)
