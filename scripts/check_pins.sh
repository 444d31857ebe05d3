#!/usr/bin/env bash
# Prove the pinned requirements resolve from the public package indexes alone (PyPI and
# torch's CPU wheel index), for every supported Python, without installing anything:
#   bash scripts/check_pins.sh            # requirements.txt and requirements-ci.txt, Python 3.11-3.12
# This machine's own pip configuration (local wheel folders, constraints) is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for py in 3.11 3.12; do  # polars 2 needs Python >= 3.11
  for req in requirements.txt requirements-ci.txt; do
    if PIP_CONFIG_FILE=/dev/null python3 -m pip install --isolated --dry-run --ignore-installed --no-cache-dir -q \
        --index-url https://pypi.org/simple --python-version "$py" --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --target /tmp/decodeprof-pin-check -r "$req" >/tmp/decodeprof-pin-check.log 2>&1; then
      echo "ok      Python $py  $req"
    else
      echo "FAILED  Python $py  $req"; tail -5 /tmp/decodeprof-pin-check.log; status=1
    fi
  done
done
exit $status
