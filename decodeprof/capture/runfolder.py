"""The run folder: <out>/<target>-<YYYYmmdd-HHMMSS>[-N]/ and its run.json record."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from pathlib import Path

from decodeprof.errors import CaptureError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def new_run_dir(out_dir: Path, label: str, now: datetime | None = None) -> Path:
    """Create and return a fresh run folder (with logs/); never reuses an existing one."""
    if not _LABEL.match(label):
        raise CaptureError(
            f"target label {label!r} is not a plain name", "pass a label from `python -m decodeprof_targets --list`"
        )
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = out_dir / (f"{label}-{stamp}" if n == 1 else f"{label}-{stamp}-{n}")
        try:
            path.mkdir()  # atomic: two runs started in the same second never share a folder
        except FileExistsError:
            continue
        (path / "logs").mkdir()
        return path
    raise AssertionError("unreachable")


class RunRecord:
    """run.json: what was run, with which tools, when, and how it ended. Saved after every
    step so a failed run still says how far it got."""

    def __init__(self, run_dir: Path, **fields: object) -> None:
        self.path = run_dir / "run.json"
        self.data: dict = {"status": "running", "started_at": now_iso(), **fields, "steps": []}
        self.save()

    def set(self, **fields: object) -> None:
        self.data.update(fields)
        self.save()

    def add_step(self, **fields: object) -> None:
        self.data["steps"].append(fields)
        self.save()

    def finish(self, status: str, **fields: object) -> None:
        self.set(status=status, finished_at=now_iso(), **fields)

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
