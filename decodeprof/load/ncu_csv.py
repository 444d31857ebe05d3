"""Read Nsight Compute CSV output into the long "ncu_metrics" frame, values in base units.

Accepts both `ncu --csv --page details` (long: one row per kernel x section x metric, with
"Section Name", "Metric Name", "Metric Unit", "Metric Value") and `ncu --csv --page raw`
(wide: one row per kernel, one column per metric, the second row holding the units).
Lines that are not the CSV (==PROF==, ==WARNING==, ==ERROR==, the program's own output
before the header) are dropped. Values lose thousands separators ("1,234.5"), decimal
commas are read ("1.234,5", "12,5"), and units become base units: bytes, ns, bytes/s
(ncu's Kbyte/Mbyte/Gbyte are 1000-based), "x/s" for other per-time rates, percent stays
0-100. Rows whose value is not a number (names, "n/a") are left out. Rows that cannot be
read (fields missing or too many, an ID that is not an integer, a value that is not finite
in base units) are dropped and counted (`read_ncu_csv`), never silently; a header naming a
column twice, or a file ending inside a quoted field, is refused.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import polars as pl

from decodeprof import schema
from decodeprof.errors import NcuCsvError

HINT = "pass the output of `ncu --csv --page details` (or `--page raw`) redirected to a file"
ID_COLUMNS = {"ID", "Process ID", "Process Name", "Host Name", "Kernel Name", "Function Name", "Kernel Time",
              "Context", "Stream", "Block Size", "Grid Size", "Device", "CC", "Section Name", "Metric Name",
              "Metric Unit", "Metric Value", "Invocations", "Rule Name", "Rule Type", "Rule Description",
              "Estimated Speedup Type", "Estimated Speedup"}

BYTES = {"byte": 1, "bytes": 1, "kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9, "tbyte": 1e12,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3}
NANOSECONDS = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
               "second": 1e9, "s": 1e9}
HERTZ = {"hz": 1, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}


def base_unit(unit: str) -> tuple[str, float]:
    """(base unit, factor) so that value_in_unit * factor = value in the base unit."""
    u = unit.strip()
    key = u.lower()
    if key in BYTES:
        return "bytes", BYTES[key]
    if key in NANOSECONDS:
        return "ns", NANOSECONDS[key]
    if key in HERTZ:
        return "Hz", HERTZ[key]
    if key == "%":
        return "percent", 1.0
    if "/" in key:
        num, den = key.split("/", 1)
        if den in NANOSECONDS:
            per_s = 1e9 / NANOSECONDS[den]
            if num in BYTES:
                return "bytes/s", BYTES[num] * per_s
            return f"{u.split('/', 1)[0]}/s", per_s
    return u, 1.0


_DIGITS = re.compile(r"^[+-]?[\d.,]+(?:[eE][+-]?\d+)?$")


def parse_number(text: str) -> float | None:
    """A float from ncu's printed value, thousands separators and decimal commas handled."""
    s = text.strip().replace("\u202f", "").replace("\xa0", "").replace(" ", "")
    if not s or not _DIGITS.match(s):
        return None
    if "," in s and "." in s:
        # The later separator is the decimal one: "1,234.5" (en) or "1.234,5" (de).
        s = s.replace(",", "") if s.rfind(".") > s.rfind(",") else s.replace(".", "").replace(",", ".")
    elif "," in s:
        # "1,234" groups thousands; "0,123" (a leading zero group) and "1,5e3" (an exponent) do not
        groups = re.split(r"[eE]", s.lstrip("+-"))[0].split(",")
        thousands = ("e" not in s.lower() and not groups[0].startswith("0") and len(groups[0]) <= 3
                     and all(len(g) == 3 for g in groups[1:]))
        s = s.replace(",", "") if thousands else s.replace(",", ".")
    elif s.count(".") > 1:  # "1.234.567": dots as thousands separators
        s = s.replace(".", "")
    try:
        return float(s)
    except ValueError:
        return None


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NcuCsvError(f"{path}: cannot read ({exc.strerror or exc})", HINT) from exc
    lines = text.splitlines()
    errors = [ln for ln in lines if ln.startswith("==ERROR==")]
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID"') and "Kernel Name" in ln
                  or ln.startswith('"ID"') and "Function Name" in ln), None)
    if start is None:
        detail = f" (ncu reported: {errors[0]})" if errors else ""
        raise NcuCsvError(f"{path}: not an Nsight Compute CSV: no '\"ID\",...,\"Kernel Name\"' header{detail}", HINT)
    body = [ln for ln in lines[start:] if ln.startswith('"')]
    if body and body[-1].count('"') % 2:
        raise NcuCsvError(f"{path}: the CSV ends inside a quoted field (cut short?)", "write the CSV again; " + HINT)
    try:
        rows = list(csv.reader(body, strict=True))
    except csv.Error as exc:
        raise NcuCsvError(f"{path}: not a readable CSV ({exc})", HINT) from exc
    twice = sorted({n for n in rows[0] if rows[0].count(n) > 1}) if rows else []
    if twice:
        raise NcuCsvError(f"{path}: the header names column {', '.join(map(repr, twice))} more than once", HINT)
    if len(rows) < 2:
        detail = f" (ncu reported: {errors[0]})" if errors else ""
        raise NcuCsvError(f"{path}: Nsight Compute CSV with no kernel rows{detail}", "check that ncu profiled any kernel; " + HINT)
    return rows


def _records(path: Path, rows: list[list[str]], dropped: dict[str, int]):
    """Metric records of `rows` (header first); rows that cannot be read are counted by
    reason in `dropped`."""
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    name_col = col.get("Kernel Name", col.get("Function Name"))

    def ident(r: list[str]) -> dict:
        def get(n: str) -> str:
            return r[col[n]] if n in col and col[n] < len(r) else ""

        return {"kernel_id": parse_number(get("ID")), "kernel_name": r[name_col] if name_col < len(r) else "",
                "stream_id": parse_number(get("Stream")), "grid": get("Grid Size"), "block": get("Block Size")}

    if {"Metric Name", "Metric Value"} <= col.keys():  # --page details (long)
        unit_i = col.get("Metric Unit")
        # a metric row ends at "Metric Value": ncu leaves off the rule columns after it (16 of
        # 20 fields in 2025.3), so only the columns read here must be present
        needed = max(col["Metric Name"], col["Metric Value"], name_col, unit_i if unit_i is not None else 0)
        for r in rows[1:]:
            if len(r) <= needed or len(r) > len(header):
                dropped["fields missing or too many"] = dropped.get("fields missing or too many", 0) + 1
                continue
            if not r[col["Metric Name"]]:
                continue
            yield {**ident(r), "section": r[col["Section Name"]] if "Section Name" in col else "",
                   "metric": r[col["Metric Name"]], "unit": r[unit_i] if unit_i is not None else "",
                   "raw": r[col["Metric Value"]]}
        return
    metric_cols = [i for i, name in enumerate(header) if name not in ID_COLUMNS]
    if not metric_cols:
        raise NcuCsvError(f"{path}: Nsight Compute CSV without metric columns or 'Metric Name'/'Metric Value'", HINT)
    units = rows[1] if len(rows) > 1 and "ID" in col and col["ID"] < len(rows[1]) and rows[1][col["ID"]].strip() == "" \
        else None
    for r in rows[2 if units else 1:]:
        if len(r) != len(header):
            dropped["fields missing or too many"] = dropped.get("fields missing or too many", 0) + 1
            continue
        base = ident(r)
        for i in metric_cols:
            yield {**base, "section": "", "metric": header[i], "unit": units[i] if units else "", "raw": r[i]}


INT64 = 2**63


def _integer(value: float | None) -> int | None | bool:
    """An ID or stream as an integer; None where blank; False where not an integer in Int64."""
    if value is None:
        return None
    return int(value) if math.isfinite(value) and value == int(value) and -INT64 <= value < INT64 else False


def read_ncu_csv(path: Path | str) -> tuple[pl.DataFrame, list[dict]]:
    """(the "ncu_metrics" frame of the ncu CSV at `path`, the rows dropped as
    [{frame: "ncu_metrics", reason, rows}]). Raises NcuCsvError."""
    path = Path(path)
    if not path.is_file():
        what = "not a file" if path.exists() else "no such file"
        raise NcuCsvError(f"{path}: {what}", HINT)
    out, dropped = [], {}
    for rec in _records(path, _csv_rows(path), dropped):
        value = parse_number(rec.pop("raw"))
        if value is None:
            continue
        unit, factor = base_unit(rec["unit"])
        ids = {k: _integer(rec[k]) for k in ("kernel_id", "stream_id")}
        value *= factor
        reason = ("ID or stream not an integer" if any(v is False for v in ids.values())
                  else "value not finite" if not math.isfinite(value) else None)
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        out.append({**rec, **ids, "unit": unit, "value": value})
    frame = pl.DataFrame(out, schema=schema.FRAMES["ncu_metrics"], orient="row") if out else schema.empty("ncu_metrics")
    return schema.conform("ncu_metrics", frame), [{"frame": "ncu_metrics", "reason": r, "rows": n}
                                                  for r, n in sorted(dropped.items())]


def load_ncu_csv(path: Path | str) -> pl.DataFrame:
    """The ncu CSV at `path` as the "ncu_metrics" frame (see module doc). Raises NcuCsvError."""
    return read_ncu_csv(path)[0]
