#!/usr/bin/env bash
# Re-capture the CPU multi-process fixtures of this folder (see README.md): the multigpu target
# on N gloo ranks under torchrun, traced by Debian's Nsight Systems 2022.4 (NVTX only, which
# keeps each export under 1 MB: OS-runtime tracing adds ~7,000 import-time calls per rank).
# The environment is emptied (env -i) so that nothing local lands in TARGET_INFO_SYSTEM_ENV;
# the variables set are those `decodeprof profile multigpu --gpus N -- --device cpu` sets
# (decodeprof_targets/launch.py: multicast off, one OpenMP thread per rank).
# Usage, from the repository root: tests/data/cpu-multigpu/capture.sh NAME NPROCS [TARGET FLAGS...]
#   tests/data/cpu-multigpu/capture.sh tp2 2
#   tests/data/cpu-multigpu/capture.sh tp4 4
#   tests/data/cpu-multigpu/capture.sh dp2 2 --mode dp
set -euo pipefail
name="$1"; nprocs="$2"; shift 2
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
nsys="$repo/.tools/nsys/usr/lib/nsight-systems/bin/nsys"  # scripts/install_nsys.sh
out="$repo/tests/data/cpu-multigpu/$name"
mkdir -p "$out"
rm -f "$out/trace.nsys-rep" "$out/trace.sqlite" "$out/metrics.json"
cd "$repo"
env -i PATH="$repo/.venv/bin:/usr/local/bin:/usr/bin:/bin" HOME=/tmp LANG=C.UTF-8 \
    NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 OMP_NUM_THREADS=1 \
    "$nsys" profile --trace=nvtx --sample=none --cpuctxsw=none -o "$out/trace" \
    .venv/bin/python3 -m torch.distributed.run --standalone --nproc-per-node "$nprocs" \
    -m decodeprof_targets multigpu --device cpu --hidden 64 --vocab 256 --prompt-len 8 --steps 4 --iters 2 --warmup 1 \
    --json-out "$out/metrics.json" "$@"
env -i PATH=/usr/bin:/bin HOME=/tmp "$nsys" export --type sqlite -o "$out/trace.sqlite" "$out/trace.nsys-rep" >/dev/null
# The .nsys-rep is not kept: even under env -i it stores environment strings of the host
# session (container name, CA-bundle variables); the SQLite export holds only the variables above.
rm -f "$out/trace.nsys-rep"
ls -l "$out"
