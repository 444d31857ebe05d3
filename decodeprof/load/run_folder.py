"""The run folder's file names: `decodeprof profile` (decodeprof.capture) writes them, the
loader and the output-path checks read them. Standard library only."""

from __future__ import annotations

METRICS = "metrics.json"  # the profiled run's metrics (config, device, timings under the profiler)
# The same target's metrics from a run without any profiler: the times shown to users.
UNPROFILED_METRICS = "metrics.unprofiled.json"
NCU_CSV = "ncu.csv"
RUN_RECORD = "run.json"
