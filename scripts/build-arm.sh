#!/usr/bin/env bash
# Builds vigint for ARM boards without Docker.
#
#   scripts/build-arm.sh [--target aarch64|armv7] [--dist] [--test]
#     --target  aarch64 (default: Raspberry Pi 3/4/5, Zero 2 W with a 64-bit OS) or armv7
#               (32-bit Raspberry Pi OS, armv7-unknown-linux-gnueabihf)
#     --dist    build the `dist` profile (LTO, stripped) instead of `release`
#     --test    build the library's unit tests and run them under qemu-user, instead of the
#               binary (release profile; CI builds the binary it ships with --dist)
#
# Toolchain: Debian 12's rustc-web/cargo-web when it has the target's std (it ships one for
# arm64; for armhf only when libstd-rust-web-dev:armhf matches rustc-web's version), with
# Debian's cross gcc; otherwise rustup's target. Linkers and qemu runners come from
# .cargo/config.toml. Force one with ARM_TOOLCHAIN=debian|rustup.
#
# Artifacts go to $CARGO_TARGET_DIR/<arch>-<toolchain> (default target/aarch64-debian),
# never into the directory the rustup toolchain uses for native builds: the two compilers'
# build scripts and proc-macros must not mix.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=aarch64
profile=release
run_tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) arch=${2:-}; shift ;;
    --dist) profile=dist ;;
    --test) run_tests=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "usage: $0 [--target aarch64|armv7] [--dist] [--test]" >&2; exit 2 ;;
  esac
  shift
done
case "$arch" in
  aarch64) target=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu deb_arch=arm64 file_says="ARM aarch64" ;;
  armv7) target=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf deb_arch=armhf file_says="ARM, EABI5" ;;
  *) echo "build-arm: --target must be aarch64 or armv7, not '$arch'" >&2; exit 2 ;;
esac

die() { echo "build-arm: $*" >&2; exit 1; }
[ "$run_tests" = 0 ] || [ "$profile" = release ] || die "--test builds the release profile's tests; build --dist on its own"

scripts/install-deps.sh arm

# Pick the toolchain.
debian_has_target() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
    [ -d "$(/usr/bin/rustc --print sysroot 2>/dev/null)/lib/rustlib/$target" ]
}
toolchain=${ARM_TOOLCHAIN:-${AARCH64_TOOLCHAIN:-}}
if [ -z "$toolchain" ]; then
  if debian_has_target; then toolchain=debian; else toolchain=rustup; fi
fi
case "$toolchain" in
  debian)
    debian_has_target || die "Debian's rustc-web with the $arch std is not installed" \
      "(apt-get install rustc-web cargo-web libstd-rust-web-dev:$deb_arch)"
    cargo=(/usr/bin/cargo)
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    ;;
  rustup)
    command -v rustup >/dev/null || die "no Debian rustc-web and no rustup: install one of them" \
      "or use: CROSS_CONFIG=cross.toml cross build --release --target $target"
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" ||
      die "rustup could not add $target; on Debian 12 use rustc-web (scripts/install-deps.sh arm)"
    cargo=(cargo)
    # Without Debian's libc6:arm64 (Ubuntu: it lives on ports.ubuntu.com) `-L /` finds no
    # aarch64 loader; use the cross glibc. LD_LIBRARY_PATH=/lib (inside the prefix) keeps its
    # loader from picking up a different multiarch libc.so.6 from /lib/aarch64-linux-gnu.
    if [ "$arch" = aarch64 ] && [ ! -e /lib/ld-linux-aarch64.so.1 ] && [ -z "${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-}" ]; then
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/lib"
    fi
    ;;
  *) die "ARM_TOOLCHAIN must be debian or rustup, not '$toolchain'" ;;
esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/$arch-$toolchain"
# The cc crate would guess these too; being explicit keeps a stray $CC/$CXX out of the
# cross build (openh264's C++ and assembly).
tvar=${target//-/_}
for tool in CC:gcc CXX:g++ AR:ar; do
  var="${tool%%:*}_$tvar"
  [ -n "${!var:-}" ] || export "$var=$gnu-${tool#*:}"
done
# bindgen (the v4l crate) must parse the target's headers, not the host's.
var="BINDGEN_EXTRA_CLANG_ARGS_$tvar"
[ -n "${!var:-}" ] || export "$var=--sysroot=/usr/$gnu"

echo "build-arm: $("${cargo[@]}" --version), $("${RUSTC:-rustc}" --version)," \
  "profile $profile, target dir $CARGO_TARGET_DIR" >&2

if [ "$run_tests" = 1 ]; then
  # Release, like the native tests: runs much faster under emulation. The runner in
  # .cargo/config.toml starts qemu. (The dev-dependencies change some dependencies' features,
  # so a binary built before would share little with this build: it is not built here.)
  start=$SECONDS
  "${cargo[@]}" test --release --lib --target "$target" --no-run
  echo "build-arm: unit test build took $((SECONDS - start)) s" >&2
  start=$SECONDS
  "${cargo[@]}" test --release --lib --target "$target"
  echo "build-arm: unit tests under qemu-user took $((SECONDS - start)) s" >&2
  exit 0
fi

start=$SECONDS
"${cargo[@]}" build --profile "$profile" --target "$target"
echo "build-arm: build took $((SECONDS - start)) s" >&2

bin="$CARGO_TARGET_DIR/$target/$profile/vigint"
[ -f "$bin" ] || die "no binary at $bin"
desc=$(file -b "$bin")
echo "build-arm: $bin: $desc"
case "$desc" in
  *"$file_says"*) ;;
  *) die "$bin is not an $arch binary" ;;
esac
size=$(stat -c %s "$bin")
if [ "$profile" = dist ]; then
  echo "build-arm: size $size bytes (stripped)"
else
  stripped=$(mktemp)
  "$gnu-strip" -o "$stripped" "$bin"
  echo "build-arm: size $size bytes, $(stat -c %s "$stripped") bytes stripped"
  rm -f "$stripped"
fi
