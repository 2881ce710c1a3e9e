#!/usr/bin/env bash
# The web console in a real browser: Debian's Chromium, driven by playwright-core, against the real
# binary over HTTPS, with a real webhook receiver, all in a network namespace with only loopback.
#
#   scripts/console-test.sh            # every flow; screenshots in target/console-screenshots/
#   scripts/console-test.sh FLOW...    # only these flows (names as the run prints them)
#
# It installs what it needs when missing (Debian's chromium as root; `npm ci` in console/tests),
# builds the debug binary, makes the demo's frames (`cargo run --example demo-frames`, as
# scripts/demo.sh does) and loops them a few times in a media folder for a file camera, writes a
# config (a token, HTTPS on, the media folder, no MQTT), then, inside `unshare -n`, starts the
# receiver and `facecv serve` and runs console/tests/run.mjs. Everything it started is stopped on
# any exit. The flows and how each ended are printed, one line each; it exits 1 if any failed.
#
# Like the other tests that make the appliance dial what it is given (tests/common/netns.rs), it
# needs root for the namespace: without root it is skipped with the reason, except under CI, where
# it fails (a test that never runs must not look like one that passed).
#
# FACECV_CONSOLE_TOLERATE=REGEXP turns browser-console errors matching it into notes in the
# summary (for a run on a branch that lacks some endpoints yet); nothing here sets it.
# FACECV_DOCS_SCREENSHOTS=1 copies the README's screenshots into docs/screenshots/ after a run
# where every flow passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf 'console-test: %s\n' "$*"; }

if [ "${FACECV_CONSOLE_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    if [ -n "${CI:-}" ]; then
      echo "console-test: needs root for a loopback-only network namespace (unshare -n), and CI is root" >&2
      exit 1
    fi
    say "skipped: it needs root for a loopback-only network namespace (unshare -n); run it as root"
    exit 0
  fi
  if ! command -v chromium >/dev/null; then
    say "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  command -v node >/dev/null || { echo "console-test: node is missing (apt-get install nodejs npm)" >&2; exit 1; }
  if [ ! -d console/tests/node_modules/playwright-core ] || [ ! -d console/tests/node_modules/axe-core ] ||
    [ console/tests/package-lock.json -nt console/tests/node_modules/.package-lock.json ]; then
    say "npm ci in console/tests"
    npm ci --prefix console/tests --silent --no-audit --no-fund
  fi
  say "building the debug binary"
  # One build of both: the example needs the dev-dependencies, whose features would make a build
  # of the binary alone a second, different build of every crate (after `cargo test`, nothing).
  cargo build --locked --quiet --bin facecv --example demo-frames
  work=$(mktemp -d /tmp/facecv-console.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  target/debug/examples/demo-frames "$work/demo" >/dev/null
  # The door camera: the demo's loop (people walking up, a stranger lingering; 12 s at 4 fps)
  # six times over, so a camera added during the run is still showing faces a minute later.
  mkdir -p "$work/media/door"
  n=0
  for _ in 1 2 3 4 5 6; do
    for f in "$work"/demo/frames/*.jpg; do
      cp "$f" "$(printf '%s/media/door/frame_%04d.jpg' "$work" "$n")"
      n=$((n + 1))
    done
  done
  say "$n frames for the file camera in $work/media/door"
  # The rest runs where nothing but loopback exists; `unshare` gives us that namespace.
  FACECV_CONSOLE_NETNS=1 FACECV_CONSOLE_WORK="$work" unshare -n -- "$0" "$@"
  exit $?
fi

# Inside the namespace.
work="$FACECV_CONSOLE_WORK"
ip link set lo up
if [ "$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ')" != lo ]; then
  echo "console-test: the namespace has more than loopback" >&2
  exit 1
fi

token="console-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
shots="$root/target/console-screenshots"
rm -rf "$shots"
mkdir -p "$shots" "$work/data"
cat >"$work/facecv.toml" <<EOF
# Written by scripts/console-test.sh for one run.
[api]
listen = "127.0.0.1:7000"
tls_listen = "127.0.0.1:7443"
token = "$token"
media_dir = "$work/media"

[storage]
dir = "$work/data"

# A door relay this machine cannot drive (no GPIO here): the MQTT & GPIO page must say so.
[[actions]]
on = "face_recognized"
pin = 17
EOF

pids=()
stop() {
  local status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  cp "$work/facecv.log" "$shots/facecv.log" 2>/dev/null || true
  exit "$status"
}
trap stop EXIT INT TERM

node console/tests/receiver.mjs --port 8080 >"$work/receiver.log" 2>&1 &
pids+=($!)
LOG_LEVEL=INFO target/debug/facecv serve --config "$work/facecv.toml" >"$work/facecv.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  curl -s -o /dev/null --max-time 1 -H "Authorization: Bearer $token" http://127.0.0.1:7000/health && break
  kill -0 "${pids[1]}" 2>/dev/null || { cat "$work/facecv.log" >&2; echo "console-test: facecv serve exited" >&2; exit 1; }
  sleep 0.1
done
curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/_control || { cat "$work/receiver.log" >&2; exit 1; }
say "facecv serve on https://127.0.0.1:7443 (log: $shots/facecv.log), receiver on http://127.0.0.1:8080"

FACECV_URL=https://127.0.0.1:7443 \
  FACECV_HTTP_URL=http://127.0.0.1:7000 \
  FACECV_TOKEN="$token" \
  RECEIVER_URL=http://127.0.0.1:8080 \
  FACES_DIR="$root/tests/data/faces/johns" \
  CAMERA_SOURCE=door \
  SHOTS_DIR="$shots" \
  DEMO_FRAMES="$work/demo/frames" \
  BROWSER_DIR="$work/chromium" \
  node console/tests/run.mjs "$@"

# FACECV_DOCS_SCREENSHOTS=1 refreshes the README's pictures from a run where every flow passed.
if [ "${FACECV_DOCS_SCREENSHOTS:-0}" = 1 ]; then
  mkdir -p docs/screenshots
  for f in cameras-live-1280x800 people-1280x800 webhooks-deliveries-1280x800 webhooks-360x740; do
    cp "$shots/$f.png" docs/screenshots/
  done
  say "docs/screenshots/ refreshed"
fi
