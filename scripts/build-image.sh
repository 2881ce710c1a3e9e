#!/usr/bin/env bash
# Build a flashable Raspberry Pi (arm64) SD-card image from Debian's own packages and a release tarball:
#
#   scripts/build-image.sh [--tarball T] [--out dist/facecv-<ver>-rpi-arm64.img] [--size 2G]
#                          [--suite bookworm] [--xz] [--bootstrap-only]
#
# Root only (mmdebstrap, chroot, file ownership in the root filesystem). The layout is the one of
# Debian's raspi images (salsa.debian.org/raspi-team/image-specs), so their documentation applies:
#   partition 1  FAT32 "RASPIFIRM" -> /boot/firmware: the Pi's boot files (raspi-firmware), config.txt,
#                cmdline.txt (root=LABEL=RASPIROOT), the kernel, its initramfs and the DTBs
#   partition 2  ext4 "RASPIROOT"  -> /: Debian <suite> arm64, FaceCV under /opt/facecv (scripts/deploy.sh),
#                facecv.service enabled, grown to the card and given its secrets on first boot
#                (scripts/image-firstboot.sh, systemd/facecv-firstboot.service)
# Boots the Pi 3, 4, 400, Zero 2 W and CM3/CM4 (what Debian's raspi-firmware and linux-image-arm64
# support); not the Pi 5 (see README "Ship it"). The same image boots under qemu's `virt` machine:
# scripts/boot-image.sh.
#
# Partitions are built as files (mkfs.ext4 -d, mkfs.vfat -C + mcopy) and placed with dd, so no loop
# device or mount is needed. The Debian bootstrap is kept in build/image/ (git-ignored) keyed by the
# package list, so a rebuild with a new tarball takes minutes, not the bootstrap's quarter hour.
# --bootstrap-only makes (or checks) that cached bootstrap and stops: it needs no tarball, so it can
# run while scripts/build-release.sh cross-builds the one the image will hold.
# Env: MIRROR (default http://deb.debian.org/debian), SECURITY_MIRROR (http://security.debian.org/debian-security).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "build-image: $*" >&2; }
die() { say "$*"; exit 1; }

tarball="" out="" size="2G" suite="bookworm" xz=0 bootstrap_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --xz) xz=1; shift ;;
    --bootstrap-only) bootstrap_only=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument $1"; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || die "must run as root (it bootstraps Debian and sets file owners): sudo $0 $*"
mirror="${MIRROR:-http://deb.debian.org/debian}"
security="${SECURITY_MIRROR:-http://security.debian.org/debian-security}"
started=$SECONDS

# --- tools -----------------------------------------------------------------------------------------
need=()
for pair in mmdebstrap:mmdebstrap mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk mkfs.ext4:e2fsprogs \
  xz:xz-utils unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ "$(uname -m)" != aarch64 ] && [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] \
  && ! command -v qemu-aarch64-static >/dev/null; then
  need+=(qemu-user-static)
fi
# mmdebstrap asks arch-test whether this machine can run arm64 programs before a foreign bootstrap,
# and stops ("install arch-test for foreign architecture support") when it is missing.
if [ "$(uname -m)" != aarch64 ] && ! command -v arch-test >/dev/null; then
  need+=(arch-test)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || die "could not install ${need[*]} with apt-get"
fi

# --- running arm64 programs (the packages' maintainer scripts) on this machine ---------------------
if [ "$(uname -m)" != aarch64 ]; then
  binfmt=/proc/sys/fs/binfmt_misc
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
    || die "cannot mount $binfmt: arm64 programs cannot run here (a container without binfmt_misc?)"
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || die "no $conf: install qemu-user-static (bookworm-backports has 10.x)"
    # The F flag (in Debian's conf) opens the interpreter now, so it works inside the chroot too.
    cat "$conf" >"$binfmt/register" || die "could not register the aarch64 binfmt handler"
    say "registered the aarch64 binfmt handler"
  fi
  grep -qx enabled "$binfmt/qemu-aarch64" || echo 1 >"$binfmt/qemu-aarch64"
fi

# --- inputs ----------------------------------------------------------------------------------------
if [ "$bootstrap_only" = 0 ]; then
  tarball="${tarball:-$(ls -t dist/facecv-*-aarch64.tar.gz 2>/dev/null | head -1)}"
  [ -n "$tarball" ] && [ -f "$tarball" ] || die "no aarch64 tarball: scripts/build-release.sh aarch64 (or --tarball)"
  top="$(tar -tzf "$tarball" | sed -n 1p)"; top="${top%%/*}"
  version="${top#facecv-}"
  [ "$(tar -xzOf "$tarball" "$top/ARCH" 2>/dev/null)" = aarch64 ] || die "$tarball is not an aarch64 release"
  out="${out:-dist/facecv-$version-rpi-arm64.img}"
  size_b="$(numfmt --from=iec "$size")" || die "bad --size $size (e.g. 2G, 1536M)"
  mkdir -p "$(dirname "$out")"
fi

work="build/image"
mkdir -p "$work"

# --- the Debian bootstrap (cached by its inputs) ---------------------------------------------------
# Lean: systemd-networkd (part of systemd) does DHCP, resolved does DNS; no X, no docs, no man pages.
packages=(
  linux-image-arm64 initramfs-tools raspi-firmware firmware-brcm80211 wpasupplicant
  systemd-sysv udev dbus kmod systemd-timesyncd systemd-resolved iproute2 netbase
  ca-certificates openssh-server avahi-daemon curl
  cloud-guest-utils fdisk e2fsprogs dosfstools
)
sources=(
  "deb $mirror $suite main contrib non-free-firmware"
  "deb $mirror $suite-updates main contrib non-free-firmware"
  "deb $security $suite-security main contrib non-free-firmware"
)
dpkgopts=(
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/info/*'
)
key="$(printf '%s\n' "$suite" "${packages[@]}" "${sources[@]}" "${dpkgopts[@]}" | sha256sum | cut -c1-12)"
base="$work/base-$suite-arm64-$key.tar"
if [ -f "$base" ]; then
  say "reusing the bootstrap $base"
else
  say "bootstrapping Debian $suite arm64 into $base (under emulation: 15-30 minutes)"
  t0=$SECONDS
  mmdebstrap --mode=root --format=tar --arch=arm64 --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    "${dpkgopts[@]/#/--dpkgopt=}" --aptopt='Acquire::Languages "none"' \
    "$suite" "$base.tmp" "${sources[@]}"
  mv "$base.tmp" "$base"
  say "bootstrap took $((SECONDS - t0)) s"
fi
[ "$bootstrap_only" = 0 ] || { say "bootstrap ready: $base"; exit 0; }

# --- the root filesystem ---------------------------------------------------------------------------
rootfs="$work/rootfs"
rm -rf "$rootfs" "$work/firmware"
mkdir -p "$rootfs"
tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base"

# A command inside the root filesystem, with /proc, /sys and /dev mounted in a private mount
# namespace: they vanish with it, so an interrupted build leaves no mount behind.
in_root() {
  unshare --mount --propagation private -- sh -euc '
    r="$1"; shift
    mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; mount --rbind /dev "$r/dev"
    exec chroot "$r" "$@"' in_root "$rootfs" "$@"
}

# Boot files: raspi-firmware's hooks write config.txt and cmdline.txt from this file.
sed -i 's|^#\{0,1\}ROOTPART=.*|ROOTPART=LABEL=RASPIROOT|' "$rootfs/etc/default/raspi-firmware"
grep -qx 'ROOTPART=LABEL=RASPIROOT' "$rootfs/etc/default/raspi-firmware" \
  || die "raspi-firmware's defaults have no ROOTPART line to set"
# The same initramfs boots qemu's virt machine (scripts/boot-image.sh): its disk and NIC are virtio.
printf '%s\n' '# scripts/build-image.sh: so the image also boots under qemu -M virt' \
  virtio_pci virtio_blk virtio_net >>"$rootfs/etc/initramfs-tools/modules"

# The FAT partition is world-unreadable on the board: /boot/firmware/facecv.txt holds the API token.
cat >"$rootfs/etc/fstab" <<'FSTAB'
# Debian raspi image layout (scripts/build-image.sh)
LABEL=RASPIROOT  /               ext4  rw,errors=remount-ro  0 1
LABEL=RASPIFIRM  /boot/firmware  vfat  rw,umask=0077         0 2
FSTAB
echo facecv >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tfacecv\n' >"$rootfs/etc/hosts"

# DHCP on every wired and wireless interface (Wi-Fi credentials: README "Ship it").
for kind in wired:'e*' wireless:'wl*'; do
  printf '[Match]\nName=%s\n\n[Network]\nDHCP=yes\nMulticastDNS=no\n' "${kind#*:}" \
    >"$rootfs/etc/systemd/network/50-${kind%%:*}.network"
done

# ssh: keys only. Host keys and the machine id are made per card on first boot, not baked in.
install -d "$rootfs/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  >"$rootfs/etc/ssh/sshd_config.d/facecv.conf"
rm -f "$rootfs"/etc/ssh/ssh_host_*
# An empty machine-id: systemd generates one on the first boot and writes it (each card its own).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"

# FaceCV, exactly as scripts/deploy.sh installs it on a board, but without a token; the health
# check runs the arm64 binary's check-config on the installed config (under emulation here).
scripts/deploy.sh --local "$rootfs" --no-token \
  --health-cmd 'chroot "$FACECV_ROOT" /opt/facecv/current/bin/facecv check-config --config /etc/facecv/facecv.toml' \
  "$tarball" >&2
install -m 0755 scripts/image-firstboot.sh "$rootfs/usr/local/sbin/facecv-firstboot"
install -m 0644 systemd/facecv-firstboot.service "$rootfs/etc/systemd/system/facecv-firstboot.service"
in_root systemd-sysusers
in_root systemd-tmpfiles --create facecv.conf
services=(facecv.service facecv-firstboot.service systemd-networkd.service systemd-resolved.service
  systemd-timesyncd.service ssh.service avahi-daemon.service)
in_root systemctl enable --quiet "${services[@]}"
for s in "${services[@]}"; do
  [ -e "$rootfs/etc/systemd/system/multi-user.target.wants/$s" ] \
    || [ -n "$(find "$rootfs/etc/systemd/system" -name "$s" -path '*.wants/*' | head -1)" ] \
    || die "$s is not enabled in the image"
done
gid="$(awk -F: '$1 == "facecv" { print $3 }' "$rootfs/etc/group")"
[ "$(stat -c '%u:%g %a' "$rootfs/etc/facecv/facecv.toml")" = "0:$gid 640" ] \
  || die "/etc/facecv/facecv.toml is $(stat -c '%u:%g %a' "$rootfs/etc/facecv/facecv.toml"), want root:facecv (0:$gid) 640"

# The initramfs (now with virtio) and, through raspi-firmware's hooks, /boot/firmware.
# The bootstrap's initramfs (MODULES=most) normally has them already; rebuilding it under emulation
# takes over ten minutes here, so only when it does not. The modules file keeps them in later ones.
kver="$(basename "$(ls -d "$rootfs"/lib/modules/* | sort -V | tail -1)")"
has_virtio() {
  local list m
  list="$(in_root lsinitramfs "/boot/initrd.img-$kver")"
  for m in virtio_pci virtio_blk virtio_net; do grep -q "/$m.ko" <<<"$list" || return 1; done
}
if ! has_virtio; then
  say "rebuilding the initramfs with virtio (under emulation: ten minutes or more)"
  in_root update-initramfs -u -k "$kver" >&2
fi
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$kver" >&2
for f in config.txt cmdline.txt "vmlinuz-$kver" "initrd.img-$kver" bcm2837-rpi-3-b.dtb bcm2711-rpi-4-b.dtb \
  bcm2837-rpi-zero-2-w.dtb start4.elf fixup4.dat bootcode.bin; do
  [ -s "$rootfs/boot/firmware/$f" ] || die "raspi-firmware did not put $f in /boot/firmware"
done
grep -q 'root=LABEL=RASPIROOT' "$rootfs/boot/firmware/cmdline.txt" || die "cmdline.txt: $(cat "$rootfs/boot/firmware/cmdline.txt")"
grep -qx 'arm_64bit=1' "$rootfs/boot/firmware/config.txt" || die "config.txt has no arm_64bit=1"
has_virtio || die "the initramfs lacks virtio_pci, virtio_blk or virtio_net"
cmp -s "$rootfs/boot/initrd.img-$kver" "$rootfs/boot/firmware/initrd.img-$kver" \
  || die "/boot/firmware has another initramfs than /boot"

# What a board never needs: apt's package lists (apt update fetches them), logs of the build.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
  "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*

# --- partitions and image, without loop devices ----------------------------------------------------
# MBR: 4 MiB of alignment, 256 MiB FAT32 (kernel, initramfs, firmware, DTBs), ext4 to the end.
firm_start_mib=4 firm_mib=256
root_start_mib=$((firm_start_mib + firm_mib))
size_mib=$((size_b / 1048576))
root_mib=$((size_mib - root_start_mib))
mv "$rootfs/boot/firmware" "$work/firmware"
mkdir -m 0755 "$rootfs/boot/firmware"
used_mib="$(du -sxm "$rootfs" | cut -f1)"
firm_used_mib="$(du -sm "$work/firmware" | cut -f1)"
[ "$firm_used_mib" -lt $((firm_mib - 16)) ] || die "the boot files (${firm_used_mib} MiB) do not fit the ${firm_mib} MiB FAT partition"
[ "$root_mib" -ge $((used_mib * 5 / 4 + 64)) ] \
  || die "--size $size is too small: the root filesystem holds ${used_mib} MiB; try $(((root_start_mib + used_mib * 5 / 4 + 64 + 255) / 256 * 256))M"

rm -f "$work/firm.img" "$work/root.img"
mkfs.vfat -C -F 32 -n RASPIFIRM "$work/firm.img" $((firm_mib * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$work/firm.img" "$work/firmware"/* ::/
truncate -s "${root_mib}M" "$work/root.img"
mkfs.ext4 -q -L RASPIROOT -d "$rootfs" "$work/root.img"

rm -f "$out" "$out.tmp"
truncate -s "${size_mib}M" "$out.tmp"
sfdisk --quiet "$out.tmp" <<SFDISK
label: dos
unit: sectors
start=$((firm_start_mib * 2048)), size=$((firm_mib * 2048)), type=c, bootable
start=$((root_start_mib * 2048)), type=83
SFDISK
dd if="$work/firm.img" of="$out.tmp" bs=1M seek="$firm_start_mib" conv=notrunc,sparse status=none
dd if="$work/root.img" of="$out.tmp" bs=1M seek="$root_start_mib" conv=notrunc,sparse status=none
mv "$out.tmp" "$out"
rm -rf "$work/firm.img" "$work/root.img" "$work/firmware" "$rootfs"
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
if [ "$xz" = 1 ]; then
  say "compressing $out.xz"
  xz -T0 -6 -k -f "$out"
fi

human() { numfmt --to=iec --suffix=B "$1"; }
say "$out: $(human "$(stat -c %s "$out")") ($(human $(($(stat -c %b "$out") * 512))) on disk, sparse)"
say "  root filesystem ${used_mib} MiB used of ${root_mib} MiB; grows to the card on first boot"
[ "$xz" = 0 ] || say "  $out.xz: $(human "$(stat -c %s "$out.xz")")"
say "  kernel $kver, FaceCV $version, Debian $suite"
say "  sha256 $(cut -d' ' -f1 "$out.sha256")"
say "built in $((SECONDS - started)) s; boot test: scripts/boot-image.sh $out"
