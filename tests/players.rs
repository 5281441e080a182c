//! Real, independently written players against the real server on loopback: ffprobe, ffmpeg,
//! GStreamer and retina, over TCP and UDP. Each must receive at least 3 s of frames at the
//! configured rate; decoded output must carry gapless burned-in frame numbers.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const W: u32 = 640;
const H: u32 = 480;
const FPS: u32 = 30;

fn server() -> Server {
    Server::start(serde_json::json!({ "paths": { "cam": pattern_path(W, H, FPS, 1500) } }))
}

fn ffprobe_frames(url: &str, transport: &str) -> (u32, String) {
    require("ffprobe");
    let r = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-select_streams",
            "v:0",
            "-count_frames",
            "-read_intervals",
            "%+4",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=nw=1",
            url,
        ]),
        Duration::from_secs(30),
    );
    assert!(r.ok, "ffprobe {transport} failed: {}", r.stderr);
    assert!(r.stdout.contains("codec_name=h264"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("width={W}")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("height={H}")), "{}", r.stdout);
    let frames = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (frames, r.stderr)
}

fn check_ffprobe(transport: &str) {
    let s = server();
    let (frames, stderr) = ffprobe_frames(&s.url("cam"), transport);
    // 4 s read interval at 30 fps: at least 3 s worth.
    assert!(
        frames >= 3 * FPS,
        "ffprobe over {transport} read {frames} frames"
    );
    assert!(stderr.trim().is_empty(), "ffprobe warnings: {stderr}");
}

#[test]
fn ffprobe_tcp() {
    check_ffprobe("tcp");
}

#[test]
fn ffprobe_udp() {
    check_ffprobe("udp");
}

fn check_ffmpeg_decode(transport: &str) {
    let s = server();
    let (frames, stderr) = ffmpeg_gray_frames(&s.url("cam"), transport, 4, W, H);
    assert!(
        stderr.trim().is_empty(),
        "ffmpeg decode errors over {transport}: {stderr}"
    );
    assert!(
        frames.len() as u32 >= 3 * FPS,
        "ffmpeg over {transport}: only {} frames",
        frames.len()
    );
    let codes = codes_of(&frames, W, H);
    assert_gapless(&codes, &format!("ffmpeg over {transport}"));
    // Frame rate from the player's side: burned-in capture times span the frame count.
    let span_ms = codes[codes.len() - 1].capture_ms - codes[0].capture_ms;
    let expected_ms = (codes.len() as u64 - 1) * 1000 / FPS as u64;
    assert!(
        span_ms.abs_diff(expected_ms) <= 100,
        "capture times span {span_ms} ms for {} frames (expected {expected_ms})",
        codes.len()
    );
}

#[test]
fn ffmpeg_tcp_decodes_gapless() {
    check_ffmpeg_decode("tcp");
}

#[test]
fn ffmpeg_udp_decodes_gapless() {
    check_ffmpeg_decode("udp");
}

fn check_ffmpeg_record(transport: &str) {
    require("ffmpeg");
    let s = server();
    let dir = TempDir::new("rec");
    let out = dir.path().join("out.mp4");
    let r = run(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-rtsp_transport",
                transport,
                "-i",
                &s.url("cam"),
                "-t",
                "4",
                "-c",
                "copy",
            ])
            .arg(&out),
        Duration::from_secs(30),
    );
    assert!(r.ok, "ffmpeg record over {transport}: {}", r.stderr);
    assert!(
        r.stderr.trim().is_empty(),
        "ffmpeg record warnings: {}",
        r.stderr
    );
    let check = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&out)
            .args(["-f", "null", "-"]),
        Duration::from_secs(30),
    );
    assert!(check.ok, "decode of the recording failed: {}", check.stderr);
    assert!(
        check.stderr.trim().is_empty(),
        "the recording decodes with errors: {}",
        check.stderr
    );
    let count = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "default=nw=1:nk=1",
            ])
            .arg(&out),
        Duration::from_secs(30),
    );
    let n: u32 = count.stdout.trim().parse().unwrap_or(0);
    assert!(n >= 3 * FPS, "recording has {n} frames");
}

#[test]
fn ffmpeg_tcp_recording_decodes_cleanly() {
    check_ffmpeg_record("tcp");
}

#[test]
fn ffmpeg_udp_recording_decodes_cleanly() {
    check_ffmpeg_record("udp");
}

fn check_gstreamer(protocol: &str) {
    let s = server();
    gstreamer_gapless(&s.url("cam"), protocol);
}

fn gstreamer_gapless(url: &str, protocol: &str) {
    require("gst-launch-1.0");
    let dir = TempDir::new("gst");
    let out = dir.path().join("frames.gray");
    let frames = 4 * FPS;
    let pipeline = format!(
        "rtspsrc location={url} protocols={protocol} latency=200 ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=GRAY8 ! identity eos-after={frames} ! filesink location={}",
        out.display()
    );
    let r = run(
        Command::new("gst-launch-1.0")
            .arg("-e")
            .args(pipeline.split(' ')),
        Duration::from_secs(40),
    );
    // gst-launch may exit 1 on teardown noise after a good run: EOS is the verdict.
    assert!(
        r.stdout.contains("Got EOS from element"),
        "GStreamer over {protocol} from {url} did not reach EOS:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    let bytes = std::fs::read(&out).expect("gstreamer output");
    let decoded: Vec<Vec<u8>> = bytes
        .chunks_exact((W * H) as usize)
        .map(|c| c.to_vec())
        .collect();
    assert!(
        decoded.len() as u32 >= 3 * FPS,
        "GStreamer over {protocol}: {} frames",
        decoded.len()
    );
    let codes = codes_of(&decoded, W, H);
    assert_gapless(&codes, &format!("GStreamer over {protocol}"));
}

#[test]
fn gstreamer_tcp_decodes_gapless() {
    check_gstreamer("tcp");
}

#[test]
fn gstreamer_udp_decodes_gapless() {
    check_gstreamer("udp");
}

/// retina, a strict independent client: aborts on a broken FU-A or bad packets.
fn check_retina(transport: &str) {
    let s = server();
    retina_consecutive(&s.url("cam"), transport);
}

fn retina_consecutive(url: &str, transport: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stamps = rt
        .block_on(retina_client::frames(
            url,
            transport,
            None,
            Duration::from_secs(4),
        ))
        .unwrap_or_else(|e| panic!("retina over {transport} from {url}: {e}"));
    assert!(
        stamps.len() as u32 >= 3 * FPS,
        "retina over {transport}: {} frames",
        stamps.len()
    );
    retina_client::assert_consecutive(&stamps, FPS, &format!("retina over {transport}"));
}

#[test]
fn retina_tcp() {
    check_retina("tcp");
}

#[test]
fn retina_udp() {
    check_retina("udp");
}

mod retina_client {
    pub use super::common::retina_util::*;
}

#[test]
fn several_paths_serve_at_once() {
    require("ffprobe");
    let s = Server::start(serde_json::json!({ "paths": {
        "front": pattern_path(640, 480, 30, 1000),
        "back": pattern_path(320, 240, 15, 300),
    } }));
    let probe = |path: &str, transport: &'static str| {
        let url = s.url(path);
        std::thread::spawn(move || {
            run(
                Command::new("ffprobe")
                    .args(["-v", "error", "-rtsp_transport", transport])
                    .args([
                        "-select_streams",
                        "v:0",
                        "-count_frames",
                        "-read_intervals",
                        "%+3",
                    ])
                    .args([
                        "-show_entries",
                        "stream=width,height,nb_read_frames",
                        "-of",
                        "default=nw=1",
                        &url,
                    ]),
                Duration::from_secs(30),
            )
        })
    };
    let front = probe("front", "tcp");
    let back = probe("back", "udp");
    let front = front.join().expect("front");
    let back = back.join().expect("back");
    assert!(
        front.ok && front.stdout.contains("width=640") && front.stdout.contains("height=480"),
        "{} {}",
        front.stdout,
        front.stderr
    );
    assert!(
        back.ok && back.stdout.contains("width=320") && back.stdout.contains("height=240"),
        "{} {}",
        back.stdout,
        back.stderr
    );
}

/// A server listening on `[::]` (dual stack): UDP to IPv4 clients (seen as
/// `::ffff:127.0.0.1`) and to IPv6 clients.
fn dual_stack_server() -> Server {
    let s = Server::start(serde_json::json!({
        "rtsp": { "listen": "[::]:0" },
        "paths": { "cam": pattern_path(W, H, FPS, 1000) }
    }));
    assert!(
        s.rtsp.ip().is_unspecified() && s.rtsp.is_ipv6(),
        "{}",
        s.rtsp
    );
    s
}

const LOOPBACKS: [&str; 2] = ["127.0.0.1", "::1"];

#[test]
fn dual_stack_udp_ffprobe() {
    let s = dual_stack_server();
    for host in LOOPBACKS {
        let (frames, stderr) = ffprobe_frames(&s.url_via(host, "cam"), "udp");
        assert!(frames >= 3 * FPS, "UDP from {host}: {frames} frames");
        assert!(stderr.trim().is_empty(), "UDP from {host}: {stderr}");
    }
}

#[test]
fn dual_stack_udp_gstreamer() {
    let s = dual_stack_server();
    for host in LOOPBACKS {
        gstreamer_gapless(&s.url_via(host, "cam"), "udp");
    }
}

#[test]
fn dual_stack_udp_retina() {
    let s = dual_stack_server();
    for host in LOOPBACKS {
        retina_consecutive(&s.url_via(host, "cam"), "udp");
    }
}

/// An IPv6-only listener (`[::1]`): UDP for IPv6 clients with every player.
#[test]
fn ipv6_only_udp_gstreamer_and_retina() {
    let s = Server::start(serde_json::json!({
        "rtsp": { "listen": "[::1]:0" },
        "paths": { "cam": pattern_path(W, H, FPS, 1000) }
    }));
    gstreamer_gapless(&s.url("cam"), "udp");
    retina_consecutive(&s.url("cam"), "udp");
}

#[test]
fn ipv6_loopback_tcp_and_udp() {
    let s = Server::start(serde_json::json!({
        "rtsp": { "listen": "[::1]:0" },
        "paths": { "cam": pattern_path(W, H, FPS, 1000) }
    }));
    assert!(s.rtsp.is_ipv6(), "{}", s.rtsp);
    for transport in ["tcp", "udp"] {
        let (frames, stderr) = ffprobe_frames(&s.url("cam"), transport);
        assert!(frames >= 3 * FPS, "IPv6 {transport}: {frames} frames");
        assert!(stderr.trim().is_empty(), "IPv6 {transport}: {stderr}");
    }
}
