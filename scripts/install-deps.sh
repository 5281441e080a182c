#!/usr/bin/env bash
# Installs the system packages Vigint's build and tests need, only when missing.
# Debian/Ubuntu only. Safe to run repeatedly; quiet when everything is present.
set -euo pipefail

need_build=(libclang-dev nasm pkg-config)
need_test=(ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp)
need_arm=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
  g++-aarch64-linux-gnu qemu-user-static)

what=${1:-all}
pkgs=("${need_build[@]}")
case "$what" in
  build) ;;
  test) pkgs+=("${need_test[@]}") ;;
  all) pkgs+=("${need_test[@]}" "${need_arm[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}" >&2
if printf '%s\n' "${missing[@]}" | grep -q ':arm64'; then
  dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
