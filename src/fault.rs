//! Fault injection for tests of the real binary (a stalled SD card, a hung capture thread).
//!
//! Inert unless the environment variable `VIGINT_FAULTS` names a directory when the process
//! starts; then a fault is on while a file of its name exists there, so a test can switch it
//! on and off from outside. Production never sets the variable: the only cost is one
//! `OnceLock` read where a fault could apply.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Writes and syncs of recordings block while this fault is on.
pub const STALL_STORAGE: &str = "stall-storage";
/// The capture thread blocks inside its loop while this fault is on, without reporting an
/// error: the wedge the systemd watchdog must catch.
pub const HANG_CAPTURE: &str = "hang-capture";

fn dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("VIGINT_FAULTS").map(PathBuf::from))
        .as_deref()
}

/// True when fault injection is enabled at all.
pub fn enabled() -> bool {
    dir().is_some()
}

/// True while the fault `name` is switched on.
pub fn active(name: &str) -> bool {
    dir().is_some_and(|d| d.join(name).exists())
}

/// Blocks while the fault `name` is on (as a write to a stalled card would).
pub fn wait_while(name: &str) {
    while active(name) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
