//! The config as the API shows and takes it.
//!
//! Owns: leaving secrets out of what the API shows (`users[].password`, `admin`, the
//! password in a relayed camera's URL, shown as `***`) and keeping them when a document
//! sent through the API omits them (or sends the URL back masked). Does not own: merge
//! patches (`merge_patch`) or validation.

use super::{masked_source, Config, ConfigError, PASSWORD_MASK};

/// The config as the API shows it: secrets left out (`users[].password`, `admin`) or
/// masked (passwords in source URLs).
pub fn to_public_json(cfg: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("admin");
        if let Some(paths) = obj.get_mut("paths").and_then(|p| p.as_object_mut()) {
            for p in paths.values_mut() {
                if let Some(src) = p.get_mut("source") {
                    if let Some(s) = src.as_str() {
                        *src = masked_source(s).into();
                    }
                }
            }
        }
        if let Some(users) = obj.get_mut("users").and_then(|u| u.as_array_mut()) {
            for u in users {
                if let Some(u) = u.as_object_mut() {
                    u.remove("password");
                }
            }
        }
    }
    v
}

/// Reads a document written through the API. Secrets are write-only: a user sent without
/// `password` keeps the one `current` has; `admin` cannot be set this way. Validated.
pub fn from_public_json(
    mut doc: serde_json::Value,
    current: &Config,
) -> Result<Config, ConfigError> {
    let Some(obj) = doc.as_object_mut() else {
        return Err(ConfigError::new("", "the config must be a JSON object"));
    };
    if obj.contains_key("admin") {
        return Err(ConfigError::new(
            "admin",
            "the admin password is set with PUT /api/v1/admin/password, not in the config",
        ));
    }
    if let Some(users) = obj.get_mut("users").and_then(|u| u.as_array_mut()) {
        for (i, u) in users.iter_mut().enumerate() {
            let Some(u) = u.as_object_mut() else { continue };
            if u.contains_key("password") {
                continue;
            }
            let name = u.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            match current.users.iter().find(|c| c.name == name) {
                Some(c) => {
                    u.insert("password".into(), c.password.clone().into());
                }
                None => {
                    return Err(ConfigError::new(
                        format!("users[{i}].password"),
                        "a new user needs a password",
                    ))
                }
            }
        }
    }
    // A source URL sent back as the API showed it (password `***`): the stored one stays.
    if let Some(paths) = obj.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (name, p) in paths.iter_mut() {
            let Some(src) = p.get_mut("source") else {
                continue;
            };
            let Some(sent) = src.as_str() else { continue };
            if !sent.contains(&format!(":{PASSWORD_MASK}@")) {
                continue;
            }
            match current.paths.get(name) {
                Some(c) if masked_source(&c.source) == sent => *src = c.source.clone().into(),
                _ => {
                    return Err(ConfigError::new(
                        format!("paths.{name}.source"),
                        "the password in this URL is the mask `***`: send the real one",
                    ))
                }
            }
        }
    }
    let text = doc.to_string();
    let mut cfg = Config::from_json(&text)?;
    cfg.admin = current.admin.clone();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_passwords_are_masked_out_and_kept_in() {
        let cfg = Config::from_json(
            r#"{"paths":{"gate":{"source":"rtsp://admin:s3cr3t@192.0.2.9:554/stream1"}}}"#,
        )
        .unwrap();
        let shown = to_public_json(&cfg);
        assert_eq!(
            shown["paths"]["gate"]["source"],
            "rtsp://admin:***@192.0.2.9:554/stream1"
        );
        assert!(!shown.to_string().contains("s3cr3t"));
        // Sent back as shown: the real one stays.
        let back = from_public_json(shown.clone(), &cfg).unwrap();
        assert_eq!(back.paths["gate"].source, cfg.paths["gate"].source);
        // The mask with another URL cannot stand for the stored password.
        let mut moved = shown;
        moved["paths"]["gate"]["source"] = "rtsp://admin:***@192.0.2.10/stream1".into();
        let e = from_public_json(moved, &cfg).unwrap_err();
        assert_eq!(e.field, "paths.gate.source");
        assert_eq!(masked_source("rtsp://u@h/p"), "rtsp://u@h/p");
        assert_eq!(masked_source("rtsp://h:554/p"), "rtsp://h:554/p");
        assert_eq!(masked_source("test-pattern"), "test-pattern");
        assert_eq!(masked_source("http://u:pw@h/p"), "http://u:***@h/p");
        assert_eq!(masked_source("/dev/video0"), "/dev/video0");
    }
}
