"""compile: torch.compile (Inductor) of the prefill and of the decode step.

Fusion cuts the kernels per step; CUDA graphs are left off (mode "default") so this variant
shows fusion alone. Compilation happens in build and warm-up, outside the measured range."""

import torch

from targets import workload
from targets.harness import Tolerance
from targets.loop import EagerVariant
from targets.workload import Config, Weights

# Inductor may reorder bf16 reductions: a near-tie can flip one greedy token and the
# autoregressive loop then diverges, so tokens are compared as an agreement rate.
TOLERANCE = Tolerance(min_token_agreement=0.9, max_abs_logit_err=0.25)


def build(cfg: Config, w: Weights) -> EagerVariant:
    prefill_fn = torch.compile(lambda prompt: workload.prefill(w, prompt), fullgraph=True, dynamic=False)
    step_fn = torch.compile(lambda tok, state: workload.decode_step(w, tok, state), fullgraph=True, dynamic=False)
    return EagerVariant(cfg, w, pinned=False, prefill_fn=prefill_fn, step_fn=step_fn,
                        tolerance=TOLERANCE, active=["torch_compile"])
