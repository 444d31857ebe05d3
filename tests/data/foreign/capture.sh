#!/usr/bin/env bash
# Captures the foreign-trace fixtures on the GPU machine (see README.md):
#   source .devcarry/env.sh && bash tests/data/foreign/capture.sh OUT_DIR [NAME...]
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
names=${*:-hf_eager hf_static gptfast gptfast_compiled gptfast_nvtx}
for name in $names; do
  mkdir -p "$out/$name"
  echo "== $name ($(date -u +%H:%M:%S))"
  nsys profile --trace=cuda,nvtx,osrt --cuda-graph-trace=node --sample=none --cpuctxsw=none \
    --capture-range=cudaProfilerApi --capture-range-end=stop --force-overwrite=true -o "$out/$name/trace" \
    python3 "$here/workloads.py" "$name" --json-out "$out/$name/generation.json"
  nsys export --type sqlite --force-overwrite=true --output "$out/$name/trace.sqlite" "$out/$name/trace.nsys-rep"
  ls -la "$out/$name"
done
