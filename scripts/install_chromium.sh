#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test (tests/test_report_browser.py).
# Idempotent: when /usr/bin/chromium already runs, only re-checks it. Needs root for apt
# (CI runs as root). Exits non-zero with a reason when it cannot install; the browser test
# then skips and says why.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
say() { echo "install_chromium: $*"; }
die() { echo "install_chromium: error: $*" >&2; exit 1; }

works() { "$CHROMIUM" --version >/dev/null 2>&1; }

if [ -x "$CHROMIUM" ] && works; then
    say "already installed: $("$CHROMIUM" --version)"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install Debian's chromium package by hand"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root (apt-get install -y chromium)"
    SUDO="sudo -n"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || die "apt-get update failed (no network or no apt sources?)"
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
    || die "apt-get install chromium failed"

[ -x "$CHROMIUM" ] || die "$CHROMIUM missing after install"
works || die "$CHROMIUM --version fails (missing libraries? try: ldd $CHROMIUM)"
say "installed: $("$CHROMIUM" --version)"
