"""persistent: the whole decode loop in ONE kernel launch (decodeprof_targets/kernels/persistent.py): one
program per column block (128 on an H100) runs all steps, grid-wide barriers between a step's
dependent stages, weights read from L2 when they stayed there since the previous step. bf16
weights, tensor-core tiles. The launch is captured in a CUDA graph like the other kernel targets,
after the small fill kernel that zeroes its barrier counter: the decode range holds those two
kernels. The kernel's barrier-timeout flag is sticky on the device; the harness reads it once
after the measured runs (verify_runs), outside the timing.

Tolerance: as warp_specialized (tokens equal to the eager reference; last logits within 0.125,
two bf16 ulps at |logit| in [4, 8): only the fp32 summation order differs from cuBLAS).
"""

from __future__ import annotations

import torch

from decodeprof_targets.harness import Tolerance
from decodeprof_targets.loop import GraphDecodeVariant
from decodeprof_targets.workload import Config, Weights

TOLERANCE = Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.125)


class PersistentVariant(GraphDecodeVariant):
    """A decode loop of one launch: `kernel` (PersistentDecode here, SmemPersistentDecode for
    persistent_smem) runs every step, with run(tokens, state, tokens_out, logits_out),
    check_error(), describe() and weight_bytes."""

    def __init__(self, cfg: Config, w: Weights, kernel) -> None:
        self.kernel = kernel
        super().__init__(cfg, w, active=[self.kernel.describe()])
        self.tolerance = TOLERANCE
        self.weight_bytes_per_step = self.kernel.weight_bytes + cfg.batch * cfg.hidden * w.embed.element_size()
        self.steps_out = torch.zeros(cfg.batch, cfg.steps, dtype=torch.int64, device=cfg.device)
        self.logits = torch.zeros(cfg.batch, cfg.vocab, dtype=cfg.torch_dtype, device=cfg.device)
        self.capture()
        self.kernel.check_error()

    def step_fn(self, tok: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step (a one-step launch), outside the graph, for the harness's teacher-forced check."""
        st = state.contiguous().clone()
        out = torch.empty(self.cfg.batch, 1, dtype=torch.int64, device=self.cfg.device)
        logits = torch.empty(self.cfg.batch, self.cfg.vocab, dtype=self.cfg.torch_dtype, device=self.cfg.device)
        with torch.no_grad():
            self.kernel.run(tok.contiguous(), st, out, logits)
        self.kernel.check_error()
        return out[:, 0], st, logits

    def verify_runs(self) -> None:
        """After all runs: raise if any decode's kernel flagged an error (a timed-out wait: its tokens were garbage)."""
        self.kernel.check_error()

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.kernel.run(self.tok_in, self.state_in, self.steps_out, self.logits)
        return self.steps_out, self.logits


def build(cfg: Config, w: Weights) -> PersistentVariant:
    from decodeprof_targets.kernels.persistent import PersistentDecode

    return PersistentVariant(cfg, w, PersistentDecode(w, "bf16", cfg.batch))
