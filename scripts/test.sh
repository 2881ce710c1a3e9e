#!/usr/bin/env bash
# Runs every test of FaceCV Edge against real parts, on a fresh Debian machine or a developer's.
#
# Installs what cargo does not bring: Debian packages (as root; otherwise it says what is missing),
# the Python and Node dependencies of the example receivers, and the TFLite runtime library.
# Everything it installs stays inside the repo or in the system's package managers: nothing is cached
# elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
# The Schemathesis venv (scripts/schemathesis.sh): Debian keeps venv and ensurepip apart.
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v curl >/dev/null || need_apt+=(curl)
command -v node >/dev/null || need_apt+=(nodejs npm)
# The MQTT tests start their own Mosquitto brokers (Debian puts it in /usr/sbin).
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
# tests/camera_stream.rs encodes an H.264 clip and serves it as a network camera with ffmpeg, the
# program the appliance reads network cameras through.
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
if [ -f src/camera/v4l2.rs ]; then
  [ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1 || need_apt+=(libclang-dev clang)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# The example receivers (tests/examples.rs runs them).
if [ -f examples/requirements.txt ]; then
  python3 -m pip install -q --disable-pip-version-check -r examples/requirements.txt
fi
if [ -f examples/package-lock.json ]; then
  npm ci --prefix examples --silent --no-audit --no-fund
fi

# The TFLite runtime the vision tests load (kept in lib/, which git ignores).
if [ -x scripts/fetch-litert.sh ]; then
  scripts/fetch-litert.sh x86_64 >/dev/null
fi
# The classic TFLite C library and headers, for the threads and external-delegate tests.
if [ -x scripts/fetch-tflite-c.sh ]; then
  scripts/fetch-tflite-c.sh x86_64 >/dev/null
fi

# Schemathesis and openapi-spec-validator in target/py/ (tests/openapi.rs validates with it).
scripts/schemathesis.sh --venv-only

cargo test --locked "$@"

# The web console in Debian's Chromium against the real binary, in a loopback-only network
# namespace (root; skipped with the reason otherwise). Screenshots: target/console-screenshots/.
scripts/console-test.sh

# Schemathesis against the real binary from the API's own OpenAPI document, for a bounded time
# (FACECV_FUZZ_SECONDS, default 180), in a loopback-only namespace; fails on any 5xx, an answer
# that breaks the document, or fewer than half 2xx. Reports: target/schemathesis/.
scripts/schemathesis.sh

# Shipping: the deploy script's install/upgrade/rollback logic and the systemd units (seconds),
# then the aarch64 cross build run under qemu-user (about 15 minutes from scratch on 2 cores;
# SKIP_CROSS=1 skips it on a developer's machine).
scripts/test-deploy.sh
scripts/check-units.sh
scripts/check-yocto-layer.sh
if [ "${SKIP_CROSS:-0}" != 1 ]; then
  scripts/cross-smoke.sh
fi
