"""A finding: one sentence saying why a run wins, loses or what limits it, with the numbers
that back it (`evidence`), the threshold it cleared (named in `threshold`) and the chart that
shows it. Every finding decodeprof states is one of these: a run's own (decodeprof.findings.
single), against a reference (compared), multi-GPU (multigpu) and the diff's verdict (diff).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from decodeprof.findings.facts import FIELDS

KINDS = ("warning", "win", "loss", "no_win", "limit", "info")  # the order findings are listed in


@dataclass(frozen=True)
class Finding:
    variant: str
    kind: str  # "win" | "no_win" | "loss" | "info" | "warning" | "limit" (what limits one trace)
    title: str
    sentence: str
    threshold: str
    chart: str  # element id of the chart that shows the evidence
    evidence: dict = field(default_factory=dict)  # raw numbers (ns, bytes, bytes/s, %, counts)
    fact: str | None = None  # the fact (a Facts field) it judges, when one number carries it

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"finding {self.title!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.fact is not None and self.fact not in FIELDS:
            raise ValueError(f"finding {self.title!r}: {self.fact!r} is not a fact (decodeprof.findings.facts.Facts)")


def ordered(fs: list[Finding]) -> list[Finding]:
    """Warnings first, then wins, losses, no wins, limits, notes (stable within a kind)."""
    return sorted(fs, key=lambda f: KINDS.index(f.kind))


def have(*values) -> bool:
    return all(v is not None for v in values)


def reduction(base: float, new: float) -> float:
    """(base - new) / base: the share by which a cost went down (0 when base is 0)."""
    return (base - new) / base if base else 0.0
