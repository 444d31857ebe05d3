"""The whole decode loop in ONE kernel launch: a persistent Triton kernel runs every decode step,
with grid-wide barriers between the dependent stages of a step:

    stage 1  h      = GELU(LayerNorm(embed[tok] + state) @ W1.T + b1)   (blocks of h's columns)
    --- barrier ---
    stage 2  state  = h @ W2.T + b2                                       (blocks of state's columns)
    --- barrier ---
    stage 3  per-block max + index of state @ Wlm.T                       (blocks of the vocabulary)
    --- barrier ---
    stage 4  every program reduces the partials to the step's tokens (its own copy, no 4th barrier);
             program 0 writes them to tokens_out[:, step]

Each stage spreads its column blocks over the P programs (block i -> program i mod P) and runs
the block functions of the three-kernel step (linear_tile.ln_linear_gelu_block, gemv_block,
lm_head_partials) on tensor-core tiles (accumulation path 2). State and h live in global memory (L2: a few KB),
the weights stay in L2 between steps when they fit (21 MB bf16 at the default shape, H100's L2 is
50 MB): the kernel never returns to the host between steps, so there are no launch gaps.

Grid barrier: a monotonically increasing arrival counter (zero at launch). Barrier j waits until
the counter reaches j * P; the atomics are acq_rel at GPU scope and the data the stages exchange
(state, h, partials) is read with .cg, so no program reads a stale L1 line. All P programs must be
resident at once, so P = min(SM count, column blocks of the widest stage): 128 programs on an
H100 at the default shape (one per SM fits: 4 warps, modest registers). A
spinning program gives up after SPIN_LIMIT polls and raises an error flag instead of hanging the
GPU (later barriers then pass at once). The flag is sticky (cleared only when the object is
made): the host checks it after each decode (check_error), so a timeout in any run is an error.
In Triton's CPU interpreter programs run one after another, so there the kernel runs with P = 1
(every barrier is passed at once; the stage math is the same).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels import linear_tile
from decodeprof_targets.kernels.common import DOT_MIN, interpreting, num_sms
from decodeprof_targets.kernels.formats import FMT_CODE
from decodeprof_targets.kernels.gemv import scale_args
from decodeprof_targets.kernels.quant import make_linear_weight

SPIN_LIMIT: tl.constexpr = tl.constexpr(1 << 20)  # polls (~1 s) before a barrier reports it is stuck


@triton.jit
def grid_barrier(bar_ptr, err_ptr, target):
    """Wait until all programs have arrived (the counter reaches `target`)."""
    tl.debug_barrier()  # this program's stores precede its arrival
    tl.atomic_add(bar_ptr, 1, sem="release", scope="gpu")
    seen = tl.atomic_add(bar_ptr, 0, sem="acquire", scope="gpu")
    stuck = tl.atomic_add(err_ptr, 0, sem="relaxed", scope="gpu")  # a barrier already timed out: finish fast
    spins = 0
    while (seen < target) & (spins < SPIN_LIMIT) & (stuck == 0):
        seen = tl.atomic_add(bar_ptr, 0, sem="acquire", scope="gpu")
        spins += 1
    if seen < target:
        tl.atomic_xchg(err_ptr, 1, sem="relaxed", scope="gpu")
    tl.debug_barrier()


@triton.jit
def persistent_decode_kernel(tok_in_ptr, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                             w1_ptr, s1_ptr, g1_ptr, b1_ptr, h_ptr, stride_h,
                             w2_ptr, s2_ptr, g2_ptr, b2_ptr,
                             wl_ptr, sl_ptr, gl_ptr, logits_ptr, stride_logits,
                             pval_ptr, pidx_ptr, tok_scratch_ptr, tokens_out_ptr, stride_out_b,
                             bar_ptr, err_ptr, eps, H: tl.constexpr, V: tl.constexpr, P: tl.constexpr,
                             STEPS: tl.constexpr, K: tl.constexpr, B: tl.constexpr, FMT: tl.constexpr,
                             WRITE_LOGITS: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr,
                             BN1: tl.constexpr, BK1: tl.constexpr, NS1: tl.constexpr,
                             BN2: tl.constexpr, BK2: tl.constexpr, NS2: tl.constexpr,
                             BN3: tl.constexpr, BK3: tl.constexpr, NS3: tl.constexpr):
    pid = tl.program_id(0)  # sizes and P (the grid size) are compile-time: block loops have constant trip counts
    rows = tl.arange(0, BLOCK_B)
    my_tok = tok_scratch_ptr + pid * BLOCK_B  # this program's copy of the current tokens
    tl.store(my_tok + rows, tl.load(tok_in_ptr + rows, mask=rows < B, other=0))
    NB1: tl.constexpr = (H + BN1 - 1) // BN1
    NB2: tl.constexpr = (H + BN2 - 1) // BN2
    NB3: tl.constexpr = (V + BN3 - 1) // BN3
    for step in range(STEPS):
        tl.debug_barrier()  # my_tok written by every thread of this program before it is read
        mean, rstd = linear_tile.ln_row_stats(my_tok, 1, emb_ptr, state_ptr, stride_state, eps, K, B, BLOCK_B, BK1)
        for i in range(0, (NB1 + P - 1) // P):
            blk = pid + i * P  # block i*P + pid: the blocks are dealt round-robin
            if blk < NB1:  # the last round has fewer blocks than programs
                linear_tile.ln_linear_gelu_block(blk * BN1, mean, rstd, my_tok, 1, emb_ptr, state_ptr, stride_state,
                                                 lnw_ptr, lnb_ptr, w1_ptr, s1_ptr, g1_ptr, b1_ptr, h_ptr, stride_h, H,
                                                 eps, K, B, FMT, False, False, NS1, BLOCK_B, BN1, BK1, 2)
        grid_barrier(bar_ptr, err_ptr, (3 * step + 1) * P)
        for i in range(0, (NB2 + P - 1) // P):
            blk = pid + i * P
            if blk < NB2:
                linear_tile.gemv_block(blk * BN2, h_ptr, stride_h, w2_ptr, s2_ptr, g2_ptr, b2_ptr, state_ptr,
                                       stride_state, H, K, B, FMT, True, False, False, NS2, BLOCK_B, BN2, BK2, 2)
        grid_barrier(bar_ptr, err_ptr, (3 * step + 2) * P)
        for i in range(0, (NB3 + P - 1) // P):
            blk = pid + i * P
            if blk < NB3:
                linear_tile.lm_head_partials(blk, step == STEPS - 1, state_ptr, stride_state, wl_ptr, sl_ptr, gl_ptr,
                                             logits_ptr, stride_logits, pval_ptr, pidx_ptr, V, K, B, FMT,
                                             WRITE_LOGITS, False, False, NS3, BLOCK_B, BN3, BK3, 2)
        grid_barrier(bar_ptr, err_ptr, (3 * step + 3) * P)
        linear_tile.argmax_partials(pval_ptr, pidx_ptr, my_tok, 1, NB3, B, BLOCK_B, BLOCK_P)
        if pid == 0:
            linear_tile.argmax_partials(pval_ptr, pidx_ptr, tokens_out_ptr + step, stride_out_b, NB3, B, BLOCK_B,
                                        BLOCK_P)


class PersistentDecode:
    """The workload's decode weights in one format and the buffers of the persistent kernel.
    `run(tokens, state, tokens_out, logits_out)` runs tokens_out.shape[1] decode steps in one
    launch (state is updated in place; logits_out, if given, gets the last step's logits)."""

    def __init__(self, w, fmt: str, batch: int, programs: int = 0,
                 tiles: tuple[tuple[int, int, int], ...] | None = None, num_warps: int = 4) -> None:
        if not 1 <= batch <= DOT_MIN:
            raise TargetError(f"batch {batch} outside 1..{DOT_MIN}: the persistent kernel pads batch rows to {DOT_MIN}")
        if fmt not in FMT_CODE:
            raise TargetError(f"unknown weight format {fmt!r}", f"choose one of {sorted(FMT_CODE)}")
        if w.embed.dtype not in (torch.bfloat16, torch.float16):
            raise TargetError("the persistent kernel multiplies on tensor cores: bf16 or fp16 activations only",
                              "run with --dtype bf16")
        dev = w.embed.device
        self.fmt, self.batch, self.num_warps = fmt, batch, num_warps
        self.embed, self.ln_w, self.ln_b = w.embed, w.decode_ln_w, w.decode_ln_b
        self.b1, self.b2 = w.decode_b1, w.decode_b2
        self.w1, self.w2 = make_linear_weight(w.decode_w1, fmt), make_linear_weight(w.decode_w2, fmt)
        self.lm = make_linear_weight(w.lm_head, fmt)
        self.hidden_size, self.vocab = self.w1.n, self.lm.n
        if not self.w1.k == self.w1.n == self.w2.k == self.w2.n == self.lm.k == w.embed.shape[1]:
            raise TargetError("the persistent kernel needs square hidden layers: W1, W2 [h, h], lm_head [V, h], embed [V, h]")
        # (BLOCK_N, BLOCK_K, num_stages) per stage: the tensor-core tiles measured best as separate
        # kernels (benchmarks/tune_gemv.py); stage 2 uses 16-column blocks (64 of them at h=1024)
        self.tiles = tiles or ((16, 1024, 1), (16, 256, 3), (64, 128, 4))
        for bn, bk, _ in self.tiles:
            if bn < DOT_MIN or bk < 2 * DOT_MIN or bn & (bn - 1) or bk & (bk - 1):
                raise TargetError(f"persistent tile BLOCK_N={bn}, BLOCK_K={bk}: powers of two, BLOCK_N >= {DOT_MIN}, "
                                  f"BLOCK_K >= {2 * DOT_MIN}")
        blocks = max(triton.cdiv(self.hidden_size, self.tiles[0][0]), triton.cdiv(self.hidden_size, self.tiles[1][0]),
                     triton.cdiv(self.vocab, self.tiles[2][0]))
        if interpreting():
            self.programs = 1  # the interpreter runs programs one after another: a barrier needs them all at once
        else:
            sms = num_sms(dev)
            self.programs = min(programs or sms, sms, blocks)
        self.block_b = DOT_MIN
        nb3 = triton.cdiv(self.vocab, self.tiles[2][0])
        self.block_p = triton.next_power_of_2(nb3)
        self.h = torch.empty(batch, self.hidden_size, dtype=w.embed.dtype, device=dev)
        self.pval = torch.empty(nb3 * self.block_b, dtype=torch.float32, device=dev)
        self.pidx = torch.empty(nb3 * self.block_b, dtype=torch.int64, device=dev)
        self.tok_scratch = torch.empty(self.programs * self.block_b, dtype=torch.int64, device=dev)
        self.barrier = torch.zeros(1, dtype=torch.int32, device=dev)
        self.error = torch.zeros(1, dtype=torch.int32, device=dev)

    @property
    def weight_bytes(self) -> int:
        small = sum(t.numel() * t.element_size() for t in (self.ln_w, self.ln_b, self.b1, self.b2))
        return self.w1.nbytes + self.w2.nbytes + self.lm.nbytes + small

    def describe(self) -> str:
        t = " ".join(f"s{i + 1}={bn}x{bk}x{ns}" for i, (bn, bk, ns) in enumerate(self.tiles))
        return f"persistent: 1 launch for all steps, {self.programs} programs x {self.num_warps} warps, tiles {t}"

    def run(self, tokens: torch.Tensor, state: torch.Tensor, tokens_out: torch.Tensor,
            logits_out: torch.Tensor | None = None) -> None:
        b, steps = tokens_out.shape
        if b != self.batch or tokens.shape != (b,) or tokens.dtype != torch.int64 or not tokens.is_contiguous():
            raise TargetError(f"tokens must be a contiguous int64 [{self.batch}], tokens_out [{self.batch}, steps]")
        if state.shape != (b, self.hidden_size) or state.stride(1) != 1 or state.dtype != self.embed.dtype:
            raise TargetError(f"state must be [{b}, {self.hidden_size}] {self.embed.dtype} with contiguous rows")
        if logits_out is not None and (logits_out.shape != (b, self.vocab) or logits_out.stride(1) != 1
                                       or logits_out.dtype != self.embed.dtype):
            raise TargetError(f"logits_out must be [{b}, {self.vocab}] {self.embed.dtype} with contiguous rows")
        if tokens_out.dtype != torch.int64 or tokens_out.stride(1) != 1:
            raise TargetError("tokens_out must be int64 [batch, steps] with contiguous rows")
        for name, t in (("tokens", tokens), ("state", state), ("tokens_out", tokens_out)):
            if t.device != self.embed.device:
                raise TargetError(f"{name} is on {t.device}, the weights on {self.embed.device}")
        self.barrier.zero_()  # one small fill kernel before the persistent one (also inside a CUDA graph)
        cap = triton.next_power_of_2(self.hidden_size)  # no tile wider than the (padded) hidden size
        (bn1, bk1, ns1), (bn2, bk2, ns2), (bn3, bk3, ns3) = self.tiles
        s1, g1 = scale_args(self.w1)
        s2, g2 = scale_args(self.w2)
        sl, gl = scale_args(self.lm)
        logits = logits_out if logits_out is not None else state
        persistent_decode_kernel[(self.programs,)](
            tokens, self.embed, state, state.stride(0), self.ln_w, self.ln_b,
            self.w1.w, s1, g1, self.b1, self.h, self.h.stride(0), self.w2.w, s2, g2, self.b2,
            self.lm.w, sl, gl, logits, logits.stride(0), self.pval, self.pidx, self.tok_scratch,
            tokens_out, tokens_out.stride(0), self.barrier, self.error, 1e-5, H=self.hidden_size, V=self.vocab,
            P=self.programs, STEPS=steps, K=self.hidden_size, B=b, FMT=FMT_CODE[self.fmt],
            WRITE_LOGITS=logits_out is not None, BLOCK_B=self.block_b, BLOCK_P=self.block_p,
            BN1=min(bn1, cap), BK1=min(bk1, cap), NS1=ns1, BN2=min(bn2, cap), BK2=min(bk2, cap), NS2=ns2,
            BN3=bn3, BK3=min(bk3, cap), NS3=ns3, num_warps=self.num_warps)

    def check_error(self) -> None:
        """Raise if a barrier timed out (some program never arrived: too many programs to be resident)."""
        if int(self.error.item()):
            raise TargetError(f"a grid barrier of the persistent kernel timed out with {self.programs} programs",
                              "run with fewer programs (they must all be resident on the GPU at once)")
