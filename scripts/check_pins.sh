#!/usr/bin/env bash
# Prove the pinned requirements resolve from the public package indexes alone (PyPI and
# torch's CPU wheel index), for every supported Python, without installing anything:
#   bash scripts/check_pins.sh            # requirements.txt and requirements-ci.txt, Python 3.10-3.12
# Each Python resolves with its own pip (python3.10, python3.11, python3.12 on PATH; with pyenv:
# PYENV_VERSION=3.10.13:3.11.7:3.12.1 bash scripts/check_pins.sh): pip evaluates the pins'
# environment markers against the interpreter it runs in, whatever --python-version says.
# Where torch's index cannot be reached, requirements-ci.txt is resolved without its torch pin and
# its line says "partial" (exit status 2): that pin was not checked. Any failure: exit status 1.
# This machine's own pip configuration (local wheel folders, constraints) is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_INDEX=https://download.pytorch.org/whl/cpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
torch_index_up=yes
python3 -c "import urllib.request; urllib.request.urlopen('$TORCH_INDEX/torch/', timeout=30)" 2>/dev/null \
  || torch_index_up=no
status=0
for py in 3.10 3.11 3.12; do
  if ! "python$py" -c '' 2>/dev/null; then
    echo "FAILED  Python $py  python$py not found"; status=1; continue
  fi
  for req in requirements.txt requirements-ci.txt; do
    resolve=$req unchecked=
    if [[ $req == requirements-ci.txt && $torch_index_up == no ]]; then
      resolve=$tmp/ci-without-torch.txt  # -r paths made absolute: they are relative to the file
      sed -e "\|$TORCH_INDEX|d" -e '/^torch==/d' -e "s|^-r |-r $PWD/|" "$req" >"$resolve"
      unchecked=$(grep '^torch==' "$req" || true)
    fi
    if PIP_CONFIG_FILE=/dev/null "python$py" -m pip install --isolated --dry-run --ignore-installed --no-cache-dir -q \
        --index-url https://pypi.org/simple --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --target "$tmp/target" -r "$resolve" >"$tmp/log" 2>&1; then
      if [[ -n $unchecked ]]; then
        echo "partial Python $py  $req  (not checked: $unchecked, $TORCH_INDEX unreachable)"
        [[ $status == 1 ]] || status=2
      else
        echo "ok      Python $py  $req"
      fi
    else
      echo "FAILED  Python $py  $req"; grep -v '^\[notice\]' "$tmp/log" | tail -5 | cut -c1-300; status=1
    fi
  done
done
exit $status
