"""graph: the whole decode loop (all steps) captured once in a CUDA graph and replayed:
one cudaGraphLaunch replaces steps x ~8 kernel launches. Prefill stays eager."""

from __future__ import annotations

import torch

from decodeprof_targets import workload
from decodeprof_targets.loop import GraphDecodeVariant
from decodeprof_targets.workload import Config, Weights


class Graph(GraphDecodeVariant):
    def __init__(self, cfg: Config, w: Weights) -> None:
        super().__init__(cfg, w, active=[])
        self.capture()

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        tok, state, logits = self.tok_in, self.state_in, None
        out = []
        for _ in range(self.cfg.steps):
            tok, state, logits = workload.decode_step(self.w, tok, state)
            out.append(tok)
        return torch.stack(out, dim=1), logits


def build(cfg: Config, w: Weights) -> Graph:
    return Graph(cfg, w)
