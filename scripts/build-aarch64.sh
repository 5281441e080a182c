#!/usr/bin/env bash
# Builds vigint for aarch64 (Raspberry Pi 3/4/5, 64-bit OS) without Docker.
#
#   scripts/build-aarch64.sh [--dist] [--test]
#     --dist  build the `dist` profile (LTO, stripped) instead of `release`
#     --test  also build the library unit tests and run them under qemu-user
#
# Toolchain: Debian 12's rustc-web/cargo-web (it ships an aarch64 std) with
# gcc-aarch64-linux-gnu; elsewhere (e.g. Ubuntu) rustup's aarch64 target.
# Linker and qemu runner come from .cargo/config.toml. Force one with
# AARCH64_TOOLCHAIN=debian|rustup.
#
# Artifacts go to $CARGO_TARGET_DIR/aarch64-<toolchain> (default target/aarch64-debian),
# never into the directory the rustup toolchain uses for native builds: the two compilers'
# build scripts and proc-macros must not mix.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
profile=release
run_tests=0
for arg in "$@"; do
  case "$arg" in
    --dist) profile=dist ;;
    --test) run_tests=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "usage: $0 [--dist] [--test]" >&2; exit 2 ;;
  esac
done

die() { echo "build-aarch64: $*" >&2; exit 1; }

scripts/install-deps.sh arm

# Pick the toolchain.
debian_has_aarch64() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
    [ -d "$(/usr/bin/rustc --print sysroot 2>/dev/null)/lib/rustlib/$target" ]
}
toolchain=${AARCH64_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if debian_has_aarch64; then toolchain=debian; else toolchain=rustup; fi
fi
case "$toolchain" in
  debian)
    debian_has_aarch64 || die "Debian's rustc-web with the aarch64 std is not installed" \
      "(apt-get install rustc-web cargo-web libstd-rust-web-dev:arm64)"
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
    if [ ! -e /lib/ld-linux-aarch64.so.1 ] && [ -z "${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-}" ]; then
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/lib"
    fi
    ;;
  *) die "AARCH64_TOOLCHAIN must be debian or rustup, not '$toolchain'" ;;
esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64-$toolchain"
# The cc crate would guess these too; being explicit keeps a stray $CC/$CXX out of the
# cross build (openh264's C++ and NEON .S files).
export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
export CXX_aarch64_unknown_linux_gnu=${CXX_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-g++}
export AR_aarch64_unknown_linux_gnu=${AR_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-ar}
# bindgen (the v4l crate) must parse the aarch64 headers, not the host's.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=${BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu:---sysroot=/usr/aarch64-linux-gnu}

echo "build-aarch64: $("${cargo[@]}" --version), $("${RUSTC:-rustc}" --version)," \
  "profile $profile, target dir $CARGO_TARGET_DIR" >&2

start=$SECONDS
"${cargo[@]}" build --profile "$profile" --target "$target"
echo "build-aarch64: build took $((SECONDS - start)) s" >&2

bin="$CARGO_TARGET_DIR/$target/$profile/vigint"
[ -f "$bin" ] || die "no binary at $bin"
desc=$(file -b "$bin")
echo "build-aarch64: $bin: $desc"
case "$desc" in
  *"ARM aarch64"*) ;;
  *) die "$bin is not an aarch64 binary" ;;
esac
size=$(stat -c %s "$bin")
if [ "$profile" = dist ]; then
  echo "build-aarch64: size $size bytes (stripped)"
else
  stripped=$(mktemp)
  aarch64-linux-gnu-strip -o "$stripped" "$bin"
  echo "build-aarch64: size $size bytes, $(stat -c %s "$stripped") bytes stripped"
  rm -f "$stripped"
fi

if [ "$run_tests" = 1 ]; then
  # Release, like the native tests: reuses the dependencies just built and runs
  # much faster under emulation. The runner in .cargo/config.toml starts qemu.
  start=$SECONDS
  "${cargo[@]}" test --release --lib --target "$target"
  echo "build-aarch64: unit tests under qemu-user took $((SECONDS - start)) s" >&2
fi
