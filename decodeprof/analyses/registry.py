"""The analysis registry: name -> pure function `(trace, **options) -> pl.DataFrame`.

Each analysis declares the frames it reads (`needs`) and its output columns with dtypes
(`columns`); `run` passes it only the options its signature names, so one option set
(e.g. `steps=8`) can be handed to every analysis.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import polars as pl

from decodeprof.trace import Trace


@dataclass(frozen=True)
class Analysis:
    name: str
    func: Callable[..., pl.DataFrame]
    columns: dict[str, pl.DataType]
    needs: tuple[str, ...]  # Trace frames read; any empty one explains an empty result
    title: str  # one line, from the docstring
    explain: Callable[[Trace], list[str]] | None = None  # why it is empty although `needs` are present

    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.func).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


ANALYSES: dict[str, Analysis] = {}


def analysis(name: str, *, columns: dict[str, pl.DataType], needs: tuple[str, ...],
             explain: Callable[[Trace], list[str]] | None = None):
    """Decorator: register `func` under `name` with its output `columns` and input `needs`
    (and `explain`: sentences for an empty result whose inputs are all present)."""

    def wrap(func: Callable[..., pl.DataFrame]) -> Callable[..., pl.DataFrame]:
        if name in ANALYSES:
            raise ValueError(f"analysis {name!r} registered twice")
        title = (func.__doc__ or name).strip().splitlines()[0]
        ANALYSES[name] = Analysis(name, func, dict(columns), needs, title, explain)
        return func

    return wrap


def shaped(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select `columns` in order and cast to their dtypes (the analysis' declared output).

    NaN (a 0/0 ratio) becomes null: "no value", never a number that is not one.
    """
    if frame.is_empty():
        return pl.DataFrame(schema=columns)
    return frame.select(
        pl.col(c).cast(t).fill_nan(None) if t == pl.Float64 else pl.col(c).cast(t) for c, t in columns.items()
    )


def run(name: str, trace: Trace, **options) -> pl.DataFrame:
    """Run one analysis, passing only the options it accepts."""
    a = ANALYSES[name]
    accepted = a.options()
    return a.func(trace, **{k: v for k, v in options.items() if k in accepted and v is not None})


def run_all(trace: Trace, names: list[str] | None = None, **options) -> dict[str, pl.DataFrame]:
    """Every registered analysis (or those named), in registration order."""
    return {n: run(n, trace, **options) for n in (names or list(ANALYSES))}


# What to do when an input that is not an nsys table is absent.
_HINTS = {
    "ncu_metrics": "no Nsight Compute metrics: pass --ncu CSV (from `ncu --csv --page raw`)",
    "target_metrics": "no target metrics JSON (weight_bytes_per_step, config): pass --metrics JSON",
}


def why_empty(trace: Trace, name: str) -> list[str]:
    """Sentences saying which input of analysis `name` is missing from `trace` (may be [])."""
    out = []
    for frame in ANALYSES[name].needs:
        value = trace.frame(frame)
        if value.height > 0 if isinstance(value, pl.DataFrame) else bool(value):  # a frame, or TargetMetrics
            continue
        known = [m.sentence() for m in trace.missing if m.frame == frame]
        out.extend(known or [_HINTS.get(frame, f"the trace has no {frame} rows")])
    explain = ANALYSES[name].explain
    return out or (explain(trace) if explain else [])
