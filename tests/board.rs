//! Board profiles against the real binary: `--board` and the config's `board` choose the
//! profile (the command line wins), its defaults fill only what a path leaves unset, status
//! shows the profile and what came from it, and an unknown board is a usage error.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::*;
use common::*;

/// Runs vigint with `args` after its own arguments.
fn with_args(args: &str) -> Launch {
    Launch {
        wrapper: vec![
            "sh".into(),
            "-c".into(),
            format!("exec \"$@\" {args}"),
            "sh".into(),
        ],
        env: Vec::new(),
    }
}

fn status_when_streaming(s: &Server, paths: usize) -> serde_json::Value {
    wait_json(
        s.http.expect("HTTP"),
        "/api/v1/status",
        "paths never measured",
        |v| {
            v["paths"].as_array().is_some_and(|p| {
                p.len() == paths && p.iter().all(|p| p["fps"].as_f64().is_some_and(|f| f > 0.0))
            })
        },
    )
}

fn path<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["paths"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no path {name}: {status}"))
}

#[test]
fn the_profile_fills_only_what_a_path_leaves_unset() {
    let s = Server::start_with(
        serde_json::json!({"paths": {
            "plain": {"source": "test-pattern"},
            "own": {"source": "test-pattern", "width": 320, "height": 240, "fps": 5, "bitrate_kbps": 300}
        }}),
        with_args("--board pi-zero-2w"),
    );
    let status = status_when_streaming(&s, 2);
    let b = &status["board_profile"];
    assert_eq!(b["id"], "pi-zero-2w", "{b}");
    assert_eq!(b["chosen_by"], "command_line");
    assert_eq!(
        b["video_defaults"],
        serde_json::json!({"width": 640, "height": 480, "fps": 15, "bitrate_kbps": 1000})
    );
    assert_eq!(
        b["defaults_applied"],
        serde_json::json!([
            "paths.plain.width",
            "paths.plain.height",
            "paths.plain.fps",
            "paths.plain.bitrate_kbps"
        ])
    );
    assert_eq!(b["led"]["driver"], "sysfs");
    assert_eq!(b["led"]["names"][0], "ACT");
    assert!(b["encode_routes"].as_array().is_some_and(|r| r
        .iter()
        .any(|r| r["route"] == "hardware" && r["used"] == false)));
    assert_eq!(
        path(&status, "plain")["resolution"],
        serde_json::json!({"width": 640, "height": 480})
    );
    assert_eq!(
        path(&status, "own")["resolution"],
        serde_json::json!({"width": 320, "height": 240})
    );
    // The measured rate follows the profile's 15 fps, not the built-in 30.
    let plain = wait_json(
        s.http.expect("HTTP"),
        "/api/v1/paths/plain",
        "rate never settled",
        |p| {
            p["fps"]
                .as_f64()
                .is_some_and(|f| (10.0..=18.0).contains(&f))
        },
    );
    assert_eq!(plain["name"], "plain");
    assert!(s
        .log_text()
        .contains("board: Raspberry Pi Zero 2 W (pi-zero-2w, --board)"));
}

#[test]
fn the_command_line_beats_the_config_which_beats_detection() {
    let sized =
        serde_json::json!({"cam": {"source": "test-pattern:160x120@5", "bitrate_kbps": 200}});
    let s = Server::start(serde_json::json!({"board": "pi5", "paths": sized.clone()}));
    let b = status_when_streaming(&s, 1)["board_profile"].clone();
    assert_eq!(
        (b["id"].as_str(), b["chosen_by"].as_str()),
        (Some("pi5"), Some("config"))
    );
    assert!(b["encode_routes"]
        .as_array()
        .is_some_and(|r| r.iter().all(|r| r["route"] != "hardware")));
    // A new board from the API is saved and takes effect at the next start.
    let http = s.http.expect("HTTP");
    setup_admin(http, "board test password");
    let r = send_json(
        http,
        "board test password",
        "PATCH",
        "/api/v1/config",
        r#"{"board": "pi4"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["restart_required"], serde_json::json!(["board"]));
    let saved = vigint::config::Config::load(&s.config_path).expect("saved config");
    assert_eq!(saved.board.as_deref(), Some("pi4"));
    let r = send_json(
        http,
        "board test password",
        "PATCH",
        "/api/v1/config",
        r#"{"board": "pi9"}"#,
    );
    assert_eq!(assert_error(&r, 400, "invalid"), "board");
    drop(s);

    let s = Server::start_with(
        serde_json::json!({"board": "pi5", "paths": sized.clone()}),
        with_args("--board pi3"),
    );
    let b = status_when_streaming(&s, 1)["board_profile"].clone();
    assert_eq!(
        (b["id"].as_str(), b["chosen_by"].as_str()),
        (Some("pi3"), Some("command_line"))
    );
    drop(s);

    // Neither: this machine's device tree, or its architecture's generic profile.
    let s = Server::start(serde_json::json!({"paths": sized}));
    let status = status_when_streaming(&s, 1);
    let b = &status["board_profile"];
    if status["board"].is_null() {
        assert_eq!(b["chosen_by"], "architecture", "{b}");
        let generic = if std::env::consts::ARCH == "x86_64" {
            "generic-x86_64"
        } else {
            "generic-aarch64"
        };
        assert_eq!(b["id"], generic);
    } else {
        let model = status["board"].as_str().unwrap_or_default();
        let want = vigint::board::detect(model);
        match want {
            Some(p) => assert_eq!(
                (b["id"].as_str(), b["chosen_by"].as_str()),
                (Some(p.id.as_str()), Some("device_tree"))
            ),
            None => assert_eq!(b["chosen_by"], "architecture", "{b}"),
        }
    }
    // Everything is set: the source gives size and rate, the path its bitrate.
    assert_eq!(b["defaults_applied"], serde_json::json!([]), "{b}");
}

#[test]
fn an_unknown_board_is_a_usage_error() {
    let dir = TempDir::new("board-cli");
    let r = run(
        Command::new(env!("CARGO_BIN_EXE_vigint"))
            .args(["--board", "pi9", "--data-dir"])
            .arg(dir.path()),
        Duration::from_secs(20),
    );
    assert!(!r.ok);
    assert!(
        r.stderr.contains("--board: unknown board `pi9`") && r.stderr.contains("pi-zero-2w"),
        "{}",
        r.stderr
    );
    let f = dir.path().join("bad.json");
    std::fs::write(&f, r#"{"board": "pi9"}"#).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigint"))
        .arg("--check-config")
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("board: unknown board `pi9`"));
}
