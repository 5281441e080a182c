//! The HTTP issue's figures, measured against the real binary on loopback:
//! - memory the HTTP server adds: RSS of vigint with its HTTP server, idle and with 5 pages
//!   polling status every 2 s (as the phone page does), against vigint with HTTP off;
//! - latency of `GET /api/v1/status` (logged in) with 0 and with 50 RTSP clients playing.
//!
//! Run: `cargo bench --bench http_figures`. Prints figures; asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;

const PASSWORD: &str = "benchmark password";

fn setup(http: SocketAddr) {
    setup_admin(http, PASSWORD);
}

/// Median of several RSS readings a second apart (KiB).
fn settled_rss(s: &Server) -> u64 {
    let mut v: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_secs(1));
            s.rss_kib()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

/// One page: a keep-alive connection polling status every 2 s until `stop`.
fn poll_like_a_page(http: SocketAddr, stop: Arc<AtomicBool>) -> u32 {
    let mut conn = TcpStream::connect(http).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = admin(PASSWORD);
    let mut polls = 0;
    while !stop.load(Ordering::Relaxed) {
        write!(
            conn,
            "GET /api/v1/status HTTP/1.1\r\nHost: vigint\r\nX-Requested-With: vigint-page\r\n{auth}\r\n"
        )
        .expect("write");
        read_one_response(&mut conn);
        polls += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    polls
}

/// Reads one response with a Content-Length body from a keep-alive connection.
fn read_one_response(conn: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).expect("read head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let length: usize = header_of(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).expect("read body");
    status_of(&head)
}

fn memory() {
    let config = || serde_json::json!({ "paths": { "cam": pattern_path(640, 480, 15, 1000) } });
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut off = config();
    off["http"] = serde_json::json!({ "listen": taken.local_addr().expect("addr").to_string() });
    let without = Server::start(off);
    assert!(without.http.is_none());
    let with = Server::start(config());
    let http = with.http.expect("HTTP");
    setup(http);
    std::thread::sleep(Duration::from_secs(3));
    let base = settled_rss(&without);
    let idle = settled_rss(&with);
    let stop = Arc::new(AtomicBool::new(false));
    let pages: Vec<_> = (0..5)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || poll_like_a_page(http, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(20));
    let polling = settled_rss(&with);
    stop.store(true, Ordering::Relaxed);
    let polls: u32 = pages.into_iter().map(|p| p.join().expect("page")).sum();
    println!(
        "RSS (640x480@15 path): HTTP off {base} KiB; HTTP on, idle {idle} KiB (+{} KiB); \
         5 pages polling status every 2 s {polling} KiB (+{} KiB over HTTP off; {polls} polls)",
        idle as i64 - base as i64,
        polling as i64 - base as i64
    );
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `n` sequential status requests on fresh connections, as curl would send them (ms).
fn status_latencies(http: SocketAddr, n: usize) -> Vec<f64> {
    let auth = admin(PASSWORD);
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = request(http, "GET", "/api/v1/status", &auth);
            assert_eq!(r.status, 200, "{}", r.body);
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            std::thread::sleep(Duration::from_millis(20));
            ms
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn report(what: &str, v: &[f64]) {
    println!(
        "GET /api/v1/status {what}: median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} requests)",
        percentile(v, 50),
        percentile(v, 95),
        v[v.len() - 1],
        v.len()
    );
}

fn status_latency(rt: &tokio::runtime::Runtime) {
    let s =
        Server::start(serde_json::json!({ "paths": { "cam": pattern_path(1280, 720, 30, 2000) } }));
    let http = s.http.expect("HTTP");
    setup(http);
    std::thread::sleep(Duration::from_secs(2));
    report("with 0 RTSP clients", &status_latencies(http, 200));
    let url = s.url("cam");
    let clients = std::thread::spawn({
        let handle = rt.handle().clone();
        move || {
            handle.block_on(async {
                let mut tasks = Vec::new();
                for i in 0..50 {
                    let url = url.clone();
                    let kind = if i % 2 == 0 { "tcp" } else { "udp" };
                    tasks.push(tokio::spawn(async move {
                        retina_util::frames(&url, kind, None, Duration::from_secs(14)).await
                    }));
                }
                let mut ok = 0;
                for t in tasks {
                    ok += t.await.map(|r| r.is_ok()).unwrap_or(false) as usize;
                }
                ok
            })
        }
    });
    // Let all 50 sessions start playing first.
    wait_json_with(
        http,
        "/api/v1/paths/cam",
        &admin(PASSWORD),
        "50 clients never played",
        |v| {
            v["clients"]["tcp"].as_u64().unwrap_or(0) + v["clients"]["udp"].as_u64().unwrap_or(0)
                >= 50
        },
    );
    let under_load = status_latencies(http, 200);
    let ok = clients.join().expect("clients");
    report(
        &format!("with 50 RTSP clients playing 720p30 2 Mbit/s ({ok}/50 sessions clean)"),
        &under_load,
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    memory();
    status_latency(&rt);
}
