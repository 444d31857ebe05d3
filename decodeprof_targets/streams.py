"""streams: a copy stream uploads the next batch's prompt (double-buffered, pinned) while the
compute stream runs this batch; events order the two streams."""

from __future__ import annotations

import torch

from decodeprof_targets.harness import EXACT, HostBatch, Phases
from decodeprof_targets.loop import prefill_and_decode
from decodeprof_targets.nvtx_ranges import nvtx_range
from decodeprof_targets import workload
from decodeprof_targets.workload import Config, Weights


class Streams:
    # TTFT and h2d count from the iteration start: by then this batch's copy, issued during the
    # previous iteration, has mostly run, so they show what the prefetch leaves, not the copy
    active = ["pinned_host_memory", "copy_stream", "double_buffered_prompts", "ttft_after_prefetched_copy"]
    tolerance = EXACT

    def __init__(self, cfg: Config, w: Weights) -> None:
        self.cfg, self.w = cfg, w
        self.fallbacks: list[str] = []
        self.compute = torch.cuda.Stream()
        self.copy = torch.cuda.Stream()
        torch.cuda.set_stream(self.compute)  # the harness's timing events land on the compute stream
        shape = (cfg.batch, cfg.prompt_len)
        self.prompts = [torch.empty(shape, dtype=torch.int64, device="cuda") for _ in range(2)]
        self.payloads: list[torch.Tensor | None] = [None, None]
        # consumed[s]: prefill has read slot s, so the copy stream may overwrite it
        self.consumed = [torch.cuda.Event() for _ in range(2)]
        self.next_slot = 0
        self.pending: dict[int, tuple[int, torch.cuda.Event]] = {}
        self.last_logits = torch.empty(0)

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch:
        return HostBatch(prompt.pin_memory(), payload.pin_memory() if payload is not None else None)

    def _issue_copy(self, batch: HostBatch) -> None:
        slot, self.next_slot = self.next_slot, self.next_slot ^ 1
        with torch.cuda.stream(self.copy), nvtx_range("h2d"):
            self.copy.wait_event(self.consumed[slot])
            self.prompts[slot].copy_(batch.prompt, non_blocking=True)
            if batch.payload is not None:
                if self.payloads[slot] is None:
                    self.payloads[slot] = torch.empty_like(batch.payload, device="cuda")
                self.payloads[slot].copy_(batch.payload, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.copy)
        self.pending[id(batch)] = (slot, done)

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor:
        if id(batch) not in self.pending:  # first batch: nothing was prefetched
            self._issue_copy(batch)
        slot, copied = self.pending.pop(id(batch))
        if next_batch is not None:
            self._issue_copy(next_batch)  # overlaps with this batch's prefill and decode
        self.compute.wait_event(copied)
        phase("copied")

        def mark(name: str, event: object | None = None) -> None:
            phase(name, event)
            if name == "prefilled":
                self.consumed[slot].record(self.compute)

        tokens, self.last_logits = prefill_and_decode(
            self.prompts[slot], self.cfg.steps, mark,
            lambda p: workload.prefill(self.w, p),
            lambda t, s: workload.decode_step(self.w, t, s),
        )
        return tokens


def build(cfg: Config, w: Weights) -> Streams:
    return Streams(cfg, w)
