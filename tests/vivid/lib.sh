# Shared by the tests/vivid/ scripts (sourced, not run). Bash.
# shellcheck shell=bash
# The variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034

# Where downloaded .debs and prepared kernels live; reruns reuse them.
VIVID_CACHE=${VIGINT_VIVID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigint-vivid}

vivid_die() {
  echo "vivid: $*" >&2
  exit 1
}

vivid_note() { echo "vivid: $*" >&2; }

# Sets DARCH (Debian architecture), TRIPLET (multiarch directory), LOADER (the program
# interpreter's path), STRIP (a strip that understands the architecture) from x86_64|aarch64.
vivid_arch() {
  case "$1" in
    x86_64 | amd64)
      DARCH=amd64 TRIPLET=x86_64-linux-gnu LOADER=/lib64/ld-linux-x86-64.so.2 STRIP=strip
      ;;
    aarch64 | arm64)
      DARCH=arm64 TRIPLET=aarch64-linux-gnu LOADER=/lib/ld-linux-aarch64.so.1
      STRIP=aarch64-linux-gnu-strip
      ;;
    *) vivid_die "unknown architecture '$1' (x86_64 or aarch64)" ;;
  esac
}

vivid_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt-get download PKG... into the cache's debs directory. As root apt would drop to the
# `_apt` user, who cannot write into $HOME: download as root instead (no warning). Its
# progress ("Get:1 http://...", "Fetched ...") goes to stderr: callers' stdout is for results.
vivid_download() {
  local opts=()
  [ "$(id -u)" -eq 0 ] && opts=(-o APT::Sandbox::User=root)
  mkdir -p "$VIVID_CACHE/debs"
  (cd "$VIVID_CACHE/debs" && apt-get download -q "${opts[@]}" "$@") >&2
}

# The .deb file of PKG (name without :arch) at VERSION for DARCH in the cache, if present.
vivid_deb_path() {
  local pkg=$1 version=$2
  # apt-get download escapes the epoch colon as %3a.
  local f="$VIVID_CACHE/debs/${pkg}_${version/:/%3a}_$DARCH.deb"
  [ -f "$f" ] && echo "$f"
}

# Output of an apt-cache query, remembered until the package lists change (apt-cache takes
# over a second per call here, with foreign architectures): vivid_apt_memo KEY CMD...
vivid_apt_memo() {
  local key=$1 stamp out
  shift
  stamp=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
  local memo="$VIVID_CACHE/apt-memo/$key"
  if [ -f "$memo" ] && [ "$(head -n1 "$memo")" = "$stamp" ]; then
    tail -n +2 "$memo"
    return
  fi
  out=$("$@" 2>/dev/null) || true
  if [ -n "$out" ]; then
    mkdir -p "$VIVID_CACHE/apt-memo"
    printf '%s\n%s\n' "$stamp" "$out" >"$memo"
  fi
  [ -z "$out" ] || echo "$out"
}
