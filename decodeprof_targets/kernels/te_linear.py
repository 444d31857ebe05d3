"""Transformer Engine Linears for the fp8 (Float8CurrentScaling) and fp4 (NVFP4BlockScaling)
targets. TE cannot be installed on our machines (see /work/shared/NOTES.md), so this path is
written against TE's documented API (te.Linear, te.fp8_autocast(enabled, fp8_recipe),
transformer_engine.common.recipe) and only `te_status`'s fallback is exercised in tests.

TE's FP8/FP4 GEMMs want the token dimension a multiple of 16 (8 for FP8), so the batch rows are
copied into a zero-padded [round_up(B, 16), K] buffer; the padding rows are never written.
"""

from __future__ import annotations

import torch

from decodeprof_targets.workload import Weights


def te_status(kind: str, device: torch.device) -> tuple[object | None, str | None]:
    """(transformer_engine.pytorch, None) when the `kind` ("fp8" or "nvfp4") recipe can run here,
    else (None, why not)."""
    try:
        import transformer_engine.pytorch as te
        from transformer_engine.common import recipe
    except Exception as exc:  # ImportError, or a broken install raising anything at import
        return None, f"import transformer_engine.pytorch failed ({type(exc).__name__}: {str(exc)[:120]})"
    if device.type != "cuda":
        return None, "Transformer Engine needs a CUDA device"
    if kind == "fp8":
        ok, reason = _fp8_supported(te)
        if not ok:
            return None, f"Transformer Engine reports no FP8 support here: {reason}"
        if not hasattr(recipe, "Float8CurrentScaling"):
            return None, "this Transformer Engine has no Float8CurrentScaling recipe (needs TE >= 2.2)"
        return te, None
    major, minor = torch.cuda.get_device_capability(device)
    if major < 10:
        return None, f"NVFP4 needs Blackwell (sm_100+); this GPU is sm_{major}{minor}"
    if not hasattr(recipe, "NVFP4BlockScaling"):
        return None, "this Transformer Engine has no NVFP4BlockScaling recipe (needs a newer TE)"
    return te, None


def _fp8_supported(te) -> tuple[bool, str]:
    fn = getattr(te, "is_fp8_available", None)
    if fn is not None:
        try:
            ok, reason = fn(return_reason=True)
        except TypeError:
            ok, reason = bool(fn()), "unsupported GPU"
        return bool(ok), str(reason)
    from transformer_engine.pytorch.fp8 import check_fp8_support

    ok, reason = check_fp8_support()
    return bool(ok), str(reason)


class TeLinears:
    """The decode step's three Linears as te.Linear modules under one recipe."""

    def __init__(self, te, w: Weights, batch: int, kind: str) -> None:
        from transformer_engine.common import recipe

        self.te = te
        self.recipe = recipe.Float8CurrentScaling() if kind == "fp8" else recipe.NVFP4BlockScaling()
        h, v = w.decode_w1.shape[1], w.lm_head.shape[0]
        dtype, dev = w.embed.dtype, w.embed.device
        self.layers = {
            "w1": te.Linear(h, h, bias=True, params_dtype=dtype, device=dev),
            "w2": te.Linear(h, h, bias=True, params_dtype=dtype, device=dev),
            "lm": te.Linear(h, v, bias=False, params_dtype=dtype, device=dev),
        }
        with torch.no_grad():
            for name, weight, bias in (("w1", w.decode_w1, w.decode_b1), ("w2", w.decode_w2, w.decode_b2),
                                       ("lm", w.lm_head, None)):
                self.layers[name].weight.copy_(weight)
                if bias is not None:
                    self.layers[name].bias.copy_(bias)
        self.batch = batch
        self.ln_bytes = w.decode_ln_w.nbytes + w.decode_ln_b.nbytes  # the step's LayerNorm reads them too
        self.padded = torch.zeros(-(-batch // 16) * 16, h, dtype=dtype, device=dev)

    @property
    def weight_bytes(self) -> int:
        """The modules' bf16 weights and biases (and the LayerNorm's): te.Linear called without
        is_first_microbatch quantizes its weight on every call, so each step reads the bf16 copy."""
        return sum(p.numel() * p.element_size() for layer in self.layers.values() for p in layer.parameters()) + self.ln_bytes

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        self.padded[: self.batch].copy_(x)
        with self.te.fp8_autocast(enabled=True, fp8_recipe=self.recipe):
            y = self.layers[name](self.padded)
        return y[: self.batch]
