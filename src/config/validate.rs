//! What a valid config is.
//!
//! Owns: `Config::validate`, which names the exact field of the first problem
//! (`paths.cam.fps`) and why. Does not own: parsing (`file`) or defaults (`mod`).

use super::*;

impl Config {
    /// Checks every field; the first problem found is returned with its field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.rtsp;
        if !(100..=65_000).contains(&r.max_packet_size) {
            return Err(ConfigError::new(
                "rtsp.max_packet_size",
                format!("{} must be from 100 to 65000", r.max_packet_size),
            ));
        }
        if !r.udp_rtp_port.is_multiple_of(2) || r.udp_rtp_port == u16::MAX - 1 {
            return Err(ConfigError::new(
                "rtsp.udp_rtp_port",
                format!(
                    "{} must be even (RTCP uses the next port) or 0 for any",
                    r.udp_rtp_port
                ),
            ));
        }
        if !(5..=3600).contains(&r.session_timeout_s) {
            return Err(ConfigError::new(
                "rtsp.session_timeout_s",
                "must be from 5 to 3600",
            ));
        }
        if !(1..=600).contains(&r.stall_timeout_s) {
            return Err(ConfigError::new(
                "rtsp.stall_timeout_s",
                "must be from 1 to 600",
            ));
        }
        if !(100..=60_000).contains(&r.max_lag_ms) {
            return Err(ConfigError::new(
                "rtsp.max_lag_ms",
                "must be from 100 to 60000",
            ));
        }
        if r.max_connections == 0 {
            return Err(ConfigError::new(
                "rtsp.max_connections",
                "must be at least 1",
            ));
        }
        if r.auth_methods.is_empty() {
            return Err(ConfigError::new(
                "rtsp.auth_methods",
                "name at least one of \"digest\", \"basic\"",
            ));
        }
        if (1..r.auth_methods.len()).any(|i| r.auth_methods[..i].contains(&r.auth_methods[i])) {
            return Err(ConfigError::new(
                "rtsp.auth_methods",
                "lists a method twice",
            ));
        }
        if !matches!(
            self.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(ConfigError::new(
                "log_level",
                format!(
                    "`{}` must be error, warn, info, debug or trace",
                    self.log_level
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let bad_char = |s: &str| s.chars().any(|c| c.is_control());
            if u.name.is_empty() || u.name.contains(':') || bad_char(&u.name) {
                return Err(ConfigError::new(
                    format!("users[{i}].name"),
                    "must be non-empty, without ':' or control characters",
                ));
            }
            if u.password.is_empty() || bad_char(&u.password) {
                return Err(ConfigError::new(
                    format!("users[{i}].password"),
                    "must be non-empty, without control characters",
                ));
            }
            crate::auth::password::refuse_placeholder(&u.password)
                .map_err(|why| ConfigError::new(format!("users[{i}].password"), why))?;
            if !seen.insert(&u.name) {
                return Err(ConfigError::new(
                    format!("users[{i}].name"),
                    format!("`{}` is listed twice", u.name),
                ));
            }
            for (j, p) in u.permissions.iter().flatten().enumerate() {
                if let Some(path) = p.path.as_deref().filter(|p| !valid_path_name(p)) {
                    return Err(ConfigError::new(
                        format!("users[{i}].permissions[{j}].path"),
                        format!("`{path}` is not a path name (omit `path` for every path)"),
                    ));
                }
            }
        }
        if let Some(h) = &self.admin.password_hash {
            if !h.starts_with("$argon2id$") {
                return Err(ConfigError::new(
                    "admin.password_hash",
                    "must be an Argon2id hash as vigint writes it (set the password on the page or with PUT /api/v1/admin/password)",
                ));
            }
        }
        if let Some(l) = &self.led {
            check_led(l)?;
        }
        if let Some(b) = &self.board {
            if crate::board::find(b).is_none() {
                return Err(ConfigError::new(
                    "board",
                    format!(
                        "unknown board `{b}`: one of {}",
                        crate::board::ids().join(", ")
                    ),
                ));
            }
        }
        check_recording("recording", &self.recording)?;
        let recording_paths = self
            .paths
            .values()
            .filter(|p| p.recording.over(&self.recording).record)
            .count();
        for (name, p) in &self.paths {
            let r = p.recording.over(&self.recording);
            check_recording(&format!("paths.{name}.recording"), &r)?;
            if recording_paths > 1 && !r.record_path.contains("%path") {
                return Err(ConfigError::new(
                    format!("paths.{name}.recording.record_path"),
                    "must contain %path when several paths record (their files would mix)",
                ));
            }
        }
        if self.paths.is_empty() {
            return Err(ConfigError::new("paths", "at least one path is needed"));
        }
        let mut devices = BTreeMap::new();
        for (name, p) in &self.paths {
            let field = format!("paths.{name}");
            if !valid_path_name(name) {
                return Err(ConfigError::new(
                    field,
                    "path names use letters, digits, '-', '_' and '.', up to 64, not starting with '.'",
                ));
            }
            let spec = p
                .source_spec()
                .map_err(|e| ConfigError::new(format!("{field}.source"), e))?;
            // The fields themselves always: a sized test pattern overrides them for the run,
            // but a nonsense value must not sit in the file waiting for a source change.
            // Unset fields come from a board profile, whose values are valid.
            let d = VideoDefaults::BUILT_IN;
            check_geometry(
                &field,
                p.width.unwrap_or(d.width),
                p.height.unwrap_or(d.height),
                p.fps.unwrap_or(d.fps),
            )?;
            if let SourceSpec::TestPattern {
                size: Some((w, h, fps)),
            } = spec
            {
                check_geometry(&format!("{field}.source"), w, h, fps)?;
            }
            if let Some(kbps) = p.bitrate_kbps.filter(|k| !(50..=50_000).contains(k)) {
                return Err(ConfigError::new(
                    format!("{field}.bitrate_kbps"),
                    format!("{kbps} must be from 50 to 50000"),
                ));
            }
            let secs = |d: &Seconds| d.0.as_secs_f64();
            if !(1.0..=300.0).contains(&secs(&p.source_on_demand_start_timeout)) {
                return Err(ConfigError::new(
                    format!("{field}.source_on_demand_start_timeout"),
                    "must be from 1s to 300s",
                ));
            }
            if !(0.0..=3600.0).contains(&secs(&p.source_on_demand_close_after)) {
                return Err(ConfigError::new(
                    format!("{field}.source_on_demand_close_after"),
                    "must be from 0s to 1h",
                ));
            }
            if secs(&p.forced_idr_min_interval) > 60.0 {
                return Err(ConfigError::new(
                    format!("{field}.forced_idr_min_interval"),
                    "must be from 0s to 60s",
                ));
            }
            if p.source_on_demand && !matches!(spec, SourceSpec::Relay(_)) {
                return Err(ConfigError::new(
                    format!("{field}.source_on_demand"),
                    "only an rtsp:// source can start on demand",
                ));
            }
            if !(p.idr_interval_s.is_finite() && (0.1..=60.0).contains(&p.idr_interval_s)) {
                return Err(ConfigError::new(
                    format!("{field}.idr_interval_s"),
                    "must be from 0.1 to 60 seconds",
                ));
            }
            if let Some(pf) = &p.pixel_format {
                if !PIXEL_FORMAT_NAMES
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(pf))
                {
                    return Err(ConfigError::new(
                        format!("{field}.pixel_format"),
                        format!("`{pf}` must be one of {}", PIXEL_FORMAT_NAMES.join(", ")),
                    ));
                }
            }
            let device_key = match &spec {
                SourceSpec::Device(d) => Some(d.display().to_string()),
                SourceSpec::Auto => Some("auto".to_string()),
                SourceSpec::TestPattern { .. }
                | SourceSpec::Publisher
                | SourceSpec::Relay(_)
                | SourceSpec::File(_) => None,
            };
            if let Some(key) = device_key {
                if let Some(other) = devices.insert(key.clone(), name.clone()) {
                    return Err(ConfigError::new(
                        format!("{field}.source"),
                        format!("`{key}` is already the source of path `{other}`; a camera serves one path"),
                    ));
                }
            }
        }
        Ok(())
    }
}
