//! The seam between the HTTP API and the supervisor: read the config, change it.
//!
//! Owns: the `Control` trait and its error and result types. `http` calls it; `app`
//! implements it (validate, save atomically, apply live). Keeps `http` free of `rtsp`,
//! `pipeline` and file handling.

use crate::config::{Config, ConfigError};

/// Why a change was refused or failed.
#[derive(Debug)]
pub enum ControlError {
    /// The new config is not valid; nothing changed.
    Invalid(ConfigError),
    /// The change does not fit the current state (code, message), e.g. a path that exists.
    Conflict(&'static str, String),
    /// A named thing does not exist (code, message).
    NotFound(&'static str, String),
    /// The config could not be saved; nothing changed.
    Save(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Invalid(e) => write!(f, "{e}"),
            ControlError::Conflict(_, m) | ControlError::NotFound(_, m) => write!(f, "{m}"),
            ControlError::Save(m) => write!(f, "{m}"),
        }
    }
}

impl From<ConfigError> for ControlError {
    fn from(e: ConfigError) -> Self {
        ControlError::Invalid(e)
    }
}

/// What a successful change did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// What was applied live, for people (`paths.cam restarted`).
    pub applied: Vec<String>,
    /// Sections saved but only used after vigint restarts (`rtsp`, `http`).
    pub restart_required: Vec<String>,
}

/// A change to the config file's document: gets the current one, returns the new one.
pub type Change<'a> = &'a mut dyn FnMut(&Config) -> Result<Config, ControlError>;

pub trait Control: Send + Sync {
    /// The config file's document (without command-line overrides).
    fn config(&self) -> Config;
    /// Runs `change` on the current document and, when it returns a valid config, saves
    /// and applies it. Changes are serialised: the last one wins and the file always holds
    /// a whole, valid config.
    fn update(&self, change: Change<'_>) -> Result<(Config, Applied), ControlError>;
}
