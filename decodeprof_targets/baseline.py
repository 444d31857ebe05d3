"""baseline: eager PyTorch, pageable host prompts, one stream, blocking copies."""

from decodeprof_targets.loop import EagerVariant
from decodeprof_targets.workload import Config, Weights


def build(cfg: Config, w: Weights) -> EagerVariant:
    return EagerVariant(cfg, w, pinned=False)

