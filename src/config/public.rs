//! The config as the API shows and takes it.
//!
//! Owns: leaving secrets out of what the API shows (`users[].password`, `admin`) and
//! keeping them when a document sent through the API omits them. Does not own: merge
//! patches (`merge_patch`) or validation.

use super::{Config, ConfigError};

/// The config as the API shows it: secrets left out (`users[].password`, `admin`).
pub fn to_public_json(cfg: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("admin");
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
    let text = doc.to_string();
    let mut cfg = Config::from_json(&text)?;
    cfg.admin = current.admin.clone();
    Ok(cfg)
}
