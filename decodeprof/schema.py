"""Every frame a Trace holds: its columns, dtypes and units, declared once.

Conventions: times are integer nanoseconds on the trace's clock (`*_ns`), sizes are bytes
(`bytes`, `*_bytes`). Kind values (copy kind, memory kind, sync type, NVTX event kind) are
strings read from the export's own ENUM_* tables, never hard-coded numbers.

Loaders return exactly these columns in this order (`conform`); analyses trust them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

Int = pl.Int64
Str = pl.Utf8

FRAMES: dict[str, dict[str, pl.DataType]] = {
    # One row per GPU kernel execution (CUPTI_ACTIVITY_KIND_KERNEL).
    "kernels": {
        "start_ns": Int,
        "end_ns": Int,
        "dur_ns": Int,
        "device_id": Int,
        "stream_id": Int,
        "correlation_id": Int,  # joins the launching runtime call (same global_pid)
        "global_pid": Int,
        "name": Str,  # short name
        "demangled_name": Str,
        "grid_x": Int,
        "grid_y": Int,
        "grid_z": Int,
        "block_x": Int,
        "block_y": Int,
        "block_z": Int,
        "registers_per_thread": Int,
        "shared_memory_bytes": Int,  # static + dynamic
        "graph_node_id": Int,  # null unless replayed from a CUDA graph (--cuda-graph-trace=node)
    },
    # One row per CUDA runtime/driver API call (CUPTI_ACTIVITY_KIND_RUNTIME).
    "runtime": {
        "start_ns": Int,
        "end_ns": Int,
        "dur_ns": Int,
        "name": Str,  # e.g. cudaLaunchKernel_v7000, cudaGraphLaunch_v10000
        "global_tid": Int,
        "global_pid": Int,
        "tid": Int,
        "correlation_id": Int,
    },
    # One row per memcpy (CUPTI_ACTIVITY_KIND_MEMCPY).
    "memcpys": {
        "start_ns": Int,
        "end_ns": Int,
        "dur_ns": Int,
        "bytes": Int,
        "copy_kind": Str,  # from ENUM_CUDA_MEMCPY_OPER, e.g. "CUDA_MEMCPY_KIND_HTOD"
        "src_kind": Str,  # from ENUM_CUDA_MEM_KIND, e.g. "CUDA_MEMOPR_MEMORY_KIND_PAGEABLE"
        "dst_kind": Str,
        "device_id": Int,
        "stream_id": Int,
        "correlation_id": Int,
        "global_pid": Int,
        "graph_node_id": Int,
    },
    # One row per memset (CUPTI_ACTIVITY_KIND_MEMSET).
    "memsets": {
        "start_ns": Int,
        "end_ns": Int,
        "dur_ns": Int,
        "bytes": Int,
        "device_id": Int,
        "stream_id": Int,
        "correlation_id": Int,
        "global_pid": Int,
        "graph_node_id": Int,
    },
    # One row per synchronization (CUPTI_ACTIVITY_KIND_SYNCHRONIZATION).
    "syncs": {
        "start_ns": Int,
        "end_ns": Int,
        "dur_ns": Int,
        "sync_type": Str,  # from ENUM_CUPTI_SYNC_TYPE, e.g. "..._STREAM_SYNCHRONIZE"
        "device_id": Int,
        "stream_id": Int,
        "correlation_id": Int,
        "global_pid": Int,
    },
    # One row per NVTX range or mark (NVTX_EVENTS; domain create/destroy rows dropped).
    "nvtx": {
        "start_ns": Int,
        "end_ns": Int,  # null for marks
        "dur_ns": Int,  # null for marks
        "text": Str,  # from `text`, or `textId` -> StringIds
        "domain": Str,  # domain name; "" for the default domain
        "event_kind": Str,  # "push_pop", "start_end" or "mark" (from ENUM_NSYS_EVENT_TYPE)
        "global_tid": Int,
        "global_pid": Int,
        "tid": Int,
    },
    # One row per GPU (TARGET_INFO_GPU, or the older TARGET_INFO_CUDA_GPU).
    "gpus": {
        "device_id": Int,
        "name": Str,
        "sm_count": Int,
        "memory_bandwidth_bytes_per_s": Int,  # as the export states it (theoretical)
        "memory_bytes": Int,
        "clock_rate_khz": Int,
        "compute_capability": Str,  # "9.0"
    },
    # One row per thread seen (ThreadNames / ProcessStreams): names for global_tid.
    "threads": {
        "global_tid": Int,
        "global_pid": Int,
        "tid": Int,
        "thread_name": Str,
        "process_name": Str,
    },
    # Nsight Compute, long form: one row per (kernel, metric). Values in base units
    # (bytes, ns, percent as 0-100, bytes/s) with the unit named after conversion.
    "ncu_metrics": {
        "kernel_id": Int,  # ncu's "ID", the order kernels were profiled
        "kernel_name": Str,
        "stream_id": Int,
        "grid": Str,  # "(x, y, z)" as ncu prints it
        "block": Str,
        "section": Str,  # "" for --page raw
        "metric": Str,
        "unit": Str,
        "value": pl.Float64,
    },
}


def empty(name: str) -> pl.DataFrame:
    """An empty frame with the declared columns of `name`."""
    return pl.DataFrame(schema=FRAMES[name])


def conform(name: str, frame: pl.DataFrame, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Select and cast `frame` to the declared columns of `name`; raise if any is missing.

    Loaders call this at the boundary so analyses can trust column names and dtypes.
    `columns`: only these declared columns (in declared order), for a loader asked for fewer.
    """
    declared = FRAMES[name] if columns is None else {c: t for c, t in FRAMES[name].items() if c in columns}
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        raise ValueError(f"frame {name!r} lacks columns {missing}")
    return frame.select(pl.col(c).cast(t, strict=False) for c, t in declared.items())


@dataclass(frozen=True)
class Timing:
    """One of a target's own timings (ttft_ms, tpot_ms, tokens_per_s, ...) over its measured
    iterations: median, fastest and slowest (None where the file does not state them)."""

    median: float
    min: float | None = None
    max: float | None = None


def median_of(timings: Mapping[str, Timing], quantity: str) -> float | None:
    t = timings.get(quantity)
    return t.median if t is not None else None


@dataclass(frozen=True)
class RankMetrics:
    """One rank of a multi-GPU target (metrics.json `ranks`): its number, process id and timings."""

    rank: int | None
    pid: int | None
    timings: Mapping[str, Timing]


@dataclass(frozen=True)
class TargetMetrics:
    """A target's metrics JSON (metrics.json, metrics.unprofiled.json), parsed once at load by
    decodeprof.load.target_metrics, which checks each field below: readers use them as they
    are. `document` is the whole file as written (fields the tool does not read pass through).
    No file: the empty TargetMetrics, which is false."""

    target: str | None = None
    config: Mapping[str, int | float | str] = field(default_factory=dict)  # batch, steps, iters, dtype, ...
    device_name: str | None = None
    torch: str | None = None
    cuda: str | None = None
    peak_gbps: float | None = None  # the target's own statement of its card's memory bandwidth
    weight_bytes_per_step: int | None = None
    timings: Mapping[str, Timing] = field(default_factory=dict)  # ttft_ms, tpot_ms, tokens_per_s, ...
    correctness: Mapping[str, object] = field(default_factory=dict)  # the whole section, as written
    tokens_match: bool | None = None  # free-running tokens all equal to the eager reference's
    token_agreement: float | None = None  # the share of them that are, 0..1
    active: tuple[str, ...] = ()  # the fast paths the target ran
    fallbacks: tuple[str, ...] = ()  # the ones it fell back from, and why
    mode: str | None = None  # multi-GPU: the parallel mode and backend
    backend: str | None = None
    world_size: int | None = None
    slowest_rank: int | None = None
    ranks: tuple[RankMetrics, ...] = ()
    document: Mapping[str, object] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """False for the empty TargetMetrics (no file), whichever field is set."""
        return self != TargetMetrics()

    def median(self, quantity: str) -> float | None:
        return median_of(self.timings, quantity)
