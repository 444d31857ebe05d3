"""A run folder or trace file, loaded and analysed: what the report and `profile` start from.

    trace, frames = load_and_analyse("runs/graph")     # every registered analysis, and run_info
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from decodeprof.analyses.registry import run_all
from decodeprof.analyses.run_info import run_info
from decodeprof.load import load_trace
from decodeprof.trace import StepRanges, Trace


def analyse(trace: Trace) -> dict[str, pl.DataFrame]:
    """Every registered analysis of `trace` (in registration order), then `run_info`."""
    return {**run_all(trace), "run_info": run_info(trace)}


def load_and_analyse(path: Path | str, step_ranges: StepRanges | None = None) -> tuple[Trace, dict[str, pl.DataFrame]]:
    """Load `path` (its metrics.json and ncu.csv beside it count as given) and analyse it.
    `step_ranges`: the NVTX ranges the user names as decode loop and step (traces of other engines)."""
    trace = load_trace(Path(path))
    if step_ranges:
        trace = dataclasses.replace(trace, step_ranges=step_ranges)
    return trace, analyse(trace)
