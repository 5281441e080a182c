#!/usr/bin/env bash
# mmdebstrap customize hook of image/build.sh's first stage (runs outside the chroot, as root
# of the build): the appliance settings of the SD-card image that do not depend on vigint.
# The result is cached (image/build.sh): a change here makes a new base system.
#
#   image/customize-base.sh ROOT ROOT_LABEL BOOT_LABEL
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 ROOT ROOT_LABEL BOOT_LABEL" >&2; exit 2; }
root=$1 root_label=$2
files=$(cd "$(dirname "$0")" && pwd)/files
in_root() { chroot "$root" "$@"; }

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
in_root systemctl enable vigint-growroot.service tmp.mount \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
