#!/bin/sh
# First boot of a card flashed with the SD image (scripts/build-image.sh installs this as
# /usr/local/sbin/facecv-firstboot, run once by systemd/facecv-firstboot.service):
#   - grow the root partition and its filesystem to the card (the image is only --size big)
#   - a device id and the hostname facecv-<first 6 hex of it>, so avahi announces facecv-XXXXXX.local
#   - fresh ssh host keys; /boot/firmware/authorized_keys (if present) becomes root's
#   - /boot/firmware/wpa_supplicant.conf (if present) configures Wi-Fi on wlan0 (the Zero 2 W has no
#     Ethernet)
#   - the API token in /etc/facecv/facecv.toml
#   - the HTTPS certificate (self-signed, for this card's new hostname), made now as the service
#     would make it, so that its fingerprint can be shown before the service ever started
#   - the URLs, token and fingerprint on the console, in the journal and in /boot/firmware/facecv.txt
# Every card flashed from one image would otherwise share these secrets, so none is in the image.
# Each step keeps what an earlier, interrupted run made; the marker is written last.
#
# The token is also written to the FAT partition so that an installer without a screen can read it
# from the card in any laptop. The trade-off: whoever holds the card can read it, as they could read
# the ext4 partition anyway; delete /boot/firmware/facecv.txt once it is noted (README "Ship it").
set -eu

conf=/etc/facecv/facecv.toml
firm=/boot/firmware
marker=/etc/facecv/firstboot.done
say() { echo "facecv-firstboot: $*"; }

grow_root() {
  src="$(findmnt -no SOURCE /)"
  part="$(basename "$src")"
  [ -e "/sys/class/block/$part/partition" ] || { say "/ is on $src, not a partition: not grown"; return 0; }
  disk="/dev/$(lsblk -no PKNAME "$src")"
  num="$(cat "/sys/class/block/$part/partition")"
  # growpart exits 1 with NOCHANGE when the partition already fills the disk.
  if out="$(growpart "$disk" "$num" 2>&1)"; then
    say "grew $src: $out"
  elif echo "$out" | grep -q NOCHANGE; then
    say "$src already fills $disk"
  else
    say "growpart $disk $num failed: $out"
    return 1
  fi
  resize2fs "$src" >/dev/null 2>&1 || { say "resize2fs $src failed"; return 1; }
  say "/ is $(df -h --output=size / | tail -1 | tr -d ' ')"
}

device_id() {
  if [ ! -s /etc/facecv/device-id ]; then
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/etc/facecv/device-id.new
    echo >>/etc/facecv/device-id.new
    mv /etc/facecv/device-id.new /etc/facecv/device-id
  fi
  id="$(cat /etc/facecv/device-id)"
  host="facecv-$(echo "$id" | cut -c1-6)"
  echo "$host" >/etc/hostname
  sed -i "/^127\.0\.1\.1[[:space:]]/d" /etc/hosts
  echo "127.0.1.1	$host" >>/etc/hosts
  hostname "$host"
}

ssh_setup() {
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -A >/dev/null
  if [ -s "$firm/authorized_keys" ]; then
    install -d -m 0700 /root/.ssh
    install -m 0600 "$firm/authorized_keys" /root/.ssh/authorized_keys
    say "root's ssh keys taken from $firm/authorized_keys"
  fi
}

wifi_setup() {
  [ -s "$firm/wpa_supplicant.conf" ] || return 0
  install -m 0600 "$firm/wpa_supplicant.conf" /etc/wpa_supplicant/wpa_supplicant-wlan0.conf
  systemctl enable wpa_supplicant@wlan0.service
  systemctl start --no-block wpa_supplicant@wlan0.service
  say "Wi-Fi on wlan0 configured from $firm/wpa_supplicant.conf"
}

api_token() {
  if ! grep -q '^token *= *"' "$conf"; then
    token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    sed -e "s|^# *token = .*|token = \"$token\"|" "$conf" >"$conf.new"
    grep -q "^token = \"$token\"" "$conf.new" || { say "no '# token =' line in $conf to fill in"; return 1; }
    chown root:facecv "$conf.new"
    chmod 0640 "$conf.new"
    mv "$conf.new" "$conf"
  fi
  sed -n 's/^token *= *"\(.*\)"/\1/p' "$conf" | head -1
}

# Made as the service's user in the service's state folder (StateDirectory=facecv, 0700), after
# the hostname is set, so the certificate names facecv-XXXXXX.local.
tls_fingerprint() {
  install -d -o facecv -g facecv -m 0700 /var/lib/facecv
  runuser -u facecv -- /opt/facecv/current/bin/facecv tls-fingerprint --create --config "$conf"
}

grow_root || say "the root filesystem keeps its size (not fatal)"
device_id
ssh_setup
wifi_setup || say "Wi-Fi setup failed (not fatal)"
token="$(api_token)"
url="http://$host.local:7000"
console="https://$host.local:7443"
if ! fingerprint="$(tls_fingerprint)"; then
  fingerprint="(not made: see journalctl -u facecv-firstboot; facecv tls-fingerprint on the board)"
fi

if mountpoint -q "$firm"; then
  cat >"$firm/facecv.txt.new" <<EOF
FaceCV Edge on $host (device id $id)

Console: $console   (or https://<the board's address>:7443)
         sign in with the token below. The certificate is self-signed: before accepting it,
         check that the browser shows this SHA-256 fingerprint:
         $fingerprint
API:     $url   (plain HTTP, for FaceCV's clients and scripts)
Token:   $token
  curl -H 'Authorization: Bearer $token' $url/health

ssh host keys:
$(for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done)

This file holds the API token: delete it once you have noted the token.
The token is in /etc/facecv/facecv.toml on the board.
EOF
  sync "$firm/facecv.txt.new" 2>/dev/null || true
  mv "$firm/facecv.txt.new" "$firm/facecv.txt"
fi
# The login prompt shows the URL; the token is on the card and in the journal (adm group).
mkdir -p /etc/issue.d
echo "FaceCV Edge: $console  (certificate SHA-256 $fingerprint; API token: $firm/facecv.txt on the card)" >/etc/issue.d/facecv.issue

say "device $id, hostname $host"
say "console $console certificate SHA-256 $fingerprint"
say "API $url token $token"
# /dev/console is the last console= of cmdline.txt (the serial port on a Pi): the screen gets it too.
if [ -c /dev/tty1 ]; then
  printf '\nFaceCV Edge console: %s\nCertificate SHA-256: %s\nAPI: %s  token: %s\n\n' \
    "$console" "$fingerprint" "$url" "$token" >/dev/tty1 2>/dev/null || true
fi
touch "$marker"
