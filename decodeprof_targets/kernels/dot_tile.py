"""The tensor-core tile (accumulation path 2 of linear_tile.linear_acc): activations transposed as the MMA's
B operand, and the K loop over weight tiles as its A operand (pointer or TMA loads)."""

from __future__ import annotations

import triton
import triton.language as tl

from decodeprof_targets.kernels.formats import FMT_FP4, FMT_FP8
from decodeprof_targets.kernels.numerics import dot_acc, round_to


@triton.jit
def x_tile_t(ks, rows, x_ptr, stride_x, tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
             K: tl.constexpr, B: tl.constexpr, X_LN: tl.constexpr):
    """Activations transposed, [len(ks), BLOCK_B] in the activation dtype (zero outside K and B):
    the MMA's B operand. With X_LN: LayerNorm(embed[tok] + state) from the row statistics.
    Activations are read with .cg (from L2): the persistent kernel's other programs write them."""
    act = x_ptr.dtype.element_ty
    km = ks < K
    m2 = km[:, None] & (rows < B)[None, :]
    if X_LN:
        e = tl.load(emb_ptr + tok[None, :] * K + ks[:, None], mask=m2, other=0.0).to(tl.float32)
        s = tl.load(x_ptr + rows[None, :] * stride_x + ks[:, None], mask=m2, other=0.0, cache_modifier=".cg").to(tl.float32)
        x = round_to(e + s, act)
        lw = tl.load(lnw_ptr + ks, mask=km, other=0.0).to(tl.float32)
        lb = tl.load(lnb_ptr + ks, mask=km, other=0.0).to(tl.float32)
        xn = (x - mean[None, :]) * rstd[None, :] * lw[:, None] + lb[:, None]
        x = tl.where(m2, round_to(xn, act), 0.0).to(act)
    else:
        x = tl.load(x_ptr + rows[None, :] * stride_x + ks[:, None], mask=m2, other=0.0, cache_modifier=".cg").to(act)
    return x


@triton.jit
def linear_acc_dot(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                   w_ptr, s_ptr, g_ptr, n0, N,
                   K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, X_LN: tl.constexpr,
                   USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Accumulation path 2 (tensor cores, "swap AB"): acc[n, b] = W[n] . x[b] as
    tl.dot(weight tile [BLOCK_N, BLOCK_K], x tile transposed [BLOCK_K, BLOCK_B]), so the output
    columns fill the MMA's M dimension and the few batch rows its N (BLOCK_B >= 16, padded with
    zero rows). Quantized weights multiply in fp16 (E4M3 -> fp16 is one packed, exact conversion;
    an E2M1 value times its E4M3 block scale has at most 6 significant bits and lies in
    [2**-10, 2688]: exact in fp16), so the activations are rounded to fp16 for the MMA (exact for
    bf16 values in fp16's normal range, |x| in [2**-14, 65504]; smaller ones keep fp16's subnormal
    precision). The per-row / global scales multiply the accumulator after the K loop. The K loop is software
    pipelined NUM_STAGES deep; weight tiles come by pointer loads or, with USE_TMA, a tensor
    descriptor (UTMALDG), and WS warp-specializes the loop (producer / MMA warps). FP4: the even and odd elements of each packed byte go through two
    dots against the even and odd activations, so no interleaving shuffle is needed."""
    act = x_ptr.dtype.element_ty
    offs_n = n0 + tl.arange(0, BLOCK_N)
    nm = offs_n < N
    rows = tl.arange(0, BLOCK_B)
    if X_LN:
        tok = tl.load(tok_ptr + rows * stride_tok, mask=rows < B, other=0, cache_modifier=".cg")
    else:
        tok = rows
    acc = tl.zeros([BLOCK_N, BLOCK_B], tl.float32)
    if FMT == FMT_FP4:
        KB: tl.constexpr = (K + 15) // 16 * 8  # packed bytes per row
        SK: tl.constexpr = (K + 15) // 16  # block scales per row
        HALF: tl.constexpr = BLOCK_K // 2
        if USE_TMA:
            w_desc = tl.make_tensor_descriptor(w_ptr, shape=[N, KB], strides=[KB, 1], block_shape=[BLOCK_N, HALF])
        for k0 in tl.range(0, K, BLOCK_K, num_stages=NUM_STAGES, warp_specialize=WS):
            kb = k0 // 2 + tl.arange(0, HALF)  # byte columns: elements 2kb, 2kb + 1
            wm = nm[:, None] & (kb[None, :] < KB)
            if USE_TMA:
                p = w_desc.load([n0, k0 // 2])
            else:
                p = tl.load(w_ptr + offs_n[:, None] * KB + kb[None, :], mask=wm, other=0)
            sc = tl.load(s_ptr + offs_n[:, None] * SK + (kb // 8)[None, :], mask=wm, other=0.0).to(tl.float16)
            q = p.to(tl.uint16)  # E2M1 at fp16 bits (value * 2**-14, exact), then * 2**14: the value
            lo = (((q & 7) << 9) | ((q & 8) << 12)).to(tl.float16, bitcast=True) * 16384.0
            hi = (((q & 0x70) << 5) | ((q & 0x80) << 8)).to(tl.float16, bitcast=True) * 16384.0
            xe = x_tile_t(2 * kb, rows, x_ptr, stride_x, tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, B, X_LN)
            xo = x_tile_t(2 * kb + 1, rows, x_ptr, stride_x, tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, B, X_LN)
            acc = dot_acc((lo * sc).to(tl.float16), xe.to(tl.float16), acc)
            acc = dot_acc((hi * sc).to(tl.float16), xo.to(tl.float16), acc)
        acc = acc * tl.load(g_ptr)
    else:
        if USE_TMA:
            w_desc = tl.make_tensor_descriptor(w_ptr, shape=[N, K], strides=[K, 1], block_shape=[BLOCK_N, BLOCK_K])
        for k0 in tl.range(0, K, BLOCK_K, num_stages=NUM_STAGES, warp_specialize=WS):
            ks = k0 + tl.arange(0, BLOCK_K)
            if USE_TMA:
                w = w_desc.load([n0, k0])
            else:
                w = tl.load(w_ptr + offs_n[:, None] * K + ks[None, :], mask=nm[:, None] & (ks[None, :] < K), other=0.0)
            xt = x_tile_t(ks, rows, x_ptr, stride_x, tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, B, X_LN)
            if FMT == FMT_FP8:  # E4M3 -> fp16 is one packed conversion (-> bf16 would go through fp32)
                acc = dot_acc(w.to(tl.float16), xt.to(tl.float16), acc)
            else:
                acc = dot_acc(w.to(act), xt, acc)
        if FMT == FMT_FP8:
            acc = acc * tl.load(s_ptr + offs_n, mask=nm, other=0.0)[:, None]
    return tl.trans(acc)
