#!/usr/bin/env bash
# mmdebstrap customize hook of image/build.sh (runs outside the chroot, as root of the build):
# installs vigint and its board/ files, and the appliance settings of the SD-card image.
#
#   image/customize.sh ROOT VIGINT ROOT_LABEL BOOT_LABEL
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 ROOT VIGINT ROOT_LABEL BOOT_LABEL" >&2; exit 2; }
root=$1 vigint=$2 root_label=$3 boot_label=$4
repo=$(cd "$(dirname "$0")/.." && pwd)
files=$repo/image/files
in_root() { chroot "$root" "$@"; }

# vigint, as README.md "Running as a service (systemd)" installs it.
install -m 755 "$vigint" "$root/usr/bin/vigint"
install -m 644 "$repo/board/vigint.service" "$root/usr/lib/systemd/system/vigint.service"
install -D -m 644 "$repo/board/vigint.sysusers" "$root/usr/lib/sysusers.d/vigint.conf"
install -D -m 644 "$repo/board/vigint.tmpfiles" "$root/usr/lib/tmpfiles.d/vigint.conf"
install -D -m 644 "$repo/board/vigint-leds.rules" "$root/usr/lib/udev/rules.d/70-vigint-leds.rules"
in_root systemd-sysusers vigint.conf
in_root systemd-tmpfiles --create vigint.conf
install -m 640 "$files/vigint.json" "$root/etc/vigint/vigint.json"
in_root chown vigint:vigint /etc/vigint/vigint.json
in_root /usr/bin/vigint --check-config /etc/vigint/vigint.json

# The boot partition, mounted so that the vigint group may delete the first-boot file (FAT
# has no owners: the mount's gid/dmask/fmask say who may write; board/vigint.service).
gid=$(in_root getent group vigint | cut -d: -f3)
[ -n "$gid" ] || { echo "customize: no vigint group" >&2; exit 1; }
cat >"$root/etc/fstab" <<EOF
# SD-card image: no swap; noatime spares the card a write per read.
LABEL=$root_label / ext4 noatime,errors=remount-ro 0 1
# gid $gid is vigint's: the service removes /boot/firmware/vigint.json after applying it.
LABEL=$boot_label /boot/firmware vfat noatime,gid=$gid,dmask=0002,fmask=0113,flush 0 2
EOF

# Kernel command line (cmdline.txt): raspi-firmware writes it from this file on every
# kernel or initramfs update.
sed -i "s|^#\{0,1\}ROOTPART=.*|ROOTPART=LABEL=$root_label|" "$root/etc/default/raspi-firmware"
grep -qx "ROOTPART=LABEL=$root_label" "$root/etc/default/raspi-firmware" || {
  echo "customize: could not set ROOTPART in /etc/default/raspi-firmware" >&2
  exit 1
}
kver=$(basename "$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n1)")
# The hook acts only when told it is a package's configure step.
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$kver"
grep -q "root=LABEL=$root_label" "$root/boot/firmware/cmdline.txt" || {
  echo "customize: cmdline.txt has no root=LABEL=$root_label: $(cat "$root/boot/firmware/cmdline.txt")" >&2
  exit 1
}

# System settings.
echo vigint >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvigint\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
install -D -m 644 "$files/20-wired.network" "$root/etc/systemd/network/20-wired.network"
install -D -m 644 "$files/journald-volatile.conf" "$root/etc/systemd/journald.conf.d/50-vigint-image.conf"
install -D -m 755 "$files/growroot" "$root/usr/libexec/vigint-image/growroot"
install -m 644 "$files/vigint-growroot.service" "$root/usr/lib/systemd/system/vigint-growroot.service"
# /tmp in RAM (systemd's own unit, which Debian ships but does not enable).
cp "$root/usr/share/systemd/tmp.mount" "$root/etc/systemd/system/tmp.mount"
# No one answers systemd-firstboot's questions on an appliance.
ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
in_root systemctl enable vigint.service vigint-growroot.service tmp.mount \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
