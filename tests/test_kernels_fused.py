"""Fused decode kernels (kernel 1, kernel 3 with its argmax, a whole step) against torch at
awkward sizes (batch 3, hidden 96, vocab 200); CPU interpreter without CUDA."""

from kernel_env import DEVICE  # noqa: I001  (sets TRITON_INTERPRET before the kernels load)

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from decodeprof_targets import workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels.common import LaunchOptions
from decodeprof_targets.kernels.fused_decode import (DecodeKernels, KernelPlan, ln_linear_gelu, lm_head_argmax,
                                          make_workspace)
from decodeprof_targets.kernels.quant import make_linear_weight

TMA_WS = LaunchOptions(use_tma=True, warp_specialize=True, num_stages=2)
DOT = LaunchOptions(block_n=32, acc_path=2, block_k=64, num_stages=2)  # tensor-core tiles (K of 96: a masked tail)
DOT_TMA_WS = dataclasses.replace(DOT, use_tma=True, warp_specialize=True)


def close(got: torch.Tensor, want: torch.Tensor, ulps: float = 1.0) -> bool:
    """Within `ulps` bf16 ulps (relative 2^-7 each) plus a small absolute slack near zero."""
    return bool(((got.float() - want.float()).abs() <= ulps * 2**-7 * want.float().abs() + 0.02).all())


@pytest.fixture(scope="module")
def weights():
    cfg = workload.Config(batch=3, hidden=96, vocab=200, dtype="bf16", device=DEVICE.type, steps=2)
    return workload.make_weights(cfg)


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 96, generator=g).to(DEVICE, torch.bfloat16), torch.tensor([5, 199, 17], device=DEVICE)


@pytest.mark.parametrize("fmt", ["bf16", "fp8", "fp4"])
@pytest.mark.parametrize("dot", [False, True])
def test_ln_linear_gelu_matches_torch(weights, fmt, dot):
    w = weights
    state, tok = _state()
    lw = make_linear_weight(w.decode_w1, fmt)
    opts = DOT if dot else TMA_WS if fmt == "fp4" else LaunchOptions()
    out = ln_linear_gelu(tok, w.embed, state, w.decode_ln_w, w.decode_ln_b, lw, w.decode_b1, opts=opts)
    x = F.layer_norm(F.embedding(tok, w.embed) + state, (96,), w.decode_ln_w, w.decode_ln_b)
    ref = F.gelu(F.linear(x.float(), lw.dequantized(), w.decode_b1.float()).to(torch.bfloat16))
    assert close(out, ref)


@pytest.mark.parametrize("fused_reduce,opts", [(True, LaunchOptions()), (False, LaunchOptions()), (True, DOT)])
def test_lm_head_argmax_ties_and_logits(weights, fused_reduce, opts):
    w = weights
    state, _ = _state(1)
    lm = w.lm_head.clone()
    lm[150] = lm[3] = state[0] * 0.5  # rows 3 and 150 tie as row 0's maximum: the lower index must win
    lw = make_linear_weight(lm, "bf16")
    ws = make_workspace(lw, 3, opts)
    logits = torch.empty(3, 200, dtype=torch.bfloat16, device=DEVICE)
    tokens = lm_head_argmax(state, lw, logits_out=logits, workspace=ws, opts=opts, fused_reduce=fused_reduce)
    ref = F.linear(state.float(), lm.float()).to(torch.bfloat16)
    assert close(logits, ref)
    assert tokens[0].item() == 3
    assert torch.equal(tokens, torch.argmax(logits, dim=-1))  # exact argmax of what the kernel computed
    assert ws.count.item() == 0  # the last program resets the counter for the next launch
    again = lm_head_argmax(state, lw, workspace=ws, opts=opts, fused_reduce=fused_reduce)  # no logits written
    assert torch.equal(again, tokens)


@pytest.mark.parametrize("fmt,plan", [("bf16", KernelPlan()), ("bf16", KernelPlan(TMA_WS, TMA_WS, TMA_WS)),
                                      ("fp8", KernelPlan(fused_reduce=False)), ("fp4", KernelPlan()),
                                      ("fp8", KernelPlan(DOT, DOT, DOT)), ("fp4", KernelPlan(DOT, DOT, DOT)),
                                      ("bf16", KernelPlan(DOT_TMA_WS, DOT_TMA_WS, DOT_TMA_WS)),
                                      ("fp4", KernelPlan(DOT_TMA_WS, DOT_TMA_WS, DOT_TMA_WS))])
def test_decode_step_matches_reference(weights, fmt, plan):
    w = weights
    state, tok = _state(2)
    dk = DecodeKernels(w, fmt, 3, plan)
    if fmt == "bf16":
        ref_w = w
    else:  # the reference with the same quantized weights, dequantized to bf16
        ref_w = dataclasses.replace(w, **{name: make_linear_weight(getattr(w, name), fmt).dequantized().to(torch.bfloat16)
                                          for name in ("decode_w1", "decode_w2", "lm_head")})
    ref_tok, ref_state, ref_logits = workload.decode_step(ref_w, tok, state)
    st, out = state.clone(), torch.empty(3, dtype=torch.int64, device=DEVICE)
    logits = torch.empty(3, 200, dtype=torch.bfloat16, device=DEVICE)
    dk.step(tok, st, out, logits)
    assert close(st, ref_state, ulps=2)
    assert close(logits, ref_logits, ulps=2)
    assert torch.equal(out, torch.argmax(logits, dim=-1))


def test_fused_misuse_raises_target_error(weights):
    w = weights
    state, tok = _state()
    lw = make_linear_weight(w.decode_w1, "bf16")
    with pytest.raises(TargetError, match="shares storage"):
        ln_linear_gelu(tok, w.embed, state, w.decode_ln_w, w.decode_ln_b, lw, w.decode_b1, out=state)
    with pytest.raises(TargetError, match="tokens"):
        ln_linear_gelu(tok.int(), w.embed, state, w.decode_ln_w, w.decode_ln_b, lw, w.decode_b1)
    lm = make_linear_weight(w.lm_head, "bf16")
    with pytest.raises(TargetError, match="workspace"):  # made for batch rows of another width
        lm_head_argmax(state[:2], lm, workspace=make_workspace(lm, 3, LaunchOptions(block_n=16, acc_path=1)),
                       opts=LaunchOptions(block_n=16, acc_path=1))
    with pytest.raises(TargetError, match="workspace"):  # made for another weight
        lm_head_argmax(state, lm, workspace=make_workspace(lw, 3))
