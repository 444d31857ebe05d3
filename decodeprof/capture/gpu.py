"""GPU name and driver from nvidia-smi, when there is one."""

from __future__ import annotations

import shutil
import subprocess


def gpu_info() -> list[dict[str, str]] | None:
    """One dict (index, name, driver_version) per GPU; None without a working nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        proc = subprocess.run(
            [smi, "--query-gpu=index,name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"index": parts[0], "name": parts[1], "driver_version": parts[2]})
    return gpus or None
