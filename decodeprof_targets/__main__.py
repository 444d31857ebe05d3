"""python -m decodeprof_targets LABEL [flags] | --list"""

from __future__ import annotations

import sys

from decodeprof_targets import registry
from decodeprof_targets.errors import TargetError

GPU_EXTRA = ("torch", "triton", "nvtx")  # what `pip install decodeprof[gpu]` brings


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("targets: " + ", ".join(registry.TARGETS))
        return 0 if argv else 2
    if argv[0] == "--list":
        for info in registry.TARGETS.values():
            print(f"{info.label:<18} {info.summary}")
        return 0
    try:
        info = registry.get(argv[0])
    except TargetError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    try:
        module = info.load()
    except ModuleNotFoundError as exc:
        if exc.name not in GPU_EXTRA:
            raise
        print(f"error: target {info.label!r} needs {exc.name}, which is not installed here\n"
              f"hint: install the target side: pip install 'decodeprof[gpu]' (torch, triton, nvtx)", file=sys.stderr)
        return 2
    if info.launcher == "torchrun":  # owns its entry: process group, GPU per rank, output on rank 0
        return module.main(argv[1:])
    from decodeprof_targets.harness import main as harness_main

    return harness_main(info.label, module.build, argv[1:], needs_cuda=info.needs_cuda)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
