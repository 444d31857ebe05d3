#!/usr/bin/env bash
# Install Debian 12's Nsight Systems 2022.4 (non-free) into <repo>/.tools/nsys for CPU-only
# capture tests (NVTX + OS runtime; no GPU needed). Idempotent: a second run only re-checks.
# Needs root for apt (CI runs as root). Exits non-zero with a reason when it cannot install;
# `make test` tolerates that and the nsys tests skip.
set -euo pipefail
trap 'echo "install_nsys: error: line $LINENO failed (exit $?)" >&2' ERR  # never exit without a word

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$REPO/.tools/nsys"
NSYS="$DEST/usr/lib/nsight-systems/bin/nsys"
STAMP="$DEST/.installed"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3 || true)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { echo "install_nsys: $*"; }
die() { echo "install_nsys: error: $*" >&2; exit 1; }

# Record NVTX + OS-runtime activity of a tiny program and export it: the whole CPU chain.
smoke_test() {
    local tmp="$WORK/smoke"
    mkdir -p "$tmp"
    "$NSYS" --version >/dev/null 2>&1 || die "$NSYS --version fails (missing libraries? try: ldd $NSYS)"
    local prog=(sleep 0.2) check_nvtx=0
    if [ -n "$PY" ] && "$PY" -c 'import nvtx' 2>/dev/null; then
        prog=("$PY" -c 'import nvtx, time
with nvtx.annotate("smoke", domain="decodeprof"):
    time.sleep(0.05)
open("/dev/null", "w").write("x")')
        check_nvtx=1
    else
        say "warning: no Python with the nvtx package; checking OS-runtime capture only"
    fi
    # --cpuctxsw=none: with context-switch tracing on, nsys 2022.4 hung on this VM after the target exited.
    timeout 300 "$NSYS" profile --trace=nvtx,osrt --sample=none --cpuctxsw=none -o "$tmp/smoke" "${prog[@]}" \
        >"$tmp/profile.log" 2>&1 || { cat "$tmp/profile.log" >&2; die "nsys profile failed"; }
    [ -f "$tmp/smoke.nsys-rep" ] || { cat "$tmp/profile.log" >&2; die "nsys profile wrote no .nsys-rep (importer missing?)"; }
    "$NSYS" export --type sqlite -o "$tmp/smoke.sqlite" "$tmp/smoke.nsys-rep" >"$tmp/export.log" 2>&1 \
        || { cat "$tmp/export.log" >&2; die "nsys export --type sqlite failed"; }
    if [ "$check_nvtx" = 1 ]; then
        "$PY" - "$tmp/smoke.sqlite" <<'EOF' || die "the export has no NVTX range 'smoke' (nvtx newer than 0.2.11? Debian's nsys 2022.4 records ranges only up to nvtx 0.2.11)"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
n = con.execute("SELECT count(*) FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id "
                "WHERE coalesce(e.text, s.value) = 'smoke'").fetchone()[0]
sys.exit(0 if n == 1 else 1)
EOF
    fi
}

if [ -f "$STAMP" ] && [ -x "$NSYS" ] && "$NSYS" --version >/dev/null 2>&1; then
    say "already installed: $("$NSYS" --version) at $NSYS"
    exit 0
fi

command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs apt-get and dpkg (Debian 12); install Nsight Systems by hand and set \$NSYS"
. /etc/os-release 2>/dev/null || true
[ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] \
    || say "warning: this is ${PRETTY_NAME:-an unknown system}, not Debian 12; trying anyway"

if ! apt-cache show nsight-systems >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "nsight-systems is in Debian's non-free component, which apt does not list here; run as root to enable it"
    # Add `non-free` to the sources already configured; never write a mirror address.
    changed=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        if grep -Eq '^Components:' "$f" && grep -E '^Components:' "$f" | grep -Evq '(^|[[:space:]])non-free([[:space:]]|$)'; then
            sed -i -E '/^Components:/{/(^|[[:space:]])non-free([[:space:]]|$)/!s/[[:space:]]*$/ non-free/}' "$f"
            say "added non-free to $f"; changed=1
        fi
    done
    if [ -f /etc/apt/sources.list ] && grep -Eq '^deb[[:space:]]' /etc/apt/sources.list; then
        sed -i -E '/^deb[[:space:]]/{/[[:space:]]non-free([[:space:]]|$)/!s/[[:space:]]*$/ non-free/}' /etc/apt/sources.list
        say "added non-free to /etc/apt/sources.list"; changed=1
    fi
    [ "$changed" = 1 ] || say "no apt source to extend; updating the lists anyway"
    apt-get update -qq || die "apt-get update failed (no network or no Debian mirror reachable)"
    apt-cache show nsight-systems >/dev/null 2>&1 || die "apt still lists no nsight-systems package after enabling non-free"
fi

# The host importer loads libssh.so; Debian's package links it to the system's libssh.so.4.
# awk reads all of ldconfig's output: an awk that exits at the first match lets ldconfig die of
# SIGPIPE, which pipefail + set -e turned into a silent exit of this script (now and then).
LDCONFIG="$(command -v ldconfig || echo /sbin/ldconfig)"
libssh="$("$LDCONFIG" -p 2>/dev/null | awk '/libssh\.so\.4 / && !p {p = $NF} END {print p}')"
if [ -z "$libssh" ]; then
    [ "$(id -u)" = 0 ] || die "libssh.so.4 is missing; run as root (or: apt-get install libssh-4)"
    say "installing libssh-4"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssh-4 >/dev/null \
        || die "apt-get install libssh-4 failed"
    libssh="$("$LDCONFIG" -p | awk '/libssh\.so\.4 / && !p {p = $NF} END {print p}')"
    [ -n "$libssh" ] || die "libssh-4 installed but libssh.so.4 not found by ldconfig"
fi

dl="$WORK/debs"
mkdir -p "$dl"
say "downloading nsight-systems and nsight-systems-target"
download() { (cd "$dl" && apt-get download -qq nsight-systems nsight-systems-target 2>/dev/null); }
if ! download; then
    # Stale package lists name a version the mirror no longer has: refresh once and retry.
    [ "$(id -u)" = 0 ] && apt-get update -qq && download \
        || die "apt-get download nsight-systems nsight-systems-target failed (network? run as root to refresh apt lists)"
fi
rm -rf "$DEST"
mkdir -p "$DEST"
for deb in "$dl"/*.deb; do dpkg -x "$deb" "$DEST"; done
[ -e "$NSYS" ] || die "unpacked the packages but $NSYS is missing (package layout changed?)"

# Unpacked outside /, two links of the installed package point nowhere: fix them.
ln -sfn "$libssh" "$DEST/usr/lib/nsight-systems/host-linux-x64/libssh.so"
# nsys looks for its importer next to its real folder (target-linux-x64/../host-linux-x64).
ln -sfn ../../nsight-systems/host-linux-x64 "$DEST/usr/lib/x86_64-linux-gnu/nsight-systems/host-linux-x64"

say "checking nsys profile + export on a tiny program"
smoke_test
"$NSYS" --version >"$STAMP"
say "installed $(cat "$STAMP") at $NSYS"
