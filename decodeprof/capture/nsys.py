"""The `nsys profile` command line, degraded to what the installed nsys supports.

Flags checked in the nsys 2022.4 (`nsys profile --help`) and 2025.3 CLI docs: --trace,
--sample, --cpuctxsw, --cuda-graph-trace, --capture-range, --capture-range-end and
--force-overwrite exist in both. Rather than trusting version numbers, each optional flag
is kept only if the installed nsys lists it in its help; dropped flags go into run.json.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=8)
def profile_help(nsys: str) -> str:
    proc = subprocess.run([nsys, "profile", "--help"], capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout + proc.stderr


def profile_flags(cuda: bool) -> list[str]:
    """What we ask for. On CUDA: kernels, NVTX and OS runtime, graph nodes (graph variants
    show their kernels), only between cudaProfilerStart/Stop (the targets bracket the measured
    iterations with them, so warm-up and compilation stay out). Without CUDA the capture range
    could never open, so the whole run is recorded. --cpuctxsw=none is not only about size:
    with context-switch tracing on, Debian's nsys 2022.4 hung in a VM once the target exited."""
    flags = [
        f"--trace={'cuda,nvtx,osrt' if cuda else 'nvtx,osrt'}",
        "--sample=none",
        "--cpuctxsw=none",
        "--force-overwrite=false",
    ]
    if cuda:
        flags += ["--cuda-graph-trace=node", "--capture-range=cudaProfilerApi", "--capture-range-end=stop"]
    return flags


def profile_argv(nsys: Path, out_base: Path, *, cuda: bool) -> tuple[list[str], list[str]]:
    """(argv prefix up to the program, flags dropped because this nsys lacks them)."""
    help_text = profile_help(str(nsys))
    kept, dropped = [], []
    for flag in profile_flags(cuda):
        name = flag.split("=", 1)[0]
        (kept if name == "--trace" or f"{name}=" in help_text else dropped).append(flag)
    return [str(nsys), "profile", *kept, "-o", str(out_base)], dropped
