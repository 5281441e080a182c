#!/usr/bin/env bash
# Fuzzes what network peers send, with cargo-fuzz (libFuzzer, AddressSanitizer, debug
# assertions): usage scripts/fuzz.sh [SECONDS] [TARGET...]
#   builds fuzz/ with nightly (`cargo +nightly fuzz build`; the first build of the
#   instrumented crate takes about 4 minutes here), then runs each target for SECONDS
#   (default 60) one after the other: sdp, depacketize, rtsp_request (default: all three).
#   A crash, a panic, a hang over 10 s or over 2 GiB of memory is a failure; every target
#   still runs, and the script fails at the end naming each reproducer and how to keep it
#   (fuzz/regressions/TARGET/, replayed by `cargo test --test fuzz_corpus`).
# Seeds come from fuzz/corpus/TARGET and fuzz/regressions/TARGET, read only: what the run
# finds goes to a temporary directory, deleted at the end, never into the committed corpus.
# Needs the nightly toolchain and cargo-fuzz: scripts/install-deps.sh fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sdp depacketize rtsp_request)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "no nightly toolchain: rustup toolchain install nightly --profile minimal" \
    "(or scripts/install-deps.sh fuzz)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "no cargo-fuzz: cargo install cargo-fuzz --locked (or scripts/install-deps.sh fuzz)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vigint-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

t0=$SECONDS
(cd fuzz && cargo +nightly fuzz build)
echo "fuzz: built in $((SECONDS - t0)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
  if [ ! -d "fuzz/corpus/$t" ]; then
    echo "fuzz: fuzz/corpus/$t is missing (every target needs seeds)" >&2
    exit 1
  fi
  # Inputs that once failed, when any were kept (git keeps no empty directory).
  seeds=("corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("regressions/$t")
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  log="$work/$t.log"
  echo
  echo "==== fuzz $t for $seconds s"
  rc=0
  # The first directory takes what the run finds; the committed ones are only read.
  (cd fuzz && cargo +nightly fuzz run "$t" "$work/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    "${dict[@]}") >"$log" 2>&1 || rc=$?
  # libFuzzer's last status line (coverage, features, corpus) and its totals.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  line=$(printf '%-13s %8s runs in %3s s, %6s execs/s, %s' "$t" "${runs:-?}" "${took:-$seconds}" \
    "${rate:-?}" "${cov:-no coverage line}")
  if [ "$rc" -ne 0 ]; then
    # The panic (or sanitizer report) and libFuzzer's verdict, not the input's dump.
    grep -E -A 8 "panicked at|ERROR: (AddressSanitizer|libFuzzer)|^SUMMARY" "$log" | head -n 40 || true
    artifact=$(sed -n 's/.*Test unit written to \(\S*\).*/\1/p' "$log" | tail -n 1)
    echo
    cp "$log" "fuzz/artifacts/$t/fuzz.log"
    echo "FUZZ FAILURE in $t (exit $rc); its whole output: fuzz/artifacts/$t/fuzz.log"
    if [ -n "$artifact" ]; then
      echo "  reproducer: $artifact"
      echo "  reproduce:  (cd fuzz && cargo +nightly fuzz run $t $artifact)"
      echo "  minimise:   (cd fuzz && cargo +nightly fuzz tmin $t $artifact)"
      echo "  keep it:    cp $artifact fuzz/regressions/$t/WHAT-IT-BROKE" \
        "&& cargo test --release --test fuzz_corpus"
    fi
    failed+=("$t")
    line="$line  FAILED"
  fi
  summary+=("$line")
done

echo
echo "==== fuzz summary ($seconds s per target, built in the same run)"
for s in "${summary[@]}"; do echo "  $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (reproducers above)" >&2
  exit 1
fi
