"""The decode-step model: the one place that says what a decode step is.

Every per-step view (decode_steps, decode_step_summary, the savings waterfall, the report's
step charts, diff's step alignment, the verdict) projects the `StepModel` built here.

Sources, tried in order; the first that finds steps is used, and the model says which
(`source`, `summary`) and why the ones before it found none (`tried`):

1. NVTX ranges the user names (`Trace.step_ranges`: `--decode-range` / `--step-range`).
2. decodeprof's own ranges: "step" ranges (eager targets), else "decode" or
   "prefill_decode" ranges cut into config.steps slices (graph targets; see step_slices).
3. CUDA graph replays: one graph launch per decode step (torch.compile "reduce-overhead",
   transformers' static cache, serving engines' decode graphs).
4. The GPU op sequence itself: the decode loop is the longest run of a repeating pattern of
   op names (`find_loop`); what precedes it is the prefill.

Decisions every view shares:
- A step's ops are the GPU ops (kernels, copies, memsets) launched in it: by a call inside its
  step range, or, without ranges, in launch order from its first op to the next step's.
- Steps are numbered 0-based within their decode run (`decode_index`, `step`); `step_index`
  numbers all steps in time order (what `diff --step` takes).
- GPU window: the step's first op start to the next step's first op start (a run's last step:
  to its last op end); busy: the union of its op intervals; idle: window - busy.
- CPU window: the step range; without one, the step's first launching call to the next
  step's (a run's last step: to the end of its last launching call).
- The representative step is the median step: the lower median by GPU window over all cut
  steps, ties to the earlier step. Per-step figures elsewhere say "median" or "mean".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import polars as pl

from decodeprof.analyses.events import ALL_OPS, LAUNCH_KINDS, config_steps, gpu_work, in_ranges_slim, per_trace, ranges, runtime_calls
from decodeprof.analyses.intervals import sums_in_ranges, union_ns
from decodeprof.analyses.step_slices import slice_offset, spans_steps, time_slices
from decodeprof.errors import DecodeprofError
from decodeprof.trace import Trace

if TYPE_CHECKING:
    import numpy as np

OP_FIELDS = ("op", "start_ns", "end_ns", "name", "correlation_id", "global_pid", "graph_node_id",
             "api_start_ns", "api_end_ns", "api_kind", "global_tid")

STEP_COLUMNS = {
    "decode_index": pl.Int64,
    "step": pl.Int64,
    "step_index": pl.Int64,
    "source": pl.Utf8,
    "cpu_start_ns": pl.Int64,
    "cpu_dur_ns": pl.Int64,
    "cpu_api_ns": pl.Int64,
    "launches": pl.Float64,
    "syncs": pl.Float64,
    "ops": pl.Int64,
    "kernels": pl.Int64,
    "gpu_start_ns": pl.Int64,
    "gpu_window_ns": pl.Int64,
    "gpu_busy_ns": pl.Int64,
    "gpu_idle_ns": pl.Int64,
}

OWN_STEP, OWN_DECODE, OWN_PREFILL, OWN_PREFILL_DECODE = "step", "decode", "prefill", "prefill_decode"
MIN_STEPS = 3  # fewer repeats than this is not a loop


@dataclass(frozen=True)
class StepModel:
    """The decode steps of one trace.

    source: how they were found ("step_range", "decode_slice", "time_slice", "graph_launch",
    "op_pattern"; "" when none). summary: one sentence saying so, with the count.
    tried: for each source tried before it (or all, when none found steps), why it found none.
    steps: one row per step, STEP_COLUMNS (rows of "few_kernels" ranges have no ops).
    ops: every op of every cut step: _op (row in gpu_work order), OP_FIELDS, decode_index,
    step, step_index (a time-sliced op appears once per window it overlaps, clipped to it).
    prefill: the ops of the prefill (the median one by span when there are several; else
    what precedes the first decode run).
    """

    source: str
    summary: str
    tried: tuple[str, ...]
    steps: pl.DataFrame
    ops: pl.DataFrame
    prefill_of: Callable[[], pl.DataFrame]  # the prefill's ops, found when first asked for (diff only)

    @functools.cached_property
    def prefill(self) -> pl.DataFrame:
        return self.prefill_of()

    @property
    def cut(self) -> pl.DataFrame:
        """The steps whose ops were found (not "few_kernels")."""
        return self.steps.filter(pl.col("source") != "few_kernels")

    @property
    def median_index(self) -> int | None:
        """step_index of the median step (lower median by GPU window, ties to the earlier)."""
        cut = self.cut.filter(pl.col("gpu_window_ns").is_not_null())
        if cut.is_empty():
            return None
        order = cut.sort("gpu_window_ns", "step_index")
        return int(order["step_index"][(order.height - 1) // 2])

    def step_ops(self, step_index: int) -> pl.DataFrame:
        return self.ops.filter(pl.col("step_index") == step_index).sort("start_ns")


# --- range selectors -----------------------------------------------------------------------

def parse_selector(text: str) -> tuple[str | None, re.Pattern]:
    """"domain:name" or "name" (a name or regular expression, matched in full) ->
    (domain or None, compiled pattern). A bad expression is a user error."""
    domain, sep, pattern = text.partition(":")
    if not sep:
        domain, pattern = None, text
    try:
        return domain, re.compile(pattern)
    except re.error as e:
        raise DecodeprofError(f"range selector {text!r} is not a valid regular expression ({e})",
                              "pass a range name, a regular expression, or domain:name") from e


def _selected(trace: Trace, text: str, rng: pl.DataFrame) -> pl.DataFrame:
    doms = trace.nvtx.with_row_index("range_id").select(pl.col("range_id").cast(pl.Int64), "domain")
    with_dom = rng.join(doms, on="range_id", how="left")
    names, domains = with_dom["range_name"].to_list(), with_dom["domain"].to_list()
    if text in names:  # a range named exactly so ("gen:next_token" may be a name, not domain:name)
        keep = [n == text for n in names]
    else:
        domain, pattern = parse_selector(text)
        keep = [(domain is None or d == domain) and bool(pattern.fullmatch(n or "")) for n, d in zip(names, domains)]
    found = with_dom.filter(pl.Series(keep, dtype=pl.Boolean)).drop("domain")
    if found.is_empty():
        held = sorted({f"{d}:{n}" if d else str(n) for n, d in zip(names, domains)})
        shown = ", ".join(held[:12]) + (f" (+{len(held) - 12} more)" if len(held) > 12 else "")
        raise DecodeprofError(f"{trace.source}: no NVTX range matches {text!r} (ranges in the trace: {shown or 'none'})",
                              "name a range the trace holds, as name, regular expression or domain:name")
    return found


# --- ops -------------------------------------------------------------------------------------

OP_CORE = ("op", "start_ns", "end_ns", "name", "api_start_ns", "global_tid")  # what range sources need


@per_trace
def trace_ops(trace: Trace) -> pl.DataFrame:
    """Every GPU op, in gpu_work order: _op (its row there) + OP_CORE (enough to place ops in
    ranges and measure steps; at 1M kernels the fewer columns gathered, the faster)."""
    return gpu_work(trace, ALL_OPS, OP_CORE).with_row_index("_op")


@per_trace
def launch_ordered_ops(trace: Trace) -> pl.DataFrame:
    """Every GPU op with its launching call, in launch order (call start, then GPU start; ops
    without a call by GPU start): _op + OP_FIELDS. What graph replays and the op pattern read."""
    ops = gpu_work(trace, ALL_OPS, OP_FIELDS).with_row_index("_op")
    return ops.sort(pl.coalesce("api_start_ns", "start_ns"), "start_ns", "_op")


def _labelled_steps(ops: pl.DataFrame) -> pl.DataFrame:
    """GPU figures per (decode_index, step) of labelled ops."""
    keys = ["decode_index", "step"]
    agg = ops.group_by(keys).agg(
        pl.len().alias("ops"), (pl.col("op") == "kernel").sum().alias("kernels"),
        pl.col("start_ns").min().alias("gpu_start_ns"), pl.col("end_ns").max().alias("_last_end"))
    busy = union_ns(ops, by=keys).rename({"busy_ns": "gpu_busy_ns"})
    out = agg.join(busy, on=keys, how="left").sort(keys).with_columns(
        pl.col("gpu_start_ns").shift(-1).over("decode_index").alias("_next"))
    return out.with_columns((pl.coalesce("_next", "_last_end") - pl.col("gpu_start_ns")).alias("gpu_window_ns")).with_columns(
        (pl.col("gpu_window_ns") - pl.col("gpu_busy_ns")).clip(lower_bound=0).alias("gpu_idle_ns")).drop("_next", "_last_end")


def _call_sums(trace: Trace, windows: pl.DataFrame) -> pl.DataFrame:
    """windows (w, cpu_start_ns, cpu_end_ns, global_tid) + cpu_api_ns, launches, syncs of the
    calls on that thread starting inside them."""
    calls = runtime_calls(trace).select("api_start_ns", "global_tid", "api_dur_ns", "api_kind")
    r = windows.select("w", pl.col("cpu_start_ns").alias("_s"), pl.col("cpu_end_ns").alias("_e"), "global_tid")
    values = {"cpu_api_ns": pl.col("api_dur_ns"), "launches": pl.col("api_kind").is_in(list(LAUNCH_KINDS)),
              "syncs": pl.col("api_kind") == "sync"}
    sums = sums_in_ranges(calls, r, at="api_start_ns", start="_s", end="_e", by="global_tid", values=values)
    return sums.select("w", *values)


def _finish(trace: Trace, source: str, labelled: pl.DataFrame, cpu: pl.DataFrame, *, even_over: pl.DataFrame | None = None,
            n: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(steps, ops): the GPU figures of `labelled` joined to `cpu` (decode_index, step,
    cpu_start_ns, cpu_end_ns, global_tid); call sums over each CPU window, or, for slices,
    over each decode range (`even_over`: decode_index, cpu_start_ns, cpu_end_ns, global_tid)
    divided evenly among its `n` steps."""
    keys = ["decode_index", "step"]
    gpu = _labelled_steps(labelled) if labelled.height else None
    steps = cpu.sort(keys)
    if even_over is None:
        sums = _call_sums(trace, steps.with_row_index("w"))
        steps = pl.concat([steps, sums.drop("w")], how="horizontal")
    else:
        sums = _call_sums(trace, even_over.rename({"decode_index": "w"})).rename({"w": "decode_index"})
        steps = steps.join(sums.select("decode_index", *((pl.col(c) / n) for c in ("cpu_api_ns", "launches", "syncs"))),
                           on="decode_index", how="left")
    if gpu is not None:
        steps = steps.join(gpu, on=keys, how="left")
    else:
        steps = steps.with_columns(pl.lit(None, pl.Int64).alias(c) for c in
                                   ("ops", "kernels", "gpu_start_ns", "gpu_window_ns", "gpu_busy_ns", "gpu_idle_ns"))
    steps = steps.sort("cpu_start_ns", *keys).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("step_index"),
        pl.col("source").fill_null(source) if "source" in steps.columns else pl.lit(source).alias("source"),
        (pl.col("cpu_end_ns") - pl.col("cpu_start_ns")).alias("cpu_dur_ns"),
        pl.col("ops").fill_null(0), pl.col("kernels").fill_null(0))
    steps = steps.with_columns(pl.when(pl.col("source") == "few_kernels").then(None).otherwise(pl.col(c)).alias(c)
                               for c in ("gpu_busy_ns", "gpu_idle_ns"))
    steps = steps.select((pl.col(c).cast(t) for c, t in STEP_COLUMNS.items()))
    ops = labelled.join(steps.select(*keys, "step_index"), on=keys, how="left") if labelled.height else labelled
    return steps, ops


# --- source 1 and 2: ranges -------------------------------------------------------------------

def _ops_in_ranges(ops: pl.DataFrame, rng: pl.DataFrame, keep: tuple[str, ...],
                   columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Ops whose launching call starts inside a range of `rng` on its thread: their `columns`
    (default: all) + `keep` columns of the range."""
    cols = dict.fromkeys(("range_id", "range_start_ns", "range_end_ns", "global_tid", *keep))
    return in_ranges_slim(ops, rng.select(*cols), keep=keep, keep_points=columns or tuple(ops.columns))


def _from_step_ranges(trace: Trace, ops: pl.DataFrame, step_r: pl.DataFrame, dec: pl.DataFrame):
    """Each step range is a step; its decode run is the decode range holding its start (0 when
    none is named)."""
    step_r = step_r.sort("range_start_ns")
    if dec.height:
        dec = dec.sort("range_start_ns").with_row_index("decode_index").with_columns(pl.col("decode_index").cast(pl.Int64))
        # the decode range of the same thread (each rank of a multi-process trace has its own)
        owner = step_r.select("range_id", "range_start_ns", "global_tid").sort("range_start_ns").join_asof(
            dec.select("decode_index", "range_start_ns", "global_tid").sort("range_start_ns"), on="range_start_ns",
            by="global_tid", strategy="backward", check_sortedness=False)
        step_r = step_r.join(owner.select("range_id", "decode_index"), on="range_id", how="left")
    else:
        step_r = step_r.with_columns(pl.lit(0, pl.Int64).alias("decode_index"))
    step_r = step_r.with_columns(
        pl.col("range_start_ns").rank("ordinal").over("decode_index").cast(pl.Int64).sub(1).alias("step"))
    # a step range needs no names: the fewer columns paired, the less a 1M-kernel trace costs
    labelled = _ops_in_ranges(ops, step_r, ("decode_index", "step"), ("_op", "op", "start_ns", "end_ns"))
    cpu = step_r.select("decode_index", "step", pl.col("range_start_ns").alias("cpu_start_ns"),
                        pl.col("range_end_ns").alias("cpu_end_ns"), "global_tid")
    return _finish(trace, "step_range", labelled, cpu)


def _from_decode_slices(trace: Trace, ops: pl.DataFrame, dec: pl.DataFrame, n: int):
    """Each decode range cut into `n` steps (step_slices): by its repeating op sequence, or in
    time when one kernel spans it; ranges with fewer ops than steps and no spanning kernel are
    kept as "few_kernels" steps without ops. Returns (steps, ops, prologue ops)."""
    dec = dec.sort("range_start_ns").with_row_index("decode_index").with_columns(pl.col("decode_index").cast(pl.Int64))
    inside = _ops_in_ranges(ops, dec, ("decode_index",)).sort("decode_index", "start_ns")
    parts, prologues, sources = [], [], {}
    for (di,), group in inside.group_by(["decode_index"], maintain_order=True):
        offset = slice_offset(group["name"].to_list(), n)
        if offset is None:
            if spans_steps(group):
                _, clipped = time_slices(group, n)
                parts.append(clipped)
                sources[di] = "time_slice"
            continue
        per = group.height // n
        group = group.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64))
        prologues.append(group.filter(pl.col("_i") < offset).drop("_i"))
        # ops past the last full slice (an epilogue such as the final token concat) stay in the last step
        parts.append(group.filter(pl.col("_i") >= offset).with_columns(
            ((pl.col("_i") - offset) // per).clip(upper_bound=n - 1).alias("step")).drop("_i"))
        sources[di] = "decode_slice"
    labelled = pl.concat(parts, how="diagonal_relaxed") if parts else inside.clear().with_columns(pl.lit(0, pl.Int64).alias("step"))
    grid = dec.join(pl.DataFrame({"step": range(n)}, schema={"step": pl.Int64}), how="cross")
    source = pl.col("decode_index").replace_strict(list(sources), list(sources.values()), default="few_kernels",
                                                   return_dtype=pl.Utf8) if sources else pl.lit("few_kernels")
    cpu = grid.select("decode_index", "step", source.alias("source"),
                      (pl.col("range_start_ns") + pl.col("range_dur_ns") * pl.col("step") // n).alias("cpu_start_ns"),
                      (pl.col("range_start_ns") + pl.col("range_dur_ns") * (pl.col("step") + 1) // n).alias("cpu_end_ns"),
                      "global_tid")
    even = dec.select("decode_index", pl.col("range_start_ns").alias("cpu_start_ns"),
                      pl.col("range_end_ns").alias("cpu_end_ns"), "global_tid")
    steps, labelled = _finish(trace, "decode_slice", labelled.select(inside.columns + ["step"]), cpu, even_over=even, n=n)
    prologue = pl.concat(prologues) if prologues else inside.clear()
    return steps, labelled, prologue


def _median_span(ops: pl.DataFrame) -> pl.DataFrame:
    """The ops of the range (range_id) whose GPU span is the median one (lower median)."""
    if ops.is_empty():
        return ops
    spans = ops.group_by("range_id").agg((pl.col("end_ns").max() - pl.col("start_ns").min()).alias("w")).sort("w", "range_id")
    return ops.filter(pl.col("range_id") == spans["range_id"][(spans.height - 1) // 2])


# --- source 3 and 4: launch units ------------------------------------------------------------

def launch_units(ops: pl.DataFrame) -> pl.DataFrame:
    """`ops` (in launch order) + `_unit`: an eager op is one unit, the ops one graph launch
    replays are one unit. Units are what the host issues: the sequence the decode loop repeats."""
    graph = pl.col("api_kind") == "graph_launch"
    same = graph & graph.shift(1) & (pl.col("correlation_id") == pl.col("correlation_id").shift(1)) & (
        pl.col("global_pid") == pl.col("global_pid").shift(1))
    return ops.with_columns((~same.fill_null(False)).cum_sum().cast(pl.Int64).sub(1).alias("_unit"))


def _unit_table(units: pl.DataFrame) -> pl.DataFrame:
    """One row per unit: _unit, graph, n_ops, name (first op's), token (int: equal units,
    equal tokens)."""
    table = units.group_by("_unit", maintain_order=True).agg(
        (pl.col("api_kind").first() == "graph_launch").fill_null(False).alias("graph"), pl.len().alias("n_ops"),
        pl.col("name").first().fill_null("?").alias("name"))
    key = pl.when(pl.col("graph")).then(pl.format("graph:{}:{}", pl.col("name"), pl.col("n_ops"))).otherwise(pl.col("name"))
    return table.with_columns(key.rank("dense").cast(pl.Int64).alias("token"))


@dataclass(frozen=True)
class Loop:
    """Repeating runs in a token sequence: each run is `blocks` repeats of `period` tokens from `start`."""

    period: int
    runs: tuple[tuple[int, int], ...]  # (start, blocks)

    @property
    def blocks(self) -> int:
        return sum(b for _, b in self.runs)


def find_loop(tokens: np.ndarray, *, candidates: int = 16) -> Loop | None:
    """The decode loop in a sequence of op tokens: the period p at which the sequence repeats
    itself most (s[i] == s[i+p] at the largest share of positions; near-ties go to the smaller
    p, since 2p, 3p, ... repeat as well), then every stretch that repeats at p at least
    MIN_STEPS times (one per generate call captured).

    Candidate periods are the most common distances between successive occurrences of the
    same token (an op that runs once per step recurs at exactly p), so the search is a few
    vectorised comparisons over the sequence, not a scan of every p. A layer of a many-layer
    model repeats too, but breaks at every step boundary, so the step's period matches at
    more positions. Mismatches shorter than half a period (an attention kernel whose variant
    changes with the sequence length) do not break a stretch; leading blocks that match their
    successor much less than the typical block (a prefill with the same op sequence but other
    GEMM kernels) are left to the prefill. None when nothing repeats MIN_STEPS times."""
    import numpy as np  # here, not at import: analyses that never look for a pattern skip it

    n = len(tokens)
    if n < MIN_STEPS:
        return None
    order = np.lexsort((np.arange(n), tokens))
    same = tokens[order[1:]] == tokens[order[:-1]]
    gaps = (order[1:] - order[:-1])[same]
    gaps = gaps[(gaps > 0) & (gaps <= n // MIN_STEPS)]
    if gaps.size == 0:
        return None
    values, counts = np.unique(gaps, return_counts=True)
    picks = values[np.argsort(-counts, kind="stable")[:candidates]]
    scored = sorted((1.0 - float((tokens[:-p] == tokens[p:]).mean()), p) for p in (int(v) for v in picks))
    best_rate = scored[0][0]
    near = sorted(q for r, q in scored if r <= best_rate + max(0.005, 0.1 * best_rate))
    # the smallest near-best period that repeats MIN_STEPS times (an outer loop seen only twice
    # does not), else the best one that does
    order = near + [q for _, q in scored if q not in near]
    p, runs = next(((q, rs) for q in order if (rs := _runs(tokens, q))), (0, []))
    if not runs:
        return None
    covered = sum(b for _, b in runs) * p
    # A loop inside the winner that repeats in a few long, clean runs covering most of it is
    # the step loop, and the winner is the outer loop over requests (several generate calls,
    # or graph targets' iterations). A layer loop repeats in one short run per step: many runs.
    for q in sorted(q for _, q in scored if q < p):
        inner = _runs(tokens, q)
        if 1 <= len(inner) <= MAX_RUNS and sum(b for _, b in inner) * q >= 0.8 * covered and \
                _clean(tokens, q, inner) >= 0.95:
            p, runs = q, inner
            break
    return Loop(p, tuple(runs))


def _clean(tokens: np.ndarray, p: int, runs: list[tuple[int, int]]) -> float:
    """Share of positions inside the runs that repeat exactly one period later."""
    import numpy as np

    match = tokens[:-p] == tokens[p:]
    inside = np.concatenate([match[s:s + (b - 1) * p] for s, b in runs]) if runs else np.array([])
    return float(inside.mean()) if inside.size else 0.0


MAX_RUNS = 8  # decode runs (generate calls) one capture holds, at most, when a loop inside another is the step


def _runs(tokens: np.ndarray, p: int) -> list[tuple[int, int]]:
    """(start, blocks) of every stretch repeating at period p at least MIN_STEPS times."""
    import numpy as np

    match = tokens[:-p] == tokens[p:]
    runs = []
    for start, stop in _stretches(match, max(1, p // 2), (MIN_STEPS - 1) * p):
        blocks = (stop + p - start) // p
        # per block: share of its positions matching the next block (the last block: the previous)
        rates = match[start:start + (blocks - 1) * p].reshape(blocks - 1, p).mean(axis=1)
        rates = np.append(rates, rates[-1])
        typical, lead = float(np.median(rates)), 0
        while lead < blocks - MIN_STEPS and rates[lead] < 0.9 * typical:
            lead += 1
        first = start + lead * p
        if lead:  # the trimmed blocks were cut at the stretch's phase: the loop starts where matching resumes
            back = match[max(first - p + 1, 0):first][::-1]
            first -= int(np.argmin(back)) if not back.all() else back.size
        runs.append((first, (stop + p - first) // p))
    return runs


def _stretches(match: np.ndarray, bridge: int, min_length: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in `match`, bridging runs of False shorter than
    `bridge`, at least `min_length` long."""
    import numpy as np

    if not match.any():
        return []
    edges = np.diff(np.concatenate(([0], match.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = np.concatenate(([True], starts[1:] - stops[:-1] >= bridge))  # a run that does not continue the last
    firsts = starts[keep]
    lasts = stops[np.concatenate((keep[1:], [True]))]
    long = lasts - firsts >= min_length
    return [(int(a), int(b)) for a, b in zip(firsts[long], lasts[long])]


def _steps_from_unit_blocks(trace: Trace, units: pl.DataFrame, bounds: list[tuple[int, int, int]], source: str):
    """bounds: (decode_index, first unit, unit count) per step, in order. Labels the ops of
    those units and finishes the steps; the CPU window runs from a step's first launching call
    to the next step's of the same run (the run's last step: to its last call's end)."""
    import numpy as np

    run, first, size = (np.array(c, dtype=np.int64) for c in zip(*bounds))
    within = np.arange(run.size) - np.searchsorted(run, run, side="left")  # step number inside its run
    unit = units["_unit"].to_numpy()
    k = np.searchsorted(first, unit, side="right") - 1  # the step whose first unit is the last at or before
    kk = k.clip(min=0)
    inside = (k >= 0) & (unit < first[kk] + size[kk])
    labelled = units.filter(pl.Series(inside)).drop("_unit").with_columns(
        pl.Series("decode_index", run[kk[inside]]), pl.Series("step", within[kk[inside]]))
    when = pl.coalesce("api_start_ns", "start_ns")
    cpu = labelled.group_by("decode_index", "step").agg(
        when.min().alias("cpu_start_ns"), pl.coalesce("api_end_ns", "end_ns").max().alias("_last"),
        pl.col("global_tid").drop_nulls().first().alias("global_tid")).sort("decode_index", "step")
    cpu = cpu.with_columns(pl.coalesce(pl.col("cpu_start_ns").shift(-1).over("decode_index"), "_last").alias("cpu_end_ns")).drop("_last")
    return _finish(trace, source, labelled, cpu)


def _from_graph_launches(units: pl.DataFrame, table: pl.DataFrame) -> tuple[list | None, int | str]:
    """One graph launch per step: the steps start at the launches of the graph replayed most
    often; a step holds the units from its launch to the next one (a run's last step: as many
    units as the median step). A gap of more than twice the median number of units between two
    launches (another request's prefill) starts a new decode run. None when no graph is
    replayed at least MIN_STEPS times or other graphs are launched as often (several graphs
    per step: the op pattern finds those)."""
    import numpy as np

    graphs = table.filter("graph")
    if graphs.height < MIN_STEPS:
        return None, f"CUDA graph replays: {graphs.height} graph launch(es), too few for a loop"
    counts = graphs.group_by("token").len().sort("len", descending=True)
    if counts.height > 1 and counts["len"][1] >= 0.5 * counts["len"][0]:
        return None, "CUDA graph replays: several graphs launched about as often (more than one graph per step)"
    anchors = graphs.filter(pl.col("token") == counts["token"][0])["_unit"].to_numpy()
    if anchors.size < MIN_STEPS:
        return None, f"CUDA graph replays: {anchors.size} launches of one graph, too few for a loop"
    replayed = units.filter(pl.col("_unit") == int(anchors[0]))  # does one launch replay the whole loop?
    inside = find_loop(replayed["name"].rank("dense").to_numpy())
    if inside is not None and inside.blocks >= anchors.size:  # the graph replays the loop itself (graph targets)
        return None, (f"CUDA graph replays: each of the {anchors.size} launches replays a loop of {inside.blocks} "
                      f"repeats, not one step")
    gaps = np.diff(anchors)
    typical = int(np.median(gaps))
    bounds, run, last_unit = [], 0, int(table["_unit"].max())
    for i, a in enumerate(anchors):
        if i + 1 < anchors.size and gaps[i] <= 2 * typical:
            bounds.append((run, int(a), int(gaps[i])))
            continue
        bounds.append((run, int(a), min(typical, last_unit + 1 - int(a))))  # a run's last step
        run += 1
    return bounds, typical


def _pattern_bounds(ops: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int, int]], Loop] | None:
    """Steps of the repeating pattern, over the ops one by one (a graph's replayed kernels
    too: a graph may replay one step, several, or part of one): (ops with `_unit` = position,
    bounds (run, first op, op count), loop). The pattern is read from the kernels alone:
    copies and memsets come and go between steps (a clone that is sometimes a copy, an
    allocator's memset) and would shift every position after them; they stay in the step
    whose kernels they follow."""
    import numpy as np

    units = ops.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_unit"))
    kernel = (units["op"] == "kernel").to_numpy()
    pos = np.flatnonzero(kernel) if kernel.any() else np.arange(units.height)
    loop = find_loop(units["name"].fill_null("?").rank("dense").to_numpy()[pos])
    if loop is None:
        return None
    p, bounds = loop.period, []
    for run, (start, blocks) in enumerate(loop.runs):
        starts = [int(pos[start + b * p]) for b in range(blocks)]
        after = start + blocks * p
        end = int(pos[after]) if after < pos.size else units.height
        counts = np.diff(starts)
        last = min(end - starts[-1], int(np.median(counts)) if counts.size else end - starts[-1])
        bounds += [(run, s0, int(c)) for s0, c in zip(starts, [*counts, last])]
    return units, bounds, loop


def _describe_graph(labelled: pl.DataFrame, steps: pl.DataFrame, per_step_units: int) -> str:
    graph_kernels = labelled.filter(pl.col("api_kind") == "graph_launch").group_by("step_index").len()
    replayed = int(graph_kernels["len"].median()) if graph_kernels.height else 0
    others = f", and {per_step_units - 1} other op(s) launched one by one" if per_step_units > 1 else ""
    return f"{steps.height} decode steps: one cudaGraphLaunch each (replaying {replayed} kernels{others})"


def _cross_check(steps: pl.DataFrame, labelled: pl.DataFrame) -> str:
    """What the per-token host round trip says: steps holding a device-to-host copy or a sync."""
    d2h = labelled.filter(pl.col("name").str.contains("DTOH")).select("step_index").unique().height
    syncs = steps.filter(pl.col("syncs") > 0).height
    said = [f"{k} of {steps.height} steps hold {what}" for k, what in ((d2h, "a device-to-host copy"),
                                                                      (syncs, "a host synchronization")) if k]
    return f" (cross-check: {'; '.join(said)})" if said else " (no per-step copy or sync to cross-check)"


# --- the model --------------------------------------------------------------------------------

def _empty_model(tried: list[str]) -> StepModel:
    ops = pl.DataFrame(schema={"_op": pl.UInt32, **{c: pl.Utf8 if c in ("op", "name") else pl.Int64 for c in OP_CORE},
                               "decode_index": pl.Int64, "step": pl.Int64, "step_index": pl.Int64})
    hint = ("name your loop's NVTX ranges with --decode-range / --step-range (name, regular expression "
            "or domain:name), or capture with CUDA tracing (nsys --trace=cuda,nvtx)")
    return StepModel("", f"no decode steps found ({'; '.join(tried)}); {hint}" if tried else "no decode steps found",
                     tuple(tried), pl.DataFrame(schema=STEP_COLUMNS), ops, ops.clear)


def _from_units(trace: Trace, ops: pl.DataFrame, tried: list[str]) -> StepModel | None:
    """Sources 3 and 4 over `ops` (launch order)."""
    if ops.is_empty():
        tried.append("GPU ops: none")
        return None
    if (ops["api_kind"] == "graph_launch").any():
        units = launch_units(ops)
        bounds, note = _from_graph_launches(units, _unit_table(units))
    else:
        bounds, note = None, "CUDA graph replays: no graph launch"
    if bounds is not None:  # note: the units per step (median)
        steps, labelled = _steps_from_unit_blocks(trace, units, bounds, "graph_launch")
        summary = _describe_graph(labelled, steps, note) + _cross_check(steps, labelled)
        return StepModel("graph_launch", summary, tuple(tried), steps, labelled, lambda: _before(units, labelled))
    tried.append(note)  # why graph replays found no steps
    found = _pattern_bounds(ops)
    if found is None:
        tried.append(f"repeating op pattern: no kernel sequence repeats {MIN_STEPS}+ times in {ops.height} ops")
        return None
    units, bounds, loop = found
    steps, labelled = _steps_from_unit_blocks(trace, units, bounds, "op_pattern")
    first = labelled.sort("step_index", "start_ns")["name"].first()
    runs = f" in {len(loop.runs)} decode runs" if len(loop.runs) > 1 else ""
    summary = (f"{steps.height} decode steps{runs}: repeating pattern of {loop.period} kernels starting at {first}"
               + _cross_check(steps, labelled))
    return StepModel("op_pattern", summary, tuple(tried), steps, labelled, lambda: _before(units, labelled))


def _before(units: pl.DataFrame, labelled: pl.DataFrame) -> pl.DataFrame:
    """The ops launched before the first decode step: the prefill (and the loop's set-up)."""
    ordered = units.drop("_unit").with_row_index("_pos")
    first = ordered.join(labelled.select("_op"), on="_op", how="semi")["_pos"].min() if labelled.height else None
    return ordered.head(int(first) if first is not None else 0).drop("_pos")


def _from_user_ranges(trace: Trace, ops: pl.DataFrame, rng: pl.DataFrame, tried: list[str], steps_hint: int | None) -> StepModel:
    sel = trace.step_ranges
    dec = _selected(trace, sel.decode, rng) if sel.decode else rng.clear()
    named = " and ".join(f"{flag} {text!r}" for flag, text in (("--decode-range", sel.decode), ("--step-range", sel.step)) if text)
    if sel.step:
        step_r = _selected(trace, sel.step, rng)
        steps, labelled = _from_step_ranges(trace, ops, step_r, dec)
        return StepModel("step_range", f"{steps.height} decode steps: the NVTX ranges named by {named}", tuple(tried),
                         steps, labelled, ops.clear)
    if steps_hint:
        steps, labelled, prologue = _from_decode_slices(trace, ops, dec, steps_hint)
        return StepModel("decode_slice", f"{steps.height} decode steps: {dec.height} range(s) named by {named}, "
                         f"each cut into {steps_hint} steps", tuple(tried), steps, labelled, lambda: prologue)
    inside = _ops_in_ranges(launch_ordered_ops(trace), dec, ("range_id",)).drop("range_id").sort(
        pl.coalesce("api_start_ns", "start_ns"), "start_ns", "_op")
    model = _per_process(trace, inside, tried)
    if model is None:
        return _empty_model([*tried, f"inside the {dec.height} range(s) named by {named}"])
    return StepModel(model.source, f"{model.summary}, inside the range(s) named by {named}", model.tried, model.steps,
                     model.ops, model.prefill_of)


def _own_prefill(ops: pl.DataFrame, rng: pl.DataFrame, prologue: pl.DataFrame | None) -> pl.DataFrame:
    """The median "prefill" range's ops; without prefill ranges, what precedes the first cut
    decode range's first step (graph_full's prefill inside its one graph)."""
    prefill = _median_span(_ops_in_ranges(ops, rng.filter(pl.col("range_name") == OWN_PREFILL), ("range_id",)))
    if prefill.is_empty() and prologue is not None and prologue.height:
        prefill = prologue.filter(pl.col("decode_index") == prologue["decode_index"].min())
    return prefill.drop([c for c in ("range_id", "decode_index") if c in prefill.columns])


@per_trace
def step_model(trace: Trace, *, steps: int | None = None) -> StepModel:
    """The decode steps of `trace`, from the first source that finds any (module docstring).
    `steps`: decode steps per decode range when the trace's metrics do not say (own ranges)."""
    rng = ranges(trace)
    tried: list[str] = []
    n = config_steps(trace, steps)
    if trace.step_ranges:
        return _from_user_ranges(trace, trace_ops(trace), rng, tried, n)
    names = set(rng["range_name"].unique().to_list())
    ops = trace_ops(trace) if names & {OWN_STEP, OWN_DECODE, OWN_PREFILL_DECODE} else None  # range sources only
    if OWN_STEP in names:
        dec = rng.filter(pl.col("range_name") == OWN_DECODE)
        found, labelled = _from_step_ranges(trace, ops, rng.filter(pl.col("range_name") == OWN_STEP), dec)
        return StepModel("step_range", f"{found.height} decode steps: one NVTX 'step' range each", (), found, labelled,
                         lambda: _own_prefill(ops, rng, None))
    for name in (OWN_DECODE, OWN_PREFILL_DECODE):
        if name not in names:
            continue
        if n is None:  # a graph target's range replays every step in one launch: nothing to find without n
            return _empty_model([f"NVTX '{name}' ranges: the steps per range are unknown (no metrics.json config; pass --steps)"])
        dec = rng.filter(pl.col("range_name") == name)
        found, labelled, prologue = _from_decode_slices(trace, ops, dec, n)
        cut = found.filter(pl.col("source") != "few_kernels")
        if cut.is_empty():
            tried.append(f"NVTX '{name}' ranges: fewer ops than {n} steps in each")
            return _empty_model(tried) if not found.height else StepModel(
                "few_kernels", f"{found.height} decode steps: {dec.height} '{name}' range(s) with fewer ops than steps",
                tuple(tried), found, labelled, lambda: prologue)
        source = cut["source"].mode().sort()[0]
        how = "in equal time windows (one kernel runs them all)" if source == "time_slice" else "where its ops repeat"
        return StepModel(source, f"{found.height} decode steps: {dec.height} '{name}' range(s), each cut into {n} {how}",
                         tuple(tried), found, labelled, lambda: _own_prefill(ops, rng, prologue))
    if not tried:
        tried.append("NVTX ranges: no 'decode'/'step' ranges (name yours with --decode-range / --step-range)")
    model = _per_process(trace, launch_ordered_ops(trace), tried)
    return model if model is not None else _empty_model(tried)


def _per_process(trace: Trace, ops: pl.DataFrame, tried: list[str]) -> StepModel | None:
    """Sources 3 and 4 for each process apart (each rank of a multi-GPU trace launches its
    own loop; one merged launch sequence would interleave them): the runs of all processes,
    numbered in the order their processes appear, steps re-numbered over all in time order."""
    pids = ops["global_pid"].drop_nulls().unique().sort().to_list()
    if len(pids) < 2:
        return _from_units(trace, ops, tried)
    models = [m for pid in pids if (m := _from_units(trace, ops.filter(pl.col("global_pid") == pid), list(tried)))]
    if not models:
        tried.append(f"GPU ops of each of the {len(pids)} processes: no loop found in any")
        return None
    steps, labelled, offset = [], [], 0
    for m in models:
        steps.append(m.steps.with_columns(pl.col("decode_index") + offset))
        labelled.append(m.ops.with_columns(pl.col("decode_index") + offset))
        offset += int(m.steps["decode_index"].max()) + 1
    order = pl.concat(steps).sort("cpu_start_ns", "decode_index", "step").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("step_index"))
    ops_all = pl.concat(labelled, how="diagonal_relaxed").drop("step_index").join(
        order.select("decode_index", "step", "step_index"), on=["decode_index", "step"], how="left")
    first = models[0]
    summary = f"{order.height} decode steps in {len(models)} processes (first: {first.summary})"
    return StepModel(first.source, summary, first.tried, order, ops_all, first.prefill_of)
