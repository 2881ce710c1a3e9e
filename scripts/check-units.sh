#!/usr/bin/env bash
# Checks the systemd units the tarball ships, as installed by scripts/deploy.sh:
#   1. systemd-analyze verify (on a copy whose ExecStart points into a temporary install root,
#      since verify insists the binary exists)
#   2. systemd-analyze security --offline: fails above an exposure of 2.0 ("OK"; 1.6 when written)
#   3. the sysusers.d and tmpfiles.d files, applied to the temporary root
#   4. MemoryDenyWriteExecute=yes: an x86_64 `facecv detect` under the kernel's MDWE prctl (the
#      rule that setting enforces), when a binary, the runtime library and a C compiler are here
#
#   scripts/check-units.sh [TARBALL]   default: the repo's systemd/ files with a stub binary (a
#                                      tarball in dist/ may be older than the units)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  else
    echo "check-units: needs systemd-analyze (sudo apt-get install systemd)" >&2; exit 1
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"

tarball="${1:-}"
if [ -z "$tarball" ]; then
  d="$work/stub/facecv-0.0.0"
  mkdir -p "$d/bin" "$d/etc/facecv" "$d/systemd"
  printf '#!/bin/sh\n' >"$d/bin/facecv" && chmod 0755 "$d/bin/facecv"
  cp systemd/facecv.toml "$d/etc/facecv/" && cp systemd/facecv.service systemd/facecv.sysusers systemd/facecv.tmpfiles "$d/systemd/"
  tarball="$work/facecv-0.0.0-stub.tar.gz"
  tar -C "$work/stub" -czf "$tarball" facecv-0.0.0
fi
echo "check-units: installing $tarball into a temporary root"
scripts/deploy.sh --local "$root" --health-cmd true "$tarball" >/dev/null

unit="$work/facecv.service"
sed "s|^ExecStart=/opt/facecv/current/|ExecStart=$root/opt/facecv/current/|" \
  "$root/etc/systemd/system/facecv.service" >"$unit"

echo "check-units: systemd-analyze verify facecv.service"
systemd-analyze verify "$unit"
echo "  ok"

echo "check-units: systemd-analyze security --offline=true --threshold=20 facecv.service"
systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" | tail -1

echo "check-units: sysusers.d and tmpfiles.d applied to the temporary root"
mkdir -p "$root/etc"
touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/facecv.conf"
grep -q '^facecv:' "$root/etc/passwd" || { echo "check-units: sysusers created no facecv user" >&2; exit 1; }
for g in video gpio; do
  grep -q "^$g:.*facecv" "$root/etc/group" || { echo "check-units: facecv is not in $g" >&2; exit 1; }
done
systemd-tmpfiles --root="$root" --create "$root/usr/lib/tmpfiles.d/facecv.conf"
gid="$(sed -n 's/^facecv:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")"
[ "$(stat -c %a:%g "$root/etc/facecv/facecv.toml")" = "640:$gid" ] \
  || { echo "check-units: facecv.toml is not 0640 group facecv after tmpfiles" >&2; exit 1; }
echo "  /etc/facecv $(stat -c '%a' "$root/etc/facecv"), facecv.toml $(stat -c '%a' "$root/etc/facecv/facecv.toml") group facecv ($gid)"

# MemoryDenyWriteExecute=yes refuses W+X mappings; so does PR_SET_MDWE (Linux >= 6.3).
bin="" lib=""
if [ "$(cat "$root/opt/facecv/current/ARCH" 2>/dev/null)" = "$(uname -m)" ]; then
  bin="$root/opt/facecv/current/bin/facecv" lib="$root/opt/facecv/current/lib/libLiteRt.so"
elif [ -x "${CARGO_TARGET_DIR:-target}/debug/facecv" ] && [ -f "lib/$(uname -m)/libLiteRt.so" ]; then
  bin="${CARGO_TARGET_DIR:-target}/debug/facecv" lib="lib/$(uname -m)/libLiteRt.so"
fi
if [ -n "$bin" ] && command -v cc >/dev/null; then
  cat >"$work/mdwe.c" <<'C'
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
int main(int argc, char **argv) {
  if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) { perror("PR_SET_MDWE"); return 77; }
  execv(argv[1], argv + 1);
  perror("execv");
  return 1;
}
C
  cc -O2 -o "$work/mdwe" "$work/mdwe.c"
  echo "check-units: facecv detect under MDWE (MemoryDenyWriteExecute=yes)"
  status=0
  FACECV_LITERT_LIB="$lib" "$work/mdwe" "$bin" detect tests/data/faces/misc/obama.jpg --json >"$work/detect.json" || status=$?
  # Control: under the wrapper a W+X mapping must be refused, or the run proves nothing.
  if [ "$status" != 77 ] && "$work/mdwe" /usr/bin/env python3 -c \
      'import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)' 2>/dev/null; then
    echo "check-units: PR_SET_MDWE did not refuse a W+X mapping: the MDWE run proves nothing" >&2
    exit 1
  fi
  if [ "$status" = 77 ]; then
    echo "  skipped: this kernel has no PR_SET_MDWE"
  elif [ "$status" != 0 ] || ! grep -q '"confidence"' "$work/detect.json"; then
    echo "check-units: facecv detect failed under MDWE: MemoryDenyWriteExecute=yes would break it" >&2
    exit 1
  else
    echo "  ok: $(head -c 160 "$work/detect.json")"
  fi
else
  echo "check-units: MDWE run skipped (no $(uname -m) facecv binary with its runtime library, or no cc)"
fi
echo "check-units: ok"
