"""Analyses: pure functions `(trace, **options) -> pl.DataFrame`, registered by name.

    from decodeprof.analyses import ANALYSES, run, run_all
    frames = run_all(trace, steps=8)        # {name: DataFrame}

Importing this package registers every analysis module below (order = report order).
"""

from decodeprof.analyses.registry import ANALYSES, Analysis, run, run_all, why_empty
from decodeprof.analyses import (  # noqa: F401  (registration side effect)
    kernel_summary,
    nvtx_projection,
    decode_steps,
    host_wait,
    idle_gaps,
    launch_overhead,
    memory_throughput,
    overlap,
    multigpu,
)
from decodeprof.analyses.kernel_summary import FAMILY_PATTERNS, kernel_family

__all__ = ["ANALYSES", "Analysis", "run", "run_all", "why_empty", "FAMILY_PATTERNS", "kernel_family"]
