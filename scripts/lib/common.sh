# Shell helpers shared by the scripts in scripts/. Sourced, never run: it sets no options of its own.
# The sourcing script names itself in `prog` first, so that every message says which script failed.

# check FILE SHA256: a download is only trusted once its bytes are the ones recorded when it was
# first vetted. Fails (status 1, a message on stderr) on a mismatch; the caller decides whether
# that is fatal (set -e) or just means "fetch it again" (a test in an if).
check() {
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "${prog}: sha256 mismatch for $1: got $got, want $2" >&2
    return 1
  fi
}
