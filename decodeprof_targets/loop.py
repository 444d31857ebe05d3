"""The eager decode loop shared by the eager-family variants (baseline, pinned, compile)."""

from __future__ import annotations

from typing import Callable

import torch

from decodeprof_targets import workload
from decodeprof_targets.harness import EXACT, HostBatch, Phases, Tolerance
from decodeprof_targets.nvtx_ranges import nvtx_range
from decodeprof_targets.workload import Config, Weights

PrefillFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def prefill_and_decode(prompt: torch.Tensor, steps: int, phase: Phases, prefill_fn: PrefillFn,
                       step_fn: StepFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill then `steps` decode steps launched from Python, one NVTX "step" range each.
    Tokens stay on the device (no per-step host sync): returns (tokens [B, steps+1], last logits)."""
    with nvtx_range("prefill"):
        state, tok = prefill_fn(prompt)
    phase("prefilled")
    with nvtx_range("decode"):
        out = [tok]
        logits = None
        for _ in range(steps):
            with nvtx_range("step"):
                tok, state, logits = step_fn(tok, state)
            out.append(tok)
        tokens = torch.stack(out, dim=1)
    phase("decoded")
    return tokens, logits


class EagerVariant:
    """Copy the prompt (and payload) to the device, then the eager loop with the given functions.

    pinned=False: pageable host tensors and blocking copies (the baseline).
    pinned=True: page-locked host tensors and non_blocking copies."""

    def __init__(self, cfg: Config, w: Weights, *, pinned: bool, prefill_fn: PrefillFn | None = None,
                 step_fn: StepFn | None = None, tolerance: Tolerance = EXACT, active: list[str] | None = None) -> None:
        self.cfg, self.w, self.pinned = cfg, w, pinned and cfg.device == "cuda"
        self.prefill_fn = prefill_fn or (lambda prompt: workload.prefill(w, prompt))
        self.step_fn = step_fn or (lambda tok, state: workload.decode_step(w, tok, state))
        self.tolerance = tolerance
        self.active = list(active or [])
        self.fallbacks: list[str] = []
        if pinned and not self.pinned:
            self.fallbacks.append("pinned memory needs CUDA: using pageable host memory on CPU")
        self.payload_dev: torch.Tensor | None = None
        self.last_logits = torch.empty(0)

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch:
        if self.pinned:
            prompt = prompt.pin_memory()
            payload = payload.pin_memory() if payload is not None else None
        return HostBatch(prompt, payload)

    def copy_in(self, batch: HostBatch) -> torch.Tensor:
        with nvtx_range("h2d"):
            prompt = batch.prompt.to(self.cfg.device, non_blocking=self.pinned)
            if batch.payload is not None:
                if self.payload_dev is None:
                    self.payload_dev = torch.empty_like(batch.payload, device=self.cfg.device)
                self.payload_dev.copy_(batch.payload, non_blocking=self.pinned)
        return prompt

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor:
        prompt = self.copy_in(batch)
        phase("copied")
        tokens, self.last_logits = prefill_and_decode(prompt, self.cfg.steps, phase, self.prefill_fn, self.step_fn)
        return tokens


class GraphDecodeVariant:
    """Eager prefill after the baseline's pageable copies, then the subclass's `_decode_loop`
    (all decode steps, reading `tok_in`/`state_in`, returning (tokens [B, steps], last logits))
    captured once in a CUDA graph and replayed. Without CUDA the loop runs eagerly."""

    tolerance = EXACT

    def __init__(self, cfg: Config, w: Weights, *, active: list[str], fallbacks: list[str] | None = None) -> None:
        self.cfg, self.w = cfg, w
        self.active, self.fallbacks = list(active), list(fallbacks or [])
        self.eager = EagerVariant(cfg, w, pinned=False)
        self.tok_in = torch.zeros(cfg.batch, dtype=torch.int64, device=cfg.device)
        self.state_in = torch.zeros(cfg.batch, cfg.hidden, dtype=cfg.torch_dtype, device=cfg.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out_tokens = torch.empty(0)
        self.last_logits = torch.empty(0)

    def capture(self) -> None:
        """Call once the subclass can run `_decode_loop`: captures it on CUDA."""
        from decodeprof_targets import graphs

        if self.cfg.device == "cuda":
            self.graph, (self.out_tokens, self.last_logits) = graphs.capture(self._decode_loop)
            self.active.append("cuda_graph_decode")
        else:
            self.fallbacks.append("no CUDA graph on the CPU device: decode steps run one by one")

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch:
        return self.eager.host_batch(prompt, payload)

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor:
        prompt = self.eager.copy_in(batch)
        phase("copied")
        with nvtx_range("prefill"):
            state, tok = workload.prefill(self.w, prompt)
            self.state_in.copy_(state)
            self.tok_in.copy_(tok)
        phase("prefilled")
        with nvtx_range("decode"):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.out_tokens, self.last_logits = self._decode_loop()
        phase("decoded")
        return torch.cat([tok[:, None], self.out_tokens], dim=1)
