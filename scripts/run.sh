#!/usr/bin/env bash
# Builds (release) and runs vigint on this machine; arguments go to vigint:
#   scripts/run.sh --help
# Installs the build's system packages first (libclang-dev, nasm, pkg-config).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh" build
# --manifest-path instead of cd: relative paths in the arguments stay relative to the caller.
exec cargo run --release --manifest-path "$root/Cargo.toml" -- "$@"
