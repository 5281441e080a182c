//! The HTTP API of the real binary, over a plain HTTP/1.1 client on `TcpStream`: every route,
//! every error case, client counts while a real player (ffmpeg) plays, health of a path whose
//! camera is missing, `promtool check metrics` on /metrics, and RTSP surviving a taken port.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::*;
use common::*;

fn pattern_server() -> Server {
    Server::start(serde_json::json!({ "paths": { "cam": pattern_path(320, 240, 15, 500) } }))
}

#[test]
fn routes_and_errors() {
    let s = pattern_server();
    let http = s.http.expect("log names the HTTP address");

    // Healthy once frames flow; then fps and bitrate are measured.
    let health = wait_json(http, "/healthz", "healthz never ok", |v| {
        v["status"] == "ok"
    });
    assert_eq!(health["status"], "ok");
    assert_eq!(get(http, "/healthz").status, 200);
    let status = wait_json(http, "/api/v1/status", "fps never measured", |v| {
        v["paths"][0]["fps"].as_f64().is_some_and(|f| f > 5.0)
    });
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["healthy"], true);
    assert!(status["uptime_s"].is_u64());
    assert!(status["clock"]["synchronized"].is_boolean(), "{status}");
    assert!(status.get("board").is_some(), "{status}");
    let cam = &status["paths"][0];
    assert_eq!(cam["name"], "cam");
    assert_eq!(cam["source"], "test-pattern:320x240@15");
    assert_eq!(cam["route"], "software-encode");
    assert_eq!(cam["state"], "streaming");
    assert!(cam["problem"].is_null());
    assert_eq!(
        cam["resolution"],
        serde_json::json!({"width": 320, "height": 240})
    );
    let fps = cam["fps"].as_f64().expect("fps");
    assert!((10.0..=20.0).contains(&fps), "15 fps source measured {fps}");
    assert!(
        cam["bitrate_kbps"].as_f64().is_some_and(|b| b > 0.0),
        "{cam}"
    );
    assert_eq!(cam["clients"], serde_json::json!({"tcp": 0, "udp": 0}));
    assert!(cam["frames"].as_u64().is_some_and(|f| f > 0));

    let paths = get(http, "/api/v1/paths");
    assert_eq!(paths.status, 200);
    assert_eq!(paths.header("Content-Type"), Some("application/json"));
    let paths = paths.json();
    assert_eq!(paths.as_array().map(|a| a.len()), Some(1), "{paths}");
    assert_eq!(paths[0]["name"], "cam");
    let one = get(http, "/api/v1/paths/cam");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["name"], "cam");
    // Before the first-run setup, only status can be read.
    assert_error(&get(http, "/api/v1/cameras"), 403, "setup_required");

    assert_error(&get(http, "/api/v1/paths/nope"), 404, "unknown_path");
    assert_error(&get(http, "/nope"), 404, "not_found");
    assert_error(&get(http, "/api/v1/paths/"), 404, "not_found");
    let r = request(http, "POST", "/api/v1/status", "Content-Length: 0\r\n");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_error(
        &request(http, "PUT", "/api/v1/paths/cam", ""),
        405,
        "method_not_allowed",
    );
    // Refused from the declared length, before any of the body is read.
    assert_error(
        &request(
            http,
            "POST",
            "/api/v1/status",
            "Content-Length: 10000000\r\n",
        ),
        413,
        "payload_too_large",
    );

    let m = get(http, "/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for needle in [
        "vigint_frames_total{path=\"cam\"} ",
        "vigint_rtsp_clients{path=\"cam\",transport=\"tcp\"} 0",
        "vigint_encode_seconds_sum{path=\"cam\"} ",
        "vigint_encode_seconds_bucket{path=\"cam\",le=\"0.005\"} ",
        "vigint_encode_seconds_bucket{path=\"cam\",le=\"+Inf\"} ",
        "vigint_clock_synchronized ",
        "process_resident_memory_bytes ",
    ] {
        assert!(m.body.contains(needle), "missing {needle}:\n{}", m.body);
    }
    promtool_check(&m.body);
    assert!(s.log_text().contains("http: listening on 127.0.0.1:"));
}

/// `promtool check metrics` reads the exposition on stdin and lints it.
fn promtool_check(text: &str) {
    require_group("promtool", "test");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_counts_a_playing_tcp_client() {
    require("ffmpeg");
    let s = pattern_server();
    let http = s.http.expect("HTTP address");
    let url = s.url("cam");
    let player = std::thread::spawn(move || {
        run(
            Command::new("ffmpeg").args([
                "-nostdin",
                "-loglevel",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                &url,
                "-t",
                "6",
                "-f",
                "null",
                "-",
            ]),
            Duration::from_secs(30),
        )
    });
    let cam = wait_json(http, "/api/v1/paths/cam", "no TCP client counted", |v| {
        v["clients"]["tcp"] == 1
    });
    assert_eq!(cam["clients"]["udp"], 0, "{cam}");
    let m = get(http, "/metrics").body;
    assert!(
        m.contains("vigint_rtsp_clients{path=\"cam\",transport=\"tcp\"} 1\n"),
        "{m}"
    );
    assert!(m.contains("vigint_rtsp_connections 1\n"), "{m}");
    let r = player.join().expect("player thread");
    assert!(r.ok, "ffmpeg failed: {}", r.stderr);
    wait_json(http, "/api/v1/paths/cam", "client not released", |v| {
        v["clients"]["tcp"] == 0
    });
}

#[test]
fn healthz_names_a_path_without_frames() {
    let s = Server::start(serde_json::json!({ "paths": {
        "ok": pattern_path(320, 240, 15, 500),
        "gone": { "source": "/dev/vigint-no-such-camera" }
    } }));
    let http = s.http.expect("HTTP address");
    // The good path streams, the missing camera keeps the whole appliance unhealthy.
    wait_json(http, "/api/v1/paths/ok", "ok path never streamed", |v| {
        v["problem"].is_null() && v["fps"].as_f64().is_some_and(|f| f > 0.0)
    });
    wait_json(
        http,
        "/api/v1/paths/gone",
        "missing camera never reported",
        |v| {
            v["problem"]
                .as_str()
                .is_some_and(|p| p.contains("vigint-no-such-camera"))
        },
    );
    let r = get(http, "/healthz");
    assert_eq!(r.status, 503, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "unhealthy");
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["path"], "gone");
    let why = problems[0]["problem"].as_str().unwrap_or("");
    assert!(why.contains("vigint-no-such-camera"), "{v}");
    let gone = get(http, "/api/v1/paths/gone").json();
    assert_eq!(gone["problem"], why);
    assert!(gone["last_error"].is_string(), "{gone}");
    assert_eq!(get(http, "/api/v1/status").json()["healthy"], false);
    assert!(get(http, "/metrics")
        .body
        .contains("vigint_path_up{path=\"gone\"} 0\n"));
}

#[test]
fn a_taken_http_port_leaves_rtsp_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let s = Server::start(serde_json::json!({
        "http": { "listen": addr.to_string() },
        "paths": { "cam": pattern_path(320, 240, 15, 500) }
    }));
    assert_eq!(s.http, None);
    assert!(
        s.log_text()
            .contains(&format!("http: cannot listen for HTTP on {addr}")),
        "{}",
        s.log_text()
    );
    let mut rtsp = TcpStream::connect(s.rtsp).expect("RTSP still listens");
    let r = raw_request(
        &mut rtsp,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", s.url("cam")),
    );
    assert_eq!(status_of(&r), 200, "{r}");
}
