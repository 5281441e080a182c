//! Authentication with real clients: Basic and Digest each accepted by ffprobe and retina
//! with the right credentials, rejected (401) with wrong or missing ones; passwords never
//! appear in the log.

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

const USER: &str = "viewer";
const PASS: &str = "s3cret-Pw";
const TRIED: &str = "Tr1ed-Guess";

fn server(methods: &[&str]) -> Server {
    Server::start(serde_json::json!({
        "rtsp": { "auth_methods": methods },
        "users": [ { "name": USER, "password": PASS } ],
        "paths": { "cam": pattern_path(320, 240, 15, 300) }
    }))
}

fn ffprobe_ok(url: &str) -> Run {
    require("ffprobe");
    run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "default=nw=1",
            url,
        ]),
        Duration::from_secs(20),
    )
}

fn retina(url: &str, user: &str, pass: &str) -> Result<Vec<i64>, String> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(retina_util::frames(
        url,
        "tcp",
        Some((user, pass)),
        Duration::from_secs(2),
    ))
}

fn check_method(method: &str) {
    let s = server(&[method]);
    // The challenge offers exactly the configured scheme.
    let mut c = TcpStream::connect(s.rtsp).expect("connect");
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", s.url("cam")),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    let challenge = header_of(&r, "WWW-Authenticate").expect("challenge");
    assert!(
        challenge.to_ascii_lowercase().starts_with(method),
        "{challenge}"
    );

    let good = ffprobe_ok(&s.url_with_user("cam", USER, PASS));
    assert!(
        good.ok && good.stdout.contains("codec_name=h264"),
        "ffprobe with {method}: {}",
        good.stderr
    );
    let bad = ffprobe_ok(&s.url_with_user("cam", USER, TRIED));
    assert!(
        !bad.ok,
        "ffprobe with a wrong password must fail ({method})"
    );
    assert!(
        bad.stderr.contains("401"),
        "ffprobe should report 401: {}",
        bad.stderr
    );
    let none = ffprobe_ok(&s.url("cam"));
    assert!(!none.ok, "ffprobe without credentials must fail ({method})");

    let frames =
        retina(&s.url("cam"), USER, PASS).unwrap_or_else(|e| panic!("retina with {method}: {e}"));
    assert!(
        frames.len() >= 20,
        "retina with {method}: {} frames",
        frames.len()
    );
    let err = retina(&s.url("cam"), USER, TRIED).expect_err("retina with a wrong password");
    assert!(err.contains("401"), "retina should see 401: {err}");

    assert!(
        s.wait_log("authentication failed", Duration::from_secs(2)),
        "failures are logged"
    );
    assert!(
        !s.log_text().contains(PASS),
        "the password leaked into the log:\n{}",
        s.log_text()
    );
    assert!(
        !s.log_text().contains(TRIED),
        "a tried password leaked into the log"
    );
}

#[test]
fn digest_with_ffprobe_and_retina() {
    check_method("digest");
}

#[test]
fn basic_with_ffprobe_and_retina() {
    check_method("basic");
}

#[test]
fn both_challenges_by_default_and_credentials_in_urls_are_not_logged() {
    let s = Server::start(serde_json::json!({
        "users": [ { "name": USER, "password": PASS } ],
        "paths": { "cam": pattern_path(320, 240, 15, 300) }
    }));
    let mut c = TcpStream::connect(s.rtsp).expect("connect");
    let url = format!("rtsp://{USER}:{PASS}@{}/cam", s.rtsp);
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    let challenges: Vec<&str> = r
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2, "{r}");
    assert!(
        challenges[0].starts_with("Digest ") && challenges.iter().any(|c| c.starts_with("Basic ")),
        "{challenges:?}"
    );
    // Wrong Basic credentials: 401 again.
    let r = raw_request(
        &mut c,
        &format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic dmlld2VyOm5vcGU=\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    // ffmpeg picks Digest when both are offered.
    let good = ffprobe_ok(&s.url_with_user("cam", USER, PASS));
    assert!(good.ok, "ffprobe: {}", good.stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !s.log_text().contains(PASS),
        "the password leaked:\n{}",
        s.log_text()
    );
}
