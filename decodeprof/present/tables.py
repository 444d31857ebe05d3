"""Analysis frames as terminal table columns: a header with the unit a column's values are
shown in, and the cells (decodeprof.present.formats), chosen from the column's name (its
unit suffix: _ns, _bytes, bytes_per_s, _pct) and its values. Standard library only.

    header, cells = column_cells("gpu_busy_ns", [165_300, None])   # "gpu_busy (µs)", ["165.30", ""]
"""

from __future__ import annotations

import math

from decodeprof.present.formats import fixed, integer

_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9,)) | {127: None}  # tab stays


def printable(text: str) -> str:
    """A trace string as a terminal may show it: control characters (escape sequences in a
    kernel or range name would drive the terminal) dropped."""
    return text.translate(_CONTROL)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def column_cells(column: str, values) -> tuple[str, list[str]]:
    """Header and cell strings for one column, units converted for reading only: bytes/s as
    GB/s, ns as ms (from 1 ms up) or µs, bytes as MB (from 1 MB up), percent with one
    decimal, whole numbers with separators, other floats with three decimals; "" for null."""
    values = [printable(v) if isinstance(v, str) else v for v in values]
    nums = [v for v in values if _is_number(v) and math.isfinite(v)]
    big = max((abs(v) for v in nums), default=0)

    def scaled(scale: float, digits: int) -> list[str]:
        return [("" if v is None else fixed(v / scale, digits)) if _is_number(v) else ("" if v is None else str(v))
                for v in values]

    if column.endswith("bytes_per_s"):
        return f"{column[:-len('bytes_per_s')]}GB/s", scaled(1e9, 2)
    if column == "gb_per_s":
        return "GB/s", scaled(1, 2)
    if column.endswith("_ns"):
        base = column[:-3]
        return (f"{base} (ms)", scaled(1e6, 3)) if big >= 1e6 else (f"{base} (µs)", scaled(1e3, 2))
    if column == "bytes" or column.endswith("_bytes"):
        return (f"{column} (MB)", scaled(1e6, 2)) if big >= 1e6 else (column, scaled(1, 0))
    if column.endswith("_pct"):
        return f"{column[:-4]} (%)", scaled(1, 1)
    if nums and all(float(v).is_integer() for v in nums):  # counts (a median of counts is an observed count)
        return column, ["" if v is None else (integer(v) if _is_number(v) else str(v)) for v in values]
    if any(isinstance(v, float) for v in nums):
        return column, scaled(1, 3)
    return column, ["" if v is None else str(v) for v in values]
