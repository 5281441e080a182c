//! The recording issue's figures, measured against the real binary on ext4:
//! - write amplification: bytes the kernel wrote to the block device for vigint
//!   (`/proc/PID/io` `write_bytes`, which counts file data, not the journal) divided by the
//!   media bytes encoded, at 2 Mbit/s 720p30 with the default fsync cadence (every fragment);
//! - CPU cost of recording one such path: process CPU with recording on minus off.
//!
//! Run: `cargo bench --bench record_figures`. Prints figures; asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::http::*;
use common::*;

const SECONDS: u64 = 30;

fn config(record: bool) -> serde_json::Value {
    serde_json::json!({
        "recording": { "record": record },
        "paths": { "cam": pattern_path(1280, 720, 30, 2000) }
    })
}

fn io_write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| {
                    l.strip_prefix("write_bytes: ")
                        .map(|v| v.trim().parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

/// (CPU % of one core, media bytes encoded, bytes written to disk) over `SECONDS`.
fn measure(record: bool) -> (f64, u64, u64) {
    let s = Server::start(config(record));
    let http = s.http.expect("HTTP");
    std::thread::sleep(Duration::from_secs(3));
    let bytes = || {
        get(http, "/api/v1/paths/cam").json()["bytes"]
            .as_u64()
            .unwrap_or(0)
    };
    let (cpu0, media0, io0) = (s.cpu_ticks(), bytes(), io_write_bytes(s.pid()));
    std::thread::sleep(Duration::from_secs(SECONDS));
    let (cpu1, media1, io1) = (s.cpu_ticks(), bytes(), io_write_bytes(s.pid()));
    let cpu = (cpu1 - cpu0) as f64 / SECONDS as f64;
    (cpu, media1 - media0, io1 - io0)
}

fn main() {
    let (cpu_off, _, _) = measure(false);
    let (cpu_on, media, written) = measure(true);
    println!(
        "720p30 at 2 Mbit/s for {SECONDS} s: media {} KiB, written to disk {} KiB: write amplification {:.3}",
        media / 1024,
        written / 1024,
        written as f64 / media.max(1) as f64
    );
    println!(
        "server CPU: recording off {cpu_off:.1} %, on {cpu_on:.1} % of one core: recording costs {:.1} %",
        cpu_on - cpu_off
    );
}
