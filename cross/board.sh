#!/usr/bin/env bash
# Prints one board's cross-build settings from cross/boards.toml as shell assignments, so the build
# scripts read the boards from one file instead of each encoding a triple and a CPU:
#
#   cross/board.sh BOARD      TRIPLE=... TARGET_CPU=... GLIBC=... GLIBCXX=... QEMU_CPU=... ARTIFACT=...
#   cross/board.sh --list     the boards and what each is for
#
# Use it as `settings="$(cross/board.sh "$board")" && eval "$settings"` (an assignment, so `set -e`
# stops on an unknown board; `eval "$(...)"` alone would not). ARTIFACT names the tarball:
# the architecture for a generic build (no target_cpu), `<arch>-<board>` for a tuned one.
# Fails, naming the line, on anything in boards.toml it does not understand, and on an unknown board.
set -euo pipefail
file="$(dirname "$0")/boards.toml"

die() { echo "cross/board.sh: $*" >&2; exit 2; }

# Every `name|key|value` of boards.toml, in file order.
entries() {
  local n=0 line section="" re_kv='^([a-z_]+)[[:space:]]*=[[:space:]]*"([^"]*)"[[:space:]]*(#.*)?$'
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      '' | '#'*) continue ;;
    esac
    if [[ "$line" =~ ^\[([a-z0-9_-]+)\][[:space:]]*(#.*)?$ ]]; then
      section="${BASH_REMATCH[1]}"
      echo "$section||"
    elif [[ "$line" =~ $re_kv ]] && [ -n "$section" ]; then
      echo "$section|${BASH_REMATCH[1]}|${BASH_REMATCH[2]}"
    else
      die "$file:$n: not a [board] header or a key = \"value\" line under one: $line"
    fi
  done <"$file"
}

[ -f "$file" ] || die "no $file"
all="$(entries)" || exit 2
boards="$(grep '||$' <<<"$all" | cut -d'|' -f1)"
dup="$(sort <<<"$boards" | uniq -d)"
[ -z "$dup" ] || die "board [${dup//$'\n'/ }] twice in $file"

case "${1:-}" in
  '') die "usage: cross/board.sh BOARD | --list (boards: ${boards//$'\n'/ })" ;;
  --list)
    while IFS= read -r b; do
      printf '%-12s %s\n' "$b" "$(grep "^$b|description|" <<<"$all" | cut -d'|' -f3-)"
    done <<<"$boards"
    exit 0 ;;
esac
board="$1"
grep -Fqx -- "$board" <<<"$boards" || die "unknown board '$board' (boards: ${boards//$'\n'/ }; see $file)"

triple="" target_cpu="" glibc="" glibcxx="" qemu_cpu="" seen=""
while IFS='|' read -r _ key value; do
  [ -n "$key" ] || continue
  case "$key" in
    description) ;;
    triple) [[ "$value" =~ ^[a-z0-9_]+(-[a-z0-9_]+)+$ ]] || die "$board: bad triple '$value'"; triple="$value" ;;
    target_cpu) [[ "$value" =~ ^[a-z0-9.-]+$ ]] || die "$board: bad target_cpu '$value'"; target_cpu="$value" ;;
    glibc) [[ "$value" =~ ^[0-9]+\.[0-9]+$ ]] || die "$board: bad glibc '$value' (like \"2.36\")"; glibc="$value" ;;
    glibcxx) [[ "$value" =~ ^[0-9]+(\.[0-9]+)+$ ]] || die "$board: bad glibcxx '$value' (like \"3.4.30\")"; glibcxx="$value" ;;
    qemu_cpu) [[ "$value" =~ ^[a-z0-9-]+$ ]] || die "$board: bad qemu_cpu '$value'"; qemu_cpu="$value" ;;
    *) die "$board: unknown key '$key' in $file" ;;
  esac
  case " $seen " in *" $key "*) die "$board: $key twice in $file" ;; esac
  seen="$seen $key"
done < <(grep "^$board|" <<<"$all")
for key in triple glibc glibcxx; do
  [ -n "${!key}" ] || die "$board: no $key in $file"
done

arch="${triple%%-*}"
artifact="$arch"
[ -z "$target_cpu" ] || artifact="$arch-$board"
printf 'BOARD=%q\nTRIPLE=%q\nARCH=%q\nTARGET_CPU=%q\nGLIBC=%q\nGLIBCXX=%q\nQEMU_CPU=%q\nARTIFACT=%q\n' \
  "$board" "$triple" "$arch" "$target_cpu" "$glibc" "$glibcxx" "$qemu_cpu" "$artifact"
