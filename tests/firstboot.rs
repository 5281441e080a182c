//! First boot from the SD card against the real binary: a `vigint.json` next to the config
//! (standing in for `/boot/firmware/vigint.json`, given with `--first-boot`) that is valid
//! (merged, password hashed and usable for login, file removed), invalid (kept, config byte
//! for byte as it was, the field in status), absent, or a directory.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::*;
use common::*;
use vigint::config::Config;

const PASSWORD: &str = "set before the first boot";

/// Runs vigint with `--first-boot FILE` after its own arguments (through `sh`, which
/// `Launch` runs the binary with).
fn with_first_boot(file: &Path) -> Launch {
    Launch {
        wrapper: vec![
            "sh".into(),
            "-c".into(),
            format!("exec \"$@\" --first-boot '{}'", file.display()),
            "sh".into(),
        ],
        env: Vec::new(),
    }
}

/// A config with every address set, so the harness writes it exactly as given.
fn config(dir: &TempDir) -> serde_json::Value {
    serde_json::json!({
        "rtsp": {"listen": "127.0.0.1:0", "udp_rtp_port": 0},
        "http": {"listen": "127.0.0.1:0"},
        "data_dir": dir.path().join("data").display().to_string(),
        "paths": {"cam": {"source": "test-pattern:160x120@5", "bitrate_kbps": 200}}
    })
}

fn streaming(s: &Server, auth: &str, paths: usize) -> serde_json::Value {
    let http = s.http.expect("HTTP address");
    wait_json_with(http, "/api/v1/status", auth, "paths never streamed", |v| {
        v["paths"]
            .as_array()
            .is_some_and(|p| p.len() == paths && p.iter().all(|p| p["state"] == "streaming"))
    })
}

#[test]
fn a_valid_file_sets_the_admin_password_merges_and_is_removed() {
    let dir = TempDir::new("fb-valid");
    let file = dir.path().join("vigint.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "admin": {"password": PASSWORD},
            "log_level": "debug",
            "paths": {
                "cam": {"bitrate_kbps": 300},
                "side": {"source": "test-pattern:160x120@5"}
            }
        })
        .to_string(),
    )
    .expect("write first-boot file");
    let s = Server::start_with(config(&dir), with_first_boot(&file));
    let http = s.http.expect("HTTP address");
    assert!(!file.exists(), "the file with the password is gone");

    // The password works; nothing is open any more, as after the page's own setup.
    assert_eq!(
        request(http, "GET", "/api/v1/session", &admin(PASSWORD)).json(),
        serde_json::json!({"setup_required": false, "logged_in": true, "role": "admin", "user": "admin"})
    );
    assert_error(&get(http, "/api/v1/status"), 401, "unauthorized");
    assert_error(
        &request(http, "GET", "/api/v1/status", &admin("not the password")),
        401,
        "unauthorized",
    );
    let status = streaming(&s, &admin(PASSWORD), 2);
    assert_eq!(
        status["first_boot"],
        serde_json::json!({
            "file": file.display().to_string(),
            "applied": true,
            "keys": ["admin", "log_level", "paths"],
            "error": null,
            "field": null,
            "removed": true
        })
    );

    // Merged, not replaced: the file's own cam source stays, its bitrate changed.
    let cfg = Config::load(&s.config_path).expect("the saved config is valid");
    assert_eq!(cfg.log_level, "debug");
    assert_eq!(cfg.paths["cam"].source, "test-pattern:160x120@5");
    assert_eq!(cfg.paths["cam"].bitrate_kbps, Some(300));
    assert!(cfg.paths.contains_key("side"));
    assert!(cfg
        .admin
        .password_hash
        .as_deref()
        .is_some_and(|h| h.starts_with("$argon2id$")));
    let text = std::fs::read_to_string(&s.config_path).expect("read config");
    assert!(!text.contains(PASSWORD), "only the hash is saved");
    assert!(!s.log_text().contains(PASSWORD), "never logged");
    assert!(s.log_text().contains("first boot: applied "));
}

/// The status's `first_boot` report for a file that was not applied, whose error `error_ok`
/// accepts.
fn not_applied(status: &serde_json::Value, error_ok: impl Fn(&str) -> bool) -> &serde_json::Value {
    let fb = &status["first_boot"];
    assert_eq!(fb["applied"], false, "{fb}");
    assert!(fb["error"].as_str().is_some_and(error_ok), "{fb}");
    fb
}

/// Starts vigint with `first_boot` holding `content`; returns the server, the status seen
/// (open: no admin password is set) and the config as written before the start.
fn start_invalid(tag: &str, content: &[u8]) -> (Server, serde_json::Value, TempDir, Vec<u8>) {
    let dir = TempDir::new(tag);
    let file = dir.path().join("vigint.json");
    std::fs::write(&file, content).expect("write first-boot file");
    let cfg = config(&dir);
    let written = serde_json::to_vec_pretty(&cfg).expect("json");
    let s = Server::start_with(cfg, with_first_boot(&file));
    let status = streaming(&s, "", 1);
    assert_eq!(
        std::fs::read(&file).expect("the file is kept"),
        content,
        "kept as it was"
    );
    assert_eq!(
        std::fs::read(&s.config_path).expect("config"),
        written,
        "the config file is byte for byte as it was"
    );
    (s, status, dir, written)
}

#[test]
fn an_invalid_file_is_kept_and_changes_nothing() {
    let bad = serde_json::json!({
        "admin": {"password": PASSWORD},
        // (A sized test-pattern source would make fps moot: the source names the rate.)
        "paths": {"cam": {"source": "test-pattern", "fps": 0}}
    })
    .to_string();
    let (s, status, _dir, _) = start_invalid("fb-field", bad.as_bytes());
    let fb = not_applied(&status, |e| {
        e.starts_with("paths.cam.fps: ") && e.contains("1 to 120")
    });
    assert_eq!(fb["removed"], false);
    assert_eq!(fb["field"], "paths.cam.fps");
    // Not half applied: no admin password either.
    let http = s.http.expect("HTTP");
    assert_eq!(get(http, "/api/v1/session").json()["setup_required"], true);
    let log = s.log_text();
    assert_eq!(
        log.matches("first boot: ").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(log.contains("NOT applied"), "{log}");
    assert!(!log.contains(PASSWORD));
    assert!(!status.to_string().contains(PASSWORD));
}

#[test]
fn a_file_that_is_not_json_is_kept_and_changes_nothing() {
    let (_s, status, _dir, _) = start_invalid("fb-json", b"{\"log_level\": \"debug\",}");
    let fb = not_applied(&status, |e| e.starts_with("not valid JSON"));
    assert!(fb["field"].is_null());
}

#[test]
fn no_file_means_nothing_happens() {
    let dir = TempDir::new("fb-absent");
    let cfg = config(&dir);
    let written = serde_json::to_vec_pretty(&cfg).expect("json");
    let s = Server::start_with(cfg, with_first_boot(&dir.path().join("vigint.json")));
    let status = streaming(&s, "", 1);
    assert!(status["first_boot"].is_null(), "{status}");
    assert!(!s.log_text().contains("first boot"));
    assert_eq!(std::fs::read(&s.config_path).expect("config"), written);
}

#[test]
fn a_directory_in_its_place_is_a_clear_error_and_vigint_serves() {
    let dir = TempDir::new("fb-dir");
    let file = dir.path().join("vigint.json");
    std::fs::create_dir(&file).expect("mkdir");
    let mut s = Server::start_with(config(&dir), with_first_boot(&file));
    let status = streaming(&s, "", 1);
    not_applied(&status, |e| e.contains("is a directory"));
    assert!(file.is_dir());
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.alive());
}

/// Runs vigint with `--first-boot FILE` where FILE's directory is a read-only bind mount (as
/// a boot partition the service may not write), in a private user and mount namespace.
fn read_only_first_boot(file: &Path) -> Launch {
    let dir = file.parent().expect("parent").display().to_string();
    let script = format!(
        "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\" --first-boot '{}'",
        file.display()
    );
    Launch::in_mount_namespace(script, &dir)
}

#[test]
fn a_file_vigint_cannot_remove_is_not_applied() {
    let dir = TempDir::new("fb-ro");
    let boot = dir.path().join("boot");
    std::fs::create_dir(&boot).expect("mkdir");
    let file = boot.join("vigint.json");
    let content = serde_json::json!({"admin": {"password": PASSWORD}}).to_string();
    std::fs::write(&file, &content).expect("write first-boot file");
    let cfg = config(&dir);
    let written = serde_json::to_vec_pretty(&cfg).expect("json");
    let s = Server::start_with(cfg, read_only_first_boot(&file));
    let status = streaming(&s, "", 1);
    not_applied(&status, |e| {
        e.starts_with("cannot be removed after use") && e.contains("ead-only")
    });
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), content);
    assert_eq!(std::fs::read(&s.config_path).expect("config"), written);
    let http = s.http.expect("HTTP");
    assert_eq!(get(http, "/api/v1/session").json()["setup_required"], true);
}
