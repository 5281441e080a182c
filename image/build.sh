#!/usr/bin/env bash
# Builds the Vigint SD-card image for Raspberry Pi boards (arm64): Debian 12 from Debian's
# packages, Vigint installed as a service. No loop devices, no mounts.
#
#   image/build.sh [--vigint BIN] [--out DIR] [--xz] [--refresh] [--base-only]
#     --vigint BIN  the aarch64 vigint to install (default: $VIGINT_BIN, else
#                   `scripts/build-arm.sh --dist` is run and its binary used)
#     --out DIR     where vigint-arm64.img goes (default: target/image)
#     --xz          also write vigint-arm64.img.xz (what to publish; flash either)
#     --refresh     rebuild the cached base system even if it is recent (see below)
#     --base-only   only make sure the cached base system is there and recent (CI prepares
#                   it next to other work), no image
#
# Steps: mmdebstrap builds the root filesystem as a tarball in two stages: the Debian base
# system (arm64 maintainer scripts run under qemu-user through binfmt_misc;
# image/customize-base.sh sets up the appliance; cached), then image/customize.sh installs
# vigint on top. Then the FAT boot partition is made with mkfs.vfat + mcopy from the tarball's
# /boot/firmware, the ext4 root with `mkfs.ext4 -d`, and both are written into a partition
# table made by sfdisk on the image file.
#
# Cache: $VIGINT_IMAGE_CACHE (default ~/.cache/vigint-image): the base system's tarball and
# the downloaded .debs (a base rebuild downloads only the package lists and what changed).
# Mirror: $VIGINT_IMAGE_MIRROR (default http://deb.debian.org/debian; security updates from
# .../debian-security next to it).
# Needs: scripts/install-deps.sh image, and qemu-aarch64 registered in binfmt_misc (done
# here when run as root; see image/README.md).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

die() { echo "image: $*" >&2; exit 1; }
note() { echo "image: $*" >&2; }

vigint=${VIGINT_BIN:-}
out=target/image
xz=0
refresh=0
base_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --vigint) vigint=${2:-}; shift ;;
    --out) out=${2:-}; shift ;;
    --xz) xz=1 ;;
    --refresh) refresh=1 ;;
    --base-only) base_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown option $1 (--help)" ;;
  esac
  shift
done

cache=${VIGINT_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigint-image}
mirror=${VIGINT_IMAGE_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# Labels the boot loader's cmdline.txt and fstab use (those of Debian's own Pi images).
boot_label=RASPIFIRM
root_label=RASPIROOT
boot_mib=256
# The first partition starts at 4 MiB: SD cards erase in blocks of up to 4 MiB.
first_mib=4

PATH=$PATH:/usr/sbin:/sbin
for tool in mmdebstrap sfdisk mkfs.vfat mcopy mkfs.ext4 qemu-aarch64-static arch-test; do
  command -v "$tool" >/dev/null || die "\`$tool\` is missing: run scripts/install-deps.sh image"
done
[ "$xz" = 0 ] || command -v xz >/dev/null || die "\`xz\` is missing: run scripts/install-deps.sh image"

# arm64 programs (the packages' maintainer scripts) must run here: binfmt_misc + qemu-user.
# The registration is the machine's, not this build's: as root it is made here, else say how.
if ! arch-test arm64 >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    note "registering qemu-aarch64 with binfmt_misc"
    [ -e /proc/sys/fs/binfmt_misc/register ] ||
      mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
    /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
    arch-test arm64 >/dev/null || die "arm64 programs still do not run after registering qemu-aarch64"
  else
    die "arm64 programs do not run here; as root: mount binfmt_misc -t binfmt_misc" \
      "/proc/sys/fs/binfmt_misc; /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf"
  fi
fi

if [ "$base_only" = 0 ]; then
  if [ -z "$vigint" ]; then
    note "no --vigint: building it (scripts/build-arm.sh --dist)"
    scripts/build-arm.sh --dist
    vigint=${CARGO_TARGET_DIR:-target}/aarch64-debian/aarch64-unknown-linux-gnu/dist/vigint
  fi
  [ -f "$vigint" ] || die "no vigint binary at $vigint"
  vigint=$(cd "$(dirname "$vigint")" && pwd)/$(basename "$vigint")
  file -b "$vigint" | grep -q 'ARM aarch64' || die "$vigint is not an aarch64 program: $(file -b "$vigint")"
fi

mkdir -p "$cache/debs"
t0=$SECONDS

# Root's ownership must survive unpacking and mkfs.ext4 -d: as root directly, otherwise in a
# user namespace where the build user is root (and its subordinate ids the rest).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else unshare --user --map-root-user --map-auto -- "$@"; fi
}

packages=(
  systemd systemd-sysv systemd-timesyncd systemd-resolved udev dbus kmod iproute2
  # Debian's arm64 kernel (Pi 3, 4, Zero 2 W device trees), its initramfs, the Pi's boot
  # firmware (non-free-firmware), which copies kernel, initramfs and device trees to
  # /boot/firmware on every kernel update.
  linux-image-arm64 initramfs-tools zstd raspi-firmware
  # First-boot root resize (growpart) and the tools fstab's fsck and resize2fs need.
  cloud-guest-utils fdisk e2fsprogs dosfstools
  # HTTPS for apt, so the board can be updated in place.
  ca-certificates
)
components="main non-free-firmware"
sources=(
  "deb $mirror $suite $components"
  "deb $mirror $suite-updates $components"
  "deb ${mirror%/debian}/debian-security $suite-security $components"
)
# Stage 1, the base system: Debian's packages installed (the slow part: every maintainer
# script runs under qemu-user, mkinitramfs alone takes minutes). Kept in the cache as a
# tarball named by what went into it, and reused for VIGINT_IMAGE_BASE_DAYS days (default 7)
# so a rebuild for a new vigint takes the second stage only; --refresh makes it anew (security
# updates).
dpkgopts=(
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
)
# The key covers what goes into the base; vigint's own files (vigint.json*) come later.
base_inputs=("$repo/image/customize-base.sh")
for f in "$repo"/image/files/*; do
  case "${f##*/}" in vigint.json*) ;; *) base_inputs+=("$f") ;; esac
done
key=$(printf '%s\n' "$suite" "${packages[@]}" "${sources[@]}" "${dpkgopts[@]}" |
  cat - "${base_inputs[@]}" | sha256sum | cut -c1-16)
base=$cache/base-arm64-$key.tar
max_days=${VIGINT_IMAGE_BASE_DAYS:-7}
if [ "$refresh" = 0 ] && [ -f "$base" ] && [ -n "$(find "$base" -mtime "-$max_days")" ]; then
  note "reusing the base system $base (made $(date -r "$base" '+%F %R'); --refresh to remake it)"
else
  note "building the arm64 base system (mmdebstrap, $suite)"
  opts=()
  for o in "${dpkgopts[@]}"; do opts+=(--dpkgopt="$o"); done
  # shellcheck disable=SC2016
  mmdebstrap --architectures=arm64 --variant=minbase \
    --include="$(
      IFS=,
      echo "${packages[*]}"
    )" \
    --aptopt='APT::Install-Recommends "false"' "${opts[@]}" \
    --skip=essential/unlink \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
    --essential-hook="upload $(printf %q "$repo/image/files/initramfs.conf") /etc/initramfs-tools/conf.d/vigint-image.conf" \
    --essential-hook="upload $(printf %q "$repo/image/files/initramfs-modules") /usr/share/initramfs-tools/modules.d/vigint-image" \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $(printf %q "$cache/debs") /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $(printf %q "$cache/debs")" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    --customize-hook="$(printf %q "$repo/image/customize-base.sh") \"\$1\" $(printf '%q ' "$root_label" "$boot_label")" \
    --format=tar "$suite" "$base.tmp" "${sources[@]}"
  mv "$base.tmp" "$base"
  # Older base systems and .debs of replaced versions are no longer needed.
  find "$cache" -maxdepth 1 -name 'base-arm64-*.tar' ! -path "$base" -delete
  find "$cache/debs" -name '*.deb' -mtime +30 -delete
fi
t_base=$((SECONDS - t0))
if [ "$base_only" = 1 ]; then
  note "base system ready in $t_base s: $base"
  exit 0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work"

# Stage 2: vigint and its settings on top of the base system. The base is unpacked without
# its device nodes: a user namespace (unprivileged build) may not make them, and mmdebstrap
# provides /dev itself. The image's /dev stays empty too: the kernel mounts devtmpfs there.
note "installing vigint"
# shellcheck disable=SC2016
mmdebstrap --architectures=arm64 --variant=custom --skip=update --skip=cleanup/apt \
  --setup-hook="tar -C \"\$1\" -x -p --numeric-owner --xattrs --xattrs-include='*' --exclude='./dev/*' -f $(printf %q "$base")" \
  --customize-hook="$(printf %q "$repo/image/customize.sh") \"\$1\" $(printf '%q ' "$vigint" "$root_label" "$boot_label")" \
  --format=tar "$suite" "$work/rootfs.tar"
t_rootfs=$((SECONDS - t0))

note "making the partitions"
# Unpack, move /boot/firmware's files out (they go on the FAT partition; in the root it is
# the mount point), make the ext4 file system from the tree.
cat >"$work/mkroot.sh" <<'EOS'
set -eu
work=$1 label=$2
mkdir "$work/root" "$work/firmware"
tar -x -p --numeric-owner --xattrs --xattrs-include='*' --exclude='./dev/*' -f "$work/rootfs.tar" -C "$work/root"
find "$work/root/boot/firmware" -mindepth 1 -maxdepth 1 -exec mv -t "$work/firmware" {} +
mb=$(du -s --block-size=1M "$work/root" | cut -f1)
# A third more than the files, plus 128 MiB: room for a kernel update before the first
# boot grows the partition to the card.
size=$((mb * 4 / 3 + 128))
mkfs.ext4 -q -L "$label" -m 1 -d "$work/root" "$work/root.ext4" "${size}M"
chmod -R u+rwX "$work/firmware"
EOS
as_root sh "$work/mkroot.sh" "$work" "$root_label"
[ -f "$work/firmware/config.txt" ] || die "raspi-firmware left no config.txt in /boot/firmware"

fat=$work/boot.vfat
rm -f "$fat"
mkfs.vfat -F 32 -n "$boot_label" -C "$fat" $((boot_mib * 1024)) >/dev/null
# shellcheck disable=SC2035
(cd "$work/firmware" && mcopy -s -p -m -i "$fat" * ::)
mcopy -i "$fat" "$repo/image/files/vigint.json.example" ::vigint.json.example

img=$out/vigint-arm64.img
root_bytes=$(stat -c %s "$work/root.ext4")
root_sectors=$((root_bytes / 512))
boot_start=$((first_mib * 2048))
root_start=$((boot_start + boot_mib * 2048))
rm -f "$img"
truncate -s $(((root_start + root_sectors) * 512)) "$img"
sfdisk -q "$img" <<EOF
label: dos
unit: sectors
start=$boot_start, size=$((boot_mib * 2048)), type=c, bootable
start=$root_start, size=$root_sectors, type=83
EOF
dd if="$fat" of="$img" bs=1M seek="$first_mib" conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img" bs=512 seek="$root_start" conv=notrunc,sparse status=none
as_root rm -rf "$work/root"
# The rest of the work directory (the 700 MB root tarball among it) is not needed again; after
# a failure it stays for a look and the next build removes it.
rm -rf "$work"
t_total=$((SECONDS - t0))

if [ "$xz" = 1 ]; then
  note "compressing"
  xz -T0 -6 -k -f "$img"
fi
note "base system $t_base s, with vigint $t_rootfs s, image $t_total s in all"
note "$img: $(stat -c %s "$img") bytes ($(du -k "$img" | cut -f1) KiB used)"
[ "$xz" = 0 ] || note "$img.xz: $(stat -c %s "$img.xz") bytes"
