"""Find Nsight Systems (nsys) and Nsight Compute (ncu) and ask their versions.

Standard library only: the loaders, the capture driver and `doctor` all use this, and
none of them should pay for torch or polars to find a binary.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from decodeprof.errors import ToolNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where scripts/install_nsys.sh unpacks Debian's nsight-systems package.
LOCAL_NSYS_DIR = REPO_ROOT / ".tools" / "nsys"

NSYS_INSTALL_HINT = (
    "install Nsight Systems (https://developer.nvidia.com/nsight-systems) or, on Debian 12, "
    "run `bash scripts/install_nsys.sh`; or set $NSYS to the nsys binary; "
    "or pass an already exported .sqlite instead of the .nsys-rep"
)
NCU_INSTALL_HINT = (
    "install Nsight Compute (it ships with the CUDA toolkit, https://developer.nvidia.com/nsight-compute) "
    "or set $NCU to the ncu binary"
)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _newest_first(pattern: str) -> list[Path]:
    # Version folders sort by name (2025.3.1 > 2022.4.2), so the newest install wins.
    return [Path(p) for p in sorted(glob.glob(pattern), reverse=True)]


def _local_nsys_candidates() -> list[Path]:
    # Debian's package unpacks to usr/lib/nsight-systems/bin/nsys (plus a usr/bin wrapper).
    return [
        LOCAL_NSYS_DIR / "usr" / "lib" / "nsight-systems" / "bin" / "nsys",
        LOCAL_NSYS_DIR / "usr" / "bin" / "nsys",
        *_newest_first(str(LOCAL_NSYS_DIR / "usr" / "lib" / "nsight-systems*" / "bin" / "nsys")),
    ]


def _find(name: str, env_var: str, candidates: list[Path], hint: str) -> Path:
    override = os.environ.get(env_var)
    if override:
        path = Path(override)
        if _executable(path):
            return path
        # A wrong override is a mistake to report, not a reason to silently pick another copy.
        raise ToolNotFoundError(f"${env_var} points to {override}, which is not an executable file", hint)
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    for path in candidates:
        if _executable(path):
            return path
    raise ToolNotFoundError(f"{name} not found ($" + env_var + ", PATH and the usual install folders searched)", hint)


def nsys_candidates() -> list[Path]:
    """Install folders searched for nsys after $NSYS and PATH, in order."""
    return [
        *_local_nsys_candidates(),
        *_newest_first("/opt/nvidia/nsight-systems/*/bin/nsys"),
        Path("/usr/local/cuda/bin/nsys"),
        # Nsight Compute bundles an nsys (the GPU machine's only copy).
        *_newest_first("/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys"),
    ]


def ncu_candidates() -> list[Path]:
    """Install folders searched for ncu after $NCU and PATH, in order."""
    return [Path("/usr/local/cuda/bin/ncu"), *_newest_first("/opt/nvidia/nsight-compute/*/ncu")]


def find_nsys() -> Path:
    """The nsys binary: $NSYS, PATH, <repo>/.tools/nsys, /opt/nvidia/nsight-systems/*/bin,
    /usr/local/cuda/bin, Nsight Compute's bundled copy. Raises ToolNotFoundError."""
    return _find("nsys", "NSYS", nsys_candidates(), NSYS_INSTALL_HINT)


def find_ncu() -> Path:
    """The ncu binary: $NCU, PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-compute/*/ncu.
    Raises ToolNotFoundError."""
    return _find("ncu", "NCU", ncu_candidates(), NCU_INSTALL_HINT)


def tool_version(path: Path | str) -> str:
    """The tool's version line, e.g. 'NVIDIA Nsight Systems version 2022.4.2.1-df9881f'.

    Raises ToolNotFoundError when the binary cannot run (missing libraries, wrong arch).
    """
    try:
        proc = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolNotFoundError(f"{path} --version could not run: {exc}") from exc
    lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0:
        tail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ToolNotFoundError(f"{path} --version failed: {tail}")
    # ncu prints a banner first; the useful line names the version.
    for line in lines:
        if "version" in line.lower():
            return line
    return lines[0] if lines else ""
