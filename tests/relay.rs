//! Relaying other RTSP servers' streams (`"source": "rtsp://..."`) with independent servers
//! as the camera: GStreamer's rtsp-server (tests/relay/gst_camera.py, python3-gi) and the
//! npm rtsp-streaming-server fed by ffmpeg (tests/relay/node_server.js). The relayed path
//! plays in ffprobe, GStreamer and retina; a camera killed and restarted leaves the viewer
//! connected and frames resume; on demand: no pull before the first viewer, stopped after
//! `close_after`; the camera's password never shows.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::*;
use common::*;

const CAM_USER: &str = "cam";
/// Characters a URL must escape, so the relay decodes them right.
const CAM_PASS: &str = "c@m pw#1";
const CAM_PASS_IN_URL: &str = "c%40m%20pw%231";

/// GStreamer's rtsp-server on `port` serving /cam, with a login.
fn gst_camera(port: u16) -> Proc {
    gst_rtsp_server(port, &["--user", CAM_USER, "--password", CAM_PASS])
}

fn camera_url(port: u16) -> String {
    format!("rtsp://{CAM_USER}:{CAM_PASS_IN_URL}@127.0.0.1:{port}/cam")
}

fn relay_server(source: &str, extra: serde_json::Value) -> Server {
    let mut gate = serde_json::json!({ "source": source });
    if let (Some(g), Some(e)) = (gate.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            g.insert(k.clone(), v.clone());
        }
    }
    Server::start(serde_json::json!({ "paths": { "gate": gate } }))
}

fn ffprobe_frames(url: &str, seconds: u32) -> (u32, Run) {
    require("ffprobe");
    let r = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-read_intervals",
            &format!("%+{seconds}"),
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=nw=1",
            url,
        ]),
        Duration::from_secs(40),
    );
    let frames = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (frames, r)
}

fn retina_frames(url: &str, seconds: u64) -> Result<Vec<i64>, String> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(retina_util::frames(
        url,
        "tcp",
        None,
        Duration::from_secs(seconds),
    ))
}

fn check_relay(transport: &str) {
    let port = free_port();
    let _camera = gst_camera(port);
    let s = relay_server(
        &camera_url(port),
        serde_json::json!({ "rtsp_transport": transport }),
    );
    let (frames, r) = ffprobe_frames(&s.url("gate"), 3);
    assert!(
        r.ok && r.stdout.contains("width=320"),
        "ffprobe: {}",
        r.stderr
    );
    assert!(
        frames >= 30,
        "ffprobe read {frames} frames over {transport}"
    );
    let stamps = retina_frames(&s.url("gate"), 3).unwrap_or_else(|e| panic!("retina: {e}"));
    assert!(stamps.len() >= 30, "retina: {} frames", stamps.len());
    retina_util::assert_consecutive(&stamps, 15, "retina of the relay");
    require("gst-launch-1.0");
    let gst = run(
        Command::new("gst-launch-1.0").args([
            "rtspsrc",
            &format!("location={}", s.url("gate")),
            "protocols=tcp",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            "num-buffers=30",
        ]),
        Duration::from_secs(30),
    );
    assert!(
        gst.stdout.contains("Got EOS from element"),
        "GStreamer:\n{}\n{}",
        gst.stdout,
        gst.stderr
    );
    let status = common::http::get(s.http.unwrap(), "/api/v1/paths/gate").json();
    assert_eq!(status["state"], "streaming", "{status}");
    let upper = transport.to_ascii_uppercase();
    assert_eq!(
        status["route"],
        format!(
            "rtsp relay over {}",
            if upper == "AUTO" { "UDP" } else { &upper }
        ),
        "{status}"
    );
}

#[test]
fn relays_a_gstreamer_camera_over_tcp() {
    check_relay("tcp");
}

#[test]
fn relays_a_gstreamer_camera_over_udp() {
    check_relay("udp");
}

#[test]
fn relays_a_gstreamer_camera_with_auto_transport() {
    check_relay("auto");
}

/// The camera's password never shows: not in the log, the API, the status or /metrics; a
/// change that sends the path back as the API showed it keeps it.
#[test]
fn the_cameras_password_never_shows_and_survives_a_change() {
    let port = free_port();
    let _camera = gst_camera(port);
    let s = relay_server(&camera_url(port), serde_json::json!({}));
    let http = s.http.unwrap();
    common::http::setup_admin(http, "relay admin pw");
    let admin = common::http::admin("relay admin pw");
    let (frames, _) = ffprobe_frames(&s.url("gate"), 2);
    assert!(frames > 10);
    let config = common::http::request(http, "GET", "/api/v1/config", &admin).json();
    assert_eq!(
        config["paths"]["gate"]["source"],
        format!("rtsp://{CAM_USER}:***@127.0.0.1:{port}/cam")
    );
    let status = common::http::request(http, "GET", "/api/v1/status", &admin);
    let metrics = common::http::request(http, "GET", "/metrics", &admin);
    for (what, text) in [
        ("status", status.body.as_str()),
        ("metrics", metrics.body.as_str()),
        ("config", &config.to_string()),
    ] {
        assert!(
            !text.contains(CAM_PASS) && !text.contains(CAM_PASS_IN_URL),
            "the password leaked into {what}"
        );
    }
    // Send the whole config back as shown (PUT), and patch another field: still pulls.
    let r = common::http::send_json(
        http,
        "relay admin pw",
        "PUT",
        "/api/v1/config",
        &config.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = common::http::send_json(
        http,
        "relay admin pw",
        "PATCH",
        "/api/v1/config",
        r#"{"paths":{"gate":{"max_readers":5}}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let saved = std::fs::read_to_string(&s.config_path).unwrap();
    assert!(
        saved.contains(CAM_PASS_IN_URL),
        "the file keeps the real URL"
    );
    let (frames, r) = ffprobe_frames(&s.url("gate"), 2);
    assert!(frames > 10, "still relaying: {}", r.stderr);
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log_text();
    assert!(
        !log.contains(CAM_PASS) && !log.contains(CAM_PASS_IN_URL),
        "the password leaked into the log:\n{log}"
    );
}

/// The camera goes away and comes back on the same address: the viewer stays connected
/// and frames resume.
#[test]
fn a_camera_that_restarts_leaves_the_viewer_connected() {
    let port = free_port();
    let camera = gst_camera(port);
    let s = relay_server(&camera_url(port), serde_json::json!({}));
    let url = s.url("gate");
    let viewer = std::thread::spawn(move || retina_frames(&url, 16));
    std::thread::sleep(Duration::from_secs(4));
    drop(camera);
    let t_gone = Instant::now();
    assert!(
        s.wait_log("path gate: relay of", Duration::from_secs(15)),
        "the relay noticed nothing:\n{}",
        s.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let _camera = gst_camera(port);
    let stamps = viewer
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the viewer was dropped: {e}"));
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap >= 90_000, "no outage seen: largest step {gap} ticks");
    let after = stamps.len() - 1 - stamps.windows(2).position(|w| w[1] - w[0] == gap).unwrap();
    assert!(
        after >= 15,
        "only {after} frames after the camera came back ({} s after it went)",
        t_gone.elapsed().as_secs()
    );
    assert!(stamps.windows(2).all(|w| w[1] > w[0]), "time went back");
}

/// On demand: nothing is pulled until someone watches; the pull stops `close_after` after
/// the last viewer left.
#[test]
fn on_demand_pulls_only_while_someone_watches() {
    let port = free_port();
    let _camera = gst_camera(port);
    let s = relay_server(
        &camera_url(port),
        serde_json::json!({
            "source_on_demand": true,
            "source_on_demand_start_timeout": "10s",
            "source_on_demand_close_after": "2s"
        }),
    );
    let http = s.http.unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let status = common::http::get(http, "/api/v1/paths/gate").json();
    assert_eq!(
        status["state"], "idle until someone watches (on demand)",
        "{status}"
    );
    assert_eq!(status["frames"], 0);
    assert!(
        !s.log_text().contains("relaying"),
        "pulled without a viewer"
    );
    // The first viewer's DESCRIBE starts the pull and is answered once the stream is known.
    let (frames, r) = ffprobe_frames(&s.url("gate"), 2);
    assert!(frames > 10, "first viewer: {}", r.stderr);
    assert!(
        s.log_text().contains("someone wants it"),
        "{}",
        s.log_text()
    );
    assert!(
        s.wait_log(
            "nobody watched for 2 s; stopped pulling",
            Duration::from_secs(10)
        ),
        "{}",
        s.log_text()
    );
    let status = common::http::get(http, "/api/v1/paths/gate").json();
    assert_eq!(
        status["state"], "idle until someone watches (on demand)",
        "{status}"
    );
    // And again for the next viewer.
    let (frames, _) = ffprobe_frames(&s.url("gate"), 2);
    assert!(frames > 10);
}

/// A second, unrelated RTSP server as the camera: the npm rtsp-streaming-server, fed by
/// ffmpeg.
#[test]
fn relays_an_npm_rtsp_streaming_server() {
    require("ffmpeg");
    require_group("node", "test");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/relay");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/rtsp-streaming-server")
            .exists(),
        "the npm rtsp-streaming-server is missing: run `scripts/install-deps.sh test` (npm ci --prefix tests/relay)"
    );
    let (publish, play) = (free_port(), free_port());
    let mut cmd = Command::new("node");
    cmd.current_dir(dir).arg("node_server.js").args([
        publish.to_string(),
        play.to_string(),
        "31000".to_string(),
    ]);
    let _server = start_ready(cmd, "rtsp-streaming-server");
    let _feed = Proc(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=15")
            .args([
                "-c:v",
                "libx264",
                "-tune",
                "zerolatency",
                "-g",
                "15",
                "-f",
                "rtsp",
            ])
            .arg(format!("rtsp://127.0.0.1:{publish}/cam"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = relay_server(
        &format!("rtsp://127.0.0.1:{play}/cam"),
        serde_json::json!({ "rtsp_transport": "udp" }),
    );
    let (frames, r) = ffprobe_frames(&s.url("gate"), 3);
    assert!(
        frames >= 30,
        "ffprobe: {frames} frames: {}\n{}",
        r.stderr,
        s.log_text()
    );
    let stamps = retina_frames(&s.url("gate"), 2).unwrap_or_else(|e| panic!("retina: {e}"));
    assert!(stamps.len() >= 20, "retina: {}", stamps.len());
}
