"""Run decode targets, each in its own process, and collect their metrics JSON.

One process per target keeps every variant's CUDA context, allocator and compile caches
apart, so a side-by-side table compares like with like. No torch is imported here.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from decodeprof.capture.launch import target_command
from decodeprof.errors import TargetError


DEFAULT_TIMEOUT_S = 600.0  # one target's build, warm-up and measured iterations at the default shape take < 60 s


def run_target(label: str, target_args: list[str], gpus: int = 1, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> dict:
    """Run one target to completion; return its metrics JSON or raise TargetError with its
    stderr, or when it runs past `timeout_s` (None: no limit)."""
    with tempfile.TemporaryDirectory(prefix="decodeprof-") as tmp:
        out = Path(tmp) / "metrics.json"
        command, env = target_command(label, target_args, out, gpus)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"still running after {timeout_s:g} s: stopped",
                              "raise --timeout, or give the target fewer --steps / --iters") from exc
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise TargetError(f"exit {proc.returncode}:\n{tail}")
        try:
            return json.loads(out.read_text())
        except ValueError as exc:
            raise TargetError(f"its metrics JSON is not valid JSON: {exc}") from exc
