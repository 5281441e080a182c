//! The figures of the sources milestone (issue 15), measured against the real binary on
//! loopback:
//!
//! - `joins`: key frames a path makes while 50 RTSP viewers join within 2 s, with the
//!   forced-IDR limit off (every join may force one, as before) and at its default (1 s),
//!   side by side with a window without joins.
//!
//! Run: `cargo bench --bench source_figures [joins]` (needs ffmpeg, GStreamer:
//! `scripts/install-deps.sh test`). Prints figures; asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

/// Key frames `path` published so far, from the status API.
fn idr_frames(s: &Server, path: &str) -> u64 {
    common::http::get(s.http.expect("HTTP"), &format!("/api/v1/paths/{path}")).json()["idr_frames"]
        .as_u64()
        .expect("idr_frames")
}

/// IDRs in a 20 s window in which `joiners` RTSP viewers (retina, TCP) join, one every 40 ms
/// (50 in 2 s), each watching to the end of the window.
fn idrs_in_window(rt: &tokio::runtime::Runtime, min_interval: &str, joiners: usize) -> u64 {
    let mut cam = pattern_path(640, 480, 30, 1000);
    // Natural key frames every 10 s: two in the window.
    cam["idr_interval_s"] = 10.into();
    cam["forced_idr_min_interval"] = min_interval.into();
    let s = Server::start(serde_json::json!({ "paths": { "cam": cam } }));
    std::thread::sleep(Duration::from_secs(3));
    let url = s.url("cam");
    let before = idr_frames(&s, "cam");
    let window = Duration::from_secs(20);
    let t0 = Instant::now();
    let ok = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..joiners {
            let url = url.clone();
            let left = window.saturating_sub(t0.elapsed());
            tasks.push(tokio::spawn(async move {
                retina_util::frames(&url, "tcp", None, left).await
            }));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.expect("task").is_ok());
        }
        tokio::time::sleep(window.saturating_sub(t0.elapsed())).await;
        ok
    });
    let idrs = idr_frames(&s, "cam") - before;
    println!(
        "  forced_idr_min_interval {min_interval:>3}, {joiners:>2} joiners ({ok} played): {idrs} IDRs in 20 s"
    );
    idrs
}

fn joins(rt: &tokio::runtime::Runtime) {
    println!("joins: 640x480@30, natural IDR every 10 s, 50 viewers joining within 2 s");
    let none = idrs_in_window(rt, "1s", 0);
    let unlimited = idrs_in_window(rt, "0s", 50);
    let limited = idrs_in_window(rt, "1s", 50);
    println!(
        "  extra IDRs from the joins: {} without a limit, {} with the 1 s limit",
        unlimited.saturating_sub(none),
        limited.saturating_sub(none)
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if wants("joins") {
        joins(&rt);
    }
}
