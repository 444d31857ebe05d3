"""The shared-memory persistent decode kernel (CUDA C++, decodeprof_targets/kernels/cuda/persistent_smem.cu).
On the CPU: the fragment order against the mma.sync B-operand definition, the block plan, and a
real nvcc build for sm_90a (resources from ptxas). On a GPU: the kernel against eager steps at five
shapes chosen to reach each code path, CUDA graph replays on changing inputs, and bad input."""

from kernel_env import CUDA, DEVICE  # noqa: I001  (sets TRITON_INTERPRET before the kernels load)

import re

import pytest
import torch

from decodeprof_targets import harness, workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels import cuda_build
from decodeprof_targets.kernels.smem_decode import SmemPersistentDecode, fragment_layout, plan_blocks

AWKWARD = dict(batch=3, hidden=200, vocab=1000, dtype="bf16")  # K pads 200 -> 224 (7 k-pairs), 125 vocab tiles
gpu = pytest.mark.gpu


def b_fragment(w: torch.Tensor, tile: int, kstep: int, lane: int) -> list[float]:
    """The four bf16 values of mma.m16n8k16's B registers b0..b3 for one lane (PTX ISA: row
    (k) = 2 * (lane % 4) + i for b0, b1, + 8 for b2, b3; column (n) = lane // 4), B = W.T."""
    g, t = lane // 4, lane % 4
    n, k0 = tile * 8 + g, kstep * 16

    def at(k: int) -> float:
        return float(w[n, k]) if n < w.shape[0] and k < w.shape[1] else 0.0

    return [at(k0 + 2 * t), at(k0 + 2 * t + 1), at(k0 + 8 + 2 * t), at(k0 + 9 + 2 * t)]


def test_fragment_layout_gives_each_lane_its_b_registers_for_two_k_steps():
    w = torch.randn(13, 70)  # 2 row tiles (3 rows of padding), 3 k-pairs (26 columns of padding)
    f = fragment_layout(w)
    assert f.shape == (2, 3, 32, 8) and f.is_contiguous()
    for tile in range(2):
        for kp in range(3):
            for lane in range(32):
                want = b_fragment(w, tile, 2 * kp, lane) + b_fragment(w, tile, 2 * kp + 1, lane)
                assert f[tile, kp, lane].tolist() == pytest.approx(want, abs=0)


def test_fragment_layout_keeps_every_weight_once():
    w = torch.arange(16 * 64, dtype=torch.float32).view(16, 64)
    f = fragment_layout(w)
    assert sorted(f.flatten().tolist()) == w.flatten().tolist()
    with pytest.raises(TargetError, match="2-D weight"):
        fragment_layout(w.flatten())


def test_block_plan_spreads_the_tiles_over_the_sms():
    assert plan_blocks(1024, 8192, 132) == (128, 1, 8)  # H100, default shape: 160 KB of weights per block
    assert plan_blocks(200, 1000, 132) == (125, 1, 1)
    blocks, t1, t3 = plan_blocks(4096, 32000, 132)
    assert blocks <= 132 and blocks * t1 * 8 >= 4096 and blocks * t3 * 8 >= 32000


@pytest.fixture
def nvcc(tmp_path, monkeypatch) -> str:
    """The CUDA compiler (skip without a toolkit), building into this test's own cache."""
    try:
        path = cuda_build.find_nvcc()
    except TargetError:
        pytest.skip("no CUDA toolkit on this machine")
    monkeypatch.setenv("DECODEPROF_CUDA_CACHE", str(tmp_path))
    return path


def test_nvcc_builds_the_kernel_for_hopper_without_spills(tmp_path, nvcc):
    path, ptxas = cuda_build.compile_library("persistent_smem.cu", "90a")
    assert path.is_file() and path.parent == tmp_path
    assert "persistent_decode_smem_kernel" in ptxas
    # the kernel keeps a few values in local memory around its one out-of-line call (36 bytes with
    # nvcc 13.0); the tile loops themselves must not spill
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", ptxas)]
    assert spills and max(spills) <= 64 and min(spills) == 0, ptxas
    regs = [int(n) for n in re.findall(r"Used (\d+) registers", ptxas)]
    assert regs and max(regs) <= 128, f"{regs} registers: 512 threads per block allow at most 128"
    lib = cuda_build.load("persistent_smem.cu", "90a").library  # cached: no second build
    assert len(list(tmp_path.glob("*.so"))) == 1
    # the default shape's block (4 rows, 1024 columns, 1 + 1 + 8 tiles) fits H100's 227 KB opt-in limit
    assert 160 * 1024 < lib.dp_smem_bytes(4, 1024, 32, 1, 8) <= 227 * 1024
    # one more W1/W2 tile costs its two weight tiles (64 k-pairs x 512 B), its 2 x 8 fp32 biases and
    # 8 more fp32 results per batch row (the result buffer serves stages 1-2 too: T1 > T3 here)
    assert lib.dp_smem_bytes(4, 2048, 64, 2, 1) - lib.dp_smem_bytes(4, 2048, 64, 1, 1) == 2 * 64 * 512 + 2 * 8 * 4 + 4 * 8 * 4


def test_a_build_error_names_the_source_and_keeps_no_library(tmp_path, nvcc):
    with pytest.raises(TargetError, match="nvcc failed to build persistent_smem.cu for sm_12345"):
        cuda_build.compile_library("persistent_smem.cu", "12345", nvcc)
    assert list(tmp_path.iterdir()) == []


def test_tuning_defines_the_kernel_cannot_run_with_fail_to_build(nvcc):
    """8 warps cannot give each of 16 batch rows a warp in LayerNorm (a division by zero at run
    time): the build refuses it and names the define."""
    with pytest.raises(TargetError, match="DP_WARPS must be a power of two >= 16"):
        cuda_build.compile_library("persistent_smem.cu", "90a", nvcc, defines=("DP_WARPS=8",))
    with pytest.raises(TargetError, match="DP_NT_CHUNK must be >= 1"):
        cuda_build.compile_library("persistent_smem.cu", "90a", nvcc, defines=("DP_NT_CHUNK=0",))


def test_output_buffers_that_share_memory_are_refused():
    from decodeprof_targets.kernels.smem_decode import _no_overlap

    buf = torch.zeros(4, 64)
    _no_overlap({"state": buf[:, :32], "logits_out": torch.zeros(4, 10)})  # separate: fine
    with pytest.raises(TargetError, match="share memory"):
        _no_overlap({"state": buf[:2], "logits_out": buf[1:]})
    _no_overlap({"a": buf[:2], "b": buf[2:]})  # adjacent, not overlapping


def test_missing_nvcc_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NVCC", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    with pytest.raises(TargetError, match="nvcc .* was not found"):
        cuda_build.find_nvcc()


@pytest.mark.skipif(CUDA, reason="the CPU-side refusal")
def test_without_a_gpu_the_kernel_refuses_clearly():
    w = workload.make_weights(workload.Config(steps=2, device="cpu", **AWKWARD))
    with pytest.raises(TargetError, match="needs a CUDA GPU"):
        SmemPersistentDecode(w, 3)


# ---- on the GPU -------------------------------------------------------------------------------
# (batch, hidden, vocab) and what each exercises, on the H100's 132 SMs:
SHAPES = [
    (3, 200, 1000),  # K padded 200 -> 224 (7 k-pairs, odd), 125 vocabulary tiles
    (4, 2048, 512),  # more W1/W2 tiles per block than lm_head tiles (T1 2 > T3 1)
    (16, 256, 1000),  # batch rows 8-15: the mma's second row group
    (1, 72, 8190),  # 8-tile chunks of the lm_head (T3 8), vocabulary not a multiple of 8
    (2, 512, 100),  # blocks without vocabulary rows publish neutral partials
]


def _weights(batch: int, hidden: int, vocab: int):
    return workload.make_weights(workload.Config(steps=4, batch=batch, hidden=hidden, vocab=vocab, dtype="bf16",
                                                 device=DEVICE.type))


def _inputs(batch: int, hidden: int, vocab: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(batch, hidden, generator=g).to(DEVICE, torch.bfloat16)
    return torch.randint(0, vocab, (batch,), generator=g).to(DEVICE), state


@gpu
@pytest.mark.parametrize("shape", SHAPES, ids=[f"b{b}h{h}v{v}" for b, h, v in SHAPES])
def test_steps_match_the_eager_steps(shape):
    b, hidden, vocab = shape
    weights = _weights(*shape)
    tok, state = _inputs(*shape, seed=sum(shape))
    steps = 6
    k = SmemPersistentDecode(weights, b)
    got_state, got_tokens = state.clone(), torch.empty(b, steps, dtype=torch.int64, device=DEVICE)
    got_logits = torch.empty(b, vocab, dtype=torch.bfloat16, device=DEVICE)
    k.run(tok, got_state, got_tokens, got_logits)
    k.check_error()
    # teacher-forced eager steps from the kernel's own tokens: each step's math is compared, not a
    # free-running sequence that a 1-ulp near-tie could send elsewhere
    st, t = state.clone(), tok
    for i in range(steps):
        want_tok, st, logits = workload.decode_step(weights, t, st)
        margin = logits.float().topk(2, dim=-1).values
        near_tie = (margin[:, 0] - margin[:, 1]) <= 0.125
        assert ((got_tokens[:, i] == want_tok) | near_tie).all(), f"step {i}"
        t = got_tokens[:, i]
    assert ((got_state.float() - st.float()).abs() <= 2 * 2**-7 * st.float().abs() + 0.02).all()
    assert ((got_logits.float() - logits.float()).abs() <= 0.125).all()
    assert torch.equal(torch.argmax(got_logits, -1), got_tokens[:, -1])


@gpu
def test_graph_replays_on_new_inputs_match_direct_launches():
    """Each replay gets other tokens and state: a replay that took words left by the previous one
    (a flag that failed to advance) would return that replay's tokens."""
    shape = SHAPES[0]
    k = SmemPersistentDecode(_weights(*shape), shape[0])
    tok_in, state_in = _inputs(*shape, seed=0)
    out = torch.empty(shape[0], 5, dtype=torch.int64, device=DEVICE)
    g = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side), torch.cuda.graph(g, stream=side):
        k.run(tok_in, state_in, out)
    seen = []
    for seed in range(1, 4):
        tok, state = _inputs(*shape, seed=seed)
        direct_state, direct = state.clone(), torch.empty_like(out)
        k.run(tok, direct_state, direct)
        tok_in.copy_(tok)
        state_in.copy_(state)
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, direct) and torch.equal(state_in, direct_state)
        seen.append(direct.clone())
    assert not torch.equal(seen[0], seen[1])  # the inputs really differ
    k.check_error()


@gpu
def test_target_passes_the_harness_check_at_an_awkward_shape():
    cfg = workload.Config(steps=3, device="cuda", **AWKWARD)
    w = workload.make_weights(cfg)
    variant = __import__("decodeprof_targets.persistent_smem", fromlist=["build"]).build(cfg, w)
    result = harness.check_correctness(cfg, w, variant)
    assert result["teacher_forced"]["token_agreement"] == 1.0
    assert variant.active[0].startswith("persistent_smem: 1 launch")
    variant.verify_runs()


@gpu
def test_bad_input_and_error_flags():
    """Host checks, and the token-range flag the kernel sets itself. The wait-timeout flag is only
    read here (set by hand): a block that never arrives cannot be arranged from the host."""
    weights = _weights(*SHAPES[0])
    with pytest.raises(TargetError, match="batch 17"):
        SmemPersistentDecode(weights, 17)
    k = SmemPersistentDecode(weights, 3)
    tok, state = _inputs(*SHAPES[0], seed=3)
    with pytest.raises(TargetError, match="state must be"):
        k.run(tok, state[:, :64], torch.empty(3, 2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TargetError, match="tokens must be"):
        k.run(tok.int(), state, torch.empty(3, 2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TargetError, match="tokens_out must be int64"):
        k.run(tok, state, torch.empty(3, 0, dtype=torch.int64, device=DEVICE))
    for bad in (1000, 2**32 + 5):  # out of range, and one that would wrap into range as 32 bits
        k.error.zero_()
        k.run(torch.tensor([0, bad, 2], device=DEVICE), state.clone(), torch.empty(3, 2, dtype=torch.int64, device=DEVICE))
        with pytest.raises(TargetError, match="token id outside 0..999"):
            k.check_error()
    k.error.fill_(1)
    with pytest.raises(TargetError, match="waited in vain"):
        k.check_error()
    odd = workload.make_weights(workload.Config(steps=1, batch=2, hidden=100, vocab=64, dtype="bf16", device="cuda"))
    with pytest.raises(TargetError, match="hidden size 100 is not a multiple of 8"):
        SmemPersistentDecode(odd, 2)
    strided = _weights(*SHAPES[0])
    strided.decode_b1 = torch.stack([strided.decode_b1, strided.decode_b1], dim=1)[:, 0]
    with pytest.raises(TargetError, match="decode_b1 must be a contiguous, 16-byte aligned bf16"):
        SmemPersistentDecode(strided, 3)
    big = workload.make_weights(workload.Config(steps=1, batch=4, hidden=2048, vocab=32768, dtype="bf16", device="cuda"))
    with pytest.raises(TargetError, match="do not fit in shared memory"):
        SmemPersistentDecode(big, 4)
