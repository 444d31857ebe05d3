"""`decodeprof doctor` on this machine, for real: every check runs against what is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from decodeprof import tools
from decodeprof.capture import checks
from decodeprof.errors import ToolNotFoundError

no_gpu = pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")


def _doctor(env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "COLUMNS": "400", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "decodeprof", "doctor"], capture_output=True, text=True,
                          timeout=600, env=env)


@no_gpu
def test_doctor_without_gpu_fails_and_names_each_fix():
    proc = _doctor({"NCU": "/nonexistent/ncu"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "$NCU points to /nonexistent/ncu" in out and "install Nsight Compute" in out
    assert "no NVIDIA GPU or driver (nvidia-smi missing or failing)" in out
    assert "run on a machine with an NVIDIA GPU and its driver" in out
    assert "no NVIDIA kernel driver loaded (/proc/driver/nvidia/params absent)" in out
    assert "problem(s):" in out and "Traceback" not in proc.stderr


@no_gpu
def test_doctor_with_a_missing_nsys_names_the_install_script():
    proc = _doctor({"NSYS": "/nonexistent"})
    assert proc.returncode == 1
    assert "$NSYS points to /nonexistent" in proc.stdout
    assert "scripts/install_nsys.sh" in proc.stdout
    by_name = {c.name: c for c in _checks_with_env({"NSYS": "/nonexistent"})}
    assert by_name["nsys"].status == "fail"
    assert by_name["NVTX tracing (nsys)"].status == "skip"  # the nsys row carries the fix
    assert by_name["CUDA tracing (nsys)"].status == "skip"


@pytest.mark.nsys
def test_doctor_records_a_real_nvtx_range_with_the_installed_nsys():
    try:
        tools.tool_version(tools.find_nsys())
    except ToolNotFoundError as exc:
        pytest.skip(f"nsys unavailable: {exc.message}")
    by_name = {c.name: c for c in checks.run_checks()}
    assert by_name["nsys"].status == "ok"
    assert by_name["NVTX tracing (nsys)"].status == "ok", by_name["NVTX tracing (nsys)"]


def _checks_with_env(env: dict[str, str]) -> list[checks.Check]:
    mp = pytest.MonkeyPatch()
    try:
        for key, value in env.items():
            mp.setenv(key, value)
        return checks.run_checks()
    finally:
        mp.undo()


def test_nvcc_is_a_warning_only_when_missing(tmp_path):
    """Only the persistent_smem target needs nvcc: missing, doctor warns (and still passes on it)."""
    by_name = {c.name: c for c in _checks_with_env({"NVCC": "", "PATH": str(tmp_path), "CUDA_HOME": str(tmp_path)})}
    nvcc = by_name["nvcc (persistent_smem target)"]
    assert nvcc.status == "warn" and "nvcc" in nvcc.detail and "NVCC or CUDA_HOME" in nvcc.fix
    found = {c.name: c for c in checks.run_checks()}["nvcc (persistent_smem target)"]
    if shutil.which("nvcc"):
        assert found.status == "ok" and "Cuda compilation tools" in found.detail
