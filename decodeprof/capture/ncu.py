"""The Nsight Compute run: decode kernels of one measured iteration, counters to ncu.csv.

NVTX filter syntax (Nsight Compute CLI docs, "NVTX Filtering"): `Domain@A/*/B` selects
kernels inside push/pop range B nested (zero or more ranges between) in A of that domain;
a push/pop configuration needs a '/', a start/end one has none. The targets push
measured > iteration > decode > step in domain "decodeprof", so with --iters 1 this selects
the decode kernels (steps included) of exactly one iteration and never the warm-up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from decodeprof.errors import CaptureError

NVTX_INCLUDE = "decodeprof@measured/*/decode"
CLOCK_CONTROL = "none"  # counters at the clocks the GPU really runs (as nsys sees them)
SECTIONS = ("SpeedOfLight", "MemoryWorkloadAnalysis")
METRICS = (
    "gpu__time_duration.sum",
    "dram__bytes_read.sum",
    "dram__bytes_write.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
)
FORCED_TARGET_ARGS = ("--warmup", "1", "--iters", "1")
# Decode steps the ncu run profiles: every kernel is replayed once per counter pass, so the
# run's time grows with the kernels in it (graph on the H200: 61 s at 8 steps, > 150 s at 64).
DEFAULT_STEPS = 8
MAX_STEPS = 4096
PERMISSION_FIX = (
    "run as root (sudo), or allow all users GPU counters: add `options nvidia "
    "NVreg_RestrictProfilingToAdminUsers=0` to /etc/modprobe.d/nvidia-profiling.conf and reboot "
    "(https://developer.nvidia.com/ERR_NVGPUCTRPERM)"
)


def ncu_argv(ncu: Path, csv_path: Path) -> list[str]:
    """argv prefix up to the program. ncu's own output (==PROF== lines and the CSV) goes to
    csv_path via --log-file; the target's output stays on stdout (the step log)."""
    argv = [str(ncu), "--target-processes", "all", "--clock-control", CLOCK_CONTROL, "--nvtx",
            "--nvtx-include", NVTX_INCLUDE]
    for section in SECTIONS:
        argv += ["--section", section]
    return argv + ["--metrics", ",".join(METRICS), "--csv", "--page", "raw", "--log-file", str(csv_path)]


def one_iteration(target_args: Sequence[str], steps: int | None = None) -> list[str]:
    """target_args without --warmup/--iters (and --steps when `steps` is given), then
    --warmup 1 --iters 1 [--steps steps]."""
    forced = ("--warmup", "--iters") + (("--steps",) if steps is not None else ())
    out: list[str] = []
    skip = False
    for arg in target_args:
        if skip:
            skip = False
            continue
        if arg in forced:
            skip = True
            continue
        if arg.startswith(tuple(f"{f}=" for f in forced)):
            continue
        out.append(arg)
    return out + list(FORCED_TARGET_ARGS) + (["--steps", str(steps)] if steps is not None else [])


def check_permission(csv_path: Path, log_path: Path) -> None:
    """ncu reports missing counter permission in text (and a non-zero exit): name the fix."""
    text = "".join(p.read_text(errors="replace") for p in (csv_path, log_path) if p.exists())
    if "ERR_NVGPUCTRPERM" in text:
        raise CaptureError("step 'ncu' failed: no permission to read GPU performance counters (ERR_NVGPUCTRPERM)",
                           PERMISSION_FIX)


def check_profiled(csv_path: Path) -> None:
    """ncu exits 0 when the filter matched no kernel; an empty CSV must not pass silently."""
    lines = csv_path.read_text(errors="replace").splitlines() if csv_path.exists() else []
    data_rows = [ln for ln in lines if re.match(r'^"\d+",', ln)]  # not the header or units row
    if not data_rows:
        raise CaptureError(
            f"step 'ncu' failed: no kernel was profiled (NVTX filter {NVTX_INCLUDE!r} matched nothing?)",
            "the target must push NVTX ranges measured > ... > decode in domain 'decodeprof' "
            "and run on --device cuda",
        )
