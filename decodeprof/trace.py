"""The Trace: typed polars frames of one nsys export, plus what it lacks.

Built by the loaders (`decodeprof.load`), read by the analyses. Frames follow
`decodeprof.schema.FRAMES`; a table absent from the export is an empty frame and a
`MissingData` entry that says what is missing and how to capture it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import polars as pl

from decodeprof import schema


@dataclass(frozen=True)
class MissingData:
    """A table the export lacks: which frame it would fill and the capture flag that adds it,
    or (`frame` not a frame of schema.FRAMES: "names", "copy kinds") what it would name and
    how the rows are shown without it."""

    frame: str
    table: str
    fix: str
    column: str | None = None  # the table is there, without this column

    def sentence(self) -> str:
        if self.column:
            return f"{self.frame} not in the export (column {self.table}.{self.column} absent): {self.fix}"
        if self.frame not in schema.FRAMES:
            return f"{self.frame} unreadable (table {self.table} absent): {self.fix}"
        return f"no {self.frame} data (table {self.table} absent): {self.fix}"


@dataclass(frozen=True)
class StepRanges:
    """NVTX ranges the user names as a trace's decode loop (`--decode-range`) and decode steps
    (`--step-range`): a name or regular expression, optionally prefixed `domain:`. None: not named."""

    decode: str | None = None
    step: str | None = None

    def __bool__(self) -> bool:
        return bool(self.decode or self.step)


class Derived:
    """What the analyses derive from one trace and share (calls joined to their kernels, the
    decode-step model, ...), each computed once. Owned by its Trace: entries die with it, two
    traces never share one, and a Trace made from another (`dataclasses.replace`, e.g. with
    other step ranges) starts with none. Values are immutable polars frames or tuples."""

    def __init__(self) -> None:
        self._values: dict[tuple, object] = {}

    def get(self, key: tuple, compute: Callable[[], object]) -> object:
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class Trace:
    source: Path
    kernels: pl.DataFrame = field(default_factory=lambda: schema.empty("kernels"))
    runtime: pl.DataFrame = field(default_factory=lambda: schema.empty("runtime"))
    memcpys: pl.DataFrame = field(default_factory=lambda: schema.empty("memcpys"))
    memsets: pl.DataFrame = field(default_factory=lambda: schema.empty("memsets"))
    syncs: pl.DataFrame = field(default_factory=lambda: schema.empty("syncs"))
    nvtx: pl.DataFrame = field(default_factory=lambda: schema.empty("nvtx"))
    gpus: pl.DataFrame = field(default_factory=lambda: schema.empty("gpus"))
    threads: pl.DataFrame = field(default_factory=lambda: schema.empty("threads"))
    # Nsight Compute counters of the same variant, when a CSV was given (long form).
    ncu_metrics: pl.DataFrame = field(default_factory=lambda: schema.empty("ncu_metrics"))
    # The target's own metrics JSON (config, weight_bytes_per_step, ...), when found.
    target_metrics: schema.TargetMetrics = field(default_factory=schema.TargetMetrics)
    # The same target's metrics JSON from a run without any profiler (metrics.unprofiled.json,
    # written by `decodeprof profile`): the times shown to users; the trace gives structure.
    unprofiled_metrics: schema.TargetMetrics = field(default_factory=schema.TargetMetrics)
    # Export metadata: nsys_version, schema_version, and anything else the export states.
    meta: dict[str, str] = field(default_factory=dict)
    missing: tuple[MissingData, ...] = ()
    # Where the decode steps are, when the user names their ranges (analyses/steps.py).
    step_ranges: StepRanges = field(default_factory=StepRanges)
    # Shared derived frames (analyses.events.per_trace): not an argument, so never carried over.
    derived: Derived = field(default_factory=Derived, init=False, repr=False, compare=False)

    @classmethod
    def empty(cls, source: Path | str = "<empty>") -> "Trace":
        return cls(source=Path(source))

    def frame(self, name: str) -> pl.DataFrame | schema.TargetMetrics:
        return getattr(self, name)

    def dropped(self) -> list[str]:
        """What the loader dropped as impossible (decodeprof.load.validate), one sentence each."""
        from decodeprof.load.validate import sentences

        return sentences(self.meta)

    def timings(self) -> tuple[Mapping[str, schema.Timing], str]:
        """The target's timings to show (median, min, max per quantity) and where they come
        from: the unprofiled run when there is one, else the profiled run (whose times the
        profiler inflates: `profiler_overhead_pct` in the report)."""
        for doc, source in ((self.unprofiled_metrics, "unprofiled run"), (self.target_metrics, "profiled run")):
            if doc.timings:
                return doc.timings, source
        return {}, "none"
