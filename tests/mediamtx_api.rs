//! MediaMTX's control API against the real binary: every route in /v3 (and the /v1
//! spellings), its JSON shapes with a real viewer (ffmpeg) and a real publisher (ffmpeg)
//! on the paths, its error shape, changes applied live, saved, and still there after a
//! restart; the camera password in a relayed URL never shown and kept.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "mediamtx api admin";
const PUBLISHER: &str = "pusher";
const PUB_PASS: &str = "push-pass-1";
const CAMERA_SECRET: &str = "camera-secret-77";

fn call(http: SocketAddr, method: &str, target: &str, body: &str) -> Reply {
    send_json(http, PASSWORD, method, target, body)
}

fn get_json(http: SocketAddr, target: &str) -> Value {
    let r = request(http, "GET", target, &admin(PASSWORD));
    assert_eq!(r.status, 200, "{target}: {}", r.body);
    r.json()
}

/// A MediaMTX error: `status`, `{"status":"error","error":"..."}` containing `needle`.
fn assert_mediamtx_error(r: &Reply, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body);
    let v = r.json();
    assert_eq!(v["status"], "error", "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains(needle), "error {e:?} should name {needle:?}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
}

fn assert_ok(r: &Reply) {
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.body);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

fn wait_until(what: &str, http: SocketAddr, target: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_json_with(http, target, &admin(PASSWORD), what, ok)
}

#[test]
fn mediamtx_api_routes_shapes_errors_and_persistence() {
    require("ffmpeg");
    let mut s = Server::start(json!({
        "users": [ { "name": PUBLISHER, "password": PUB_PASS, "permissions": [
            { "action": "publish" }, { "action": "read" } ] } ],
        "paths": { "cam": pattern_path(320, 240, 15, 400) }
    }));
    let http = s.http.expect("HTTP");
    setup_admin(http, PASSWORD);

    // The admin login guards it, answered in MediaMTX's error shape.
    let r = get(http, "/v3/config/paths/list");
    assert_mediamtx_error(&r, 401, "log in");
    assert!(r.header("WWW-Authenticate").is_some());
    assert_mediamtx_error(&get(http, "/v3/paths/list"), 401, "log in");
    assert_mediamtx_error(
        &request(http, "GET", "/v3/nothing/here", &admin(PASSWORD)),
        404,
        "no such resource",
    );
    assert_mediamtx_error(
        &request(http, "PUT", "/v3/config/paths/add/x", &admin(PASSWORD)),
        405,
        "POST",
    );

    // A path with a viewer: ready, its codec, the viewer listed, bytes counted.
    let mut viewer = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
        ])
        .arg(s.url_with_user("cam", PUBLISHER, PUB_PASS))
        .args(["-t", "20", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    let cam = wait_until("a viewer on cam", http, "/v3/paths/get/cam", |v| {
        v["readers"].as_array().is_some_and(|r| r.len() == 1)
            && v["bytesSent"].as_u64().unwrap_or(0) > 10_000
    });
    let _ = viewer.kill();
    let _ = viewer.wait();
    assert_eq!(cam["name"], "cam");
    assert_eq!(cam["confName"], "cam");
    assert_eq!(cam["ready"], true);
    assert_eq!(cam["available"], true);
    assert!(
        cam["readyTime"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{cam}"
    );
    assert_eq!(
        cam["source"],
        json!({"type": "testPatternSource", "id": ""})
    );
    assert_eq!(cam["tracks"], json!(["H264"]));
    assert_eq!(cam["tracks2"][0]["codec"], "H264");
    assert_eq!(cam["tracks2"][0]["codecProps"]["width"], 320);
    assert_eq!(cam["tracks2"][0]["codecProps"]["height"], 240);
    assert_eq!(cam["readers"][0]["type"], "rtspSession");
    assert_eq!(cam["readers"][0]["id"].as_str().unwrap().len(), 36);
    assert!(cam["inboundBytes"].as_u64().unwrap() > 0);
    assert_eq!(cam["bytesReceived"], cam["inboundBytes"]);
    assert_eq!(cam["outboundBytes"], cam["bytesSent"]);
    assert_eq!(cam["inboundFramesInError"], 0);
    let list = get_json(http, "/v3/paths/list");
    assert_eq!(list["itemCount"], 1);
    assert_eq!(list["pageCount"], 1);
    assert_eq!(list["items"][0]["name"], "cam");
    assert_eq!(get_json(http, "/v1/paths/list")["itemCount"], 1);
    assert_mediamtx_error(
        &request(http, "GET", "/v3/paths/get/nope", &admin(PASSWORD)),
        404,
        "path not found",
    );

    // Global configuration: the configured listeners (port 0 here), users with their
    // permissions, no password.
    let global = get_json(http, "/v3/config/global/get");
    assert_eq!(global["rtspAddress"], "127.0.0.1:0");
    assert_eq!(global["apiAddress"], "127.0.0.1:0");
    assert_eq!(global["rtspAuthMethods"], json!(["digest", "basic"]));
    assert_eq!(global["authInternalUsers"][0]["user"], PUBLISHER);
    assert_eq!(
        global["authInternalUsers"][0]["permissions"],
        json!([{"action": "publish", "path": ""}, {"action": "read", "path": ""}])
    );
    assert!(!global.to_string().contains(PUB_PASS));
    assert_eq!(get_json(http, "/v1/config/get"), global);
    assert_eq!(
        get_json(http, "/v3/config/pathdefaults/get")["source"],
        "publisher"
    );

    // Add: a publisher path, MediaMTX's default source; curl -d's content type from a
    // script; then a real publisher shows as an rtspSession source.
    let r = send(
        http,
        "POST",
        "/v3/config/paths/add/door",
        &format!(
            "{}Content-Type: application/x-www-form-urlencoded\r\n",
            admin(PASSWORD)
        ),
        "{}",
    );
    assert_ok(&r);
    let door = get_json(http, "/v3/config/paths/get/door");
    assert_eq!(door["name"], "door");
    assert_eq!(door["source"], "publisher");
    assert_eq!(door["sourceOnDemand"], false);
    assert_eq!(door["recordFormat"], "fmp4");
    let idle = get_json(http, "/v3/paths/get/door");
    assert_eq!(idle["ready"], false);
    assert_eq!(idle["source"], Value::Null);
    assert_eq!(idle["readyTime"], Value::Null);
    let push = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc=size=160x120:rate=10")
        .args([
            "-t", "30", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10",
        ])
        .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
        .arg(s.url_with_user("door", PUBLISHER, PUB_PASS))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    let published = wait_until("a publisher on door", http, "/v3/paths/get/door", |v| {
        v["ready"] == true
    });
    assert_eq!(
        published["source"],
        json!({"type": "rtspSession", "id": ""})
    );
    assert_eq!(published["tracks2"][0]["codecProps"]["width"], 160);
    stop_child(push);

    // Adding a path that exists, a setting Vigint lacks, a bad value: 400, nothing saved.
    let before = std::fs::read(&s.config_path).unwrap();
    assert_mediamtx_error(
        &call(http, "POST", "/v3/config/paths/add/door", "{}"),
        400,
        "already exists",
    );
    assert_mediamtx_error(
        &call(
            http,
            "POST",
            "/v3/config/paths/add/other",
            r#"{"runOnReady":"x"}"#,
        ),
        400,
        "runOnReady",
    );
    assert_mediamtx_error(
        &call(
            http,
            "PATCH",
            "/v3/config/paths/patch/cam",
            r#"{"recordPath":"%Y"}"#,
        ),
        400,
        "recordPath",
    );
    assert_mediamtx_error(
        &call(
            http,
            "PATCH",
            "/v3/config/paths/patch/cam",
            r#"{"rtspTransport":"carrier"}"#,
        ),
        400,
        "rtspTransport: unknown variant `carrier`",
    );
    assert_mediamtx_error(
        &call(http, "PATCH", "/v3/config/paths/patch/cam", "{\"record\":"),
        400,
        "invalid JSON",
    );
    assert_mediamtx_error(
        &call(http, "POST", "/v3/config/paths/add/bad%2Fname", "{}"),
        400,
        "paths",
    );
    assert_mediamtx_error(
        &call(http, "PATCH", "/v3/config/paths/patch/nope", "{}"),
        404,
        "not found",
    );
    assert_mediamtx_error(
        &call(http, "POST", "/v3/config/paths/replace/nope", "{}"),
        404,
        "not found",
    );
    assert_mediamtx_error(
        &call(http, "DELETE", "/v3/config/paths/delete/nope", ""),
        404,
        "not found",
    );
    assert_eq!(
        std::fs::read(&s.config_path).unwrap(),
        before,
        "refused changes leave the file as it was"
    );
    // A browser cannot post a form here: another site is refused, and even from the
    // device's own page only JSON is taken.
    let r = send(
        http,
        "POST",
        "/v3/config/paths/add/csrf",
        &format!(
            "{}Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
            admin(PASSWORD)
        ),
        "{}",
    );
    assert_mediamtx_error(&r, 403, "own page");
    let r = send(
        http,
        "POST",
        "/v3/config/paths/add/csrf",
        &format!(
            "{}Origin: http://vigint\r\nContent-Type: application/x-www-form-urlencoded\r\n",
            admin(PASSWORD)
        ),
        "{}",
    );
    assert_mediamtx_error(&r, 415, "application/json");

    // A relay whose URL holds the camera's password: shown masked everywhere, kept when a
    // patch does not resend it.
    let url = format!("rtsp://admin:{CAMERA_SECRET}@127.0.0.1:9/stream1");
    assert_ok(&call(
        http,
        "POST",
        "/v3/config/paths/add/gate",
        &json!({"source": url, "sourceOnDemand": true, "rtspTransport": "automatic"}).to_string(),
    ));
    assert_ok(&call(
        http,
        "POST",
        "/v1/config/paths/edit/gate",
        r#"{"sourceOnDemandCloseAfter":"20s"}"#,
    ));
    let gate = get_json(http, "/v3/config/paths/get/gate");
    assert_eq!(gate["source"], "rtsp://admin:***@127.0.0.1:9/stream1");
    assert_eq!(gate["rtspTransport"], "automatic");
    assert_eq!(gate["sourceOnDemandCloseAfter"], "20s");
    // Sent back as shown (a GET -> replace round trip): the real password stays.
    assert_ok(&call(
        http,
        "POST",
        "/v3/config/paths/replace/gate",
        &gate.to_string(),
    ));
    for target in [
        "/v3/config/paths/list",
        "/v3/config/paths/get/gate",
        "/v3/paths/list",
        "/v3/paths/get/gate",
        "/v3/config/global/get",
        "/api/v1/config",
        "/api/v1/status",
    ] {
        let body = request(http, "GET", target, &admin(PASSWORD)).body;
        assert!(!body.contains(CAMERA_SECRET), "{target} shows the password");
    }
    assert!(
        std::fs::read_to_string(&s.config_path)
            .unwrap()
            .contains(CAMERA_SECRET),
        "the password is kept in the file"
    );
    assert!(!s.log_text().contains(CAMERA_SECRET), "never logged");

    // Patch and replace change the running path: bitrate in bit/s, recording settings.
    assert_ok(&call(
        http,
        "PATCH",
        "/v3/config/paths/patch/cam",
        r#"{"rpiCameraBitrate":800000,"recordDeleteAfter":"2h","maxReaders":5}"#,
    ));
    let ours = get_json(http, "/api/v1/config");
    assert_eq!(ours["paths"]["cam"]["bitrate_kbps"], 800);
    assert_eq!(ours["paths"]["cam"]["max_readers"], 5);
    assert_eq!(ours["paths"]["cam"]["recording"]["delete_after"], "2h");
    let cam_conf = get_json(http, "/v3/config/paths/get/cam");
    assert_eq!(cam_conf["rpiCameraBitrate"], 800_000);
    assert_eq!(cam_conf["rpiCameraWidth"], 320);
    assert_eq!(cam_conf["recordDeleteAfter"], "2h");
    assert_eq!(cam_conf["maxReaders"], 5);
    // Replace: what is not sent goes back to the default (a publisher path).
    assert_ok(&call(
        http,
        "POST",
        "/v3/config/paths/replace/gate",
        r#"{"maxReaders":3}"#,
    ));
    let gate = get_json(http, "/v3/config/paths/get/gate");
    assert_eq!(gate["source"], "publisher");
    assert_eq!(gate["sourceOnDemand"], false);
    assert_eq!(gate["maxReaders"], 3);
    // Pagination as MediaMTX pages: 3 paths (cam, door, gate), two per page.
    let page = get_json(http, "/v3/config/paths/list?itemsPerPage=2&page=1");
    assert_eq!(page["itemCount"], 3);
    assert_eq!(page["pageCount"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "gate");
    let r = request(
        http,
        "GET",
        "/v3/config/paths/list?itemsPerPage=0",
        &admin(PASSWORD),
    );
    assert_mediamtx_error(&r, 400, "items per page");

    // Delete (v3 and the v1 spelling), live: the path is no longer served.
    assert_ok(&call(http, "DELETE", "/v3/config/paths/delete/door", ""));
    assert_ok(&call(http, "POST", "/v1/config/paths/remove/gate", ""));
    assert_mediamtx_error(
        &request(http, "GET", "/v3/paths/get/door", &admin(PASSWORD)),
        404,
        "path not found",
    );
    assert_ok(&call(
        http,
        "POST",
        "/v3/config/paths/add/yard",
        r#"{"source":"test-pattern:160x120@10","record":false}"#,
    ));
    wait_until("yard serves", http, "/v3/paths/get/yard", |v| {
        v["ready"] == true
    });
    let saved = get_json(http, "/v3/config/paths/list");

    // Saved: after a restart the same paths and settings are there (MediaMTX loses them).
    s.restart();
    let http = s.http.expect("HTTP after restart");
    assert_eq!(get_json(http, "/v3/config/paths/list"), saved);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = get_json(http, "/v3/paths/list")["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if names == ["cam", "yard"] {
            break;
        }
        assert!(Instant::now() < deadline, "served after restart: {names:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until(
        "yard serves after restart",
        http,
        "/v3/paths/get/yard",
        |v| v["ready"] == true,
    );
}

fn stop_child(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}
