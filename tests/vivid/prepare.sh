#!/usr/bin/env bash
# Fetches and prepares what a vivid guest of one architecture boots: Debian's own kernel and
# the modules vivid, virtio-net and the virtio console need, in load order. Cached.
#
#   tests/vivid/prepare.sh x86_64|aarch64      prints the prepared directory on stdout
#
# Stdout is that one line and nothing else, whatever the cache holds (callers capture it);
# everything else goes to stderr. tests/vivid/check-cold-cache.sh checks it on an empty cache.
#
# The prepared directory holds `kernel` (x86_64: the uncompressed vmlinux, which QEMU boots
# through its PVH entry; aarch64: the uncompressed Image), `modules/*.ko` with `modules/order`
# (insmod order from the kernel's own dependency data, made with depmod), `kver`, and for
# aarch64 `userland/`: busybox-static and v4l-utils for arm64, unpacked from their .debs
# (the host has the amd64 ones installed and cannot install both).
#
# Kernel: the one Debian's `linux-image-<arch>` metapackage points at (6.1.0-N on Debian 12),
# or VIGINT_VIVID_KERNEL=6.1.0-N. Cache: VIGINT_VIVID_CACHE, default
# ${XDG_CACHE_HOME:-~/.cache}/vigint-vivid (about 65 MB of .debs and 10 MB prepared per
# architecture). Needs apt-get, dpkg-deb, depmod/modprobe (kmod), xz (scripts/install-deps.sh vivid).
set -euo pipefail
# From here on stdout is stderr: what apt-get download ("Get:1 http://..." on an empty cache),
# apt-get update, dpkg-deb, depmod... print must not reach the caller, who reads the prepared
# directory from stdout. Fd 3 is the real stdout, for the last line only.
exec 3>&1 >&2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vivid/lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || vivid_die "usage: $0 x86_64|aarch64"
vivid_arch "$1"
# depmod and modprobe live in /sbin, which is not on a normal user's PATH.
PATH=$PATH:/usr/sbin:/sbin
for tool in apt-get dpkg-deb depmod modprobe xz; do
  command -v "$tool" >/dev/null || vivid_die "\`$tool\` is missing: run scripts/install-deps.sh vivid"
done

# Modules the guest loads; modprobe --show-depends orders them with their dependencies.
# virtio_pci: amd64 has it as a module (arm64: built in, the name resolves to nothing extra).
want_modules=(vivid virtio_pci virtio_net virtio_console)

# The kernel ABI ("6.1.0-56-amd64") apt would install now, or empty when apt cannot say.
candidate_kver() {
  if [ -n "${VIGINT_VIVID_KERNEL:-}" ]; then
    echo "$VIGINT_VIVID_KERNEL-$DARCH"
    return
  fi
  vivid_apt_memo "depends-linux-image-$DARCH" apt-cache depends "linux-image-$DARCH:$DARCH" |
    sed -n "s/^ *Depends: linux-image-\([0-9][^: ]*-$DARCH\)\(:$DARCH\)\{0,1\}$/\1/p" | head -n1
}

newest_prepared() {
  local d
  d=$(find "$VIVID_CACHE/$DARCH" -mindepth 2 -maxdepth 2 -name ready -printf '%h\n' 2>/dev/null |
    sort -V | tail -n1)
  [ -n "$d" ] && basename "$d"
}

kver=$(candidate_kver)
if [ -z "$kver" ]; then
  kver=$(newest_prepared) ||
    vivid_die "apt knows no linux-image-$DARCH:$DARCH (run apt-get update;" \
      "for arm64: dpkg --add-architecture arm64) and nothing is cached in $VIVID_CACHE"
  vivid_note "apt cannot resolve the kernel; using the cached $kver"
fi
out="$VIVID_CACHE/$DARCH/$kver"

prepare_kernel() {
  local pkg="linux-image-$kver"
  local version deb
  version=$(apt-cache show --no-all-versions "$pkg:$DARCH" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
  [ -n "$version" ] || vivid_die "apt has no $pkg:$DARCH (apt-get update?)"
  if ! deb=$(vivid_deb_path "$pkg" "$version"); then
    vivid_note "downloading $pkg:$DARCH $version"
    if ! vivid_download "$pkg:$DARCH=$version"; then
      vivid_note "download failed; refreshing the package lists once"
      vivid_sudo apt-get update -qq >&2
      vivid_download "$pkg:$DARCH=$version"
    fi
    deb=$(vivid_deb_path "$pkg" "$version") || vivid_die "apt-get download left no .deb for $pkg"
  fi

  local tmp="$VIVID_CACHE/$DARCH/tmp.$$"
  rm -rf "$tmp" "$out"
  mkdir -p "$tmp/root" "$out/modules"
  trap 'rm -rf "$tmp"' EXIT
  vivid_note "unpacking $(basename "$deb")"
  # Only the kernel image and the modules tree; depmod needs every module to resolve symbols.
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" --wildcards './boot/vmlinuz-*' './lib/modules/*'
  depmod -b "$tmp/root" "$kver"

  local ko
  modprobe -d "$tmp/root" -S "$kver" -a --show-depends "${want_modules[@]}" |
    awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tmp/order"
  grep -q '/vivid\.ko$' "$tmp/order" || vivid_die "no vivid module in $kver"
  while read -r ko; do
    cp "$ko" "$out/modules/"
    basename "$ko" >>"$out/modules/order"
  done <"$tmp/order"

  local img="$tmp/root/boot/vmlinuz-$kver"
  case "$DARCH" in
    amd64) extract_vmlinux "$img" "$out/kernel" ;;
    arm64)
      # Debian's arm64 vmlinuz has been both a plain Image and a gzip'd one.
      if [ "$(head -c2 "$img" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
        gzip -dc "$img" >"$out/kernel"
      else
        cp "$img" "$out/kernel"
      fi
      ;;
  esac
  echo "$kver" >"$out/kver"
  rm -rf "$tmp"
  trap - EXIT
}

# The kernel's scripts/extract-vmlinux, for the compressions Debian uses: find each
# compressed-stream magic in the bzImage and keep the first one that unpacks to an ELF file.
extract_vmlinux() {
  local img=$1 dst=$2 off
  local -a tries=(
    '\xfd7zXZ\x00|xz -dc'
    '\x28\xb5\x2f\xfd|zstd -dc'
    '\x1f\x8b\x08|gzip -dc'
  )
  local t magic cmd
  for t in "${tries[@]}"; do
    magic=${t%%|*} cmd=${t#*|}
    command -v "${cmd%% *}" >/dev/null || continue
    while read -r off; do
      tail -c +"$((off + 1))" "$img" | $cmd >"$dst" 2>/dev/null || true
      if [ "$(head -c4 "$dst" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        return 0
      fi
    done < <(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1)
  done
  rm -f "$dst"
  vivid_die "could not find a compressed vmlinux in $img"
}

# arm64 busybox-static and v4l2-ctl; v4l-utils must match the installed libv4l-0:arm64.
prepare_userland() {
  local v4l bb
  v4l=$(dpkg-query -W -f='${Version}' libv4l-0:arm64 2>/dev/null) ||
    vivid_die "libv4l-0:arm64 is not installed: run scripts/install-deps.sh vivid"
  bb=$(vivid_apt_memo show-busybox-static-arm64 apt-cache show --no-all-versions busybox-static:arm64 |
    sed -n 's/^Version: //p' | head -n1)
  if [ -z "$bb" ]; then
    # No package lists: reuse whatever busybox is cached.
    bb=$(find "$VIVID_CACHE/debs" -name 'busybox-static_*_arm64.deb' 2>/dev/null | sort -V | tail -n1)
    [ -n "$bb" ] || vivid_die "apt knows no busybox-static:arm64 (apt-get update?)"
    bb=$(basename "$bb" _arm64.deb) bb=${bb#busybox-static_} bb=${bb/\%3a/:}
  fi
  local dir="$VIVID_CACHE/arm64/userland-$v4l-$bb"
  dir=${dir//:/_}
  if [ ! -e "$dir/ready" ]; then
    local pkg version deb
    rm -rf "$dir"
    mkdir -p "$dir"
    for pkg in "v4l-utils=$v4l" "busybox-static=$bb"; do
      version=${pkg#*=} pkg=${pkg%%=*}
      if ! deb=$(vivid_deb_path "$pkg" "$version"); then
        vivid_download "$pkg:arm64=$version"
        deb=$(vivid_deb_path "$pkg" "$version") || vivid_die "apt-get download left no .deb for $pkg"
      fi
      dpkg-deb -x "$deb" "$dir"
    done
    touch "$dir/ready"
  fi
  ln -sfn "$dir" "$out/userland"
}

# `ready` names the modules prepared: a changed list above prepares again.
if [ "$(cat "$out/ready" 2>/dev/null)" != "${want_modules[*]}" ]; then
  t0=$SECONDS
  prepare_kernel
  echo "${want_modules[*]}" >"$out/ready"
  vivid_note "prepared $DARCH kernel $kver in $((SECONDS - t0)) s"
  # Older kernels of this architecture are no longer needed.
  for old in "$VIVID_CACHE/$DARCH"/*/kver "$VIVID_CACHE/debs/linux-image-"*"_$DARCH.deb"; do
    case "$old" in
      */"$kver"/kver | *"/linux-image-${kver}_"*) ;;
      */kver) rm -rf "$(dirname "$old")" && vivid_note "removed the cached $(basename "$(dirname "$old")")" ;;
      *.deb) rm -f "$old" ;;
    esac
  done
fi
[ "$DARCH" = arm64 ] && prepare_userland
echo "$out" >&3
