"""Run decode targets, each in its own process, and collect their metrics JSON.

One process per target keeps every variant's CUDA context, allocator and compile caches
apart, so a side-by-side table compares like with like. No torch is imported here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from decodeprof.errors import TargetError


def target_labels() -> dict[str, str]:
    """label -> one-line summary, from the targets registry (imports no torch)."""
    from targets import registry

    return {label: info.summary for label, info in registry.TARGETS.items()}


def single_gpu_labels() -> list[str]:
    """Labels of the targets that run as one process on one device (imports no torch)."""
    from targets import registry

    return registry.single_gpu_labels()


def target_command(label: str, target_args: list[str], json_out: Path | None = None,
                   gpus: int = 1) -> tuple[list[str], dict[str, str] | None]:
    """The command line that runs one target, and the environment it needs (None: ours).
    Multi-process targets go through torchrun with NCCL multicast off."""
    from targets import registry

    info = registry.get(label)
    args = [label, *target_args] + (["--json-out", str(json_out)] if json_out else [])
    if info.launcher == "torchrun" or gpus > 1:
        import os

        from targets.launch import target_device, torchrun_command

        command, extra = torchrun_command(args, gpus, target_device(target_args))
        return command, {**os.environ, **extra}
    return [sys.executable, "-m", "targets", *args], None


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
