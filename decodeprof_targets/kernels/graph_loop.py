"""The decode loop of the kernel targets (fp8, fp4, warp_specialized, double_buffer_tma), built
like decodeprof_targets/graph.py: eager prefill, then all decode steps captured once in a CUDA graph and
replayed. A step function writes each step's tokens straight into the output tensor, so the
graph holds nothing but the step kernels. On a CPU device (Triton interpreter, tests) the same
loop runs without a graph.

Also here: choosing the kernel plan (TMA / warp specialization / pipelining) with a probe that
falls back to plain pointer loads when the fancy path fails to compile or disagrees, and the
quantization-quality measurement the low-precision targets report.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F

from decodeprof_targets import workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.harness import Tolerance
from decodeprof_targets.loop import GraphDecodeVariant
from decodeprof_targets.workload import Config, Weights

# step(tokens [B], state [B, h] (updated in place), tokens_out [B], logits_out [B, V] or None)
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], None]

TMA_ACC_PATH = 2  # accumulation path of the TMA plans: tensor cores (about half the step time of the others on the H100: benchmarks/RESULTS.md)
KERNEL_MODE_ENV = "DECODEPROF_KERNEL_MODE"  # plain | ws | tma2 (fp8/fp4 Triton paths; default plain: fastest measured)


class GraphKernelLoop(GraphDecodeVariant):
    """Prefill eagerly, then replay one CUDA graph of `steps` calls of `step`."""

    def __init__(self, cfg: Config, w: Weights, step: StepFn, *, weight_bytes: int, active: list[str],
                 fallbacks: list[str], tolerance: Tolerance) -> None:
        """weight_bytes: bytes of weights (and scales, biases) `step` reads, as it stores them; the
        gathered embedding rows are added here."""
        super().__init__(cfg, w, active=active, fallbacks=fallbacks)
        self.step, self.tolerance = step, tolerance
        self.weight_bytes_per_step = weight_bytes + cfg.batch * cfg.hidden * w.embed.element_size()
        dev = cfg.device
        self.steps_out = torch.zeros(cfg.batch, cfg.steps, dtype=torch.int64, device=dev)
        self.logits = torch.zeros(cfg.batch, cfg.vocab, dtype=cfg.torch_dtype, device=dev)
        self.capture()

    def step_fn(self, tok: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step eagerly, outside the graph, for the harness's teacher-forced check."""
        return run_step(self.cfg, self.step, tok.contiguous(), state.contiguous())

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        # the step writes tokens straight into the output and updates state_in in place
        tok = self.tok_in
        for i in range(self.cfg.steps):
            out = self.steps_out[:, i]
            self.step(tok, self.state_in, out, self.logits if i == self.cfg.steps - 1 else None)
            tok = out
        return self.steps_out, self.logits


def probe_inputs(cfg: Config, w: Weights, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (tokens, state) pair for probes and quality checks: state from a real prefill."""
    prompt = workload.make_prompts(cfg, seed).to(cfg.device)
    with torch.no_grad():
        state, tok = workload.prefill(w, prompt)
    return tok.contiguous(), state.contiguous()


def run_step(cfg: Config, step: StepFn, tok: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step eagerly on copies: (tokens, new state, logits)."""
    st = state.clone()
    out = torch.empty_like(tok)
    logits = torch.empty(cfg.batch, cfg.vocab, dtype=cfg.torch_dtype, device=cfg.device)
    with torch.no_grad():
        step(tok, st, out, logits)
    return out, st, logits


def logits_error(cfg: Config, w: Weights, step: StepFn) -> dict:
    """Quantization error of one teacher-forced step against the eager model:
    max_rel = max|l - l_ref| / max|l_ref|, mean_rel = mean|l - l_ref| / mean|l_ref| (per tensor),
    token_agreement = fraction of rows whose argmax matches."""
    tok, state = probe_inputs(cfg, w)
    out, _, logits = run_step(cfg, step, tok, state)
    with torch.no_grad():
        ref_tok, _, ref = workload.decode_step(w, tok, state)
    d, r = (logits.float() - ref.float()).abs(), ref.float().abs()
    return {"max_rel": (d.max() / r.max()).item(), "mean_rel": (d.mean() / r.mean()).item(),
            "token_agreement": (out == ref_tok).float().mean().item()}


def describe_error(err: dict) -> str:
    return (f"logits_vs_bf16_one_step: max_rel={err['max_rel']:.3g} mean_rel={err['mean_rel']:.3g} "
            f"tokens={err['token_agreement']:.2f}")


def kernel_mode(default: str = "plain") -> str:
    mode = os.environ.get(KERNEL_MODE_ENV, default)
    if mode not in ("plain", "ws", "tma2"):
        raise TargetError(f"{KERNEL_MODE_ENV}={mode!r} is not one of plain, ws, tma2")
    return mode


def choose_plan(cfg: Config, w: Weights, fmt: str, mode: str) -> tuple[object, list[str], list[str]]:
    """Build DecodeKernels with the wanted plan; probe it against the plain plan and fall back
    when it fails. Returns (kernels, active notes, fallback reasons)."""
    from decodeprof_targets.kernels.common import PLAIN, LaunchOptions, tma_unsupported_reason
    from decodeprof_targets.kernels.fused_decode import DecodeKernels, KernelPlan

    plain = DecodeKernels(w, fmt, cfg.batch, KernelPlan())
    if mode == "plain":
        return plain, [f"triton_{fmt}_kernels: {plain.plan.describe()}; tiles {plain.tiles()}"], []
    # tensor-core tiles (accumulation path 2) fed by TMA: measured faster than the element-wise TMA K loop.
    # The lm_head kernel is not warp-specialized: Triton 3.6's warp specialization of that loop
    # (tensor-core tile + fused argmax) gave logits off by up to 0.34 on an H100 (kernels 1 and 2
    # were exact), so "ws" specializes kernels 1 and 2 only.
    tma = LaunchOptions(use_tma=True, warp_specialize=False, num_stages=2, acc_path=TMA_ACC_PATH)
    if mode == "ws":
        ws = LaunchOptions(use_tma=True, warp_specialize=True, num_stages=2, acc_path=TMA_ACC_PATH)
        plan = KernelPlan(ws, ws, tma)
    else:
        plan = KernelPlan(tma, tma, tma)
    fallbacks: list[str] = []
    reason = tma_unsupported_reason(torch.device(cfg.device))
    if reason:
        return plain, [f"triton_{fmt}_kernels: {plain.plan.describe()}; tiles {plain.tiles()}"], [f"{mode} plan not used: {reason}"]
    try:
        fancy = DecodeKernels(w, fmt, cfg.batch, plan)
        tok, state = probe_inputs(cfg, w)
        got = run_step(cfg, fancy.step, tok, state)
        want = run_step(cfg, plain.step, tok, state)
        if not torch.equal(got[0], want[0]) or not all(
                torch.allclose(g.float(), v.float(), atol=0.05, rtol=0.02) for g, v in zip(got[1:], want[1:])):
            raise TargetError("its step (tokens, state or logits) disagrees with the plain-pointer kernels on a probe input")
    except Exception as exc:  # a compile error in an experimental Triton feature is a fallback, not a crash
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fallbacks.append(f"{mode} plan failed ({type(exc).__name__}: {first[:200]}); using plain pointer loads")
        return plain, [f"triton_{fmt}_kernels: {plain.plan.describe()}; tiles {plain.tiles()}"], fallbacks
    return fancy, [f"triton_{fmt}_kernels: {fancy.plan.describe()}; tiles {fancy.tiles()}"], fallbacks


def eager_step(w: Weights, linear: Callable[[str, torch.Tensor], torch.Tensor]) -> StepFn:
    """A torch-op step whose three Linears go through `linear(name, x)` (name: w1, w2, lm)."""

    def step(tok: torch.Tensor, state: torch.Tensor, tok_out: torch.Tensor, logits_out: torch.Tensor | None) -> None:
        x = F.embedding(tok, w.embed) + state
        x = F.layer_norm(x, x.shape[-1:], w.decode_ln_w, w.decode_ln_b)
        x = F.gelu(linear("w1", x))
        state.copy_(linear("w2", x))
        logits = linear("lm", state)
        tok_out.copy_(torch.argmax(logits, dim=-1))
        if logits_out is not None:
            logits_out.copy_(logits)

    return step
