"""Two traces side by side: totals of A against totals of B (per kernel name, per NVTX range,
host wait and GPU idle, copies, launch calls, the targets' own metrics), the representative
decode step of each with the split of its change, the two steps' ops aligned, and what
differs in how the runs were set up.

    c = compare_traces(trace_a, trace_b)
    c.step["speedup"], c.step_alignment, c.tables["kernels"], c.setup.config

Every totals frame has the key columns, then for each value v: a_<v>, b_<v>, delta_<v>
(b - a) and change_<v>_pct (100 * (b - a) / a; null when a is 0 or absent), and
`presence`: "both", "only_a" (gone in B) or "only_b" (new in B). Units follow the value's
name (ns, bytes, counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from decodeprof.analyses.alignment import align_ops
from decodeprof.analyses.events import runtime_calls
from decodeprof.analyses.registry import run
from decodeprof.analyses.run_info import gpu_name
from decodeprof.analyses.step_timeline import StepPick, pick_step
from decodeprof.trace import Trace

METRICS = ("decode_ms", "tpot_ms", "ttft_ms", "h2d_ms", "total_ms", "tokens_per_s", "e2e_tokens_per_s", "weight_gbps")
CONFIG_KEYS = ("batch", "prompt_len", "steps", "hidden", "vocab", "dtype", "iters", "host_payload_mb")


def compare(a: pl.DataFrame, b: pl.DataFrame, on: list[str], values: list[str]) -> pl.DataFrame:
    """Full join of `a` and `b` on `on`, with a_/b_/delta_/change_*_pct per value (module doc)."""
    def pick(f: pl.DataFrame, side: str) -> pl.DataFrame:
        cast = lambda v: pl.col(v).cast(pl.Int64) if f.schema[v].is_integer() else pl.col(v).cast(pl.Float64)  # noqa: E731
        return f.select(*on, *(cast(v).alias(f"{side}_{v}") for v in values)).with_columns(pl.lit(True).alias(f"_{side}"))

    out = pick(a, "a").join(pick(b, "b"), on=on, how="full", coalesce=True, nulls_equal=True)
    presence = (pl.when(pl.col("_a").fill_null(False) & pl.col("_b").fill_null(False)).then(pl.lit("both"))
                .when(pl.col("_a").fill_null(False)).then(pl.lit("only_a")).otherwise(pl.lit("only_b")))
    cols = [presence.alias("presence")]
    for v in values:
        av, bv = pl.col(f"a_{v}"), pl.col(f"b_{v}")
        cols.append((bv.fill_null(0) - av.fill_null(0)).alias(f"delta_{v}"))
        cols.append(pl.when(av.is_not_null() & (av != 0)).then(100.0 * (bv.fill_null(0) - av) / av).alias(f"change_{v}_pct"))
    out = out.with_columns(cols).drop("_a", "_b")
    order = [*on, "presence", *(f"{p}{v}{s}" for v in values for p, s in (("a_", ""), ("b_", ""), ("delta_", "")))]
    order += [f"change_{v}_pct" for v in values]
    return out.select(order)


def kernel_totals(a: Trace, b: Trace, a_steps: int, b_steps: int) -> pl.DataFrame:
    """Per kernel name: count, total_ns, mean_ns, and count / total per decode step.

    per-step values are trace totals divided by the trace's decode steps (prefill included);
    sorted by the largest absolute total change first.
    """
    def side(t: Trace, n: int) -> pl.DataFrame:
        s = run("kernel_summary", t)
        return s.select("name", "family", "count", "total_ns", "mean_ns",
                        (pl.col("count") / n if n else pl.lit(None, pl.Float64)).alias("count_per_step"),
                        (pl.col("total_ns") / n if n else pl.lit(None, pl.Float64)).alias("ns_per_step"))
    sa, sb = side(a, a_steps), side(b, b_steps)
    fam = pl.concat([sa.select("name", "family"), sb.select("name", "family")]).unique("name", keep="first")
    out = compare(sa.drop("family"), sb.drop("family"), ["name"], ["count", "total_ns", "mean_ns", "count_per_step", "ns_per_step"])
    out = out.join(fam, on="name", how="left")
    return out.select("name", "family", *[c for c in out.columns if c not in ("name", "family")]).sort(
        pl.col("delta_total_ns").abs(), "name", descending=[True, False])


def nvtx_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """Per NVTX range name: instances, and per instance cpu_ns, gpu_span_ns, gpu_busy_ns,
    kernels, graph_launches, memcpys (nvtx_projection divided by its count)."""
    per = ("cpu_span_ns", "gpu_span_ns", "gpu_busy_ns", "kernels", "graph_launches", "memcpys")

    def side(t: Trace) -> pl.DataFrame:
        p = run("nvtx_projection", t)
        return p.select("range_name", "count", "first_range_start_ns",
                        *(pl.col(c) / pl.col("count") for c in per))
    sa, sb = side(a), side(b)
    out = compare(sa.drop("first_range_start_ns"), sb.drop("first_range_start_ns"), ["range_name"], ["count", *per])
    order = pl.concat([sa.select("range_name", "first_range_start_ns").with_columns(pl.lit(0).alias("_s")),
                       sb.select("range_name", "first_range_start_ns").with_columns(pl.lit(1).alias("_s"))])
    order = order.sort("_s", "first_range_start_ns").unique("range_name", keep="first", maintain_order=True)
    order = order.with_row_index("_o").select("range_name", "_o")
    return out.join(order, on="range_name", how="left").sort("_o").drop("_o")


def host_wait_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """host_wait per range name ("(all)" first): blocking calls, host wait, GPU idle and its causes."""
    values = ["blocking_calls", "host_wait_ns", "sync_wait_ns", "memcpy_wait_ns", "gpu_gaps", "gpu_idle_ns",
              "gpu_idle_host_bound_ns", "gpu_idle_inter_kernel_ns"]
    out = compare(run("host_wait", a), run("host_wait", b), ["range_name"], values)
    return out.sort(pl.col("range_name") != "(all)", pl.col("a_host_wait_ns").is_null(), "range_name")


def copy_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """Copies per copy kind x memory kinds: count, bytes, dur_ns, and gb_per_s on each side."""
    ca, cb = run("memory_throughput", a), run("memory_throughput", b)
    out = compare(ca, cb, ["copy_kind", "src_kind", "dst_kind", "pageable"], ["count", "bytes", "dur_ns", "gb_per_s"])
    return out.sort(pl.max_horizontal(pl.col("a_bytes").fill_null(0), pl.col("b_bytes").fill_null(0)), descending=True)


def launch_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """Runtime calls per api_kind (kernel_launch, graph_launch, memcpy, memset, sync): calls, api_ns."""
    def side(t: Trace) -> pl.DataFrame:
        c = runtime_calls(t).filter(pl.col("api_kind") != "other")
        return c.group_by("api_kind").agg(pl.len().alias("calls"), pl.col("api_dur_ns").sum().alias("api_ns"))
    return compare(side(a), side(b), ["api_kind"], ["calls", "api_ns"]).sort("api_kind")


def metric_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """The targets' own metrics where both traces carry them: median, min and max over the
    measured iterations and their count `iters` (config.iters), from the unprofiled runs where
    the run folders have them (Trace.timings)."""
    def side(t: Trace) -> pl.DataFrame:
        m, _ = t.timings()
        iters = t.target_metrics.config.get("iters")
        rows = [{"metric": k, "median": m[k].median, "iters": iters,  # an unstated min or max: the median
                 "min": m[k].median if m[k].min is None else m[k].min, "max": m[k].median if m[k].max is None else m[k].max}
                for k in METRICS if k in m]
        return pl.DataFrame(rows, schema={"metric": pl.Utf8, "median": pl.Float64, "min": pl.Float64,
                                          "max": pl.Float64, "iters": pl.Int64})
    out = compare(side(a), side(b), ["metric"], ["median", "min", "max", "iters"])
    rank = {k: i for i, k in enumerate(METRICS)}
    return out.sort(pl.col("metric").replace_strict(rank, default=len(rank)))


@dataclass(frozen=True)
class SetupDifference:
    """How two runs were set up: their GPUs, the config keys (CONFIG_KEYS) both state with
    different values, and whether each has a target config at all (its metrics JSON)."""

    gpu_a: str | None
    gpu_b: str | None
    config: tuple[tuple[str, object, object], ...]  # (key, A's value, B's value)
    config_a: bool
    config_b: bool


def setup_difference(a: Trace, b: Trace) -> SetupDifference:
    ca, cb = a.target_metrics.config, b.target_metrics.config
    keys = tuple((k, ca[k], cb[k]) for k in CONFIG_KEYS if k in ca and k in cb and ca[k] != cb[k])
    return SetupDifference(gpu_name(a), gpu_name(b), keys, bool(ca), bool(cb))


def step_change(a: StepPick, b: StepPick, which: str = "median step") -> dict:
    """The picked decode step of each side and the split of the change: which; a_/b_ steps,
    window_ns, busy_ns, idle_ns, launches, ops; speedup (A's window / B's), gain_ns (A's - B's),
    gain_idle_pct / gain_busy_pct (shares of the gain from idle and from busy time; window =
    busy + idle, so they add to 100). None where a side has no step."""
    out: dict = {"which": which}
    for side, p in (("a", a), ("b", b)):
        row = p.row()
        out[f"{side}_steps"] = p.steps.height
        for c in ("window_ns", "busy_ns", "idle_ns", "launches", "ops"):
            out[f"{side}_{c}"] = float(row[c]) if row.get(c) is not None else None
    if out["a_window_ns"] and out["b_window_ns"]:
        gain = out["a_window_ns"] - out["b_window_ns"]
        out["speedup"] = out["a_window_ns"] / out["b_window_ns"]
        out["gain_ns"] = gain
        out["gain_idle_pct"] = 100.0 * (out["a_idle_ns"] - out["b_idle_ns"]) / gain if gain else None
        out["gain_busy_pct"] = 100.0 * (out["a_busy_ns"] - out["b_busy_ns"]) / gain if gain else None
    else:
        out.update(speedup=None, gain_ns=None, gain_idle_pct=None, gain_busy_pct=None)
    return out


@dataclass(frozen=True)
class TraceComparison:
    pick_a: StepPick
    pick_b: StepPick
    step: dict  # step_change
    step_alignment: pl.DataFrame  # analyses.alignment.COLUMNS
    prefill_alignment: pl.DataFrame
    tables: dict[str, pl.DataFrame]  # launches, host_wait, copies, nvtx, kernels, metrics
    setup: SetupDifference


def compare_traces(a: Trace, b: Trace, *, step: int | None = None, steps: int | None = None) -> TraceComparison:
    """Trace `b` against trace `a`. `step`: 0-based decode step (over all decode steps in time
    order) to pick instead of the median one, in both; `steps`: decode steps per decode range
    when a trace's metrics lack config.steps."""
    pa, pb = pick_step(a, step=step, steps=steps), pick_step(b, step=step, steps=steps)
    tables = {
        "launches": launch_totals(a, b),
        "host_wait": host_wait_totals(a, b),
        "copies": copy_totals(a, b),
        "nvtx": nvtx_totals(a, b),
        "kernels": kernel_totals(a, b, pa.steps.height, pb.steps.height),
        "metrics": metric_totals(a, b),
    }
    return TraceComparison(pa, pb, step_change(pa, pb, "median step" if step is None else f"decode step {step}"),
                           align_ops(pa.ops, pb.ops), align_ops(pa.prefill, pb.prefill), tables, setup_difference(a, b))
