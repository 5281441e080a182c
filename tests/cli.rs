//! The command line: config checking, exit codes, defaults without a config file.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vigint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigint"))
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("cli");
    let f = dir.path().join("ok.json");
    std::fs::write(
        &f,
        r#"{ "rtsp": { "listen": "0.0.0.0:8554" }, "http": { "listen": "0.0.0.0:8080" },
             "users": [ { "name": "viewer", "password": "secret" } ],
             "paths": { "cam": { "source": "auto", "width": 1280, "height": 720, "fps": 30, "bitrate_kbps": 2000, "idr_interval_s": 2 } } }"#,
    )
    .expect("write");
    let out = vigint()
        .arg("--check-config")
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_the_field_and_exits_2() {
    let dir = TempDir::new("cli");
    let cases = [
        (r#"{"paths":{"cam":{"fps":0}}}"#, "paths.cam.fps"),
        (r#"{"paths":{"cam":{"fsp":30}}}"#, "paths.cam.fsp"),
        (r#"{"rtsp":{"listen":"nowhere"}}"#, "rtsp.listen"),
        (
            r#"{"paths":{"cam":{"source":"rtmp://x"}}}"#,
            "paths.cam.source",
        ),
        (r#"{"users":[{"name":"a"}]}"#, "users[0]"),
        ("{ not json", "key must be a string"),
    ];
    for (i, (json, expected)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&f, json).expect("write");
        let out = vigint()
            .arg("--check-config")
            .arg(&f)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{json}: {err}");
        assert!(
            err.contains(expected),
            "{json}: expected `{expected}` in: {err}"
        );
    }
    let out = vigint()
        .arg("--check-config")
        .arg(dir.path().join("missing.json"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let out = vigint().arg("--frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    let out = vigint()
        .args(["--rtsp-listen", "not-an-address"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rtsp-listen"));
    let out = vigint().arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check-config"));
}

#[test]
fn without_a_config_it_serves_cam_from_auto() {
    require("ffprobe");
    let dir = TempDir::new("cli");
    let child = vigint()
        .args(["--rtsp-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if let Some(rest) = line.split("serving rtsp://").nth(1) {
            url = rest
                .split_whitespace()
                .next()
                .map(|u| format!("rtsp://{u}"));
        }
        log.push(line);
        if url.is_some() {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no URL announced:\n{}", log.join("\n")));
    assert!(url.ends_with("/cam"), "{url}");
    let r = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp"])
            .args([
                "-show_entries",
                "stream=width,height",
                "-of",
                "default=nw=1",
                &url,
            ]),
        Duration::from_secs(20),
    );
    drop(child);
    assert!(r.ok, "{}", r.stderr);
    // No camera on this machine: auto falls back to the test pattern at the default size.
    assert!(
        r.stdout.contains("width=1280") && r.stdout.contains("height=720"),
        "{}",
        r.stdout
    );
}
