"""The Triton building blocks every decode kernel shares (device code only, no launches).

`linear_acc` computes acc[b, n] = sum_k x[b, k] * W[n, k] for one tile of BLOCK_N output columns
and all B batch rows. Each weight tile is loaded ONCE (plain pointer loads, or a TMA tensor
descriptor) and multiplied by every batch row (static loop over b), so the weights are read once
per step however large the batch (accumulation path 2, the tensor-core tile, lives in dot_tile.py; the
rounding helpers in numerics.py). The K loop is a `tl.range` with `num_stages` (software
pipelining: the load of tile i+1 is issued while tile i is multiplied) and optionally
`warp_specialize=True` (producer warps load, consumer warps compute).

Weight formats (FMT, decodeprof_targets/kernels/formats.py): FMT_DENSE = the activation dtype (bf16), FMT_FP8 = FP8 E4M3 with a per-row scale
applied after the K loop, FMT_FP4 = FP4 E2M1 packed two per byte with an E4M3 scale per 16-element
block (applied per tile) and a per-tensor fp32 scale applied after the loop.

Activation modes (X_LN): False: x is read as is. True: x[b] = LayerNorm(embed[tok[b]] + state[b])
computed on the fly, rounded to the activation dtype at the same points as eager PyTorch
(sum -> act dtype, LayerNorm output -> act dtype), so bf16 results match the eager model.
"""

from __future__ import annotations

import triton
import triton.language as tl

from decodeprof_targets.kernels import dot_tile
from decodeprof_targets.kernels.formats import FMT_FP4, FMT_FP8
from decodeprof_targets.kernels.numerics import round_to



@triton.jit
def e2m1_to_float(code):
    """E2M1 code (0..15, sign in bit 3) -> fp32: magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6."""
    m = (code & 7).to(tl.float32)
    mag = tl.where(m < 4.0, m * 0.5, tl.where(m < 6.0, m - 2.0, m * 2.0 - 8.0))
    return tl.where((code & 8) != 0, -mag, mag)


@triton.jit
def pick_row(vec, b, BLOCK_B: tl.constexpr):
    """Scalar vec[b] of a [BLOCK_B] vector (b is a compile-time row index)."""
    rows = tl.arange(0, BLOCK_B)
    return tl.sum(tl.where(rows == b, vec, 0.0), axis=0)


@triton.jit
def _embedded_rows(kt, tok, rows, rmask, emb_ptr, state_ptr, stride_state, K: tl.constexpr, BLOCK_K: tl.constexpr):
    """K tile kt of embed[tok[b]] + state[b] for every batch row, rounded to the activation
    dtype (fp32 values, zero outside K and B), and its mask."""
    act = state_ptr.dtype.element_ty
    ks = kt * BLOCK_K + tl.arange(0, BLOCK_K)
    m = rmask[:, None] & (ks[None, :] < K)
    e = tl.load(emb_ptr + tok[:, None] * K + ks[None, :], mask=m, other=0.0).to(tl.float32)
    s = tl.load(state_ptr + rows[:, None] * stride_state + ks[None, :], mask=m, other=0.0,
                cache_modifier=".cg").to(tl.float32)
    return round_to(e + s, act), m


@triton.jit
def ln_row_stats(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, eps,
                 K: tl.constexpr, B: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr):
    """Mean and 1/std over K of (embed[tok[b]] + state[b]) rounded to the activation dtype,
    for every batch row: two passes (mean, then centred squares), like torch's LayerNorm."""
    rows = tl.arange(0, BLOCK_B)
    rmask = rows < B
    tok = tl.load(tok_ptr + rows * stride_tok, mask=rmask, other=0, cache_modifier=".cg")
    K_TILES: tl.constexpr = (K + BLOCK_K - 1) // BLOCK_K
    total = tl.zeros([BLOCK_B], tl.float32)
    for kt in tl.range(0, K_TILES):
        x, m = _embedded_rows(kt, tok, rows, rmask, emb_ptr, state_ptr, stride_state, K, BLOCK_K)
        total += tl.sum(x, axis=1)
    mean = total / K
    sq = tl.zeros([BLOCK_B], tl.float32)
    for kt in tl.range(0, K_TILES):
        x, m = _embedded_rows(kt, tok, rows, rmask, emb_ptr, state_ptr, stride_state, K, BLOCK_K)
        d = tl.where(m, x - mean[:, None], 0.0)
        sq += tl.sum(d * d, axis=1)
    rstd = 1.0 / tl.sqrt(sq / K + eps)
    return mean, rstd


@triton.jit
def x_at(b, ks, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
         K: tl.constexpr, X_LN: tl.constexpr, BLOCK_B: tl.constexpr):
    """Activation row b at columns ks (fp32, zero where ks >= K)."""
    km = ks < K
    if X_LN:
        act = x_ptr.dtype.element_ty
        tok = tl.load(tok_ptr + b * stride_tok)
        e = tl.load(emb_ptr + tok * K + ks, mask=km, other=0.0).to(tl.float32)
        s = tl.load(x_ptr + b * stride_x + ks, mask=km, other=0.0).to(tl.float32)
        x = round_to(e + s, act)
        w = tl.load(lnw_ptr + ks, mask=km, other=0.0).to(tl.float32)
        bias = tl.load(lnb_ptr + ks, mask=km, other=0.0).to(tl.float32)
        xn = (x - pick_row(mean, b, BLOCK_B)) * pick_row(rstd, b, BLOCK_B) * w + bias
        x = tl.where(km, round_to(xn, act), 0.0)
    else:
        x = tl.load(x_ptr + b * stride_x + ks, mask=km, other=0.0).to(tl.float32)
    return x


@triton.jit
def e2m1_pair_to_float(p):
    """Packed byte p (uint8) -> (low-nibble value, high-nibble value) as fp32 divided by 2**14.
    E2M1 code s|e1 e0|m placed at fp16 bits 15 | 11 10 | 9 is exactly value * 2**-14 (the
    subnormal codes 0 and 1 land on fp16 subnormals, converted exactly): 3 integer ops and one
    conversion per element, no table and no compares. The caller folds 2**14 into the scale."""
    q = p.to(tl.uint16)
    lo = ((q & 7) << 9) | ((q & 8) << 12)
    hi = ((q & 0x70) << 5) | ((q & 0x80) << 8)
    return lo.to(tl.float16, bitcast=True).to(tl.float32), hi.to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def linear_acc_shared_x(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                   w_ptr, s_ptr, g_ptr, n0, N,
                   K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, X_LN: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Pointer-load path, shaped for bandwidth. The program's whole weight block [BLOCK_N, K]
    is loaded up front as a 3-D tile [BLOCK_N, KW, BLOCK_K] (BLOCK_K = 32 lanes x one 16-byte
    vector): Triton puts the 32 lanes on the last dim and the warps on the rows, so each thread
    holds KW 16-byte vectors of its row(s) (all loads in flight at once), the K reduction is
    in-thread followed by one 5-step warp shuffle per (row, batch row), and nothing goes through
    shared memory but the tiny x tile. Batch rows: static loop, each multiplying the same
    registers (the weights are read once). Returns acc [BLOCK_B, BLOCK_N] fp32, scales applied."""
    rows = tl.arange(0, BLOCK_B)
    acc = tl.zeros([BLOCK_B, BLOCK_N], tl.float32)
    n3 = n0 + tl.arange(0, BLOCK_N)[:, None, None]
    nm3 = n3 < N
    if FMT == FMT_FP4:
        KB: tl.constexpr = (K + 15) // 16 * 8  # packed bytes per row
        SK: tl.constexpr = (K + 15) // 16  # block scales per row
        KW: tl.constexpr = (KB + BLOCK_K - 1) // BLOCK_K
        NB: tl.constexpr = BLOCK_K // 8  # 16-element scale blocks per BLOCK_K bytes
        kw3 = tl.arange(0, KW)[None, :, None]
        c3 = tl.arange(0, BLOCK_K)[None, None, :]
        bm3 = nm3 & (kw3 * BLOCK_K + c3 < KB)
        p = tl.load(w_ptr + n3 * KB + kw3 * BLOCK_K + c3, mask=bm3, other=0)  # [BN, KW, BLOCK_K] u8
        p = tl.reshape(p, [BLOCK_N, KW, NB, 8])
        w_lo, w_hi = e2m1_pair_to_float(p)  # elements 2j and 2j+1 of each block
        blk3 = kw3 * NB + tl.arange(0, NB)[None, None, :]  # [1, KW, NB] scale index
        sc = tl.load(s_ptr + n3 * SK + blk3, mask=nm3 & (blk3 < SK), other=0.0).to(tl.float32) * 16384.0
        # even element index [KW, NB, 8]; x is built 3-D and broadcast, so that the compiler
        # converts the small x tile (shared memory) to the weights' layout, never the reverse
        ke = (tl.arange(0, KW)[:, None, None] * BLOCK_K + tl.arange(0, NB)[None, :, None] * 8
              + tl.arange(0, 8)[None, None, :]) * 2
        for b in tl.static_range(B):
            xe = x_at(b, ke, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
            xo = x_at(b, ke + 1, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
            blk_sum = tl.sum(w_lo * xe[None] + w_hi * xo[None], axis=3)  # [BN, KW, NB], in-thread
            part = tl.sum(tl.sum(blk_sum * sc, axis=1), axis=1)
            acc = tl.where(rows[:, None] == b, part[None, :], acc)
        acc = acc * tl.load(g_ptr)
    else:
        KW: tl.constexpr = (K + BLOCK_K - 1) // BLOCK_K
        kw3 = tl.arange(0, KW)[None, :, None]
        c3 = tl.arange(0, BLOCK_K)[None, None, :]
        ks3 = kw3 * BLOCK_K + c3  # [1, KW, BLOCK_K]
        w = tl.load(w_ptr + n3 * K + ks3, mask=nm3 & (ks3 < K), other=0.0).to(tl.float32)
        ks2 = tl.arange(0, KW)[:, None] * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]  # x as [KW, BLOCK_K]: see above
        for b in tl.static_range(B):
            xb = x_at(b, ks2, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
            part = tl.sum(tl.sum(w * xb[None], axis=1), axis=1)  # KW in-thread first, then the lanes
            acc = tl.where(rows[:, None] == b, part[None, :], acc)
        if FMT == FMT_FP8:
            offs_n = n0 + tl.arange(0, BLOCK_N)
            acc = acc * tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0)[None, :]
    return acc


@triton.jit
def rows_sum(v):
    """Sum over axes 1 and 2 of a [BN, KW, BK] tile, kept broadcastable ([BN, 1, 1]): axis 1 (KW)
    is in-thread, axis 2 in-thread then lanes (warp shuffles): no shared memory."""
    return tl.sum(tl.sum(v, axis=1), axis=1)[:, None, None]


@triton.jit
def x_full(b, ks, km, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw, lnb, eps,
           K: tl.constexpr, X_LN: tl.constexpr):
    """Activation row b at the full-tile offsets ks (the weights' own shape, so the load lands in
    the weights' register layout: no shared-memory conversion, no barrier). With X_LN the row is
    LayerNorm(embed[tok[b]] + state[b]) with its statistics computed here from the registers
    (every row of the tile holds the same copy; sums run over the thread's K and the lanes)."""
    if X_LN:
        act = x_ptr.dtype.element_ty
        tok = tl.load(tok_ptr + b * stride_tok)
        e = tl.load(emb_ptr + tok * K + ks, mask=km, other=0.0).to(tl.float32)
        s = tl.load(x_ptr + b * stride_x + ks, mask=km, other=0.0).to(tl.float32)
        x = round_to(e + s, act)
        mean = rows_sum(x) / K
        d = tl.where(km, x - mean, 0.0)
        rstd = 1.0 / tl.sqrt(rows_sum(d * d) / K + eps)
        x = tl.where(km, round_to(d * rstd * lnw + lnb, act), 0.0)
    else:
        x = tl.load(x_ptr + b * stride_x + ks, mask=km, other=0.0).to(tl.float32)
    return x


@triton.jit
def linear_acc_registers(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, eps,
                  w_ptr, s_ptr, g_ptr, n0, N,
                  K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, X_LN: tl.constexpr,
                  BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Pointer-load path, accumulation path 1 (registers only). The weight block is a tile [BLOCK_N, KW,
    BLOCK_K] (Triton puts the lanes on BLOCK_K as 16-byte vectors, the warps on the rows, the KW
    vectors in-thread). Every batch row of x is loaded straight in that layout (broadcast
    pointers: the rows a thread holds share the same x values, loaded once), so the K work has
    no shared memory and no barrier: all weight and x loads can issue up front. Reductions:
    in-thread over KW, then one warp shuffle per (row, batch row); each row's result is placed
    in a transposed accumulator [BLOCK_N, BLOCK_B] that shares the reduction's layout."""
    rows = tl.arange(0, BLOCK_B)
    acc = tl.zeros([BLOCK_N, BLOCK_B], tl.float32)
    n3 = n0 + tl.arange(0, BLOCK_N)[:, None, None]
    nm3 = n3 < N
    if FMT == FMT_FP4:
        # one packed 32-bit word (8 elements) per lane and KW step, so that the decoded weights
        # land in exactly the layout of one 16-byte bf16 x vector per lane; block scales folded in
        # once. max_contiguous(1) keeps the word loads 4 bytes wide (128 B per warp, coalesced).
        KB: tl.constexpr = (K + 15) // 16 * 8  # packed bytes per row
        SK: tl.constexpr = (K + 15) // 16  # block scales per row
        KWD: tl.constexpr = KB // 4  # packed words per row (K is padded to 16 elements: KB % 8 == 0)
        BKW: tl.constexpr = BLOCK_K // 16  # words per KW step: one per lane (BLOCK_K = 32 lanes x 16 bytes)
        KW0: tl.constexpr = (KWD + BKW - 1) // BKW
        KW: tl.constexpr = KW0 + (KW0 == 3) * 1  # a power of two (short rows: 3 -> 4, masked)
        kw3 = tl.arange(0, KW)[None, :, None]
        wc3 = tl.max_contiguous(tl.broadcast_to(kw3 * BKW + tl.arange(0, BKW)[None, None, :], [BLOCK_N, KW, BKW]), [1, 1, 1])
        wptr = w_ptr.to(tl.pointer_type(tl.uint32))
        word = tl.load(wptr + n3 * KWD + wc3, mask=nm3 & (wc3 < KWD), other=0)  # [BN, KW, BKW] u32
        sh = tl.arange(0, 8)[None, None, None, :] * 4
        t = word[:, :, :, None] >> sh  # nibble j of the word = element 8 * word + j
        v = ((t & 7) << 9) | ((t & 8) << 12)  # E2M1 placed at fp16 bits: value * 2**-14
        w = tl.reshape(v.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32), [BLOCK_N, KW, 8 * BKW])
        ks = tl.broadcast_to(kw3 * (8 * BKW) + tl.arange(0, 8 * BKW)[None, None, :], [BLOCK_N, KW, 8 * BKW])
        km = ks < K
        sc = tl.load(s_ptr + n3 * SK + wc3 // 2, mask=nm3 & (wc3 < KWD), other=0.0).to(tl.float32)  # [BN, KW, BKW]
        w = tl.reshape(tl.reshape(w, [BLOCK_N, KW, BKW, 8]) * (sc * 16384.0)[:, :, :, None], [BLOCK_N, KW, 8 * BKW])
    else:
        KW: tl.constexpr = (K + BLOCK_K - 1) // BLOCK_K
        kw3 = tl.arange(0, KW)[None, :, None]
        ks = tl.broadcast_to(kw3 * BLOCK_K + tl.arange(0, BLOCK_K)[None, None, :], [BLOCK_N, KW, BLOCK_K])
        km = ks < K
        w = tl.load(w_ptr + n3 * K + ks, mask=nm3 & km, other=0.0)
    if X_LN:
        lnw = tl.load(lnw_ptr + ks, mask=km, other=0.0).to(tl.float32)
        lnb = tl.load(lnb_ptr + ks, mask=km, other=0.0).to(tl.float32)
    else:
        lnw = 0.0
        lnb = 0.0
    for b in tl.static_range(B):
        xb = x_full(b, ks, km, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw, lnb, eps, K, X_LN)
        part = tl.sum(tl.sum(w.to(tl.float32) * xb, axis=1), axis=1)  # KW in-thread, then the lanes
        acc = tl.where(rows[None, :] == b, part[:, None], acc)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    if FMT == FMT_FP8:
        acc = acc * tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0)[:, None]
    if FMT == FMT_FP4:
        acc = acc * tl.load(g_ptr)
    return tl.trans(acc)


@triton.jit
def linear_acc(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, eps,
               w_ptr, s_ptr, g_ptr, n0, N,
               K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, X_LN: tl.constexpr,
               USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
               BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """acc [BLOCK_B, BLOCK_N] fp32 = x @ W[n0:n0+BLOCK_N].T with the format's scales applied.
    Pointer loads (USE_TMA False): linear_acc_shared_x (ACC_PATH 0: x through shared memory, LayerNorm
    statistics from `mean`/`rstd`), linear_acc_registers (ACC_PATH 1: registers only, statistics computed
    in-program). ACC_PATH 2: linear_acc_dot (tensor cores, statistics from `mean`/`rstd`; pointer or TMA
    loads, optionally warp-specialized). Other accumulation paths with TMA: the K loop of linear_acc_tiles."""
    if ACC_PATH == 2:
        acc = dot_tile.linear_acc_dot(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                             w_ptr, s_ptr, g_ptr, n0, N, K, B, FMT, X_LN, USE_TMA, WS, NUM_STAGES,
                             BLOCK_B, BLOCK_N, BLOCK_K)
    elif USE_TMA:
        acc = linear_acc_tiles(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                               w_ptr, s_ptr, g_ptr, n0, N, K, B, FMT, X_LN, WS, NUM_STAGES,
                               BLOCK_B, BLOCK_N, BLOCK_K)
    elif ACC_PATH == 0:
        acc = linear_acc_shared_x(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                             w_ptr, s_ptr, g_ptr, n0, N, K, B, FMT, X_LN, BLOCK_B, BLOCK_N, BLOCK_K)
    else:
        acc = linear_acc_registers(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, eps,
                            w_ptr, s_ptr, g_ptr, n0, N, K, B, FMT, X_LN, BLOCK_B, BLOCK_N, BLOCK_K)
    return acc


@triton.jit
def linear_acc_tiles(x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd,
                     w_ptr, s_ptr, g_ptr, n0, N,
                     K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, X_LN: tl.constexpr,
                     WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                     BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """TMA path: a K loop over [BLOCK_N, BLOCK_K] tiles streamed by a tensor descriptor
    (UTMALDG into shared memory), NUM_STAGES deep, optionally warp-specialized."""
    USE_TMA: tl.constexpr = True
    rows = tl.arange(0, BLOCK_B)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    acc = tl.zeros([BLOCK_B, BLOCK_N], tl.float32)
    if FMT == FMT_FP4:
        KW: tl.constexpr = (K + 15) // 16 * 8  # packed bytes per row
        SK: tl.constexpr = (K + 15) // 16  # block scales per row
        HALF: tl.constexpr = BLOCK_K // 2
    else:
        KW: tl.constexpr = K
        HALF: tl.constexpr = BLOCK_K
    if USE_TMA:
        w_desc = tl.make_tensor_descriptor(w_ptr, shape=[N, KW], strides=[KW, 1], block_shape=[BLOCK_N, HALF])
    K_TILES: tl.constexpr = (K + BLOCK_K - 1) // BLOCK_K
    for kt in tl.range(0, K_TILES, num_stages=NUM_STAGES, warp_specialize=WS):
        k0 = kt * BLOCK_K
        if FMT == FMT_FP4:
            j = tl.arange(0, HALF)
            kb = k0 // 2 + j  # byte column
            wm = n_mask[:, None] & (kb[None, :] < KW)
            if USE_TMA:
                p = w_desc.load([n0, k0 // 2])
            else:
                p = tl.load(w_ptr + offs_n[:, None] * KW + kb[None, :], mask=wm, other=0)
            sc = tl.load(s_ptr + offs_n[:, None] * SK + (kb // 8)[None, :], mask=wm, other=0.0).to(tl.float32)
            w_lo = e2m1_to_float(p & 0xF) * sc  # elements k0 + 2j
            w_hi = e2m1_to_float((p >> 4) & 0xF) * sc  # elements k0 + 2j + 1
            ks = k0 + 2 * j
            for b in tl.static_range(B):
                xe = x_at(b, ks, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
                xo = x_at(b, ks + 1, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
                part = tl.sum(w_lo * xe[None, :] + w_hi * xo[None, :], axis=1)
                acc = tl.where(rows[:, None] == b, acc + part[None, :], acc)
        else:
            ks = k0 + tl.arange(0, BLOCK_K)
            if USE_TMA:
                w = w_desc.load([n0, k0]).to(tl.float32)
            else:
                wm = n_mask[:, None] & (ks[None, :] < K)
                w = tl.load(w_ptr + offs_n[:, None] * K + ks[None, :], mask=wm, other=0.0).to(tl.float32)
            for b in tl.static_range(B):
                xb = x_at(b, ks, x_ptr, stride_x, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, K, X_LN, BLOCK_B)
                part = tl.sum(w * xb[None, :], axis=1)
                acc = tl.where(rows[:, None] == b, acc + part[None, :], acc)
    if FMT == FMT_FP8:
        acc = acc * tl.load(s_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    if FMT == FMT_FP4:
        acc = acc * tl.load(g_ptr)
    return acc


@triton.jit
def store_rows(out_ptr, stride_out, y, n0, N, B: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.arange(0, BLOCK_B)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < B) & (offs_n[None, :] < N)
    y = round_to(y, out_ptr.dtype.element_ty)  # exact: the cast below only drops zero bits
    tl.store(out_ptr + rows[:, None] * stride_out + offs_n[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def gelu_erf(y):
    """Exact (erf) GELU, F.gelu's default."""
    return 0.5 * y * (1.0 + tl.erf(y * 0.7071067811865476))


@triton.jit
def gemv_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N,
              K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, HAS_BIAS: tl.constexpr,
              USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
              BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """out[b, n] = x[b] . W[n] (+ bias[n]), rounded once to out's dtype (cuBLAS's epilogue)."""
    gemv_block(tl.program_id(0) * BLOCK_N, x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N,
               K, B, FMT, HAS_BIAS, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


@triton.jit
def gemv_block(n0, x_ptr, stride_x, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N,
               K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, HAS_BIAS: tl.constexpr,
               USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
               BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """Output columns n0 .. n0 + BLOCK_N of gemv_body (also a stage of the persistent kernel)."""
    unused = tl.zeros([BLOCK_B], tl.float32)
    acc = linear_acc(x_ptr, stride_x, x_ptr, 0, x_ptr, x_ptr, x_ptr, unused, unused, 0.0, w_ptr, s_ptr, g_ptr, n0, N,
                     K, B, FMT, False, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)
    if HAS_BIAS:
        offs_n = n0 + tl.arange(0, BLOCK_N)
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    store_rows(out_ptr, stride_out, acc, n0, N, B, BLOCK_B, BLOCK_N)


@triton.jit
def ln_linear_gelu_body(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                        w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps,
                        K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr,
                        USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """out = GELU(LayerNorm(embed[tok] + state) @ W.T + bias). ACC_PATH 0 / 2 / TMA: every program
    first recomputes the (tiny, L2-resident) LayerNorm statistics in a K loop of its own; ACC_PATH 1:
    the statistics come from the x rows the program loads anyway (registers and warp shuffles only)."""
    if ACC_PATH != 1:
        mean, rstd = ln_row_stats(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, eps, K, B, BLOCK_B, BLOCK_K)
    else:
        mean = tl.zeros([BLOCK_B], tl.float32)
        rstd = mean
    ln_linear_gelu_block(tl.program_id(0) * BLOCK_N, mean, rstd, tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state,
                         lnw_ptr, lnb_ptr, w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps, K, B, FMT,
                         USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


@triton.jit
def ln_linear_gelu_block(n0, mean, rstd, tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                         w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps,
                         K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr,
                         USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                         BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """Output columns n0 .. n0 + BLOCK_N of ln_linear_gelu_body, given the LayerNorm statistics
    (unused by ACC_PATH 1; also a stage of the persistent kernel)."""
    act = state_ptr.dtype.element_ty
    acc = linear_acc(state_ptr, stride_state, tok_ptr, stride_tok, emb_ptr, lnw_ptr, lnb_ptr, mean, rstd, eps,
                     w_ptr, s_ptr, g_ptr, n0, N, K, B, FMT, True, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K,
                     ACC_PATH)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    y = acc + tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    y = gelu_erf(round_to(y, act))  # eager rounds the Linear's output before the GELU
    store_rows(out_ptr, stride_out, y, n0, N, B, BLOCK_B, BLOCK_N)


@triton.jit
def argmax_partials(pval_ptr, pidx_ptr, tok_out_ptr, stride_tok_out, P,
                    B: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr):
    """tokens[b] = the index of the largest of P per-block maxima (the lowest index on a tie,
    like torch.argmax). .cg loads: read the partials from L2, never a stale L1 line."""
    p = tl.arange(0, BLOCK_P)
    rows = tl.arange(0, BLOCK_B)
    m = (p[:, None] < P) & (rows[None, :] < B)
    v = tl.load(pval_ptr + p[:, None] * BLOCK_B + rows[None, :], mask=m, other=float("-inf"), cache_modifier=".cg")
    i = tl.load(pidx_ptr + p[:, None] * BLOCK_B + rows[None, :], mask=m, other=0, cache_modifier=".cg")
    best, pos = tl.max(v, axis=0, return_indices=True, return_indices_tie_break_left=True)
    tok = tl.sum(tl.where(p[:, None] == pos[None, :], i, 0), axis=0)
    tl.store(tok_out_ptr + rows * stride_tok_out, tok.to(tl.int64), mask=rows < B)


@triton.jit
def lm_head_argmax_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits,
                        pval_ptr, pidx_ptr, count_ptr, tok_out_ptr, stride_tok_out, N,
                        K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr,
                        WRITE_LOGITS: tl.constexpr, FUSED_REDUCE: tl.constexpr,
                        USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                        BLOCK_P: tl.constexpr, ACC_PATH: tl.constexpr):
    """logits = x @ W.T (rounded to the activation dtype, stored only if WRITE_LOGITS); each
    program writes its tile's per-row max and index; with FUSED_REDUCE the last program to
    finish (an acq_rel atomic counter) reduces them to the tokens and resets the counter."""
    lm_head_partials(tl.program_id(0), True, x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits,
                     pval_ptr, pidx_ptr, N, K, B, FMT, WRITE_LOGITS, USE_TMA, WS, NUM_STAGES,
                     BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)
    if FUSED_REDUCE:
        tl.debug_barrier()  # every thread's partial stores precede the release below
        done = tl.atomic_add(count_ptr, 1, sem="acq_rel", scope="gpu")
        if done == tl.num_programs(0) - 1:
            argmax_partials(pval_ptr, pidx_ptr, tok_out_ptr, stride_tok_out, tl.num_programs(0), B, BLOCK_B, BLOCK_P)
            tl.atomic_xchg(count_ptr, 0, sem="relaxed", scope="gpu")  # ready for the next launch


@triton.jit
def lm_head_partials(blk, write, x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr, pidx_ptr,
                     N, K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr, WRITE_LOGITS: tl.constexpr,
                     USE_TMA: tl.constexpr, WS: tl.constexpr, NUM_STAGES: tl.constexpr,
                     BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr):
    """Vocabulary block blk of lm_head_argmax_body: its rounded logits (stored if WRITE_LOGITS
    and `write`), and its per-row max and index at slot blk of the partials (also a stage of the
    persistent kernel, which writes logits at the last step only)."""
    n0 = blk * BLOCK_N
    unused = tl.zeros([BLOCK_B], tl.float32)
    acc = linear_acc(x_ptr, stride_x, x_ptr, 0, x_ptr, x_ptr, x_ptr, unused, unused, 0.0, w_ptr, s_ptr, g_ptr, n0, N,
                     K, B, FMT, False, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)
    logits = round_to(acc, x_ptr.dtype.element_ty)  # eager argmaxes the rounded logits
    if WRITE_LOGITS:
        if write:
            store_rows(logits_ptr, stride_logits, logits, n0, N, B, BLOCK_B, BLOCK_N)
    rows = tl.arange(0, BLOCK_B)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    logits = tl.where((offs_n < N)[None, :], logits, float("-inf"))
    val, idx = tl.max(logits, axis=1, return_indices=True, return_indices_tie_break_left=True)
    tl.store(pval_ptr + blk * BLOCK_B + rows, val)
    tl.store(pidx_ptr + blk * BLOCK_B + rows, (n0 + idx).to(tl.int64))
