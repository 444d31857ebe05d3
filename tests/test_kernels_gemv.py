"""GEMV kernels (dense, FP8, FP4) against torch at awkward sizes. Without CUDA they run in
Triton's CPU interpreter; with CUDA, for real (same checks)."""

from kernel_env import CUDA, DEVICE  # noqa: I001  (sets TRITON_INTERPRET before the kernels load)

import pytest
import torch

from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels.common import LaunchOptions
from decodeprof_targets.kernels.gemv import gemv, gemv_bytes
from decodeprof_targets.kernels.gemv_fp4 import gemv_fp4
from decodeprof_targets.kernels.gemv_fp8 import gemv_fp8
from decodeprof_targets.kernels.quant import make_linear_weight

FNS = {"bf16": gemv, "fp8": gemv_fp8, "fp4": gemv_fp4}
PLANS = {"plain": LaunchOptions(), "tma_ws": LaunchOptions(use_tma=True, warp_specialize=True, num_stages=2),
         "dot": LaunchOptions(block_n=16, acc_path=2, block_k=32, num_stages=2)}


def _inputs(b: int, k: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, k, generator=g).to(DEVICE, torch.bfloat16)
    w = (torch.randn(n, k, generator=g) * k**-0.5).to(DEVICE, torch.bfloat16)
    bias = (torch.randn(n, generator=g) * 0.1).to(DEVICE, torch.bfloat16)
    return x, w, bias


@pytest.mark.parametrize("fmt", list(FNS))
@pytest.mark.parametrize("plan", list(PLANS))
def test_gemv_matches_torch(fmt, plan):
    x, w, bias = _inputs(3, 96, 200)
    lw = make_linear_weight(w, fmt)
    out = FNS[fmt](x, lw, bias, opts=PLANS[plan])
    ref = x.float() @ lw.dequantized().T + bias.float()
    assert out.shape == (3, 200) and out.dtype == torch.bfloat16
    # one bf16 rounding of the output (|ref| < 8 here -> ulp <= 1/32) plus summation order
    assert (out.float() - ref).abs().max().item() <= 0.04


@pytest.mark.parametrize("fmt", list(FNS))
@pytest.mark.parametrize("plan", ["plain", "dot"])
def test_gemv_batch1_k_not_multiple_of_16(fmt, plan):
    x, w, bias = _inputs(1, 40, 72, seed=1)
    lw = make_linear_weight(w, fmt)
    out = FNS[fmt](x, lw, None, opts=PLANS[plan])
    ref = x.float() @ lw.dequantized().T
    assert (out.float() - ref).abs().max().item() <= 0.04


def test_gemv_strided_rows_and_preallocated_out():
    x, w, bias = _inputs(4, 64, 48, seed=2)
    big = torch.zeros(4, 128, dtype=torch.bfloat16, device=DEVICE)
    big[:, :64] = x
    out = torch.empty(4, 48, dtype=torch.bfloat16, device=DEVICE)
    gemv(big[:, :64], make_linear_weight(w, "bf16"), bias, out=out)
    assert (out.float() - (x.float() @ w.float().T + bias.float())).abs().max().item() <= 0.04


def test_gemv_misuse_raises_target_error():
    x, w, bias = _inputs(3, 32, 16)
    lw8 = make_linear_weight(w, "fp8")
    with pytest.raises(TargetError, match="reads bf16"):
        gemv(x, lw8)
    with pytest.raises(TargetError, match="batch 17"):
        gemv_fp8(torch.zeros(17, 32, dtype=torch.bfloat16, device=DEVICE), lw8)
    with pytest.raises(TargetError, match="dtype"):
        gemv(x.float(), make_linear_weight(w, "bf16"))
    with pytest.raises(TargetError, match="shape"):
        gemv(x, make_linear_weight(w, "bf16"), bias[:8])
    with pytest.raises(TargetError, match=r"\[3, 32\]"):
        gemv(x[:, :16], make_linear_weight(w, "bf16"))
    if not CUDA:  # CPU tensors outside the interpreter are refused before any launch
        import os
        os.environ["TRITON_INTERPRET"] = "0"
        try:
            with pytest.raises(TargetError, match="interpreter"):
                gemv(x, make_linear_weight(w, "bf16"))
        finally:
            os.environ["TRITON_INTERPRET"] = "1"


def test_gemv_bytes_formula():
    w = torch.zeros(1024, 1024, dtype=torch.bfloat16)
    assert gemv_bytes(make_linear_weight(w, "bf16"), 4) == 1024 * 1024 * 2 + 4 * 1024 * 2 * 2 + 2048
    assert gemv_bytes(make_linear_weight(w, "fp4"), 4, bias=False) == 1024 * 512 + 1024 * 64 + 4 + 4 * 1024 * 2 * 2


def test_tile_spec_parsing_and_tma_plans_keep_their_pipeline(monkeypatch):
    from decodeprof_targets.kernels.common import TILES_ENV
    from decodeprof_targets.kernels.gemv import tiles

    lw = make_linear_weight(torch.zeros(64, 1024, dtype=torch.bfloat16, device=DEVICE), "bf16")
    monkeypatch.setenv(TILES_ENV, "bf16:k1=32x1x2x1024x1")
    t = tiles(lw, LaunchOptions(), "k1", batch=4)
    assert (t.block_n, t.num_warps, t.acc_path, t.block_k, t.num_stages, t.block_b) == (32, 1, 2, 1024, 1, 16)
    # a TMA plan keeps its own stages and warps, and a box of at most 256 elements
    t = tiles(lw, LaunchOptions(use_tma=True, num_stages=2, num_warps=4, acc_path=2), "k1", batch=4)
    assert (t.block_n, t.num_warps, t.acc_path, t.block_k, t.num_stages) == (32, 4, 2, 256, 2)
    # fp32 activations cannot use the tensor-core tiles: registers-only variant instead
    assert tiles(lw, LaunchOptions(), "k1", batch=4, act_dtype=torch.float32).acc_path == 1
    for bad in ("bf16:k1=32x1x2x1024", "bf16:k1=0x4", "bf16:k1=24x4x2", "bf16:k1=16x4x3", "bf16:k1=16x4x2x96x2",
                "bf16:k1=16x0", "bf16:k1=16x4x2x256x0"):
        monkeypatch.setenv(TILES_ENV, bad)
        with pytest.raises(TargetError, match="BLOCK_NxWARPS"):
            tiles(lw, LaunchOptions(), "k1", batch=4)
