#!/usr/bin/env bash
# Install a release tarball (scripts/build-release.sh) on a board, atomically, with rollback.
#
#   scripts/deploy.sh [--wait N] [--root DIR] HOST [TARBALL]
#                                                        over ssh (HOST: user@board; sudo is used if not
#                                                        root); --root: a prefix on the board (default /)
#   scripts/deploy.sh --local ROOT [--health-cmd CMD] [--no-token] [TARBALL]
#                                                        into the directory ROOT, no systemctl (tests,
#                                                        scripts/build-image.sh)
#
# TARBALL defaults to the newest dist/facecv-*-aarch64.tar.gz; it is checked against dist/SHA256SUMS
# when that lists it, and again on the board after the copy. On the board:
#   1. unpack into /opt/facecv/releases/<version>/ (beside the releases already there)
#   2. install the units (/etc/systemd/system/facecv.service, /usr/lib/sysusers.d/facecv.conf,
#      /usr/lib/tmpfiles.d/facecv.conf, /usr/lib/modules-load.d/facecv.conf), create the user
#      (systemd-sysusers) and /etc/facecv
#   3. first install: /etc/facecv/facecv.toml from the tarball with a generated API token and
#      `listen = "0.0.0.0:7000"`, `tls_listen = "0.0.0.0:7443"` (an existing config is never overwritten). --no-token leaves the
#      token out: an SD image is flashed onto many cards, so each sets its own on first boot
#   4. switch /opt/facecv/current to the new release with one rename(2), daemon-reload, restart
#   5. wait up to N seconds (--wait, default 30) for `GET /health` on 127.0.0.1:7000; if it does not
#      answer, switch back to the previous release (and its units) and restart that, then fail
#   6. print the API token, the board's URLs and the HTTPS certificate's fingerprint
# In --local mode steps 2's systemd-sysusers/tmpfiles, 4's systemctl and 5's curl are skipped; the
# health check is --health-cmd (default: the new binary's `check-config` on the installed config),
# so a test can force a failure and watch the rollback.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

wait_s=30 local_root="" remote_root="" health_cmd="" host="" with_token=1
while [ $# -gt 0 ]; do
  case "$1" in
    --wait) wait_s="$2"; shift 2 ;;
    --local) local_root="$2"; shift 2 ;;
    --root) remote_root="$2"; shift 2 ;;
    --health-cmd) health_cmd="$2"; shift 2 ;;
    --no-token) with_token=0; shift ;;
    -h | --help) usage ;;
    -*) echo "deploy: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
if [ -z "$local_root" ]; then
  [ $# -ge 1 ] || usage
  host="$1"; shift
fi
tarball="${1:-$(ls -t dist/facecv-*-aarch64.tar.gz 2>/dev/null | head -1)}"
[ -n "$tarball" ] && [ -f "$tarball" ] || { echo "deploy: no tarball (build one: scripts/build-release.sh aarch64)" >&2; exit 1; }

sha="$(sha256sum "$tarball" | cut -d' ' -f1)"
sums="$(dirname "$tarball")/SHA256SUMS"
if [ -f "$sums" ] && grep -q " $(basename "$tarball")\$" "$sums"; then
  grep -q "^$sha  $(basename "$tarball")\$" "$sums" \
    || { echo "deploy: $tarball does not match $sums" >&2; exit 1; }
fi

# Everything below runs on the board (or against ROOT): one code path for both modes.
# Arguments: ROOT TARBALL SHA256 WAIT LOCAL(0|1) HEALTH_CMD WITH_TOKEN(0|1)
installer() {
cat <<'INSTALLER'
set -euo pipefail
root="$1" tarball="$2" want_sha="$3" wait_s="$4" local_mode="$5" health_cmd="$6" with_token="${7:-1}"
say() { echo "deploy: $*" >&2; }
got="$(sha256sum "$tarball" | cut -d' ' -f1)"
[ "$got" = "$want_sha" ] || { say "tarball damaged in transit ($got != $want_sha)"; exit 1; }

top="$(tar -tzf "$tarball" | sed -n 1p)"; top="${top%%/*}"
case "$top" in facecv-[0-9]*) ;; *) say "not a FaceCV release tarball: $top"; exit 1 ;; esac
version="${top#facecv-}"
base="$root/opt/facecv"
releases="$base/releases"
mkdir -p "$releases"

previous=""
if [ -L "$base/current" ]; then previous="$(readlink "$base/current")"; previous="${previous#releases/}"; fi

if [ -d "$releases/$version" ] && [ "$previous" = "$version" ]; then
  say "release $version is already current: reinstalling units and restarting"
else
  staging="$(mktemp -d "$releases/.unpack-$version.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  tar -xzf "$tarball" -C "$staging" --no-same-owner
  chmod 0755 "$staging/$top"
  rm -rf "$releases/$version"
  mv "$staging/$top" "$releases/$version"
  rm -rf "$staging"; trap - EXIT
fi
new="$releases/$version"

install_units() { # release dir
  install -D -m 0644 "$1/systemd/facecv.service" "$root/etc/systemd/system/facecv.service"
  install -D -m 0644 "$1/systemd/facecv.sysusers" "$root/usr/lib/sysusers.d/facecv.conf"
  install -D -m 0644 "$1/systemd/facecv.tmpfiles" "$root/usr/lib/tmpfiles.d/facecv.conf"
  # Older releases have no modules-load file (a rollback to one keeps the newer file).
  if [ -f "$1/systemd/facecv.modules-load" ]; then
    install -D -m 0644 "$1/systemd/facecv.modules-load" "$root/usr/lib/modules-load.d/facecv.conf"
  fi
}
install_units "$new"
if [ "$local_mode" = 0 ]; then
  systemd-sysusers ${root:+--root="$root"} facecv.conf
  systemd-tmpfiles ${root:+--root="$root"} --create facecv.conf
  # Now, not only at the next boot: the restart below must see video4linux in /proc/devices.
  [ -n "$root" ] || modprobe -q videodev 2>/dev/null || true
fi

# The config: created once, never overwritten. A first install gets a token and listens on the LAN.
conf="$root/etc/facecv/facecv.toml"
mkdir -p "$root/etc/facecv"
if [ ! -f "$conf" ]; then
  token=""
  [ "$with_token" = 0 ] || token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  sed -e "${token:+s|^# *token = .*|token = \"$token\"|}" \
      -e 's|^listen = "127.0.0.1:7000"|listen = "0.0.0.0:7000"|' \
      -e 's|^tls_listen = "127.0.0.1:7443"|tls_listen = "0.0.0.0:7443"|' \
      "$new/etc/facecv/facecv.toml" >"$conf.new"
  [ -z "$token" ] || grep -q "^token = \"$token\"" "$conf.new" || { say "could not set the token in $conf"; exit 1; }
  chmod 0640 "$conf.new"
  if [ "$(id -u)" = 0 ] && getent group facecv >/dev/null; then chown root:facecv "$conf.new"; fi
  mv "$conf.new" "$conf"
  say "created $conf${token:+ with a new API token}; the API listens on 0.0.0.0:7000 (HTTPS: 7443)"
fi
token="$(sed -n 's/^token *= *"\(.*\)"/\1/p' "$conf" | head -1)"
# A token rotated from the console sits in the state folder and wins over the config's, as it
# does in the service: the health check below must use it, or a healthy release is rolled back.
if [ -s "$root/var/lib/facecv/api-token" ]; then
  token="$(head -n 1 "$root/var/lib/facecv/api-token")"
fi

switch_to() { # release version: one rename(2), so `current` is never missing
  ln -sfn "releases/$1" "$base/current.new"
  mv -T "$base/current.new" "$base/current"
}
restart() {
  [ "$local_mode" = 0 ] || return 0
  systemctl daemon-reload
  systemctl enable --quiet facecv.service
  systemctl restart facecv.service
}
healthy() {
  if [ -n "$health_cmd" ]; then
    FACECV_ROOT="$root" bash -c "$health_cmd" >/dev/null 2>&1
  elif [ "$local_mode" = 1 ]; then
    "$base/current/bin/facecv" check-config --config "$conf" >/dev/null 2>&1
  else
    curl -fsS -m 2 ${token:+-H "Authorization: Bearer $token"} http://127.0.0.1:7000/health >/dev/null 2>&1
  fi
}
wait_healthy() {
  local deadline=$((SECONDS + wait_s))
  while :; do
    healthy && return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

switch_to "$version"
restart
if wait_healthy; then
  # Keep the three newest releases besides the current one.
  { ls -1t "$releases" | grep -vx "$version" || true; } | tail -n +4 | while read -r old; do rm -rf "${releases:?}/$old"; done
  say "release $version is running${previous:+ (was $previous)}"
  echo "version=$version"
  echo "token=${token:-}"
  # On a board the service has made (or read) its certificate by now; a local install never ran it.
  [ "$local_mode" = 1 ] || echo "fingerprint=$("$base/current/bin/facecv" tls-fingerprint --config "$conf" 2>/dev/null || true)"
  exit 0
fi
say "release $version did not answer /health within ${wait_s}s"
if [ -n "$previous" ] && [ "$previous" != "$version" ] && [ -d "$releases/$previous" ]; then
  install_units "$releases/$previous"
  switch_to "$previous"
  restart
  say "rolled back to $previous"
  [ "$local_mode" = 1 ] || systemctl is-active --quiet facecv.service || say "and $previous is not active either: journalctl -u facecv"
else
  say "no previous release to roll back to; see journalctl -u facecv"
fi
exit 1
INSTALLER
}

if [ -n "$local_root" ]; then
  mkdir -p "$local_root"
  out="$(bash -c "$(installer)" deploy "$(cd "$local_root" && pwd)" "$(realpath "$tarball")" "$sha" "$wait_s" 1 "$health_cmd" "$with_token")"
else
  remote_tmp="/tmp/facecv-deploy-$$.tar.gz"
  echo "deploy: copying $(basename "$tarball") to $host" >&2
  scp -q "$tarball" "$host:$remote_tmp"
  sudo=""; [ "$(ssh "$host" id -u)" = 0 ] || sudo="sudo"
  status=0
  out="$(installer | ssh "$host" "$sudo bash -s -- '$remote_root' '$remote_tmp' '$sha' '$wait_s' 0 '' '$with_token'; s=\$?; rm -f '$remote_tmp'; exit \$s")" || status=$?
  [ "$status" = 0 ] || exit "$status"
fi
echo "$out"
token="$(sed -n 's/^token=//p' <<<"$out")"
if [ -n "$host" ]; then
  board="${host#*@}"
  fingerprint="$(sed -n 's/^fingerprint=//p' <<<"$out")"
  if [ -n "$fingerprint" ]; then
    echo "Console: https://$board:7443  (sign in with the token; the certificate is self-signed:"
    echo "  accept it only if the browser shows SHA-256 $fingerprint)"
  fi
  if [ -n "$token" ]; then
    echo "API: http://$board:7000  (Authorization: Bearer $token)"
    echo "  curl -H 'Authorization: Bearer $token' http://$board:7000/health"
  else
    echo "API: no token set in /etc/facecv/facecv.toml: it answers on the board's loopback only"
  fi
fi
