//! Live video over WebSocket against the real binary on loopback, read by an independent
//! client (tokio-tungstenite) and checked by ffmpeg: the browser live view
//! (`/api/v1/paths/{name}/live`, fMP4) and the stream-viewer socket (`/ws/stream?id=`,
//! MPEG-TS or fMP4, with its status and error messages and commands). What the socket
//! carries must decode without an error into the test pattern's frames, gapless by their
//! burned-in numbers. Live links stand in for the login; cross-site pages are refused.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use common::http::{admin, assert_error, get, request, setup_admin};
use common::ws::{read_for, refused_status, rt, Socket};
use common::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const W: u32 = 320;
const H: u32 = 240;
const FPS: u32 = 15;
const PASSWORD: &str = "live-admin-1";

/// Opens `target` as a WebSocket, with the admin's login when `login`, and `origin`.
async fn open(
    http: SocketAddr,
    target: &str,
    login: bool,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let basic = login.then(|| {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"));
        format!("Basic {b}")
    });
    ws::open(http, target, basic.as_deref(), origin).await
}

/// The next text message (skipping nothing: a binary one first fails).
async fn next_text(socket: &mut Socket) -> serde_json::Value {
    match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The first three messages: the phases `connecting`, `connected`, `playing`.
async fn assert_starts_playing(socket: &mut Socket) {
    let mut phases = Vec::new();
    for _ in 0..3 {
        let m = next_text(socket).await;
        assert_eq!(m["type"], "status", "{m}");
        phases.push(m["phase"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(phases, ["connecting", "connected", "playing"]);
}

/// Decodes `bytes` (a file ffmpeg reads) to the pattern's frames; asserts a clean decode
/// and gapless frame numbers; returns the number of frames.
fn check_decodes(dir: &TempDir, name: &str, bytes: &[u8]) -> usize {
    let file = dir.file(name);
    std::fs::write(&file, bytes).unwrap();
    let path = file.display().to_string();
    let (ok, frames, stderr) = ffmpeg_gray(&["-i", &path], Duration::from_secs(60), W, H);
    assert!(ok, "ffmpeg failed on {name}: {stderr}");
    assert!(stderr.is_empty(), "ffmpeg reported on {name}: {stderr}");
    let codes = codes_of(&frames, W, H);
    assert_gapless(&codes, name);
    // The path's size and rate, as the container and stream say them.
    let probe = run(
        std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,r_frame_rate",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&file),
        Duration::from_secs(30),
    );
    // (MPEG-TS lists the stream under its program too: the same line twice.)
    assert_eq!(
        probe.stdout.lines().next().unwrap_or(""),
        format!("h264,{W},{H},{FPS}/1"),
        "{name}: {}",
        probe.stderr
    );
    frames.len()
}

fn start() -> Server {
    let s = Server::start(serde_json::json!({
        "http": { "max_live_viewers": 6, "max_live_viewers_per_client": 3 },
        "paths": {
            "cam": pattern_path(W, H, FPS, 400),
            "door": { "source": "publisher" }
        }
    }));
    setup_admin(s.http.unwrap(), PASSWORD);
    s
}

fn links(http: SocketAddr, path: &str) -> serde_json::Value {
    let r = request(
        http,
        "GET",
        &format!("/api/v1/paths/{path}/live-links"),
        &admin(PASSWORD),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_live_view_sends_fmp4_that_decodes_to_every_frame() {
    let s = start();
    let http = s.http.unwrap();
    let dir = TempDir::new("live-ws");
    let l = links(http, "cam");
    let live = l["live"].as_str().unwrap().to_string();
    assert!(live.starts_with("/api/v1/paths/cam/live?token="), "{l}");
    rt().block_on(async {
        // With the link and no login, from the device's own page.
        let mut ws = open(http, &live, false, Some(&format!("http://{http}")))
            .await
            .unwrap();
        let codec = next_text(&mut ws).await;
        assert_eq!(codec["type"], "codec", "{codec}");
        assert!(
            codec["mime"]
                .as_str()
                .unwrap()
                .starts_with("video/mp4; codecs=\"avc1."),
            "{codec}"
        );
        assert_eq!(
            (codec["width"].as_u64(), codec["height"].as_u64()),
            (Some(320), Some(240))
        );
        let t0 = Instant::now();
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        assert!(texts.is_empty(), "{texts:?}");
        let frames = check_decodes(&dir, "live.mp4", &bytes);
        // About 3 s of 15 fps from a key frame (the first may come up to a second later).
        assert!(frames >= 25, "{frames} frames in {:?}", t0.elapsed());
        println!("live view: {frames} frames, {} bytes in 3 s", bytes.len());

        // Refusals are plain HTTP answers to the handshake.
        let no_login = open(http, "/api/v1/paths/cam/live", false, None).await;
        assert_eq!(refused_status(no_login.unwrap_err()), 401);
        let forged = open(http, "/api/v1/paths/cam/live?token=1.AAAA", false, None).await;
        assert_eq!(refused_status(forged.unwrap_err()), 401);
        // The link is for cam only.
        let other = live.replace("/cam/", "/door/");
        assert_eq!(
            refused_status(open(http, &other, false, None).await.unwrap_err()),
            401
        );
        let cross = open(http, &live, false, Some("http://evil.example")).await;
        assert_eq!(refused_status(cross.unwrap_err()), 403);
        let unknown = open(http, "/api/v1/paths/nope/live", true, None).await;
        assert_eq!(refused_status(unknown.unwrap_err()), 404);
        // The login works as well as a link.
        let mut ws2 = open(http, "/api/v1/paths/cam/live", true, None)
            .await
            .unwrap();
        assert_eq!(next_text(&mut ws2).await["type"], "codec");
        // Both watch: the path's status and metrics count them, and the bytes sent.
        let path = request(http, "GET", "/api/v1/paths/cam", &admin(PASSWORD)).json();
        assert_eq!(path["live_viewers"], 2, "{path}");
        assert!(path["live_bytes_sent"].as_u64().unwrap() as usize >= bytes.len());
        let metrics = request(http, "GET", "/metrics", &admin(PASSWORD)).body;
        assert!(
            metrics.contains("vigint_live_viewers{path=\"cam\"} 2\n"),
            "{metrics}"
        );
        assert!(metrics.contains("vigint_live_bytes_sent_total{path=\"cam\"} "));
        drop((ws, ws2));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = request(http, "GET", "/api/v1/paths/cam", &admin(PASSWORD)).json();
            if path["live_viewers"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "viewers never left: {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // A plain GET (no upgrade) is a clear 400.
    let r = request(http, "GET", "/api/v1/paths/cam/live", &admin(PASSWORD));
    assert_error(&r, 400, "bad_websocket");
    // The live link also opens the snapshot (an <img> cannot send the login either).
    let snap = get(http, l["snapshot"].as_str().unwrap());
    assert_eq!(snap.status, 200);
    assert_eq!(snap.header("Content-Type"), Some("image/jpeg"));
}

#[test]
fn the_stream_viewer_socket_speaks_its_protocol() {
    let s = start();
    let http = s.http.unwrap();
    let dir = TempDir::new("ws-stream");
    let l = links(http, "cam");
    let stream = l["stream"].as_str().unwrap().to_string();
    assert!(stream.starts_with("/ws/stream?id=cam&token="), "{l}");
    rt().block_on(async {
        // MPEG-TS by default: connecting, connected, playing, then binary only.
        let mut ws = open(http, &stream, false, None).await.unwrap();
        for phase in ["connecting", "connected", "playing"] {
            let m = next_text(&mut ws).await;
            assert_eq!(
                (m["type"].as_str(), m["phase"].as_str()),
                (Some("status"), Some(phase)),
                "{m}"
            );
        }
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        assert!(texts.is_empty(), "{texts:?}");
        assert_eq!(bytes.len() % 188, 0);
        let frames = check_decodes(&dir, "stream.ts", &bytes);
        assert!(frames >= 25, "{frames}");
        let probe = run(
            std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=format_name",
                    "-of",
                    "csv=p=0",
                ])
                .arg(dir.file("stream.ts")),
            Duration::from_secs(30),
        );
        assert_eq!(probe.stdout.trim(), "mpegts", "{}", probe.stderr);

        // stop, then start: the phases again, and video again.
        ws.send(Message::text(r#"{"action":"stop"}"#))
            .await
            .unwrap();
        let (texts, _) = read_for(&mut ws, 1.0).await;
        assert!(texts.iter().any(|m| m["phase"] == "stopped"), "{texts:?}");
        let (texts, bytes) = read_for(&mut ws, 1.0).await;
        assert!(texts.is_empty() && bytes.is_empty(), "nothing after stop");
        ws.send(Message::text(r#"{"action":"start"}"#))
            .await
            .unwrap();
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        let phases: Vec<&str> = texts.iter().filter_map(|m| m["phase"].as_str()).collect();
        assert_eq!(phases, ["connecting", "connected", "playing"], "{texts:?}");
        assert!(bytes.len() > 10_000, "video again: {} bytes", bytes.len());
        ws.send(Message::text(r#"{"action":"dance"}"#))
            .await
            .unwrap();
        let (texts, _) = read_for(&mut ws, 0.5).await;
        assert!(
            texts
                .iter()
                .any(|m| m["type"] == "error" && m["code"] == "BAD_REQUEST"),
            "{texts:?}"
        );

        // format=fmp4: the status messages, then the codec message and fMP4.
        drop(ws);
        let mut ws = open(http, "/ws/stream?id=cam&format=fmp4", true, None)
            .await
            .unwrap();
        let mut texts = Vec::new();
        for _ in 0..3 {
            texts.push(next_text(&mut ws).await);
        }
        assert_eq!(texts[2]["phase"], "playing", "{texts:?}");
        let codec = next_text(&mut ws).await;
        assert_eq!(codec["type"], "codec");
        let (_, bytes) = read_for(&mut ws, 3.0).await;
        assert!(check_decodes(&dir, "stream.mp4", &bytes) >= 25);

        // messages=none (players that read the socket as bytes, e.g. mpegts.js's own
        // loader): no text at all, MPEG-TS from the first message; a refusal is the close
        // frame's reason.
        drop(ws);
        let mut ws = open(http, "/ws/stream?id=cam&messages=none", true, None)
            .await
            .unwrap();
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        assert!(texts.is_empty(), "{texts:?}");
        assert!(check_decodes(&dir, "quiet.ts", &bytes) >= 25);
        drop(ws);
        let mut ws = open(http, "/ws/stream?id=cam&messages=none", false, None)
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert!(frame.reason.as_str().starts_with("AUTH: "), "{frame}");
            }
            other => panic!("expected a close frame with the reason, got {other:?}"),
        }

        // Errors, in the protocol: no login, an unknown stream, too many from one client.
        drop(ws);
        let mut ws = open(http, "/ws/stream?id=cam", false, None).await.unwrap();
        let m = next_text(&mut ws).await;
        assert_eq!(
            (m["type"].as_str(), m["code"].as_str()),
            (Some("error"), Some("AUTH")),
            "{m}"
        );
        let mut ws = open(http, "/ws/stream?id=nope", true, None).await.unwrap();
        let (texts, _) = read_for(&mut ws, 1.0).await;
        assert!(texts.iter().any(|m| m["code"] == "NOT_FOUND"), "{texts:?}");
        let mut ws = open(http, "/ws/stream?id=cam&url=rtsp%3A%2F%2Fx%2Fy", true, None)
            .await
            .unwrap();
        let (texts, _) = read_for(&mut ws, 1.0).await;
        assert!(texts.iter().any(|m| m["type"] == "error"), "{texts:?}");
        // Three per client: the fourth is refused with LIMIT while three watch.
        drop(ws);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut ws = open(http, "/ws/stream?id=cam", true, None).await.unwrap();
            let (texts, _) = read_for(&mut ws, 0.5).await;
            assert!(texts.iter().all(|m| m["type"] == "status"), "{texts:?}");
            held.push(ws);
        }
        let mut ws = open(http, "/ws/stream?id=cam", true, None).await.unwrap();
        let (texts, _) = read_for(&mut ws, 1.0).await;
        let limit = texts.iter().find(|m| m["code"] == "LIMIT");
        assert!(limit.is_some(), "{texts:?}");
        assert!(limit.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("max_live_viewers_per_client"));
        // One leaves: a place is free again.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut ws = open(http, "/ws/stream?id=cam", true, None).await.unwrap();
        let (texts, _) = read_for(&mut ws, 1.5).await;
        assert!(texts.iter().any(|m| m["phase"] == "playing"), "{texts:?}");
    });
}

#[test]
fn streams_are_relay_paths_added_listed_watched_and_removed() {
    let s = start();
    let http = s.http.unwrap();
    let dir = TempDir::new("streams");
    let json_extra = format!("{}Content-Type: application/json\r\n", admin(PASSWORD));
    // The camera to relay: this server's own test pattern, with a password in the URL.
    let upstream = s
        .url("cam")
        .replace("rtsp://", "rtsp://viewer:relay-secret-9@");
    let body = serde_json::json!({ "id": "yard", "url": upstream }).to_string();
    let r = common::http::send(http, "POST", "/api/streams/", &json_extra, &body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        !r.body.contains("relay-secret-9"),
        "the password is never shown: {}",
        r.body
    );
    let made = r.json();
    assert_eq!(made["id"], "yard");
    assert_eq!(made["on_demand"], true);
    assert_eq!(made["ws"], "/ws/stream?id=yard");
    assert!(
        made["url"].as_str().unwrap().starts_with("rtsp://viewer:"),
        "{made}"
    );

    // Listed (the test pattern is a path but not a stream), one by one, in the health.
    let list = request(http, "GET", "/api/streams/", &admin(PASSWORD)).json();
    let ids: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(ids, ["yard"], "{list}");
    let one = request(http, "GET", "/api/streams/yard/", &admin(PASSWORD));
    assert_eq!(one.status, 200);
    assert!(!one.body.contains("relay-secret-9"));
    let health = request(http, "GET", "/api/health/", &admin(PASSWORD)).json();
    assert_eq!(health["streams"], 1, "{health}");
    assert!(health["status"].is_string());

    // Watched by id: the on-demand relay starts and its video decodes, gapless.
    rt().block_on(async {
        let mut ws = open(http, "/ws/stream?id=yard", true, None).await.unwrap();
        assert_starts_playing(&mut ws).await;
        let (_, bytes) = read_for(&mut ws, 3.0).await;
        assert!(check_decodes(&dir, "yard.ts", &bytes) >= 20);
    });

    // Refusals.
    let r = common::http::send(http, "POST", "/api/streams/", &json_extra, &body);
    assert_error(&r, 409, "stream_exists");
    let bad = serde_json::json!({ "id": "x", "url": "http://cam/" }).to_string();
    let field = assert_error(
        &common::http::send(http, "POST", "/api/streams/", &json_extra, &bad),
        400,
        "invalid",
    );
    assert_eq!(field, "url");
    let extra_field = serde_json::json!({ "id": "x", "url": upstream, "fps": 5 }).to_string();
    let r = common::http::send(http, "POST", "/api/streams/", &json_extra, &extra_field);
    assert_eq!(assert_error(&r, 400, "invalid"), "fps");
    assert_eq!(request(http, "GET", "/api/streams/", "").status, 401);
    let r = common::http::send(
        http,
        "POST",
        "/api/streams/",
        "Content-Type: application/json\r\n",
        &body,
    );
    assert_eq!(r.status, 401);
    // A camera is not a stream: not removed from here.
    let r = request(http, "DELETE", "/api/streams/cam/", &admin(PASSWORD));
    assert_error(&r, 404, "unknown_stream");
    let r = request(http, "DELETE", "/api/streams/yard/", &admin(PASSWORD));
    assert_eq!(r.status, 204, "{}", r.body);
    let r = request(http, "GET", "/api/streams/yard/", &admin(PASSWORD));
    assert_error(&r, 404, "unknown_stream");
    assert!(request(http, "GET", "/api/v1/paths/cam", &admin(PASSWORD)).status == 200);
}

/// The RTSP viewers `path` has now, as the MediaMTX API lists them.
fn rtsp_readers(http: SocketAddr, path: &str) -> usize {
    let r = request(
        http,
        "GET",
        &format!("/v3/paths/get/{path}"),
        &admin(PASSWORD),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["readers"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_unsaved_relay_of_a_url_is_the_admins_and_stops_with_its_last_viewer() {
    let s = start();
    let http = s.http.unwrap();
    let dir = TempDir::new("ws-url");
    // The camera: this server's own test pattern, a password in the URL.
    let upstream = s
        .url("cam")
        .replace("rtsp://", "rtsp://viewer:url-secret-7@");
    let query: String = url::form_urlencoded::byte_serialize(upstream.as_bytes()).collect();
    let target = format!("/ws/stream?url={query}");
    let token = links(http, "cam")["stream"]
        .as_str()
        .unwrap()
        .split_once("token=")
        .unwrap()
        .1
        .to_string();
    rt().block_on(async {
        // Not for a live link (it is for a path), nor without a login.
        for (target, login) in [
            (format!("{target}&token={token}"), false),
            (target.clone(), false),
        ] {
            let mut ws = open(http, &target, login, None).await.unwrap();
            let m = next_text(&mut ws).await;
            assert_eq!(
                (m["type"].as_str(), m["code"].as_str()),
                (Some("error"), Some("AUTH")),
                "{m}"
            );
        }
        assert_eq!(rtsp_readers(http, "cam"), 0, "no pull for a refused asker");

        // The admin: the phases, then MPEG-TS of the relayed camera, gapless.
        let mut ws = open(http, &target, true, None).await.unwrap();
        assert_starts_playing(&mut ws).await;
        let (texts, bytes) = read_for(&mut ws, 3.0).await;
        assert!(texts.is_empty(), "{texts:?}");
        assert!(check_decodes(&dir, "url.ts", &bytes) >= 20);
        // A second viewer of the same URL shares the one pull.
        let mut second = open(http, &format!("{target}&format=fmp4"), true, None)
            .await
            .unwrap();
        let (_, bytes) = read_for(&mut second, 2.0).await;
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        assert_eq!(rtsp_readers(http, "cam"), 1, "one pull for two viewers");

        // Nothing saved: no path, no stream, and the URL's password nowhere.
        let config = request(http, "GET", "/api/v1/config", &admin(PASSWORD));
        assert!(!config.body.contains("url-secret-7") && !config.body.contains("url-relay"));
        let streams = request(http, "GET", "/api/streams/", &admin(PASSWORD)).json();
        assert_eq!(
            streams["streams"].as_array().map(Vec::len),
            Some(0),
            "{streams}"
        );
        let paths = request(http, "GET", "/v3/paths/list", &admin(PASSWORD));
        assert!(!paths.body.contains("url-relay"), "{}", paths.body);

        // The last viewer gone: the pull stops.
        drop(ws);
        drop(second);
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while rtsp_readers(http, "cam") != 0 {
            assert!(
                std::time::Instant::now() < until,
                "the pull outlived its viewers"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // A URL that cannot be pulled: a clear error in the protocol, the password masked.
        let bad = "/ws/stream?url=http%3A%2F%2Fu%3Aurl-secret-7%40cam%2F";
        let mut ws = open(http, bad, true, None).await.unwrap();
        let (texts, _) = read_for(&mut ws, 1.0).await;
        let err = texts
            .iter()
            .find(|m| m["type"] == "error")
            .expect("an error");
        assert_eq!(err["code"], "BAD_REQUEST", "{texts:?}");
        assert!(!err.to_string().contains("url-secret-7"), "{err}");
    });
    let log = s.log_text();
    assert!(log.contains("unsaved relay of rtsp://viewer:***@"), "{log}");
    assert!(
        !log.contains("url-secret-7"),
        "the password reached the log"
    );
}
