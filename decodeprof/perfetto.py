"""A trace as Chrome trace-event JSON, the format Perfetto's viewer (ui.perfetto.dev) and
chrome://tracing open: GPU ops per stream, the decode steps the decode-step model found, and
NVTX ranges and CUDA API calls per CPU thread, as tracks.

    decodeprof timeline tests/data/h200/graph -o graph.json --window median-step

Format (the "JSON Array/Object Format" of the Trace Event Format): {"traceEvents": [...],
"displayTimeUnit": "ns", "otherData": {...}} (otherData: source, window, and what the
trace lacks (`missing`) and what its loader dropped (`dropped`), one sentence each); every event is a complete event ("ph": "X",
"ts" and "dur" in µs, relative to the window's start) or a metadata event ("ph": "M") naming a
process or thread. Processes: 1 "GPU <device>" (a thread per stream), 2 "decode steps" (one
thread per decode run), 3 "CPU" (a thread per host thread: NVTX ranges and CUDA API calls).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from decodeprof.analyses.events import gpu_work, ranges, runtime_calls
from decodeprof.analyses.steps import step_model
from decodeprof.errors import DecodeprofError
from decodeprof.trace import Trace

WINDOWS = ("all", "decode", "median-step")
GPU, STEPS, CPU = 1, 2, 3


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int
    what: str


def window(trace: Trace, which: str, *, step: int | None = None) -> Window:
    """The time span to export: the whole trace, the decode steps found, or one step (the
    median one, or `step`, 0-based over all steps) with the CPU calls that launched it."""
    if which not in WINDOWS:
        raise DecodeprofError(f"unknown window {which!r}", f"choose one of: {', '.join(WINDOWS)}")
    if which == "all":
        times = [f.select(pl.col("start_ns").min().alias("lo"), pl.col("end_ns").max().alias("hi"))
                 for f in (trace.kernels, trace.memcpys, trace.memsets, trace.runtime, trace.nvtx) if f.height]
        if not times:
            raise DecodeprofError(f"{trace.source}: the trace holds no events to export", "capture with --trace=cuda,nvtx")
        both = pl.concat(times)
        return Window(int(both["lo"].min()), int(both["hi"].max()), "the whole trace")
    model = step_model(trace)
    cut = model.cut.filter(pl.col("gpu_start_ns").is_not_null())
    if cut.is_empty():
        raise DecodeprofError(f"{trace.source}: no decode steps to export ({model.summary})",
                              "use --window all, or name the trace's ranges with --decode-range / --step-range")
    if which == "decode":
        lo = min(int(cut["gpu_start_ns"].min()), int(cut["cpu_start_ns"].min()))
        return Window(lo, int((cut["gpu_start_ns"] + cut["gpu_window_ns"]).max()), model.summary)
    index = step if step is not None else model.median_index
    row = cut.filter(pl.col("step_index") == index)
    if row.is_empty():
        raise DecodeprofError(f"{trace.source}: no decode step {index} (the trace has {cut.height}, 0-based)",
                              f"pass --step between 0 and {cut.height - 1}")
    r = row.row(0, named=True)
    lo, hi = r["gpu_start_ns"], r["gpu_start_ns"] + r["gpu_window_ns"]
    if r["source"] not in ("decode_slice", "time_slice"):  # the step's own launches: its CPU window too
        lo, hi = min(lo, r["cpu_start_ns"]), max(hi, r["cpu_start_ns"] + r["cpu_dur_ns"])
    return Window(lo, hi, f"decode step {index} ({'median' if step is None else 'chosen'}; {model.summary})")


def _complete(frame: pl.DataFrame, win: Window, *, pid: int, tid: str, name: str, cat: str,
              args: tuple[str, ...] = ()) -> list[dict]:
    """X events of `frame` (start_ns, end_ns, `tid`, `name` columns) overlapping the window,
    clipped to it; ts/dur in µs from the window start."""
    f = frame.filter(pl.col("start_ns").is_not_null() & pl.col("end_ns").is_not_null()
                     & (pl.col("end_ns") > win.start_ns) & (pl.col("start_ns") < win.end_ns))
    f = f.with_columns(pl.max_horizontal("start_ns", pl.lit(win.start_ns)).alias("_s"),
                       pl.min_horizontal("end_ns", pl.lit(win.end_ns)).alias("_e"))
    out = []
    for row in f.select("_s", "_e", pl.col(tid).alias("_tid"), pl.col(name).alias("_name"), *args).iter_rows(named=True):
        event = {"name": str(row["_name"]), "cat": cat, "ph": "X", "ts": (row["_s"] - win.start_ns) / 1e3,
                 "dur": max(row["_e"] - row["_s"], 0) / 1e3, "pid": pid, "tid": int(row["_tid"] or 0)}
        if args:
            event["args"] = {a: row[a] for a in args if row[a] is not None}
        out.append(event)
    return out


def _names(pid: int, process: str, threads: dict[int, str]) -> list[dict]:
    out = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": process}},
           {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
    return out + [{"name": "thread_name", "ph": "M", "pid": pid, "tid": t, "args": {"name": n}} for t, n in threads.items()]


def trace_events(trace: Trace, win: Window) -> dict:
    """The trace-event JSON object of `trace` inside `win` (module docstring)."""
    ops = gpu_work(trace, columns=("op", "start_ns", "end_ns", "name", "stream_id", "device_id", "bytes"))
    ops = ops.with_columns(pl.when(pl.col("op") == "kernel").then(pl.col("name"))
                           .otherwise(pl.format("{} {}", pl.col("op"), pl.col("name").fill_null(""))).alias("label"))
    events = _complete(ops.filter(pl.col("op") == "kernel"), win, pid=GPU, tid="stream_id", name="label", cat="kernel")
    events += _complete(ops.filter(pl.col("op") != "kernel"), win, pid=GPU, tid="stream_id", name="label", cat="copy",
                        args=("bytes",))
    streams = sorted({e["tid"] for e in events})
    device = trace.gpus["name"][0] if trace.gpus.height else "GPU"
    meta = _names(GPU, f"GPU ({device})", {s: f"stream {s}" for s in streams})
    steps = step_model(trace).cut.filter(pl.col("gpu_start_ns").is_not_null()).with_columns(
        (pl.col("gpu_start_ns") + pl.col("gpu_window_ns")).alias("end_ns"), pl.col("gpu_start_ns").alias("start_ns"),
        pl.format("step {} (run {}, step {})", pl.col("step_index"), pl.col("decode_index"), pl.col("step")).alias("label"),
        pl.col("decode_index").fill_null(0).alias("run"))
    step_events = _complete(steps, win, pid=STEPS, tid="run", name="label", cat="decode_step",
                            args=("source", "ops", "kernels", "gpu_busy_ns", "gpu_idle_ns"))
    meta += _names(STEPS, "decode steps", {t: f"decode run {t}" for t in sorted({e["tid"] for e in step_events})})
    rng = ranges(trace).select(pl.col("range_start_ns").alias("start_ns"), pl.col("range_end_ns").alias("end_ns"),
                               "global_tid", "range_name")
    cpu = _complete(rng, win, pid=CPU, tid="global_tid", name="range_name", cat="nvtx")
    calls = runtime_calls(trace).select(pl.col("api_start_ns").alias("start_ns"), pl.col("api_end_ns").alias("end_ns"),
                                        "global_tid", "api_name")
    cpu += _complete(calls, win, pid=CPU, tid="global_tid", name="api_name", cat="cuda_api")
    threads = sorted({e["tid"] for e in cpu})
    meta += _names(CPU, "CPU", {t: f"thread {t & 0xFFFFFF}" for t in threads})
    return {"traceEvents": meta + events + step_events + cpu, "displayTimeUnit": "ns",
            "otherData": {"source": str(trace.source), "window": win.what, "window_start_ns": win.start_ns,
                          "window_end_ns": win.end_ns, "missing": [m.sentence() for m in trace.missing],
                          "dropped": trace.dropped()}}


def write_trace_events(doc: dict, path: Path) -> Path:
    """Write `doc` to `path` atomically (the report's writer)."""
    from decodeprof.present.files import write_atomic

    return write_atomic(path, json.dumps(doc, allow_nan=False))
