//! The `/metrics` body: a status snapshot in the Prometheus text exposition format (0.0.4).
//! Pure formatting (`render`) plus the one read of process memory (`process_rss_bytes`).

use std::fmt::Write;

use crate::status::{PathStatus, RecorderState, Status, ENCODE_BUCKETS_S, FSYNC_BUCKETS_S};

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn value(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
    /// A family with one series per path, labelled `path`; a path whose `value` is `None`
    /// (not measured yet) has none.
    fn per_path<V: std::fmt::Display>(
        &mut self,
        paths: &[PathStatus],
        (name, kind, help): (&str, &str, &str),
        value: impl Fn(&PathStatus) -> Option<V>,
    ) {
        self.family(name, kind, help);
        for p in paths {
            if let Some(v) = value(p) {
                self.value(name, &[("path", &p.name)], v);
            }
        }
    }
    /// One path's series of histogram `name`: cumulative buckets from per-bucket `counts`
    /// (one more than `bounds`, the last for values above them), the sum and the count.
    fn histogram(&mut self, name: &str, path: &str, bounds: &[f64], counts: &[u64], sum: f64) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = match bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            self.value(&bucket, &[("path", path), ("le", &le)], cumulative);
        }
        self.value(&format!("{name}_sum"), &[("path", path)], sum);
        self.value(&format!("{name}_count"), &[("path", path)], cumulative);
    }
}

/// Renders `status` (and the process's resident memory when known).
pub fn render(status: &Status, rss_bytes: Option<u64>) -> String {
    let mut o = Out(String::new());
    o.family("vigint_info", "gauge", "Version of the running vigint.");
    o.value("vigint_info", &[("version", status.version)], 1);
    o.family(
        "vigint_uptime_seconds",
        "gauge",
        "Seconds since vigint started.",
    );
    o.value("vigint_uptime_seconds", &[], status.uptime_s);
    o.family(
        "vigint_clock_synchronized",
        "gauge",
        "1 when the system clock is synchronised (wall time can be trusted), else 0.",
    );
    o.value(
        "vigint_clock_synchronized",
        &[],
        status.clock.synchronized as u64,
    );
    if let Some(led) = &status.led {
        o.family(
            "vigint_led_info",
            "gauge",
            "The status LED's driver and the pattern it shows (`error` when it failed).",
        );
        let pattern = led.pattern.as_deref().unwrap_or("error");
        o.value(
            "vigint_led_info",
            &[("driver", &led.driver), ("pattern", pattern)],
            1,
        );
    }

    let paths = &status.paths;
    o.per_path(
        paths,
        (
            "vigint_path_up",
            "gauge",
            "1 when the path delivers frames, else 0.",
        ),
        |p| Some(u8::from(p.problem.is_none())),
    );
    o.per_path(
        paths,
        (
            "vigint_frames_total",
            "counter",
            "Frames published (encoded or passed through).",
        ),
        |p| Some(p.frames),
    );
    o.per_path(
        paths,
        (
            "vigint_idr_frames_total",
            "counter",
            "Key frames (IDR) published.",
        ),
        |p| Some(p.idr_frames),
    );
    o.per_path(
        paths,
        ("vigint_bytes_total", "counter", "Bytes of H.264 published."),
        |p| Some(p.bytes),
    );
    o.per_path(
        paths,
        (
            "vigint_bytes_sent_total",
            "counter",
            "Bytes sent to RTSP viewers, RTP and interleaving headers included.",
        ),
        |p| Some(p.bytes_sent),
    );
    o.family(
        "vigint_frames_dropped_total",
        "counter",
        "Frames lost: by the camera, undecodable, or skipped by lagging RTSP readers.",
    );
    for p in paths {
        let d = p.frames_dropped;
        for (cause, n) in [("camera", d.camera), ("bad", d.bad), ("readers", d.readers)] {
            o.value(
                "vigint_frames_dropped_total",
                &[("path", &p.name), ("cause", cause)],
                n,
            );
        }
    }
    o.per_path(
        paths,
        (
            "vigint_source_restarts_total",
            "counter",
            "Times the pipeline started over after an error.",
        ),
        |p| Some(p.restarts),
    );
    o.family(
        "vigint_encode_seconds",
        "histogram",
        "Time to convert and encode one frame (none for passthrough).",
    );
    for p in paths {
        o.histogram(
            "vigint_encode_seconds",
            &p.name,
            &ENCODE_BUCKETS_S,
            &p.encode_buckets,
            p.encode_seconds_total,
        );
    }
    o.per_path(
        paths,
        (
            "vigint_frame_rate",
            "gauge",
            "Frames per second measured over the last seconds.",
        ),
        |p| p.fps,
    );
    // Bytes, not bits: Prometheus' base unit (promtool's lint insists).
    o.per_path(
        paths,
        (
            "vigint_stream_bytes_per_second",
            "gauge",
            "H.264 data rate measured over the last seconds.",
        ),
        |p| p.bitrate_kbps.map(|kbps| kbps * 1000.0 / 8.0),
    );
    o.family(
        "vigint_rtsp_clients",
        "gauge",
        "RTSP clients playing the path, by transport.",
    );
    for p in paths {
        o.value(
            "vigint_rtsp_clients",
            &[("path", &p.name), ("transport", "tcp")],
            p.clients.tcp,
        );
        o.value(
            "vigint_rtsp_clients",
            &[("path", &p.name), ("transport", "udp")],
            p.clients.udp,
        );
    }
    o.per_path(
        paths,
        (
            "vigint_live_viewers",
            "gauge",
            "Live viewers (browser and stream-viewer WebSockets) watching the path.",
        ),
        |p| Some(p.live_viewers),
    );
    o.per_path(
        paths,
        (
            "vigint_live_bytes_sent_total",
            "counter",
            "Bytes sent to the path's live viewers.",
        ),
        |p| Some(p.live_bytes_sent),
    );
    let r = status.rtsp;
    o.family("vigint_rtsp_connections", "gauge", "Open RTSP connections.");
    o.value("vigint_rtsp_connections", &[], r.connections);
    o.family(
        "vigint_rtsp_connections_total",
        "counter",
        "RTSP connections accepted.",
    );
    o.value("vigint_rtsp_connections_total", &[], r.connections_total);
    o.family(
        "vigint_rtsp_connections_rejected_total",
        "counter",
        "RTSP connections refused over the connection limit.",
    );
    o.value(
        "vigint_rtsp_connections_rejected_total",
        &[],
        r.connections_rejected,
    );
    o.family(
        "vigint_rtsp_auth_failures_total",
        "counter",
        "RTSP requests with wrong credentials.",
    );
    o.value("vigint_rtsp_auth_failures_total", &[], r.auth_failures);
    recorder_metrics(&mut o, paths);
    if let Some(rss) = rss_bytes {
        o.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        o.value("process_resident_memory_bytes", &[], rss);
    }
    o.0
}

/// VmRSS of this process from /proc/self/status; `None` where /proc has no answer.
pub fn process_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    rss_from_proc_status(&text)
}

fn rss_from_proc_status(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Recorder families, only when some path records.
fn recorder_metrics(o: &mut Out, paths: &[PathStatus]) {
    let recording: Vec<(&str, &crate::status::RecorderSample)> = paths
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.recording.as_ref()?)))
        .collect();
    if recording.is_empty() {
        return;
    }
    type Field = fn(&crate::status::RecorderSample) -> f64;
    let families: [(&str, &str, &str, Field); 11] = [
        (
            "vigint_recorder_recording",
            "gauge",
            "1 while the path's recorder writes, else 0 (waiting, paused, stopped).",
            |r| (r.state == RecorderState::Recording) as u8 as f64,
        ),
        (
            "vigint_recorder_bytes_total",
            "counter",
            "Bytes the recorder wrote.",
            |r| r.bytes_written as f64,
        ),
        (
            "vigint_recorder_segments_total",
            "counter",
            "Segment files the recorder started.",
            |r| r.segments_written as f64,
        ),
        (
            "vigint_recorder_frames_dropped_total",
            "counter",
            "Frames not recorded because storage was too slow (dropped up to the next key frame).",
            |r| r.frames_dropped as f64,
        ),
        (
            "vigint_recorder_write_errors_total",
            "counter",
            "Failed writes or syncs (a full or failing card).",
            |r| r.write_errors as f64,
        ),
        (
            "vigint_recorder_write_bytes_per_second",
            "gauge",
            "Bytes per second the recorder wrote over the last 10 seconds.",
            |r| r.write_bytes_per_second,
        ),
        (
            "vigint_recorder_bytes_last_24h",
            "gauge",
            "Bytes the recorder wrote in the last 24 hours (since start when younger).",
            |r| r.bytes_written_24h as f64,
        ),
        (
            "vigint_recorder_fsync_seconds_max",
            "gauge",
            "Slowest data sync so far.",
            |r| r.fsync_seconds_max,
        ),
        (
            "vigint_recordings_bytes",
            "gauge",
            "Bytes of the path's segments on disk (as of the last retention pass).",
            |r| r.stored.bytes as f64,
        ),
        (
            "vigint_recordings_segments",
            "gauge",
            "Segment files the path has on disk.",
            |r| r.stored.segments as f64,
        ),
        (
            "vigint_recordings_free_bytes",
            "gauge",
            "Free space of the filesystem holding the recordings.",
            |r| r.free_bytes.unwrap_or(0) as f64,
        ),
    ];
    for (name, kind, help, field) in families {
        o.family(name, kind, help);
        for (path, r) in &recording {
            o.value(name, &[("path", path)], field(r));
        }
    }
    o.family(
        "vigint_recordings_oldest_start_seconds",
        "gauge",
        "Start (Unix seconds, from its name) of the path's oldest segment on disk; check clock_trusted in status.",
    );
    for (path, r) in &recording {
        if let Some(start) = r.stored.oldest.as_ref().and_then(|o| o.start_unix_s) {
            o.value(
                "vigint_recordings_oldest_start_seconds",
                &[("path", path)],
                start,
            );
        }
    }
    o.family(
        "vigint_recorder_fsync_seconds",
        "histogram",
        "Time to force one fragment's data to storage (an SD card that stalls shows here).",
    );
    for (path, r) in &recording {
        o.histogram(
            "vigint_recorder_fsync_seconds",
            path,
            &FSYNC_BUCKETS_S,
            &r.fsync_buckets,
            r.fsync_seconds_total,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_help_type_and_labels() {
        let status = crate::status::tests::fake_monitor().snapshot();
        let text = render(&status, Some(4096));
        assert!(text.ends_with('\n'));
        for needle in [
            "# TYPE vigint_frames_total counter\n",
            "vigint_frames_total{path=\"cam\"} 10\n",
            "vigint_bytes_total{path=\"cam\"} 1000\n",
            "vigint_path_up{path=\"cam\"} 0\n",
            "vigint_frames_dropped_total{path=\"cam\",cause=\"camera\"} 4\n",
            "vigint_frames_dropped_total{path=\"cam\",cause=\"readers\"} 7\n",
            "vigint_rtsp_clients{path=\"cam\",transport=\"udp\"} 2\n",
            "# TYPE vigint_encode_seconds histogram\n",
            "vigint_encode_seconds_bucket{path=\"cam\",le=\"0.001\"} 0\n",
            "vigint_encode_seconds_bucket{path=\"cam\",le=\"0.01\"} 2\n",
            "vigint_encode_seconds_bucket{path=\"cam\",le=\"+Inf\"} 3\n",
            "vigint_encode_seconds_count{path=\"cam\"} 3\n",
            "vigint_clock_synchronized ",
            "vigint_rtsp_connections 3\n",
            "# TYPE vigint_recorder_fsync_seconds histogram\n",
            "vigint_recorder_fsync_seconds_bucket{path=\"cam\",le=\"0.001\"} 3\n",
            "vigint_recorder_fsync_seconds_bucket{path=\"cam\",le=\"0.005\"} 4\n",
            "vigint_recorder_fsync_seconds_bucket{path=\"cam\",le=\"5\"} 4\n",
            "vigint_recorder_fsync_seconds_bucket{path=\"cam\",le=\"+Inf\"} 5\n",
            "vigint_recorder_fsync_seconds_sum{path=\"cam\"} 1.5\n",
            "vigint_recorder_fsync_seconds_count{path=\"cam\"} 5\n",
            "vigint_recorder_write_bytes_per_second{path=\"cam\"} 250000\n",
            "vigint_recorder_bytes_last_24h{path=\"cam\"} 5000000\n",
            "process_resident_memory_bytes 4096\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Not measured yet: no sample rather than a made-up zero.
        assert!(!text.contains("vigint_frame_rate{"));
        // Every family is declared once, before its samples.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut names: Vec<&str> = types.iter().filter_map(|l| l.split(' ').nth(2)).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(!render(&status, None).contains("process_resident"));
        assert!(
            !text.contains("vigint_led_info"),
            "no LED thread: no series"
        );
    }

    #[test]
    fn the_led_shows_as_an_info_series() {
        let m = crate::status::tests::fake_monitor();
        m.set_led(crate::status::LedStatus {
            driver: "sysfs".into(),
            pattern: Some("recording".into()),
            error: None,
        });
        let text = render(&m.snapshot(), None);
        assert!(
            text.contains("vigint_led_info{driver=\"sysfs\",pattern=\"recording\"} 1\n"),
            "{text}"
        );
        m.set_led(crate::status::LedStatus {
            driver: "gpio".into(),
            pattern: None,
            error: Some("GPIO 17: no".into()),
        });
        let text = render(&m.snapshot(), None);
        assert!(
            text.contains("vigint_led_info{driver=\"gpio\",pattern=\"error\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let text = "Name:\tvigint\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(rss_from_proc_status(text), Some(12345 * 1024));
        assert_eq!(rss_from_proc_status("Name: x\n"), None);
        assert!(process_rss_bytes().is_some_and(|b| b > 0));
    }
}
