#!/usr/bin/env bash
# Tests scripts/deploy.sh's install logic without a board (--local ROOT): first install (token,
# LAN listen, atomic `current`), an upgrade, a failed health check rolling back, and a config that
# survives upgrades. Uses stub release tarballs (a shell script as bin/facecv), so it takes seconds.
#
#   scripts/test-deploy.sh [TARBALL]   also installs a real tarball (build-release.sh) and runs
#                                      its binary's check-config on the installed config.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "test-deploy: FAIL: $*" >&2; exit 1; }

stub() { # version -> tarball path
  local d="$work/stub-$1/facecv-$1"
  mkdir -p "$d/bin" "$d/lib" "$d/share/facecv/models" "$d/etc/facecv" "$d/systemd"
  printf '#!/bin/sh\necho "facecv %s"\n' "$1" >"$d/bin/facecv"
  chmod 0755 "$d/bin/facecv"
  cp systemd/facecv.toml "$d/etc/facecv/facecv.toml"
  cp systemd/facecv.service systemd/facecv.sysusers systemd/facecv.tmpfiles systemd/facecv.modules-load "$d/systemd/"
  mkdir -p "$work/dist"
  tar -C "$work/stub-$1" -czf "$work/dist/facecv-$1-x86_64.tar.gz" "facecv-$1"
  echo "$work/dist/facecv-$1-x86_64.tar.gz"
}

root="$work/root"
t1="$(stub 0.0.1)" t2="$(stub 0.0.2)" t3="$(stub 0.0.3)"
ok='test -x "$FACECV_ROOT/opt/facecv/current/bin/facecv"'

# 1. First install: release unpacked, current points at it, units installed, token generated.
out="$(scripts/deploy.sh --local "$root" --health-cmd "$ok" "$t1")"
[ "$(readlink "$root/opt/facecv/current")" = releases/0.0.1 ] || fail "current is not 0.0.1"
for f in etc/systemd/system/facecv.service usr/lib/sysusers.d/facecv.conf usr/lib/tmpfiles.d/facecv.conf \
  usr/lib/modules-load.d/facecv.conf; do
  [ -f "$root/$f" ] || fail "$f not installed"
done
conf="$root/etc/facecv/facecv.toml"
token="$(sed -n 's/^token=//p' <<<"$out")"
[ "${#token}" -ge 32 ] || fail "no token printed: $out"
grep -qx "token = \"$token\"" "$conf" || fail "token not written to the config"
grep -qx 'listen = "0.0.0.0:7000"' "$conf" || fail "listen not switched to the LAN"
grep -qx 'tls_listen = "0.0.0.0:7443"' "$conf" || fail "tls_listen not switched to the LAN"
[ "$(stat -c %a "$conf")" = 640 ] || fail "config mode is $(stat -c %a "$conf"), want 640"

# 2. Upgrade: current switches, the config (and its token) is kept.
echo '# edited by hand' >>"$conf"
out="$(scripts/deploy.sh --local "$root" --health-cmd "$ok" "$t2")"
[ "$(readlink "$root/opt/facecv/current")" = releases/0.0.2 ] || fail "current is not 0.0.2"
grep -qx '# edited by hand' "$conf" || fail "the config was overwritten"
[ "$(sed -n 's/^token=//p' <<<"$out")" = "$token" ] || fail "the token changed"

# 3. A release that never gets healthy: rolled back to 0.0.2, and deploy fails.
if scripts/deploy.sh --local "$root" --wait 1 --health-cmd false "$t3" 2>"$work/err"; then
  fail "deploy succeeded with a failing health check"
fi
grep -q "rolled back to 0.0.2" "$work/err" || fail "no rollback: $(cat "$work/err")"
[ "$(readlink "$root/opt/facecv/current")" = releases/0.0.2 ] || fail "current is not back on 0.0.2"
"$root/opt/facecv/current/bin/facecv" | grep -qx "facecv 0.0.2" || fail "wrong binary after rollback"

# 4. A tarball that does not match dist/SHA256SUMS is refused before anything is installed.
(cd "$work/dist" && sha256sum facecv-0.0.1-x86_64.tar.gz | sed 's/^[0-9a-f]*/0000000000000000000000000000000000000000000000000000000000000000/' >SHA256SUMS)
if scripts/deploy.sh --local "$work/root2" "$t1" 2>/dev/null; then fail "a damaged tarball was installed"; fi
[ ! -e "$work/root2/opt" ] || fail "a damaged tarball left files behind"
rm "$work/dist/SHA256SUMS"

# 5b. An image (scripts/build-image.sh) is flashed onto many cards: --no-token leaves the token for
#     each card's first boot, while the config still listens on the LAN.
out="$(scripts/deploy.sh --local "$work/image" --no-token --health-cmd "$ok" "$t1")"
iconf="$work/image/etc/facecv/facecv.toml"
[ -z "$(sed -n 's/^token=//p' <<<"$out")" ] || fail "--no-token printed a token: $out"
grep -q '^token' "$iconf" && fail "--no-token wrote a token: $(grep '^token' "$iconf")"
grep -q '^# *token = ' "$iconf" || fail "--no-token lost the commented token line the first boot fills in"
grep -qx 'listen = "0.0.0.0:7000"' "$iconf" || fail "--no-token: listen not switched to the LAN"

# 6. The ssh path, with ssh/scp/systemctl/curl stubbed on PATH and --root keeping it in $work:
#    the remote command line, daemon-reload/restart, the health probe with the token, rollback.
stubs="$work/stubs" log="$work/stub.log"
mkdir -p "$stubs"
stub_cmd() { printf '#!/bin/sh\n%s\n' "$2" >"$stubs/$1"; chmod +x "$stubs/$1"; }
stub_cmd ssh 'shift; exec bash -c "$*"'
stub_cmd scp 'shift; exec cp "$1" "${2#*:}"'
stub_cmd sudo 'exec "$@"'
for c in systemctl systemd-sysusers systemd-tmpfiles; do stub_cmd "$c" "echo \"$c \$*\" >>'$log'"; done
stub_cmd curl "echo \"curl \$*\" >>'$log'; test -e '$work/healthy'"
rroot="$work/remote"
touch "$work/healthy"
out="$(PATH="$stubs:$PATH" scripts/deploy.sh --root "$rroot" board.local "$t1")"
[ "$(readlink "$rroot/opt/facecv/current")" = releases/0.0.1 ] || fail "ssh: current is not 0.0.1"
rtoken="$(sed -n 's/^token=//p' <<<"$out")"
grep -q "^API: http://board.local:7000" <<<"$out" || fail "ssh: no API line: $out"
grep -qx "systemctl daemon-reload" "$log" && grep -qx "systemctl restart facecv.service" "$log" \
  || fail "ssh: no daemon-reload/restart: $(cat "$log")"
grep -q "^systemd-sysusers --root=$rroot facecv.conf" "$log" || fail "ssh: sysusers not run"
grep -q "Authorization: Bearer $rtoken http://127.0.0.1:7000/health" "$log" || fail "ssh: health probe without the token"
rm "$work/healthy"; : >"$log"
if PATH="$stubs:$PATH" scripts/deploy.sh --wait 1 --root "$rroot" board.local "$t2" 2>"$work/err" >/dev/null; then
  fail "ssh: deploy succeeded while /health failed"
fi
grep -q "rolled back to 0.0.1" "$work/err" || fail "ssh: no rollback: $(cat "$work/err")"
[ "$(readlink "$rroot/opt/facecv/current")" = releases/0.0.1 ] || fail "ssh: current is not back on 0.0.1"
[ "$(grep -cx "systemctl restart facecv.service" "$log")" = 2 ] || fail "ssh: expected two restarts: $(cat "$log")"
ls /tmp/facecv-deploy-*.tar.gz >/dev/null 2>&1 && fail "ssh: the uploaded tarball was left in /tmp"

# 5. A real release, if given: its binary reads the installed config.
if [ $# -ge 1 ]; then
  scripts/deploy.sh --local "$work/real" "$1" >/dev/null
  "$work/real/opt/facecv/current/bin/facecv" check-config --config "$work/real/etc/facecv/facecv.toml"
fi
echo "test-deploy: ok"
