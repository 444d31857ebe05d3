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

# The only columns of these frames that any analysis reads: `decodeprof analyze` loads just
# these (load_trace(columns=...); at 1M kernels 0.5 s and ~100 MB less). A contract test runs
# every analysis on each fixture loaded so and whole, and compares the results.
FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "kernels": ("start_ns", "end_ns", "dur_ns", "device_id", "stream_id", "correlation_id", "global_pid", "name",
                "graph_node_id"),
    "runtime": ("start_ns", "end_ns", "dur_ns", "name", "global_tid", "global_pid", "correlation_id"),
}

__all__ = ["ANALYSES", "Analysis", "FRAME_COLUMNS", "run", "run_all", "why_empty", "FAMILY_PATTERNS", "kernel_family"]
