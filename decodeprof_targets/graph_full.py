"""graph_full: prefill and the decode loop captured together in one CUDA graph; only the
prompt copy into the graph's static input buffer stays outside."""

from __future__ import annotations

import torch

from decodeprof_targets import graphs, workload
from decodeprof_targets.harness import EXACT, HostBatch, Phases
from decodeprof_targets.loop import EagerVariant
from decodeprof_targets.nvtx_ranges import nvtx_range
from decodeprof_targets.workload import Config, Weights


class GraphFull:
    active = ["cuda_graph_prefill_decode"]
    tolerance = EXACT

    def __init__(self, cfg: Config, w: Weights) -> None:
        self.cfg, self.w = cfg, w
        self.fallbacks: list[str] = []
        self.eager = EagerVariant(cfg, w, pinned=False)
        self.prompt_in = torch.zeros(cfg.batch, cfg.prompt_len, dtype=torch.int64, device="cuda")
        # An event recorded inside the graph marks the end of prefill on every replay, so TTFT
        # and decode time stay separable; older torch without external events loses the split.
        try:
            self.prefill_done: torch.cuda.Event | None = torch.cuda.Event(enable_timing=True, external=True)
        except TypeError:
            self.prefill_done = None
            self.fallbacks.append("torch lacks external CUDA events: prefill and decode cannot be timed apart "
                                  "inside the one graph, so only total time (and end-to-end tokens/s) is reported")
        self.graph, (self.first_tok, self.out_tokens, self.out_logits) = graphs.capture(self._prefill_decode)
        self.last_logits = self.out_logits

    def _prefill_decode(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state, tok = workload.prefill(self.w, self.prompt_in)
        if self.prefill_done is not None:
            self.prefill_done.record()
        first, out, logits = tok, [], None
        for _ in range(self.cfg.steps):
            tok, state, logits = workload.decode_step(self.w, tok, state)
            out.append(tok)
        return first, torch.stack(out, dim=1), logits

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch:
        return self.eager.host_batch(prompt, payload)

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor:
        prompt = self.eager.copy_in(batch)
        self.prompt_in.copy_(prompt)
        phase("copied")
        with nvtx_range("prefill_decode"):
            self.graph.replay()
        if self.prefill_done is not None:  # else no TTFT or decode time: both would be made up
            phase("prefilled", self.prefill_done)
            phase("decoded")
        return torch.cat([self.first_tok[:, None], self.out_tokens], dim=1)


def build(cfg: Config, w: Weights) -> GraphFull:
    return GraphFull(cfg, w)
