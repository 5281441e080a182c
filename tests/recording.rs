//! Recording with the real binary: segments that play, boundaries without gaps (read from the
//! burned-in frame numbers across files), power cuts (`kill -9`) at 20 moments (after a
//! restart every file plays and the video lost per cut is bounded), a card that stalls and a
//! disk that fills up while an RTSP viewer watches (the viewer sees no gap), and the API.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const W: u32 = 320;
const H: u32 = 240;

fn recording_config(part: &str, segment: &str) -> serde_json::Value {
    recording_config_at(part, segment, 15, 400)
}

fn recording_config_at(part: &str, segment: &str, fps: u32, kbps: u32) -> serde_json::Value {
    serde_json::json!({
        "recording": { "record": true, "part_duration": part, "segment_duration": segment },
        "paths": { "cam": pattern_path(W, H, fps, kbps) }
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
fn play(file: &Path) -> Vec<vigint::source::pattern::FrameCode> {
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

/// The duration ffprobe gives a file, in seconds.
fn duration_of(file: &Path) -> f64 {
    let out = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        Duration::from_secs(30),
    );
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: no duration: {}", file.display(), out.stdout))
}

#[test]
fn segments_play_and_their_boundaries_have_no_gap() {
    require("ffmpeg");
    let mut s = Server::start(recording_config("500ms", "2s"));
    std::thread::sleep(Duration::from_secs(7));
    s.terminate();
    let segs = segments(&data_dir(&s));
    assert!(segs.len() >= 3, "{segs:?}\n{}", s.log_text());
    let mut all = Vec::new();
    let mut durations = 0.0;
    for seg in &segs {
        let codes = play(seg);
        assert!(!codes.is_empty(), "{}", seg.display());
        all.extend(codes);
        durations += duration_of(seg);
    }
    // One frame sequence across all files: no frame lost or repeated at a boundary.
    assert_gapless(&all, "frames across segments");
    assert!(all.len() >= 80, "{} frames in ~7 s at 15 fps", all.len());
    // The files' durations add up to the wall time recorded (capture times burned into the
    // first and last frames, plus the last frame's own period), within a frame per boundary.
    let first = all.first().expect("frames").capture_ms as f64;
    let last = all.last().expect("frames").capture_ms as f64;
    let recorded = (last - first) / 1000.0 + 1.0 / 15.0;
    let slack = segs.len() as f64 / 15.0;
    eprintln!("segment durations {durations:.3} s for {recorded:.3} s recorded");
    assert!(
        (durations - recorded).abs() <= slack,
        "durations {durations:.3} s, recorded {recorded:.3} s, {} files",
        segs.len()
    );
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
        s2.terminate();
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
    // What is on disk, as of the last retention pass (every 10 s; the first at start).
    let stored = wait_json_with(http, "/api/v1/paths/cam", &auth, "segments on disk", |v| {
        v["recording"]["stored"]["segments"].as_u64() >= Some(2)
    })["recording"]["stored"]
        .clone();
    assert!(stored["bytes"].as_u64().unwrap_or(0) > 0, "{stored}");
    assert!(
        stored["oldest"]["file"]
            .as_str()
            .is_some_and(|f| f.contains("_000000001")),
        "{stored}"
    );
    assert!(stored["oldest"]["start"].is_string(), "{stored}");
    assert!(stored["newest"]["clock_trusted"].is_boolean(), "{stored}");
    assert_eq!(rec["frames_dropped"], 0, "{rec}");
    // 4.5 s of a 400 kbit/s stream: the rate and the day's bytes are measured.
    let rate = rec["write_bytes_per_second"].as_f64().unwrap_or(0.0);
    assert!((10_000.0..200_000.0).contains(&rate), "{rec}");
    let day = rec["bytes_written_24h"].as_u64().unwrap_or(0);
    assert!(
        day > 0 && day <= rec["bytes_written"].as_u64().unwrap_or(0),
        "{rec}"
    );
    let metrics = request(http, "GET", "/metrics", &auth).body;
    for needle in [
        "vigint_recorder_recording{path=\"cam\"} 1\n",
        "vigint_recorder_bytes_total{path=\"cam\"} ",
        "vigint_recorder_fsync_seconds_count{path=\"cam\"} ",
        "vigint_recorder_fsync_seconds_bucket{path=\"cam\",le=\"+Inf\"} ",
        "vigint_recorder_write_bytes_per_second{path=\"cam\"} ",
        "vigint_recordings_bytes{path=\"cam\"} ",
        "vigint_recordings_oldest_start_seconds{path=\"cam\"} ",
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
    let list = request(http, "GET", "/api/v1/recordings", &auth).json();
    let writing = list[0]["segments"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["recording"] == true))
        .and_then(|s| s["file"].as_str())
        .expect("a segment being written")
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

/// The burned-in codes of `files` played one after another.
fn codes_of_files(files: &[PathBuf]) -> Vec<Vec<vigint::source::pattern::FrameCode>> {
    files.iter().map(|f| play(f)).collect()
}

/// Frame numbers missing between consecutive files (0 where one continues the other).
fn gaps_between(per_file: &[Vec<vigint::source::pattern::FrameCode>]) -> Vec<u64> {
    per_file
        .windows(2)
        .filter_map(|w| Some(u64::from(w[1].first()?.frame - w[0].last()?.frame - 1)))
        .collect()
}

/// A viewer decoding `cam` over RTSP/TCP for `seconds`, in its own thread.
fn watch(s: &Server, seconds: u32) -> std::thread::JoinHandle<(Vec<Vec<u8>>, String)> {
    let url = s.url("cam");
    std::thread::spawn(move || ffmpeg_gray_frames(&url, "tcp", seconds, W, H))
}

/// Asserts the viewer saw every frame of `seconds` at `fps`, cleanly.
fn assert_viewer_lost_nothing(
    viewer: std::thread::JoinHandle<(Vec<Vec<u8>>, String)>,
    seconds: u32,
    fps: u32,
) {
    let (frames, stderr) = viewer.join().expect("viewer");
    assert!(stderr.trim().is_empty(), "viewer errors: {stderr}");
    let codes = codes_of(&frames, W, H);
    assert_gapless(&codes, "frames the RTSP viewer saw");
    let expected = (seconds * fps) as usize;
    assert!(
        codes.len() + fps as usize >= expected,
        "{} frames in {seconds} s at {fps} fps",
        codes.len()
    );
}

#[test]
fn a_stalled_card_never_holds_up_rtsp_viewers_and_the_dropped_span_is_reported() {
    use common::http::*;
    require("ffmpeg");
    let faults = TempDir::new("faults");
    let s = Server::start_with(
        recording_config_at("500ms", "3s", 30, 600),
        Launch {
            env: vec![("VIGINT_FAULTS".into(), faults.path().display().to_string())],
            ..Launch::default()
        },
    );
    let http = s.http.expect("HTTP");
    let viewer = watch(&s, 14);
    std::thread::sleep(Duration::from_secs(2));
    // The card stops answering for 7 s: longer than the recorder's queue (128 frames, 4.3 s
    // at 30 fps) can hold.
    let stall = faults.path().join("stall-storage");
    std::fs::write(&stall, b"").expect("fault on");
    std::thread::sleep(Duration::from_secs(7));
    std::fs::remove_file(&stall).expect("fault off");
    assert_viewer_lost_nothing(viewer, 14, 30);
    let status = wait_json(http, "/api/v1/paths/cam", "recording again", |v| {
        v["recording"]["state"] == "recording" && v["recording"]["gaps"].as_u64() >= Some(1)
    });
    let rec = &status["recording"];
    let dropped = rec["frames_dropped"].as_u64().expect("frames_dropped");
    let dropped_s = rec["dropped_seconds"].as_f64().expect("dropped_seconds");
    assert!((1.0..7.0).contains(&dropped_s), "{rec}");
    assert!(
        (dropped as f64 - dropped_s * 30.0).abs() <= 2.0,
        "frames and seconds dropped agree: {rec}"
    );
    assert!(s.log_text().contains("recording gap"), "{}", s.log_text());
    // Wait for the segment after the gap to be finished, then read what is on disk.
    std::thread::sleep(Duration::from_secs(4));
    let mut s = s;
    s.terminate();
    let files = segments(&data_dir(&s));
    let per_file = codes_of_files(&files);
    for (f, codes) in files.iter().zip(&per_file) {
        assert_gapless(codes, &f.display().to_string());
    }
    // The files miss exactly the frames the recorder says it dropped, in one gap.
    let gaps: Vec<u64> = gaps_between(&per_file)
        .into_iter()
        .filter(|g| *g > 0)
        .collect();
    assert_eq!(gaps, vec![dropped], "gaps between {files:?}");
}

/// Mounts a tmpfs of `size_mib` on `dir` in a private user and mount namespace (no root
/// needed where unprivileged user namespaces are allowed, as on Debian and Ubuntu), fills
/// all but `free_kib` of it with a file that is not a recording, then runs vigint there.
fn small_disk(dir: &Path, size_mib: u64, free_kib: u64) -> Launch {
    let filler_kib = size_mib * 1024 - free_kib;
    let script = format!(
        "mount -t tmpfs -o size={size_mib}m vigint-test \"$0\" && \
         head -c {filler_kib}K /dev/zero > \"$0/filler\" && exec \"$@\""
    );
    Launch::in_mount_namespace(script, &dir.display().to_string())
}

/// Status of `cam`'s recorder.
fn recorder_state(http: std::net::SocketAddr) -> String {
    common::http::get(http, "/api/v1/paths/cam").json()["recording"]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_full_disk_deletes_the_oldest_pauses_when_nothing_is_left_and_resumes_without_a_viewer_gap() {
    require("ffmpeg");
    let data = TempDir::new("small-disk");
    let mut config = recording_config_at("500ms", "2s", 15, 2000);
    config["data_dir"] = data.path().display().to_string().into();
    // No floor: the disk really fills up and writes fail with ENOSPC.
    config["recording"]["min_free"] = 0.into();
    let mut s = Server::start_with(config, small_disk(data.path(), 8, 512));
    let http = s.http.expect("HTTP");
    // The mount exists only in vigint's namespace: look through its root.
    let seen = PathBuf::from(format!("/proc/{}/root{}", s.pid(), data.path().display()));
    let viewer = watch(&s, 40);
    // 1. Full: the oldest segments go, recording goes on.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while s.log_text().matches("(disk full)").count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no deletions for a full disk:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(recorder_state(http), "recording");
    // 2. Something else eats every byte freed: nothing is left to delete, recording pauses.
    let stop_hog = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog_file = seen.join("hog");
    let hogged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hog = {
        let stop = stop_hog.clone();
        let hog_file = hog_file.clone();
        let hogged = hogged.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&hog_file).expect("hog");
            let chunk = vec![0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match f.write(&chunk) {
                    Ok(n) => {
                        hogged.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !recorder_state(http).starts_with("paused: storage full") {
        assert!(
            std::time::Instant::now() < deadline && !hog.is_finished(),
            "never paused: {}; the hog wrote {} bytes{}\n{}\n{}",
            recorder_state(http),
            hogged.load(std::sync::atomic::Ordering::Relaxed),
            if hog.is_finished() { " and ended" } else { "" },
            common::http::get(http, "/api/v1/paths/cam").body,
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = common::http::get(http, "/metrics").body;
    assert!(
        metrics.contains("vigint_recorder_recording{path=\"cam\"} 0\n"),
        "{metrics}"
    );
    stop_hog.store(true, std::sync::atomic::Ordering::Relaxed);
    hog.join().expect("hog");
    // 3. Space returns: recording resumes by itself.
    std::fs::remove_file(&hog_file).expect("remove hog");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while recorder_state(http) != "recording" {
        assert!(
            std::time::Instant::now() < deadline,
            "never resumed: {}",
            recorder_state(http)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    // Every segment left on the full disk plays; each run of segments has no gap inside.
    let mut files = segments(&seen);
    files.pop(); // being written
    assert!(files.len() >= 2, "{files:?}");
    let first_sequence = files[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    assert!(
        !first_sequence
            .as_deref()
            .unwrap_or("")
            .contains("_000000001"),
        "the oldest segment was deleted: {files:?}"
    );
    let per_file = codes_of_files(&files);
    for (i, gap) in gaps_between(&per_file).into_iter().enumerate() {
        let next = files[i + 1].display().to_string();
        assert!(
            gap == 0 || next.contains("-start"),
            "{gap} frames missing before {next}, which does not start a new run"
        );
    }
    assert_viewer_lost_nothing(viewer, 40, 15);
    s.terminate();
}
