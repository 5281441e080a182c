#!/usr/bin/env bash
# Runs tests/vivid/prepare.sh on an empty cache, as on a fresh machine or CI runner, and
# checks its stdout is exactly one line: a prepared directory inside that cache with `kernel`,
# `kver`, `modules/order` and its modules (aarch64: also userland/ with busybox and v4l2-ctl).
# Then once more on the now warm cache: the same one line. A warm cache hid issue 14, where
# apt-get download's "Get:1 http://..." lines came out on stdout before the directory.
#
#   tests/vivid/check-cold-cache.sh [x86_64|aarch64]...     (default: aarch64)
#
# aarch64 is the default because it covers both download sites: the kernel .deb (common code,
# prepare_kernel and vivid_download, as for x86_64) and the arm64 userland .debs
# (prepare_userland). Downloads about 61 MB per architecture into a temporary cache, which
# is removed afterwards. Needs what prepare.sh needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vivid/lib.sh
. "$here/lib.sh"

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(aarch64)

work=$(mktemp -d "${TMPDIR:-/tmp}/vigint-vivid-cold.XXXXXX")
trap 'rm -rf "$work"' EXIT
cache=$work/cache
mkdir "$cache"

# Fails unless FILE (prepare.sh's stdout) is one line naming a prepared directory for DARCH.
check_stdout() {
  local file=$1 what=$2 lines dir problem="" m
  mapfile -t lines <"$file"
  dir=${lines[0]:-}
  if [ ${#lines[@]} -ne 1 ]; then
    problem="${#lines[@]} lines, not 1"
  elif [[ "$dir" != "$cache/$DARCH/"* ]]; then
    problem="not a directory under the cache $cache/$DARCH"
  elif [ ! -d "$dir" ]; then
    problem="no such directory"
  else
    for m in kernel kver modules/order; do
      [ -s "$dir/$m" ] || problem+=" no $m;"
    done
    if [ -s "$dir/modules/order" ]; then
      while read -r m; do
        [ -f "$dir/modules/$m" ] || problem+=" no modules/$m;"
      done <"$dir/modules/order"
    fi
    if [ "$DARCH" = arm64 ]; then
      for m in userland/bin/busybox userland/usr/bin/v4l2-ctl; do
        [ -x "$dir/$m" ] || problem+=" no $m;"
      done
    fi
  fi
  if [ -n "$problem" ]; then
    echo "vivid: FAIL: $what: stdout must be exactly the prepared directory, but: $problem" >&2
    echo "vivid: its stdout was ($(wc -c <"$file") bytes):" >&2
    sed 's/^/  | /' "$file" >&2
    return 1
  fi
}

for arch in "${archs[@]}"; do
  vivid_arch "$arch"
  for state in cold warm; do
    t0=$SECONDS
    VIGINT_VIVID_CACHE=$cache "$here/prepare.sh" "$arch" >"$work/stdout.$state" ||
      vivid_die "prepare.sh $arch failed on a $state cache (its stdout: $(cat "$work/stdout.$state"))"
    check_stdout "$work/stdout.$state" "prepare.sh $arch on a $state cache"
    vivid_note "$state prepare.sh $arch: $((SECONDS - t0)) s, stdout: $(cat "$work/stdout.$state")"
  done
  cmp -s "$work/stdout.cold" "$work/stdout.warm" ||
    vivid_die "prepare.sh $arch named another directory on the warm cache"
done
vivid_note "prepare.sh's stdout is one prepared directory, cold and warm (${archs[*]})"
