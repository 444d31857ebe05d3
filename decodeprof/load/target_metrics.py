"""The schema of a target's metrics JSON (metrics.json, metrics.unprofiled.json; written by
decodeprof_targets/harness.py and decodeprof_targets/multigpu.py), checked and parsed once at
load into a decodeprof.schema.TargetMetrics.

Every field the analyses, findings and report read is checked for its type and range here, so
they read it typed, as it is: a wrong type, a non-finite or impossible number (a zero step count,
a negative time, min > median) or nesting deeper than MAX_DEPTH is one TraceFileError naming
the file and the field. Fields the tool does not read pass through unchecked; a file written
by another tool that has none of these fields is still an object and loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from decodeprof.errors import TraceFileError
from decodeprof.schema import RankMetrics, TargetMetrics, Timing

MAX_DEPTH = 16  # the targets write 4 levels; deeper is not a metrics file
MAX_BYTES = 64 * 1024 * 1024  # a metrics file is a few KB (multi-GPU: a few hundred)
# Largest believable values: a config count past 2^31 (steps, batch, seed...) or weights past
# 1 PiB per step are a damaged or foreign file, and would overflow the analyses' 64-bit sums.
CONFIG_MOST = 2 ** 31
WEIGHT_BYTES_MOST = 2 ** 50

# config field -> (type, smallest allowed value)
CONFIG_FIELDS: dict[str, tuple[type, float]] = {
    "batch": (int, 1), "prompt_len": (int, 1), "steps": (int, 1), "hidden": (int, 1), "vocab": (int, 1),
    "warmup": (int, 0), "iters": (int, 1), "seed": (int, -(2 ** 63)), "host_payload_mb": (float, 0),
    "peak_gbps": (float, 0), "world_size": (int, 1),
}
TEXT_FIELDS = {"config": ("dtype", "device", "mode"), "device": ("name", "torch", "cuda")}
CORRECTNESS_SHARES = ("token_agreement", "choice_agreement")  # within 0..1


def _fail(path: Path, field: str, what: str):
    raise TraceFileError(f"{path}: field {field} {what}",
                         "fix that field or remove the file (it is the target's metrics JSON; "
                         "pass --metrics with a file a decodeprof target wrote)")


def _depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a hostile file cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return d
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read(path: Path) -> TargetMetrics:
    """The metrics JSON at `path`, checked and parsed (see the module docstring)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise TraceFileError(f"{path}: {path.stat().st_size:,} bytes is not a metrics JSON (at most {MAX_BYTES:,})",
                                 "pass the metrics.json a decodeprof target wrote, or leave it out")
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise TraceFileError(f"{path}: not a readable metrics JSON ({reason})",
                             "pass the metrics.json a decodeprof target wrote, or leave it out") from exc
    return parse(data, path)


def _timings(section) -> dict[str, Timing]:
    """{quantity: Timing} of a checked "metrics" object: the quantities with a median."""
    out = {}
    for name, stats in (section or {}).items():
        mid, lo, hi = (stats.get(k) for k in ("median", "min", "max"))
        if mid is not None:
            out[name] = Timing(float(mid), float(lo) if lo is not None else None, float(hi) if hi is not None else None)
    return out


def _int(v) -> int | None:
    return int(v) if _number(v) and float(v).is_integer() else None


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def parse(data, path: Path | str = "<metrics JSON>") -> TargetMetrics:
    """The TargetMetrics of a metrics document, checked first (`check`)."""
    data = check(data, Path(path))
    # scalar settings (the checked ones among them); anything nested stays in `document`
    config = {k: v for k, v in (data.get("config") or {}).items() if isinstance(v, (int, float, str))}
    device = data.get("device") or {}
    peak = device.get("peak_gbps")
    weight = data.get("weight_bytes_per_step")
    correctness = data.get("correctness") or {}
    agreement = correctness.get("token_agreement")
    return TargetMetrics(
        target=_text(data.get("target")),
        config=config,
        device_name=_text(device.get("name")), torch=_text(device.get("torch")), cuda=_text(device.get("cuda")),
        peak_gbps=float(peak) if peak else None,
        weight_bytes_per_step=int(weight) if weight is not None else None,
        timings=_timings(data.get("metrics")),
        correctness=dict(correctness), tokens_match=correctness.get("tokens_match"),
        token_agreement=float(agreement) if agreement is not None else None,
        active=tuple(data.get("active") or ()), fallbacks=tuple(data.get("fallbacks") or ()),
        mode=_text(data.get("mode")), backend=_text(data.get("backend")),
        world_size=_int(data.get("world_size")), slowest_rank=_int(data.get("slowest_rank")),
        ranks=tuple(RankMetrics(_int(r.get("rank")), _int(r.get("pid")), _timings(r.get("metrics")))
                    for r in data.get("ranks") or ()),
        document=data,
    )


def _check_timings(path: Path, where: str, section) -> None:
    """A "metrics" object: {quantity: {min, median, max}}, numbers >= 0 in that order."""
    if not isinstance(section, dict):
        _fail(path, where, "must be an object")
    for name, stats in section.items():
        if not isinstance(stats, dict):
            _fail(path, f"{where}.{name}", "must be an object of min, median, max")
        for stat in ("min", "median", "max"):
            v = stats.get(stat)
            if v is not None and (not _number(v) or v < 0):
                _fail(path, f"{where}.{name}.{stat}", f"must be a number >= 0, not {v!r}")
        stated = [(stat, stats[stat]) for stat in ("min", "median", "max") if stats.get(stat) is not None]
        if any(a[1] > b[1] for a, b in zip(stated, stated[1:])):
            _fail(path, f"{where}.{name}", f"has {', '.join(f'{k} {v!r}' for k, v in stated)}: not in order")


def check(data, path: Path) -> dict:
    """`data` if it follows the schema, else TraceFileError naming `path` and the field."""
    if not isinstance(data, dict):
        raise TraceFileError(f"{path}: metrics JSON is not an object", "pass the metrics.json a decodeprof target wrote")
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        _fail(path, "(the whole file)", f"is nested deeper than {MAX_DEPTH} levels")
    if "target" in data and not isinstance(data["target"], str):
        _fail(path, "target", "must be text")
    for section in ("config", "device", "metrics", "correctness"):
        if section in data and not isinstance(data[section], dict):
            _fail(path, section, "must be an object")
    for name, (kind, least) in CONFIG_FIELDS.items():
        v = data.get("config", {}).get(name)
        if v is None:
            continue
        if not _number(v) or (kind is int and not float(v).is_integer()) or v < least or abs(v) > CONFIG_MOST:
            _fail(path, f"config.{name}", f"must be {'an integer' if kind is int else 'a number'} >= {least:g} "
                                          f"and at most {CONFIG_MOST:g}, not {v!r}")
    for section, names in TEXT_FIELDS.items():
        for name in names:
            v = data.get(section, {}).get(name)
            if v is not None and not isinstance(v, str):
                _fail(path, f"{section}.{name}", f"must be text, not {v!r}")
    peak = data.get("device", {}).get("peak_gbps")
    if peak is not None and (not _number(peak) or peak < 0):
        _fail(path, "device.peak_gbps", f"must be a number >= 0, not {peak!r}")
    ws = data.get("world_size")
    if ws is not None and (not _number(ws) or not float(ws).is_integer() or ws < 1):
        _fail(path, "world_size", f"must be an integer >= 1, not {ws!r}")
    w = data.get("weight_bytes_per_step")
    if w is not None and (not _number(w) or not float(w).is_integer() or not 0 < w <= WEIGHT_BYTES_MOST):
        _fail(path, "weight_bytes_per_step", f"must be a positive integer of at most {WEIGHT_BYTES_MOST:,} (1 PiB), not {w!r}")
    _check_timings(path, "metrics", data.get("metrics", {}))
    slowest = data.get("slowest_rank")
    if slowest is not None and (not _number(slowest) or not float(slowest).is_integer() or slowest < 0):
        _fail(path, "slowest_rank", f"must be an integer >= 0, not {slowest!r}")
    for name in ("mode", "backend"):
        if data.get(name) is not None and not isinstance(data[name], str):
            _fail(path, name, f"must be text, not {data[name]!r}")
    correctness = data.get("correctness", {})
    for name in CORRECTNESS_SHARES:
        v = correctness.get(name)
        if v is not None and (not _number(v) or not 0 <= v <= 1):
            _fail(path, f"correctness.{name}", f"must be a share within 0..1, not {v!r}")
    if "tokens_match" in correctness and not isinstance(correctness["tokens_match"], bool):
        _fail(path, "correctness.tokens_match", "must be true or false")
    ranks = data.get("ranks")
    if ranks is not None:
        if not isinstance(ranks, list) or not all(isinstance(r, dict) for r in ranks):
            _fail(path, "ranks", "must be a list of objects")
        for i, r in enumerate(ranks):
            for name in ("rank", "pid"):
                if name in r and (not _number(r[name]) or not float(r[name]).is_integer() or r[name] < 0):
                    _fail(path, f"ranks[{i}].{name}", f"must be an integer >= 0, not {r[name]!r}")
            if "metrics" in r:
                _check_timings(path, f"ranks[{i}].metrics", r["metrics"])
    for name in ("active", "fallbacks"):
        v = data.get(name)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            _fail(path, name, "must be a list of text")
    return data
