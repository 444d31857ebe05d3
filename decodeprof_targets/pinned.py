"""pinned: page-locked host buffers and non_blocking copies (no staging through a bounce buffer)."""

from decodeprof_targets.loop import EagerVariant
from decodeprof_targets.workload import Config, Weights


def build(cfg: Config, w: Weights) -> EagerVariant:
    return EagerVariant(cfg, w, pinned=True, active=["pinned_host_memory", "non_blocking_copy"])

