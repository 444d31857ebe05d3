"""fp8: the decode MLP and lm_head with FP8 (E4M3) weights, decode loop under one CUDA graph.

Path, chosen by the environment variable DECODEPROF_FP8_PATH (the shared harness has no
per-target flags):
  auto       (default) te if Transformer Engine imports and supports FP8 here, else triton
  triton     weight-only FP8: E4M3 weights with per-output-channel scales, bf16 activations,
             the three fused Triton kernels (fp8_fused_ln_linear_gelu_kernel, fp8_gemv_kernel,
             fp8_lm_head_argmax_kernel); half of bf16's weight bytes
  scaled_mm  FP8 weights AND activations through torch._scaled_mm (cuBLASLt) with rowwise scales
             (per-row activation scale computed each step, per-channel weight scale); needs sm_89+
  te         te.Linear under te.fp8_autocast with the Float8CurrentScaling recipe
A requested path that cannot run falls back to triton with the reason in `fallbacks`; `active`
names the path that ran and the measured one-step logits error against bf16.
DECODEPROF_KERNEL_MODE=plain|ws|tma2 picks the Triton kernels' loading scheme (default plain:
the pointer-load kernels, the fastest on the H100; ws/tma2 measured 1.4-2.8x slower: benchmarks/RESULTS.md).

Tolerance: the harness checks it teacher-forced (each step fed the reference's tokens and state).
Measured on CPU with the Triton interpreter (batch 3, hidden 96, vocab 200, bf16, 16 steps,
seeds 0-2): teacher-forced token agreement 0.90 / 0.96 / 0.94, max |logit error| 0.12 / 0.11 /
0.13; one-step max_rel 0.035-0.068, mean_rel ~0.045. Bound: agreement >= 0.85, max |logit
error| <= 0.25 (about 2x measured; the lead re-checks at the default shape on the GPU).
"""

from __future__ import annotations

import os

import torch

from decodeprof_targets.errors import TargetError
from decodeprof_targets.harness import Tolerance
from decodeprof_targets.kernels.graph_loop import (GraphKernelLoop, choose_plan, describe_error, eager_step, kernel_mode,
                                     logits_error, probe_inputs, run_step)
from decodeprof_targets.workload import Config, Weights

FP8_PATH_ENV = "DECODEPROF_FP8_PATH"
PATHS = ("auto", "triton", "scaled_mm", "te")
TOLERANCE = Tolerance(min_token_agreement=0.85, max_abs_logit_err=0.25)


def requested_path() -> str:
    path = os.environ.get(FP8_PATH_ENV, "auto")
    if path not in PATHS:
        raise TargetError(f"{FP8_PATH_ENV}={path!r} is not one of {', '.join(PATHS)}")
    return path


def fp8_unsupported_reason(cfg: Config) -> str | None:
    if cfg.device != "cuda":
        return None  # the Triton interpreter emulates FP8 on the CPU
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 9):
        return f"FP8 E4M3 needs compute capability 8.9+ (Ada/Hopper); this GPU is {major}.{minor}"
    return None


class ScaledMmLinears:
    """FP8 weights [N, K] (per-channel scales) and per-row dynamic activation scales, through
    torch._scaled_mm: out = (xq * sx) @ (wq * sw).T + bias in bf16."""

    def __init__(self, w: Weights) -> None:
        from decodeprof_targets.kernels.quant import quantize_fp8_per_channel

        self.bias = {"w1": w.decode_b1, "w2": w.decode_b2, "lm": None}
        self.ln_bytes = w.decode_ln_w.nbytes + w.decode_ln_b.nbytes  # the step's LayerNorm reads them too
        self.weights = {}
        for name, weight in (("w1", w.decode_w1), ("w2", w.decode_w2), ("lm", w.lm_head)):
            q, s = quantize_fp8_per_channel(weight)
            self.weights[name] = (q, s[None, :].contiguous())  # rowwise: scale_b [1, N]

    @property
    def weight_bytes(self) -> int:
        """FP8 weights, their fp32 scales, the bf16 biases and LayerNorm weights: what one step reads."""
        tensors = [t for pair in self.weights.values() for t in pair] + [b for b in self.bias.values() if b is not None]
        return sum(t.numel() * t.element_size() for t in tensors) + self.ln_bytes

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        q, sw = self.weights[name]
        sx = (x.abs().amax(dim=1, keepdim=True).float() / 448.0).clamp(min=1e-12)
        xq = (x.float() / sx).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
        return torch._scaled_mm(xq, q.t(), scale_a=sx, scale_b=sw, bias=self.bias[name], out_dtype=x.dtype)


def _try(label: str, cfg: Config, w: Weights, make_linears) -> tuple[object | None, str | None]:
    """Build the three Linears and run one step through them eagerly; (linears, None) or (None,
    why it failed)."""
    try:
        linears = make_linears()
        tok, state = probe_inputs(cfg, w)
        run_step(cfg, eager_step(w, linears.linear), tok, state)
        return linears, None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"{label} path failed on a probe step ({type(exc).__name__}: {first[:200]})"


def build(cfg: Config, w: Weights) -> GraphKernelLoop:
    reason = fp8_unsupported_reason(cfg)
    if reason:
        raise TargetError(reason, "run the fp8 target on an H100 (or any sm_89+ GPU)")
    want = requested_path()
    fallbacks: list[str] = []
    linears, path = None, "triton"
    if want in ("auto", "te"):
        from decodeprof_targets.kernels.te_linear import TeLinears, te_status

        te, why = te_status("fp8", torch.device(cfg.device))
        if te is not None:
            linears, why = _try("te", cfg, w, lambda: TeLinears(te, w, cfg.batch, "fp8"))
        if linears is not None:
            path = "te_float8_current_scaling"
        else:
            fallbacks.append(f"{'auto: ' if want == 'auto' else ''}Transformer Engine path not used: {why}; "
                             "using the Triton weight-only FP8 kernels")
    elif want == "scaled_mm":
        if cfg.device != "cuda":
            why = "torch._scaled_mm needs a CUDA device"
        else:
            linears, why = _try("scaled_mm", cfg, w, lambda: ScaledMmLinears(w))
        if linears is not None:
            path = "torch_scaled_mm_rowwise_fp8_activations"
        else:
            fallbacks.append(f"scaled_mm path not used: {why}; using the Triton weight-only FP8 kernels")
    active: list[str] = []
    if linears is None:
        linears, notes, more = choose_plan(cfg, w, "fp8", kernel_mode())
        step, path = linears.step, "triton_weight_only_fp8_e4m3_per_channel"
        active += notes
        fallbacks += more
    else:
        step = eager_step(w, linears.linear)
    active = [f"fp8_path={path}", *active, describe_error(logits_error(cfg, w, step))]
    return GraphKernelLoop(cfg, w, step, weight_bytes=linears.weight_bytes, active=active, fallbacks=fallbacks,
                             tolerance=TOLERANCE)
