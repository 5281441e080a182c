#!/usr/bin/env bash
# Builds the initramfs (an uncompressed newc cpio) of a vivid test guest.
#
#   tests/vivid/mkinitramfs.sh ARCH VIGINT OUT.cpio [CONFIG.json]
#
# ARCH is x86_64 or aarch64; VIGINT the vigint binary for it (a stripped copy goes in);
# CONFIG becomes /etc/vigint.json (without it, tests/vivid/init writes its default: paths
# `cam` from /dev/video0 and `cam2` from /dev/video1). Contents: busybox (static), v4l2-ctl,
# vigint, their shared libraries and loader, the modules from prepare.sh in load order, /init.
# Libraries come from the host's multiarch directories: /lib/x86_64-linux-gnu, or for
# aarch64 /lib/aarch64-linux-gnu (libc6:arm64, libstdc++6:arm64, libv4l-0:arm64, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vivid/lib.sh
. "$here/lib.sh"

{ [ $# -ge 3 ] && [ $# -le 4 ]; } || vivid_die "usage: $0 x86_64|aarch64 VIGINT OUT.cpio [CONFIG.json]"
vivid_arch "$1"
vigint=$2 out=$3 config=${4:-}
[ -f "$vigint" ] || vivid_die "no vigint binary at $vigint"
for tool in readelf cpio; do
  command -v "$tool" >/dev/null || vivid_die "\`$tool\` is missing: run scripts/install-deps.sh vivid"
done

# boot.sh has prepared already and says where.
prepared=${VIVID_PREPARED:-$("$here/prepare.sh" "$1")}
[ -f "$prepared/modules/order" ] || vivid_die "not a prepared directory (from prepare.sh's stdout): '$prepared'"

machine=$(readelf -h "$vigint" | sed -n 's/^ *Machine: *//p')
case "$DARCH:$machine" in
  amd64:*X86-64* | arm64:AArch64) ;;
  *) vivid_die "$vigint is built for '$machine', not $1" ;;
esac

case "$DARCH" in
  amd64)
    busybox=/bin/busybox
    v4l2ctl=$(command -v v4l2-ctl) || vivid_die "v4l2-ctl is missing: run scripts/install-deps.sh vivid"
    libdirs=(/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu)
    ;;
  arm64)
    busybox=$prepared/userland/bin/busybox
    v4l2ctl=$prepared/userland/usr/bin/v4l2-ctl
    libdirs=(/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
    ;;
esac
[ -x "$busybox" ] || vivid_die "no busybox at $busybox: run scripts/install-deps.sh vivid"
readelf -l "$busybox" | grep -q 'program interpreter' && vivid_die "$busybox is not static (busybox-static)"

root=$(mktemp -d "${TMPDIR:-/tmp}/vigint-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,etc,proc,sys,dev,tmp,run,lib/modules,"lib/$TRIPLET"}

cp "$busybox" "$root/bin/busybox"
cp "$v4l2ctl" "$root/usr/bin/v4l2-ctl"
if command -v "$STRIP" >/dev/null; then
  "$STRIP" -o "$root/usr/bin/vigint" "$vigint"
else
  vivid_note "no $STRIP: the guest gets the unstripped binary (slower to unpack)"
  cp "$vigint" "$root/usr/bin/vigint"
fi
chmod 755 "$root/usr/bin/vigint"

# Copies the shared libraries a program needs (transitively) and its loader.
declare -A copied=()
copy_libs() {
  local elf=$1 lib dir found interp
  interp=$(readelf -l "$elf" | sed -n 's/.*program interpreter: \(.*\)\]$/\1/p')
  if [ -n "$interp" ] && [ -z "${copied[$interp]:-}" ]; then
    [ "$interp" = "$LOADER" ] || vivid_note "$elf asks for loader $interp"
    [ -e "$interp" ] || vivid_die "no $interp on this host (libc6:$DARCH): run scripts/install-deps.sh vivid"
    mkdir -p "$root$(dirname "$interp")"
    cp -L "$interp" "$root$interp"
    copied[$interp]=1
  fi
  for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
    [ -n "${copied[$lib]:-}" ] && continue
    found=""
    for dir in "${libdirs[@]}"; do
      [ -e "$dir/$lib" ] && found=$dir/$lib && break
    done
    [ -n "$found" ] || vivid_die "$lib (needed by $elf) is not in ${libdirs[*]}: run scripts/install-deps.sh vivid"
    cp -L "$found" "$root/lib/$TRIPLET/$lib"
    copied[$lib]=1
    copy_libs "$found"
  done
}
copy_libs "$root/usr/bin/v4l2-ctl"
copy_libs "$root/usr/bin/vigint"

while read -r m; do cp "$prepared/modules/$m" "$root/lib/modules/"; done <"$prepared/modules/order"
cp "$prepared/modules/order" "$root/lib/modules/order"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
[ -z "$config" ] || cp "$config" "$root/etc/vigint.json"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
vivid_note "initramfs $out: $(($(stat -c %s "$out") / 1024)) KiB ($(cat "$prepared/kver"))"
