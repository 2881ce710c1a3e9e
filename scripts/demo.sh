#!/usr/bin/env bash
# The first command of the README: from a fresh Debian machine with only the Rust toolchain to the
# appliance recognising faces, in one go.
#
#   scripts/demo.sh           # build, start the demo, show the first recognitions, keep serving (Ctrl-C stops)
#   scripts/demo.sh --check   # the same, but exit 0 once a recognition and a stranger alert arrived
#                             # (1 if none within 60 s of the server starting)
#
# It installs what cargo does not bring (Debian packages as root; otherwise it prints the exact
# `sudo apt-get install` line and stops), fetches LiteRT's runtime library (scripts/fetch-litert.sh),
# builds the release binary, makes the demo's camera frames and gallery from the test photos
# (demo/frames.rs, into target/demo/), enrols the gallery, and starts `facecv serve --config
# config/demo.toml`: one camera looping the frames, the API on 127.0.0.1:7000. The demo dials
# nothing but loopback. Nothing of it goes into a release tarball or an image.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--check]" >&2; exit 2 ;;
esac

say() { printf 'demo: %s\n' "$*"; }

command -v cargo >/dev/null || {
  echo "demo: cargo is missing: install the Rust toolchain first (https://rustup.rs)" >&2
  exit 1
}

# What the build and this script need beyond Rust: a C compiler and linker (ring, SQLite), libclang
# for the V4L2 bindings (bindgen), python3 with pip (fetch-litert.sh reads PyPI), curl.
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "demo: missing Debian packages; run this, then scripts/demo.sh again:" >&2
    echo "  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

scripts/fetch-litert.sh

# DEMO_PROFILE=dev builds the debug binary instead: a quicker first build, slower recognition.
profile="${DEMO_PROFILE:-release}"
say "building ($profile; the first build takes a few minutes)"
# One build of both: the example needs the dev-dependencies, and their features would make a
# second, different build of every crate if the binary and the example were built apart.
cargo build --profile "$profile" --locked --bin facecv --example demo-frames
out="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"
"$out/examples/demo-frames" target/demo

bin="$out/facecv"
port=7000
base="http://127.0.0.1:$port"
if curl -s -o /dev/null --max-time 2 "$base/health"; then
  echo "demo: something already answers on $base (another facecv?); stop it first" >&2
  exit 1
fi

rm -rf target/demo/data
say "enrolling the demo gallery"
"$bin" enroll --dir target/demo/people --config config/demo.toml

"$bin" serve --config config/demo.toml 2>target/demo/facecv.log &
server=$!
started=$(date +%s.%N)
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT INT TERM

for _ in $(seq 100); do
  curl -s -o /dev/null --max-time 1 "$base/health" && break
  kill -0 "$server" 2>/dev/null || { cat target/demo/facecv.log >&2; echo "demo: facecv serve exited" >&2; exit 1; }
  sleep 0.1
done

cat <<EOF

FaceCV Edge is running the demo (log: target/demo/facecv.log).

  Open the console in a browser on this machine: $base/
  (no sign-in: without a token the appliance trusts this machine only). Cameras shows the door
  camera live with names drawn in; Events, People and Webhooks follow what it sees.

Or look with curl:
  $base/health
  $base/api/v1/cameras                                  the demo camera and its state
  $base/api/v1/insightface/faces                        the enrolled gallery
  $base/api/v1/events?after_seq=0&limit=20              the event log (durable, oldest first)
  curl -N '$base/api/v1/face_recognition_insightface/recognize/webcam/stream?camera_id=demo_door'
                                                        FaceCV's live stream (server-sent events)
Config: config/demo.toml. Ctrl-C stops it.

EOF

# One line per event: type, camera, and the names and confidences of the faces it is about; then
# the page's `next_after_seq` (python3 is here anyway, for fetch-litert.sh).
format_events=$(cat <<'PY'
import json, sys
page = json.load(sys.stdin)
for e in page.get("events", []):
    ev = e.get("event", e)
    d = ev.get("data") or {}
    if "recognized_faces" in d:
        what = ", ".join(f"{f['name']} ({f['confidence']:.2f})" for f in d["recognized_faces"])
    elif "faces" in d:
        what = f"{d.get('face_count', len(d['faces']))} face(s)"
    elif "action" in d:
        what = f"{d.get('name')} {d['action']} ({d.get('confidence', 0):.2f})"
    elif "alert_level" in d:
        what = f"unknown face, {d['alert_level']}, seen {d.get('appearance_count')} times"
    else:
        what = d.get("source", "")
    print(f"{ev.get('event_type', '?')}\t{ev.get('camera_id', '')}: {what}")
print(f"next\t{page.get('next_after_seq', 0)}")
PY
)

# Show the events as they come, until a recognition and a stranger alert were seen.
after=0
seen_recognized=""
seen_stranger=0
deadline=$(($(date +%s) + 60))
while [ "$(date +%s)" -lt "$deadline" ]; do
  page="$(curl -s --max-time 2 "$base/api/v1/events?after_seq=$after&limit=50" || true)"
  if [ -n "$page" ]; then
    lines="$(python3 -c "$format_events" <<<"$page")"
    while IFS=$'\t' read -r kind rest; do
      case "$kind" in
        next) after="$rest" ;;
        *)
          printf '  %-22s %s\n' "$kind" "$rest"
          if [ "$kind" = face_recognized ] && [ -z "$seen_recognized" ]; then
            seen_recognized=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
            say "first recognition ${seen_recognized} s after the server started"
          fi
          [ "$kind" = stranger_alert ] && seen_stranger=1
          ;;
      esac
    done <<<"$lines"
  fi
  [ -n "$seen_recognized" ] && [ "$seen_stranger" = 1 ] && break
  kill -0 "$server" 2>/dev/null || { cat target/demo/facecv.log >&2; echo "demo: facecv serve exited" >&2; exit 1; }
  sleep 1
done

if [ -z "$seen_recognized" ]; then
  echo "demo: no face_recognized within 60 s; see target/demo/facecv.log" >&2
  exit 1
fi
if [ "$check" = 1 ]; then
  say "check passed: recognitions and a stranger alert flow"
  exit 0
fi
say "the demo keeps running: the events above repeat as the camera loops. Ctrl-C stops it."
wait "$server"
