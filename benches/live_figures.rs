//! The figures of live video in the browser (issue 16), measured against the real binary on
//! loopback, one vigint serving its 720p30 test pattern at 2 Mbit/s (a key frame every
//! second, no live-viewer limits):
//!
//! - `latency`: glass-to-glass latency in headless Chromium, from the capture time burned
//!   into each picture to when the browser shows it (`benches/browser/latency.mjs`: a
//!   `<video>` through requestVideoFrameCallback, a `<canvas>` player through its draws),
//!   median and p95, side by side on the same stream:
//!   - vigint's live view (`/api/v1/paths/cam/live`, fMP4 over a WebSocket into Media Source
//!     Extensions), played by the minimal player `benches/browser/live_player.html`; with
//!     `--page` by vigint's own phone page instead (`http://ADDRESS/`, logged in through its
//!     form, the element `--selector CSS`, default `#cards video`: the first card's);
//!   - the design the stream-viewer API comes from: node-rtsp-stream (npm) running the system
//!     ffmpeg to turn vigint's RTSP of the same path into MPEG-1 over a WebSocket, played by
//!     JSMpeg (`benches/browser/jsmpeg_peer.mjs`, `jsmpeg_player.html`);
//!   - for reference, ffmpeg decoding the RTSP itself with its low-delay flags (no browser).
//! - `load`: vigint's CPU (% of one core, over 30 s windows) and RSS with 0, 1, 10 and 25
//!   live viewers (tokio-tungstenite clients reading every message), next to the same with
//!   RTSP viewers (retina, half TCP, half UDP, as `source_figures`' fanout), each kind in a
//!   fresh process with the same config; and whether every viewer got every frame (fMP4
//!   fragment sequence numbers, RTP timestamps without a gap).
//!
//! Run: `cargo bench --bench live_figures -- [latency] [load] [--page [--selector CSS]]
//! [--seconds N] [--runs R]` (N: each browser session's window, default 20 s, after 3 s;
//! R: sessions per player, alternating, default 3: an MSE player keeps the distance to the
//! live edge it settled at on start, so sessions differ more than pictures within one).
//! Needs ffmpeg, node 18+, Debian's Chromium and `benches/browser/node_modules`:
//! `scripts/install-deps.sh bench`. Takes about 12 minutes (the machine quiet:
//! `flock /tmp/vigint-cargo.lock cargo bench ...` where others share it). Prints figures;
//! asserts nothing about speed.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::require_browser_tools;
use common::http::{setup_admin, wait_json};
use common::latency::{ffmpeg_latency, median};
use common::procs::*;
use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use vigint::mux::fmp4;

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;
const KBPS: u32 = 2000;
const WINDOW: Duration = Duration::from_secs(30);
const WARMUP: Duration = Duration::from_secs(5);
const PASSWORD: &str = "live-bench-admin-1";
const NPM_DIR: &str = "benches/browser";

/// The one config of every vigint here: the test pattern as `cam`, no live-viewer limits.
fn server() -> Server {
    let s = Server::start(serde_json::json!({
        "http": { "max_live_viewers": 0, "max_live_viewers_per_client": 0 },
        "paths": { "cam": pattern_path(W, H, FPS, KBPS) }
    }));
    let http = s.http.expect("HTTP");
    wait_json(http, "/api/v1/paths/cam", "the pattern streams", |v| {
        v["frames"].as_u64().is_some_and(|f| f > u64::from(FPS))
    });
    s
}

fn bench_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(NPM_DIR)
        .join(name)
        .display()
        .to_string()
}

struct Opts {
    page: bool,
    selector: String,
    seconds: u32,
    /// Browser sessions per player.
    runs: u32,
}

/// `latency.mjs` on `url`'s `selector` for `seconds`, with its `extra` options; its JSON.
fn browser_latency(url: &str, selector: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let r = run(
        Command::new("node")
            .arg(bench_file("latency.mjs"))
            .args([url, selector, &seconds.to_string()])
            .args(extra),
        Duration::from_secs(u64::from(seconds) + 120),
    );
    assert!(
        r.ok,
        "latency.mjs on {url} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    let line = r.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("latency.mjs printed no JSON ({e}): {line}"))
}

fn latency_row(what: &str, v: &serde_json::Value) {
    let n = |k: &str| v[k].as_i64().unwrap_or(-1);
    let dropped = match v["dropped_by_video"].as_i64() {
        Some(d) => format!(", {d} dropped by <video> (whole run)"),
        None => String::new(),
    };
    println!(
        "  {what:<48} median {:>4} ms, p95 {:>4} ms | {} pictures, {} undecodable, {} skipped, {} backwards{dropped}, first picture after {} ms{}",
        n("median_ms"),
        n("p95_ms"),
        n("count"),
        n("undecodable"),
        n("skipped"),
        n("backwards"),
        n("first_picture_ms"),
        match v["problems"].as_array() {
            Some(p) if !p.is_empty() => format!(" | page problems: {p:?}"),
            _ => String::new(),
        }
    );
}

fn latency(opts: &Opts) {
    require("ffmpeg");
    require_browser_tools(NPM_DIR, "node-rtsp-stream", "bench");
    let secs = opts.seconds;
    println!(
        "latency: {W}x{H}@{FPS} test pattern at {KBPS} kbit/s, burned-in capture time to the picture shown, over {secs} s after 3 s"
    );
    let s = server();
    let http = s.http.expect("HTTP");
    let rtsp = s.url("cam");

    let (med, p95, n) = ffmpeg_latency(&rtsp, W, H, FPS, secs);
    println!(
        "  {:<48} median {med:>4.0} ms, p95 {p95:>4.0} ms | {n} pictures",
        "ffmpeg decoding the RTSP (no browser)"
    );

    // vigint's player and the peer's, in alternating browser sessions: an MSE player keeps
    // the distance to the live edge it settled at when it started, so sessions differ more
    // than pictures within one.
    let (ours_url, ours_selector, ours_extra) = if opts.page {
        setup_admin(http, PASSWORD);
        let extra = vec!["--password".to_string(), PASSWORD.to_string()];
        (format!("http://{http}/"), opts.selector.clone(), extra)
    } else {
        let extra = vec!["--serve".to_string(), bench_file("live_player.html")];
        let url = format!("http://{http}/bench/live_player.html?path=cam");
        (url, "video".to_string(), extra)
    };
    let ours_what = if opts.page {
        "vigint live view, the phone page (MSE)"
    } else {
        "vigint live view, fMP4 over WebSocket into MSE"
    };
    let (page_port, ws_port) = (free_port(), free_port());
    let mut peer = Command::new("node");
    peer.arg(bench_file("jsmpeg_peer.mjs")).args([
        rtsp.as_str(),
        &page_port.to_string(),
        &ws_port.to_string(),
        &KBPS.to_string(),
    ]);
    let peer = start_ready(peer, "node-rtsp-stream (jsmpeg_peer.mjs)");
    let peer_url = format!("http://127.0.0.1:{page_port}/?ws={ws_port}");
    let peer_what = "node-rtsp-stream (ffmpeg, MPEG-1) + JSMpeg";
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..opts.runs {
        let extra: Vec<&str> = ours_extra.iter().map(String::as_str).collect();
        let v = browser_latency(&ours_url, &ours_selector, secs, &extra);
        latency_row(ours_what, &v);
        ours.push(v);
        let v = browser_latency(&peer_url, "#player", secs, &[]);
        latency_row(peer_what, &v);
        theirs.push(v);
    }
    drop(peer);
    for (what, runs) in [(ours_what, &ours), (peer_what, &theirs)] {
        let of = |k: &str| -> Vec<String> {
            runs.iter()
                .map(|v| v[k].as_i64().unwrap_or(-1).to_string())
                .collect()
        };
        let medians = runs
            .iter()
            .filter_map(|v| v["median_ms"].as_f64())
            .collect();
        println!(
            "  {what:<48} median of {} sessions {:.0} ms (medians {} ms; p95s {} ms)",
            runs.len(),
            median(medians),
            of("median_ms").join(" / "),
            of("p95_ms").join(" / ")
        );
    }
}

/// What one viewer got.
#[derive(Default)]
struct Played {
    frames: usize,
    /// Steps that were not the next frame (frames skipped or repeated).
    gaps: usize,
}

/// The track of an init segment (`ftyp` + `moov`).
fn init_track(bytes: &[u8]) -> Result<fmp4::TrackInfo, String> {
    let mut at = 0usize;
    while let Some(h) = fmp4::parse_box_header(&bytes[at..])? {
        let size = h.size.ok_or("a box without a size")? as usize;
        let end = at
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or("box past the end")?;
        if &h.kind == b"moov" {
            return fmp4::parse_moov(&bytes[at..end]);
        }
        at = end;
    }
    Err("no moov in the init segment".into())
}

/// A live view viewer reading every message for `duration`: counts the fragments and checks
/// their sequence numbers follow on (the live muxer numbers each frame once per path).
async fn ws_viewer(http: SocketAddr, duration: Duration) -> Result<Played, String> {
    let url = format!("ws://{http}/api/v1/paths/cam/live");
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let deadline = tokio::time::Instant::now() + duration;
    let (mut track, mut last, mut played) = (None, None::<u32>, Played::default());
    loop {
        let m = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => break,
            Ok(None) => return Err(format!("closed after {} frames", played.frames)),
            Ok(Some(Err(e))) => return Err(format!("after {} frames: {e}", played.frames)),
            Ok(Some(Ok(m))) => m,
        };
        match (m, &track) {
            // A codec message: an init segment follows.
            (Message::Text(_), _) => track = None,
            (Message::Binary(b), None) => track = Some(init_track(&b)?),
            (Message::Binary(b), Some(t)) => {
                let h = fmp4::parse_box_header(&b)?.ok_or("a fragment too short")?;
                let size = h.size.ok_or("moof without a size")? as usize;
                let moof = b.get(..size).ok_or("moof past the message")?;
                let seq = fmp4::parse_moof(moof, t)?.sequence;
                if last.is_some_and(|l| seq != l.wrapping_add(1)) {
                    played.gaps += 1;
                }
                last = Some(seq);
                played.frames += 1;
            }
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    Ok(played)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Live,
    Rtsp,
}

/// vigint's CPU (% of one core) over `WINDOW` and RSS (KiB) after it, while `n` viewers of
/// `kind` watch, after `WARMUP` for them to join; and how many got every frame.
fn load_window(
    rt: &tokio::runtime::Runtime,
    s: &Server,
    kind: Kind,
    n: usize,
) -> (f64, u64, usize) {
    let watch = WARMUP + WINDOW + Duration::from_secs(2);
    let (http, url, pid) = (s.http.expect("HTTP"), s.url("cam"), s.pid());
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                match kind {
                    Kind::Live => ws_viewer(http, watch).await,
                    Kind::Rtsp => {
                        let transport = if i % 2 == 0 { "tcp" } else { "udp" };
                        retina_util::frames(&url, transport, None, watch)
                            .await
                            .map(|stamps| Played {
                                frames: stamps.len(),
                                gaps: retina_util::gaps(&stamps, FPS),
                            })
                    }
                }
            }));
        }
        tokio::time::sleep(WARMUP).await;
        let (cpu, rss) = cpu_and_rss_over(pid, WINDOW).await;
        // Every frame: no gap, and (joining takes up to a key-frame interval) nearly all of
        // the time watched.
        let least = (watch.as_secs_f64() - 2.0) * f64::from(FPS);
        let mut clean = 0;
        for t in tasks {
            match t.await.expect("viewer task") {
                Ok(p) if p.gaps == 0 && p.frames as f64 >= least => clean += 1,
                Ok(p) => eprintln!("  a viewer got {} frames with {} gaps", p.frames, p.gaps),
                Err(e) => eprintln!("  a viewer failed: {e}"),
            }
        }
        (cpu, rss, clean)
    })
}

fn load(rt: &tokio::runtime::Runtime) {
    println!(
        "load: vigint serving its {W}x{H}@{FPS} test pattern at {KBPS} kbit/s; CPU over {} s windows (% of one core), RSS after",
        WINDOW.as_secs()
    );
    println!(
        "  {:<28} {:>7} {:>9} {:>14} {:>12}",
        "viewers", "CPU %", "RSS MiB", "CPU %/viewer", "every frame"
    );
    for (kind, name) in [
        (Kind::Live, "live view (WS fMP4)"),
        (Kind::Rtsp, "RTSP (retina TCP/UDP)"),
    ] {
        let s = server();
        std::thread::sleep(Duration::from_secs(2));
        let mut rows = Vec::new();
        for n in [0usize, 1, 10, 25] {
            let (cpu, rss, clean) = load_window(rt, &s, kind, n);
            rows.push((n, cpu, rss));
            let base_cpu = rows[0].1;
            let per = if n == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", (cpu - base_cpu) / n as f64)
            };
            println!(
                "  {:<28} {cpu:>7.1} {:>9.1} {per:>14} {:>12}",
                format!("{n:>2} {name}"),
                rss as f64 / 1024.0,
                if n == 0 {
                    "-".to_string()
                } else {
                    format!("{clean}/{n}")
                }
            );
        }
        // The slope past the first viewer (which also starts the live muxer), less
        // sensitive to one window's noise than each row.
        if let (Some(one), Some(last)) = (rows.get(1), rows.last()) {
            let added = (last.0 - one.0) as f64;
            println!(
                "  {name}, per viewer added from {} to {}: {:.3} % of a core, {:.0} KiB RSS",
                one.0,
                last.0,
                (last.1 - one.1) / added,
                (last.2 as f64 - one.2 as f64) / added
            );
        }
    }
}

fn main() {
    let mut which = Vec::new();
    let mut opts = Opts {
        page: false,
        selector: "#cards video".into(),
        seconds: 20,
        runs: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--page" => opts.page = true,
            "--selector" => opts.selector = args.next().expect("--selector CSS"),
            "--runs" => {
                opts.runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--runs N (browser sessions per player)")
            }
            "--seconds" => {
                opts.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N (whole seconds)")
            }
            // cargo's own (--bench).
            other if other.starts_with('-') => {}
            other => which.push(other.to_string()),
        }
    }
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if wants("latency") {
        latency(&opts);
    }
    if wants("load") {
        load(&rt);
    }
}
