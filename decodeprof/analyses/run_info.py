"""What a run is, beside its timings: the GPU it ran on, what its capture holds, and whether
its copies have a stream of their own."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.steps import step_model
from decodeprof.trace import Trace

COLUMNS = {"gpu": pl.Utf8, "kernels": pl.Int64, "ncu_rows": pl.Int64, "copy_streams_apart": pl.Boolean,
           "steps_found": pl.Utf8}


def gpu_name(trace: Trace) -> str | None:
    """The trace's GPU names (distinct, sorted, joined by ", "), else the target's metrics
    JSON device name, else None."""
    names = sorted(set(trace.gpus["name"].drop_nulls().to_list()))
    if names:
        return ", ".join(names)
    return trace.target_metrics.device_name


def _copy_streams_apart(trace: Trace) -> bool:
    """True when some copy runs on a stream that runs no kernel (a dedicated copy stream)."""
    if trace.memcpys.is_empty() or trace.kernels.is_empty():
        return False
    kernel_streams = set(trace.kernels["stream_id"].unique().to_list())
    return any(s not in kernel_streams for s in trace.memcpys["stream_id"].unique().to_list())


def run_info(trace: Trace) -> pl.DataFrame:
    """One row. Columns: gpu (gpu_name), kernels (kernel rows in the trace), ncu_rows (rows of
    the Nsight Compute CSV beside it; 0 without one), copy_streams_apart (some copy runs on a
    stream that runs no kernel), steps_found (the decode-step model's sentence: how many steps,
    from which source, or what it tried)."""
    return pl.DataFrame({"gpu": [gpu_name(trace)], "kernels": [trace.kernels.height],
                         "ncu_rows": [trace.ncu_metrics.height], "copy_streams_apart": [_copy_streams_apart(trace)],
                         "steps_found": [step_model(trace).summary]}, schema=COLUMNS)
