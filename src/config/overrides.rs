//! Command-line settings that win over the file for one run.
//!
//! Owns: `Overrides` and how they apply. Does not own: parsing the command line (`main`).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Config, ConfigError, DEFAULT_PATH};

/// Settings given on the command line. They win over the file for this run only and are
/// never written back into it (a save from the API keeps the file's own values).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub rtsp_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    /// The source of the only path, or of `cam` when there are several.
    pub source: Option<String>,
}

impl Overrides {
    /// The config this run uses: `file` with the overrides applied, validated.
    pub fn apply(&self, file: &Config) -> Result<Config, ConfigError> {
        let mut cfg = file.clone();
        if let Some(v) = self.rtsp_listen {
            cfg.rtsp.listen = v;
        }
        if let Some(v) = self.http_listen {
            cfg.http.listen = v;
        }
        if let Some(v) = &self.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &self.log_level {
            cfg.log_level = v.clone();
        }
        if let Some(src) = &self.source {
            let name = if cfg.paths.len() == 1 {
                cfg.paths.keys().next().cloned().unwrap_or_default()
            } else {
                DEFAULT_PATH.to_string()
            };
            match cfg.paths.get_mut(&name) {
                Some(p) => p.source = src.clone(),
                None => {
                    return Err(ConfigError::new(
                        "--source",
                        format!("the config has several paths and none is named `{DEFAULT_PATH}`; set each path's source in the file"),
                    ))
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}
