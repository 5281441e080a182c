#!/usr/bin/env bash
# Boots the SD-card image (image/build.sh) in an emulated aarch64 machine and checks it from
# the host. The Pi itself cannot be emulated: QEMU's `virt` board runs the image's own Debian
# arm64 kernel and initramfs (taken from its boot partition) on the image's root partition
# (a virtio disk), with the vivid camera driver as the camera.
#
#   tests/image/boot-test.sh IMAGE [--keep DIR]
#     --keep DIR  work in DIR and leave it (console log, the booted image copy); default: a
#                 temporary directory, removed at the end
#
# Checks, each printed as "image-test: ok ..." or "image-test: FAIL ..." (exit 1):
#   - a first-boot vigint.json put on the boot partition (mcopy) before the boot is applied
#     (GET /api/v1/status `first_boot`, and the admin password it set works) and removed;
#     the example file beside it stays
#   - systemd reports vigint.service started (Type=notify: after vigint's READY=1)
#   - GET /healthz answers 200 through the forwarded port
#   - ffprobe decodes the RTSP stream of the vivid camera at the first-boot file's size
#   - the root partition was grown to the end of the (enlarged) disk on first boot
#   - the system powers off cleanly (QEMU's power button; systemd-logind)
#   - SD-card care on the disk after the boot: no SSH server, root noatime, no swap, nothing
#     written to /var/log/journal (the journal stays in RAM)
# and figures: seconds from QEMU's start to READY, to /healthz, to the first RTSP frame.
# All ports are on 127.0.0.1. Needs scripts/install-deps.sh image (qemu-system-arm, mtools,
# fdisk, e2fsprogs, ffmpeg, curl).
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

say() { echo "image-test: $*" >&2; }
fail() { say "FAIL $*"; failed=1; }
die() { say "FAIL $*"; exit 1; }

[ $# -ge 1 ] || die "usage: $0 IMAGE [--keep DIR]"
image=$1
shift
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=${2:-}; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[ -f "$image" ] || die "no image at $image (build it: image/build.sh)"
for tool in qemu-system-aarch64 mcopy mdir sfdisk debugfs ffprobe curl socat; do
  command -v "$tool" >/dev/null || die "\`$tool\` is missing: run scripts/install-deps.sh image"
done

if [ -n "$keep" ]; then
  work=$keep
  rm -rf "$work"
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/vigint-image-test.XXXXXX")
fi
qemu_pid=""
cleanup() {
  [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
failed=0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A copy of the image, 1 GiB larger than built: the first boot must grow the root into it.
disk=$work/disk.img
cp --sparse=always "$image" "$disk"
truncate -s +1G "$disk"
# Partition starts (sectors) from the image's table.
part_start() { sfdisk -d "$disk" | sed -n "s|^$disk$1 : start= *\([0-9]*\),.*|\1|p"; }
boot_off=$(($(part_start 1) * 512))
root_start=$(part_start 2)
root_size_before=$(sfdisk -d "$disk" | sed -n "s|^${disk}2 : .*size= *\([0-9]*\),.*|\1|p")
fat="$disk@@$boot_off"

# Kernel and initramfs from the boot partition, as the Pi's firmware would load them.
# config.txt names them (kernel=..., initramfs ...).
mcopy -n -i "$fat" ::config.txt "$work/config.txt"
kernel=$(sed -n 's/^kernel=//p' "$work/config.txt" | head -n1)
initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$work/config.txt" | head -n1)
{ [ -n "$kernel" ] && [ -n "$initrd" ]; } || die "config.txt names no kernel/initramfs: $(cat "$work/config.txt")"
mcopy -n -i "$fat" "::$kernel" "$work/kernel.gz"
mcopy -n -i "$fat" "::$initrd" "$work/initrd"
# Debian's arm64 vmlinuz is a gzip'd Image; QEMU's -kernel wants it unpacked.
if [ "$(head -c2 "$work/kernel.gz" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
  gzip -dc <"$work/kernel.gz" >"$work/kernel"
else
  mv "$work/kernel.gz" "$work/kernel"
fi
cmdline=$(mcopy -n -i "$fat" ::cmdline.txt - | tr -d '\n')
say "boot partition: kernel $kernel, initramfs $initrd, cmdline.txt: $cmdline"

# The first-boot file (docs/CONFIG.md): an admin password and the camera's mode.
password="image-test-passphrase"
cat >"$work/vigint.json" <<EOF
{
  "admin": { "password": "$password" },
  "paths": { "cam": { "source": "/dev/video0", "width": 640, "height": 480, "fps": 15 } }
}
EOF
mcopy -i "$fat" "$work/vigint.json" ::vigint.json

rtsp_port=$(free_port)
http_port=$(free_port)
# The Pi's console (serial, HDMI) is replaced by the virt board's PL011. The root is the
# image's own (cmdline.txt's root=LABEL=...). vivid: loaded by systemd-modules-load from the
# kernel command line with the options tests/vivid uses for one webcam-like device; nothing
# of it is in the image. The journal (volatile in the image) is copied to the console, so
# vigint's log ends up in console.log.
append="console=ttyAMA0 $(echo "$cmdline" | tr ' ' '\n' | grep -v '^console=' | tr '\n' ' ')modules-load=vivid vivid.n_devs=1 vivid.node_types=0x1 vivid.input_types=0x0 panic=-1 systemd.journald.forward_to_console=1"
say "booting (TCG), rtsp://127.0.0.1:$rtsp_port/cam, http://127.0.0.1:$http_port/"
t0=$(date +%s.%N)
setpriv_cmd=()
command -v setpriv >/dev/null && setpriv_cmd=(setpriv --pdeathsig KILL)
"${setpriv_cmd[@]}" qemu-system-aarch64 -M virt -cpu cortex-a72 -accel tcg -smp 2 -m 1024 \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$work/kernel" -initrd "$work/initrd" -append "$append" \
  -drive "if=none,id=d0,file=$disk,format=raw" -device "virtio-blk-pci,drive=d0,romfile=" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$rtsp_port-:8554,hostfwd=tcp:127.0.0.1:$http_port-:8080" \
  -device "virtio-net-pci,netdev=n0,romfile=" \
  -serial "file:$work/console.log" \
  -monitor "unix:$work/monitor.sock,server=on,wait=off" &
qemu_pid=$!

since() { echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}'; }
alive() { kill -0 "$qemu_pid" 2>/dev/null; }
# wait_for SECONDS COMMAND...: retries COMMAND every half second.
wait_for() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@"; do
    alive || return 1
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.5
  done
}
# systemd colours its status lines: escape sequences sit between "Started" and the unit.
console_has() { grep -aq "$1" "$work/console.log" 2>/dev/null; }

if wait_for 300 console_has 'Started.*vigint\.service'; then
  t_ready=$(since)
  say "ok systemd started vigint.service (READY) at ${t_ready} s"
else
  tail -n 60 "$work/console.log" >&2 || true
  die "vigint.service was not started within 300 s"
fi

healthz() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$http_port/healthz")" = 200 ]; }
if wait_for 60 healthz; then
  say "ok GET /healthz 200 at $(since) s"
else
  fail "GET /healthz: $(curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$http_port/healthz" || true)"
fi

url=rtsp://127.0.0.1:$rtsp_port/cam
first_frame() {
  ffprobe -v error -rtsp_transport tcp -select_streams v:0 -count_frames -read_intervals '%+#1' \
    -show_entries stream=nb_read_frames -of default=nw=1:nk=1 "$url" 2>/dev/null | grep -qx 1
}
if wait_for 120 first_frame; then
  say "ok first RTSP frame decoded at $(since) s after QEMU started"
else
  fail "no RTSP frame from $url within 120 s"
fi
probe=$(ffprobe -v error -rtsp_transport tcp -select_streams v:0 -count_frames -read_intervals '%+3' \
  -show_entries stream=codec_name,width,height,nb_read_frames -of default=nw=1 "$url" 2>&1 || true)
frames=$(echo "$probe" | sed -n 's/^nb_read_frames=//p')
if echo "$probe" | grep -qx 'codec_name=h264' && echo "$probe" | grep -qx 'width=640' &&
  echo "$probe" | grep -qx 'height=480' && [ "${frames:-0}" -gt 10 ]; then
  say "ok ffprobe: h264 640x480, $frames frames in 3 s"
else
  fail "ffprobe: $probe"
fi

# The first-boot file: reported applied and removed; its admin password is the login now.
status=$(curl -s -m 10 -u "admin:$password" "http://127.0.0.1:$http_port/api/v1/status" || true)
fb=$(echo "$status" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("first_boot")))' 2>/dev/null || echo "unreadable: $status")
if echo "$fb" | python3 -c 'import json,sys; f=json.load(sys.stdin); sys.exit(0 if f and f["applied"] and f["removed"] and not f["error"] else 1)' 2>/dev/null; then
  say "ok first-boot file applied and removed (the admin login it set works): $fb"
else
  fail "first-boot file: $fb"
fi

# Clean power-off (QEMU's power button; systemd-logind), then look inside the disk.
echo system_powerdown | socat - "UNIX-CONNECT:$work/monitor.sock" >/dev/null || true
end=$((SECONDS + 90))
while alive && [ "$SECONDS" -lt "$end" ]; do sleep 0.5; done
if alive; then
  fail "no power-off within 90 s of the power button"
  kill "$qemu_pid" 2>/dev/null || true
else
  say "ok powered off at $(since) s"
fi
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""

if mdir -i "$fat" ::vigint.json >/dev/null 2>&1; then
  fail "vigint.json is still on the boot partition"
else
  say "ok vigint.json is gone from the boot partition"
fi
if mcopy -n -i "$fat" ::vigint.json.example - 2>/dev/null | python3 -c 'import json, sys; json.load(sys.stdin)'; then
  say "ok vigint.json.example (JSON) is on the boot partition for the user to copy"
else
  fail "no readable vigint.json.example on the boot partition"
fi
root_size_after=$(sfdisk -d "$disk" | sed -n "s|^${disk}2 : .*size= *\([0-9]*\),.*|\1|p")
disk_sectors=$(($(stat -c %s "$disk") / 512))
# growpart leaves the last partial MiB of the disk unused.
if [ "$((disk_sectors - root_start - root_size_after))" -lt 2048 ] && [ "$root_size_after" -gt "$root_size_before" ]; then
  say "ok root partition grown to the end of the disk ($root_size_before -> $root_size_after sectors)"
else
  fail "root partition not grown: $root_size_before -> $root_size_after sectors, disk $disk_sectors"
fi
# The config the first-boot file went into: the camera's mode, the password only as a hash.
dd if="$disk" of="$work/root.ext4" bs=512 skip="$root_start" count="$root_size_after" conv=sparse status=none
# A debugfs request on the root file system as the card holds it after the boot.
in_root() { debugfs -R "$1" "$work/root.ext4" 2>/dev/null; }
saved=$(in_root 'cat /etc/vigint/vigint.json' || true)
if echo "$saved" | python3 -c '
import json, sys
c = json.load(sys.stdin)
cam = c["paths"]["cam"]
ok = cam["width"] == 640 and cam["height"] == 480 and "password_hash" in c["admin"] and "password" not in c["admin"]
sys.exit(0 if ok else 1)' 2>/dev/null; then
  say "ok /etc/vigint/vigint.json holds the first-boot settings (password as a hash only)"
else
  fail "/etc/vigint/vigint.json: $saved"
fi
# SD-card care, as the card holds it after a boot: no SSH server, root mounted noatime, no
# swap, the journal kept in RAM (nothing written under /var/log/journal during the boot).
if in_root 'stat /usr/sbin/sshd' | grep -q '^Inode:'; then
  fail "an SSH server is installed (/usr/sbin/sshd)"
else
  say "ok no SSH server (/usr/sbin/sshd absent)"
fi
fstab=$(in_root 'cat /etc/fstab')
if echo "$fstab" | grep -Eq '^[^#]*[[:space:]]/[[:space:]]+ext4[[:space:]]+[^[:space:]]*noatime' &&
  ! echo "$fstab" | grep -Eq '^[^#]*[[:space:]]swap[[:space:]]'; then
  say "ok fstab: root noatime, no swap"
else
  fail "fstab: $fstab"
fi
journald=$(in_root 'cat /etc/systemd/journald.conf.d/50-vigint-image.conf')
# `ls -p` prints /inode/mode/uid/gid/name/size/ per entry.
journal_files=$(in_root 'ls -p /var/log/journal' | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }')
if echo "$journald" | grep -qx 'Storage=volatile' && [ -z "$journal_files" ]; then
  say "ok journal in RAM (Storage=volatile; /var/log/journal empty after the boot)"
else
  fail "journal: config: $journald; files: $journal_files"
fi
fs_blocks=$(in_root stats | sed -n 's/^Block count: *//p')
say "root file system: ${fs_blocks:-?} blocks after the first boot"

if [ "$failed" = 0 ]; then
  say "all checks passed"
else
  say "console (last 80 lines):"
  tail -n 80 "$work/console.log" >&2 || true
  exit 1
fi
