//! The seam between the HTTP API and the supervisor: read the config, change it.
//!
//! Owns: the `Control` trait and its error and result types (also a path's JPEG snapshot,
//! `Jpeg` and `SnapshotError`). `http` calls it; `supervisor` implements it (validate, save
//! atomically, apply live; snapshots through `snapshot`). Keeps `http` free of `rtsp`,
//! `source`, `snapshot` and file handling.

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

/// A path's latest picture as a JPEG (`Control::snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jpeg {
    /// The JPEG file, shared by every asker within the cache's second.
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
    /// How long before the answer the picture was made (milliseconds): the age of the
    /// picture itself plus the time it sat in the cache.
    pub age_ms: u64,
}

/// Why a path has no snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// No path by that name.
    UnknownPath(String),
    /// The path's source is not streaming (its state, for people: `camera lost: ...`).
    NotStreaming(String),
    /// The source streams but no picture to show has arrived yet (no key frame yet).
    NoPicture(String),
    /// The stream's pictures cannot be decoded (the decoder's reason).
    Undecodable(String),
    /// The picture could not be written as a JPEG.
    Encode(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::UnknownPath(p) => write!(f, "no path named `{p}`"),
            SnapshotError::NotStreaming(state) => write!(f, "the path is not streaming: {state}"),
            SnapshotError::NoPicture(m)
            | SnapshotError::Undecodable(m)
            | SnapshotError::Encode(m) => f.write_str(m),
        }
    }
}

pub trait Control: Send + Sync {
    /// The config file's document (without command-line overrides).
    fn config(&self) -> Config;
    /// The saved admin password hash, read on every HTTP request: cheap, and never waits
    /// for a change in progress.
    fn admin_hash(&self) -> Option<String>;
    /// Runs `change` on the current document and, when it returns a valid config, saves
    /// and applies it. Changes are serialised: the last one wins and the file always holds
    /// a whole, valid config.
    fn update(&self, change: Change<'_>) -> Result<(Config, Applied), ControlError>;
    /// The path's latest picture as a JPEG, `width` pixels wide when asked (kept to the
    /// picture's aspect ratio, never wider than the picture). Blocks while a picture is
    /// decoded and encoded (milliseconds); askers within a second share one answer.
    fn snapshot(&self, path: &str, width: Option<u32>) -> Result<Jpeg, SnapshotError>;
}

/// One recorded segment, as the recordings API lists it.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct SegmentEntry {
    /// The name relative to its path's directory; may contain '/' for template
    /// subdirectories.
    pub file: String,
    /// RFC 3339 UTC; None when unknown.
    pub start: Option<String>,
    /// Whether the wall clock was synchronised when the segment started.
    pub clock_trusted: bool,
    pub duration_s: f64,
    pub bytes: u64,
    /// Being written.
    pub recording: bool,
}

/// The segments of one path.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct PathRecordings {
    pub path: String,
    pub segments: Vec<SegmentEntry>,
}

/// Why a recording could not be read or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingError {
    /// No such segment (also for names that are refused: nothing is said about them).
    NotFound,
    /// The segment exists but may not be touched, e.g. it is being written.
    Forbidden(String),
    Io(String),
}

impl std::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordingError::NotFound => write!(f, "no such recording"),
            RecordingError::Forbidden(m) | RecordingError::Io(m) => write!(f, "{m}"),
        }
    }
}

/// The recordings on disk, for the HTTP API: `supervisor` implements it (with
/// `record::library` for safe file access); `http` calls it.
pub trait Recordings: Send + Sync {
    fn list(&self) -> Vec<PathRecordings>;
    /// Opens a segment for reading: the file and its length. `file` is already decoded and
    /// checked by `http` and must be checked again here.
    fn open(&self, path: &str, file: &str) -> Result<(std::fs::File, u64), RecordingError>;
    fn delete(&self, path: &str, file: &str) -> Result<(), RecordingError>;
}

/// One message of a live feed, as a WebSocket carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedMessage {
    /// JSON text (a codec announcement, a status).
    Text(String),
    /// Media (an init segment, a fragment).
    Binary(bytes::Bytes),
}

/// The next message of a feed; `None` when the path's stream ended.
pub type FeedNext<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<FeedMessage>> + Send + 'a>>;

/// One viewer's live feed of a path: `http` pulls messages and writes them to its socket.
pub trait Feed: Send {
    fn next(&mut self) -> FeedNext<'_>;
    /// Counts bytes the transport wrote for this viewer in the path's total.
    fn count_sent(&self, bytes: usize);
}

/// Why a live feed could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// No such path.
    NotFound,
    /// Too many live viewers (in all or from this address), or unsaved relays: the
    /// message says which limit.
    Limit(String),
    /// An unsaved relay's URL that cannot be pulled (not rtsp://, no host): the message
    /// says why, its password masked.
    BadSource(String),
}

/// The container a feed is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// Fragmented MP4 (Media Source Extensions): a codec message (text), the init
    /// segment, then one fragment per frame.
    Fmp4,
    /// MPEG-2 transport stream (mpegts.js): binary only.
    MpegTs,
}

/// Live video for the HTTP side (implemented by the supervisor).
pub trait LiveViews: Send + Sync {
    /// A new viewer of `path`'s live video in `format`, starting at a key frame; `peer` is
    /// the viewer's address, for per-client limits.
    fn live(
        &self,
        path: &str,
        format: FeedFormat,
        peer: std::net::IpAddr,
    ) -> Result<Box<dyn Feed>, FeedError>;

    /// A new viewer of another RTSP server's stream at `url`, relayed without a path in
    /// the config (the stream-viewer API's `?url=`, which `http` offers the admin only):
    /// one pull per URL while anyone watches it.
    fn live_url(
        &self,
        url: &str,
        format: FeedFormat,
        peer: std::net::IpAddr,
    ) -> Result<Box<dyn Feed>, FeedError>;
}
