"""The diff's totals tables as the terminal and the HTML page show them: which values, under
which headers, each cell written by the unit formatters (decodeprof.present.formats)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import polars as pl

from decodeprof.present import formats


class Value(NamedTuple):
    column: str  # v in a_v, b_v, change_v_pct (analyses.comparison)
    header: str
    show: Callable[[float], str]


class Table(NamedTuple):
    name: str  # key of TraceDiff.tables
    title: str
    key: str  # the column naming each row
    values: tuple[Value, ...]


COUNT = formats.count
MS = lambda ns: formats.ns_ms(ns, 2)  # noqa: E731
US = lambda ns: formats.ns_us(ns, 2)  # noqa: E731
MB = lambda n: formats.mb(n, 2)  # noqa: E731
TWO = lambda v: formats.fixed(v, 2)  # noqa: E731

TABLES = (
    Table("launches", "Launch and sync calls (whole trace)", "api_kind", (Value("calls", "calls", COUNT), Value("api_ns", "API ms", MS))),
    Table("host_wait", "Host wait and GPU idle per NVTX range (ms)", "range_name",
          (Value("host_wait_ns", "host wait", MS), Value("gpu_idle_ns", "GPU idle", MS),
           Value("gpu_idle_host_bound_ns", "host-bound idle", MS))),
    Table("copies", "Copies", "copy", (Value("count", "count", COUNT), Value("bytes", "MB", MB), Value("dur_ns", "ms", MS),
                                       Value("gb_per_s", "GB/s", TWO))),
    Table("nvtx", "NVTX ranges, per instance (µs)", "range_name",
          (Value("count", "count", COUNT), Value("cpu_span_ns", "CPU", US), Value("gpu_busy_ns", "GPU busy", US),
           Value("kernels", "kernels", COUNT))),
    Table("kernels", "Kernels by name (whole trace)", "name", (Value("count", "count", COUNT), Value("total_ns", "total µs", US))),
    Table("metrics", "Target metrics (median of iterations)", "metric", (Value("median", "median", TWO),)),
)
# What the terminal leaves out of a table to stay within its width.
TERMINAL_LEAVES_OUT = {"host_wait": ("gpu_idle_host_bound_ns",), "nvtx": ("kernels",)}


def cell(show: Callable[[float], str], v) -> str:
    return formats.cell_with(show, v, blank="")


def change(pct) -> str:
    return "" if pct is None else formats.pct_text(pct, 0, sign=True)


def labelled(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its key column: copies get a "copy" label (HTOD pageable -> device)."""
    if name != "copies" or not frame.height:
        return frame
    short = [pl.col(c).str.replace(r"^.*_", "") for c in ("copy_kind", "src_kind", "dst_kind")]
    return frame.with_columns(pl.format("{} {} -> {}", *short).alias("copy"))


def rows(table: Table, frame: pl.DataFrame, values: tuple[Value, ...] | None = None) -> list[list[str]]:
    """One list of cells per row: the key, then A, B and the change (%) of each value."""
    out = []
    for r in labelled(table.name, frame).iter_rows(named=True):
        cells = [str(r[table.key])]
        for v in values or table.values:
            cells += [cell(v.show, r[f"a_{v.column}"]), cell(v.show, r[f"b_{v.column}"]), change(r[f"change_{v.column}_pct"])]
        out.append(cells)
    return out
