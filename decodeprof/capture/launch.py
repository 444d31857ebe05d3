"""The one place decodeprof starts a decode target: its command line (`python -m decodeprof_targets
LABEL`, or torchrun for several GPUs and multi-process targets) and the environment it needs.
`bench`, `run` and `profile` all build their commands here.

The targets package shares no code with decodeprof; its errors (decodeprof_targets.errors.TargetError)
become decodeprof's TargetError at this boundary, so the command line prints them as one
`error:` line with its hint. No torch is imported here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from decodeprof.errors import TargetError


@contextmanager
def target_errors() -> Iterator[None]:
    """Re-raise the targets package's own errors as decodeprof's TargetError."""
    from decodeprof_targets.errors import TargetError as TargetsError

    try:
        yield
    except TargetsError as exc:
        raise TargetError(exc.message, exc.hint) from exc


def target_labels() -> dict[str, str]:
    """label -> one-line summary, from the targets registry."""
    from decodeprof_targets import registry

    return {label: info.summary for label, info in registry.TARGETS.items()}


def single_gpu_labels() -> list[str]:
    """Labels of the targets that run as one process on one device."""
    from decodeprof_targets import registry

    return registry.single_gpu_labels()


def target_device(target_args: Sequence[str]) -> str:
    """The --device the target will use ("cuda" unless its flags say otherwise)."""
    from decodeprof_targets.launch import target_device as device_of

    return device_of(list(target_args))


def target_prefix(label: str, gpus: int, device: str) -> tuple[list[str], dict[str, str] | None]:
    """The program prefix that starts target `label` (its flags follow it), and the
    environment overrides it needs on top of ours (None: none). Several GPUs, or a target
    registered for torchrun, go through torchrun with NCCL multicast off."""
    with target_errors():
        from decodeprof_targets import registry

        if gpus > 1 or registry.get(label).launcher == "torchrun":
            from decodeprof_targets.launch import torchrun_command

            return torchrun_command([label], gpus, device)
    return [sys.executable, "-m", "decodeprof_targets", label], None


def target_command(label: str, target_args: Sequence[str], json_out: Path | None = None,
                   gpus: int = 1) -> tuple[list[str], dict[str, str] | None]:
    """The whole command line of one target run (its metrics JSON to `json_out` when given),
    and the full environment it needs (None: ours as it is)."""
    args = [str(a) for a in target_args] + (["--json-out", str(json_out)] if json_out else [])
    prefix, extra = target_prefix(label, gpus, target_device(args))
    return [*prefix, *args], ({**os.environ, **extra} if extra else None)
