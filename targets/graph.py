"""graph: the whole decode loop (all steps) captured once in a CUDA graph and replayed:
one cudaGraphLaunch replaces steps x ~12 kernel launches. Prefill stays eager."""

from __future__ import annotations

import torch

from targets import graphs, workload
from targets.harness import EXACT, HostBatch, Phases
from targets.loop import EagerVariant
from targets.nvtx_ranges import nvtx_range
from targets.workload import Config, Weights


class Graph:
    active = ["cuda_graph_decode"]
    tolerance = EXACT

    def __init__(self, cfg: Config, w: Weights) -> None:
        self.cfg, self.w = cfg, w
        self.fallbacks: list[str] = []
        self.eager = EagerVariant(cfg, w, pinned=False)  # same pageable copies as the baseline
        self.tok_in = torch.zeros(cfg.batch, dtype=torch.int64, device="cuda")
        self.state_in = torch.zeros(cfg.batch, cfg.hidden, dtype=cfg.torch_dtype, device="cuda")
        self.graph, (self.out_tokens, self.out_logits) = graphs.capture(self._decode_loop)
        self.last_logits = self.out_logits

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        tok, state, logits = self.tok_in, self.state_in, None
        out = []
        for _ in range(self.cfg.steps):
            tok, state, logits = workload.decode_step(self.w, tok, state)
            out.append(tok)
        return torch.stack(out, dim=1), logits

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
            self.graph.replay()
        phase("decoded")
        return torch.cat([tok[:, None], self.out_tokens], dim=1)


def build(cfg: Config, w: Weights) -> Graph:
    return Graph(cfg, w)
