"""The kernel targets (fp8, fp4, warp_specialized, double_buffer_tma) built and checked by the
shared harness: on CPU through the Triton interpreter at a small awkward shape (no CUDA graph),
and on the GPU (marked gpu) at the default shape under the CUDA graph."""

from kernel_env import CUDA  # noqa: I001  (sets TRITON_INTERPRET before the kernels load)

import importlib
import sys

import pytest

from decodeprof_targets import harness, workload
from decodeprof_targets.errors import TargetError

LABELS = ["warp_specialized", "double_buffer_tma", "fp8", "fp4"]


def _small(device: str = "cpu", steps: int = 2) -> workload.Config:
    return workload.Config(batch=3, hidden=96, vocab=200, dtype="bf16", device=device, steps=steps)


def _dequantized(w: workload.Weights, fmt: str) -> workload.Weights:
    import dataclasses

    from decodeprof_targets.kernels.quant import make_linear_weight

    names = ("decode_w1", "decode_w2", "lm_head")
    return dataclasses.replace(w, **{n: make_linear_weight(getattr(w, n), fmt).dequantized().to(w.embed.dtype)
                                     for n in names})


@pytest.mark.skipif(CUDA, reason="the CPU-interpreter variant of this test; the gpu-marked one runs on CUDA")
@pytest.mark.parametrize("label", LABELS)
def test_target_builds_and_passes_harness_check_on_cpu(label, monkeypatch):
    monkeypatch.delenv("DECODEPROF_FP8_PATH", raising=False)
    cfg = _small()
    w = workload.make_weights(cfg)
    variant = importlib.import_module(f"decodeprof_targets.{label}").build(cfg, w)
    if label in ("fp8", "fp4"):
        # Check the implementation, not the quantization: the reference runs the same quantized
        # weights (dequantized to bf16), so only bf16 rounding separates them. (The target's own
        # tolerance against bf16 needs the default shape's 64 steps to mean anything.)
        w = _dequantized(w, label)
        variant.tolerance = harness.Tolerance(min_token_agreement=0.8, max_abs_logit_err=0.125)
    result = harness.check_correctness(cfg, w, variant)
    assert result["teacher_forced"]["token_agreement"] >= variant.tolerance.min_token_agreement
    dense = workload.weight_bytes_per_step(w, cfg.batch)
    share = {"fp8": (0.5, 0.6), "fp4": (0.25, 0.4)}.get(label, (1.0, 1.05))  # stored bytes / bf16 bytes
    assert share[0] <= variant.weight_bytes_per_step / dense <= share[1]
    assert any("kernels:" in a for a in variant.active)
    assert any("no CUDA graph" in f for f in variant.fallbacks)
    if label in ("fp8", "fp4"):
        assert any(a.startswith(f"{label}_path=triton") for a in variant.active)
        assert any("logits_vs_bf16_one_step" in a for a in variant.active)
        assert any("Transformer Engine" in f or "TE NVFP4" in f for f in variant.fallbacks)


@pytest.mark.skipif(CUDA, reason="CPU fallback behaviour")
@pytest.mark.parametrize("path,expected", [("scaled_mm", "scaled_mm path not used"), ("te", "Transformer Engine path not used")])
def test_fp8_requested_path_falls_back_with_reason(path, expected, monkeypatch):
    monkeypatch.setenv("DECODEPROF_FP8_PATH", path)
    monkeypatch.setenv("DECODEPROF_KERNEL_MODE", "plain")
    cfg = _small(steps=1)
    variant = importlib.import_module("decodeprof_targets.fp8").build(cfg, workload.make_weights(cfg))
    assert any(expected in f for f in variant.fallbacks)
    assert "fp8_path=triton_weight_only_fp8_e4m3_per_channel" in variant.active


def test_scaled_mm_linears_count_the_fp8_bytes_they_read():
    from decodeprof_targets.fp8 import ScaledMmLinears

    cfg = _small()
    w = workload.make_weights(cfg)
    linears = ScaledMmLinears(w)
    h, v = cfg.hidden, cfg.vocab
    fp8 = 2 * h * h + v * h  # one byte per weight
    scales = 4 * (h + h + v)  # one fp32 scale per output channel
    biases = 2 * 2 * h  # bf16 b1, b2
    layer_norm = 2 * 2 * h  # bf16 weight and bias
    assert linears.weight_bytes == fp8 + scales + biases + layer_norm


def test_fp8_path_env_rejects_unknown(monkeypatch):
    monkeypatch.setenv("DECODEPROF_FP8_PATH", "int8")
    from decodeprof_targets import fp8

    with pytest.raises(TargetError, match="DECODEPROF_FP8_PATH"):
        fp8.requested_path()


def test_te_status_without_transformer_engine(monkeypatch):
    import torch

    from decodeprof_targets.kernels.te_linear import te_status

    monkeypatch.setitem(sys.modules, "transformer_engine", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "transformer_engine.pytorch", None)
    for kind in ("fp8", "nvfp4"):
        te, reason = te_status(kind, torch.device("cuda"))
        assert te is None and "import transformer_engine.pytorch failed" in reason


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("label", LABELS)
def test_target_runs_on_gpu(label):
    cfg = workload.Config(steps=16, warmup=1, iters=2)
    result = harness.run(label, importlib.import_module(f"decodeprof_targets.{label}").build, cfg)
    assert "cuda_graph_decode" in result["active"]
    assert result["metrics"]["decode_ms"]["median"] > 0
