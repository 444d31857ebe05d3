"""Build a CUDA C++ source of decodeprof_targets/kernels/cuda/ into a shared library with nvcc and load it
with ctypes: no torch headers, so a build takes seconds. The library is cached under
$DECODEPROF_CUDA_CACHE (default ~/.cache/decodeprof/cuda), keyed by the source, the GPU
architecture, the flags and nvcc's version; it is written to a temporary name and renamed, so
an interrupted build never leaves a broken library behind."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from decodeprof_targets.errors import TargetError

SOURCES = Path(__file__).parent / "cuda"
FLAGS = ("-O3", "-std=c++17", "-lineinfo", "-shared", "-Xcompiler", "-fPIC", "-Xptxas", "-v")


@dataclass(frozen=True)
class Built:
    library: ctypes.CDLL
    path: Path
    ptxas: str  # ptxas's resource report (registers, spills, shared memory)


def find_nvcc() -> str:
    """$NVCC, nvcc on PATH, or $CUDA_HOME/bin/nvcc, else a clear error."""
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"),
                      str(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise TargetError("nvcc (the CUDA toolkit's compiler) was not found: this kernel is CUDA C++",
                      "install the CUDA toolkit, or point NVCC or CUDA_HOME at it")


def cache_dir() -> Path:
    return Path(os.environ.get("DECODEPROF_CUDA_CACHE", Path.home() / ".cache" / "decodeprof" / "cuda"))


def compile_library(source: str, arch: str, nvcc: str | None = None, defines: tuple[str, ...] = ()) -> tuple[Path, str]:
    """decodeprof_targets/kernels/cuda/<source> -> (path of the cached .so, ptxas report) for `arch` (e.g. "90a");
    `defines` ("NAME=VALUE") tune compile-time constants."""
    nvcc = nvcc or find_nvcc()
    src = SOURCES / source
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    gencode = f"-gencode=arch=compute_{arch},code=sm_{arch}"
    flags = [*FLAGS, *(f"-D{d}" for d in defines)]
    key = hashlib.sha256("\0".join([src.read_text(), arch, " ".join(flags), version]).encode()).hexdigest()[:16]
    out = cache_dir() / f"{src.stem}-sm{arch}-{key}.so"
    report = out.with_suffix(".ptxas.txt")
    if out.is_file() and report.is_file():
        return out, report.read_text()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    proc = subprocess.run([nvcc, *flags, gencode, "-o", str(tmp), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise TargetError(f"nvcc failed to build {src.name} for sm_{arch}:\n{proc.stderr[-3000:]}",
                          "check the CUDA toolkit version (CUDA 12 or newer) and the GPU architecture")
    report.write_text(proc.stderr)
    os.replace(tmp, out)
    return out, proc.stderr


def load(source: str, arch: str, defines: tuple[str, ...] = ()) -> Built:
    path, ptxas = compile_library(source, arch, defines=defines)
    return Built(ctypes.CDLL(str(path)), path, ptxas)


def device_arch(device) -> str:
    """The nvcc architecture of a CUDA device: "90a" on Hopper (its arch-specific features), else "86" etc."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}" + ("a" if major == 9 else "")
