#!/usr/bin/env bash
# Installs the system packages Vigint's build and tests need, only when missing.
# Debian/Ubuntu only. Safe to run repeatedly; quiet when everything is present.
#   build: what `cargo build` needs (bindgen's libclang, nasm for openh264's x86 assembly)
#   test:  build + the independent RTSP clients the integration tests drive, shellcheck,
#          systemd (systemd-analyze, -sysusers, -tmpfiles check board/'s unit files),
#          promtool (Debian package prometheus) for the /metrics format check, and for the
#          phone page's browser test Debian's chromium, node and npm (Debian's nodejs/npm only
#          when no node/npm is on PATH) and tests/browser/node_modules (npm ci, from the
#          committed package-lock.json, when missing)
#   bench: test + benches/browser/node_modules (npm ci: playwright-core, node-rtsp-stream and
#          JSMpeg for benches/live_figures.rs; node-rtsp-stream runs the system ffmpeg)
#   arm:   build + the aarch64 and armv7 cross toolchains and qemu-user (scripts/build-arm.sh)
#   vivid: what tests/vivid/ needs to boot Debian's kernel with the vivid camera driver in
#          QEMU (x86_64 and aarch64 guests) and play the guest's stream with ffprobe
#   image: image/build.sh (mmdebstrap with qemu-user for the arm64 root filesystem, sfdisk,
#          mkfs.vfat, mtools, mkfs.ext4, xz; uidmap for unprivileged builds) and
#          tests/image/boot-test.sh (qemu-system-arm, ffprobe, curl, socat, debugfs, python3)
#   fuzz:  build + the nightly Rust toolchain (rustup, minimal profile) and cargo-fuzz, for
#          scripts/fuzz.sh (cargo-fuzz targets need nightly's sanitizer flags)
#   all:   all of the above (scripts/test-all.sh)
set -euo pipefail

need_build=(libclang-dev nasm pkg-config)
need_test=(shellcheck ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
  prometheus chromium systemd gir1.2-gst-rtsp-server-1.0 python3-gi)
need_arm=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf
  qemu-user-static file)
# Debian 12's rustc-web ships an aarch64 standard library, so no rustup target is needed.
# libc6:arm64 gives /lib/ld-linux-aarch64.so.1 for the `qemu-aarch64-static -L /` runner.
# Other distributions (Ubuntu) have no rustc-web: build-arm.sh then uses rustup instead.
need_arm_rust=(rustc-web cargo-web libstd-rust-web-dev:arm64 libc6:arm64)
# The guests' userland is copied from the host: busybox-static, v4l2-ctl (v4l-utils) with its
# libraries, and for the aarch64 guest the arm64 multiarch libraries vigint and v4l2-ctl link
# (v4l-utils itself cannot be installed for both architectures: tests/vivid/ fetches the
# arm64 v4l2-ctl with `apt-get download` into its cache, next to the kernels). kmod: depmod;
# xz-utils: unpacks the x86 vmlinux; binutils: readelf finds the libraries to copy, and the
# aarch64 strip keeps the guest's initramfs small.
need_vivid=(qemu-system-x86 qemu-system-arm busybox-static kmod cpio xz-utils binutils
  binutils-aarch64-linux-gnu v4l-utils ffmpeg libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 libv4l-0:arm64 libv4l2rds0:arm64 libudev1:arm64)

need_image=(mmdebstrap arch-test qemu-user-static fdisk dosfstools mtools e2fsprogs xz-utils file
  uidmap qemu-system-arm ffmpeg curl socat python3)

what=${1:-all}
pkgs=("${need_build[@]}")
arm=0
browser=0
bench=0
fuzz=0
case "$what" in
  build) ;;
  test) pkgs+=("${need_test[@]}"); browser=1 ;;
  bench) pkgs+=("${need_test[@]}"); browser=1; bench=1 ;;
  arm) pkgs+=("${need_arm[@]}"); arm=1 ;;
  vivid) pkgs=("${need_vivid[@]}") ;;
  image) pkgs=("${need_image[@]}") ;;
  fuzz) fuzz=1 ;;
  all) pkgs+=("${need_test[@]}" "${need_arm[@]}" "${need_vivid[@]}" "${need_image[@]}"); arm=1; browser=1; bench=1; fuzz=1 ;;
  *) echo "usage: $0 [build|test|bench|arm|vivid|image|fuzz|all]" >&2; exit 2 ;;
esac
# A node from elsewhere (NodeSource, nvm) brings its own npm and is kept: Debian's packages
# are only the fallback when the commands are missing.
if [ "$browser" = 1 ]; then
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
missing_rust=()
if [ "$arm" = 1 ]; then
  for p in "${need_arm_rust[@]}"; do installed "$p" || missing_rust+=("$p"); done
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=0
update() { $SUDO apt-get update -qq; updated=1; }

# The apt part; returns early (quietly) when nothing is missing.
system_packages() {
  [ ${#missing[@]} -eq 0 ] && [ ${#missing_rust[@]} -eq 0 ] && return 0

  if [ ${#missing_rust[@]} -gt 0 ]; then
    # Fresh containers have no package lists at all: fetch them before deciding.
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || update
    if apt-cache show rustc-web >/dev/null 2>&1; then
      if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "adding the arm64 architecture to dpkg (for libstd-rust-web-dev:arm64)" >&2
        $SUDO dpkg --add-architecture arm64
        updated=0
      fi
      missing+=("${missing_rust[@]}")
    else
      echo "note: no rustc-web package here (it is Debian 12's); scripts/build-arm.sh" \
        "will use rustup's aarch64-unknown-linux-gnu target instead" >&2
    fi
  fi
  [ ${#missing[@]} -eq 0 ] && return 0

  # arm64 multiarch libraries (vivid group) need the architecture in dpkg as well.
  if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' &&
    ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "adding the arm64 architecture to dpkg (for the aarch64 guest's libraries)" >&2
    $SUDO dpkg --add-architecture arm64
    updated=0
  fi

  echo "installing: ${missing[*]}" >&2
  [ "$updated" = 1 ] || update
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The tests' npm packages, exactly as each package-lock.json pins them; after the system
# packages, which bring node and npm: tests/browser (playwright-core, and mpegts.js for the
# live test) and tests/relay (rtsp-streaming-server, an independent RTSP server the relay
# tests pull from); for the bench group also benches/browser (the latency tool and the
# node-rtsp-stream + JSMpeg peer). A folder missing any of its packages is installed again.
npm_modules() {
  [ "$browser" = 1 ] || return 0
  local root dir markers marker missing pairs
  root="$(cd "$(dirname "$0")/.." && pwd)"
  pairs=(tests/browser:playwright-core+mpegts.js tests/relay:rtsp-streaming-server)
  if [ "$bench" = 1 ]; then pairs+=(benches/browser:node-rtsp-stream); fi
  for pair in "${pairs[@]}"; do
    dir="$root/${pair%%:*}" markers=${pair#*:} missing=0
    for marker in ${markers//+/ }; do
      [ -d "$dir/node_modules/$marker" ] || missing=1
    done
    [ "$missing" = 0 ] && continue
    echo "installing ${pair%%:*}/node_modules: npm ci --prefix ${pair%%:*}" >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
  done
}

# scripts/fuzz.sh's tools, from rustup and crates.io rather than apt: the nightly toolchain
# (cargo-fuzz builds with nightly-only sanitizer flags) and cargo-fuzz itself. Without
# rustup there is no nightly to add: that fails with what to run, it is never skipped.
fuzz_tools() {
  [ "$fuzz" = 1 ] || return 0
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null; then
      echo "scripts/fuzz.sh needs rustup's nightly toolchain: install rustup (https://rustup.rs)," \
        "then: rustup toolchain install nightly --profile minimal" >&2
      return 1
    fi
    echo "installing: rustup toolchain install nightly --profile minimal" >&2
    rustup toolchain install nightly --profile minimal >/dev/null
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing: cargo install cargo-fuzz --locked (about 2 minutes)" >&2
    cargo install cargo-fuzz --locked --quiet
  fi
}

system_packages
npm_modules
fuzz_tools
