#!/usr/bin/env bash
# Power cuts, not only kill -9: an SD image (scripts/build-image.sh) under qemu records events
# through its API while the VM's plug is pulled at random moments; after every cut it boots again
# and checks that each event the API acknowledged is in the store and that the store is intact.
#
#   scripts/power-cut.sh IMG [--cuts 5] [--min 2] [--max 20] [--port 17100] [--timeout 900]
#                            [--clients 2] [--cache none] [--seed N] [--keep]
#
# How long: about a minute a cut under emulation (no KVM for arm64 on an x86 host: a boot after a
# cut answered in ~33 s, then the recording and the checks) plus the first boot (~42 s): measured
# 248 s for `--cuts 4 --seed 9` on a 2-core machine, so about 5 minutes for the default 5. Too slow
# for every CI run; run it before a release and after changes to the store.
#
# What it does (the boot test's setup, scripts/lib/vm.sh):
#   1. boots IMG on a qcow2 overlay (IMG is never written) with the disk's cache mode `none`
#      (O_DIRECT: the host's page cache keeps nothing the guest did not write out itself, so
#      SIGKILL of qemu loses what a power cut loses; `--cache directsync` also writes through
#      the guest's volatile cache), and reads the first boot's API token from the serial console
#   2. --clients producers POST /api/v1/events/trigger (1-10 events a call, the six event types in
#      turn) with the token, and log each event id the API acknowledged with 200 to a host file
#   3. after a random --min..--max seconds of recording: SIGKILL to qemu (the power cut)
#   4. boots the same overlay again, reads every stored event (GET /api/v1/events, paged by
#      after_seq) and compares: every acknowledged id must be there
#   5. the store's integrity: facecv is stopped, then `PRAGMA integrity_check` runs on it with the
#      VM's sqlite3 if the image has one, else on a copy of its files (over ssh) with this
#      machine's sqlite3; the appliance's own `facecv check-config` (a quick_check) runs in the
#      VM too; facecv is started again
#   6. repeats 2-5 --cuts times, powers off cleanly, prints a summary
# Exit status: 0 when nothing acknowledged was lost and every check passed; 1 otherwise.
# The guest's network is user-mode with restrict=on: it reaches nothing; only 127.0.0.1:PORT (API)
# and PORT+1 (ssh) are forwarded to it.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '6,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "power-cut: $*" >&2; }

img="" cuts=5 min_s=2 max_s=20 port=17100 timeout=900 clients=2 cache=none seed="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cuts) cuts="$2"; shift 2 ;;
    --min) min_s="$2"; shift 2 ;;
    --max) max_s="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *) [ -z "$img" ] || usage; img="$1"; shift ;;
  esac
done
[ -n "$img" ] || usage
[ -f "$img" ] || { say "no image $img (scripts/build-image.sh makes one)"; exit 1; }
for n in "$cuts" "$min_s" "$max_s" "$clients"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { say "--cuts, --min, --max and --clients take whole numbers"; usage; }
done
[ "$cuts" -ge 1 ] && [ "$clients" -ge 1 ] && [ "$max_s" -ge "$min_s" ] \
  || { say "need --cuts >= 1, --clients >= 1 and --max >= --min"; exit 2; }
case "$cache" in none | directsync) ;; *) say "--cache is none or directsync"; exit 2 ;; esac
seed="${seed:-$(od -An -tu2 -N2 /dev/urandom | tr -d ' ')}"
RANDOM="$seed"

prog="power-cut"
# shellcheck source=lib/vm.sh
source scripts/lib/vm.sh
vm_tools || { say "$vm_error"; exit 1; }
for t in jq sqlite3; do
  command -v "$t" >/dev/null || { say "needs $t on this machine (apt-get install $t)"; exit 1; }
done

vm_dir="$(mktemp -d)"
producers=()
stop_producers() {
  touch "$vm_dir/stop"
  local p
  for p in "${producers[@]}"; do wait "$p" 2>/dev/null || true; done
  producers=()
}
cleanup() {
  vm_kill
  stop_producers
  vm_remove_dir
}
trap cleanup EXIT
fail() { vm_fail "$@"; }

api() { curl -sS -m 30 -H "Authorization: Bearer $vm_token" "$@"; }

# One producer: trigger calls until $vm_dir/stop exists. Only a 200 counts: its ids go to the
# producer's own file in one append, before the next call. A call in flight at the cut gets no
# 200 (qemu's sockets close with it), so nothing the file holds is more than the API promised.
produce() {
  local n="$1" out="$vm_dir/acked.$1" body="$vm_dir/answer.$1" i=0 code count
  local types=(face_recognized face_detected stranger_alert attendance_recorded stream_started stream_stopped)
  while [ ! -e "$vm_dir/stop" ]; do
    count=$((RANDOM % 10 + 1))
    code="$(curl -s -m 10 -o "$body" -w '%{http_code}' -H "Authorization: Bearer $vm_token" \
      -H 'Content-Type: application/json' -X POST "http://127.0.0.1:$vm_port/api/v1/events/trigger" \
      -d "{\"event_type\": \"${types[$(((i + n) % 6))]}\", \"count\": $count, \"camera_id\": \"cut_$n\"}")" \
      || code=000
    if [ "$code" = 200 ]; then
      jq -r '.events[].id' "$body" >>"$out"
    else
      echo "$code" >>"$vm_dir/refused.$n"
      sleep 0.2
    fi
    i=$((i + 1))
  done
}

# Every event id in the store, one a line, through the API (paged by after_seq).
stored_ids() {
  local after=0 page next
  while :; do
    page="$(api -f "http://127.0.0.1:$vm_port/api/v1/events?after_seq=$after&limit=1000")" || return 1
    jq -r '.events[].event.id' <<<"$page"
    next="$(jq -r '.next_after_seq' <<<"$page")"
    [ "$next" != "$after" ] || return 0
    after="$next"
  done
}

# The store's integrity after a cut (see the header). Prints what it used; fails on any finding.
check_store() {
  local dir copy result
  # storage.dir: the only key of the board's config that is spelt `dir`.
  dir="$(vm_ssh 'sed -n "s/^dir *= *\"\(.*\)\"/\1/p" /etc/facecv/facecv.toml | head -1')"
  dir="${dir:-/var/lib/facecv}"
  vm_ssh 'systemctl stop facecv' || { echo "could not stop facecv"; return 1; }
  if vm_ssh 'command -v sqlite3' >/dev/null 2>&1; then
    result="$(vm_ssh "sqlite3 '$dir/facecv.db' 'PRAGMA integrity_check'")" || result="sqlite3 failed: $result"
    echo "integrity_check (the VM's sqlite3): $result"
  else
    copy="$vm_dir/store.$cut"
    mkdir -p "$copy"
    vm_ssh "cd '$dir' && tar -cf - facecv.db*" | tar -C "$copy" -xf - \
      || { echo "could not copy the store out of the VM"; return 1; }
    result="$(sqlite3 "$copy/facecv.db" 'PRAGMA integrity_check' 2>&1)" || result="sqlite3 failed: $result"
    echo "integrity_check (this machine's sqlite3 on a copy: $(cd "$copy" && ls | tr '\n' ' ')): $result"
    rm -rf "$copy"
  fi
  [ "$result" = ok ] || return 1
  # The appliance's own check, as the service's user so that no file of the store becomes root's.
  vm_ssh "runuser -u facecv -- /opt/facecv/current/bin/facecv check-config --config /etc/facecv/facecv.toml 2>&1" \
    | grep -i 'store' | sed 's/^ */facecv check-config: /' || { echo "facecv check-config failed"; return 1; }
  vm_ssh 'systemctl start facecv' || { echo "could not start facecv again"; return 1; }
}

started=$SECONDS
vm_prepare "$img" 1G || fail "$vm_error"
say "seed $seed; $cuts cuts after ${min_s}-${max_s} s of recording each; disk cache=$cache; work folder $vm_dir"
vm_boot "$port" "$cache" "$vm_dir/console.0.log"
vm_wait_api "$timeout" || fail "first boot: $vm_error"
say "first boot: /health answered after $((SECONDS - started)) s"

lost_total=0 integrity_failures=0 acked=0 found=0 refused=0
for cut in $(seq 1 "$cuts"); do
  rm -f "$vm_dir/stop"
  for c in $(seq 1 "$clients"); do
    produce "$c" &
    producers+=($!)
  done
  wait_s=$((min_s + RANDOM % (max_s - min_s + 1)))
  sleep "$wait_s"
  vm_kill
  stop_producers
  acked="$(cat "$vm_dir"/acked.* 2>/dev/null | sort -u | tee "$vm_dir/acked.sorted" | wc -l)"
  refused="$(cat "$vm_dir"/refused.* 2>/dev/null | wc -l)"
  say "cut $cut: power pulled after $wait_s s of recording; $acked events acknowledged so far"

  t0=$SECONDS
  vm_boot "$port" "$cache" "$vm_dir/console.$cut.log"
  vm_wait_api "$timeout" || fail "boot after cut $cut: $vm_error"
  say "cut $cut: /health answered $((SECONDS - t0)) s after power-on: $vm_health"
  stored_ids | sort -u >"$vm_dir/stored.sorted" || fail "could not read the events after cut $cut"
  found="$(comm -12 "$vm_dir/acked.sorted" "$vm_dir/stored.sorted" | wc -l)"
  lost="$(comm -23 "$vm_dir/acked.sorted" "$vm_dir/stored.sorted" | tee "$vm_dir/lost.$cut" | wc -l)"
  if [ "$lost" -gt 0 ]; then
    say "cut $cut: LOST $lost acknowledged events, e.g. $(head -3 "$vm_dir/lost.$cut" | tr '\n' ' ')"
    lost_total="$lost"
  fi
  say "cut $cut: $found of $acked acknowledged events in the store ($(wc -l <"$vm_dir/stored.sorted") stored)"
  if report="$(check_store 2>&1)"; then
    echo "$report" | sed "s/^/power-cut: cut $cut: /" >&2
  else
    echo "$report" | sed "s/^/power-cut: cut $cut: /" >&2
    say "cut $cut: the store FAILED its checks"
    integrity_failures=$((integrity_failures + 1))
    break
  fi
  vm_wait_api 300 || fail "facecv did not come back after the checks of cut $cut: $vm_error"
done

vm_poweroff
echo "== power-cut summary (seed $seed, disk cache=$cache)"
echo "cuts:                 $cut of $cuts"
echo "events acknowledged:  $acked (calls refused or cut: $refused)"
echo "events found:         $found"
echo "lost:                 $lost_total"
echo "integrity failures:   $integrity_failures"
echo "time taken:           $((SECONDS - started)) s"
[ "$lost_total" = 0 ] && [ "$integrity_failures" = 0 ] || exit 1
