"""One variant of the report: its trace, its analysis frames, and the facts read from them
(decodeprof.findings.facts: typed, units in the names; a fact the trace cannot give is None,
and `missing` says why). Findings, the summary table and the charts read these facts and
frames, never a trace's tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from decodeprof.analyses.breakdown import Breakdown
from decodeprof.findings.facts import Facts, missing_sentences
from decodeprof.findings.facts import facts as read_facts
from decodeprof.trace import Trace
from decodeprof_targets import registry

# Report order for the variants this project ships (the registry's order); any other name follows.
KNOWN_ORDER = tuple(registry.TARGETS)


@dataclass
class Variant:
    name: str
    source: Path
    trace: Trace
    frames: dict[str, pl.DataFrame]
    facts: Facts = field(default_factory=Facts)
    missing: list[str] = field(default_factory=list)
    breakdown: Breakdown | None = None  # its decode time per step in parts (the waterfalls' input)
    step_ops: pl.DataFrame | None = None  # the median decode step's GPU ops (analyses.step_timeline)
    step_work: pl.DataFrame | None = None  # GPU work clipped to the median step's window


# `decodeprof analyze` reads a trace's facts from here (decodeprof.findings.facts owns them).
facts = read_facts
__all__ = ["KNOWN_ORDER", "Variant", "facts", "missing_sentences", "ordered", "variant_name"]

_RUN_FOLDER = re.compile(r"^(?P<label>[A-Za-z0-9][A-Za-z0-9_.-]*?)-\d{8}-\d{6}(-\d+)?$")


def variant_name(path: Path) -> str:
    """A run folder's name, less the time stamp `decodeprof profile` appends (runs/graph-20261125-101500
    -> graph); a run folder's own trace file (trace.sqlite, trace.nsys-rep) is named by its folder,
    any other trace file by its file name (hf_eager.sqlite -> hf_eager)."""
    if path.is_file() and path.stem.split(".")[0] != "trace":
        return path.name.split(".")[0] or path.stem
    name = (path.parent.name if path.is_file() else path.name) or path.stem
    stamped = _RUN_FOLDER.match(name)
    return stamped.group("label") if stamped else name


def ordered(names: list[str]) -> list[str]:
    """Our targets in their ladder order, then any other variant in the order given."""
    known = [n for n in KNOWN_ORDER if n in names]
    return known + [n for n in dict.fromkeys(names) if n not in KNOWN_ORDER]
