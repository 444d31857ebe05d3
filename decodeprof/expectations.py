"""Expected performance per GPU kind: decodeprof_targets/expectations/<kind>.json.

Each target records the median tokens/s, TTFT and TPOT of a real run, with provenance
(date, card, torch, command) and a relative tolerance t (a run fails when it is more than
(1 + t) times worse), with the reason for a tolerance wider than the default in "why".
`check` names every target and metric that regressed beyond tolerance; `updated` returns
the file rewritten from new results (tolerances and their reasons kept).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from decodeprof.errors import DecodeprofError

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "decodeprof_targets" / "expectations"

# metric -> True when higher is better
CHECKED_METRICS = {"tokens_per_s": True, "ttft_ms": False, "tpot_ms": False}
DEFAULT_TOLERANCE = 0.15


def gpu_kind(device_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; 'NVIDIA GH200 480GB' -> 'gh200'; 'cpu' -> 'cpu'.
    A kind matches a whole word of the name (GH200 is not an H200, an L40 not an L4)."""
    name = device_name.lower()
    for kind in ("h200", "h100", "gh200", "b200", "a100", "l40s", "l4"):
        if re.search(rf"(?<![a-z0-9]){kind}(?![a-z0-9])", name):
            return kind
    return name.replace("nvidia", "").strip().split()[0] if name.strip() else "unknown"


def path_for(kind: str, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{kind}.json"


def load(path: Path) -> dict:
    """The expectations file, checked: {"targets": {label: {metric: {"median": > 0,
    "tolerance": >= 0, "why": text?}, "provenance": {...}}}}; one error names the field."""
    if not path.exists():
        raise DecodeprofError(f"no expectations file {path}", "record one with `decodeprof bench --update` on that GPU")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeprofError(f"expectations file {path} is not valid JSON: {exc}",
                              "record it again with `decodeprof bench --update`") from exc
    validate(doc, path)
    return doc


def validate(doc, path: Path) -> None:
    """Raise DecodeprofError naming the file and the first field that is not as `load` says."""
    def bad(field: str, what: str):
        raise DecodeprofError(f"expectations file {path}: {field} {what}",
                              "fix that field, or record the file again with `decodeprof bench --update`")

    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), dict):
        bad("targets", "must be an object of target labels")
    for label, entry in doc["targets"].items():
        if not isinstance(entry, dict):
            bad(f"targets.{label}", "must be an object")
        for metric in CHECKED_METRICS:
            if metric not in entry:
                continue
            m = entry[metric]
            if not isinstance(m, dict):
                bad(f"targets.{label}.{metric}", "must be an object with median and tolerance")
            median, tol = m.get("median"), m.get("tolerance", DEFAULT_TOLERANCE)
            if isinstance(median, bool) or not isinstance(median, (int, float)) or not math.isfinite(median) or median <= 0:
                bad(f"targets.{label}.{metric}.median", f"must be a positive number, not {median!r}")
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
                bad(f"targets.{label}.{metric}.tolerance", f"must be a number >= 0, not {tol!r}")
            if "why" in m and not isinstance(m["why"], str):
                bad(f"targets.{label}.{metric}.why", "must be text")


@dataclass(frozen=True)
class Regression:
    target: str
    metric: str
    expected: float
    measured: float
    tolerance: float

    def sentence(self) -> str:
        change = (self.measured - self.expected) / self.expected * 100
        return (f"{self.target}: {self.metric} {self.measured:.4g} vs expected {self.expected:.4g} "
                f"({change:+.1f}%, tolerance {self.tolerance:.0%})")


def check(expected: dict, results: dict[str, dict]) -> list[Regression]:
    """Regressions of `results` (label -> target metrics JSON) against an expectations dict.
    Targets absent from the file are not checked (there is nothing to regress from)."""
    found = []
    for label, result in results.items():
        entry = expected.get("targets", {}).get(label)
        if entry is None:
            continue
        for metric, higher_is_better in CHECKED_METRICS.items():
            if metric not in entry or metric not in result["metrics"]:
                continue
            want = entry[metric]["median"]
            tol = entry[metric].get("tolerance", DEFAULT_TOLERANCE)
            got = result["metrics"][metric]["median"]
            # tolerance t: at most (1 + t) times worse, the same bound for rates and times
            worse = got * (1 + tol) < want if higher_is_better else got > want * (1 + tol)
            if worse:
                found.append(Regression(label, metric, want, got, tol))
    return found


def updated(expected: dict | None, results: dict[str, dict], command: str, today: dt.date | None = None) -> dict:
    """The expectations dict with each result's medians recorded (other targets kept)."""
    out = json.loads(json.dumps(expected or {"targets": {}}))
    out.setdefault("targets", {})
    date = (today or dt.date.today()).isoformat()
    for label, result in results.items():
        old = out["targets"].get(label, {})
        entry = {
            metric: {"median": result["metrics"][metric]["median"],
                     "tolerance": old.get(metric, {}).get("tolerance", DEFAULT_TOLERANCE),
                     **({"why": old[metric]["why"]} if "why" in old.get(metric, {}) else {})}
            for metric in CHECKED_METRICS if metric in result["metrics"]
        }
        entry["provenance"] = {
            "date": date, "card": result["device"]["name"], "torch": result["device"]["torch"],
            "cuda": result["device"]["cuda"], "command": command, "config": result["config"],
        }
        out["targets"][label] = entry
    return out
