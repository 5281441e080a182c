//! The figures of the sources milestone (issue 15), measured against the real binary on
//! loopback:
//!
//! - `joins`: key frames a path makes while 50 RTSP viewers join within 2 s, with the
//!   forced-IDR limit off (every join may force one, as before) and at its default (1 s),
//!   side by side with a window without joins.
//! - `fanout`: CPU and RSS of a relay of a 2 Mbit/s 720p30 stream with 1, 10 and 50
//!   viewers (retina, half TCP, half UDP), measured over 60 s windows, vigint side by side
//!   with GStreamer's rtsp-server relaying the same stream (`gst_camera.py --relay`); the
//!   upstream is another vigint serving its test pattern.
//! - `latency`: capture-to-viewer latency from the burned-in code, decoded by ffmpeg:
//!   direct from the upstream, through vigint's relay, through GStreamer's relay, and
//!   through a vigint publisher path fed by `ffmpeg -c copy`; the differences are what
//!   each hop adds.
//! - `reconnect`: a relayed camera (GStreamer's rtsp-server) killed for 3 s and restarted:
//!   time from its restart to frames flowing again through the relay.
//!
//! Run: `cargo bench --bench source_figures [joins] [fanout] [latency] [reconnect]` (needs
//! ffmpeg and GStreamer's rtsp-server: `scripts/install-deps.sh test`). Prints figures;
//! asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::latency::{ffmpeg_latency, median};
use common::procs::*;
use common::*;

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);

/// The upstream camera every relay pulls: vigint's 720p30 test pattern at 2 Mbit/s.
fn upstream() -> Server {
    Server::start(serde_json::json!({ "paths": { "cam": pattern_path(W, H, FPS, 2000) } }))
}

/// A vigint whose path `relay` pulls `url` over TCP.
fn vigint_relay(url: &str) -> Server {
    Server::start(serde_json::json!({ "paths": { "relay": { "source": url } } }))
}

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

/// CPU (% of one core) and RSS (KiB) of `pid` over `WINDOW` while `n` retina viewers (half
/// TCP, half UDP) play `url`, after 5 s for them to join; and how many played cleanly.
fn serve_window(rt: &tokio::runtime::Runtime, pid: u32, url: &str, n: usize) -> (f64, u64, usize) {
    let warmup = Duration::from_secs(5);
    let (cpu, rss, ok) = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = url.to_string();
            let kind = if i % 2 == 0 { "tcp" } else { "udp" };
            tasks.push(tokio::spawn(async move {
                retina_util::frames(&url, kind, None, warmup + WINDOW + Duration::from_secs(2))
                    .await
            }));
        }
        tokio::time::sleep(warmup).await;
        let (cpu, rss) = cpu_and_rss_over(pid, WINDOW).await;
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(
                t.await
                    .expect("task")
                    .is_ok_and(|f| f.len() > 60 * FPS as usize),
            );
        }
        (cpu, rss, ok)
    });
    (cpu, rss, ok)
}

fn fanout(rt: &tokio::runtime::Runtime) {
    println!(
        "fanout: a relayed 2 Mbit/s 720p30 stream, CPU of the relay process over {} s windows",
        WINDOW.as_secs()
    );
    let up = upstream();
    let source = up.url("cam");
    let ours = vigint_relay(&source);
    let port = free_port();
    let gst = gst_rtsp_server(port, &["--relay", &source]);
    let gst_url = format!("rtsp://127.0.0.1:{port}/cam");
    std::thread::sleep(Duration::from_secs(3));
    let mut rows = Vec::new();
    for n in [1usize, 10, 50] {
        let (v_cpu, v_rss, v_ok) = serve_window(rt, ours.pid(), &ours.url("relay"), n);
        let (g_cpu, g_rss, g_ok) = serve_window(rt, gst.pid(), &gst_url, n);
        println!(
            "  {n:>2} viewers: vigint {v_cpu:5.1}% CPU, RSS {:5.1} MiB ({v_ok}/{n} clean) | GStreamer rtsp-server {g_cpu:5.1}% CPU, RSS {:5.1} MiB ({g_ok}/{n} clean) | CPU ratio vigint/GStreamer {:.2}",
            v_rss as f64 / 1024.0,
            g_rss as f64 / 1024.0,
            v_cpu / g_cpu
        );
        rows.push((n, v_cpu, g_cpu));
    }
    if let (Some(one), Some(last)) = (rows.first(), rows.last()) {
        let per = |a: f64, b: f64| (b - a) / (last.0 - one.0) as f64;
        println!(
            "  CPU per added viewer (1 -> 50): vigint {:.2}% of a core, GStreamer {:.2}%",
            per(one.1, last.1),
            per(one.2, last.2)
        );
    }
}

fn latency() {
    require("ffmpeg");
    println!("latency: 720p30, burned-in capture time to ffmpeg's decoded frame (median, p95)");
    let up = upstream();
    let source = up.url("cam");
    let ours = vigint_relay(&source);
    let port = free_port();
    let _gst = gst_rtsp_server(port, &["--relay", &source]);
    // A publisher path fed by ffmpeg copying the upstream's stream.
    let publisher = Server::start(serde_json::json!({
        "users": [ { "name": "pub", "password": "bench-pub-pw", "permissions": [
            { "action": "publish" }, { "action": "read" } ] } ],
        "paths": { "door": { "source": "publisher" } }
    }));
    let _push = Proc(
        ffmpeg_copy_command(
            &source,
            &publisher.url_with_user("door", "pub", "bench-pub-pw"),
            "tcp",
        )
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg push"),
    );
    std::thread::sleep(Duration::from_secs(4));
    let latency_of = |url: &str| ffmpeg_latency(url, W, H, FPS, 8);
    let direct = latency_of(&source);
    let rows = [
        ("direct from the upstream", direct),
        ("through vigint's relay", latency_of(&ours.url("relay"))),
        (
            "through GStreamer's relay",
            latency_of(&format!("rtsp://127.0.0.1:{port}/cam")),
        ),
        (
            "through a vigint publisher path (ffmpeg -c copy)",
            latency_of(&publisher.url_with_user("door", "pub", "bench-pub-pw")),
        ),
    ];
    for (what, (med, p95, n)) in rows {
        println!(
            "  {what:<50} median {med:4.0} ms, p95 {p95:4.0} ms ({n} frames), added {:+4.0} ms",
            med - direct.0
        );
    }
}

fn reconnect() {
    println!("reconnect: GStreamer's rtsp-server as the camera, killed for 3 s, restarted");
    let port = free_port();
    let camera_url = format!("rtsp://127.0.0.1:{port}/cam");
    let mut camera = Some(gst_rtsp_server(port, &["--size", "640x480", "--fps", "30"]));
    let relay = vigint_relay(&camera_url);
    let http = relay.http.expect("HTTP");
    let frames = || {
        common::http::get(http, "/api/v1/paths/relay").json()["frames"]
            .as_u64()
            .unwrap_or(0)
    };
    let wait_frames_after = |n: u64, limit: Duration| -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if frames() > n {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    wait_frames_after(0, Duration::from_secs(20)).expect("the relay never streamed");
    let mut times = Vec::new();
    for round in 1..=5 {
        std::thread::sleep(Duration::from_secs(3));
        drop(camera.take());
        std::thread::sleep(Duration::from_secs(3));
        let before = frames();
        camera = Some(gst_rtsp_server(port, &["--size", "640x480", "--fps", "30"]));
        match wait_frames_after(before, Duration::from_secs(30)) {
            Some(t) => {
                println!(
                    "  round {round}: frames again {} ms after the camera was ready",
                    t.as_millis()
                );
                times.push(t.as_secs_f64() * 1000.0);
            }
            None => println!("  round {round}: no frames within 30 s"),
        }
    }
    println!(
        "  median {:.0} ms over {} rounds",
        median(times.clone()),
        times.len()
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
    if wants("latency") {
        latency();
    }
    if wants("reconnect") {
        reconnect();
    }
    if wants("fanout") {
        fanout(&rt);
    }
}
