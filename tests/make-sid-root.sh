#!/bin/sh
# Make (or reuse) a Debian sid root holding real CPython 3.14 and 3.15 (3.15 ships Tachyon,
# `profiling.sampling`), so the suite can profile them and compare with Tachyon. No patch
# version is pinned: sid moves, and the tests read whatever versions the root holds.
#
# Usage: sh tests/make-sid-root.sh [ROOT]   (default: .cache/sid-root, ignored by git)
# Never fails the test set-up: when the root cannot be made (no network to Debian's packages,
# not root), it writes the reason to ROOT.unavailable and exits 0; the 3.14/3.15 cases then
# skip with that reason.
ROOT="${1:-${HEATLINE_SID_ROOT:-$(dirname "$0")/../.cache/sid-root}}"
mkdir -p "$(dirname "$ROOT")"
ROOT="$(cd "$(dirname "$ROOT")" && pwd)/$(basename "$ROOT")"
REASON="$ROOT.unavailable"
PACKAGES="python3.14,python3.14-dev,python3.15,python3.15-dev,procps"

unavailable() {
    echo "sid root unavailable: $1" >&2
    echo "$1" > "$REASON"
    exit 0
}

if [ -f "$ROOT/.heatline-complete" ]; then
    rm -f "$REASON"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || unavailable "making a debootstrap root needs root (run the test set-up as root)"
if ! command -v debootstrap >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) >/dev/null 2>&1 \
        || unavailable "debootstrap is not installed and apt-get could not install it"
fi
# Build beside the final path and rename, so an interrupted run never leaves a half root in use.
PARTIAL="$ROOT.partial"
if mountpoint -q "$PARTIAL/proc" 2>/dev/null; then umount "$PARTIAL/proc"; fi
rm -rf "$PARTIAL"
if ! debootstrap --variant=minbase --include="$PACKAGES" sid "$PARTIAL" http://deb.debian.org/debian \
        > "$ROOT.log" 2>&1; then
    rm -rf "$PARTIAL"
    unavailable "debootstrap of Debian sid failed (no network to Debian's packages?): see $ROOT.log"
fi
for v in 3.14 3.15; do
    chroot "$PARTIAL" "python$v" -c "import sys" >/dev/null 2>&1 || { rm -rf "$PARTIAL"; unavailable "python$v does not run in the sid root"; }
done
touch "$PARTIAL/.heatline-complete"
rm -rf "$ROOT"
mv "$PARTIAL" "$ROOT"
rm -f "$REASON"
echo "sid root ready: $ROOT ($(chroot "$ROOT" python3.14 -V), $(chroot "$ROOT" python3.15 -V))" >&2
