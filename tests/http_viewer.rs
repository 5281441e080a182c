//! Viewers who are not the admin, against the real binary on loopback: an RTSP user with
//! `read` on a path logs in on the HTTP side with Basic, sees only the paths it may read
//! (and none of their sources), gets a snapshot JPEG and live fMP4 over the WebSocket (with
//! the login and with a live link, which opens its one path only), watches the
//! stream-viewer socket of its path and gets its `AUTH` error on another; every route of the
//! admin's (all of `routes::EXAMPLES` whose access is not the viewer's) answers 403 and
//! changes nothing; a user who may only publish watches nothing; wrong passwords are 401 and
//! count toward the per-address limit the admin's count toward. Neither passwords nor
//! tokens reach the log.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use common::http::{admin, assert_error, get, request, send, setup_admin};
use common::ws::{read_for, refused_status, rt, Socket};
use common::*;
use vigint::http::routes;

const W: u32 = 320;
const H: u32 = 240;
const PASSWORD: &str = "viewer-test-admin";
const ANN: (&str, &str) = ("ann", "ann-watches-cam");
const PUSHER: (&str, &str) = ("pusher", "pusher-only-pushes");

fn basic((user, password): (&str, &str)) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b}")
}

fn login((user, password): (&str, &str)) -> String {
    format!("Authorization: {}\r\n", basic((user, password)))
}

/// Opens `target` as a WebSocket from the device's own page, with `user`'s login if any.
async fn open(
    http: SocketAddr,
    target: &str,
    user: Option<(&str, &str)>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let origin = format!("http://{http}");
    ws::open(http, target, user.map(basic).as_deref(), Some(&origin)).await
}

/// Decodes `bytes` with ffmpeg into the test pattern's frames, gapless; the frame count.
fn decoded_frames(dir: &TempDir, name: &str, bytes: &[u8]) -> usize {
    let file = dir.file(name);
    std::fs::write(&file, bytes).unwrap();
    let path = file.display().to_string();
    let (ok, frames, stderr) = ffmpeg_gray(&["-i", &path], Duration::from_secs(60), W, H);
    assert!(ok && stderr.is_empty(), "ffmpeg on {name}: {stderr}");
    assert_gapless(&codes_of(&frames, W, H), name);
    frames.len()
}

fn start() -> Server {
    let s = Server::start(serde_json::json!({
        "paths": {
            "cam": pattern_path(W, H, 15, 400),
            "door": pattern_path(W, H, 15, 400)
        },
        "users": [
            { "name": ANN.0, "password": ANN.1,
              "permissions": [{ "action": "read", "path": "cam" }] },
            { "name": PUSHER.0, "password": PUSHER.1,
              "permissions": [{ "action": "publish", "path": "cam" }] }
        ]
    }));
    setup_admin(s.http.unwrap(), PASSWORD);
    s
}

#[test]
fn a_viewer_watches_its_paths_and_is_refused_everything_else() {
    require("ffmpeg");
    let s = start();
    let http = s.http.unwrap();
    let dir = TempDir::new("http-viewer");
    let ann = login(ANN);

    // The session says who and what: the page shows the cards of these paths only.
    let session = request(http, "GET", "/api/v1/session", &ann).json();
    assert_eq!(
        session,
        serde_json::json!({"setup_required": false, "logged_in": true,
            "role": "viewer", "user": "ann", "paths": ["cam"]})
    );
    // Status and paths: cam only, without its source or who plays it; the admin sees both.
    let status = common::http::wait_json_with(
        http,
        "/api/v1/status",
        &ann,
        "cam streams for the viewer",
        |v| v["paths"][0]["state"] == "streaming",
    );
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&status["paths"]), ["cam"], "{status}");
    for hidden in ["source", "route", "readers", "last_error", "recording"] {
        assert!(
            status["paths"][0].get(hidden).is_none(),
            "{hidden}: {status}"
        );
    }
    assert!(status["rtsp"]["port"].as_u64().is_some(), "{status}");
    let all = request(http, "GET", "/api/v1/status", &admin(PASSWORD)).json();
    assert_eq!(names(&all["paths"]), ["cam", "door"]);
    let paths = request(http, "GET", "/api/v1/paths", &ann).json();
    assert_eq!(names(&paths), ["cam"]);
    assert_eq!(request(http, "GET", "/api/v1/paths/cam", &ann).status, 200);
    assert_error(
        &request(http, "GET", "/api/v1/paths/door", &ann),
        403,
        "not_allowed",
    );

    // A snapshot of cam; none of door.
    let snap = request(http, "GET", "/api/v1/paths/cam/snapshot.jpg", &ann);
    assert_eq!(snap.status, 200, "{}", snap.body);
    assert_eq!(snap.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(
        snap.header("X-Picture-Size"),
        Some(format!("{W}x{H}").as_str())
    );
    assert_error(
        &request(http, "GET", "/api/v1/paths/door/snapshot.jpg", &ann),
        403,
        "not_allowed",
    );

    // Live links: for cam, working without the login, for cam only.
    let links = request(http, "GET", "/api/v1/paths/cam/live-links", &ann).json();
    let live = links["live"].as_str().unwrap().to_string();
    let token = live.split("token=").nth(1).unwrap().to_string();
    assert!(live.starts_with("/api/v1/paths/cam/live?token="), "{links}");
    assert_error(
        &request(http, "GET", "/api/v1/paths/door/live-links", &ann),
        403,
        "not_allowed",
    );
    let snap = get(http, links["snapshot"].as_str().unwrap());
    assert_eq!(snap.status, 200);
    assert_eq!(snap.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(
        get(
            http,
            &format!("/api/v1/paths/door/snapshot.jpg?token={token}")
        )
        .status,
        401
    );

    rt().block_on(async {
        // The live view with the login and with the link: codec message, then fMP4.
        for (target, user) in [
            ("/api/v1/paths/cam/live".to_string(), Some(ANN)),
            (live.clone(), None),
        ] {
            let mut ws = open(http, &target, user).await.unwrap();
            let (texts, bytes) = read_for(&mut ws, 3.0).await;
            assert_eq!(texts.first().map(|t| &t["type"]), Some(&"codec".into()));
            assert_eq!(&bytes[4..8], b"ftyp", "an init segment first");
            let n = decoded_frames(&dir, "live.mp4", &bytes);
            assert!(n >= 15, "{n} frames from {target}");
        }
        // Not door, neither with the login nor with cam's link.
        let door = open(http, "/api/v1/paths/door/live", Some(ANN)).await;
        assert_eq!(refused_status(door.unwrap_err()), 403);
        let other = live.replace("/cam/", "/door/");
        assert_eq!(
            refused_status(open(http, &other, None).await.unwrap_err()),
            401
        );

        // The stream-viewer socket: cam plays, door is an AUTH error in its protocol.
        let mut ws = open(http, "/ws/stream?id=cam", Some(ANN)).await.unwrap();
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        let phases: Vec<&str> = texts.iter().filter_map(|m| m["phase"].as_str()).collect();
        assert_eq!(phases, ["connecting", "connected", "playing"], "{texts:?}");
        assert!(decoded_frames(&dir, "stream.ts", &bytes) >= 15);
        let stream_link = links["stream"].as_str().unwrap();
        let mut ws = open(http, stream_link, None).await.unwrap();
        let (texts, _) = read_for(&mut ws, 2.0).await;
        assert!(texts.iter().any(|m| m["phase"] == "playing"), "{texts:?}");
        for (target, user) in [
            ("/ws/stream?id=door".to_string(), Some(ANN)),
            (format!("/ws/stream?id=door&token={token}"), None),
            ("/ws/stream?id=cam".to_string(), Some(PUSHER)),
        ] {
            let mut ws = open(http, &target, user).await.unwrap();
            let (texts, bytes) = read_for(&mut ws, 1.0).await;
            assert_eq!(texts.len(), 1, "{target}: {texts:?}");
            assert_eq!(
                (texts[0]["type"].as_str(), texts[0]["code"].as_str()),
                (Some("error"), Some("AUTH")),
                "{target}"
            );
            assert!(bytes.is_empty());
        }
    });

    // The stream-viewer REST side: a relay of cam the viewer may not read is not listed.
    // (On demand and never watched here: it is never pulled.)
    let upstream = "rtsp://127.0.0.1:9/yard";
    let r = send(
        http,
        "POST",
        "/api/streams/",
        &format!("{}Content-Type: application/json\r\n", admin(PASSWORD)),
        &serde_json::json!({ "id": "yard", "url": upstream }).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let streams = request(http, "GET", "/api/streams/", &ann).json();
    assert_eq!(streams, serde_json::json!({ "streams": [] }));
    assert_error(
        &request(http, "GET", "/api/streams/yard/", &ann),
        403,
        "not_allowed",
    );

    // Every route that is not a viewer's: 403, and nothing changed. The list of what a
    // viewer may is written out here, not read from the route table, so a route given to
    // viewers by mistake fails this test; a new route is in `routes::EXAMPLES` (a unit
    // test there sees to it) and so asked here.
    const VIEWER_MAY: &[&str] = &[
        "GET /",
        "GET /healthz",
        "GET /api/v1/session",
        "POST /api/v1/setup",
        "GET /api/v1/status",
        "GET /api/v1/paths",
        "GET /api/v1/paths/cam",
        "GET /api/v1/paths/cam/snapshot.jpg",
        "GET /api/v1/paths/cam/live",
        "GET /api/v1/paths/cam/live-links",
        "GET /ws/stream?id=cam",
        "GET /api/streams/",
        "GET /api/streams/cam/",
        "GET /api/health/",
    ];
    let config_before = request(http, "GET", "/api/v1/config", &admin(PASSWORD)).body;
    let mut refused = 0;
    for (method, target) in routes::EXAMPLES {
        if VIEWER_MAY.contains(&format!("{method} {target}").as_str()) {
            continue;
        }
        let extra = format!("{ann}Content-Type: application/json\r\n");
        let r = send(http, method, target, &extra, "{}");
        assert_eq!(r.status, 403, "{method} {target}: {}", r.body);
        refused += 1;
    }
    assert!(
        refused >= 24,
        "only {refused} admin routes: is routes::EXAMPLES whole?"
    );
    let config_after = request(http, "GET", "/api/v1/config", &admin(PASSWORD)).body;
    assert_eq!(config_before, config_after, "a viewer changed the config");

    // A user who may only publish watches nothing.
    let pusher = login(PUSHER);
    let session = request(http, "GET", "/api/v1/session", &pusher).json();
    assert_eq!(session["paths"], serde_json::json!([]), "{session}");
    let status = request(http, "GET", "/api/v1/status", &pusher).json();
    assert_eq!(status["paths"], serde_json::json!([]));
    for target in [
        "/api/v1/paths/cam",
        "/api/v1/paths/cam/snapshot.jpg",
        "/api/v1/paths/cam/live-links",
    ] {
        assert_error(&request(http, "GET", target, &pusher), 403, "not_allowed");
    }

    // Wrong passwords: 401, and they count toward the same limit as the admin's: the fifth
    // failure from this address makes it wait, whoever logs in next.
    let wrong = login(("ann", "not-her-password"));
    for _ in 0..4 {
        let r = request(http, "GET", "/api/v1/status", &wrong);
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = request(http, "GET", "/api/v1/status", &login(("nobody", "x")));
    assert_error(&r, 429, "too_many_attempts");
    assert_eq!(request(http, "GET", "/api/v1/status", &ann).status, 429);
    assert_eq!(
        request(http, "GET", "/api/v1/status", &admin(PASSWORD)).status,
        429
    );

    // Nothing secret reached the log.
    let log = s.log_text();
    for secret in [ANN.1, PUSHER.1, "not-her-password", token.as_str()] {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
    }
}
