"""The decode step in three fused Triton kernels (plus, optionally, one tiny reduction):

1. `*fused_ln_linear_gelu_kernel`: h = GELU(LayerNorm(embed[tok] + state) @ W1.T + b1)
2. `*gemv_kernel` (gemv.py):        state = h @ W2.T + b2
3. `*lm_head_argmax_kernel`:        tok = argmax(state @ Wlm.T): per-program max + index, then the
   last program to finish reduces the partials (atomic counter), so no 4th launch; logits are
   written only when asked (the last step, for the correctness check).
   With fused_reduce=False a separate `argmax_reduce_kernel` does the reduction.

Each kernel exists for three weight formats, named by prefix so traces tell them apart:
dense (bf16) `fused_ln_linear_gelu_kernel`, `fp8_fused_ln_linear_gelu_kernel`, `fp4_...`.
All share linear_tile.py: each weight tile read once for all batch rows.

Bytes one step must read (the benchmark's formula): W1 + W2 + Wlm in their format, + b1, b2, LN
weight and bias (2 bytes each per hidden unit), + the B gathered embedding rows, + state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels import gemv as gemv_mod
from decodeprof_targets.kernels import linear_tile
from decodeprof_targets.kernels.common import MAX_BATCH, PLAIN, LaunchOptions, check_rows, check_tensor, remember
from decodeprof_targets.kernels.gemv_fp4 import fp4_gemv_kernel
from decodeprof_targets.kernels.gemv_fp8 import fp8_gemv_kernel
from decodeprof_targets.kernels.quant import LinearWeight, make_linear_weight

LN_EPS = 1e-5  # F.layer_norm's default


# --- kernel 1: embed + add state + LayerNorm + Linear + bias + GELU --------------------------------
# Arguments: tokens [B] (int64, row stride), embed [V, K], state [B, K], LN weight/bias [K],
# weight [N, K] (+ scales), bias [N], out [B, N]; N, eps; K, B and the tiling are compile-time.

@triton.jit
def fused_ln_linear_gelu_kernel(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                                w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps,
                                K: tl.constexpr, B: tl.constexpr, USE_TMA: tl.constexpr, WS: tl.constexpr,
                                NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                                BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.ln_linear_gelu_body(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr, w_ptr,
                                    s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps, K, B, 0, USE_TMA, WS,
                                    NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


@triton.jit
def fp8_fused_ln_linear_gelu_kernel(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                                    w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps,
                                    K: tl.constexpr, B: tl.constexpr, USE_TMA: tl.constexpr, WS: tl.constexpr,
                                    NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                                    BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.ln_linear_gelu_body(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr, w_ptr,
                                    s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps, K, B, 1, USE_TMA, WS,
                                    NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


@triton.jit
def fp4_fused_ln_linear_gelu_kernel(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr,
                                    w_ptr, s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps,
                                    K: tl.constexpr, B: tl.constexpr, USE_TMA: tl.constexpr, WS: tl.constexpr,
                                    NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                                    BLOCK_K: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.ln_linear_gelu_body(tok_ptr, stride_tok, emb_ptr, state_ptr, stride_state, lnw_ptr, lnb_ptr, w_ptr,
                                    s_ptr, g_ptr, bias_ptr, out_ptr, stride_out, N, eps, K, B, 2, USE_TMA, WS,
                                    NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, ACC_PATH)


# --- kernel 3: lm_head + argmax ---------------------------------------------------------------------
# Arguments: x [B, K], weight [V, K] (+ scales), logits [B, V] (written if WRITE_LOGITS), partial
# max/index [programs * BLOCK_B], counter [1] int32 (zero between launches), tokens out [B] int64.

@triton.jit
def lm_head_argmax_kernel(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr, pidx_ptr,
                          count_ptr, tok_out_ptr, stride_tok_out, N, K: tl.constexpr, B: tl.constexpr,
                          WRITE_LOGITS: tl.constexpr, FUSED_REDUCE: tl.constexpr, USE_TMA: tl.constexpr,
                          WS: tl.constexpr, NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.lm_head_argmax_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr,
                                    pidx_ptr, count_ptr, tok_out_ptr, stride_tok_out, N, K, B, 0, WRITE_LOGITS,
                                    FUSED_REDUCE, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, BLOCK_P, ACC_PATH)


@triton.jit
def fp8_lm_head_argmax_kernel(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr, pidx_ptr,
                              count_ptr, tok_out_ptr, stride_tok_out, N, K: tl.constexpr, B: tl.constexpr,
                              WRITE_LOGITS: tl.constexpr, FUSED_REDUCE: tl.constexpr, USE_TMA: tl.constexpr,
                              WS: tl.constexpr, NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr,
                              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.lm_head_argmax_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr,
                                    pidx_ptr, count_ptr, tok_out_ptr, stride_tok_out, N, K, B, 1, WRITE_LOGITS,
                                    FUSED_REDUCE, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, BLOCK_P, ACC_PATH)


@triton.jit
def fp4_lm_head_argmax_kernel(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr, pidx_ptr,
                              count_ptr, tok_out_ptr, stride_tok_out, N, K: tl.constexpr, B: tl.constexpr,
                              WRITE_LOGITS: tl.constexpr, FUSED_REDUCE: tl.constexpr, USE_TMA: tl.constexpr,
                              WS: tl.constexpr, NUM_STAGES: tl.constexpr, BLOCK_B: tl.constexpr,
                              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr, ACC_PATH: tl.constexpr = 0):
    linear_tile.lm_head_argmax_body(x_ptr, stride_x, w_ptr, s_ptr, g_ptr, logits_ptr, stride_logits, pval_ptr,
                                    pidx_ptr, count_ptr, tok_out_ptr, stride_tok_out, N, K, B, 2, WRITE_LOGITS,
                                    FUSED_REDUCE, USE_TMA, WS, NUM_STAGES, BLOCK_B, BLOCK_N, BLOCK_K, BLOCK_P, ACC_PATH)


@triton.jit
def argmax_reduce_kernel(pval_ptr, pidx_ptr, tok_out_ptr, stride_tok_out, P,
                         B: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr):
    """One program: tokens[b] from the P per-block maxima (used when fused_reduce=False)."""
    linear_tile.argmax_partials(pval_ptr, pidx_ptr, tok_out_ptr, stride_tok_out, P, B, BLOCK_B, BLOCK_P)


LN_LINEAR_GELU = {"bf16": fused_ln_linear_gelu_kernel, "fp8": fp8_fused_ln_linear_gelu_kernel,
                  "fp4": fp4_fused_ln_linear_gelu_kernel}
GEMV = {"bf16": gemv_mod.gemv_kernel, "fp8": fp8_gemv_kernel, "fp4": fp4_gemv_kernel}
LM_HEAD_ARGMAX = {"bf16": lm_head_argmax_kernel, "fp8": fp8_lm_head_argmax_kernel, "fp4": fp4_lm_head_argmax_kernel}


def _check_batch(b: int) -> None:
    if not 1 <= b <= MAX_BATCH:
        raise TargetError(f"batch {b} outside 1..{MAX_BATCH}: these are skinny-GEMM decode kernels")


def _check_tokens(name: str, tokens: torch.Tensor, b: int, device: torch.device) -> None:
    check_tensor(name, tokens, dtype=torch.int64, shape=(b,), device=device, contiguous=False)


def ln_linear_gelu(tokens: torch.Tensor, embed: torch.Tensor, state: torch.Tensor, ln_w: torch.Tensor,
                   ln_b: torch.Tensor, weight: LinearWeight, bias: torch.Tensor, out: torch.Tensor | None = None,
                   opts: LaunchOptions = PLAIN, eps: float = LN_EPS) -> torch.Tensor:
    """Kernel 1: GELU(LayerNorm(embed[tokens] + state) @ W.T + bias) -> out [B, N].
    `out` must not overlap `state` (every program reads all of state)."""
    b, k = state.shape if state.dim() == 2 else (0, 0)
    _check_batch(b)
    dev, act = state.device, state.dtype
    check_tensor("state", state, dtype=gemv_mod.ACT_DTYPES, device=dev, contiguous=False)
    check_rows("state", state, b, weight.k)
    _check_tokens("tokens", tokens, b, dev)
    check_tensor("embed", embed, dtype=act, device=dev)
    if embed.dim() != 2 or embed.shape[1] != k:
        raise TargetError(f"embed must be [vocab, {k}], got {tuple(embed.shape)}")
    for name, t in (("ln_w", ln_w), ("ln_b", ln_b)):
        check_tensor(name, t, dtype=act, shape=(k,), device=dev)
    check_tensor("bias", bias, dtype=act, shape=(weight.n,), device=dev)
    gemv_mod.check_weight("weight", weight, dev, act if weight.fmt == "bf16" else weight.w.dtype)
    if out is None:
        out = torch.empty(b, weight.n, dtype=act, device=dev)
    check_tensor("out", out, dtype=act, device=dev, contiguous=False)
    check_rows("out", out, b, weight.n)
    if out.untyped_storage().data_ptr() == state.untyped_storage().data_ptr():
        raise TargetError("out shares storage with state", "give kernel 1 its own output buffer")
    gemv_mod.resolve_tma(opts, weight)
    t = gemv_mod.tiles(weight, opts, "k1", b, act)
    s, g = gemv_mod.scale_args(weight)
    kernel = LN_LINEAR_GELU[weight.fmt]
    compiled = kernel[(triton.cdiv(weight.n, t.block_n),)](
        tokens, tokens.stride(0), embed, state, state.stride(0), ln_w, ln_b, weight.w, s, g, bias, out, out.stride(0),
        weight.n, eps, K=k, B=b, USE_TMA=opts.use_tma, WS=opts.warp_specialize, NUM_STAGES=t.num_stages,
        BLOCK_B=t.block_b, BLOCK_N=t.block_n, BLOCK_K=t.block_k, ACC_PATH=t.acc_path, num_warps=t.num_warps)
    remember(kernel, opts, compiled)
    return out


def linear_bias(x: torch.Tensor, weight: LinearWeight, bias: torch.Tensor, out: torch.Tensor | None = None,
                opts: LaunchOptions = PLAIN) -> torch.Tensor:
    """Kernel 2: x @ W.T + bias in the weight's format."""
    return gemv_mod.launch_gemv(GEMV[weight.fmt], weight.fmt, x, weight, bias, out, opts)


@dataclass
class ArgmaxWorkspace:
    """Per-program partial maxima and indices, and the arrival counter (zero between launches)."""

    pval: torch.Tensor
    pidx: torch.Tensor
    count: torch.Tensor
    programs: int
    block_b: int


def make_workspace(weight: LinearWeight, batch: int, opts: LaunchOptions = PLAIN,
                   act_dtype: torch.dtype = torch.bfloat16) -> ArgmaxWorkspace:
    t = gemv_mod.tiles(weight, opts, "k3", batch, act_dtype)
    programs, block_b = triton.cdiv(weight.n, t.block_n), t.block_b
    dev = weight.w.device
    return ArgmaxWorkspace(torch.empty(programs * block_b, dtype=torch.float32, device=dev),
                           torch.empty(programs * block_b, dtype=torch.int64, device=dev),
                           torch.zeros(1, dtype=torch.int32, device=dev), programs, block_b)


def lm_head_argmax(x: torch.Tensor, weight: LinearWeight, tokens_out: torch.Tensor | None = None,
                   logits_out: torch.Tensor | None = None, workspace: ArgmaxWorkspace | None = None,
                   opts: LaunchOptions = PLAIN, fused_reduce: bool = True) -> torch.Tensor:
    """Kernel 3: tokens_out[b] = argmax_n(x[b] . W[n]) (rounded logits, lowest index on a tie);
    also writes logits_out [B, V] when given. Returns tokens_out [B] int64."""
    b, k = x.shape if x.dim() == 2 else (0, 0)
    _check_batch(b)
    dev = x.device
    check_tensor("x", x, dtype=gemv_mod.ACT_DTYPES, device=dev, contiguous=False)
    check_rows("x", x, b, weight.k)
    gemv_mod.check_weight("weight", weight, dev, x.dtype if weight.fmt == "bf16" else weight.w.dtype)
    if tokens_out is None:
        tokens_out = torch.empty(b, dtype=torch.int64, device=dev)
    _check_tokens("tokens_out", tokens_out, b, dev)
    if logits_out is not None:
        check_tensor("logits_out", logits_out, dtype=x.dtype, device=dev, contiguous=False)
        check_rows("logits_out", logits_out, b, weight.n)
    gemv_mod.resolve_tma(opts, weight)
    t = gemv_mod.tiles(weight, opts, "k3", b, x.dtype)
    ws = workspace or make_workspace(weight, b, opts, x.dtype)
    programs = triton.cdiv(weight.n, t.block_n)
    if ws.programs != programs or ws.block_b != t.block_b:
        raise TargetError("argmax workspace was made for another weight, batch or tiling",
                          "make it with make_workspace(weight, batch, opts)")
    s, g = gemv_mod.scale_args(weight)
    block_p = triton.next_power_of_2(programs)
    logits = logits_out if logits_out is not None else x
    kernel = LM_HEAD_ARGMAX[weight.fmt]
    compiled = kernel[(programs,)](
        x, x.stride(0), weight.w, s, g, logits, logits.stride(0), ws.pval, ws.pidx, ws.count, tokens_out,
        tokens_out.stride(0), weight.n, K=k, B=b, WRITE_LOGITS=logits_out is not None, FUSED_REDUCE=fused_reduce,
        USE_TMA=opts.use_tma, WS=opts.warp_specialize, NUM_STAGES=t.num_stages, BLOCK_B=ws.block_b,
        BLOCK_N=t.block_n, BLOCK_K=t.block_k, BLOCK_P=block_p, ACC_PATH=t.acc_path, num_warps=t.num_warps)
    remember(kernel, opts, compiled)
    if not fused_reduce:
        argmax_reduce_kernel[(1,)](ws.pval, ws.pidx, tokens_out, tokens_out.stride(0), programs, B=b,
                                   BLOCK_B=ws.block_b, BLOCK_P=block_p, num_warps=4)
    return tokens_out


@dataclass
class KernelPlan:
    """Launch options per kernel, and whether the argmax reduction is fused into kernel 3."""

    ln_linear_gelu: LaunchOptions = PLAIN
    linear: LaunchOptions = PLAIN
    lm_head: LaunchOptions = PLAIN
    fused_reduce: bool = True

    def describe(self) -> str:
        return (f"k1[{self.ln_linear_gelu.describe()}] k2[{self.linear.describe()}] "
                f"k3[{self.lm_head.describe()}] argmax={'fused' if self.fused_reduce else 'separate kernel'}")


class DecodeKernels:
    """The workload's decode weights in one format, with the static buffers a CUDA graph needs.
    `step` runs one decode step in 3 launches (4 with fused_reduce=False)."""

    def __init__(self, w, fmt: str, batch: int, plan: KernelPlan | None = None) -> None:
        self.fmt, self.batch, self.plan = fmt, batch, plan or KernelPlan()
        self.embed, self.ln_w, self.ln_b = w.embed, w.decode_ln_w, w.decode_ln_b
        self.b1, self.b2 = w.decode_b1, w.decode_b2
        self.w1 = make_linear_weight(w.decode_w1, fmt)
        self.w2 = make_linear_weight(w.decode_w2, fmt)
        self.lm = make_linear_weight(w.lm_head, fmt)
        h = w.decode_w1.shape[0]
        self.hidden = torch.empty(batch, h, dtype=w.embed.dtype, device=w.embed.device)
        self.workspace = make_workspace(self.lm, batch, self.plan.lm_head, w.embed.dtype)

    def tiles(self) -> str:
        """The resolved tiling of each kernel (BLOCK_NxWARPSxACC_PATH[xBLOCK_KxSTAGES]), for the run's notes."""
        p, b, act = self.plan, self.batch, self.embed.dtype
        parts = []
        for role, weight, opts in (("k1", self.w1, p.ln_linear_gelu), ("k2", self.w2, p.linear), ("k3", self.lm, p.lm_head)):
            t = gemv_mod.tiles(weight, opts, role, b, act)
            tail = f"x{t.block_k}x{t.num_stages}" if t.acc_path == 2 else ""
            parts.append(f"{role}={t.block_n}x{t.num_warps}x{t.acc_path}{tail}")
        return " ".join(parts)

    @property
    def weight_bytes(self) -> int:
        """Bytes of quantized/dense weights (and scales) one step reads, biases and LN included."""
        small = sum(t.numel() * t.element_size() for t in (self.ln_w, self.ln_b, self.b1, self.b2))
        return self.w1.nbytes + self.w2.nbytes + self.lm.nbytes + small

    def step(self, tokens: torch.Tensor, state: torch.Tensor, tokens_out: torch.Tensor,
             logits_out: torch.Tensor | None = None) -> None:
        """tokens [B] -> tokens_out [B]; state [B, h] is overwritten with the new state."""
        p = self.plan
        ln_linear_gelu(tokens, self.embed, state, self.ln_w, self.ln_b, self.w1, self.b1, self.hidden,
                       p.ln_linear_gelu)
        linear_bias(self.hidden, self.w2, self.b2, state, p.linear)
        lm_head_argmax(state, self.lm, tokens_out, logits_out, self.workspace, p.lm_head, p.fused_reduce)
