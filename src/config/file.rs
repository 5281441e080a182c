//! Reading and writing the config file.
//!
//! Owns: parsing a document (naming the field of any error, never echoing a password),
//! `load`, serialising, and the atomic save (temp file, fsync, rename, fsync of the
//! directory). Does not own: what a valid config is (`validate`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

impl Config {
    /// Parses a JSON document, naming the field on error; then validates.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            // serde quotes the offending value; for a password that would print it.
            let reason = if field.ends_with(".password") {
                "must be a string (value not shown)".to_string()
            } else {
                e.inner().to_string()
            };
            ConfigError::new(field, reason)
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Config::from_json(&text)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data structures cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the config atomically: temp file, fsync, rename, fsync of the directory.
    /// After a crash the file is the old or the new one, never a mix.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".to_string());
    let tmp = dir.join(format!(".{file_name}.tmp"));
    // A first save on a fresh device may come before anything created the directory.
    std::fs::create_dir_all(&dir)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// The config file and what it holds (the API edits this, never the overridden copy).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub config: Config,
}
