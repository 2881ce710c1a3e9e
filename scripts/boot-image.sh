#!/usr/bin/env bash
# Boot an SD image (scripts/build-image.sh) under qemu and check that FaceCV answers:
#
#   scripts/boot-image.sh IMG [--port 17000] [--timeout 900] [--grow 1G] [--keep] [--no-v4l2]
#
# IMG is never written: the VM runs on a qcow2 overlay (--grow bigger than IMG, like a larger card,
# so the first boot's partition growing is exercised). qemu's `virt` machine boots the image's own
# kernel and initramfs, read from its FAT partition, with the image's cmdline.txt (the console moved
# to the virt UART). An ssh key made for this run is put in the overlay's FAT partition as
# authorized_keys, which tests that path of the first boot and lets the script ask systemd.
# Then:
#   1. waits for the first boot's token on the serial console and `GET /health` with it on
#      127.0.0.1:PORT (forwarded to the VM's 7000; ssh on PORT+1)
#   2. checks that /health without the token is refused (401)
#   3. shows `systemctl status facecv` and the first boot's results over ssh, and the console's
#      "Started facecv.service" line
#   4. V4L2 on a real kernel driver (unless --no-v4l2): loads the kernel's `vivid` test camera,
#      adds it over the API as source "0" (/dev/video0), waits for frames captured and analysed
#      by the service under its sandbox (DeviceAllow, group video), stops it, and checks the
#      stream_started / stream_stopped events and the format the camera negotiated
#   5. powers the VM off; exits 0. On failure or --timeout: the console's tail, exit 1.
# --keep keeps the work folder (console log, overlay) and prints where it is.
# Under emulation (no KVM for arm64 on an x86 host) the first boot takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "boot-image: $*" >&2; }

img="" port=17000 timeout=900 grow=1G keep=0 v4l2=1
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --grow) grow="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-v4l2) v4l2=0; shift ;;
    -h | --help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *) [ -z "$img" ] || usage; img="$1"; shift ;;
  esac
done
[ -n "$img" ] || usage
[ -f "$img" ] || { say "no image $img (scripts/build-image.sh makes one)"; exit 1; }

prog="boot-image"
# shellcheck source=lib/vm.sh
source scripts/lib/vm.sh
vm_tools || { say "$vm_error"; exit 1; }

vm_dir="$(mktemp -d)"
cleanup() {
  vm_kill
  vm_remove_dir
}
trap cleanup EXIT
fail() { vm_fail "$@"; }

vm_prepare "$img" "$grow" || fail "$vm_error"
t0=$SECONDS
vm_boot "$port" writeback "$vm_dir/console.log"
say "booting (console: $vm_console), waiting up to ${timeout}s for /health on 127.0.0.1:$port"
vm_wait_api "$timeout" || fail "$vm_error"
token="$vm_token" body="$vm_health"
say "/health answered $((SECONDS - t0)) s after power-on"

code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$port/health")"
[ "$code" = 401 ] || fail "/health without the token answered $code, want 401"

echo "== the serial console"
vm_console_text | grep -E 'facecv-firstboot:|Started facecv' | grep -v ' token ' || true
echo "== GET /health without the token: $code"
echo "== over ssh (the run's key, from the FAT partition's authorized_keys)"
vm_ssh 'set -x; systemctl status facecv --no-pager --lines=5; systemctl is-enabled facecv facecv-firstboot;
  hostnamectl hostname 2>/dev/null || hostname; cat /etc/facecv/device-id; cat /etc/machine-id;
  stat -c "%U:%G %a %n" /etc/facecv/facecv.toml; df -h / /boot/firmware; uname -r' 2>&1 \
  || fail "ssh into the VM failed"
vm_ssh systemctl is-active --quiet facecv || fail "facecv.service is not active"
# The first boot made the certificate and showed its fingerprint before the service started; the
# service must serve that one (it keeps what it finds in its state folder).
shown="$(vm_console_text | sed -n 's/.*facecv-firstboot: console .* certificate SHA-256 \([0-9A-F:]\{95\}\).*/\1/p' | head -1)"
[ -n "$shown" ] || fail "the first boot showed no certificate fingerprint on the console"
grep -q "\"fingerprint_sha256\":\"$shown\"" <<<"$body" \
  || fail "the console showed fingerprint $shown, /health says otherwise: $body"
echo "== the certificate's fingerprint, shown at first boot and in /health: $shown"
echo "== GET /health with the token"
echo "$body"

if [ "$v4l2" = 1 ]; then
  echo "== V4L2: the kernel's vivid test camera (video capture node only), captured by the service"
  api() { curl -fsS -m 30 -H "Authorization: Bearer $token" "$@"; }
  field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  vm_ssh 'modprobe vivid n_devs=1 node_types=0x1 && udevadm settle && ls -l /dev/video0' \
    || fail "could not load the vivid V4L2 test driver in the VM"
  api -X POST "http://127.0.0.1:$port/api/v1/cameras" -H 'Content-Type: application/json' \
    -d '{"camera_id": "vivid", "source": "0", "fps": 5, "autostart": true}' >/dev/null \
    || fail "POST /api/v1/cameras for /dev/video0 failed"
  status="" analysed=0
  for _ in $(seq 1 90); do
    status="$(api "http://127.0.0.1:$port/api/v1/cameras/vivid")" || fail "GET /api/v1/cameras/vivid failed"
    analysed="$(echo "$status" | field frames_analysed)"
    [ "$analysed" -ge 5 ] && break
    sleep 2
  done
  echo "$status"
  [ "$analysed" -ge 5 ] || fail "the vivid camera analysed $analysed frames in 180 s"
  api -X POST "http://127.0.0.1:$port/api/v1/cameras/vivid/stop" >/dev/null || fail "stopping the camera failed"
  # The stop's stream_stopped is committed as the camera's thread ends: poll for both events.
  show='
import json, sys
evs = [r["event"] for r in json.load(sys.stdin)["events"]]
kinds = [e["event_type"] for e in evs]
if "stream_started" in kinds and "stream_stopped" in kinds:
    for e in evs:
        if e["event_type"].startswith("stream_"):
            print(e["event_type"], json.dumps(e["data"]))
    sys.exit(0)
sys.exit(1)'
  for i in $(seq 1 15); do
    events="$(api "http://127.0.0.1:$port/api/v1/events?camera_id=vivid&limit=100")" || fail "GET /api/v1/events failed"
    echo "$events" | python3 -c "$show" && break
    [ "$i" -lt 15 ] || fail "no stream_started and stream_stopped events for the vivid camera in 30 s"
    sleep 2
  done
  vm_ssh 'journalctl -u facecv --no-pager -o cat | grep -i "v4l2\|vivid" | tail -n 5' || true
fi

vm_poweroff
say "ok: $((SECONDS - t0)) s from power-on to power-off"
