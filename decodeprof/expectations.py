"""Expected performance per GPU kind: targets/expectations/<kind>.json.

Each target records the median tokens/s, TTFT and TPOT of a real run, with provenance
(date, card, torch, command) and a relative tolerance. `check` names every target and metric
that regressed beyond tolerance; `updated` returns the file rewritten from new results.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from decodeprof.errors import DecodeprofError

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "targets" / "expectations"

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
    if not path.exists():
        raise DecodeprofError(f"no expectations file {path}", "record one with `decodeprof bench --update` on that GPU")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DecodeprofError(f"expectations file {path} is not valid JSON: {exc}") from exc


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
            worse = got < want * (1 - tol) if higher_is_better else got > want * (1 + tol)
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
                     "tolerance": old.get(metric, {}).get("tolerance", DEFAULT_TOLERANCE)}
            for metric in CHECKED_METRICS if metric in result["metrics"]
        }
        entry["provenance"] = {
            "date": date, "card": result["device"]["name"], "torch": result["device"]["torch"],
            "cuda": result["device"]["cuda"], "command": command, "config": result["config"],
        }
        out["targets"][label] = entry
    return out
