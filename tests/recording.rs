//! Recording with the real binary: segments that play, boundaries without gaps (read from the
//! burned-in frame numbers across files), and power cuts (`kill -9`) at 20 moments: after a
//! restart every file plays and the video lost per cut is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const W: u32 = 320;
const H: u32 = 240;

fn recording_config(part: &str, segment: &str) -> serde_json::Value {
    serde_json::json!({
        "recording": { "record": true, "part_duration": part, "segment_duration": segment },
        "paths": { "cam": pattern_path(W, H, 15, 400) }
    })
}

fn data_dir(s: &Server) -> PathBuf {
    s.config_path.parent().expect("dir").join("data")
}

/// Every segment of `cam`, oldest first (names carry the sequence).
fn segments(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("recordings/cam")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        stem.split('_')
            .next_back()
            .and_then(|s| s.split('-').next())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    });
    out
}

/// Asserts a file plays cleanly; returns its decoded frames' burned-in codes.
fn play(file: &Path) -> Vec<vigint::capture::pattern::FrameCode> {
    require("ffprobe");
    let probe = run(
        Command::new("ffprobe").args(["-v", "error"]).arg(file),
        Duration::from_secs(30),
    );
    assert!(
        probe.ok && probe.stderr.trim().is_empty(),
        "{}: {}",
        file.display(),
        probe.stderr
    );
    let path = file.display().to_string();
    let (ok, frames, stderr) = ffmpeg_gray(&["-i", &path], Duration::from_secs(60), W, H);
    assert!(
        ok && stderr.trim().is_empty(),
        "{}: {stderr}",
        file.display()
    );
    codes_of(&frames, W, H)
}

fn terminate(s: &mut Server) {
    // SAFETY: kill sends SIGTERM to our own child.
    unsafe {
        libc::kill(s.pid() as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.alive() {
        assert!(std::time::Instant::now() < deadline, "vigint did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn segments_play_and_their_boundaries_have_no_gap() {
    require("ffmpeg");
    let mut s = Server::start(recording_config("500ms", "2s"));
    std::thread::sleep(Duration::from_secs(7));
    terminate(&mut s);
    let segs = segments(&data_dir(&s));
    assert!(segs.len() >= 3, "{segs:?}\n{}", s.log_text());
    let mut all = Vec::new();
    for seg in &segs {
        let codes = play(seg);
        assert!(!codes.is_empty(), "{}", seg.display());
        all.extend(codes);
    }
    // One frame sequence across all files: no frame lost or repeated at a boundary.
    assert_gapless(&all, "frames across segments");
    assert!(all.len() >= 80, "{} frames in ~7 s at 15 fps", all.len());
}

#[test]
fn power_cuts_leave_playable_files_and_lose_at_most_a_fragment_and_the_fsync_interval() {
    require("ffmpeg");
    // Fragments of 500 ms, synced every fragment: a cut loses at most ~1 s.
    // One data directory for all rounds, outliving every server's own temp dir.
    let keep = std::env::temp_dir().join(format!("vigint-powercut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&keep);
    let data = keep.join("data");
    let mut config = recording_config("500ms", "10s");
    config["data_dir"] = data.display().to_string().into();
    let mut losses = Vec::new();
    let mut played = std::collections::HashSet::new();
    for round in 0..20u64 {
        let mut s = Server::start(config.clone());
        // Somewhere between 0.9 and 2.4 s into recording.
        std::thread::sleep(Duration::from_millis(900 + (round * 277) % 1500));
        let cut_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_millis() as u64;
        s.kill();
        // Restart on the same data: repair runs at start.
        let mut s2 = Server::start(config.clone());
        std::thread::sleep(Duration::from_millis(300));
        terminate(&mut s2);
        // Play each file once, as it is left after the restart's repair: the killed run's
        // segments (the last one was cut) and the restart's short one.
        let segs = segments(&data);
        let mut last_codes = Vec::new();
        for seg in segs.iter().filter(|p| !played.contains(*p)) {
            last_codes.extend(play(seg).into_iter().filter(|c| c.capture_ms <= cut_ms));
        }
        played.extend(segs);
        if let Some(last) = last_codes.iter().map(|c| c.capture_ms).max() {
            losses.push(cut_ms.saturating_sub(last));
        }
    }
    let _ = std::fs::remove_dir_all(&keep);
    losses.sort();
    eprintln!("video lost per power cut (ms): {losses:?}");
    assert!(losses.len() >= 18, "{losses:?}");
    let worst = *losses.last().expect("losses");
    // fsync interval (one fragment) + the fragment being gathered + a frame of slack.
    assert!(worst <= 1100, "lost {worst} ms at one cut: {losses:?}");
}

#[test]
fn the_recordings_api_lists_serves_ranges_and_deletes_without_escaping() {
    use common::http::*;
    let s = Server::start(recording_config("500ms", "2s"));
    let http = s.http.expect("HTTP");
    setup_admin(http, "recordings password");
    let auth = admin("recordings password");
    std::thread::sleep(Duration::from_millis(4500));
    let list = request(http, "GET", "/api/v1/recordings", &auth).json();
    let segs = list[0]["segments"].as_array().expect("segments").clone();
    assert_eq!(list[0]["path"], "cam", "{list}");
    assert!(segs.len() >= 2, "{list}");
    let first = &segs[0];
    assert!(
        first["clock_trusted"].is_boolean() && first["bytes"].as_u64().unwrap_or(0) > 0,
        "{first}"
    );
    assert!(first["duration_s"].as_f64().unwrap_or(0.0) > 1.0, "{first}");
    assert_eq!(segs.last().expect("last")["recording"], true, "{list}");
    // Status and metrics show the recorder.
    let cam = request(http, "GET", "/api/v1/paths/cam", &auth).json();
    let rec = &cam["recording"];
    assert_eq!(rec["state"], "recording", "{cam}");
    assert!(rec["bytes_written"].as_u64().unwrap_or(0) > 0, "{rec}");
    assert!(rec["free_bytes"].as_u64().unwrap_or(0) > 0, "{rec}");
    assert_eq!(rec["frames_dropped"], 0, "{rec}");
    let metrics = request(http, "GET", "/metrics", &auth).body;
    for needle in [
        "vigint_recorder_recording{path=\"cam\"} 1\n",
        "vigint_recorder_bytes_total{path=\"cam\"} ",
        "vigint_recorder_fsync_seconds_count{path=\"cam\"} ",
        "vigint_recordings_free_bytes{path=\"cam\"} ",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
    require_group("promtool", "test");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(
        &mut promtool.stdin.take().expect("stdin"),
        metrics.as_bytes(),
    )
    .expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let file = first["file"].as_str().expect("file");
    let on_disk = std::fs::read(data_dir(&s).join("recordings/cam").join(file)).expect("file");
    // A browser's first request, then a seek.
    let url = format!("/api/v1/recordings/cam/{file}");
    let r = request(http, "GET", &url, &format!("{auth}Range: bytes=0-\r\n"));
    assert!(r.status == 206 || r.status == 200, "{}", r.head);
    assert_eq!(
        r.header("Content-Length"),
        Some(on_disk.len().to_string().as_str())
    );
    let r = request(
        http,
        "GET",
        &url,
        &format!("{auth}Range: bytes=100-199\r\n"),
    );
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 100-199/{}", on_disk.len()).as_str())
    );
    assert_eq!(r.header("Content-Length"), Some("100"));
    // Traversal attempts never reach a file outside the recordings.
    for target in [
        "/api/v1/recordings/cam/..%2F..%2Fvigint.json",
        "/api/v1/recordings/cam/../../vigint.json",
        "/api/v1/recordings/cam/%2e%2e/%2e%2e/vigint.json",
        "/api/v1/recordings/..%2Fdata/x.mp4",
    ] {
        let r = request(http, "GET", target, &auth);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.head);
    }
    // The segment being written cannot be deleted; an older one can.
    let writing = segs.last().expect("last")["file"]
        .as_str()
        .expect("file")
        .to_string();
    let r = send_json(
        http,
        "recordings password",
        "DELETE",
        &format!("/api/v1/recordings/cam/{writing}"),
        "",
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = send_json(http, "recordings password", "DELETE", &url, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!data_dir(&s).join("recordings/cam").join(file).exists());
    assert_eq!(request(http, "GET", &url, &auth).status, 404);
}
