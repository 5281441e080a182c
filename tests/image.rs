//! The SD-card image (image/build.sh) boots: its own Debian arm64 kernel, initramfs and root
//! filesystem in QEMU's aarch64 `virt` machine (TCG), with the vivid camera driver as the
//! camera. `tests/image/boot-test.sh` does the boot and the checks (first-boot file applied and
//! removed, vigint.service READY, `/healthz` 200 and an RTSP stream through ports forwarded to
//! 127.0.0.1, root partition grown, clean power-off) and prints the figures; this test runs it
//! and fails with its output when any check fails.
//!
//! `#[ignore]`d: it builds the image with `image/build.sh` (about a minute with the base
//! system cached, about 8 minutes without; VIGINT_IMAGE=FILE tests that image instead) and
//! boots a full Debian under TCG (1-2 minutes). `scripts/test-all.sh` (CI) runs it last:
//!   cargo test --release --test image -- --ignored --nocapture
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{require_group, run};

#[test]
#[ignore = "boots the SD-card image in QEMU (minutes); see the file's header"]
fn the_image_boots_and_streams_the_camera() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for tool in [
        "qemu-system-aarch64",
        "mcopy",
        "sfdisk",
        "debugfs",
        "ffprobe",
        "socat",
    ] {
        require_group(tool, "image");
    }
    // The image of this tree: built every time (about a minute once image/build.sh has the
    // base system cached), unless VIGINT_IMAGE names one to test.
    let image = match std::env::var_os("VIGINT_IMAGE") {
        Some(image) => PathBuf::from(image),
        None => {
            require_group("mmdebstrap", "image");
            let out = repo.join("target/image");
            let built = run(
                Command::new(repo.join("image/build.sh"))
                    .arg("--out")
                    .arg(&out),
                Duration::from_secs(3600),
            );
            assert!(built.ok, "image/build.sh failed:\n{}", built.stderr);
            // Its figures: build times and sizes.
            for line in built.stderr.lines().filter(|l| l.starts_with("image: ")) {
                eprintln!("{line}");
            }
            out.join("vigint-arm64.img")
        }
    };
    let test = run(
        Command::new(repo.join("tests/image/boot-test.sh")).arg(&image),
        Duration::from_secs(900),
    );
    eprintln!("{}", test.stderr);
    assert!(test.ok, "the image failed its boot test (output above)");
    assert!(
        test.stderr.contains("image-test: all checks passed"),
        "boot-test.sh ended without its verdict"
    );
}
