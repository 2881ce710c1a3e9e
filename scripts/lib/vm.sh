# Booting an SD image (scripts/build-image.sh) under qemu's `virt` machine: what the boot test
# (scripts/boot-image.sh) and the power-cut test (scripts/power-cut.sh) share. Sourced, never run;
# it sets no shell options. The caller sets `prog` (its name, for messages) and `vm_dir` (a work
# folder it owns and removes), then calls, in order:
#
#   vm_tools                      qemu-system-aarch64 and friends, installed when root and missing
#   vm_prepare IMG GROW           the image's kernel, initramfs and cmdline; a qcow2 overlay GROW
#                                 bigger than IMG (IMG is never written) with an ssh key made for
#                                 this run in its FAT partition as authorized_keys
#   vm_boot PORT CACHE CONSOLE    powers on: API on 127.0.0.1:PORT, ssh on PORT+1, the serial
#                                 console to the file CONSOLE; CACHE is qemu's drive cache mode
#   vm_wait_api TIMEOUT           the first boot's token (from the console, unless vm_token is set)
#                                 and GET /health with it
#   vm_ssh CMD...                 a command in the VM as root
#   vm_kill / vm_poweroff         pull the plug (SIGKILL) / a clean shutdown
#
# Functions return non-zero with the reason in `vm_error`; the caller decides how to fail
# (vm_console_tail shows what the VM said; vm_fail says why and shows it). On exit the caller's
# cleanup calls vm_kill, then vm_remove_dir (kept when the caller set keep=1).
#
# The network is qemu's user-mode stack with `restrict=on`: the guest gets DHCP and the two
# forwarded ports from 127.0.0.1 and nothing else, no route to the host or anywhere beyond it.

vm_pid="" vm_token="" vm_error="" vm_port="" vm_console=""

vm_tools() {
  local need=() pair
  for pair in qemu-system-aarch64:qemu-system-arm qemu-img:qemu-utils qemu-io:qemu-utils mcopy:mtools \
    sfdisk:fdisk curl:curl ssh:openssh-client ssh-keygen:openssh-client; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    vm_error="missing: ${need[*]} (sudo apt-get install ${need[*]})"
    return 1
  fi
  echo "$prog: installing ${need[*]}" >&2
  apt-get update -qq
  # qemu-system-arm must match an installed qemu-utils, which may come from backports. Without
  # --no-remove, apt "solves" a mismatch by removing the installed qemu-utils (qemu-img) that the
  # scripts need as much, and reports success.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends \
      -t "$(. /etc/os-release && echo "$VERSION_CODENAME")-backports" "${need[@]}" >/dev/null \
    || { vm_error="could not install ${need[*]} without removing a package (a qemu-utils of another version? install the matching qemu-system-arm by hand)"; return 1; }
}

# Sets vm_kernel, vm_initrd, vm_cmdline, vm_key and vm_disk (all in vm_dir).
vm_prepare() {
  local img="$1" grow="$2" start sectors kernel kver table
  table="$(sfdisk -d "$img")" || { vm_error="cannot read the partition table of $img"; return 1; }
  start="$(sed -n 's/^[^:]*1 : start= *\([0-9]*\), *size= *\([0-9]*\).*/\1/p' <<<"$table")"
  sectors="$(sed -n 's/^[^:]*1 : start= *\([0-9]*\), *size= *\([0-9]*\).*/\2/p' <<<"$table")"
  if [ -z "$start" ] || [ -z "$sectors" ]; then
    vm_error="$img has no partition 1 (not an image from build-image.sh?)"
    return 1
  fi
  dd if="$img" of="$vm_dir/firm.img" bs=512 skip="$start" count="$sectors" status=none
  export MTOOLS_SKIP_CHECK=1
  kernel="$(mdir -b -i "$vm_dir/firm.img" ::/ | sed -n 's|^::/\(vmlinuz-.*\)|\1|p' | sort -V | tail -1)"
  [ -n "$kernel" ] || { vm_error="no vmlinuz-* in the image's FAT partition"; return 1; }
  kver="${kernel#vmlinuz-}"
  mcopy -i "$vm_dir/firm.img" "::/$kernel" "::/initrd.img-$kver" "::/cmdline.txt" "$vm_dir/" \
    || { vm_error="no initrd.img-$kver or cmdline.txt in the image's FAT partition"; return 1; }
  vm_kernel="$vm_dir/$kernel" vm_initrd="$vm_dir/initrd.img-$kver"
  # The image's own kernel arguments, with the console on the virt machine's PL011 UART.
  vm_cmdline="$(tr -d '\r\n' <"$vm_dir/cmdline.txt" | tr ' ' '\n' | grep -v '^console=' | grep -v '^$' | tr '\n' ' ')"
  vm_cmdline="${vm_cmdline}console=ttyAMA0"
  echo "$prog: kernel $kver, cmdline: $vm_cmdline" >&2

  # The overlay; the run's ssh key goes into its FAT partition (a copy of the image's, written back).
  vm_key="$vm_dir/key"
  ssh-keygen -q -t ed25519 -N '' -C "$prog" -f "$vm_key"
  mcopy -i "$vm_dir/firm.img" "$vm_key.pub" ::/authorized_keys
  vm_disk="$vm_dir/disk.qcow2"
  qemu-img create -q -f qcow2 -b "$(realpath "$img")" -F raw "$vm_disk" \
    "$(($(stat -c %s "$img") + $(numfmt --from=iec "$grow")))"
  qemu-io -f qcow2 -c "write -q -s $vm_dir/firm.img $((start * 512)) $((sectors * 512))" "$vm_disk" \
    || { vm_error="could not write the ssh key into the overlay"; return 1; }
  rm -f "$vm_dir/firm.img"
}

# Powers the VM on in the background (vm_pid). CACHE: `writeback` is qemu's default; `none` and
# `directsync` open the overlay with O_DIRECT, so the host's page cache holds nothing the guest
# wrote and a SIGKILL of qemu loses what a power cut loses.
vm_boot() {
  vm_port="$1" vm_console="$3"
  local cache="$2"
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -monitor none \
    -serial "file:$vm_console" \
    -kernel "$vm_kernel" -initrd "$vm_initrd" -append "$vm_cmdline" \
    -drive "if=none,id=disk,file=$vm_disk,format=qcow2,cache=$cache" -device virtio-blk-pci,drive=disk \
    -netdev "user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:$vm_port-:7000,hostfwd=tcp:127.0.0.1:$((vm_port + 1))-:22" \
    -device virtio-net-pci,netdev=net,romfile= \
    </dev/null >"$vm_dir/qemu.log" 2>&1 &
  vm_pid=$!
}

# The serial console as text: no carriage returns, no colour codes.
vm_console_text() {
  [ -f "$vm_console" ] || return 0
  tr -d '\r' <"$vm_console" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g'
}

vm_console_tail() {
  vm_console_text | tail -n "${1:-40}"
}

# Waits for /health with the token. Sets vm_token (read from the console: the first boot prints
# it; later boots keep it, so a caller sets vm_token before booting again) and vm_health (the body).
vm_wait_api() {
  local deadline=$((SECONDS + $1))
  vm_health=""
  while :; do
    if ! kill -0 "$vm_pid" 2>/dev/null; then
      vm_error="qemu exited: $(cat "$vm_dir/qemu.log")"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      vm_error="no /health within $1 s"
      return 1
    fi
    if [ -z "$vm_token" ]; then
      vm_token="$(vm_console_text | sed -n 's/.*facecv-firstboot: API .* token \([0-9a-f]\{64\}\).*/\1/p' | tail -1)"
    fi
    if [ -n "$vm_token" ] && vm_health="$(curl -fsS -m 5 -H "Authorization: Bearer $vm_token" \
      "http://127.0.0.1:$vm_port/health" 2>/dev/null)"; then
      return 0
    fi
    sleep 3
  done
}

vm_ssh() {
  ssh -q -i "$vm_key" -p "$((vm_port + 1))" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o BatchMode=yes root@127.0.0.1 "$@"
}

# Pulls the plug: SIGKILL to qemu, nothing of the guest runs after it.
vm_kill() {
  [ -n "$vm_pid" ] || return 0
  kill -KILL "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=""
}

# Says FAIL and why (through the caller's `say`), then the last 40 lines of the console, and exits 1.
vm_fail() {
  say "FAIL: $*"
  if [ -f "${vm_console:-/nonexistent}" ]; then
    say "console of the last boot (last 40 lines):"
    vm_console_tail 40 >&2
  fi
  exit 1
}

# Removes the work folder, or keeps it (and says where) when the caller set keep=1.
vm_remove_dir() {
  if [ "${keep:-0}" = 1 ]; then say "kept $vm_dir"; else rm -rf "$vm_dir"; fi
}

# A clean shutdown through systemd; qemu is stopped after 120 s if the guest does not power off.
vm_poweroff() {
  [ -n "$vm_pid" ] || return 0
  vm_ssh 'systemctl poweroff' >/dev/null 2>&1 || true
  local _
  for _ in $(seq 1 60); do kill -0 "$vm_pid" 2>/dev/null || break; sleep 2; done
  if kill -0 "$vm_pid" 2>/dev/null; then
    echo "$prog: the VM did not power off within 120 s: stopping qemu" >&2
    kill "$vm_pid" 2>/dev/null || true
  fi
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=""
}
