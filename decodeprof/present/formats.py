"""Unit formatters: every number decodeprof shows, in a table cell, a chart label or a
finding's sentence, is written by one of these. Inside the code time is integer ns, sizes
bytes, rates bytes/s, shares percent 0-100; the conversion for reading happens here only.

Two tiers:
- a number alone, for a cell whose header names the unit: `ns_us(12_345)` -> "12.3";
- a number with its unit, for a sentence: `us_text(12_345)` -> "12.3 µs".
A missing value (None, NaN) is shown by `cell` as `blank` (the report's "—", the diff's "").
Standard library only.
"""

from __future__ import annotations

import math
from typing import Callable

DASH = "—"


def missing(v) -> bool:
    """None, or a float that is not a number."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def fixed(v: float, digits: int = 0, *, sign: bool = False) -> str:
    """`v` with `digits` decimals and thousands separators; `sign`: a + before positives."""
    return f"{v:{'+' if sign else ''},.{digits}f}"


# --- a number alone (the unit is in the column header) ----------------------------------------

def ms(v: float, digits: int = 3) -> str:
    """A value already in ms."""
    return fixed(v, digits)


def ns_ms(ns: float, digits: int = 3) -> str:
    return fixed(ns / 1e6, digits)


def ns_us(ns: float, digits: int = 1, *, sign: bool = False) -> str:
    return fixed(ns / 1e3, digits, sign=sign)


def signed_us(ns: float) -> str:
    return ns_us(ns, sign=True)


def gbps(bytes_per_s: float, digits: int = 1) -> str:
    return fixed(bytes_per_s / 1e9, digits)


def mb(n_bytes: float, digits: int = 1) -> str:
    return fixed(n_bytes / 1e6, digits)


def pct(v: float, digits: int = 1, *, sign: bool = False) -> str:
    """A share already in percent (0-100)."""
    return fixed(v, digits, sign=sign)


def count(v: float) -> str:
    """A count, or a count per step: whole numbers as they are (1,539), others to three
    significant digits (0.0156 launch calls per step), never in exponent form."""
    if float(v).is_integer() or abs(v) >= 1000:
        return fixed(v, 0)
    return f"{v:,.3g}"


def integer(v: float) -> str:
    return fixed(v, 0)


def times(x: float) -> str:
    """A ratio of two times or rates, two decimals ("1.47×")."""
    return f"{x:.2f}×"


def speedup(x: float) -> str:
    """A speedup in a sentence: two decimals near 1 (1.04, not 1.0), one above (5.7)."""
    return f"{x:.2f}" if x < 1.095 else f"{x:.1f}"


def number(v, digits: int = 2) -> str:
    """A value of unknown kind: integers whole, other numbers with `digits` decimals, text as
    it is."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return fixed(v, 0) if isinstance(v, int) else fixed(v, digits)


def plain(v: float) -> str:
    """A number as short as it reads: a threshold or a limit as it was given (5, 1.5)."""
    return f"{v:g}"


def significant(v: float, digits: int = 4) -> str:
    """A measured quantity of any size: whole with separators from 10,000 up, else `digits`
    significant digits (the diff's target metrics)."""
    return fixed(v, 0) if abs(v) >= 1e4 else f"{v:.{digits}g}"


# --- a number with its unit (sentences) ---------------------------------------------------

def us_text(ns: float, digits: int = 1) -> str:
    return f"{ns_us(ns, digits)} µs"


def ms_text(v: float, digits: int = 3) -> str:
    """A value already in ms."""
    return f"{ms(v, digits)} ms"


def ns_ms_text(ns: float, digits: int = 3) -> str:
    return f"{ns_ms(ns, digits)} ms"


def gbs_text(bytes_per_s: float, digits: int = 1) -> str:
    return f"{gbps(bytes_per_s, digits)} GB/s"


def mb_text(n_bytes: float, digits: int = 1) -> str:
    return f"{mb(n_bytes, digits)} MB"


def size_text(n_bytes: float) -> str:
    """A size in the unit that reads best: MB from 100 kB up, kB from 1 kB, else bytes."""
    if n_bytes >= 1e5:
        return f"{mb(n_bytes)} MB"
    return f"{fixed(n_bytes / 1e3, 1)} kB" if n_bytes >= 1e3 else f"{fixed(n_bytes, 0)} B"


def pct_text(v: float, digits: int = 1, *, sign: bool = False) -> str:
    return f"{pct(v, digits, sign=sign)}%"


def times_text(x: float, digits: int = 2) -> str:
    """A ratio in a sentence ("1.47x")."""
    return f"{x:.{digits}f}x"


def speedup_text(x: float) -> str:
    return f"{speedup(x)}x"


# --- cells ------------------------------------------------------------------------------------

# What a table column holds -> how its cells read (the report's Column.fmt, the Jinja filters).
CELLS: dict[str, Callable[[float], str]] = {
    "ms": ms, "ns_ms": ns_ms, "ns_us": ns_us, "signed_us": signed_us, "gbps": gbps, "pct": pct, "ratio": times,
    "count": count, "int": integer,
}


def cell(kind: str, v, blank: str = DASH) -> str:
    """`v` formatted as CELLS[kind]; `blank` when missing."""
    return cell_with(CELLS[kind], v, blank)


def cell_with(show: Callable[[float], str], v, blank: str = DASH) -> str:
    """`v` formatted by `show`; `blank` when missing."""
    return blank if missing(v) else show(v)
