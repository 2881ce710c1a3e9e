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
#      token; tests/api_session.rs covers it) for FACECV_FUZZ_SECONDS (default 180), with the checks
#      `not_a_server_error`, `status_code_conformance`, `content_type_conformance`,
#      `response_headers_conformance`, `response_schema_conformance`, and for the methods a path
#      lacks `unsupported_method` and `allow_header_conformance` (405 with `Allow`);
#   3. the answers recorded in its HAR report are counted by status class.
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
mkdir -p "$reports" "$work/data" "$work/media"
cat >"$work/facecv.toml" <<EOF
# Written by scripts/schemathesis.sh for one run.
[api]
listen = "127.0.0.1:$port"
token = "$token"
media_dir = "$work/media"

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

# 2. The fuzzing, bounded in time; 2 workers for 2 cores (the appliance is mostly waiting on
# SQLite's fsync and the models, so they overlap).
seconds="${FACECV_FUZZ_SECONDS:-180}"
say "fuzzing $url for ${seconds} s"
set +e
# From the reports folder: Schemathesis keeps a `.schemathesis/` cache in its working directory.
cd "$reports"
"$venv/bin/schemathesis" run "$url" \
  --header "Authorization: Bearer $token" \
  --exclude-operation-id rotate_token \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
  --max-time "$seconds" \
  --workers 2 \
  --request-timeout 30 \
  --seed "${FACECV_FUZZ_SEED:-1}" \
  --generation-database none \
  --no-color \
  --report har,junit \
  --report-dir "$reports" \
  --report-har-path "$reports/run.har" \
  --report-junit-path "$reports/junit.xml" \
  >"$reports/run.txt" 2>&1
fuzz_status=$?
set -e
cd "$root"
tail -n 60 "$reports/run.txt"

# 3. The answers by status class, from the HAR report.
"$venv/bin/python" - "$reports/run.har" "$fuzz_status" <<'PY'
import collections, json, sys

har, fuzz_status = sys.argv[1], int(sys.argv[2])
entries = json.load(open(har))["log"]["entries"]
classes = collections.Counter(f"{e['response']['status'] // 100}xx" for e in entries)
codes = collections.Counter(e["response"]["status"] for e in entries)
total = sum(classes.values())
ok = classes.get("2xx", 0)
print(f"schemathesis: {total} answers: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
print("schemathesis: by status: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
failed = []
if total == 0:
    failed.append("no answers recorded")
if classes.get("5xx", 0):
    fives = sorted({f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
                    for e in entries if e["response"]["status"] >= 500})
    failed.append(f"{classes['5xx']} answers were 5xx: " + "; ".join(fives[:10]))
if total and ok * 2 < total:
    failed.append(f"only {ok} of {total} answers were 2xx (at least half must be)")
if fuzz_status != 0:
    failed.append(f"schemathesis failed (exit {fuzz_status}; see target/schemathesis/run.txt)")
for f in failed:
    print(f"schemathesis: FAILED: {f}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
