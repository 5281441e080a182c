//! The figures the core milestone reports, measured against the real binary on loopback:
//! start-to-first-frame, join-to-first-frame, server CPU and RSS with 1/10/50 clients of a
//! 2 Mbit/s 720p30 stream, and capture-to-client latency read from the burned-in code.
//!
//! Run: `cargo bench --bench figures` (needs ffmpeg: `scripts/install-deps.sh test`).
//! Prints figures; asserts nothing about speed (timing goals live here, not in tests).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::latency::{ffmpeg_latencies, median, percentile};
use common::*;
use futures::StreamExt;
use retina::client::{
    PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::CodecItem;

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

fn config() -> serde_json::Value {
    serde_json::json!({ "paths": { "cam": pattern_path(W, H, FPS, 2000) } })
}

/// Time from DESCRIBE to the first video frame for one retina client.
async fn first_frame(url: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut s = Session::describe(url, SessionOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    s.setup(
        0,
        SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut d = s
        .play(PlayOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .demuxed()
        .map_err(|e| e.to_string())?;
    while let Some(item) = d.next().await {
        if let CodecItem::VideoFrame(_) = item.map_err(|e| e.to_string())? {
            return Ok(t0.elapsed());
        }
    }
    Err("no frame".into())
}

fn start_to_first_frame(rt: &tokio::runtime::Runtime) {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let s = Server::start(config());
        let url = s.url("cam");
        rt.block_on(first_frame(&url)).expect("first frame");
        // Measured from the process spawn, not from the listener being up.
        samples.push(s.started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "start to first frame at a client: median {:.0} ms (5 runs: {:?})",
        median(samples.clone()),
        samples.iter().map(|v| *v as u32).collect::<Vec<_>>()
    );
}

fn join_to_first_frame(rt: &tokio::runtime::Runtime) {
    let s = Server::start(config());
    std::thread::sleep(Duration::from_secs(1));
    let url = s.url("cam");
    let mut samples = Vec::new();
    for i in 0..10 {
        // Join at different points of the group of pictures.
        std::thread::sleep(Duration::from_millis(137 * (i % 7)));
        let t = rt.block_on(first_frame(&url)).expect("first frame");
        samples.push(t.as_secs_f64() * 1000.0);
    }
    println!(
        "join a running stream to first frame: median {:.0} ms, max {:.0} ms (10 joins)",
        median(samples.clone()),
        samples.iter().cloned().fold(0.0, f64::max)
    );
}

fn load(rt: &tokio::runtime::Runtime) {
    let s = Server::start(config());
    std::thread::sleep(Duration::from_secs(2));
    let url = s.url("cam");
    let measure = |n: usize| {
        let cpu0 = s.cpu_ticks();
        let t0 = Instant::now();
        let secs = 10;
        let results = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..n {
                let url = url.clone();
                let kind = if i % 2 == 0 { "tcp" } else { "udp" };
                tasks.push(tokio::spawn(async move {
                    retina_util::frames(&url, kind, None, Duration::from_secs(secs)).await
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("task"));
            }
            out
        });
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (s.cpu_ticks() - cpu0) as f64 / 100.0;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        (cpu / wall * 100.0, s.rss_kib(), ok)
    };
    let cpu0 = s.cpu_ticks();
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu = (s.cpu_ticks() - cpu0) as f64 / 5.0;
    println!(
        "0 clients: server CPU {idle_cpu:.1}% of one core (capture + 720p30 encode), RSS {} KiB",
        s.rss_kib()
    );
    for n in [1, 10, 50] {
        let (cpu, rss, ok) = measure(n);
        println!("{n} clients (half TCP, half UDP): server CPU {cpu:.1}% of one core, RSS {rss} KiB, {ok}/{n} sessions clean");
    }
}

fn latency() {
    require("ffmpeg");
    let s = Server::start(config());
    std::thread::sleep(Duration::from_secs(1));
    let steady = ffmpeg_latencies(&s.url("cam"), W, H, FPS, 8);
    if steady.is_empty() {
        println!("latency: no frames decoded");
        return;
    }
    let max = steady.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "capture-to-client latency at 720p30 (burned-in code, decoded by ffmpeg, {} frames): median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        steady.len(),
        median(steady.clone()),
        percentile(steady, 95),
        max
    );
}

fn main() {
    // `cargo bench` passes --bench; any other argument filters nothing here.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    start_to_first_frame(&rt);
    join_to_first_frame(&rt);
    latency();
    load(&rt);
}
