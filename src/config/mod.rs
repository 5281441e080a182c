//! The configuration: typed, defaulted, validated at the edge, saved atomically.
//!
//! Owns: the JSON schema (serde types) and defaults (here), the source spec grammar,
//! `validate` (the exact field path of every problem), `file` (parse, load, atomic save),
//! `overrides` (command-line settings for one run), `public` (the API's view without
//! secrets) and `merge_patch` (RFC 7396, how the API and the first-boot file change a
//! document). Does not own: applying a config (the supervisor).

pub mod file;
pub mod merge_patch;
pub mod overrides;
pub mod public;
mod validate;

pub use file::{write_atomic, ConfigFile};
pub use overrides::Overrides;
pub use public::{from_public_json, to_public_json};

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::{Amount, Bytes, Seconds};

/// A problem with the configuration, naming the field (`paths.cam.fps`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rtsp: RtspConfig,
    pub http: HttpConfig,
    /// RTSP users. Empty: reading needs no credentials.
    pub users: Vec<User>,
    /// Where recordings and state live.
    pub data_dir: PathBuf,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// The board profile (`pi4`, ...; see `board`); unset: detected from the device tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// Recording defaults; each path may override any of them.
    pub recording: RecordingConfig,
    /// The admin login of the HTTP API and page. Unset on a fresh device: no default password.
    #[serde(skip_serializing_if = "AdminConfig::is_unset")]
    pub admin: AdminConfig,
    /// The status LED; unset: none (or the board's default, see `Config::led_or`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub led: Option<LedConfig>,
    pub paths: BTreeMap<String, PathConfig>,
}

/// Which LED driver shows the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedDriverKind {
    /// A GPIO pin (Raspberry Pi only, through rppal).
    Gpio,
    /// A Linux LED class device, `/sys/class/leds/NAME`.
    Sysfs,
    None,
}

/// The status LED (`led` in the file). Fields another driver uses are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedConfig {
    pub driver: LedDriverKind,
    /// BCM GPIO number (`gpio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<u8>,
    /// The LED is lit when the pin is low (`gpio`).
    #[serde(default)]
    pub active_low: bool,
    /// The LED class device's name, e.g. `ACT` (`sysfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The pin `gpio` uses when none is named.
pub const DEFAULT_LED_PIN: u8 = 17;
/// The LED `sysfs` uses when none is named (the Pi's green activity LED).
pub const DEFAULT_LED_NAME: &str = "ACT";

impl LedDriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedDriverKind::Gpio => "gpio",
            LedDriverKind::Sysfs => "sysfs",
            LedDriverKind::None => "none",
        }
    }
}

impl LedConfig {
    pub const NONE: LedConfig = LedConfig {
        driver: LedDriverKind::None,
        pin: None,
        active_low: false,
        name: None,
    };
}

fn check_led(l: &LedConfig) -> Result<(), ConfigError> {
    match l.driver {
        LedDriverKind::Gpio => {
            // BCM GPIOs: 0-53 on the BCM283x/BCM2711, 0-27 on the Pi 5's RP1.
            if let Some(pin) = l.pin.filter(|p| *p > 53) {
                return Err(ConfigError::new(
                    "led.pin",
                    format!("{pin} must be a BCM GPIO number from 0 to 53"),
                ));
            }
        }
        LedDriverKind::Sysfs => {
            if let Some(name) = &l.name {
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains('/')
                    || name.chars().any(|c| c.is_control())
                {
                    return Err(ConfigError::new(
                        "led.name",
                        "must name a directory of /sys/class/leds (no `/`)",
                    ));
                }
            }
        }
        LedDriverKind::None => {}
    }
    Ok(())
}

/// When recorded data is forced to the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncInterval {
    /// After every fragment (the default): a power cut loses at most one fragment.
    EveryFragment,
    /// At most this often.
    Every(std::time::Duration),
}

impl Serialize for FsyncInterval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FsyncInterval::EveryFragment => s.serialize_str("fragment"),
            FsyncInterval::Every(d) => s.serialize_str(&crate::units::format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for FsyncInterval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "fragment" {
            return Ok(FsyncInterval::EveryFragment);
        }
        crate::units::parse_duration(&text)
            .map(FsyncInterval::Every)
            .map_err(|e| serde::de::Error::custom(format!("`fragment` or a duration: {e}")))
    }
}

/// Recording settings: the global defaults (`recording`), or one path's after its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub record: bool,
    /// Under `DATA_DIR/recordings/`; see `record::naming`.
    pub record_path: String,
    pub part_duration: Seconds,
    pub segment_duration: Seconds,
    /// `0s` keeps segments regardless of age.
    pub delete_after: Seconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<Bytes>,
    /// Unset: 10% of the filesystem or 500 MB, whichever is smaller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free: Option<Amount>,
    pub fsync_interval: FsyncInterval,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        use std::time::Duration;
        RecordingConfig {
            record: false,
            record_path: crate::naming::DEFAULT_TEMPLATE.to_string(),
            part_duration: Seconds(Duration::from_secs(1)),
            segment_duration: Seconds(Duration::from_secs(600)),
            delete_after: Seconds(Duration::from_secs(24 * 3600)),
            max_bytes: None,
            min_free: None,
            fsync_interval: FsyncInterval::EveryFragment,
        }
    }
}

/// One path's overrides of `RecordingConfig` (unset: the global value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_duration: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_duration: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_interval: Option<FsyncInterval>,
}

impl RecordingOverrides {
    fn is_empty(&self) -> bool {
        self == &RecordingOverrides::default()
    }

    /// The settings this path records with.
    pub fn over(&self, d: &RecordingConfig) -> RecordingConfig {
        RecordingConfig {
            record: self.record.unwrap_or(d.record),
            record_path: self.record_path.clone().unwrap_or(d.record_path.clone()),
            part_duration: self.part_duration.unwrap_or(d.part_duration),
            segment_duration: self.segment_duration.unwrap_or(d.segment_duration),
            delete_after: self.delete_after.unwrap_or(d.delete_after),
            max_bytes: self.max_bytes.or(d.max_bytes),
            min_free: self.min_free.or(d.min_free),
            fsync_interval: self.fsync_interval.unwrap_or(d.fsync_interval),
        }
    }
}

fn check_recording(field: &str, r: &RecordingConfig) -> Result<(), ConfigError> {
    use std::time::Duration;
    crate::naming::validate_template(&r.record_path)
        .map_err(|e| ConfigError::new(format!("{field}.record_path"), e))?;
    let part = r.part_duration.0;
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&part) {
        return Err(ConfigError::new(
            format!("{field}.part_duration"),
            "must be from 100ms to 60s",
        ));
    }
    let seg = r.segment_duration.0;
    if seg < part || seg > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::new(
            format!("{field}.segment_duration"),
            "must be at least part_duration and at most 24h",
        ));
    }
    if let FsyncInterval::Every(d) = r.fsync_interval {
        if d.is_zero() || d > Duration::from_secs(600) {
            return Err(ConfigError::new(
                format!("{field}.fsync_interval"),
                "must be `fragment` or a duration from 1ms to 10m",
            ));
        }
    }
    if let Some(Amount::Percent(p)) = r.min_free {
        if !(0.0..=90.0).contains(&p) {
            return Err(ConfigError::new(
                format!("{field}.min_free"),
                "a percentage must be from 0% to 90%",
            ));
        }
    }
    Ok(())
}

/// The admin login, stored as an Argon2id PHC string (never the password itself).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

impl AdminConfig {
    pub fn is_unset(&self) -> bool {
        self.password_hash.is_none()
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("password_set", &self.password_hash.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut paths = BTreeMap::new();
        paths.insert(DEFAULT_PATH.to_string(), PathConfig::default());
        Config {
            rtsp: RtspConfig::default(),
            http: HttpConfig::default(),
            users: Vec::new(),
            data_dir: PathBuf::from("/var/lib/vigint"),
            log_level: "info".to_string(),
            board: None,
            admin: AdminConfig::default(),
            recording: RecordingConfig::default(),
            led: None,
            paths,
        }
    }
}

/// The path served when no config file names any.
pub const DEFAULT_PATH: &str = "cam";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspConfig {
    pub listen: SocketAddr,
    /// Server port for RTP over UDP (RTCP uses the next port). 0 picks a free pair.
    pub udp_rtp_port: u16,
    /// Largest RTP packet in bytes, header included.
    pub max_packet_size: usize,
    /// Seconds without a request or RTCP report before a session ends.
    pub session_timeout_s: u64,
    /// Seconds a TCP client may block one frame's write before it is disconnected.
    pub stall_timeout_s: u64,
    /// A client whose next frame is this far behind the newest one skips, whole frames
    /// only, to the next key frame: live video stays live on a slow link.
    pub max_lag_ms: u64,
    /// Open RTSP connections accepted at once; further ones get 503.
    pub max_connections: usize,
    /// Authentication schemes offered when users are configured, in challenge order.
    pub auth_methods: Vec<AuthMethod>,
}

/// An RTSP authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// RFC 2617 Digest (MD5): the password never crosses the network.
    Digest,
    /// Basic: the password crosses the network in the clear; for clients without Digest.
    Basic,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            udp_rtp_port: 8000,
            max_packet_size: 1400,
            session_timeout_s: 60,
            stall_timeout_s: 10,
            max_lag_ms: 2000,
            max_connections: 200,
            auth_methods: vec![AuthMethod::Digest, AuthMethod::Basic],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Live viewers (browser live view, stream-viewer WebSockets) at once, in all; 0: no
    /// limit. Each costs the socket's share of the stream, not an encode.
    pub max_live_viewers: usize,
    /// Live viewers at once from one client address; 0: no limit.
    pub max_live_viewers_per_client: usize,
}

/// Defaults for the live-viewer limits: a small board serves a household's phones, and
/// one misbehaving page cannot take every slot. Per client 8: the phone page plays every
/// card on screen, and a desktop shows about that many (each viewer costs about 70 KiB and
/// 0.05 % of a core here, `benches/live_figures.rs`).
pub const DEFAULT_MAX_LIVE_VIEWERS: usize = 20;
pub const DEFAULT_MAX_LIVE_VIEWERS_PER_CLIENT: usize = 8;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_live_viewers: DEFAULT_MAX_LIVE_VIEWERS,
            max_live_viewers_per_client: DEFAULT_MAX_LIVE_VIEWERS_PER_CLIENT,
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
    /// What the user may do (`read`, `publish`, on one path or all). Unset: read every
    /// path, publish nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<crate::auth::permissions::Permission>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials never reach logs, not even through {:?}.
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathConfig {
    /// `auto`, `test-pattern[:WIDTHxHEIGHT@FPS]` or a V4L2 device path.
    pub source: String,
    /// Picture and bitrate; unset: the board profile's (`VideoDefaults`, merged by
    /// `Config::with_defaults`). Unset fields stay unset in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    pub idr_interval_s: f64,
    /// Readers (RTSP sessions) allowed at once on this path; 0 means no limit of its own.
    pub max_readers: usize,
    /// Camera pixel format to prefer (one of `PIXEL_FORMAT_NAMES`); unset lets Vigint choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    /// Recording settings of this path, over the global `recording` ones.
    #[serde(skip_serializing_if = "RecordingOverrides::is_empty")]
    pub recording: RecordingOverrides,
    /// For a `publisher` path: a second publisher replaces the first instead of being
    /// refused (`path busy`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub override_publisher: bool,
    /// For an `rtsp://` path: how to pull.
    #[serde(skip_serializing_if = "is_default")]
    pub rtsp_transport: RtspTransport,
    /// For an `rtsp://` path: pull only while someone watches (or records).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub source_on_demand: bool,
    /// How long the first viewer of an idle on-demand path waits for it (then 503).
    #[serde(skip_serializing_if = "is_ten_seconds")]
    pub source_on_demand_start_timeout: Seconds,
    /// How long an on-demand pull goes on after its last viewer left.
    #[serde(skip_serializing_if = "is_ten_seconds")]
    pub source_on_demand_close_after: Seconds,
    /// Key frames forced for joining or lagging viewers come at most this often (every one
    /// costs all viewers and the recording its bits); `0s`: no limit.
    #[serde(skip_serializing_if = "is_one_second")]
    pub forced_idr_min_interval: Seconds,
    /// A new viewer gets the group of pictures since the last key frame at once, instead of
    /// waiting for the next one (or forcing one): for sources that cannot make a key frame
    /// on request (publishers, relays, files); the viewer starts up to one group behind live.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fast_start: bool,
}

/// The default `forced_idr_min_interval`.
pub const FORCED_IDR_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn is_one_second(s: &Seconds) -> bool {
    s.0 == FORCED_IDR_MIN_INTERVAL
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// MediaMTX's default for the on-demand timeouts.
pub const ON_DEMAND_DEFAULT: std::time::Duration = std::time::Duration::from_secs(10);

fn is_ten_seconds(s: &Seconds) -> bool {
    s.0 == ON_DEMAND_DEFAULT
}

/// Names `pixel_format` accepts (any case): V4L2 fourccs and common aliases.
pub const PIXEL_FORMAT_NAMES: [&str; 8] = [
    "H264", "YU12", "I420", "NV12", "YUYV", "UYVY", "MJPG", "MJPEG",
];

pub use crate::board::VideoDefaults;

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            source: "auto".to_string(),
            width: None,
            height: None,
            fps: None,
            bitrate_kbps: None,
            idr_interval_s: 2.0,
            max_readers: 0,
            pixel_format: None,
            recording: RecordingOverrides::default(),
            override_publisher: false,
            rtsp_transport: RtspTransport::Tcp,
            source_on_demand: false,
            source_on_demand_start_timeout: Seconds(ON_DEMAND_DEFAULT),
            source_on_demand_close_after: Seconds(ON_DEMAND_DEFAULT),
            forced_idr_min_interval: Seconds(FORCED_IDR_MIN_INTERVAL),
            fast_start: false,
        }
    }
}

/// A parsed `source` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The first V4L2 camera if one exists, else the test pattern.
    Auto,
    /// The built-in test pattern; size and rate override the path's when given.
    TestPattern { size: Option<(u32, u32, u32)> },
    /// A V4L2 device node.
    Device(PathBuf),
    /// Whoever publishes to the path over RTSP (ANNOUNCE/RECORD), with `publish` permission.
    Publisher,
    /// Another RTSP server's stream, pulled (credentials may be in the URL: never shown).
    Relay(String),
    /// An MP4 file, played in a loop at its own pace.
    File(PathBuf),
}

/// How a relay pulls its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// RTP interleaved on the RTSP connection: works through NAT and firewalls.
    #[default]
    Tcp,
    Udp,
    /// UDP first; TCP when UDP brings nothing.
    Auto,
}

impl RtspTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
            RtspTransport::Auto => "auto",
        }
    }
}

/// The mask that stands for a password inside a URL the API shows.
pub const PASSWORD_MASK: &str = "***";

/// `source` as it may be shown (API, status, logs): a URL's password replaced by `***`.
/// Any scheme's: a source refused for its scheme (`http://u:pw@...`) is shown in the error.
pub fn masked_source(source: &str) -> String {
    let Some((scheme, rest)) = source.split_once("://") else {
        return source.to_string();
    };
    let is_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return source.to_string();
    }
    let scheme = format!("{scheme}://");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}{user}:{PASSWORD_MASK}@{host}{path}")
            } else {
                format!("{scheme}{user}@{host}{path}")
            }
        }
        None => source.to_string(),
    }
}

impl SourceSpec {
    pub fn parse(spec: &str) -> Result<SourceSpec, String> {
        if spec == "auto" {
            return Ok(SourceSpec::Auto);
        }
        if spec == "publisher" {
            return Ok(SourceSpec::Publisher);
        }
        if spec.starts_with("rtsp://") || spec.starts_with("rtsps://") {
            let url = url::Url::parse(spec)
                .map_err(|e| format!("`{}` is not a URL: {e}", masked_source(spec)))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("`{}` names no host", masked_source(spec)));
            }
            return Ok(SourceSpec::Relay(spec.to_string()));
        }
        if let Some(file) = spec.strip_prefix("file:") {
            if !file.starts_with('/') {
                return Err(format!(
                    "`{spec}`: a file source is an absolute path, e.g. file:/srv/video.mp4"
                ));
            }
            return Ok(SourceSpec::File(PathBuf::from(file)));
        }
        if spec.starts_with('/') && spec.to_ascii_lowercase().ends_with(".mp4") {
            return Ok(SourceSpec::File(PathBuf::from(spec)));
        }
        if spec == "test-pattern" {
            return Ok(SourceSpec::TestPattern { size: None });
        }
        if let Some(rest) = spec.strip_prefix("test-pattern:") {
            let bad = || {
                format!("`{spec}`: expected test-pattern:WIDTHxHEIGHT@FPS, e.g. test-pattern:1280x720@30")
            };
            let (size, fps) = rest.split_once('@').ok_or_else(bad)?;
            let (w, h) = size.split_once('x').ok_or_else(bad)?;
            let parse = |s: &str| s.parse::<u32>().map_err(|_| bad());
            return Ok(SourceSpec::TestPattern {
                size: Some((parse(w)?, parse(h)?, parse(fps)?)),
            });
        }
        if spec.starts_with('/') {
            return Ok(SourceSpec::Device(PathBuf::from(spec)));
        }
        Err(format!(
            "`{}`: expected auto, test-pattern[:WIDTHxHEIGHT@FPS], publisher, rtsp://..., file:/path/video.mp4 or a device path such as /dev/video0", masked_source(spec)
        ))
    }
}

impl PathConfig {
    pub fn source_spec(&self) -> Result<SourceSpec, String> {
        SourceSpec::parse(&self.source)
    }

    /// Width, height and rate this path asks for (a test-pattern spec with a size wins).
    /// Fields still unset (a config not merged with a board's defaults) read as the
    /// built-in defaults.
    pub fn geometry(&self) -> (u32, u32, u32) {
        match self.source_spec() {
            Ok(SourceSpec::TestPattern { size: Some(s) }) => s,
            _ => {
                let d = VideoDefaults::BUILT_IN;
                (
                    self.width.unwrap_or(d.width),
                    self.height.unwrap_or(d.height),
                    self.fps.unwrap_or(d.fps),
                )
            }
        }
    }

    /// The encoder's bitrate in kbit/s (built-in default when unset and not merged).
    pub fn bitrate(&self) -> u32 {
        self.bitrate_kbps
            .unwrap_or(VideoDefaults::BUILT_IN.bitrate_kbps)
    }

    /// This path with `d` in the fields it leaves unset.
    pub fn with_defaults(&self, d: &VideoDefaults) -> PathConfig {
        PathConfig {
            width: self.width.or(Some(d.width)),
            height: self.height.or(Some(d.height)),
            fps: self.fps.or(Some(d.fps)),
            bitrate_kbps: self.bitrate_kbps.or(Some(d.bitrate_kbps)),
            ..self.clone()
        }
    }

    /// Frames between IDRs, at least 1.
    pub fn idr_interval_frames(&self) -> u32 {
        let (_, _, fps) = self.geometry();
        ((self.idr_interval_s * fps as f64).round() as u32).max(1)
    }
}

/// True when `name` is a valid path name: it appears in URLs (`rtsp://host:8554/NAME`).
pub fn valid_path_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

fn check_geometry(field: &str, w: u32, h: u32, fps: u32) -> Result<(), ConfigError> {
    if !(16..=4096).contains(&w) || !w.is_multiple_of(2) {
        return Err(ConfigError::new(
            format!("{field}.width"),
            format!("{w} must be an even number from 16 to 4096"),
        ));
    }
    if !(16..=4096).contains(&h) || !h.is_multiple_of(2) {
        return Err(ConfigError::new(
            format!("{field}.height"),
            format!("{h} must be an even number from 16 to 4096"),
        ));
    }
    if !(1..=120).contains(&fps) {
        return Err(ConfigError::new(
            format!("{field}.fps"),
            format!("{fps} must be from 1 to 120"),
        ));
    }
    Ok(())
}

impl Config {
    /// The effective config: every path's unset picture and bitrate fields from `d` (the
    /// board profile's defaults). The one place defaults are merged; the file keeps what it
    /// had, so a later board sees the fields a path left unset.
    pub fn with_defaults(&self, d: &VideoDefaults) -> Config {
        let mut cfg = self.clone();
        for p in cfg.paths.values_mut() {
            *p = p.with_defaults(d);
        }
        cfg
    }

    /// The LED this run uses: the file's `led`, else `board_default` (a board profile's),
    /// else none.
    pub fn led_or(&self, board_default: Option<&LedConfig>) -> LedConfig {
        self.led
            .clone()
            .or_else(|| board_default.cloned())
            .unwrap_or(LedConfig::NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_serves_cam() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.paths.contains_key("cam"));
        assert_eq!(c.rtsp.listen.port(), 8554);
    }

    #[test]
    fn issue_example_parses() {
        let c = Config::from_json(
            r#"{ "rtsp": { "listen": "0.0.0.0:8554" },
                 "http": { "listen": "0.0.0.0:8080" },
                 "users": [ { "name": "viewer", "password": "secret" } ],
                 "paths": { "cam": { "source": "auto", "width": 1280, "height": 720, "fps": 30, "bitrate_kbps": 2000, "idr_interval_s": 2 } } }"#,
        )
        .unwrap();
        assert_eq!(c.users[0].name, "viewer");
        assert_eq!(c.paths["cam"].idr_interval_frames(), 60);
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = Config::from_json(r#"{"paths":{"cam":{"fsp":30}}}"#).unwrap_err();
        assert_eq!(e.field, "paths.cam.fsp");
        assert!(e.reason.contains("unknown field `fsp`"), "{}", e.reason);
        let e = Config::from_json(r#"{"rtsp":{"listen":"nope"}}"#).unwrap_err();
        assert_eq!(e.field, "rtsp.listen");
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (r#"{"paths":{"cam":{"fps":0}}}"#, "paths.cam.fps"),
            (
                r#"{"paths":{"cam":{"source":"test-pattern:320x240@15","fps":0}}}"#,
                "paths.cam.fps",
            ),
            (r#"{"paths":{"cam":{"width":641}}}"#, "paths.cam.width"),
            (
                r#"{"paths":{"cam":{"bitrate_kbps":1}}}"#,
                "paths.cam.bitrate_kbps",
            ),
            (
                r#"{"paths":{"cam":{"source":"rtmp://x"}}}"#,
                "paths.cam.source",
            ),
            (
                r#"{"paths":{"cam":{"source":"test-pattern:1x1@5"}}}"#,
                "paths.cam.source.width",
            ),
            (r#"{"paths":{"bad/name":{}}}"#, "paths.bad/name"),
            (r#"{"paths":{}}"#, "paths"),
            (
                r#"{"users":[{"name":"a:b","password":"x"}]}"#,
                "users[0].name",
            ),
            (
                r#"{"users":[{"name":"a","password":""}]}"#,
                "users[0].password",
            ),
            (
                r#"{"users":[{"name":"a","password":"CHANGE-ME too"}]}"#,
                "users[0].password",
            ),
            (r#"{"rtsp":{"udp_rtp_port":8001}}"#, "rtsp.udp_rtp_port"),
            (r#"{"log_level":"loud"}"#, "log_level"),
            (r#"{"board":"pi6"}"#, "board"),
            (
                r#"{"paths":{"cam":{"pixel_format":"RGB3"}}}"#,
                "paths.cam.pixel_format",
            ),
            (r#"{"rtsp":{"auth_methods":[]}}"#, "rtsp.auth_methods"),
            (
                r#"{"rtsp":{"auth_methods":["ntlm"]}}"#,
                "rtsp.auth_methods[0]",
            ),
            (
                r#"{"paths":{"a":{"source":"/dev/video0"},"b":{"source":"/dev/video0"}}}"#,
                "paths.b.source",
            ),
        ];
        for (json, field) in cases {
            let e = Config::from_json(json).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
    }

    #[test]
    fn pixel_format_is_optional_and_any_case() {
        let c = Config::from_json(r#"{"paths":{"cam":{"pixel_format":"mjpg"}}}"#).unwrap();
        assert_eq!(c.paths["cam"].pixel_format.as_deref(), Some("mjpg"));
        assert!(!Config::default().to_json().contains("pixel_format"));
    }

    #[test]
    fn source_specs() {
        assert_eq!(SourceSpec::parse("auto").unwrap(), SourceSpec::Auto);
        assert_eq!(
            SourceSpec::parse("test-pattern:640x480@25").unwrap(),
            SourceSpec::TestPattern {
                size: Some((640, 480, 25))
            }
        );
        assert_eq!(
            SourceSpec::parse("/dev/video2").unwrap(),
            SourceSpec::Device("/dev/video2".into())
        );
        assert!(SourceSpec::parse("test-pattern:640x480").is_err());
        assert!(SourceSpec::parse("video0").is_err());
    }

    #[test]
    fn user_debug_hides_password() {
        let u = User {
            name: "viewer".into(),
            password: "hunter2".into(),
            permissions: None,
        };
        assert!(!format!("{u:?}").contains("hunter2"));
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("vigint-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vigint.json");
        let mut c = Config::default();
        c.paths.get_mut("cam").unwrap().fps = Some(15);
        c.save(&file).unwrap();
        assert_eq!(Config::load(&file).unwrap(), c);
        assert!(!dir.join(".vigint.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_public_document_hides_secrets_and_keeps_them_on_write() {
        let mut c = Config::from_json(
            r#"{"users":[{"name":"a","password":"pa55word"},{"name":"b","password":"other"}]}"#,
        )
        .unwrap();
        c.admin.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let doc = to_public_json(&c);
        let text = doc.to_string();
        assert!(
            !text.contains("pa55word") && !text.contains("argon2"),
            "{text}"
        );
        assert_eq!(doc["users"][0], serde_json::json!({"name": "a"}));
        // Sent back unchanged: the same config, passwords and admin kept.
        assert_eq!(from_public_json(doc.clone(), &c).unwrap(), c);
        // A new password replaces; a dropped user is gone; a new user needs one.
        let mut d = doc.clone();
        d["users"] = serde_json::json!([{"name": "a", "password": "new-one"}]);
        let n = from_public_json(d, &c).unwrap();
        assert_eq!(n.users.len(), 1);
        assert_eq!(n.users[0].password, "new-one");
        let mut d = doc.clone();
        d["users"] = serde_json::json!([{"name": "a"}, {"name": "c"}]);
        assert_eq!(
            from_public_json(d, &c).unwrap_err().field,
            "users[1].password"
        );
        let mut d = doc.clone();
        d["admin"] = serde_json::json!({"password_hash": "x"});
        assert_eq!(from_public_json(d, &c).unwrap_err().field, "admin");
        assert_eq!(
            from_public_json(serde_json::json!([1]), &c)
                .unwrap_err()
                .field,
            ""
        );
    }

    #[test]
    fn overrides_win_for_the_run_and_are_checked() {
        let file = Config::default();
        let o = Overrides {
            rtsp_listen: Some("127.0.0.1:0".parse().unwrap()),
            source: Some("test-pattern".into()),
            ..Overrides::default()
        };
        let run = o.apply(&file).unwrap();
        assert_eq!(run.rtsp.listen.port(), 0);
        assert_eq!(run.paths["cam"].source, "test-pattern");
        assert_eq!(file.paths["cam"].source, "auto");
        let bad = Overrides {
            log_level: Some("loud".into()),
            ..Overrides::default()
        };
        assert_eq!(bad.apply(&file).unwrap_err().field, "log_level");
    }

    #[test]
    fn recording_has_global_defaults_and_per_path_overrides() {
        let c = Config::from_json(
            r#"{"recording":{"delete_after":"48h","min_free":"5%"},
                "paths":{"cam":{"recording":{"record":true,"part_duration":"500ms","fsync_interval":"5s"}},
                         "side":{"source":"test-pattern"}}}"#,
        )
        .unwrap();
        let cam = c.paths["cam"].recording.over(&c.recording);
        assert!(cam.record);
        assert_eq!(cam.part_duration.0, std::time::Duration::from_millis(500));
        assert_eq!(
            cam.delete_after.0,
            std::time::Duration::from_secs(48 * 3600)
        );
        assert_eq!(cam.min_free, Some(Amount::Percent(5.0)));
        assert_eq!(
            cam.fsync_interval,
            FsyncInterval::Every(std::time::Duration::from_secs(5))
        );
        assert!(!c.paths["side"].recording.over(&c.recording).record);
        // Round trip through the file format.
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
        for (json, field) in [
            (
                r#"{"recording":{"record_path":"../x.mp4"}}"#,
                "recording.record_path",
            ),
            (
                r#"{"paths":{"cam":{"recording":{"part_duration":"10ms"}}}}"#,
                "paths.cam.recording.part_duration",
            ),
            (
                r#"{"paths":{"cam":{"recording":{"segment_duration":"1s","part_duration":"2s"}}}}"#,
                "paths.cam.recording.segment_duration",
            ),
            (
                r#"{"recording":{"fsync_interval":"sometimes"}}"#,
                "recording.fsync_interval",
            ),
            (
                r#"{"recording":{"record":true,"record_path":"all/%Y-%m-%d_%H-%M-%S-%f.mp4"},"paths":{"a":{"source":"test-pattern"},"b":{"source":"test-pattern"}}}"#,
                "recording.record_path",
            ),
        ] {
            assert_eq!(Config::from_json(json).unwrap_err().field, field, "{json}");
        }
    }

    #[test]
    fn an_admin_hash_must_be_argon2id() {
        let e = Config::from_json(r#"{"admin":{"password_hash":"plain"}}"#).unwrap_err();
        assert_eq!(e.field, "admin.password_hash");
        assert!(!e.to_string().contains("plain"));
    }

    #[test]
    fn led_is_optional_checked_and_defaults_to_none_or_the_boards() {
        let c = Config::default();
        assert_eq!(c.led_or(None), LedConfig::NONE);
        assert!(!c.to_json().contains("\"led\""));
        let board = LedConfig {
            driver: LedDriverKind::Sysfs,
            name: Some("ACT".into()),
            ..LedConfig::NONE
        };
        assert_eq!(c.led_or(Some(&board)), board);
        let c = Config::from_json(
            r#"{"led":{"driver":"gpio","pin":17,"active_low":true,"name":"ACT"}}"#,
        )
        .unwrap();
        let led = c.led_or(Some(&board));
        assert_eq!(led.driver, LedDriverKind::Gpio);
        assert_eq!((led.pin, led.active_low), (Some(17), true));
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
        let c = Config::from_json(r#"{"led":{"driver":"sysfs"}}"#).unwrap();
        assert_eq!(
            c.led_or(None).name,
            None,
            "the driver's default (ACT) applies"
        );
        for (json, field) in [
            (r#"{"led":{"driver":"blinkenlights"}}"#, "led.driver"),
            (r#"{"led":{"pin":17}}"#, "led"),
            (r#"{"led":{"driver":"gpio","pin":54}}"#, "led.pin"),
            (r#"{"led":{"driver":"gpio","pin":-1}}"#, "led.pin"),
            (
                r#"{"led":{"driver":"sysfs","name":"../../etc"}}"#,
                "led.name",
            ),
            (r#"{"led":{"driver":"sysfs","name":""}}"#, "led.name"),
            (r#"{"led":{"driver":"none","colour":"red"}}"#, "led.colour"),
        ] {
            let e = Config::from_json(json).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
    }

    #[test]
    fn a_mistyped_password_is_not_echoed() {
        let e = Config::from_json(r#"{"users":[{"name":"a","password":987654}]}"#).unwrap_err();
        assert_eq!(e.field, "users[0].password");
        assert!(!e.to_string().contains("987654"), "{e}");
    }
}
