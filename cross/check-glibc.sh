#!/usr/bin/env bash
# Fails if a built file needs a newer glibc (or libstdc++) than the board's OS has: a binary linked
# on a newer builder than the board loads fine here and stops on the board with "version
# `GLIBC_2.38' not found", so the release build checks it before packing.
#
#   cross/check-glibc.sh BOARD FILE...      (floors from cross/boards.toml)
#
# Reads the symbol versions each ELF file asks for (objdump -T works for any architecture's ELF).
# To build for an older glibc than the builder's, see cross/README.md (cargo zigbuild).
set -euo pipefail
here="$(dirname "$0")"
[ $# -ge 2 ] || { echo "usage: cross/check-glibc.sh BOARD FILE..." >&2; exit 2; }
settings="$("$here/board.sh" "$1")"
eval "$settings"
shift

# The newest version of PREFIX (GLIBC_ or GLIBCXX_) that FILE needs, or nothing.
newest() { objdump -T "$2" | { grep -o "$1[0-9][0-9.]*" || true; } | sed "s/^$1//" | sort -uV | tail -1; }
# True if version $1 <= version $2.
not_above() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$2" ]; }

status=0
for f in "$@"; do
  [ -f "$f" ] || { echo "cross/check-glibc: no file $f" >&2; exit 2; }
  for pair in "GLIBC_ $GLIBC" "GLIBCXX_ $GLIBCXX"; do
    read -r prefix floor <<<"$pair"
    need="$(newest "$prefix" "$f")"
    [ -n "$need" ] || continue
    if not_above "$need" "$floor"; then
      echo "cross/check-glibc: $f needs $prefix$need; $BOARD has $floor: ok" >&2
    else
      echo "cross/check-glibc: $f needs $prefix$need, newer than $BOARD's $floor (cross/boards.toml): it would not start there" >&2
      status=1
    fi
  done
done
exit "$status"
