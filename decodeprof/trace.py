"""The Trace: typed polars frames of one nsys export, plus what it lacks.

Built by the loaders (`decodeprof.load`), read by the analyses. Frames follow
`decodeprof.schema.FRAMES`; a table absent from the export is an empty frame and a
`MissingData` entry that says what is missing and how to capture it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    def sentence(self) -> str:
        where = "column" if "." in self.table else "table"  # "ENUM_CUDA_MEM_KIND.name": a column
        if self.frame not in schema.FRAMES:
            return f"{self.frame} unreadable ({where} {self.table} absent): {self.fix}"
        return f"no {self.frame} data ({where} {self.table} absent): {self.fix}"


@dataclass(frozen=True)
class StepRanges:
    """NVTX ranges the user names as a trace's decode loop (`--decode-range`) and decode steps
    (`--step-range`): a name or regular expression, optionally prefixed `domain:`. None: not named."""

    decode: str | None = None
    step: str | None = None

    def __bool__(self) -> bool:
        return bool(self.decode or self.step)


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
    target_metrics: dict = field(default_factory=dict)
    # The same target's metrics JSON from a run without any profiler (metrics.unprofiled.json,
    # written by `decodeprof profile`): the times shown to users; the trace gives structure.
    unprofiled_metrics: dict = field(default_factory=dict)
    # Export metadata: nsys_version, schema_version, and anything else the export states.
    meta: dict[str, str] = field(default_factory=dict)
    missing: tuple[MissingData, ...] = ()
    # Where the decode steps are, when the user names their ranges (analyses/steps.py).
    step_ranges: StepRanges = field(default_factory=StepRanges)

    @classmethod
    def empty(cls, source: Path | str = "<empty>") -> "Trace":
        return cls(source=Path(source))

    def frame(self, name: str) -> pl.DataFrame:
        return getattr(self, name)

    def dropped(self) -> list[str]:
        """What the loader dropped as impossible (decodeprof.load.validate), one sentence each."""
        from decodeprof.load.validate import sentences

        return sentences(self.meta)

    def timings(self) -> tuple[dict, str]:
        """The target's timings to show (its metrics JSON's "metrics": medians, min, max per
        quantity) and where they come from: the unprofiled run when there is one, else the
        profiled run (whose times the profiler inflates: `profiler_overhead_pct` in the report)."""
        for doc, source in ((self.unprofiled_metrics, "unprofiled run"), (self.target_metrics, "profiled run")):
            m = doc.get("metrics") if isinstance(doc, dict) else None
            if isinstance(m, dict) and m:
                return m, source
        return {}, "none"
