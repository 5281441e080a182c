#!/usr/bin/env bash
# mmdebstrap customize hook of image/build.sh's second stage (runs outside the chroot, as root
# of the build): installs vigint and its board/ files on the cached base system, and the
# fstab entry of the boot partition, which needs the vigint group's id.
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

in_root systemctl enable vigint.service
