"""Each analysis on small hand-built traces with answers worked out by hand.

SYNTHETIC on purpose: these traces are written by hand (not captured) so that every
expected number below can be derived on paper from the event list in the builder, and so
that the tests run before the real H100 fixtures exist. Tests against real captures (with
values computed independently by SQL on the .sqlite) live in test_analyses_fixtures.py.

Eager trace (device 0, pid 100; thread 1 carries the NVTX ranges, thread 2 none):
    ranges (tid 1): iteration [0,10000], h2d [100,600], decode [1000,9000],
                    step [1000,4000], step [5000,8000]
    tid 1: cudaMemcpyAsync c1 [200,500] -> H2D pageable->device 1e6 B, stream 7 [300,700]
           cudaLaunchKernel c2 [1100,1200] -> gemm  s7 [1300,2300]
           cudaLaunchKernel c3 [1300,1400] -> elementwise s7 [2400,2900]
           cudaLaunchKernel c4 [5100,5200] -> gemm  s7 [5300,6300]
           cudaLaunchKernel c5 [5300,5400] -> reduce s7 [6400,6600]
           cudaStreamSynchronize c6 [5500,6700]
    tid 2: cudaLaunchKernel c7 [1500,1600] -> triton_poi s9 [1700,2000]
           cudaMemcpyAsync c8 [1600,1650] -> H2D pinned->device 6e5 B, stream 9 [2000,2600]
"""

from __future__ import annotations

import math

import polars as pl
import pytest

from decodeprof import schema
from decodeprof.analyses import ANALYSES, run, why_empty
from decodeprof.load.target_metrics import parse
from decodeprof.schema import TargetMetrics
from decodeprof.trace import Trace

PID = 100
H2D, PAGE, PIN, DEV = "CUDA_MEMCPY_KIND_HTOD", "CUDA_MEMOPR_MEMORY_KIND_PAGEABLE", "CUDA_MEMOPR_MEMORY_KIND_PINNED", "CUDA_MEMOPR_MEMORY_KIND_DEVICE"


def frame(name: str, rows: list[dict]) -> pl.DataFrame:
    """Rows -> the schema frame `name`, undeclared columns null, dur_ns = end - start."""
    cols = schema.FRAMES[name]
    full = []
    for r in rows:
        r = {c: r.get(c) for c in cols} | ({"dur_ns": r["end_ns"] - r["start_ns"]} if "dur_ns" in cols and r.get("end_ns") is not None else {})
        full.append(r)
    return pl.DataFrame(full, schema=cols) if full else schema.empty(name)


def rng(text, s, e, tid=1):
    return dict(text=text, start_ns=s, end_ns=e, domain="decodeprof", event_kind="push_pop", global_tid=tid, global_pid=PID, tid=tid)


def call(name, corr, s, e, tid=1):
    return dict(name=name, correlation_id=corr, start_ns=s, end_ns=e, global_tid=tid, global_pid=PID, tid=tid)


def kern(name, corr, s, e, stream=7, node=None):
    return dict(name=name, demangled_name=name, correlation_id=corr, start_ns=s, end_ns=e, stream_id=stream,
                device_id=0, global_pid=PID, graph_node_id=node)


def copy(corr, s, e, nbytes, src, stream):
    return dict(correlation_id=corr, start_ns=s, end_ns=e, bytes=nbytes, copy_kind=H2D, src_kind=src, dst_kind=DEV,
                stream_id=stream, device_id=0, global_pid=PID)


def eager_trace(**extra) -> Trace:
    return Trace(
        source="<synthetic eager>",
        nvtx=frame("nvtx", [rng("iteration", 0, 10000), rng("h2d", 100, 600), rng("decode", 1000, 9000),
                            rng("step", 1000, 4000), rng("step", 5000, 8000)]),
        runtime=frame("runtime", [
            call("cudaMemcpyAsync_v3020", 1, 200, 500), call("cudaLaunchKernel_v7000", 2, 1100, 1200),
            call("cudaLaunchKernel_v7000", 3, 1300, 1400), call("cudaLaunchKernel_v7000", 4, 5100, 5200),
            call("cudaLaunchKernel_v7000", 5, 5300, 5400), call("cudaStreamSynchronize_v3020", 6, 5500, 6700),
            call("cudaLaunchKernel_v7000", 7, 1500, 1600, tid=2), call("cudaMemcpyAsync_v3020", 8, 1600, 1650, tid=2),
        ]),
        kernels=frame("kernels", [
            kern("ampere_bf16_s16816gemm", 2, 1300, 2300), kern("vectorized_elementwise_kernel", 3, 2400, 2900),
            kern("ampere_bf16_s16816gemm", 4, 5300, 6300), kern("reduce_kernel", 5, 6400, 6600),
            kern("triton_poi_fused_add_0", 7, 1700, 2000, stream=9),
        ]),
        memcpys=frame("memcpys", [copy(1, 300, 700, 1_000_000, PAGE, 7), copy(8, 2000, 2600, 600_000, PIN, 9)]),
        **extra,
    )


def graph_trace() -> Trace:
    """Two decode ranges, each one cudaGraphLaunch replaying 4 kernels (2 steps x 2 kernels)."""
    kernels = []
    for corr, base in ((10, 1300), (11, 4300)):
        kernels += [kern(f"k{i}", corr, base + 150 * i, base + 150 * i + 100, node=i + 1) for i in range(4)]
    return Trace(
        source="<synthetic graph>",
        nvtx=frame("nvtx", [rng("decode", 1000, 3000), rng("decode", 4000, 6000)]),
        runtime=frame("runtime", [call("cudaGraphLaunch_v10000", 10, 1100, 1200), call("cudaGraphLaunch_v10000", 11, 4100, 4200)]),
        kernels=frame("kernels", kernels),
        target_metrics=TargetMetrics(config={"steps": 2}),
    )


def rows(df: pl.DataFrame, key: str) -> dict:
    return {r[key]: r for r in df.iter_rows(named=True)}


def test_kernel_summary_times_and_families():
    out = rows(run("kernel_summary", eager_trace()), "name")
    g = out["ampere_bf16_s16816gemm"]
    assert (g["count"], g["total_ns"], g["min_ns"], g["max_ns"], g["family"]) == (2, 2000, 1000, 1000, "gemm")
    assert g["share_pct"] == pytest.approx(100 * 2000 / 3000)
    assert out["reduce_kernel"]["family"] == "reduction"
    assert out["vectorized_elementwise_kernel"]["family"] == "elementwise"
    assert out["triton_poi_fused_add_0"]["family"] == "elementwise"
    assert list(run("kernel_summary", eager_trace())["name"])[0] == "ampere_bf16_s16816gemm"


def test_nvtx_projection_attributes_by_thread_and_nesting():
    out = rows(run("nvtx_projection", eager_trace()), "range_name")
    it, h2d, dec, step = out["iteration"], out["h2d"], out["decode"], out["step"]
    # tid 2's kernel and copy are in no range: only tid 1's four kernels count.
    assert (it["count"], it["cpu_span_ns"], it["kernels"], it["gpu_span_ns"], it["gpu_busy_ns"]) == (1, 10000, 4, 5300, 2700)
    assert (it["memcpys"], it["memcpy_bytes"]) == (1, 1_000_000)
    assert (h2d["kernels"], h2d["memcpys"], h2d["gpu_span_ns"]) == (0, 1, 0)
    assert (dec["kernels"], dec["gpu_span_ns"], dec["gpu_busy_ns"]) == (4, 5300, 2700)
    # two step instances: spans 1600 + 1300, busy 1500 + 1200
    assert (step["count"], step["cpu_span_ns"], step["gpu_span_ns"], step["gpu_busy_ns"]) == (2, 6000, 2900, 2700)
    assert list(run("nvtx_projection", eager_trace())["range_name"]) == ["iteration", "h2d", "decode", "step"]


def test_nvtx_projection_counts_graph_kernels_per_launch():
    d = rows(run("nvtx_projection", graph_trace()), "range_name")["decode"]
    assert (d["count"], d["graph_launches"], d["kernels"], d["graph_kernels"]) == (2, 2, 8, 8)
    assert (d["gpu_span_ns"], d["gpu_busy_ns"]) == (2 * 550, 2 * 400)


def test_decode_steps_from_step_ranges():
    out = run("decode_steps", eager_trace())
    assert out.select("decode_index", "step", "cpu_start_ns", "cpu_dur_ns", "cpu_api_ns", "launches", "kernels",
                      "gpu_start_ns", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns").rows() == [
        (0, 0, 1000, 3000, 200, 2.0, 2, 1300, 4000, 1500, 2500),
        (0, 1, 5000, 3000, 1400, 2.0, 2, 5300, 1300, 1200, 100),
    ]
    s = run("decode_step_summary", eager_trace()).row(0, named=True)
    # lower medians (an observed step, the one diff shows), not the mean of the two middle steps
    assert (s["steps"], s["decode_ranges"], s["kernels"], s["cpu_api_ns"], s["gpu_window_ns"]) == (2, 1, 2.0, 200.0, 1300.0)
    assert s["median_step_index"] == 1 and s["source"] == "step_range"
    assert s["gpu_idle_pct"] == pytest.approx(100 * 2600 / 5300)


def test_decode_steps_slices_graph_decode():
    out = run("decode_steps", graph_trace())
    assert out.select("decode_index", "step", "source", "cpu_start_ns", "cpu_dur_ns", "cpu_api_ns", "launches",
                      "kernels", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns").rows() == [
        (0, 0, "decode_slice", 1000, 1000, 50, 0.5, 2, 300, 200, 100),
        (0, 1, "decode_slice", 2000, 1000, 50, 0.5, 2, 250, 200, 50),
        (1, 0, "decode_slice", 4000, 1000, 50, 0.5, 2, 300, 200, 100),
        (1, 1, "decode_slice", 5000, 1000, 50, 0.5, 2, 250, 200, 50),
    ]
    # without config.steps the `steps` option decides; without either, no rows
    t = Trace(source="x", nvtx=graph_trace().nvtx, runtime=graph_trace().runtime, kernels=graph_trace().kernels)
    assert run("decode_steps", t).is_empty()
    assert run("decode_steps", t, steps=4)["kernels"].to_list() == [1] * 8


def test_host_wait_blocking_calls_and_idle_split():
    out = rows(run("host_wait", eager_trace()), "range_name")
    a = out["(all)"]
    # pageable cudaMemcpyAsync (300) + cudaStreamSynchronize (1200); the pinned copy does not block
    assert (a["blocking_calls"], a["host_wait_ns"], a["sync_wait_ns"], a["memcpy_wait_ns"]) == (2, 1500, 1200, 300)
    # device-wide gaps: 100 before the elementwise kernel (queued), 2400 before step 1's
    # gemm (launched at 5100, after the GPU idled at 2900: host-bound), 100 before reduce
    assert (a["gpu_gaps"], a["gpu_idle_ns"], a["gpu_idle_host_bound_ns"], a["gpu_idle_inter_kernel_ns"]) == (3, 2600, 2400, 200)
    assert (out["h2d"]["blocking_calls"], out["h2d"]["memcpy_wait_ns"], out["h2d"]["gpu_gaps"]) == (1, 300, 0)
    # idle charged to a range is the idle inside it: the 2400 gap began at 2900, inside the
    # decode range but before step 1's range opened at 5000, so step 1 holds 300 of it
    assert (out["step"]["host_wait_ns"], out["step"]["gpu_idle_ns"]) == (1200, 100 + 300 + 100)
    assert (out["step"]["gpu_idle_host_bound_ns"], out["step"]["gpu_idle_inter_kernel_ns"]) == (300, 200)
    assert out["decode"]["gpu_idle_ns"] == 2600
    assert list(out) == ["(all)", "iteration", "h2d", "decode", "step"]


def test_idle_gaps_distribution_in_decode():
    r = run("idle_gaps", eager_trace()).row(0, named=True)
    assert (r["scope"], r["stream_id"], r["kernels"], r["gaps"], r["median_ns"], r["max_ns"], r["total_ns"]) == (
        "decode", 7, 4, 3, 100.0, 2400, 2600)
    assert r["p90_ns"] == pytest.approx(100 + 0.8 * 2300)  # linear between sorted [100, 100, 2400]
    assert run("idle_gaps", eager_trace()).height == 1  # tid 2's stream-9 kernel is outside decode


def test_largest_gaps_lists_calls_during_gap():
    """One row per gap, its calls summarised (a gap overlapped by many calls was many rows)."""
    out = run("largest_gaps", eager_trace())
    assert out.select("gap_rank", "gap_start_ns", "gap_ns", "calls", "call_overlap_ns", "top_call", "top_call_overlap_ns").rows() == [
        (1, 2900, 2400, 1, 100, "cudaLaunchKernel_v7000", 100),
        (2, 2300, 100, 0, 0, None, None),
        (3, 6300, 100, 1, 100, "cudaStreamSynchronize_v3020", 100),
    ]


def test_launch_overhead_queue_delay():
    per = run("launches", eager_trace())
    assert per["queue_delay_ns"].to_list() == [100, 1000, 100, 100, 1000]  # by call start
    out = rows(run("launch_overhead", eager_trace()), "range_name")
    a = out["(all)"]
    assert (a["launches"], a["api_total_ns"], a["api_median_ns"], a["queue_median_ns"], a["queue_p90_ns"]) == (5, 500, 100.0, 100.0, 1000.0)
    assert (out["decode"]["launches"], out["decode"]["queue_median_ns"]) == (4, 550.0)
    assert "h2d" not in out
    g = run("launches", graph_trace())
    assert g.select("api_kind", "kernels", "queue_delay_ns").rows() == [("graph_launch", 4, 100)] * 2


def test_memory_throughput_pageable_flag_and_rate():
    out = rows(run("memory_throughput", eager_trace()), "src_kind")
    p, q = out[PAGE], out[PIN]
    assert (p["pageable"], p["bytes"], p["dur_ns"], p["gb_per_s"]) == (True, 1_000_000, 400, 2500.0)
    assert (q["pageable"], q["bytes"], q["dur_ns"], q["bytes_per_s"]) == (False, 600_000, 600, 1e12)


def test_overlap_of_copy_with_other_streams():
    out = run("overlap", eager_trace())
    assert out.select("copy_kind", "stream_id", "copy_ns", "overlapped_ns").rows() == [
        ("(all)", None, 1000, 500), (H2D, 7, 400, 0), (H2D, 9, 600, 500)]
    assert out["overlap_fraction"].to_list() == pytest.approx([0.5, 0.0, 500 / 600])


def test_decode_bandwidth_from_target_metrics():
    tm = parse({"config": {"steps": 2}, "weight_bytes_per_step": 1000, "device": {"name": "X", "peak_gbps": 2.0}})
    r = run("decode_bandwidth", eager_trace(target_metrics=tm)).row(0, named=True)
    assert (r["weight_bytes"], r["decode_gpu_ns"], r["decode_cpu_ns"], r["peak_source"]) == (2000, 5300, 8000, "target_metrics")
    assert r["achieved_bytes_per_s"] == pytest.approx(2000 / 5300 * 1e9)
    assert r["utilization_pct"] == pytest.approx(100 * (2000 / 5300) / 2.0)
    gpus = frame("gpus", [dict(device_id=0, name="H100", memory_bandwidth_bytes_per_s=4_000_000_000)])
    r = run("decode_bandwidth", eager_trace(target_metrics=tm, gpus=gpus)).row(0, named=True)
    assert (r["peak_source"], r["peak_bytes_per_s"]) == ("gpus", 4e9)
    # steps from step ranges when config lacks them (2 step ranges / 1 decode range)
    r = run("decode_bandwidth", eager_trace(target_metrics=TargetMetrics(weight_bytes_per_step=1000))).row(0, named=True)
    assert (r["steps_per_decode"], r["peak_bytes_per_s"]) == (2, None)
    assert run("decode_bandwidth", eager_trace()).is_empty()
    assert any("--metrics" in s for s in why_empty(eager_trace(), "decode_bandwidth"))


def test_decode_bandwidth_takes_no_absurd_metrics():
    """Target metrics (built here past the loader's schema, which refuses these in a file) with
    a step count past 2^31 (or not a whole number) or weight bytes past 2^50: the count is
    unknown (step ranges give it), the bytes unknown (no row, and why), never an overflow."""
    for steps in (2**63, True, 1.5, -3):
        r = run("decode_bandwidth", eager_trace(target_metrics=TargetMetrics(weight_bytes_per_step=1000, config={"steps": steps})))
        assert r["steps_per_decode"].to_list() == [2], steps  # from the 2 step ranges
    for wbytes in (2**60, 0, -1, 1e30):
        trace = eager_trace(target_metrics=TargetMetrics(weight_bytes_per_step=wbytes, config={"steps": 2}))
        assert run("decode_bandwidth", trace).is_empty()
        assert any("weight_bytes_per_step" in s for s in why_empty(trace, "decode_bandwidth")), wbytes


def test_kernel_dram_pivots_ncu_metrics():
    m = [(1, "gemv", "gpu__time_duration.sum", 2000.0), (1, "gemv", "dram__bytes_read.sum", 5000.0),
         (1, "gemv", "dram__bytes_write.sum", 1000.0), (1, "gemv", "dram__throughput.avg.pct_of_peak_sustained_elapsed", 80.0),
         (2, "argmax", "gpu__time_duration.sum", 500.0)]
    ncu = frame("ncu_metrics", [dict(kernel_id=i, kernel_name=n, metric=k, value=v) for i, n, k, v in m])
    out = run("kernel_dram", Trace(source="x", ncu_metrics=ncu)).select(
        "kernel_id", "kernel_name", "duration_ns", "dram_read_bytes", "dram_write_bytes", "dram_bytes_per_s",
        "dram_throughput_pct")  # (the columns comparing with the trace's own durations: tests/test_ncu_reconcile.py)
    assert out.rows() == [(1, "gemv", 2000.0, 5000.0, 1000.0, 3e9, 80.0), (2, "argmax", 500.0, None, None, None, None)]


@pytest.mark.parametrize("name", list(ANALYSES))
def test_every_analysis_declared_shape_on_synthetic(name):
    for t in (eager_trace(), graph_trace()):
        assert dict(run(name, t, steps=2).schema) == ANALYSES[name].columns


def test_derived_frames_belong_to_their_trace():
    """Shared intermediate frames live in the trace's own store: computed once per trace,
    never served to another trace, and not carried into a trace made from it."""
    import dataclasses
    import gc
    import weakref

    from decodeprof.analyses.events import runtime_calls
    from decodeprof.trace import StepRanges

    trace = eager_trace()
    first = runtime_calls(trace)
    assert runtime_calls(trace) is first and len(trace.derived) == 1
    other = dataclasses.replace(trace, step_ranges=StepRanges(decode="decode"))
    assert len(other.derived) == 0 and runtime_calls(other) is not first
    twin = eager_trace()  # equal frames, another trace: its own entries
    assert runtime_calls(twin) is not first
    gone = weakref.ref(first)
    del trace, other, first
    gc.collect()
    assert gone() is None  # nothing outside the trace keeps its derived frames


def test_why_empty_with_target_metrics_but_no_trace_rows():
    """A metrics JSON beside an export whose tables are gone: the reasons name the tables."""
    bare = Trace(source="<no tables>", target_metrics=parse({"weight_bytes_per_step": 1000, "config": {"steps": 2}}))
    said = why_empty(bare, "decode_bandwidth")
    assert said and not any("metrics JSON" in s for s in said)
