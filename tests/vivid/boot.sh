#!/usr/bin/env bash
# Boots a vivid test guest in QEMU (TCG): Debian's kernel, the vivid camera driver, vigint.
#
#   tests/vivid/boot.sh x86_64|aarch64 VIGINT [options]
#     --port N        host port forwarded to the guest's RTSP port 8554, on 127.0.0.1 only
#                     (default 18554): rtsp://127.0.0.1:N/cam
#     --config FILE   vigint config for the guest (default: tests/vivid/init's, two cameras)
#     --work DIR      where the initramfs and the control socket go (default: a new temp dir)
#     --smp N         virtual CPUs (default 2)   --mem MB   guest memory (default 512)
#     --append WORDS  more kernel command line, e.g. vigint_autostart=0 vigint_log=debug
#
# The serial console (kernel, tests/vivid/init and vigint logs) is this process's stdout.
# DIR/ctl.sock is the control channel (see tests/vivid/init): connect, wait for the console
# line "vivid-init: ... ready", write one shell command per line, read until "@@rc=N".
#   e.g. socat - UNIX-CONNECT:DIR/ctl.sock (apt install socat), then: v4l2-ctl -d /dev/video0 -L
# The script ends by exec'ing QEMU, so killing it stops the guest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vivid/lib.sh
. "$here/lib.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
arch=$1 vigint=$2
shift 2
vivid_arch "$arch"
port=18554 config="" work="" smp=2 mem=512 append=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2 ;;
    --config) config=$2 ;;
    --work) work=$2 ;;
    --smp) smp=$2 ;;
    --mem) mem=$2 ;;
    --append) append=$2 ;;
    -h | --help) usage; exit 0 ;;
    *) vivid_die "unknown option $1 (--help)" ;;
  esac
  shift 2
done

if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/vigint-vivid.XXXXXX")
  vivid_note "work directory $work"
fi
mkdir -p "$work"
prepared=$("$here/prepare.sh" "$arch")
# Stdout is the guest's console: the scripts' own output goes to stderr.
VIVID_PREPARED=$prepared "$here/mkinitramfs.sh" "$arch" "$vigint" "$work/initramfs.cpio" ${config:+"$config"} >&2
rm -f "$work/ctl.sock"

common=(
  -accel tcg -m "$mem" -smp "$smp" -nodefaults -no-user-config -display none -no-reboot
  -kernel "$prepared/kernel" -initrd "$work/initramfs.cpio"
  -chardev "stdio,id=con" -serial chardev:con
  # Only 127.0.0.1 on the host side.
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8554"
  # romfile= : no iPXE/EFI option ROM to load (they only slow the boot down).
  -device "virtio-net-pci,netdev=n0,romfile="
  -device "virtio-serial-pci,romfile="
  -chardev "socket,id=ctl,path=$work/ctl.sock,server=on,wait=off"
  -device "virtserialport,chardev=ctl,name=vigint.ctl"
)
cmdline="panic=-1 loglevel=4 $append"
case "$DARCH" in
  amd64)
    qemu="qemu-system-x86_64"
    # -M pc: microvm hung in one boot out of three. The ELF vmlinux boots through PVH.
    machine=(-M pc -cpu max)
    cmdline="console=ttyS0 $cmdline"
    ;;
  arm64)
    qemu="qemu-system-aarch64"
    # cortex-a72, not max: max has pointer authentication, which TCG emulates slowly.
    machine=(-M virt -cpu cortex-a72)
    cmdline="console=ttyAMA0 $cmdline"
    ;;
esac
command -v "$qemu" >/dev/null || vivid_die "$qemu is missing: run scripts/install-deps.sh vivid"
vivid_note "booting $arch ($(cat "$prepared/kver")), rtsp://127.0.0.1:$port/, control $work/ctl.sock"
# The guest dies with whoever started this script (a killed test run leaves no QEMU behind).
pdeath=()
command -v setpriv >/dev/null && pdeath=(setpriv --pdeathsig KILL)
exec "${pdeath[@]}" "$qemu" "${machine[@]}" "${common[@]}" -append "$cmdline"
