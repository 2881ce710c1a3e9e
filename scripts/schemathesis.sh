#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document: Schemathesis against the real binary, for a bounded
# time, in a network namespace with only loopback (it invents webhook and camera URLs, and nothing
# it invents may be dialled off this machine).
#
#   scripts/schemathesis.sh              # the run (needs root for the namespace)
#   scripts/schemathesis.sh --venv-only  # only make the Python venv (scripts/test.sh, before cargo test,
#                                        # so tests/openapi.rs can validate the document with it)
#
# The venv is target/py/schemathesis (inside the repo, nothing cached elsewhere), with pinned
# `schemathesis` and `openapi-spec-validator` from PyPI. The binary is the debug one `cargo test`
# built. It is started with the real models from models/, a config with `api.token`, a store in a
# temporary folder and no camera, then:
#   1. `openapi-spec-validator` validates the document the binary serves (OpenAPI 3.1);
#   2. Schemathesis runs every operation (but `rotate_token`, which would lock it out with the old
#      token, tests/api_session.rs covers it; and `live_view`, an MJPEG stream that lasts while a
#      camera runs, which Schemathesis cannot read a part of, tests/live.rs covers it) for FACECV_FUZZ_SECONDS (default 180), with the checks
#      `not_a_server_error`, `status_code_conformance`, `content_type_conformance`,
#      `response_headers_conformance`, `response_schema_conformance`, and for the methods a path
#      lacks `unsupported_method` and `allow_header_conformance` (405 with `Allow`);
#   3. the answers recorded in its HAR reports are counted by status class.
# It fails if Schemathesis failed, if any answer was 5xx, or if fewer than half were 2xx (a fuzzer
# that only ever sees 401 or 422 tests nothing). Reports: target/schemathesis/.
#
# Without root it is skipped with the reason, except under CI, where it fails (as console-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf 'schemathesis: %s\n' "$*"; }

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
venv="$root/target/py/schemathesis"
stamp="$venv/.installed-$SCHEMATHESIS_VERSION-$VALIDATOR_VERSION"

make_venv() {
  [ -f "$stamp" ] && return 0
  say "making the venv $venv (schemathesis $SCHEMATHESIS_VERSION, openapi-spec-validator $VALIDATOR_VERSION)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  PIP_CACHE_DIR="$root/target/py/pip-cache" "$venv/bin/pip" install -q --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
  touch "$stamp"
}

if [ "${1:-}" = --venv-only ]; then
  make_venv
  exit 0
fi

if [ "${FACECV_FUZZ_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    if [ -n "${CI:-}" ]; then
      echo "schemathesis: needs root for a loopback-only network namespace (unshare -n), and CI is root" >&2
      exit 1
    fi
    say "skipped: it needs root for a loopback-only network namespace (unshare -n); run it as root"
    exit 0
  fi
  make_venv
  say "building the debug binary"
  cargo build --locked --quiet --bin facecv
  work=$(mktemp -d /tmp/facecv-fuzz.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  FACECV_FUZZ_NETNS=1 FACECV_FUZZ_WORK="$work" unshare -n -- "$0" "$@"
  exit $?
fi

# Inside the namespace.
work="$FACECV_FUZZ_WORK"
ip link set lo up
if [ "$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ')" != lo ]; then
  echo "schemathesis: the namespace has more than loopback" >&2
  exit 1
fi

port=7000
token="fuzz-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
reports="$root/target/schemathesis"
rm -rf "$reports"
mkdir -p "$reports" "$work/data" "$work/media" "$work/enrol/staff"
# Something for the camera and folder routes to find: a folder of people to enrol from, and a
# picture a camera may read.
for person in John_Salley John_Savage; do
  cp -r "tests/data/faces/johns/$person" "$work/enrol/staff/"
done
cp tests/data/faces/johns/John_Simm/*.jpg "$work/media/"
cat >"$work/facecv.toml" <<EOF
# Written by scripts/schemathesis.sh for one run.
[api]
listen = "127.0.0.1:$port"
token = "$token"
media_dir = "$work/media"
offline_enrol_dir = "$work/enrol"

[storage]
dir = "$work/data"
EOF

pid=
stop() {
  local status=$?
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  cp "$work/facecv.log" "$reports/facecv.log" 2>/dev/null || true
  exit "$status"
}
trap stop EXIT INT TERM

LOG_LEVEL=WARNING target/debug/facecv serve --config "$work/facecv.toml" >"$work/facecv.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  curl -s -o /dev/null --max-time 1 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/health" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/facecv.log" >&2; echo "schemathesis: facecv serve exited" >&2; exit 1; }
  sleep 0.1
done
url="http://127.0.0.1:$port/api/v1/openapi.json"

# 1. The document is valid OpenAPI 3.1 (fetched without the token, as tools fetch it).
curl -sf "$url" -o "$reports/openapi.json"
"$venv/bin/python" -m openapi_spec_validator --schema 3.1.0 "$reports/openapi.json"

# 2. Seed what a user would have (people, webhooks, a camera) and point Schemathesis's path
# parameters at them most of the time: with only invented ids, nearly every request for one
# thing is a 404 and the routes behind it go untested.
"$venv/bin/python" - "http://127.0.0.1:$port" "$token" "$work" "$reports/schemathesis.toml" <<'PY'
import glob, json, os, sys, urllib.request, uuid

base, token, work, out = sys.argv[1:]

def call(method, path, body=None, content_type="application/json"):
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)

def form(fields, file_path):
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    with open(file_path, "rb") as f:
        photo = f.read()
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"

def enrol(person, name, count):
    ids = []
    for photo in sorted(glob.glob(f"tests/data/faces/johns/{person}/*.jpg"))[:count]:
        body, ct = form({"name": name}, photo)
        ids += call("POST", "/api/v1/faces", body, ct).get("face_ids", [])
    return ids

def webhook(w):
    call("POST", "/api/v1/webhooks", json.dumps({"webhook_id": w, "url": "http://127.0.0.1:9/hook"}).encode())

def camera(c):
    call("POST", "/api/v1/cameras", json.dumps({"camera_id": c, "source": media[0], "autostart": False}).encode())

# What the fuzz reads, changes and uses; and, apart, what deletes and renames may take away
# (so that the first DELETE does not leave every later request a 404).
media = sorted(os.listdir(os.path.join(work, "media")))
names = ["John_Schneider", "John_Shimkus", "John_Simm"]
face_ids = [i for n in names for i in enrol(n, n, 2)]
doomed_names = ["Doomed_A", "Doomed_B", "Doomed_C"]
doomed_faces = [i for n in doomed_names for i in enrol("John_Savage", n, 2)]
webhooks, doomed_webhooks = ["seed_main", "seed_door"], [f"doomed_{i}" for i in range(4)]
for w in webhooks + doomed_webhooks:
    webhook(w)
for c in ["seed_cam", "doomed_cam"]:
    camera(c)
events = call("POST", "/api/v1/events/trigger", json.dumps({"event_type": "stranger_alert", "count": 3, "camera_id": "seed_cam"}).encode())
event_ids = [e["id"] for e in events.get("events", [])]

def values(v):
    return "[" + ", ".join(json.dumps(x) for x in v) + "]"

def bind(param, dictionary):
    return f'"{param}" = {{ dictionary = "{dictionary}", probability = 0.8 }}'

dictionaries = {"names": names, "face_ids": face_ids, "webhook_ids": webhooks,
                "camera_ids": ["seed_cam"], "event_ids": event_ids,
                "doomed_names": doomed_names, "doomed_faces": doomed_faces,
                "doomed_webhooks": doomed_webhooks, "doomed_cameras": ["doomed_cam"],
                "assets": ["app.css", "js/app.js", "js/pages/people.js", "icon.svg"]}
deletes = {
    "path.name": ("doomed_names", ["delete_faces_by_name", "facecv_delete_faces_by_name",
                   "face_recognition_insightface_facecv_delete_faces_by_name", "rename_person"]),
    "path.face_id": ("doomed_faces", ["delete_face", "facecv_delete_face",
                      "face_recognition_insightface_facecv_delete_face"]),
    "path.webhook_id": ("doomed_webhooks", ["delete_webhook"]),
    "path.camera_id": ("doomed_cameras", ["delete_camera"]),
}
with open(out, "w") as f:
    f.write("# Written by scripts/schemathesis.sh: the ids the run seeded.\n")
    f.write("# A live stream lasts as long as its client reads it: read a few events of each.\n")
    f.write("max-stream-events = 3\n\n")
    for name, v in dictionaries.items():
        f.write(f"[dictionaries.{name}]\nvalues = {values(v)}\n")
    f.write("\n[parameters]\n")
    for param, d in [("path.name", "names"), ("path.face_id", "face_ids"),
                     ("path.webhook_id", "webhook_ids"), ("path.camera_id", "camera_ids"),
                     ("path.event_id", "event_ids"), ("path.path", "assets")]:
        f.write(bind(param, d) + "\n")
    for param, (d, ops) in deletes.items():
        f.write(f"\n[[operations]]\ninclude-operation-id = {values(ops)}\n")
        f.write(f"parameters = {{ {bind(param, d)} }}\n")
    # A replacement names its thing in the path and the body; they must agree.
    for op, param, value in [("replace_webhook", "webhook_id", "seed_door"),
                             ("replace_camera", "camera_id", "seed_cam")]:
        f.write(f'\n[[operations]]\ninclude-operation-id = "{op}"\n')
        f.write(f'parameters = {{ "path.{param}" = "{value}", "body.{param}" = "{value}" }}\n')
    # Nor may the generators reuse ids read from earlier answers (GET /api/v1/cameras names the
    # seeded camera, and a DELETE would take it): the ids above are the ones to use.
    for phase in ("examples", "coverage", "fuzzing"):
        f.write(f"\n[phases.{phase}]\nextra-data-sources = {{ responses = false }}\n")
print(f"schemathesis: seeded {len(names) + len(doomed_names)} people ({len(face_ids) + len(doomed_faces)} faces), "
      f"{len(webhooks) + len(doomed_webhooks)} webhooks, 2 cameras, {len(event_ids)} events")
PY

# 3. The fuzzing, bounded in time; 2 workers for 2 cores (the appliance is mostly waiting on
# SQLite's fsync and the models, so they overlap). Two runs: schema-valid requests (positive)
# for two thirds of the time, whose answers are counted (they should mostly succeed: a 4xx to a
# request the document allows is a document that says too little), then deliberately invalid
# ones (negative), which must be refused cleanly: no 5xx, answers as documented.
seconds="${FACECV_FUZZ_SECONDS:-180}"
positive=$((seconds * 2 / 3))
negative=$((seconds - positive))
say "fuzzing $url: ${positive} s of valid requests, then ${negative} s of invalid ones"
# From the reports folder: Schemathesis reads schemathesis.toml there and keeps its
# `.schemathesis/` cache in its working directory.
cd "$reports"
# Invalid requests need no seeded ids. An operation with nothing to break (no body, and a path
# parameter any string fits) cannot yield one: Hypothesis's "filter_too_much" says so, and it is
# no fault of the appliance.
printf '%s\n' '# Written by scripts/schemathesis.sh.' 'max-stream-events = 3' \
  'suppress-health-check = ["filter_too_much"]' >"$reports/negative.toml"
fuzz() {
  local mode=$1 secs=$2 config=$3
  shift 3
  "$venv/bin/schemathesis" --config-file "$config" run "$url" "$@" \
    --header "Authorization: Bearer $token" \
    --exclude-operation-id rotate_token \
    --exclude-operation-id live_view \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
    --mode "$mode" \
    --max-time "$secs" \
    --workers 2 \
    --request-timeout 70 \
    --seed "${FACECV_FUZZ_SEED:-1}" \
    --generation-database none \
    --no-color \
    --report har,junit \
    --report-dir "$reports" \
    --report-har-path "$reports/$mode.har" \
    --report-junit-path "$reports/$mode.junit.xml" \
    >"$reports/$mode.txt" 2>&1
}
set +e
# The valid requests without the stateful phase: its walks follow the document's links from a
# listing to a DELETE and would remove the seeded things for everything after.
fuzz positive "$positive" "$reports/schemathesis.toml" --phases examples,coverage,fuzzing
positive_status=$?
# Three operations take no input at all, so no request to them can break the document's rules.
fuzz negative "$negative" "$reports/negative.toml" \
  --exclude-operation-id facecv_models_clear \
  --exclude-operation-id face_recognition_insightface_facecv_models_clear \
  --exclude-operation-id check_integrity
negative_status=$?
set -e
cd "$root"
tail -n 40 "$reports/positive.txt"
tail -n 25 "$reports/negative.txt"

# 4. The answers by status class, from the HAR reports.
"$venv/bin/python" - "$reports" "$positive_status" "$negative_status" <<'PY'
import collections, json, sys

reports, statuses = sys.argv[1], {"positive": int(sys.argv[2]), "negative": int(sys.argv[3])}
failed = []
for mode in ("positive", "negative"):
    entries = json.load(open(f"{reports}/{mode}.har"))["log"]["entries"]
    classes = collections.Counter(f"{e['response']['status'] // 100}xx" for e in entries)
    codes = collections.Counter(e["response"]["status"] for e in entries)
    total = sum(classes.values())
    ok = classes.get("2xx", 0)
    print(f"schemathesis: {mode}: {total} answers: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items()))
          + (f" ({100 * ok / total:.1f} % 2xx)" if total else ""))
    print(f"schemathesis: {mode}: by status: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
    if total == 0:
        failed.append(f"{mode}: no answers recorded")
    if classes.get("5xx", 0) or classes.get("0xx", 0):
        bad = sorted({f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
                      for e in entries if e["response"]["status"] >= 500 or e["response"]["status"] < 100})
        failed.append(f"{mode}: {len(bad)} answers were 5xx or none: " + "; ".join(bad[:10]))
    if mode == "positive" and total and ok * 2 < total:
        failed.append(f"only {ok} of {total} valid requests were answered 2xx (at least half must be)")
    if statuses[mode] != 0:
        failed.append(f"{mode}: schemathesis failed (exit {statuses[mode]}; see target/schemathesis/{mode}.txt)")
for f in failed:
    print(f"schemathesis: FAILED: {f}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
