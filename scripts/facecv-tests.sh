#!/usr/bin/env bash
# FaceCV's own API tests against the appliance, as a user moving from FaceCV would run them.
#
#   scripts/facecv-tests.sh /path/to/facecv/tests [TEST_FILE...]
#
# The argument is the `tests` folder of FaceCV's repository (for example, from its bare git dir:
# `git -C <facecv.git> archive HEAD tests | tar -x -C /tmp/fcv`, then /tmp/fcv/tests). Without
# test files, the face and health suites this project tracks are run (the list below); their
# outcome is recorded in docs/facecv-compat.md. Not part of CI: FaceCV's repository is not
# reachable there.
#
# FaceCV's tests hard-code http://localhost:7003 and look for face photos under
# /home/a/PycharmProjects/EurekCV/dataset/faces. So, inside `unshare -n -m` (only loopback: the
# appliance can dial nothing else, and /home is this namespace's own), a tmpfs goes on /home, our
# test photos (tests/data/faces/johns) are copied there, and the debug binary serves on
# 127.0.0.1:7003 with a fresh store. The tests run in a venv (pytest, requests, numpy, pillow, and
# httpx + pytest-asyncio for tests/test_api_endpoints.py) made on first use in
# ${FACECV_TESTS_VENV:-/tmp/facecv-tests-venv}. pytest -rA prints every test's outcome; the
# script exits with pytest's status. Needs root (for the namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf 'facecv-tests: %s\n' "$*" >&2; }

default_files=(
  api/insightface/test_insightface_multipart.py
  api/insightface/test_insightface_comprehensive.py
  api/insightface/test_simple_api.py
  api/insightface/test_standalone.py
  api/health/test_health_api.py
  api/health/test_system_health.py
  api/test_api_endpoints.py
  test_api_endpoints.py
)

if [ "${FACECV_TESTS_INSIDE:-}" = 1 ]; then
  # Inside the namespaces: loopback, a private /home with the photos, the appliance, pytest.
  tests=$1; shift
  ip link set lo up
  mount -t tmpfs -o size=64m tmpfs /home
  photos=/home/a/PycharmProjects/EurekCV/dataset/faces
  mkdir -p "$photos"
  cp -r "$root"/tests/data/faces/johns/. "$photos"/
  work=$(mktemp -d)
  printf '[api]\nlisten = "127.0.0.1:7003"\n\n[storage]\ndir = "%s/store"\n' "$work" >"$work/facecv.toml"
  "$root"/target/debug/facecv serve --config "$work/facecv.toml" >"$work/facecv.log" 2>&1 &
  facecv=$!
  trap 'kill "$facecv" 2>/dev/null; wait "$facecv" 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null http://127.0.0.1:7003/api/v1/insightface/health && break
    sleep 0.1
  done
  curl -fsS -o /dev/null http://127.0.0.1:7003/api/v1/insightface/health ||
    { say "the appliance did not come up; its log:"; cat "$work/facecv.log" >&2; exit 1; }
  cd "$tests/.."
  args=()
  for f in "$@"; do args+=("tests/$f"); done
  status=0
  "$FACECV_TESTS_VENV/bin/python" -m pytest -rA -p no:cacheprovider -o asyncio_mode=auto \
    "${args[@]}" || status=$?
  exit "$status"
fi

[ $# -ge 1 ] || { say "usage: $0 /path/to/facecv/tests [TEST_FILE...]"; exit 2; }
tests=$(cd "$1" && pwd); shift
[ -f "$tests/conftest.py" ] || { say "$tests is not FaceCV's tests folder (no conftest.py)"; exit 2; }
[ "$(id -u)" = 0 ] || { say "needs root for unshare -n -m"; exit 2; }
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("${default_files[@]}")

export FACECV_TESTS_VENV=${FACECV_TESTS_VENV:-/tmp/facecv-tests-venv}
if [ ! -x "$FACECV_TESTS_VENV/bin/pytest" ]; then
  say "making the venv in $FACECV_TESTS_VENV"
  python3 -m venv "$FACECV_TESTS_VENV"
  "$FACECV_TESTS_VENV/bin/pip" install -q pytest requests numpy pillow httpx pytest-asyncio
fi
say "building the debug binary"
nice -n 10 cargo build -q --bin facecv
FACECV_TESTS_INSIDE=1 exec unshare -n -m "$0" "$tests" "${files[@]}"
