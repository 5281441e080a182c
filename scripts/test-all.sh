#!/usr/bin/env bash
# The one test command, for people and CI (.ci/run): stops at the first failing step.
#   1. system packages  scripts/install-deps.sh all (also rustup's nightly and cargo-fuzz)
#   2. format           cargo fmt --all -- --check
#   3. lint             cargo clippy --all-targets -- -D warnings; shellcheck on the scripts
#   4. tests            cargo test --release   (unit + integration; the integration tests
#                       drive real RTSP clients and want optimised builds)
#   5. aarch64          scripts/build-arm.sh --test (cross-built unit tests under qemu-user)
#   6. dist             scripts/build-arm.sh --dist: the stripped LTO aarch64 binary users
#                       install, its size reported (goal: under 4 MB)
#      armv7            in the background at nice 19 during step 4, waited for after it:
#                       scripts/build-arm.sh --target armv7, the 32-bit Raspberry Pi OS build
#                       (about 280 s of both cores). Step 4's tests mostly wait on real-time
#                       streams (two thirds of the CPU idle); the build takes only what they
#                       leave (measured: every test binary's time unchanged, the build done
#                       before the tests were), which took it off CI's critical path
#      vivid-cold       in the background during step 6 (about 15 s, 60 MB download):
#                       tests/vivid/check-cold-cache.sh, the vivid kernel preparation on an
#                       empty cache, as on a fresh machine, which step 7's warm cache hides
#      fuzz             in the background during step 6, waited for before step 7:
#                       scripts/fuzz.sh 60, the three cargo-fuzz targets (SDP, the H.264
#                       depacketiser, RTSP requests) built with nightly (about 4 minutes of
#                       both cores on a cold fuzz/target, keep it in CI) and run 60 s each, one
#                       core; a crash, hang or runaway allocation fails it. Compiles do not
#                       mind sharing the CPU; the QEMU guests of steps 7 and 8 do, so nothing
#                       runs next to them (step 4 gets only a nice 19 build, above)
#   7. vivid            cargo test --release --test vivid -- --ignored: the x86_64 and the
#                       aarch64 dist binary each in a QEMU board with Debian's kernel and the
#                       vivid camera driver, played from the host (about 40 s each; the first
#                       run also downloads the kernels into ~/.cache/vigint-vivid)
#   8. image            cargo test --release --test image -- --ignored: the SD-card image built
#                       with the dist binary (image/build.sh, about 30 s with its base system
#                       cached in ~/.cache/vigint-image) and booted in QEMU with the vivid
#                       camera (about a minute). When the cache has no recent base system,
#                       `image/build.sh --base-only` makes one in the background during step
#                       6 (6-8 minutes of mostly one core); keep ~/.cache in CI
# Needs Debian 12 or Ubuntu with Rust (rustup) installed; root or sudo for step 1.
set -euo pipefail
cd "$(dirname "$0")/.."

results=()
current=""
# Background steps not waited for yet, by name: their process and command.
declare -A bg_pid=() bg_cmd=()
finish() {
  local rc=$? name
  for name in "${!bg_pid[@]}"; do kill "${bg_pid[$name]}" 2>/dev/null || true; done
  echo
  echo "==== test-all summary ===="
  local r
  for r in "${results[@]}"; do echo "  ok    $r"; done
  if [ "$rc" -ne 0 ] && [ -n "$current" ]; then
    echo "  FAIL  $current (exit $rc)"
    echo "FAILED at: $current — the output above says why; later steps did not run."
  elif [ "$rc" -eq 0 ]; then
    echo "ALL PASSED in $SECONDS s"
  fi
}
trap finish EXIT

step() {
  local name=$1
  shift
  current="$name: $*"
  echo
  echo "==== $current"
  local t0=$SECONDS
  "$@"
  results+=("$(printf '%-10s %4d s  %s' "$name" $((SECONDS - t0)) "$*")")
  current=""
}

# Steps may run in the background next to steps that only compile (which do not mind
# sharing the CPU), or at nice 19 next to the tests: start_background NAME CMD..., later
# wait_background NAME. Each one's
# output goes to target/test-all-NAME.log, shown when it is waited for.
bg_log() { echo "target/test-all-$1.log"; }
start_background() {
  local name=$1 log
  shift
  log=$(bg_log "$name")
  mkdir -p target
  echo
  echo "==== $name (in the background, output in $log): $*"
  # Its own duration, not the time until it is waited for.
  (
    t0=$SECONDS
    rc=0
    "$@" || rc=$?
    echo "$((SECONDS - t0))" >"$log.seconds"
    exit "$rc"
  ) >"$log" 2>&1 &
  bg_pid[$name]=$!
  bg_cmd[$name]="$*"
}
wait_background() {
  local name=$1 log rc=0
  log=$(bg_log "$name")
  current="$name: ${bg_cmd[$name]}"
  echo
  echo "==== waiting for $current"
  local t0=$SECONDS
  wait "${bg_pid[$name]}" || rc=$?
  unset "bg_pid[$name]"
  if [ "$rc" -ne 0 ]; then
    tail -n 100 "$log"
    return "$rc"
  fi
  tail -n 3 "$log"
  # What it cost the run: the time spent waiting for it.
  results+=("$(printf '%-10s %4d s  %s (in the background; waited %d s)' "$name" "$(cat "$log.seconds")" "${bg_cmd[$name]}" $((SECONDS - t0)))")
  current=""
}

# rustup's minimal profile has no rustfmt or clippy.
ensure_components() {
  cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 && return 0
  command -v rustup >/dev/null || { echo "cargo fmt/clippy missing and no rustup to add them" >&2; return 1; }
  rustup component add rustfmt clippy
}

# The guest's /init runs under busybox sh: checked as POSIX sh.
lint_shell() {
  shellcheck -x scripts/*.sh .ci/run tests/vivid/*.sh image/*.sh tests/image/*.sh
  shellcheck -s sh tests/vivid/init
}

step deps scripts/install-deps.sh all
step tools ensure_components
step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings
step shell lint_shell
start_background armv7 nice -n 19 scripts/build-arm.sh --target armv7
step test cargo test --release
wait_background armv7
step aarch64 scripts/build-arm.sh --test
# The image's base system: a no-op when ~/.cache/vigint-image holds a recent one, else 6-8
# minutes of mostly one core, overlapped with the dist build (compile only).
start_background image-base image/build.sh --base-only
# prepare.sh on an empty cache, which the vivid step's warm ~/.cache/vigint-vivid never
# exercises (issue 14: apt-get's "Get:1 ..." came out on the stdout its callers read). About
# 15 s here, mostly unpacking and one 60 MB download. aarch64 only: x86_64 takes the same
# kernel path (prepare_kernel, vivid_download), and aarch64 also downloads its userland
# (prepare_userland), so it covers both download sites.
start_background vivid-cold tests/vivid/check-cold-cache.sh aarch64
# The fuzz targets sdp, depacketize and rtsp_request: their nightly build and 3 x 60 s of
# fuzzing (one core) next to the dist build (compile only); waited for before the QEMU guests,
# whose timing it would distort. This step found two of rtsp_request's framing bugs
# (docs/RTSP.md, "Fuzzing"); their inputs are replayed by tests/fuzz_corpus.rs in step 4.
start_background fuzz scripts/fuzz.sh 60
step dist scripts/build-arm.sh --dist
wait_background vivid-cold
wait_background image-base
wait_background fuzz
# After the dist build, which the aarch64 guest boots and the image holds (build-arm.sh
# --dist is a no-op by then).
step vivid cargo test --release --test vivid -- --ignored --nocapture
step image cargo test --release --test image -- --ignored --nocapture
