"""The persistent decode kernel (all steps in one launch) against the three-kernel step and the
eager reference. Without CUDA it runs in Triton's CPU interpreter with one program (there a grid
barrier is passed at once); with CUDA, with one program per SM."""

from kernel_env import CUDA, DEVICE  # noqa: I001  (sets TRITON_INTERPRET before the kernels load)

import pytest
import torch

from decodeprof_targets import harness, workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels.common import LaunchOptions
from decodeprof_targets.kernels.fused_decode import DecodeKernels, KernelPlan
from decodeprof_targets.kernels.persistent import PersistentDecode

SMALL = dict(batch=3, hidden=96, vocab=200, dtype="bf16", device=DEVICE.type)
TILES = ((16, 64, 1), (16, 32, 2), (32, 64, 2))  # K=96: masked tails in every stage


@pytest.fixture(scope="module")
def weights():
    return workload.make_weights(workload.Config(steps=4, **SMALL))


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(3, 96, generator=g).to(DEVICE, torch.bfloat16)
    return torch.tensor([5, 199, 17], device=DEVICE), state


@pytest.mark.parametrize("fmt", ["bf16", "fp8"])
def test_persistent_steps_match_the_three_kernel_steps(weights, fmt):
    tok, state = _inputs(0)
    steps = 4
    pd = PersistentDecode(weights, fmt, 3, tiles=TILES)
    got_state = state.clone()
    got_tokens = torch.empty(3, steps, dtype=torch.int64, device=DEVICE)
    got_logits = torch.empty(3, 200, dtype=torch.bfloat16, device=DEVICE)
    pd.run(tok, got_state, got_tokens, got_logits)
    pd.check_error()

    # the same math by the registers-only kernels (accumulation path 1: no tensor cores), one launch per kernel and step
    dk = DecodeKernels(weights, fmt, 3, KernelPlan(*[LaunchOptions(acc_path=1)] * 3))
    st, t = state.clone(), tok.clone()
    want = []
    logits = torch.empty(3, 200, dtype=torch.bfloat16, device=DEVICE)
    for _ in range(steps):
        out = torch.empty_like(t)
        dk.step(t, st, out, logits)
        want.append(out)
        t = out
    assert torch.equal(got_tokens, torch.stack(want, dim=1))
    # fp32 sums in another order, then one bf16 rounding: within 2 bf16 ulps plus slack near zero
    assert ((got_state.float() - st.float()).abs() <= 2 * 2**-7 * st.float().abs() + 0.02).all()
    assert ((got_logits.float() - logits.float()).abs() <= 2 * 2**-7 * logits.float().abs() + 0.02).all()
    assert torch.equal(torch.argmax(got_logits, -1), got_tokens[:, -1])


def test_persistent_target_passes_the_harness_check():
    cfg = workload.Config(steps=3, **SMALL)
    w = workload.make_weights(cfg)
    variant = __import__("decodeprof_targets.persistent", fromlist=["build"]).build(cfg, w)
    result = harness.check_correctness(cfg, w, variant)
    assert result["teacher_forced"]["token_agreement"] == 1.0
    assert any(a.startswith("persistent: 1 launch") for a in variant.active)
    if not CUDA:
        assert "1 programs" in variant.active[0]


def test_persistent_rejects_bad_input(weights):
    with pytest.raises(TargetError, match="batch 17"):
        PersistentDecode(weights, "bf16", 17)
    with pytest.raises(TargetError, match="unknown weight format"):
        PersistentDecode(weights, "int4", 3)
    with pytest.raises(TargetError, match="powers of two"):
        PersistentDecode(weights, "bf16", 3, tiles=((8, 64, 1), (16, 32, 2), (32, 64, 2)))
    pd = PersistentDecode(weights, "bf16", 3, tiles=TILES)
    tok, state = _inputs(1)
    with pytest.raises(TargetError, match="state must be"):
        pd.run(tok, state[:, :64], torch.empty(3, 2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TargetError, match="tokens must be"):
        pd.run(tok.int(), state, torch.empty(3, 2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TargetError, match="tokens_out must be int64"):
        pd.run(tok, state, torch.empty(3, 2, dtype=torch.int32, device=DEVICE))
    with pytest.raises(TargetError, match="tokens_out must be int64"):
        pd.run(tok, state, torch.empty(2, 3, dtype=torch.int64, device=DEVICE).t())


def test_a_barrier_timeout_is_reported_after_the_runs():
    cfg = workload.Config(steps=2, **SMALL)
    variant = __import__("decodeprof_targets.persistent", fromlist=["build"]).build(cfg, workload.make_weights(cfg))
    variant.verify_runs()  # clean so far
    variant.kernel.error.fill_(1)  # what a program that gave up waiting at a barrier writes
    with pytest.raises(TargetError, match="grid barrier of the persistent kernel timed out"):
        variant.verify_runs()
