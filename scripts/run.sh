#!/usr/bin/env bash
# Builds (release) and runs vigint on this machine; arguments go to vigint:
#   scripts/run.sh --help
# Installs the build's system packages first (libclang-dev, nasm, pkg-config).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh" build
# Settings saved from the page and (later) recordings need a writable place: without
# --config or --data-dir, use vigint-data/ in the repository rather than /var/lib/vigint.
state=()
case " $* " in
*" --config "* | *" --data-dir "* | *" --help "* | *" -h "*) ;;
*) state=(--data-dir "$root/vigint-data") ;;
esac
# --manifest-path instead of cd: relative paths in the arguments stay relative to the caller.
exec cargo run --release --manifest-path "$root/Cargo.toml" -- "${state[@]}" "$@"
