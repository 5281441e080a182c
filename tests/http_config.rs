//! Config changes over HTTP against the real binary: first-run setup and login, validation
//! that changes nothing, atomic saves, live apply (a bitrate change on one path while real
//! players watch both), path add/delete, users applied to RTSP at once, rate-limited
//! logins, cross-site refusals, concurrent PATCHes and a kill -9 during saves.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::http::*;
use common::*;
use vigint::config::Config;

const PASSWORD: &str = "correct horse battery";

fn setup(http: SocketAddr) {
    setup_admin(http, PASSWORD);
}

fn patch(http: SocketAddr, body: serde_json::Value) -> Reply {
    send_json(http, PASSWORD, "PATCH", "/api/v1/config", &body.to_string())
}

fn file_config(s: &Server) -> Config {
    Config::load(&s.config_path).unwrap_or_else(|e| panic!("config file invalid: {e}"))
}

fn describe_status(s: &Server, path: &str, auth: &str) -> u16 {
    let mut c = TcpStream::connect(s.rtsp).expect("connect RTSP");
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n", s.url(path)),
    );
    status_of(&r)
}

#[test]
fn setup_login_validation_and_path_management() {
    let s =
        Server::start(serde_json::json!({ "paths": { "cam": pattern_path(320, 240, 15, 500) } }));
    let http = s.http.expect("HTTP address");
    let r = get(http, "/api/v1/session");
    assert_eq!(
        r.json(),
        serde_json::json!({"setup_required": true, "logged_in": false})
    );
    // No default password: before setup nothing can be changed or read beyond status.
    assert_error(&patch(http, serde_json::json!({})), 403, "setup_required");
    assert_eq!(get(http, "/api/v1/status").status, 200);
    setup(http);
    assert!(
        file_config(&s).admin.password_hash.is_some(),
        "the hash is saved"
    );
    let text = std::fs::read_to_string(&s.config_path).expect("read config");
    assert!(!text.contains(PASSWORD), "only the hash is stored");
    assert!(!s.log_text().contains(PASSWORD), "never logged");
    assert_error(&get(http, "/api/v1/config"), 401, "unauthorized");
    assert_error(&get(http, "/api/v1/status"), 401, "unauthorized");
    let auth = admin(PASSWORD);
    let cfg = request(http, "GET", "/api/v1/config", &auth);
    assert_eq!(cfg.status, 200);
    assert!(cfg.json().get("admin").is_none());

    // An invalid change names its field and leaves the file byte for byte as it was.
    let before = std::fs::read(&s.config_path).expect("read");
    let r = patch(
        http,
        serde_json::json!({"paths": {"cam": {"bitrate_kbps": 1}}}),
    );
    assert_eq!(assert_error(&r, 400, "invalid"), "paths.cam.bitrate_kbps");
    let r = send_json(http, PASSWORD, "PATCH", "/api/v1/config", "{\"paths\":");
    assert_error(&r, 400, "bad_json");
    let r = send_json(
        http,
        PASSWORD,
        "PUT",
        "/api/v1/config",
        r#"{"paths":{"cam":{"sorce":"auto"}}}"#,
    );
    assert_eq!(assert_error(&r, 400, "invalid"), "paths.cam.sorce");
    assert_eq!(std::fs::read(&s.config_path).expect("read"), before);

    // Cross-site and form posts are refused before anything else.
    let r = send(
        http,
        "PATCH",
        "/api/v1/config",
        &format!("{auth}Content-Type: application/json\r\nOrigin: http://evil.example\r\n"),
        r#"{"log_level":"debug"}"#,
    );
    assert_error(&r, 403, "cross_origin");
    let r = send(
        http,
        "POST",
        "/api/v1/paths/x",
        &format!("{auth}Content-Type: application/x-www-form-urlencoded\r\n"),
        "source=test-pattern",
    );
    assert_error(&r, 415, "unsupported_media_type");

    // Add a path: it serves RTSP at once; adding it again conflicts.
    let r = send_json(
        http,
        PASSWORD,
        "POST",
        "/api/v1/paths/side",
        &pattern_path(160, 120, 10, 200).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["applied"], serde_json::json!(["paths.side added"]));
    assert!(file_config(&s).paths.contains_key("side"));
    wait_json_with(
        http,
        "/api/v1/paths/side",
        &auth,
        "side never streamed",
        |v| v["state"] == "streaming",
    );
    assert_eq!(describe_status(&s, "side", ""), 200);
    let r = send_json(http, PASSWORD, "POST", "/api/v1/paths/side", "{}");
    assert_error(&r, 409, "path_exists");
    // A new source size reopens that path's source live.
    let r = patch(
        http,
        serde_json::json!({"paths": {"side": {"source": "test-pattern:320x240@10"}}}),
    );
    assert_eq!(
        r.json()["applied"],
        serde_json::json!(["paths.side source reopened"])
    );
    wait_json_with(
        http,
        "/api/v1/paths/side",
        &auth,
        "side never reopened at 320x240",
        |v| v["resolution"] == serde_json::json!({"width": 320, "height": 240}),
    );
    // Delete it: gone from RTSP, status and the file; deleting again is 404.
    let r = send_json(http, PASSWORD, "DELETE", "/api/v1/paths/side", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(describe_status(&s, "side", ""), 404);
    assert_error(
        &request(http, "GET", "/api/v1/paths/side", &auth),
        404,
        "unknown_path",
    );
    assert!(!file_config(&s).paths.contains_key("side"));
    assert_error(
        &send_json(http, PASSWORD, "DELETE", "/api/v1/paths/side", ""),
        404,
        "unknown_path",
    );

    // Users apply to RTSP without a restart; the password stays write-only.
    let r = patch(
        http,
        serde_json::json!({"users": [{"name": "viewer", "password": "pw-1234"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["config"]["users"],
        serde_json::json!([{"name": "viewer"}])
    );
    assert_eq!(describe_status(&s, "cam", ""), 401);
    assert_eq!(file_config(&s).users[0].password, "pw-1234");
    assert!(!s.log_text().contains("pw-1234"));

    // RTSP limits and timeouts apply live; the listening sockets need a restart.
    let r = patch(http, serde_json::json!({"rtsp": {"max_connections": 1}}));
    assert_eq!(r.json()["applied"], serde_json::json!(["rtsp settings"]));
    let _first = TcpStream::connect(s.rtsp).expect("connect");
    std::thread::sleep(Duration::from_millis(200));
    let mut second = TcpStream::connect(s.rtsp).expect("connect");
    let refused = raw_request(&mut second, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    assert_eq!(status_of(&refused), 503, "the new limit holds: {refused}");
    drop(_first);
    let r = patch(
        http,
        serde_json::json!({"rtsp": {"max_connections": 200, "listen": "127.0.0.1:1"}}),
    );
    assert_eq!(
        r.json()["restart_required"],
        serde_json::json!(["rtsp.listen"])
    );
    assert_eq!(
        file_config(&s).rtsp.listen.port(),
        1,
        "saved for the next start"
    );

    // The HTTP API moves to a new address at once; the answer still comes from the old one.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let new_http = free.local_addr().expect("addr");
    drop(free);
    let r = patch(
        http,
        serde_json::json!({"http": {"listen": new_http.to_string()}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["applied"],
        serde_json::json!([format!("http moving to {new_http}")])
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(new_http).is_err() {
        assert!(std::time::Instant::now() < deadline, "HTTP never moved");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_json(new_http, "/api/v1/session", "HTTP never moved", |v| {
        v["setup_required"] == false
    });
    assert!(
        TcpStream::connect(http).is_err(),
        "the old address no longer answers"
    );
    let http = new_http;

    // Wrong passwords: five are answered 401, then the address must wait.
    let wrong = admin("not the password");
    for i in 0..4 {
        let r = request(http, "GET", "/api/v1/config", &wrong);
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = request(http, "GET", "/api/v1/config", &wrong);
    assert_error(&r, 429, "too_many_attempts");
    let wait: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=300).contains(&wait), "{wait}");
    // Even the right password waits, so guessing gains nothing.
    assert_eq!(request(http, "GET", "/api/v1/config", &auth).status, 429);
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(request(http, "GET", "/api/v1/config", &auth).status, 200);
}

#[test]
fn a_bitrate_change_on_one_path_leaves_the_other_path_gapless() {
    require("ffmpeg");
    let s = Server::start(serde_json::json!({ "paths": {
        "a": pattern_path(320, 240, 15, 400),
        "b": pattern_path(320, 240, 15, 400)
    } }));
    let http = s.http.expect("HTTP address");
    setup(http);
    let players: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|p| {
            let url = s.url(p);
            std::thread::spawn(move || ffmpeg_gray_frames(&url, "tcp", 8, 320, 240))
        })
        .collect();
    // Change `a` while both play.
    std::thread::sleep(Duration::from_secs(3));
    let r = patch(
        http,
        serde_json::json!({"paths": {"a": {"bitrate_kbps": 1200}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["applied"],
        serde_json::json!(["paths.a encoder restarted"])
    );
    assert_eq!(file_config(&s).paths["a"].bitrate_kbps, Some(1200));
    assert!(s.wait_log("path a: encoder now at 1200 kbit/s", Duration::from_secs(5)));
    for (name, player) in ["a", "b"].into_iter().zip(players) {
        let (frames, stderr) = player.join().expect("player");
        assert!(stderr.trim().is_empty(), "{name}: ffmpeg errors: {stderr}");
        let codes = codes_of(&frames, 320, 240);
        assert!(
            codes.len() >= 100,
            "{name}: only {} frames in 8 s",
            codes.len()
        );
        // `b` is untouched; `a` keeps its source and only rebuilt the encoder, so its
        // viewer sees no gap either.
        assert_gapless(&codes, name);
    }
    assert!(
        !s.log_text().contains("path b: new settings"),
        "{}",
        s.log_text()
    );
}

#[test]
fn concurrent_patches_serialise_and_the_file_stays_valid() {
    let paths: serde_json::Map<String, serde_json::Value> = (0..4)
        .map(|i| (format!("p{i}"), pattern_path(160, 120, 5, 100)))
        .collect();
    let s = Server::start(serde_json::json!({ "paths": paths }));
    let http = s.http.expect("HTTP address");
    setup(http);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Reads the file all along: it must always be whole and valid.
    let reader = {
        let (path, stop) = (s.config_path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).expect("config file exists");
                Config::from_json(&text).unwrap_or_else(|e| panic!("invalid mid-way: {e}\n{text}"));
                reads += 1;
            }
            reads
        })
    };
    // Each writer changes its own path's bitrate 10 times, in order.
    let writers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for k in 0..10u32 {
                    let kbps = 100 + i * 1000 + k * 10;
                    let r = patch(
                        http,
                        serde_json::json!({"paths": {format!("p{i}"): {"bitrate_kbps": kbps}}}),
                    );
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("reader");
    assert!(reads > 0);
    // No update was lost: every path holds its writer's last value, on disk and live.
    let file = file_config(&s);
    let live = request(http, "GET", "/api/v1/config", &admin(PASSWORD)).json();
    for i in 0..4u32 {
        let last = 100 + i * 1000 + 90;
        assert_eq!(file.paths[&format!("p{i}")].bitrate_kbps, Some(last));
        assert_eq!(live["paths"][format!("p{i}")]["bitrate_kbps"], last);
    }
}

#[test]
fn a_kill_during_saves_leaves_the_old_or_the_new_file() {
    // One config carried from round to round, as a device carries it across power cuts.
    let first =
        Server::start(serde_json::json!({ "paths": { "cam": pattern_path(160, 120, 5, 100) } }));
    setup(first.http.expect("HTTP address"));
    let mut config = std::fs::read_to_string(&first.config_path).expect("read");
    drop(first);
    let mut acknowledged = 0;
    for round in 0..12u32 {
        let mut s = Server::start(serde_json::from_str(&config).expect("json"));
        let http = s.http.expect("HTTP address");
        assert_eq!(
            get(http, "/api/v1/session").json()["setup_required"],
            false,
            "round {round}: the admin password survived"
        );
        let base = (round + 1) * 1000;
        let writer = std::thread::spawn(move || {
            let mut last_ok = None;
            for k in 0..200u32 {
                let r = std::panic::catch_unwind(|| {
                    patch(
                        http,
                        serde_json::json!({"paths": {"cam": {"bitrate_kbps": base + k}}}),
                    )
                });
                match r {
                    Ok(r) if r.status == 200 => last_ok = Some(base + k),
                    _ => break,
                }
            }
            last_ok
        });
        // Kill somewhere in the middle of the stream of saves.
        std::thread::sleep(Duration::from_millis(150 + (round as u64 * 37) % 200));
        s.kill();
        let last_ok = writer.join().unwrap_or(None);
        let cfg = Config::load(&s.config_path)
            .unwrap_or_else(|e| panic!("round {round}: config broken after kill -9: {e}"));
        let kbps = cfg.paths["cam"].bitrate();
        // The last acknowledged save or the one in flight: never older, never a mix.
        let ok = match last_ok {
            Some(v) => kbps == v || kbps == v + 1,
            None => kbps <= base,
        };
        assert!(
            ok,
            "round {round}: file has {kbps}, last acknowledged {last_ok:?}"
        );
        assert!(
            cfg.admin.password_hash.is_some(),
            "round {round}: admin lost"
        );
        acknowledged += last_ok.map_or(0, |v| v - base + 1);
        config = std::fs::read_to_string(&s.config_path).expect("read");
    }
    assert!(
        acknowledged > 12,
        "saves happened before the kills ({acknowledged})"
    );
}
