"""Memory throughput: copies by memory kind, DRAM traffic per kernel (ncu), and decode's
achieved weight-streaming bandwidth against the GPU's peak."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.decode_steps import decode_windows
from decodeprof.analyses.events import PAGEABLE, config_steps, gpu_work, in_ranges, ranges
from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

COPY_COLUMNS = {
    "copy_kind": pl.Utf8,
    "src_kind": pl.Utf8,
    "dst_kind": pl.Utf8,
    "pageable": pl.Boolean,
    "count": pl.Int64,
    "bytes": pl.Int64,
    "dur_ns": pl.Int64,
    "bytes_per_s": pl.Float64,
    "gb_per_s": pl.Float64,
}


@analysis("memory_throughput", columns=COPY_COLUMNS, needs=("memcpys",))
def memory_throughput(trace: Trace) -> pl.DataFrame:
    """Copies per copy kind x source/destination memory kind, with achieved bandwidth.

    Reads: memcpys. Columns: copy_kind, src_kind, dst_kind (labels from the export's ENUM
    tables), pageable (either side is pageable host memory: staged by the driver, slow and
    blocking), count, bytes, dur_ns (sum of copy durations), bytes_per_s = bytes / dur,
    gb_per_s = bytes / dur_ns (1e9 bytes/s). Largest bytes first.
    """
    m = trace.memcpys
    out = m.group_by(["copy_kind", "src_kind", "dst_kind"]).agg(
        pl.len().alias("count"), pl.col("bytes").sum(), pl.col("dur_ns").sum(),
    ).with_columns(
        (pl.col("src_kind").str.contains(PAGEABLE) | pl.col("dst_kind").str.contains(PAGEABLE)).fill_null(False).alias("pageable"),
        (pl.col("bytes") / pl.col("dur_ns")).alias("gb_per_s"),
        (1e9 * pl.col("bytes") / pl.col("dur_ns")).alias("bytes_per_s"),
    ).sort(["bytes", "copy_kind"], descending=[True, False])
    return shaped(out, COPY_COLUMNS)


# column -> the metric's names: the raw page's, then the details page's where it has one
NCU_METRICS = {
    "duration_ns": ("gpu__time_duration.sum", "Duration"),
    "dram_read_bytes": ("dram__bytes_read.sum",),
    "dram_write_bytes": ("dram__bytes_write.sum",),
    "dram_throughput_pct": ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM Throughput"),
}
_ALL_NCU_NAMES = [m for names in NCU_METRICS.values() for m in names]
DRAM_COLUMNS = {
    "kernel_id": pl.Int64,
    "kernel_name": pl.Utf8,
    "duration_ns": pl.Float64,
    "dram_read_bytes": pl.Float64,
    "dram_write_bytes": pl.Float64,
    "dram_bytes_per_s": pl.Float64,
    "dram_bytes_counted": pl.Utf8,
    "dram_throughput_pct": pl.Float64,
    "nsys_median_ns": pl.Float64,
    "ncu_over_nsys": pl.Float64,
}


def _no_dram_metrics(trace: Trace) -> list[str]:
    return [f"the Nsight Compute CSV holds none of {', '.join(_ALL_NCU_NAMES)}: profile with "
            "`decodeprof profile <target> --ncu` (raw page, these metrics) or the SOL section's details page"]


@analysis("kernel_dram", columns=DRAM_COLUMNS, needs=("ncu_metrics",), explain=_no_dram_metrics)
def kernel_dram(trace: Trace) -> pl.DataFrame:
    """Per profiled kernel (Nsight Compute): duration and DRAM traffic.

    Reads: ncu_metrics, raw page (gpu__time_duration.sum, dram__bytes_read.sum,
    dram__bytes_write.sum, dram__throughput.avg.pct_of_peak_sustained_elapsed) or details page
    ("Duration", "DRAM Throughput" of the SOL section); a metric ncu did not collect is null.
    Columns: kernel_id (ncu's ID order), kernel_name, duration_ns, dram_read_bytes,
    dram_write_bytes, dram_bytes_per_s = (read + write) / duration, or read / duration where
    the write metric was not collected (dram_bytes_counted says which: "read+write", "read";
    null without the read metric), dram_throughput_pct (ncu's % of peak sustained DRAM
    throughput, 0-100), nsys_median_ns (the median duration in the trace of the kernel with
    this name: the nsys short name found in ncu's demangled one) and ncu_over_nsys (ncu's
    duration / that median: ncu replays each kernel with caches flushed, so a small kernel
    that finds its data in L2 when run back to back takes longer under ncu).
    """
    n = trace.ncu_metrics.filter(pl.col("metric").is_in(_ALL_NCU_NAMES))
    out = n.group_by("kernel_id").agg(
        pl.col("kernel_name").first(),
        *(pl.coalesce(pl.col("value").filter(pl.col("metric") == m).first() for m in names).alias(c)
          for c, names in NCU_METRICS.items()),
    )
    read, write = pl.col("dram_read_bytes"), pl.col("dram_write_bytes")
    out = out.with_columns(
        (1e9 * (read + write.fill_null(0.0)) / pl.col("duration_ns")).alias("dram_bytes_per_s"),
        pl.when(read.is_null()).then(None).when(write.is_null()).then(pl.lit("read"))
        .otherwise(pl.lit("read+write")).alias("dram_bytes_counted"),
    )
    medians = _nsys_medians(trace, out["kernel_name"].unique().to_list())
    out = out.join(medians, on="kernel_name", how="left").with_columns(
        (pl.col("duration_ns") / pl.col("nsys_median_ns")).alias("ncu_over_nsys")).sort("kernel_id")
    return shaped(out, DRAM_COLUMNS)


def _nsys_medians(trace: Trace, ncu_names: list[str]) -> pl.DataFrame:
    """kernel_name (ncu's, demangled) -> nsys_median_ns: the median trace duration of the
    kernel whose short name ncu's name holds as a whole identifier (the longest such: a
    `vectorized_elementwise_kernel` is not an `elementwise_kernel`)."""
    import re

    empty = pl.DataFrame(schema={"kernel_name": pl.Utf8, "nsys_median_ns": pl.Float64})
    if trace.kernels.is_empty() or not ncu_names:
        return empty
    med = trace.kernels.group_by("name").agg(pl.col("dur_ns").median().alias("nsys_median_ns"))
    shorts = sorted((n for n in med["name"].to_list() if n), key=len, reverse=True)
    rows = []
    for full in (n for n in ncu_names if n):
        match = next((s for s in shorts if full == s or re.search(rf"(?<![\w]){re.escape(s)}(?![\w])", full)), None)
        if match is not None:
            rows.append((full, match))
    if not rows:
        return empty
    pairs = pl.DataFrame(rows, schema={"kernel_name": pl.Utf8, "name": pl.Utf8}, orient="row")
    return pairs.join(med, on="name").select("kernel_name", pl.col("nsys_median_ns").cast(pl.Float64))


BW_COLUMNS = {
    "decode_ranges": pl.Int64,
    "steps_per_decode": pl.Int64,
    "weight_bytes_per_step": pl.Int64,
    "weight_bytes": pl.Int64,
    "decode_gpu_ns": pl.Int64,
    "decode_cpu_ns": pl.Int64,
    "decode_wall_ns": pl.Int64,
    "achieved_bytes_per_s": pl.Float64,
    "achieved_wall_bytes_per_s": pl.Float64,
    "peak_bytes_per_s": pl.Float64,
    "peak_source": pl.Utf8,
    "utilization_pct": pl.Float64,
}


def _peak(trace: Trace, device_id: int | None) -> tuple[float | None, str | None]:
    g = trace.gpus.filter(pl.col("memory_bandwidth_bytes_per_s") > 0)
    if device_id is not None and (g["device_id"] == device_id).any():
        g = g.filter(pl.col("device_id") == device_id)
    if g.height:
        return float(g["memory_bandwidth_bytes_per_s"][0]), "gpus"
    peak = trace.target_metrics.peak_gbps
    if peak is not None and 0 < peak <= 1e6:  # 1 PB/s: past any GPU
        return float(peak) * 1e9, "target_metrics"
    return None, None


WEIGHT_BYTES_LIMIT = 2**50  # weight bytes per step: 1 PiB (and x steps x ranges still an Int64)


def _weight_bytes(trace: Trace) -> int | None:
    w = trace.target_metrics.weight_bytes_per_step
    return w if w is not None and 0 < w < WEIGHT_BYTES_LIMIT else None


def _why_no_bandwidth(trace: Trace) -> list[str]:
    if _weight_bytes(trace) is None:
        return [f"weight_bytes_per_step in the metrics JSON is {trace.target_metrics.weight_bytes_per_step!r}: "
                "a whole number of bytes from 1 to 2^50 is needed"]
    return ["no \"decode\" (or \"prefill_decode\") NVTX range with kernels launched in it, or steps per decode "
            "range unknown (config.steps, --steps, or \"step\" ranges)"]


@analysis("decode_bandwidth", columns=BW_COLUMNS, needs=("nvtx", "runtime", "kernels", "target_metrics"),
          explain=_why_no_bandwidth)
def decode_bandwidth(trace: Trace, *, steps: int | None = None) -> pl.DataFrame:
    """One row: weight bytes streamed per second of decode, against the GPU's peak.

    Reads: target_metrics (weight_bytes_per_step, config.steps, device.peak_gbps), nvtx
    ("decode" and "step" ranges), kernels, gpus. weight_bytes = weight_bytes_per_step x
    steps_per_decode x decode_ranges; decode_gpu_ns = per decode range, first kernel start
    -> last kernel end of the kernels launched in it, summed; decode_cpu_ns = decode range
    durations summed; decode_wall_ns = per decode range, range start -> the later of range end
    and its last kernel end, summed (a graph launch returns before its kernels finish, so the CPU
    range alone can be shorter than the work). achieved_bytes_per_s = weight_bytes /
    decode_gpu_ns (GPU view), achieved_wall_bytes_per_s = weight_bytes / decode_wall_ns (what
    the target's tokens/s sees). peak_bytes_per_s from the gpus frame (theoretical), else the target's
    device.peak_gbps (peak_source says which); utilization_pct = 100 x achieved / peak.
    Steps: config.steps, else the `steps` option, else step ranges / decode ranges.
    Without "decode" ranges but with "prefill_decode" ones (graph_full: one graph launch runs
    prefill and decode), decode_gpu_ns is taken from decode_steps (first decode kernel ->
    last, prefill kernels dropped) and the host columns are null: no host range holds the
    decode alone.
    """
    wbytes = _weight_bytes(trace)
    rng = ranges(trace, ("decode", "step", "prefill_decode"))
    dec = rng.filter(pl.col("range_name") == "decode")
    if wbytes is None:
        return pl.DataFrame(schema=BW_COLUMNS)
    if dec.is_empty():
        return _prefill_decode_bandwidth(trace, wbytes, steps) if rng.height else pl.DataFrame(schema=BW_COLUMNS)
    n = config_steps(trace, steps)
    n_step_ranges = int((rng["range_name"] == "step").sum())
    if n is None and n_step_ranges and n_step_ranges % dec.height == 0:
        n = n_step_ranges // dec.height
    k = in_ranges(gpu_work(trace, ("kernel",), ("start_ns", "end_ns", "device_id", "api_start_ns", "global_tid")),
                  dec.select("range_id", "range_start_ns", "range_end_ns", "global_tid"))
    if n is None or k.is_empty():
        return pl.DataFrame(schema=BW_COLUMNS)
    per_range = k.group_by("range_id").agg(pl.col("start_ns").min().alias("first_ns"), pl.col("end_ns").max().alias("last_ns"))
    gpu_ns = int((per_range["last_ns"] - per_range["first_ns"]).sum())
    cpu_ns = int(dec["range_dur_ns"].sum())
    wall = dec.join(per_range, on="range_id", how="left").select(
        pl.max_horizontal("range_end_ns", "last_ns") - pl.col("range_start_ns"))
    wall_ns = int(wall.to_series().sum())
    return _bandwidth_row(trace, dec.height, n, wbytes, gpu_ns, cpu_ns, wall_ns,
                          int(k["device_id"][0]) if k["device_id"][0] is not None else None)


def _prefill_decode_bandwidth(trace: Trace, wbytes: int, steps: int | None) -> pl.DataFrame:
    """decode_bandwidth's row for prefill_decode ranges, from the decode windows decode_steps cut out."""
    windows = decode_windows(trace, steps=steps)
    n = config_steps(trace, steps)
    if windows.is_empty() or n is None:
        return pl.DataFrame(schema=BW_COLUMNS)
    device = trace.kernels["device_id"].drop_nulls()
    return _bandwidth_row(trace, windows.height, n, wbytes, int((windows["last_ns"] - windows["first_ns"]).sum()),
                          None, None, int(device[0]) if device.len() else None)


def _bandwidth_row(trace: Trace, n_ranges: int, n_steps: int, wbytes: int, gpu_ns: int,
                   cpu_ns: int | None, wall_ns: int | None, device_id: int | None) -> pl.DataFrame:
    total = wbytes * n_steps * n_ranges
    peak, source = _peak(trace, device_id)
    achieved = 1e9 * total / gpu_ns if gpu_ns else None
    out = pl.DataFrame([{
        "decode_ranges": n_ranges, "steps_per_decode": n_steps, "weight_bytes_per_step": wbytes,
        "weight_bytes": total, "decode_gpu_ns": gpu_ns, "decode_cpu_ns": cpu_ns, "decode_wall_ns": wall_ns,
        "achieved_bytes_per_s": achieved,
        "achieved_wall_bytes_per_s": 1e9 * total / wall_ns if wall_ns else None,
        "peak_bytes_per_s": peak, "peak_source": source,
        "utilization_pct": 100.0 * achieved / peak if achieved and peak else None,
    }], schema=BW_COLUMNS)
    return shaped(out, BW_COLUMNS)
