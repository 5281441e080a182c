//! What a config change does to the running appliance, decided without doing it.
//!
//! Owns: `plan(previous, next, running)`, pure: the list of actions that bring what runs
//! from `previous` to `next`, touching only what changed. Does not own: carrying them out
//! (the supervisor, which stops things outside its lock).

use std::collections::BTreeMap;

use crate::config::{Config, PathConfig, RecordingConfig};

/// A path as it runs: the config it runs with and the recording settings it was started
/// with (global defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningPath {
    pub config: PathConfig,
    pub recording: RecordingConfig,
}

/// One step of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// RTSP limits, timeouts and auth schemes: applied to new connections and sessions.
    RtspSettings,
    /// The RTSP users changed.
    Users,
    LogLevel,
    /// The HTTP API moves to the new `http.listen`.
    MoveHttp,
    /// Saved, but only a restart applies it (the named field).
    RestartRequired(&'static str),
    /// The path is no longer configured: stop it.
    StopPath(String),
    /// A new path, or one that is configured but not running (it failed to start).
    StartPath(String),
    /// Source, size, rate or pixel format changed: the pipeline reopens its source.
    ReopenSource(String),
    /// Only the bitrate or key-frame interval changed: the encoder is rebuilt in place.
    RestartEncoder(String),
    /// The recording settings (or the data directory of a recording path) changed.
    RestartRecording(String),
    SetMaxReaders(String),
    /// The path's config changed in some way: its running copy and status probe follow.
    Refresh(String),
}

impl Action {
    /// The path the action is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Action::StopPath(n)
            | Action::StartPath(n)
            | Action::ReopenSource(n)
            | Action::RestartEncoder(n)
            | Action::RestartRecording(n)
            | Action::SetMaxReaders(n)
            | Action::Refresh(n) => Some(n),
            _ => None,
        }
    }
}

/// The actions that bring the appliance from `previous` (the config it runs) to `next`,
/// where `running` holds the paths that actually run. Order: settings first, then paths
/// that stop, then changes to running paths, then paths that start.
pub fn plan(
    previous: &Config,
    next: &Config,
    running: &BTreeMap<String, RunningPath>,
) -> Vec<Action> {
    let mut out = Vec::new();
    let (p, n) = (&previous.rtsp, &next.rtsp);
    for (changed, field) in [
        (p.listen != n.listen, "rtsp.listen"),
        (p.udp_rtp_port != n.udp_rtp_port, "rtsp.udp_rtp_port"),
        (
            p.max_packet_size != n.max_packet_size,
            "rtsp.max_packet_size",
        ),
    ] {
        if changed {
            out.push(Action::RestartRequired(field));
        }
    }
    let live_rtsp = |r: &crate::config::RtspConfig| crate::config::RtspConfig {
        listen: p.listen,
        udp_rtp_port: p.udp_rtp_port,
        max_packet_size: p.max_packet_size,
        ..r.clone()
    };
    if live_rtsp(p) != live_rtsp(n) {
        out.push(Action::RtspSettings);
    }
    // The live-viewer limits are read at each new viewer: only a new address moves HTTP.
    if previous.http.listen != next.http.listen {
        out.push(Action::MoveHttp);
    }
    if previous.led != next.led {
        // A GPIO pin is claimed for the process.
        out.push(Action::RestartRequired("led"));
    }
    if previous.board != next.board {
        // Its defaults were merged into the run's config at start.
        out.push(Action::RestartRequired("board"));
    }
    if previous.log_level != next.log_level {
        out.push(Action::LogLevel);
    }
    if previous.users != next.users {
        out.push(Action::Users);
    }
    for name in running.keys().filter(|n| !next.paths.contains_key(*n)) {
        out.push(Action::StopPath(name.clone()));
    }
    let mut starts = Vec::new();
    for (name, cfg) in &next.paths {
        let Some(run) = running.get(name) else {
            starts.push(Action::StartPath(name.clone()));
            continue;
        };
        out.extend(path_changes(name, run, cfg, previous, next));
    }
    out.extend(starts);
    out
}

/// What changes for a running path.
fn path_changes(
    name: &str,
    run: &RunningPath,
    cfg: &PathConfig,
    previous: &Config,
    next: &Config,
) -> Vec<Action> {
    let mut out = Vec::new();
    let old = &run.config;
    let recording = cfg.recording.over(&next.recording);
    let moved = previous.data_dir != next.data_dir && (run.recording.record || recording.record);
    if old == cfg && recording == run.recording && !moved {
        return out;
    }
    let source_changed = old.source != cfg.source
        || old.geometry() != cfg.geometry()
        || old.pixel_format != cfg.pixel_format
        || old.rtsp_transport != cfg.rtsp_transport
        || old.source_on_demand != cfg.source_on_demand
        || old.source_on_demand_start_timeout != cfg.source_on_demand_start_timeout
        || old.source_on_demand_close_after != cfg.source_on_demand_close_after;
    let encoder_changed =
        old.bitrate() != cfg.bitrate() || old.idr_interval_s != cfg.idr_interval_s;
    if source_changed {
        out.push(Action::ReopenSource(name.to_string()));
    } else if encoder_changed {
        out.push(Action::RestartEncoder(name.to_string()));
    }
    if recording != run.recording || moved {
        out.push(Action::RestartRecording(name.to_string()));
    }
    if old.max_readers != cfg.max_readers {
        out.push(Action::SetMaxReaders(name.to_string()));
    }
    out.push(Action::Refresh(name.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn config(paths: &[(&str, serde_json::Value)]) -> Config {
        let mut doc = serde_json::json!({ "paths": {} });
        for (name, p) in paths {
            doc["paths"][*name] = p.clone();
        }
        Config::from_json(&doc.to_string()).unwrap()
    }

    fn running(cfg: &Config) -> BTreeMap<String, RunningPath> {
        cfg.paths
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    RunningPath {
                        config: p.clone(),
                        recording: p.recording.over(&cfg.recording),
                    },
                )
            })
            .collect()
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions.iter().map(|a| format!("{a:?}")).collect()
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let c = config(&[("cam", serde_json::json!({}))]);
        assert!(plan(&c, &c, &running(&c)).is_empty());
    }

    #[test]
    fn paths_come_and_go_and_only_what_changed_restarts() {
        let prev = config(&[
            ("a", serde_json::json!({ "source": "test-pattern" })),
            ("b", serde_json::json!({ "source": "test-pattern" })),
            ("c", serde_json::json!({ "source": "test-pattern" })),
            ("d", serde_json::json!({ "source": "test-pattern" })),
        ]);
        let next = config(&[
            // a: bitrate only; b: size; c: gone; d: unchanged; e: new.
            (
                "a",
                serde_json::json!({ "source": "test-pattern", "bitrate_kbps": 900 }),
            ),
            (
                "b",
                serde_json::json!({ "source": "test-pattern", "width": 640, "height": 480 }),
            ),
            ("d", serde_json::json!({ "source": "test-pattern" })),
            ("e", serde_json::json!({ "source": "test-pattern" })),
        ]);
        assert_eq!(
            plan(&prev, &next, &running(&prev)),
            [
                Action::StopPath("c".into()),
                Action::RestartEncoder("a".into()),
                Action::Refresh("a".into()),
                Action::ReopenSource("b".into()),
                Action::Refresh("b".into()),
                Action::StartPath("e".into()),
            ]
        );
    }

    #[test]
    fn a_configured_path_that_does_not_run_is_started_again() {
        let c = config(&[
            ("cam", serde_json::json!({})),
            ("x", serde_json::json!({ "source": "test-pattern" })),
        ]);
        let mut run = running(&c);
        run.remove("x");
        assert_eq!(plan(&c, &c, &run), [Action::StartPath("x".into())]);
    }

    #[test]
    fn recording_changes_restart_only_the_recorder() {
        let prev = config(&[("cam", serde_json::json!({}))]);
        let mut next = prev.clone();
        next.recording.record = true;
        assert_eq!(
            names(&plan(&prev, &next, &running(&prev))),
            ["RestartRecording(\"cam\")", "Refresh(\"cam\")"]
        );
        // A new data directory moves recordings, but not paths that do not record.
        let mut moved = prev.clone();
        moved.data_dir = PathBuf::from("/elsewhere");
        assert!(plan(&prev, &moved, &running(&prev)).is_empty());
        let mut rec_moved = next.clone();
        rec_moved.data_dir = PathBuf::from("/elsewhere");
        assert_eq!(
            names(&plan(&next, &rec_moved, &running(&next))),
            ["RestartRecording(\"cam\")", "Refresh(\"cam\")"]
        );
    }

    #[test]
    fn settings_apply_live_or_say_a_restart_is_needed() {
        let prev = config(&[("cam", serde_json::json!({}))]);
        let mut next = prev.clone();
        next.rtsp.listen = "127.0.0.1:9554".parse().unwrap();
        next.rtsp.session_timeout_s = 30;
        next.http.listen = "127.0.0.1:9080".parse().unwrap();
        next.log_level = "debug".into();
        next.board = Some("pi4".into());
        next.paths.get_mut("cam").unwrap().max_readers = 3;
        assert_eq!(
            plan(&prev, &next, &running(&prev)),
            [
                Action::RestartRequired("rtsp.listen"),
                Action::RtspSettings,
                Action::MoveHttp,
                Action::RestartRequired("board"),
                Action::LogLevel,
                Action::SetMaxReaders("cam".into()),
                Action::Refresh("cam".into()),
            ]
        );
        // Only a restart-only field: nothing is applied live.
        let mut port = prev.clone();
        port.rtsp.udp_rtp_port = 9000;
        assert_eq!(
            plan(&prev, &port, &running(&prev)),
            [Action::RestartRequired("rtsp.udp_rtp_port")]
        );
    }
}
