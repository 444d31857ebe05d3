"""Every frame a Trace holds: its columns, dtypes and units, declared once.

Conventions: times are integer nanoseconds on the trace's clock (`*_ns`), sizes are bytes
(`bytes`, `*_bytes`). Kind values (copy kind, memory kind, sync type, NVTX event kind) are
strings read from the export's own ENUM_* tables, never hard-coded numbers.

Loaders return exactly these columns in this order (`conform`); analyses trust them.
"""

from __future__ import annotations

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
