#!/usr/bin/env bash
# Checks the Yocto layer yocto/meta-facecv without oe-core, bitbake builds or network (seconds):
# layer.conf's variables; every recipe, append and include parsed by BitBake's own parser; SRC_URI
# through BitBake's fetcher code (a sha256 for every download); every repo file the recipe installs
# exists and every model is shipped; the unit's and config's /opt/facecv paths rewritten to the
# installed ones; LIC_FILES_CHKSUM md5s; the crate list equal to what Cargo.lock generates; the
# recipe versions equal to Cargo.toml's and fetch-litert.sh's; the kas file against kas's schema.
# yocto/README.md says what this cannot catch.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import bb, kas' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check -r yocto/requirements.txt
fi
exec python3 yocto/scripts/check-layer.py
