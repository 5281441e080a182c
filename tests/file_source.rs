//! MP4 files as sources (`"source": "file:/path.mp4"` or a plain absolute `.mp4` path):
//! a looped file plays for longer than it lasts, at its own rate, with times that keep
//! rising; plain and fragmented files, with B-frames; a missing file is the path's error
//! until it appears.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A 2 s, 25 fps H.264 file with B-frames (and, when `fragmented`, as fragmented MP4).
fn make_clip(path: &Path, fragmented: bool) {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args([
            "-t", "2", "-c:v", "libx264", "-bf", "2", "-g", "25", "-pix_fmt", "yuv420p",
        ]);
    if fragmented {
        cmd.args(["-movflags", "frag_keyframe+empty_moov"]);
    }
    let r = run(cmd.arg(path), Duration::from_secs(60));
    assert!(r.ok, "ffmpeg: {}", r.stderr);
}

fn check_loop(fragmented: bool) {
    let dir = TempDir::new("file-source");
    let clip = dir.file("clip.mp4");
    make_clip(&clip, fragmented);
    let source = if fragmented {
        clip.display().to_string()
    } else {
        format!("file:{}", clip.display())
    };
    let s = Server::start(serde_json::json!({ "paths": { "clip": { "source": source } } }));
    // Five seconds of a two-second file: more than two passes, at 25 fps, rising times.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stamps = rt
        .block_on(retina_util::frames(
            &s.url("clip"),
            "tcp",
            None,
            Duration::from_secs(5),
        ))
        .unwrap_or_else(|e| panic!("retina: {e}"));
    assert!(
        (110..=140).contains(&stamps.len()),
        "{} frames in 5 s of a 25 fps file",
        stamps.len()
    );
    // Presentation times of B-frames step back within a group; across loops they rise.
    let span = stamps.iter().max().unwrap() - stamps.iter().min().unwrap();
    assert!(
        span > 4 * 90_000,
        "times span {span} ticks: the loop restarted them"
    );
    let decoded = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-count_frames"])
            .args(["-read_intervals", "%+3", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=nb_read_frames,width",
                "-of",
                "default=nw=1",
            ])
            .arg(s.url("clip")),
        Duration::from_secs(30),
    );
    assert!(
        decoded.ok && decoded.stdout.contains("width=320"),
        "{}",
        decoded.stderr
    );
    let status = common::http::get(s.http.unwrap(), "/api/v1/paths/clip").json();
    assert_eq!(status["state"], "streaming", "{status}");
    assert!(
        status["route"]
            .as_str()
            .is_some_and(|r| r.ends_with("looped")),
        "{status}"
    );
}

#[test]
fn a_plain_mp4_with_b_frames_loops() {
    check_loop(false);
}

#[test]
fn a_fragmented_mp4_loops() {
    check_loop(true);
}

#[test]
fn a_missing_file_is_an_error_until_it_appears() {
    let dir = TempDir::new("file-missing");
    let clip = dir.file("later.mp4");
    let s = Server::start(serde_json::json!({
        "paths": { "later": { "source": clip.display().to_string() } }
    }));
    let http = s.http.unwrap();
    let status = common::http::wait_json(http, "/api/v1/paths/later", "the error", |v| {
        v["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("failed:"))
    });
    assert!(
        status["problem"]
            .as_str()
            .is_some_and(|p| p.contains("No such file")),
        "{status}"
    );
    let not_mp4 = dir.file("bad.mp4");
    std::fs::write(&not_mp4, b"this is not an MP4 file at all").unwrap();
    make_clip(&dir.file("tmp.mp4"), false);
    std::fs::rename(dir.file("tmp.mp4"), &clip).unwrap();
    common::http::wait_json(http, "/api/v1/paths/later", "playing once it exists", |v| {
        v["state"] == "streaming"
    });
    // An unplayable file is a clear error too, and nothing else is disturbed.
    let s2 = Server::start(serde_json::json!({
        "paths": { "bad": { "source": not_mp4.display().to_string() } }
    }));
    let status = common::http::wait_json(s2.http.unwrap(), "/api/v1/paths/bad", "the error", |v| {
        v["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("failed:"))
    });
    assert!(
        status["problem"]
            .as_str()
            .is_some_and(|p| p.contains("MP4")),
        "{status}"
    );
}
