"""The checks behind `decodeprof doctor`: can this machine capture, and if not, what fixes it.

NVTX and CUDA tracing are checked for real, by capturing a tiny program and reading its
export, because a found nsys can still fail to record (missing importer libraries, an nvtx
package too new for nsys 2022.4, no CUDA driver).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from decodeprof.capture.export import export_sqlite
from decodeprof.capture.gpu import gpu_info
from decodeprof.capture.ncu import PERMISSION_FIX
from decodeprof.errors import DecodeprofError
from decodeprof.tools import find_ncu, find_nsys, tool_version

NVIDIA_PARAMS = Path("/proc/driver/nvidia/params")
NO_GPU_FIX = (
    "run on a machine with an NVIDIA GPU and its driver (nvidia-smi must work); without one you can "
    "still analyse traces and capture CPU-only runs (`decodeprof profile TARGET -- --device cpu`)"
)
NVTX_PROGRAM = """import nvtx, time
with nvtx.annotate("doctor", domain="decodeprof"):
    time.sleep(0.05)
"""
CUDA_PROGRAM = """import torch
x = torch.ones(1024, device="cuda")
(x * 2).sum().item()
torch.cuda.synchronize()
"""


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn", "fail" or "skip" (a prerequisite failed; that one carries the fix)
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    checks: list[Check] = []
    nsys = _tool(checks, "nsys", find_nsys)
    _tool(checks, "ncu", find_ncu)
    gpus = gpu_info()
    if gpus:
        names = "; ".join(f"{g['index']}: {g['name']} (driver {g['driver_version']})" for g in gpus)
        checks.append(Check("GPU and driver", "ok", names))
    else:
        checks.append(Check("GPU and driver", "fail", "no NVIDIA GPU or driver (nvidia-smi missing or failing)", NO_GPU_FIX))
    checks.append(_nvtx_tracing(nsys))
    checks.append(_cuda_tracing(nsys, bool(gpus)))
    checks.append(_counter_permission())
    checks.append(_nvcc())
    return checks


def _nvcc() -> Check:
    """nvcc builds the persistent_smem target's CUDA C++ kernel; nothing else needs it (a warning)."""
    from decodeprof_targets.errors import TargetError  # the targets package's own error type
    from decodeprof_targets.kernels.cuda_build import find_nvcc

    name = "nvcc (persistent_smem target)"
    try:
        path = find_nvcc()
    except TargetError as exc:
        return Check(name, "warn", exc.message + "; every other target runs without it", exc.hint or "")
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()
    release = next((ln.strip() for ln in out if "release" in ln), "unknown version")  # "Cuda compilation tools, release 13.0, ..."
    return Check(name, "ok", f"{release} ({path})")


def _tool(checks: list[Check], name: str, find) -> Path | None:
    try:
        path = find()
        checks.append(Check(name, "ok", f"{tool_version(path)} ({path})"))
        return path
    except DecodeprofError as exc:
        checks.append(Check(name, "fail", exc.message, exc.hint or ""))
        return None


def _capture(nsys: Path, trace: str, program: str, tmp: Path) -> tuple[Path | None, str]:
    """Capture `python -c program` and export it; (sqlite or None, last lines of output)."""
    argv = [str(nsys), "profile", f"--trace={trace}", "--sample=none", "--cpuctxsw=none",
            "-o", str(tmp / "check"), sys.executable, "-c", program]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return None, "nsys profile did not finish within 300 s"
    out = (proc.stdout + proc.stderr).strip().splitlines()
    tail = out[-1] if out else f"exit status {proc.returncode}"
    rep = tmp / "check.nsys-rep"
    if proc.returncode != 0 or not rep.exists():
        return None, tail
    try:
        return export_sqlite(rep, tmp / "export.log"), tail
    except DecodeprofError as exc:
        return None, exc.message


def _nvtx_tracing(nsys: Path | None) -> Check:
    name = "NVTX tracing (nsys)"
    if nsys is None:
        return Check(name, "skip", "needs nsys")
    try:
        nvtx_version = metadata.version("nvtx")
    except metadata.PackageNotFoundError:
        return Check(name, "fail", f"the nvtx package is not installed for {sys.executable}",
                     "pip install nvtx (0.2.11 if you capture with Debian's nsys 2022.4)")
    with tempfile.TemporaryDirectory(prefix="decodeprof-doctor-") as tmp:
        sqlite, tail = _capture(nsys, "nvtx,osrt", NVTX_PROGRAM, Path(tmp))
        if sqlite is None:
            return Check(name, "fail", f"a tiny NVTX capture failed: {tail}", "run `nsys status -e`; reinstall nsys")
        rows = _count(sqlite, "SELECT count(*) FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id "
                              "WHERE coalesce(e.text, s.value) = 'doctor'")
    if rows:
        return Check(name, "ok", f"recorded a range from nvtx {nvtx_version}")
    return Check(name, "fail", f"nsys recorded no range from nvtx {nvtx_version}",
                 "nsys 2022.4 records the nvtx package only up to 0.2.11: pip install nvtx==0.2.11, or use a newer nsys")


def _cuda_tracing(nsys: Path | None, have_gpu: bool) -> Check:
    name = "CUDA tracing (nsys)"
    if nsys is None or not have_gpu:
        return Check(name, "skip", "needs nsys and a GPU")
    with tempfile.TemporaryDirectory(prefix="decodeprof-doctor-") as tmp:
        sqlite, tail = _capture(nsys, "cuda,nvtx", CUDA_PROGRAM, Path(tmp))
        if sqlite is None:
            return Check(name, "fail", f"a tiny CUDA capture (torch) failed: {tail}",
                         "check that torch sees the GPU (python -c 'import torch; print(torch.cuda.is_available())')")
        kernels = _count(sqlite, "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    if kernels:
        return Check(name, "ok", f"recorded {kernels} kernel(s) of a tiny torch program")
    return Check(name, "fail", "nsys recorded no CUDA kernel", "check the CUDA driver and that this nsys supports it")


def _counter_permission() -> Check:
    name = "GPU counters (ncu)"
    if not NVIDIA_PARAMS.exists():
        return Check(name, "fail", f"no NVIDIA kernel driver loaded ({NVIDIA_PARAMS} absent)",
                     "install and load the NVIDIA driver (see 'GPU and driver')")
    params = dict(line.split(":", 1) for line in NVIDIA_PARAMS.read_text().splitlines() if ":" in line)
    admin_only = params.get("RmProfilingAdminOnly", "").strip()
    if admin_only == "0":
        return Check(name, "ok", "allowed for all users (RmProfilingAdminOnly: 0)")
    if os.geteuid() == 0:
        return Check(name, "ok", "restricted to admins (RmProfilingAdminOnly: 1), running as root")
    return Check(name, "fail", "restricted to admins (RmProfilingAdminOnly: 1) and not root: ncu fails with ERR_NVGPUCTRPERM",
                 PERMISSION_FIX)


def _count(sqlite: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True) as con:
            return int(con.execute(sql).fetchone()[0])
    except sqlite3.Error:  # the table is absent: nothing of that kind was recorded
        return 0
