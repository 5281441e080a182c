//! The status LED in the real binary: a `gpio` LED on a machine that is not a Raspberry Pi
//! is a clear error at start while video goes on, and status shows the pattern the health
//! calls for (starting, recording, camera lost, streaming or clock not synchronised).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::time::Duration;

use common::http::*;
use common::*;

#[test]
fn gpio_on_a_machine_that_is_not_a_pi_is_a_clear_error_and_video_goes_on() {
    let s = Server::start(serde_json::json!({
        "led": { "driver": "gpio", "pin": 17 },
        "paths": { "cam": pattern_path(320, 240, 15, 500) }
    }));
    let http = s.http.expect("HTTP address");
    assert!(
        s.wait_log("led: GPIO 17: ", Duration::from_secs(10)),
        "{}",
        s.log_text()
    );
    let log = s.log_text();
    assert!(log.contains("not a Raspberry Pi"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let status = wait_json(http, "/api/v1/status", "never streamed", |v| {
        v["paths"][0]["state"] == "streaming"
    });
    let led = &status["led"];
    assert_eq!(led["driver"], "gpio", "{status}");
    assert!(led["pattern"].is_null(), "{status}");
    assert!(
        led["error"]
            .as_str()
            .is_some_and(|e| e.contains("GPIO 17") && e.contains("not a Raspberry Pi")),
        "{status}"
    );
    let metrics = get(http, "/metrics").body;
    assert!(
        metrics.contains("vigint_led_info{driver=\"gpio\",pattern=\"error\"} 1"),
        "{metrics}"
    );
}

#[test]
fn status_shows_the_pattern_the_health_calls_for() {
    // No `led` in the config: driver none, but the pattern is still worked out and shown.
    let s = Server::start(serde_json::json!({
        "paths": { "cam": pattern_path(320, 240, 15, 500) }
    }));
    let http = s.http.expect("HTTP address");
    let status = wait_json(http, "/api/v1/status", "never streamed", |v| {
        v["healthy"] == true && v["led"]["pattern"] != "starting" && v["led"]["pattern"].is_string()
    });
    let want = if status["clock"]["synchronized"] == true {
        "streaming"
    } else {
        "clock_unsynchronized"
    };
    assert_eq!(status["led"]["driver"], "none", "{status}");
    assert_eq!(status["led"]["pattern"], want, "{status}");
    drop(s);

    // A lost camera beats everything else.
    let s = Server::start(serde_json::json!({ "paths": {
        "ok": pattern_path(320, 240, 15, 500),
        "gone": { "source": "/dev/vigint-no-such-camera" }
    } }));
    let http = s.http.expect("HTTP address");
    wait_json(http, "/api/v1/status", "camera_lost never shown", |v| {
        v["led"]["pattern"] == "camera_lost"
    });
    drop(s);

    // Recording: shown so a person knows, whatever the clock says.
    let s = Server::start(serde_json::json!({
        "recording": { "record": true },
        "paths": { "cam": pattern_path(320, 240, 15, 500) }
    }));
    let http = s.http.expect("HTTP address");
    let status = wait_json(http, "/api/v1/status", "recording never shown", |v| {
        v["led"]["pattern"] == "recording"
    });
    assert_eq!(
        status["paths"][0]["recording"]["state"], "recording",
        "{status}"
    );
}

#[test]
fn a_sysfs_led_is_lit_while_serving_then_off_and_restored_after_a_clean_stop() {
    // Plain files stand in for /sys/class/leds/ACT: the timer's attributes exist from the
    // start (the kernel would create them when the trigger is set).
    let tree = TempDir::new("leds");
    let act = tree.path().join("ACT");
    std::fs::create_dir_all(&act).expect("mkdir");
    for (file, text) in [
        ("trigger", "none timer heartbeat [mmc0]\n"),
        ("brightness", "0\n"),
        ("max_brightness", "255\n"),
        ("delay_on", "500\n"),
        ("delay_off", "500\n"),
    ] {
        std::fs::write(act.join(file), text).expect("write");
    }
    let read = |f: &str| std::fs::read_to_string(act.join(f)).expect("read");
    let mut s = Server::start_with(
        serde_json::json!({
            "led": { "driver": "sysfs", "name": "ACT" },
            "paths": { "cam": pattern_path(320, 240, 15, 500) }
        }),
        Launch {
            env: vec![(
                "VIGINT_SYSFS_LEDS".into(),
                tree.path().display().to_string(),
            )],
            ..Launch::default()
        },
    );
    let http = s.http.expect("HTTP address");
    let status = wait_json(http, "/api/v1/status", "never left starting", |v| {
        v["healthy"] == true && v["led"]["pattern"] != "starting" && v["led"]["pattern"].is_string()
    });
    assert_eq!(status["led"]["driver"], "sysfs", "{status}");
    let shown = status["led"]["pattern"].as_str().expect("pattern");
    match shown {
        // Steady on: no trigger, full brightness.
        "streaming" => {
            assert_eq!(read("trigger"), "none");
            assert_eq!(read("brightness"), "255");
        }
        // A short flash every 2 s with the kernel's timer.
        "clock_unsynchronized" => {
            assert_eq!(read("trigger"), "timer");
            assert_eq!(
                (read("delay_on"), read("delay_off")),
                ("100".into(), "1900".into())
            );
        }
        other => panic!("unexpected pattern {other}: {status}"),
    }
    s.terminate();
    // Off, then the trigger found at start given back.
    assert_eq!(read("brightness"), "0", "{}", s.log_text());
    assert_eq!(read("trigger"), "mmc0", "{}", s.log_text());
}
