//! The phone page in a real browser: starts vigint with a test-pattern path and a config
//! file, then runs `tests/browser/page_test.mjs` (playwright-core driving Debian's headless
//! Chromium) against it: first-run setup, login, the live status card and its RTSP address,
//! a refused and an accepted bitrate change (checked in the API and in the config file on
//! disk), an RTSP user, a path of each kind added through the page (camera list and `auto`,
//! test pattern, publisher with its push address and a real ffmpeg publisher, an RTSP relay
//! of `cam` whose password never reaches the page, an MP4 file made here with ffmpeg), each
//! card's kind and state, refused inputs shown next to their field with nothing saved,
//! settings offered per kind, publish permission given to a user, the recordings (the list,
//! playback in `<video>` through a play link with byte ranges and a seek, refused play
//! links, delete and the refused delete of the segment being written), no horizontal scroll
//! at phone width. Screenshots land in `target/artifacts/browser/` (`page.png`,
//! `page-desktop.png`, `page-phone.png` (the top with its live pictures playing, as in the
//! README), `paths.png`, `settings.png`, `add-path.png`, `add-path-error.png`,
//! `recordings.png`; `failure.png` on failure).
//!
//! `live_picture_in_chromium` runs `tests/browser/live_test.mjs` against a 640x360 test
//! pattern (a key frame every 2 s): the cam card plays through Media Source Extensions
//! (this Chromium plays H.264 in MSE; the test checks `isTypeSupported` first), its 16:9 box
//! does not move when the picture comes, currentTime advances, and the frame numbers burned
//! into the pattern, read from every presented frame through a canvas, rise one by one
//! (the median capture-to-screen delay is printed); a tap goes full screen and back; a card
//! scrolled out of view closes its socket and plays again in view; throttled by CDP
//! `Network.emulateNetworkConditions` (it does throttle WebSocket frames in this Chromium)
//! until the picture is 3 s old, then unthrottled, it is live again (under 1 s old) within
//! the key-frame interval plus 2 s; with MediaSource removed the card shows snapshots
//! refreshed about every second with rising frame numbers; mpegts.js plays
//! `/ws/stream?id=cam` with the live link's token, through a 20-line loader that sets the
//! socket's JSON status text aside (mpegts.js's own WebSocket loader reports an error at
//! every text message), and with its own loader on `&messages=none` (media only), with no
//! error. Screenshots `live-card.png`, `live-page.png`, `live-fullscreen.png`,
//! `live-card-snapshots.png` (`live-failure.png` on failure).
//!
//! `viewer_page_in_chromium` runs `tests/browser/viewer_test.mjs`: an RTSP user with `read`
//! on one path logs in on the page and sees that path's card and no admin controls. The
//! browser tests take turns.
//!
//! The three scripts share `tests/browser/harness.mjs` (steps, checks, polling, the page
//! errors, Chromium started with the flags of `tests/browser/chromium.mjs`, the ending);
//! `live_test.mjs` reads the frame codes with `tests/browser/framecode.mjs`, as
//! `benches/browser/latency.mjs` does.
//!
//! Needs node, /usr/bin/chromium, ffmpeg and `tests/browser/node_modules` (playwright-core,
//! mpegts.js; `scripts/install-deps.sh test` installs them); fails, never skips, without
//! them. About 25 s each.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/artifacts/browser`, next to the build (the test binary is target/PROFILE/deps/X).
fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"));
    target.join("artifacts").join("browser")
}

/// Fails with the install line when node, Chromium or the npm packages are missing.
fn require_browser_tools() {
    common::browser::require_browser_tools("tests/browser", "playwright-core", "test");
    assert!(
        repo()
            .join("tests/browser/node_modules/mpegts.js/dist/mpegts.js")
            .exists(),
        "tests/browser/node_modules has no mpegts.js: run `scripts/install-deps.sh test` (or: npm ci --prefix tests/browser)"
    );
}

/// A 3 s, 15 fps H.264 MP4 (Constrained Baseline, no B-frames, a key frame every second).
fn make_clip(path: &Path) {
    require("ffmpeg");
    let r = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=15")
            .args([
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-g",
                "15",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(path),
        Duration::from_secs(60),
    );
    assert!(r.ok, "ffmpeg could not make the test clip: {}", r.stderr);
}

/// The screenshots `page_test.mjs` saves.
const PAGE_SHOTS: [&str; 8] = [
    "page.png",
    "page-desktop.png",
    "paths.png",
    "settings.png",
    "page-phone.png",
    "add-path.png",
    "add-path-error.png",
    "recordings.png",
];

/// The screenshots `live_test.mjs` saves.
const LIVE_SHOTS: [&str; 4] = [
    "live-card.png",
    "live-page.png",
    "live-fullscreen.png",
    "live-card-snapshots.png",
];

/// One browser test at a time: each runs Chromium and vigint, and the live test's timing
/// checks need the machine's cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

#[test]
fn phone_page_in_chromium() {
    require_browser_tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    // Short segments, so that finished ones exist within seconds.
    let s = Server::start(serde_json::json!({
        "paths": { "cam": pattern_path(320, 240, 15, 500) },
        "recording": { "record": true, "segment_duration": "4s", "part_duration": "500ms" }
    }));
    let http = s.http.expect("log names the HTTP address");
    // The MP4 file the page adds as a file path (and the browser test's publisher pushes):
    // 3 s at 15 fps, a key frame every second.
    let clips = TempDir::new("browser-clip");
    let clip = clips.file("clip.mp4");
    make_clip(&clip);
    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).expect("create artifact dir");
    for shot in PAGE_SHOTS.iter().chain(&["failure.png"]) {
        let _ = std::fs::remove_file(artifacts.join(shot));
    }
    let t0 = Instant::now();
    let r = run(
        Command::new("node")
            .arg(repo().join("tests/browser/page_test.mjs"))
            .arg(format!("http://{http}/"))
            .arg(&s.config_path)
            .arg(&artifacts)
            .arg(s.rtsp.port().to_string())
            .arg(&clip),
        Duration::from_secs(180),
    );
    println!("{}", r.stdout);
    assert!(
        r.ok,
        "the browser test failed after {:.1} s:\n{}\n{}\n--- vigint log:\n{}",
        t0.elapsed().as_secs_f64(),
        r.stdout,
        r.stderr,
        s.log_text()
    );
    for shot in PAGE_SHOTS {
        let len = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "{shot} missing or empty ({len} bytes)");
    }
    println!(
        "browser test passed in {:.1} s; screenshots in {}",
        t0.elapsed().as_secs_f64(),
        artifacts.display()
    );
}

/// The live picture: `tests/browser/live_test.mjs` against a 640x360 test pattern at 15 fps
/// with a key frame every 2 s (the throttle check's interval), the admin password set.
#[test]
fn live_picture_in_chromium() {
    require_browser_tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    const PASSWORD: &str = "live view password";
    const KEYFRAME_S: u32 = 2;
    let mut cam = pattern_path(640, 360, 15, 800);
    cam["idr_interval_s"] = KEYFRAME_S.into();
    let s = Server::start(serde_json::json!({ "paths": { "cam": cam } }));
    let http = s.http.expect("log names the HTTP address");
    common::http::setup_admin(http, PASSWORD);
    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).expect("create artifact dir");
    for shot in LIVE_SHOTS.iter().chain(&["live-failure.png"]) {
        let _ = std::fs::remove_file(artifacts.join(shot));
    }
    let t0 = Instant::now();
    let r = run(
        Command::new("node")
            .arg(repo().join("tests/browser/live_test.mjs"))
            .arg(format!("http://{http}/"))
            .arg(PASSWORD)
            .arg(&artifacts)
            .args(["640", "360", "15", &KEYFRAME_S.to_string()]),
        Duration::from_secs(180),
    );
    println!("{}", r.stdout);
    assert!(
        r.ok,
        "the live browser test failed after {:.1} s:\n{}\n{}\n--- vigint log:\n{}",
        t0.elapsed().as_secs_f64(),
        r.stdout,
        r.stderr,
        s.log_text()
    );
    for shot in LIVE_SHOTS {
        let len = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "{shot} missing or empty ({len} bytes)");
    }
    println!(
        "live browser test passed in {:.1} s; screenshots in {}",
        t0.elapsed().as_secs_f64(),
        artifacts.display()
    );
}

/// The page for a viewer: `tests/browser/viewer_test.mjs` logs in as an RTSP user with
/// `read` on cam (not door) and checks it sees cam's live card only and none of the
/// admin's controls, then the admin's login brings them back. Screenshot `viewer.png` in
/// `target/artifacts/browser-viewer/`. About 15 s.
#[test]
fn viewer_page_in_chromium() {
    require_browser_tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    const ADMIN: &str = "viewer page admin";
    const VIEWER: (&str, &str) = ("ann", "ann-watches-cam");
    let s = Server::start(serde_json::json!({
        "paths": {
            "cam": pattern_path(320, 240, 15, 400),
            "door": pattern_path(320, 240, 15, 400)
        },
        "users": [{ "name": VIEWER.0, "password": VIEWER.1,
                    "permissions": [{ "action": "read", "path": "cam" }] }]
    }));
    let http = s.http.expect("log names the HTTP address");
    common::http::setup_admin(http, ADMIN);
    // Its own directory: the other browser test empties `browser/` when it starts.
    let artifacts = artifact_dir().with_file_name("browser-viewer");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("create artifact dir");
    let r = run(
        Command::new("node")
            .arg(repo().join("tests/browser/viewer_test.mjs"))
            .arg(format!("http://{http}/"))
            .arg(ADMIN)
            .arg(VIEWER.0)
            .arg(VIEWER.1)
            .arg(&artifacts),
        Duration::from_secs(120),
    );
    println!("{}", r.stdout);
    assert!(
        r.ok,
        "the viewer's browser test failed:\n{}\n{}\n--- vigint log:\n{}",
        r.stdout,
        r.stderr,
        s.log_text()
    );
    let len = std::fs::metadata(artifacts.join("viewer.png"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(len > 10_000, "viewer.png missing or empty ({len} bytes)");
}
