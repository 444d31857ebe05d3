"""The torchrun command line and environment for a multi-process target.

Standard library only (no torch import), so `decodeprof run/profile` can build the command on
any machine; the command runs torchrun through the same interpreter (`python -m
torch.distributed.run`), so it needs no `torchrun` script on PATH.

    argv, env = torchrun_command(["multigpu", "--steps", "8"], nprocs=2, device="cpu")
    subprocess.run(argv, env={**os.environ, **env}, check=True)
"""

from __future__ import annotations

import os
import shlex
import sys

from decodeprof_targets.errors import TargetError

# NVLink multicast (NVLS) stays off on every launch, whatever the caller's environment says: on
# the shared GPU hosts a program using it can put the host's GPUs out of service for a day or
# more. decodeprof_targets/multigpu.py forces the same values again before the process group starts.
MULTICAST_OFF = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
DEVICES = ("cuda", "cpu")


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def target_device(target_args) -> str:
    """The --device a target will use ("cuda" unless its flags say otherwise, as the targets do)."""
    return _flag_value(list(target_args), "--device") or "cuda"


def torchrun_command(label_args: list[str], nprocs: int, device: str, *,
                     python: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, env overrides) that start `nprocs` ranks of `python -m decodeprof_targets LABEL ARGS...`.

    label_args: the target label then its flags, e.g. ["multigpu", "--steps", "8"].
    device: "cuda" (one GPU per rank, NCCL) or "cpu" (gloo); appended as --device unless
    label_args already names the same device.
    The env overrides go on top of the caller's environment: multicast off always, and on CPU
    one OpenMP thread per rank unless OMP_NUM_THREADS is already set (ranks share the cores;
    spinning OpenMP pools starve gloo)."""
    if nprocs < 1:
        raise TargetError(f"--gpus must be at least 1, got {nprocs}")
    if device not in DEVICES:
        raise TargetError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if not label_args or label_args[0].startswith("-"):
        raise TargetError("no target label before the flags", "e.g. torchrun_command(['multigpu', ...], 2, 'cpu')")
    args = list(label_args)
    named = _flag_value(args, "--device")
    if named is None:
        args += ["--device", device]
    elif named != device:
        raise TargetError(f"the target flags say --device {named} but the launch is for {device}",
                          "pass the device once")
    argv = [python or sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nprocs), "-m", "decodeprof_targets", *args]
    env = dict(MULTICAST_OFF)
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = "1"
    return argv, env


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """The command as one copy-pasteable shell line (for logs and --dry-run)."""
    pairs = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return " ".join(["env", *pairs, *map(shlex.quote, argv)] if pairs else map(shlex.quote, argv))
