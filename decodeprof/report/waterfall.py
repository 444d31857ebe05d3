"""The savings waterfall as the report shows it: the parts that barely change folded into one
row. The waterfall itself (a variant's median decode step minus its reference's, split
exactly into parts) is decodeprof.analyses.breakdown's."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.breakdown import WATERFALL_COLUMNS


def unchanged_part(n: int) -> str:
    return f"unchanged ({n} parts)"


def fold(wf: pl.DataFrame, min_abs_ns: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(shown, folded): the waterfall with the parts whose |delta_ns| < min_abs_ns summed into
    one last row "unchanged (N parts)" (base_ns, variant_ns and delta_ns summed, so the
    deltas still add up to the span difference), and those parts themselves. Fewer than two
    such parts are left as they are (folded is then empty)."""
    small = wf["delta_ns"].abs() < min_abs_ns
    if int(small.sum()) < 2:
        return wf, wf.clear()
    folded = wf.filter(small)
    row = pl.DataFrame({"part": [unchanged_part(folded.height)], "base_ns": [float(folded["base_ns"].sum())],
                        "variant_ns": [float(folded["variant_ns"].sum())], "delta_ns": [float(folded["delta_ns"].sum())]},
                       schema=WATERFALL_COLUMNS)
    return pl.concat([wf.filter(~small), row]), folded
