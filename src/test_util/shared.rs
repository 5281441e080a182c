//! Test helpers shared by the unit tests (`crate::test_util`) and the integration tests
//! (`tests/common` includes this file by path): a scratch directory removed on drop, the
//! check that a tool a test runs is installed (failing with the install line, never
//! skipping), and a small deterministic random generator so failures reproduce.
//! Self-contained: no `crate::` paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A unique scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vigint-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True when `tool` is on PATH.
fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails with the install line when a tool the test needs is missing (never a silent skip).
pub fn require(tool: &str) {
    assert!(
        on_path(tool),
        "`{tool}` is missing: run `scripts/install-deps.sh test` (or: sudo apt-get install -y ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp)"
    );
}

/// Like `require`, for tools another `scripts/install-deps.sh` group installs: fails with
/// that group's command (never a silent skip).
pub fn require_group(tool: &str, group: &str) {
    assert!(
        on_path(tool),
        "`{tool}` is missing: run `scripts/install-deps.sh {group}`"
    );
}

/// xorshift64 (13, 7, 17): deterministic noise for fuzz-style tests, so a failure
/// reproduces from its seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
