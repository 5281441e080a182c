//! Latency from the test pattern's burned-in capture time (src/source/pattern.rs), for the
//! benches: decoded by ffmpeg here, or by a browser player through
//! `benches/browser/latency.mjs`; and the order statistics both report.

use std::io::Read;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

/// The median of `v` (NaN when empty).
pub fn median(v: Vec<f64>) -> f64 {
    percentile(v, 50)
}

/// The `p`th percentile of `v` (the value at rank `len * p / 100` once sorted; NaN when
/// empty).
pub fn percentile(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() * p / 100).copied().unwrap_or(f64::NAN)
}

/// Latency (ms) of each `w`x`h` picture ffmpeg decodes from the RTSP `url` over `seconds`:
/// when decoded minus the burned-in capture time, the first second (`fps` frames, the
/// player's start) skipped. ffmpeg reads with its low-delay flags, so this is what the
/// stream itself costs, with no player's buffering.
pub fn ffmpeg_latencies(url: &str, w: u32, h: u32, fps: u32, seconds: u32) -> Vec<f64> {
    let seconds = seconds.to_string();
    let mut child = super::ffmpeg_gray_command(&[
        "-fflags",
        "nobuffer",
        "-flags",
        "low_delay",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-t",
        &seconds,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("ffmpeg");
    let mut out = child.stdout.take().expect("stdout");
    let mut frame = vec![0u8; (w * h) as usize];
    let mut lat = Vec::new();
    while out.read_exact(&mut frame).is_ok() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        if let Some(code) = vigint::source::pattern::read_code(&frame, w as usize, w, h) {
            lat.push(now_ms.saturating_sub(code.capture_ms) as f64);
        }
    }
    let _ = child.wait();
    lat.split_off((fps as usize).min(lat.len()))
}

/// `ffmpeg_latencies`' (median, p95, pictures measured).
pub fn ffmpeg_latency(url: &str, w: u32, h: u32, fps: u32, seconds: u32) -> (f64, f64, usize) {
    let v = ffmpeg_latencies(url, w, h, fps, seconds);
    (median(v.clone()), percentile(v.clone(), 95), v.len())
}
