"""Line up two op sequences (one decode step of A, one of B) and say what became of each op.

Two passes:
1. difflib.SequenceMatcher (autojunk off, so every op counts) on the exact key (name, grid,
   block): equal runs are "matched";
2. inside each replaced run: a run of two or more A ops facing one B op is "fused" (many ->
   one), one A op facing several B ops is "split"; otherwise a longest common subsequence of
   kernel families anchors the pairing (see _unmatched), and each anchor with the ops that go
   with it is "replaced" (1:1: same kind of work, another kernel or launch shape), "fused" or
   "split"; what pairs with nothing is "removed" (only in A) or "added" (only in B).

Each matched / replaced row also says how the op was launched on each side; an op launched
one by one in A and replayed as a CUDA graph node in B is "eager->graph": its launch call
is what disappeared, not the kernel.
"""

from __future__ import annotations

from difflib import SequenceMatcher

import polars as pl

STATUSES = ("matched", "replaced", "fused", "split", "removed", "added")
COLUMNS = {
    "row": pl.Int64,
    "status": pl.Utf8,
    "group": pl.Int64,  # rows of one fused / split op share a group
    "launch_change": pl.Utf8,  # "eager->graph", "graph->eager", "same", or null when one side is absent
    "a_index": pl.Int64,
    "a_name": pl.Utf8,
    "a_family": pl.Utf8,
    "a_grid": pl.Utf8,
    "a_block": pl.Utf8,
    "a_graph": pl.Boolean,
    "a_dur_ns": pl.Int64,
    "b_index": pl.Int64,
    "b_name": pl.Utf8,
    "b_family": pl.Utf8,
    "b_grid": pl.Utf8,
    "b_block": pl.Utf8,
    "b_graph": pl.Boolean,
    "b_dur_ns": pl.Int64,
    "dur_change_ns": pl.Int64,  # b - a (null unless both sides exist)
}
_SIDE = ("name", "family", "grid", "block", "graph", "dur_ns")


def _key(op: dict) -> tuple:
    return (op["name"], op["grid"], op["block"])


def _row(status: str, group: int, a: tuple[int, dict] | None, b: tuple[int, dict] | None) -> dict:
    out: dict = {"status": status, "group": group}
    for side, item in (("a", a), ("b", b)):
        out[f"{side}_index"] = item[0] if item else None
        for c in _SIDE:
            out[f"{side}_{c}"] = item[1][c] if item else None
    both = a is not None and b is not None
    out["dur_change_ns"] = b[1]["dur_ns"] - a[1]["dur_ns"] if both and a[1]["dur_ns"] is not None and b[1]["dur_ns"] is not None else None
    if both:
        ga, gb = bool(a[1]["graph"]), bool(b[1]["graph"])
        out["launch_change"] = "same" if ga == gb else ("eager->graph" if gb else "graph->eager")
    else:
        out["launch_change"] = None
    return out


def _family_lcs(a: list[tuple[int, dict]], b: list[tuple[int, dict]]) -> list[tuple[int, int]]:
    """Positions (i in a, j in b) of a longest common subsequence of kernel families (dynamic
    programming: difflib's longest-block-first pairing can skip a better anchor)."""
    fa, fb = [o["family"] for _, o in a], [o["family"] for _, o in b]
    n, m = len(fa), len(fb)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = best[i + 1][j + 1] + 1 if fa[i] == fb[j] else max(best[i + 1][j], best[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if fa[i] == fb[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _group(ra: list[tuple[int, dict]], rb: list[tuple[int, dict]], next_group) -> list[dict]:
    """One A run facing one B run that belong together: replaced (1:1, same kernel family;
    else removed + added), fused (many -> one), split (one -> many), else what is left of a
    replaced run (recursively)."""
    if len(ra) == 1 and len(rb) == 1:
        if ra[0][1]["family"] == rb[0][1]["family"]:
            return [_row("replaced", next_group(), ra[0], rb[0])]
        return [_row("removed", next_group(), ra[0], None), _row("added", next_group(), None, rb[0])]
    if len(rb) == 1 and ra:
        g = next_group()
        return [_row("fused", g, x, rb[0] if k == 0 else None) for k, x in enumerate(ra)]
    if len(ra) == 1 and rb:
        g = next_group()
        return [_row("split", g, ra[0] if k == 0 else None, y) for k, y in enumerate(rb)]
    return _unmatched(ra, rb, next_group)


def _unmatched(a: list[tuple[int, dict]], b: list[tuple[int, dict]], next_group) -> list[dict]:
    """A replaced run. One op on a side: fused / split / replaced outright. Otherwise the ops
    of one kernel family on both sides (a longest common subsequence) anchor the pairing; the
    ops between two anchors go with the anchor before them, those before the first anchor with
    the first (an LN and embedding before a GEMM that absorbs them, a GELU after it); where
    both sides have ops between two anchors, those two runs are aligned on their own."""
    if not a or not b:
        return [_row("removed", next_group(), x, None) for x in a] + [_row("added", next_group(), None, y) for y in b]
    if len(a) == 1 or len(b) == 1:
        return _group(a, b, next_group)
    anchors = _family_lcs(a, b)
    if not anchors:
        return _unmatched(a, [], next_group) + _unmatched([], b, next_group)
    rows: list[dict] = []
    lead_a, lead_b = anchors[0]
    if lead_a and lead_b:  # both sides lead with ops of their own: aligned apart
        rows += _unmatched(a[:lead_a], b[:lead_b], next_group)
    else:  # the lead of one side joins the first anchor
        lead_a = lead_b = 0
    for k, (i, j) in enumerate(anchors):
        i_next, j_next = anchors[k + 1] if k + 1 < len(anchors) else (len(a), len(b))
        sa, sb = (lead_a, lead_b) if k == 0 else (i, j)  # where this anchor's group starts
        if i_next - sa > 1 and j_next - sb > 1:  # both sides have ops between anchors: anchor 1:1, the rest apart
            rows += _group(a[sa:i + 1], b[sb:j + 1], next_group)
            rows += _unmatched(a[i + 1:i_next], b[j + 1:j_next], next_group)
        else:
            rows += _group(a[sa:i_next], b[sb:j_next], next_group)
    return rows


def align_ops(a_ops: pl.DataFrame, b_ops: pl.DataFrame) -> pl.DataFrame:
    """One row per op of A and/or B, in sequence order (COLUMNS; see module docstring).

    Inputs: frames with name, family, grid, block, graph, dur_ns in launch (start) order,
    e.g. `StepPick.ops`. a_index / b_index are 0-based positions in them.
    """
    a = list(enumerate(a_ops.select(_SIDE).iter_rows(named=True)))
    b = list(enumerate(b_ops.select(_SIDE).iter_rows(named=True)))
    counter = iter(range(10**9))
    next_group = lambda: next(counter)  # noqa: E731
    rows: list[dict] = []
    sm = SequenceMatcher(None, [_key(o) for _, o in a], [_key(o) for _, o in b], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            rows += [_row("matched", next_group(), x, y) for x, y in zip(a[i1:i2], b[j1:j2])]
        else:
            rows += _unmatched(a[i1:i2], b[j1:j2], next_group)
    if not rows:
        return pl.DataFrame(schema=COLUMNS)
    out = pl.DataFrame(rows).with_row_index("row")
    return out.select(pl.col(c).cast(t) if c in out.columns else pl.lit(None, t).alias(c) for c, t in COLUMNS.items())


def alignment_summary(aligned: pl.DataFrame) -> dict:
    """Counts per status (ops of A / of B), eager->graph matches, and time per side.

    Keys: <status> (rows), fused_from (A ops fused) / fused_into (B ops), eager_to_graph,
    a_ops, b_ops, a_dur_sum_ns / b_dur_sum_ns (sum of op durations), identical (nothing but
    matched rows, and at least one).
    """
    count = lambda expr: int(aligned.filter(expr).height)  # noqa: E731
    out = {s: count(pl.col("status") == s) for s in STATUSES}
    out["fused_from"] = count((pl.col("status") == "fused") & pl.col("a_index").is_not_null())
    out["fused_into"] = count((pl.col("status") == "fused") & pl.col("b_index").is_not_null())
    out["eager_to_graph"] = count(pl.col("launch_change") == "eager->graph")
    out["graph_to_eager"] = count(pl.col("launch_change") == "graph->eager")
    out["a_ops"] = count(pl.col("a_index").is_not_null())
    out["b_ops"] = count(pl.col("b_index").is_not_null())
    out["a_dur_sum_ns"] = int(aligned["a_dur_ns"].sum() or 0)
    out["b_dur_sum_ns"] = int(aligned["b_dur_ns"].sum() or 0)
    out["identical"] = aligned.height > 0 and out["matched"] == aligned.height
    return out
