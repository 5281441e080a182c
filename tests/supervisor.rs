//! Config changes never wait for a stop that hangs: a camera whose capture thread is wedged
//! (`hang-capture`) or a card that stopped answering (`stall-storage`) while its path or
//! recorder is being stopped must not hold up status, /healthz, the API's reads or the next
//! change. Driven through the real binary with the fault injection of `src/fault.rs`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;

const PASSWORD: &str = "supervisor test";
/// Answers a person waits for; a hung stop would make them take as long as the hang.
const PROMPT: Duration = Duration::from_secs(1);

/// Switches a fault on for as long as it lives; off again when dropped, also when the
/// test fails, so the server can stop.
struct Fault(PathBuf);

impl Fault {
    fn on(dir: &TempDir, name: &str) -> Fault {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").expect("switch the fault on");
        Fault(path)
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn start(config: serde_json::Value, faults: &TempDir) -> Server {
    let s = Server::start_with(
        config,
        Launch {
            env: vec![("VIGINT_FAULTS".into(), faults.path().display().to_string())],
            ..Launch::default()
        },
    );
    setup_admin(s.http.expect("HTTP"), PASSWORD);
    s
}

/// Runs `f`, asserts it took less than `PROMPT`, and returns what it returned.
fn prompt<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    let took = t0.elapsed();
    assert!(
        took < PROMPT,
        "{what} took {} ms while a stop hangs",
        took.as_millis()
    );
    out
}

/// A read as the admin (after the setup, status needs the login).
fn read(http: std::net::SocketAddr, target: &str) -> Reply {
    request(http, "GET", target, &admin(PASSWORD))
}

fn wait(
    http: std::net::SocketAddr,
    target: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_json_with(http, target, &admin(PASSWORD), what, ok)
}

/// Status, /healthz and the config answer promptly.
fn reads_answer_promptly(http: std::net::SocketAddr) {
    let status = prompt("GET /api/v1/status", || read(http, "/api/v1/status"));
    assert_eq!(status.status, 200, "{}", status.body);
    let health = prompt("GET /healthz", || get(http, "/healthz"));
    assert!(matches!(health.status, 200 | 503), "{}", health.body);
    let config = prompt("GET /api/v1/config", || read(http, "/api/v1/config"));
    assert_eq!(config.status, 200, "{}", config.body);
}

#[test]
fn a_camera_that_hangs_while_stopping_holds_up_nothing() {
    let faults = TempDir::new("faults");
    let s = start(
        serde_json::json!({ "paths": {
            "cam": pattern_path(160, 120, 10, 200),
            "other": pattern_path(160, 120, 10, 200),
        } }),
        &faults,
    );
    let http = s.http.expect("HTTP");
    wait(http, "/api/v1/status", "both paths stream", |v| {
        v["paths"]
            .as_array()
            .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["frames"].as_u64() >= Some(5)))
    });
    let hang = Fault::on(&faults, "hang-capture");
    assert!(
        s.wait_log("path cam: fault hang-capture", Duration::from_secs(5)),
        "the fault did not take:\n{}",
        s.log_text()
    );
    // Removing the path stops its hung capture thread: the answer must not wait for it.
    let r = prompt("DELETE /api/v1/paths/cam", || {
        send_json(http, PASSWORD, "DELETE", "/api/v1/paths/cam", "")
    });
    assert_eq!(r.status, 200, "{}", r.body);
    reads_answer_promptly(http);
    // A second change, to another path, goes through while the first stop still hangs.
    let r = prompt("PATCH of another path", || {
        send_json(
            http,
            PASSWORD,
            "PATCH",
            "/api/v1/config",
            r#"{"paths":{"other":{"bitrate_kbps":300}}}"#,
        )
    });
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("paths.other encoder restarted"),
        "{}",
        r.body
    );
    let config = read(http, "/api/v1/config").json();
    assert!(config["paths"].get("cam").is_none(), "{config}");
    assert_eq!(config["paths"]["other"]["bitrate_kbps"], 300);
    let status = read(http, "/api/v1/status").json();
    let names: Vec<&str> = status["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["other"],
        "the removed path is gone from status at once"
    );
    // The camera comes back to life: the other path streams again, the stop completes.
    drop(hang);
    let before = read(http, "/api/v1/paths/other").json()["frames"]
        .as_u64()
        .unwrap_or(0);
    wait(http, "/api/v1/paths/other", "other streams again", |v| {
        v["frames"].as_u64() > Some(before + 5)
    });
    let mut s = s;
    s.terminate();
    assert!(
        !s.log_text().contains("still stopping"),
        "the hung stop finished once the fault was off:\n{}",
        s.log_text()
    );
}

#[test]
fn a_card_that_hangs_while_a_recorder_stops_holds_up_nothing() {
    let faults = TempDir::new("faults");
    let s = start(
        serde_json::json!({
            "recording": { "record": true, "part_duration": "200ms", "segment_duration": "2s" },
            "paths": { "cam": pattern_path(160, 120, 10, 200) }
        }),
        &faults,
    );
    let http = s.http.expect("HTTP");
    wait(http, "/api/v1/paths/cam", "recording", |v| {
        v["recording"]["segments_written"].as_u64() >= Some(1)
    });
    let stall = Fault::on(&faults, "stall-storage");
    // A fragment is due every 200 ms: the writer is soon blocked on the card.
    std::thread::sleep(Duration::from_millis(800));
    // Recording off: stopping the recorder waits for the card; the answer must not.
    let r = prompt("PATCH recording off", || {
        send_json(
            http,
            PASSWORD,
            "PATCH",
            "/api/v1/config",
            r#"{"recording":{"record":false}}"#,
        )
    });
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("paths.cam recording off"), "{}", r.body);
    reads_answer_promptly(http);
    let r = prompt("a second change", || {
        send_json(
            http,
            PASSWORD,
            "PATCH",
            "/api/v1/config",
            r#"{"paths":{"cam":{"bitrate_kbps":300}}}"#,
        )
    });
    assert_eq!(r.status, 200, "{}", r.body);
    let cam = prompt("GET /api/v1/paths/cam", || read(http, "/api/v1/paths/cam")).json();
    assert!(cam["recording"].is_null(), "{cam}");
    assert!(cam["frames"].as_u64() > Some(0), "{cam}");
    drop(stall);
    let mut s = s;
    s.terminate();
    assert!(!s.log_text().contains("still stopping"), "{}", s.log_text());
}
