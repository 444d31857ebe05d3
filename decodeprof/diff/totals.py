"""Totals of A against totals of B: per kernel name, per NVTX range, host wait and GPU idle,
copies, launch calls and the target's own metrics; absolute and relative changes.

Every comparison frame has the key columns, then for each value v: a_<v>, b_<v>,
delta_<v> (b - a) and change_<v>_pct (100 * (b - a) / a; null when a is 0 or absent), and
`presence`: "both", "only_a" (gone in B) or "only_b" (new in B). Units follow the value's
name (ns, bytes, counts).
"""

from __future__ import annotations

import polars as pl

from decodeprof.analyses import run
from decodeprof.analyses.events import runtime_calls
from decodeprof.trace import Trace


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
    ha, hb = run("host_wait", a), run("host_wait", b)
    out = compare(ha, hb, ["range_name"], values)
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


METRICS = ("decode_ms", "tpot_ms", "ttft_ms", "h2d_ms", "total_ms", "tokens_per_s", "e2e_tokens_per_s", "weight_gbps")


def metric_totals(a: Trace, b: Trace) -> pl.DataFrame:
    """The targets' own metrics where both traces carry them: median, min and max over the
    measured iterations and their count `iters` (config.iters), from the unprofiled runs where
    the run folders have them (Trace.timings)."""
    def side(t: Trace) -> pl.DataFrame:
        m, _ = t.timings()
        iters = ((t.target_metrics or {}).get("config") or {}).get("iters")
        rows = [{"metric": k, "median": float(m[k]["median"]),
                 "min": float(m[k].get("min", m[k]["median"])), "max": float(m[k].get("max", m[k]["median"])),
                 "iters": iters}
                for k in METRICS if isinstance(m.get(k), dict) and isinstance(m[k].get("median"), (int, float))]
        return pl.DataFrame(rows, schema={"metric": pl.Utf8, "median": pl.Float64, "min": pl.Float64,
                                          "max": pl.Float64, "iters": pl.Int64})
    out = compare(side(a), side(b), ["metric"], ["median", "min", "max", "iters"])
    rank = {k: i for i, k in enumerate(METRICS)}
    return out.sort(pl.col("metric").replace_strict(rank, default=len(rank)))


CONFIG_KEYS = ("batch", "prompt_len", "steps", "hidden", "vocab", "dtype", "iters", "host_payload_mb")


def gpu_name(t: Trace) -> str | None:
    names = sorted(set(t.gpus["name"].drop_nulls().to_list()))
    if names:
        return ", ".join(names)
    dev = (t.target_metrics or {}).get("device")
    return dev.get("name") if isinstance(dev, dict) else None


def unstable_warnings(metrics: pl.DataFrame, label_a: str = "A", label_b: str = "B") -> list[str]:
    """One sentence per run and timing whose max/min over its iterations exceeds
    UNSTABLE_SPREAD: host noise that makes its median less certain."""
    from decodeprof.thresholds import UNSTABLE_SPREAD

    out = []
    for r in metrics.iter_rows(named=True):
        if not r["metric"].endswith("_ms"):
            continue
        for side, label in (("a", label_a), ("b", label_b)):
            lo, hi = r[f"{side}_min"], r[f"{side}_max"]
            if lo and hi and lo > 0 and hi / lo > UNSTABLE_SPREAD:
                out.append(f"{label}: {r['metric']} varied {hi / lo:.2f}x over its {r[f'{side}_iters'] or '?'} iterations "
                           f"(max/min > {UNSTABLE_SPREAD:g}: host noise; its median is less certain)")
    return out


def config_warnings(a: Trace, b: Trace, label_a: str = "A", label_b: str = "B") -> list[str]:
    """Sentences naming what differs between the two runs: GPU, then config keys (batch, steps...)."""
    out = []
    ga, gb = gpu_name(a), gpu_name(b)
    if ga and gb and ga != gb:
        out.append(f"GPUs differ: {label_a} ran on {ga}, {label_b} on {gb}")
    ca = (a.target_metrics or {}).get("config") or {}
    cb = (b.target_metrics or {}).get("config") or {}
    diffs = [f"{k} {ca.get(k)} vs {cb.get(k)}" for k in CONFIG_KEYS if k in ca and k in cb and ca[k] != cb[k]]
    if diffs:
        out.append(f"configs differ ({label_a} vs {label_b}): " + ", ".join(diffs))
    if not ca or not cb:
        missing = [lbl for lbl, c in ((label_a, ca), (label_b, cb)) if not c]
        out.append(f"no target config for {' and '.join(missing)} (no metrics.json): cannot check batch/steps match")
    return out
