//! The health snapshot every reporter reads (HTTP API, metrics, the systemd watchdog, the
//! status LED through `health`).
//!
//! Owns: the `Status`/`PathStatus` snapshot types, the probe traits through which the
//! pipeline (`SourceProbe`) and the RTSP server (`ClientProbe`) are read without the
//! reporters importing them, the per-path client counter RTSP updates (`ClientCounter`), and
//! the sliding window that turns counters into measured fps and bitrate (`RateWindow`,
//! sampled by `Monitor`'s own thread). Does not own: any counter itself, or any protocol.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::hub::MediaPath;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How far back fps and bitrate are measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// A streaming path that published no frame for this long is not delivering.
pub const STALL_AFTER: Duration = Duration::from_secs(3);

/// Upper bounds (seconds) of the encode-time histogram's buckets; one more bucket counts
/// the rest. 1280x720 on a Pi 4 takes ~20-40 ms, on a laptop ~5 ms.
pub const ENCODE_BUCKETS_S: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 1.0];

/// Counts per bucket of `ENCODE_BUCKETS_S`, the last one for longer times (not cumulative).
pub type EncodeBuckets = [u64; ENCODE_BUCKETS_S.len() + 1];

/// The bucket an encode time of `ns` falls in.
pub fn encode_bucket(ns: u64) -> usize {
    bucket_of(&ENCODE_BUCKETS_S, ns)
}

/// Upper bounds (seconds) of the recorder's fsync-time histogram: an SD card syncs a
/// fragment in a few ms, stalls for seconds when it is worn or busy erasing.
pub const FSYNC_BUCKETS_S: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counts per bucket of `FSYNC_BUCKETS_S`, the last one for longer times (not cumulative).
pub type FsyncBuckets = [u64; FSYNC_BUCKETS_S.len() + 1];

/// The bucket of `bounds` (upper bounds in seconds, inclusive) that `ns` falls in; one past
/// the last bound for longer times.
pub fn bucket_of(bounds: &[f64], ns: u64) -> usize {
    let s = ns as f64 / 1e9;
    bounds
        .iter()
        .position(|&le| s <= le)
        .unwrap_or(bounds.len())
}

/// What the path's source is doing, as the status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SourceState {
    #[default]
    Starting,
    Streaming,
    /// A camera failed or vanished; retried with backoff until it is back.
    CameraLost(String),
    /// Another kind of source failed (retried the same way).
    Failed(String),
    /// Nothing to do until someone arrives (`waiting for a publisher`): not a fault.
    Idle(String),
    Stopped,
}

impl std::fmt::Display for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceState::Starting => f.write_str("starting"),
            SourceState::Streaming => f.write_str("streaming"),
            SourceState::CameraLost(r) => write!(f, "camera lost: {r}"),
            SourceState::Failed(r) => write!(f, "failed: {r}"),
            SourceState::Idle(r) => f.write_str(r),
            SourceState::Stopped => f.write_str("stopped"),
        }
    }
}

/// What the recorder is doing, for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RecorderState {
    /// Waiting for the first key frame (or the stream description).
    #[default]
    Waiting,
    Recording,
    /// Storage refused writes; retried until it has room.
    Paused(String),
    Stopped,
}

impl std::fmt::Display for RecorderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecorderState::Waiting => write!(f, "waiting for a key frame"),
            RecorderState::Recording => write!(f, "recording"),
            RecorderState::Paused(why) => write!(f, "paused: {why}"),
            RecorderState::Stopped => write!(f, "stopped"),
        }
    }
}

/// JSON shows a state as the text people read (`camera lost: unplugged`): the one place
/// source and recorder states become strings for the API (metrics match on the variants).
impl Serialize for SourceState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for RecorderState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Test fixtures name states as status shows them.
#[cfg(test)]
impl From<&str> for SourceState {
    fn from(s: &str) -> Self {
        match s {
            "starting" => SourceState::Starting,
            "streaming" => SourceState::Streaming,
            "stopped" => SourceState::Stopped,
            other => match other.split_once(": ") {
                Some(("camera lost", why)) => SourceState::CameraLost(why.into()),
                Some(("failed", why)) => SourceState::Failed(why.into()),
                _ => SourceState::Failed(other.into()),
            },
        }
    }
}

#[cfg(test)]
impl From<&str> for RecorderState {
    fn from(s: &str) -> Self {
        match s {
            "recording" => RecorderState::Recording,
            "stopped" => RecorderState::Stopped,
            "waiting for a key frame" => RecorderState::Waiting,
            other => RecorderState::Paused(other.trim_start_matches("paused: ").into()),
        }
    }
}

/// What a path's source reports: the pipeline's counters and state at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceSample {
    pub state: SourceState,
    pub streaming: bool,
    /// How frames become H.264 (`passthrough`, `software-encode from YUYV`, ...).
    pub route: String,
    pub last_error: Option<String>,
    /// Frames published.
    pub frames: u64,
    pub bytes: u64,
    pub idr_frames: u64,
    pub encode_ns_total: u64,
    pub encode_buckets: EncodeBuckets,
    pub camera_dropped: u64,
    pub bad_frames: u64,
    pub restarts: u64,
}

/// Implemented by the pipeline's counters.
pub trait SourceProbe: Send + Sync {
    fn sample(&self) -> SourceSample;
}

/// Clients playing a path, by transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Clients {
    pub tcp: usize,
    pub udp: usize,
}

/// The RTSP side of one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderSample {
    pub clients: Clients,
    /// Who plays the path now, oldest first.
    pub readers: Vec<ReaderInfo>,
    /// Frames RTSP readers skipped because they lagged.
    pub frames_dropped: u64,
    /// Bytes written to the path's RTSP viewers (RTP and interleaving headers included).
    pub bytes_sent: u64,
}

/// Server-wide RTSP counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerSample {
    /// The RTSP TCP port clients connect to.
    pub port: u16,
    pub connections: usize,
    pub connections_total: u64,
    pub connections_rejected: u64,
    pub auth_failures: u64,
}

/// Implemented by the RTSP server.
pub trait ClientProbe: Send + Sync {
    /// `None` when the server does not serve `path`.
    fn readers(&self, path: &str) -> Option<ReaderSample>;
    fn server(&self) -> ServerSample;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// One client playing a path, as the APIs list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReaderInfo {
    /// Random, in UUID form: names the reader in the APIs only (it is not the RTSP
    /// `Session`, which would let whoever reads the API end the session).
    pub id: String,
    pub transport: Transport,
    pub peer: String,
    /// When it started playing (RFC 3339 UTC).
    pub since: String,
}

/// A random version-4 UUID, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // Without randomness the ids are still unique enough for a list: counters follow.
    if getrandom::getrandom(&mut b).is_err() {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        b[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Playing clients of one path by transport, and who they are; a `ClientGuard` counts one
/// while it lives. Changed once per PLAY and per session end, never per frame.
#[derive(Debug, Default)]
pub struct ClientCounter {
    tcp: AtomicUsize,
    udp: AtomicUsize,
    readers: Mutex<Vec<ReaderInfo>>,
}

impl ClientCounter {
    fn slot(&self, t: Transport) -> &AtomicUsize {
        match t {
            Transport::Tcp => &self.tcp,
            Transport::Udp => &self.udp,
        }
    }
    fn readers_list(&self) -> MutexGuard<'_, Vec<ReaderInfo>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enter(self: &Arc<Self>, transport: Transport, peer: SocketAddr) -> ClientGuard {
        self.slot(transport).fetch_add(1, Ordering::AcqRel);
        let id = random_uuid();
        self.readers_list().push(ReaderInfo {
            id: id.clone(),
            transport,
            peer: peer.to_string(),
            since: crate::calendar::utc_timestamp(SystemTime::now()),
        });
        ClientGuard {
            counter: self.clone(),
            transport,
            id,
        }
    }

    /// Who plays now, oldest first.
    pub fn readers(&self) -> Vec<ReaderInfo> {
        self.readers_list().clone()
    }

    pub fn get(&self) -> Clients {
        Clients {
            tcp: self.tcp.load(Ordering::Relaxed),
            udp: self.udp.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
pub struct ClientGuard {
    counter: Arc<ClientCounter>,
    transport: Transport,
    id: String,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.counter.readers_list().retain(|r| r.id != self.id);
        self.counter
            .slot(self.transport)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counter samples over a sliding window: measured rates and whether frames still flow.
#[derive(Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<(Instant, u64, u64)>,
    last_progress: Option<Instant>,
    /// The first sample: a path is not called stalled before it was watched `within`.
    first: Option<Instant>,
}

impl RateWindow {
    /// Adds a sample of the frame and byte counters taken at `at`.
    pub fn push(&mut self, at: Instant, frames: u64, bytes: u64) {
        let progressed = match self.samples.back() {
            Some(&(_, f, _)) => frames > f,
            None => frames > 0,
        };
        if progressed {
            self.last_progress = Some(at);
        }
        self.first.get_or_insert(at);
        self.samples.push_back((at, frames, bytes));
        // Keep one sample at or before the window's start so the window spans it fully.
        while self.samples.len() > 2
            && at.saturating_duration_since(self.samples[1].0) >= RATE_WINDOW
        {
            self.samples.pop_front();
        }
    }

    /// Frames per second and bits per second over the window; `None` until two samples.
    pub fn rates(&self) -> Option<(f64, f64)> {
        let (t0, f0, b0) = *self.samples.front()?;
        let (t1, f1, b1) = *self.samples.back()?;
        let dt = t1.saturating_duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return None;
        }
        Some((
            f1.saturating_sub(f0) as f64 / dt,
            b1.saturating_sub(b0) as f64 * 8.0 / dt,
        ))
    }

    /// True when the frame counter grew within `within` before `now`, or when the window
    /// has not watched that long yet (a path just started is not stalled; before this,
    /// every start showed "no frames" until the first sample).
    pub fn delivering(&self, now: Instant, within: Duration) -> bool {
        match (self.last_progress, self.first) {
            (Some(t), _) => now.saturating_duration_since(t) <= within,
            (None, Some(first)) => now.saturating_duration_since(first) <= within,
            (None, None) => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// A video track's codec as players name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Codec {
    /// `H264`.
    pub name: &'static str,
    /// `Baseline`, `Main`, `High`, ... (`profile_idc` in numbers when unnamed).
    pub profile: String,
    /// `3.1`, `4`, ...
    pub level: String,
}

impl Codec {
    /// The codec an SPS describes; `None` when it does not parse.
    pub fn of_h264_sps(sps: &[u8]) -> Option<Codec> {
        let info = crate::h264::parse_sps(sps).ok()?;
        let profile = match info.profile_idc {
            66 if info.constraint_flags & 0x40 != 0 => "Constrained Baseline".to_string(),
            66 => "Baseline".to_string(),
            77 => "Main".to_string(),
            88 => "Extended".to_string(),
            100 => "High".to_string(),
            110 => "High 10".to_string(),
            122 => "High 4:2:2".to_string(),
            244 => "High 4:4:4 Predictive".to_string(),
            other => other.to_string(),
        };
        // Level 1b is level_idc 11 with constraint_set3 in Baseline and Main.
        let level = match info.level_idc {
            11 if matches!(info.profile_idc, 66 | 77) && info.constraint_flags & 0x10 != 0 => {
                "1b".to_string()
            }
            l if l % 10 == 0 => (l / 10).to_string(),
            l => format!("{}.{}", l / 10, l % 10),
        };
        Some(Codec {
            name: "H264",
            profile,
            level,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Lost by the camera (sequence gaps, failed buffers, outages).
    pub camera: u64,
    /// Skipped because they could not be decoded or converted.
    pub bad: u64,
    /// Skipped by RTSP readers that lagged.
    pub readers: u64,
}

/// One path, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathStatus {
    pub name: String,
    /// The configured source (`auto`, `/dev/video0`, `test-pattern`, ...).
    pub source: String,
    pub route: String,
    pub state: SourceState,
    /// `None` when the path delivers frames; otherwise why not.
    pub problem: Option<String>,
    /// Measured over the last few seconds; `None` until measured.
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub resolution: Option<Resolution>,
    /// The video's codec, profile and level (from its SPS), once known.
    pub codec: Option<Codec>,
    /// When the source last began streaming (RFC 3339 UTC, to the sampler's half second);
    /// `None` while it does not stream.
    pub streaming_since: Option<String>,
    /// RTSP clients playing the path.
    pub clients: Clients,
    /// Who plays the path over RTSP now.
    pub readers: Vec<ReaderInfo>,
    /// Live (browser, stream-viewer) viewers watching the path now.
    pub live_viewers: usize,
    pub frames: u64,
    /// Bytes sent to the path's RTSP viewers.
    pub bytes_sent: u64,
    /// Bytes sent to the path's live viewers.
    pub live_bytes_sent: u64,
    pub bytes: u64,
    pub idr_frames: u64,
    pub encode_seconds_total: f64,
    /// The encode-time histogram (for /metrics).
    #[serde(skip)]
    pub encode_buckets: EncodeBuckets,
    pub restarts: u64,
    pub frames_dropped: Drops,
    pub last_error: Option<String>,
    /// Present when the path records.
    pub recording: Option<RecorderSample>,
}

/// One path, judged the same way by the watchdog, the systemd status line and the LED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathHealth {
    /// Not yet streaming, no error yet.
    Starting,
    /// Frames flow.
    Serving,
    /// Failed and says so (`camera lost: ...`, `failed: ...`, `stopped`): a restart would
    /// not bring an unplugged camera back, and the failure is visible in status.
    Reported(String),
    /// Claims to stream but no frame came: a wedged capture thread. Only a restart helps.
    Stalled(String),
    /// Waits for someone to bring frames (a publisher): nothing is wrong.
    Idle(String),
}

impl PathStatus {
    /// The path's health from its state and whether its frames flow (`problem`).
    pub fn health(&self) -> PathHealth {
        match (&self.state, &self.problem) {
            (SourceState::Starting, _) => PathHealth::Starting,
            (SourceState::Streaming, None) => PathHealth::Serving,
            (SourceState::Streaming, Some(why)) => PathHealth::Stalled(why.clone()),
            (SourceState::Idle(why), _) => PathHealth::Idle(why.clone()),
            (state, _) => PathHealth::Reported(state.to_string()),
        }
    }
}

/// The whole appliance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_s: u64,
    /// The board's model from the device tree (`Raspberry Pi 4 Model B Rev 1.4`); `None`
    /// where there is none (a PC).
    pub board: Option<String>,
    /// The board profile in force and what it supplied (`board`).
    pub board_profile: Option<crate::board::BoardReport>,
    /// What became of a first-boot file, when there was one at start (`firstboot`).
    pub first_boot: Option<crate::firstboot::FirstBootReport>,
    pub clock: ClockStatus,
    /// True when every path delivers frames.
    pub healthy: bool,
    pub rtsp: ServerSample,
    pub paths: Vec<PathStatus>,
    /// The status LED as its thread last set it; `None` before that.
    pub led: Option<LedStatus>,
}

/// What the status LED shows (set by the LED thread, see `led`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedStatus {
    /// `gpio`, `sysfs` or `none`.
    pub driver: String,
    /// The pattern shown (`recording`, `camera_lost`, ...); `None` when the LED failed.
    pub pattern: Option<String>,
    /// Why the LED shows nothing (it could not be opened or written).
    pub error: Option<String>,
}

/// Whether wall time can be trusted (Pi boards have no RTC: until NTP syncs, the date may
/// be days or years off). Media time never depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClockStatus {
    /// The kernel's view (`adjtimex`): false until a time daemon has synchronised it.
    pub synchronized: bool,
}

/// Reads the kernel's clock synchronisation state (what `timedatectl` shows as "System
/// clock synchronized").
pub fn clock_synchronized() -> bool {
    // SAFETY: timex is plain old data; all-zero is a valid value (modes = 0: read only).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: adjtimex with modes = 0 only reads the kernel's state into `tx`.
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}

/// The device tree's model string, if this machine has one.
pub fn board_model() -> Option<String> {
    let raw = std::fs::read("/proc/device-tree/model").ok()?;
    let text = String::from_utf8_lossy(&raw);
    let model = text.trim_end_matches('\0').trim();
    (!model.is_empty()).then(|| model.to_string())
}

/// Why a path is not healthy, from its state and whether its frames still flow.
pub fn problem_of(state: &SourceState, delivering: bool) -> Option<String> {
    if matches!(state, SourceState::Idle(_)) {
        // Waiting for a publisher is how such a path rests: nothing to report.
        None
    } else if *state != SourceState::Streaming {
        Some(state.to_string())
    } else if !delivering {
        Some(format!(
            "no frames for more than {} s",
            STALL_AFTER.as_secs()
        ))
    } else {
        None
    }
}

/// What the monitor reads for one path.
pub struct PathProbe {
    pub name: String,
    pub source: String,
    pub media: Arc<MediaPath>,
    pub stats: Arc<dyn SourceProbe>,
    /// The path's recorder, when it records.
    pub recorder: Option<Arc<dyn RecorderProbe>>,
}

/// What a path's recorder reports (implemented in `record`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecorderSample {
    pub state: RecorderState,
    /// The segment being written, relative to the recordings directory.
    pub segment: Option<String>,
    pub segments_written: u64,
    pub bytes_written: u64,
    pub frames_written: u64,
    /// Frames lost to a storage too slow for the stream, and the media time they spanned.
    pub frames_dropped: u64,
    pub dropped_seconds: f64,
    pub gaps: u64,
    pub write_errors: u64,
    /// Bytes per second written over the last 10 s, and in the last 24 hours (since start
    /// when the process is younger).
    pub write_bytes_per_second: f64,
    pub bytes_written_24h: u64,
    pub fsyncs: u64,
    pub fsync_seconds_total: f64,
    pub fsync_seconds_max: f64,
    /// The fsync-time histogram (for /metrics).
    #[serde(skip)]
    pub fsync_buckets: FsyncBuckets,
    /// Free space of the recordings filesystem, when known.
    pub free_bytes: Option<u64>,
    /// What the path's recordings directory holds (as of the last retention pass, 10 s).
    pub stored: StoredRecordings,
}

/// The segments a path has on disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoredRecordings {
    pub segments: u64,
    pub bytes: u64,
    pub oldest: Option<StoredSegment>,
    pub newest: Option<StoredSegment>,
}

/// One segment, named as the recordings API names it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoredSegment {
    pub file: String,
    /// RFC 3339 UTC start from the file name, when the template has one.
    pub start: Option<String>,
    /// False when the wall clock was not synchronised as it started.
    pub clock_trusted: bool,
    /// The same start in Unix seconds (for /metrics).
    #[serde(skip)]
    pub start_unix_s: Option<f64>,
}

pub trait RecorderProbe: Send + Sync {
    fn sample(&self) -> RecorderSample;
}

/// One served path: its probe and its rate window.
struct Watched {
    probe: PathProbe,
    window: RateWindow,
    /// When the sampler first saw the source streaming this time.
    streaming_since: Option<SystemTime>,
}

/// Reads every probe, keeps the rate windows, and builds snapshots. Paths come and go as
/// the config changes (`watch`, `unwatch`).
pub struct Monitor {
    started: Instant,
    board: Option<String>,
    /// Set once at start: the board profile and the first-boot outcome.
    board_profile: std::sync::OnceLock<crate::board::BoardReport>,
    first_boot: std::sync::OnceLock<crate::firstboot::FirstBootReport>,
    paths: Mutex<Vec<Watched>>,
    clients: Arc<dyn ClientProbe>,
    /// Completed `sample` passes: the watchdog's proof that the sampler still runs.
    sweeps: AtomicU64,
    led: Mutex<Option<LedStatus>>,
}

impl Monitor {
    pub fn new(paths: Vec<PathProbe>, clients: Arc<dyn ClientProbe>) -> Arc<Monitor> {
        let paths = paths
            .into_iter()
            .map(|probe| Watched {
                probe,
                window: RateWindow::default(),
                streaming_since: None,
            })
            .collect();
        Arc::new(Monitor {
            started: Instant::now(),
            board: board_model(),
            board_profile: std::sync::OnceLock::new(),
            first_boot: std::sync::OnceLock::new(),
            paths: Mutex::new(paths),
            clients,
            sweeps: AtomicU64::new(0),
            led: Mutex::new(None),
        })
    }

    /// Records the start's board profile and first-boot outcome (once; later calls are ignored).
    pub fn set_startup(
        &self,
        board: Option<crate::board::BoardReport>,
        first_boot: Option<crate::firstboot::FirstBootReport>,
    ) {
        if let Some(b) = board {
            let _ = self.board_profile.set(b);
        }
        if let Some(f) = first_boot {
            let _ = self.first_boot.set(f);
        }
    }

    fn paths(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts watching a path, or replaces the probe of one of that name (keeping its
    /// measurements when the counters are the same).
    pub fn watch(&self, probe: PathProbe) {
        let mut paths = self.paths();
        match paths.iter_mut().find(|w| w.probe.name == probe.name) {
            Some(w) => {
                if !Arc::ptr_eq(&w.probe.stats, &probe.stats) {
                    w.window = RateWindow::default();
                }
                w.probe = probe;
            }
            None => {
                paths.push(Watched {
                    probe,
                    window: RateWindow::default(),
                    streaming_since: None,
                });
                paths.sort_by(|a, b| a.probe.name.cmp(&b.probe.name));
            }
        }
    }

    /// Records what the status LED shows, for the next snapshots.
    pub fn set_led(&self, led: LedStatus) {
        *self.led.lock().unwrap_or_else(|e| e.into_inner()) = Some(led);
    }

    pub fn unwatch(&self, name: &str) {
        self.paths().retain(|w| w.probe.name != name);
    }

    /// Reads the frame counters into the rate windows.
    pub fn sample(&self) {
        let now = Instant::now();
        for w in self.paths().iter_mut() {
            let s = w.probe.stats.sample();
            w.window.push(now, s.frames, s.bytes);
            if s.state != SourceState::Streaming {
                w.streaming_since = None;
            } else if w.streaming_since.is_none() {
                w.streaming_since = Some(SystemTime::now());
            }
        }
        self.sweeps.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times `sample` has run.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }

    /// Starts the thread "status" that samples every `SAMPLE_EVERY` until `stop` is set.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("status".to_string())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    me.sample();
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
    }

    pub fn path_names(&self) -> Vec<String> {
        self.paths().iter().map(|w| w.probe.name.clone()).collect()
    }

    fn path_status(&self, w: &Watched, now: Instant) -> PathStatus {
        let p = &w.probe;
        let s = p.stats.sample();
        let readers = self.clients.readers(&p.name).unwrap_or_default();
        let info = p.media.info();
        // Between the start and the sampler's next pass: now, to within half a second.
        let streaming_since = (s.state == SourceState::Streaming).then(|| {
            crate::calendar::utc_timestamp(w.streaming_since.unwrap_or_else(SystemTime::now))
        });
        let rates = w.window.rates();
        let delivering = w.window.delivering(now, STALL_AFTER);
        let round = |v: f64, scale: f64| (v * scale).round() / scale;
        PathStatus {
            name: p.name.clone(),
            source: p.source.clone(),
            route: s.route,
            problem: problem_of(&s.state, delivering),
            state: s.state,
            fps: rates.map(|(fps, _)| round(fps, 10.0)),
            bitrate_kbps: rates.map(|(_, bps)| round(bps / 1000.0, 10.0)),
            resolution: info.as_ref().map(|i| Resolution {
                width: i.width,
                height: i.height,
            }),
            codec: info.as_ref().and_then(|i| Codec::of_h264_sps(&i.sps)),
            streaming_since,
            clients: readers.clients,
            readers: readers.readers,
            live_viewers: p.media.live.readers(),
            bytes_sent: readers.bytes_sent,
            live_bytes_sent: p.media.live.bytes_sent(),
            frames: s.frames,
            bytes: s.bytes,
            idr_frames: s.idr_frames,
            encode_seconds_total: s.encode_ns_total as f64 / 1e9,
            encode_buckets: s.encode_buckets,
            restarts: s.restarts,
            frames_dropped: Drops {
                camera: s.camera_dropped,
                bad: s.bad_frames,
                readers: readers.frames_dropped,
            },
            last_error: s.last_error,
            recording: p.recorder.as_ref().map(|r| r.sample()),
        }
    }

    /// One path's status; `None` for a path that is not served.
    pub fn path(&self, name: &str) -> Option<PathStatus> {
        let now = Instant::now();
        let paths = self.paths();
        let w = paths.iter().find(|w| w.probe.name == name)?;
        Some(self.path_status(w, now))
    }

    pub fn snapshot(&self) -> Status {
        let now = Instant::now();
        let paths: Vec<PathStatus> = self
            .paths()
            .iter()
            .map(|w| self.path_status(w, now))
            .collect();
        Status {
            version: VERSION,
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            board: self.board.clone(),
            board_profile: self.board_profile.get().cloned(),
            first_boot: self.first_boot.get().cloned(),
            clock: ClockStatus {
                synchronized: clock_synchronized(),
            },
            healthy: paths.iter().all(|p| p.problem.is_none()),
            rtsp: self.clients.server(),
            paths,
            led: self.led.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn window_measures_rates_over_its_span_and_forgets_old_samples() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rates(), None);
        w.push(t0, 0, 0);
        assert_eq!(w.rates(), None, "one sample is no rate");
        // 30 fps, 1000 bytes per frame, for 10 s in half-second steps.
        for i in 1..=20u64 {
            w.push(t0 + Duration::from_millis(500 * i), 15 * i, 15_000 * i);
        }
        let (fps, bps) = w.rates().expect("rates");
        assert!((fps - 30.0).abs() < 1e-9, "{fps}");
        assert!((bps - 240_000.0).abs() < 1e-6, "{bps}");
        assert!(
            w.samples.len() <= 12,
            "old samples dropped: {}",
            w.samples.len()
        );
        // The source then stops: the rate falls, and after a while frames no longer flow.
        let t10 = t0 + Duration::from_secs(10);
        for i in 1..=10u64 {
            w.push(t10 + Duration::from_millis(500 * i), 300, 300_000);
        }
        assert_eq!(w.rates().map(|r| r.0), Some(0.0));
        assert!(w.delivering(t10 + Duration::from_secs(2), STALL_AFTER));
        assert!(!w.delivering(t10 + Duration::from_secs(5), STALL_AFTER));
    }

    #[test]
    fn a_path_just_watched_is_not_stalled_until_it_had_the_time() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert!(w.delivering(t0, STALL_AFTER), "not sampled yet");
        w.push(t0, 0, 0);
        assert!(w.delivering(t0 + Duration::from_secs(2), STALL_AFTER));
        w.push(t0 + Duration::from_secs(2), 0, 0);
        assert!(
            !w.delivering(t0 + Duration::from_secs(4), STALL_AFTER),
            "watched 4 s, no frame: stalled"
        );
        w.push(t0 + Duration::from_secs(5), 3, 300);
        assert!(w.delivering(t0 + Duration::from_secs(5), STALL_AFTER));
    }

    #[test]
    fn a_counter_that_goes_back_is_no_negative_rate() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        w.push(t0, 100, 1000);
        w.push(t0 + Duration::from_secs(1), 10, 10);
        assert_eq!(w.rates(), Some((0.0, 0.0)));
    }

    #[test]
    fn encode_times_fall_in_their_bucket() {
        assert_eq!(encode_bucket(0), 0);
        assert_eq!(encode_bucket(1_000_000), 0, "upper bounds are inclusive");
        assert_eq!(encode_bucket(1_000_001), 1);
        assert_eq!(encode_bucket(30_000_000), 5);
        assert_eq!(encode_bucket(5_000_000_000), ENCODE_BUCKETS_S.len());
    }

    #[test]
    fn paths_are_judged_by_state_and_delivery() {
        let h = |state: &str, problem: Option<&str>| test_path("cam", state, problem).health();
        assert_eq!(h("starting", Some("starting")), PathHealth::Starting);
        assert_eq!(h("streaming", None), PathHealth::Serving);
        assert_eq!(
            h("streaming", Some("no frames for more than 3 s")),
            PathHealth::Stalled("no frames for more than 3 s".into())
        );
        let lost = "camera lost: /dev/video99: no such device";
        assert_eq!(h(lost, Some(lost)), PathHealth::Reported(lost.into()));
        assert_eq!(
            h("failed: encoder", Some("failed: encoder")),
            PathHealth::Reported("failed: encoder".into())
        );
        assert_eq!(
            h("stopped", Some("stopped")),
            PathHealth::Reported("stopped".into())
        );
    }

    #[test]
    fn problems_name_the_state_or_the_stall() {
        assert_eq!(problem_of(&SourceState::Streaming, true), None);
        assert_eq!(
            problem_of(&"camera lost: unplugged".into(), true).as_deref(),
            Some("camera lost: unplugged")
        );
        assert_eq!(
            problem_of(&SourceState::Streaming, false).as_deref(),
            Some("no frames for more than 3 s")
        );
    }

    #[test]
    fn client_guards_count_by_transport() {
        let c = Arc::new(ClientCounter::default());
        let peer = |port| SocketAddr::from(([192, 0, 2, 1], port));
        let a = c.enter(Transport::Tcp, peer(1));
        let b = c.enter(Transport::Udp, peer(2));
        let d = c.enter(Transport::Tcp, peer(3));
        assert_eq!(c.get(), Clients { tcp: 2, udp: 1 });
        let listed = c.readers();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[1].peer, "192.0.2.1:2");
        assert_eq!(listed[1].transport, Transport::Udp);
        assert_ne!(listed[0].id, listed[2].id);
        drop((a, b));
        assert_eq!(c.get(), Clients { tcp: 1, udp: 0 });
        assert_eq!(c.readers().len(), 1);
        assert_eq!(c.readers()[0].peer, "192.0.2.1:3");
        drop(d);
        assert_eq!(c.get(), Clients::default());
        assert!(c.readers().is_empty());
    }

    #[test]
    fn uuids_have_the_version_4_form() {
        let u = random_uuid();
        assert_eq!(u.len(), 36, "{u}");
        let dashes: Vec<usize> = u.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23], "{u}");
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(random_uuid(), u);
    }

    #[test]
    fn codecs_are_named_from_the_sps() {
        // SPSs written by libx264: constrained baseline 3.1, main 3.0, high 4.0.
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let named = |sps: &str| {
            let c = Codec::of_h264_sps(&hex(sps)).unwrap();
            assert_eq!(c.name, "H264");
            (c.profile, c.level)
        };
        assert_eq!(
            named("6742c01fd9005005bb0110000003001000000303c0f1832480"),
            ("Constrained Baseline".into(), "3.1".into())
        );
        assert_eq!(
            named("674d401eeca0501ed80880000003008000001e078b16cb"),
            ("Main".into(), "3".into())
        );
        assert_eq!(
            named("67640028acd940780227e5c044000003000400000300f03c60c658"),
            ("High".into(), "4".into())
        );
        assert_eq!(Codec::of_h264_sps(&[0x67]), None);
    }

    struct FakeSource(SourceSample);
    impl SourceProbe for FakeSource {
        fn sample(&self) -> SourceSample {
            self.0.clone()
        }
    }
    struct FakeClients;
    impl ClientProbe for FakeClients {
        fn readers(&self, path: &str) -> Option<ReaderSample> {
            (path == "cam").then_some(ReaderSample {
                clients: Clients { tcp: 1, udp: 2 },
                frames_dropped: 7,
                bytes_sent: 4_096,
                readers: Vec::new(),
            })
        }
        fn server(&self) -> ServerSample {
            ServerSample {
                connections: 3,
                ..Default::default()
            }
        }
    }

    struct FakeRecorder;
    impl RecorderProbe for FakeRecorder {
        fn sample(&self) -> RecorderSample {
            RecorderSample {
                state: "recording".into(),
                bytes_written: 6_000_000,
                write_bytes_per_second: 250_000.0,
                bytes_written_24h: 5_000_000,
                fsyncs: 5,
                fsync_seconds_total: 1.5,
                // 3 syncs within 1 ms, 1 within 5 ms, 1 stall over 5 s.
                fsync_buckets: [3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..Default::default()
            }
        }
    }

    /// A path as a test wants it: `state`, `problem`, nothing measured.
    pub(crate) fn test_path(name: &str, state: &str, problem: Option<&str>) -> PathStatus {
        PathStatus {
            name: name.into(),
            source: "test-pattern".into(),
            route: String::new(),
            state: state.into(),
            problem: problem.map(str::to_string),
            fps: None,
            bitrate_kbps: None,
            resolution: None,
            codec: None,
            streaming_since: None,
            clients: Clients::default(),
            readers: Vec::new(),
            live_viewers: 0,
            frames: 0,
            bytes: 0,
            bytes_sent: 0,
            live_bytes_sent: 0,
            idr_frames: 0,
            encode_seconds_total: 0.0,
            encode_buckets: Default::default(),
            restarts: 0,
            frames_dropped: Drops::default(),
            last_error: None,
            recording: None,
        }
    }

    /// A snapshot of `paths` with the clock `synced`.
    pub(crate) fn test_status(paths: Vec<PathStatus>, synced: bool) -> Status {
        Status {
            version: "test",
            uptime_s: 1,
            board: None,
            clock: ClockStatus {
                synchronized: synced,
            },
            healthy: paths.iter().all(|p| p.problem.is_none()),
            rtsp: ServerSample::default(),
            paths,
            led: None,
            board_profile: None,
            first_boot: None,
        }
    }

    pub(crate) fn fake_monitor() -> Arc<Monitor> {
        let sample = SourceSample {
            state: "camera lost: unplugged".into(),
            route: "software-encode from YUYV".into(),
            last_error: Some("unplugged".into()),
            frames: 10,
            bytes: 1000,
            camera_dropped: 4,
            // 2 encodes of 2-5 ms, 1 over a second.
            encode_buckets: [0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
            ..Default::default()
        };
        Monitor::new(
            vec![PathProbe {
                name: "cam".into(),
                source: "/dev/video0".into(),
                media: MediaPath::new("cam"),
                stats: Arc::new(FakeSource(sample)),
                recorder: Some(Arc::new(FakeRecorder)),
            }],
            Arc::new(FakeClients),
        )
    }

    #[test]
    fn status_json_has_the_documented_shape() {
        let m = fake_monitor();
        let v = serde_json::to_value(m.snapshot()).expect("json");
        assert_eq!(v["version"], VERSION);
        assert_eq!(v["healthy"], false);
        assert_eq!(v["rtsp"]["connections"], 3);
        assert!(v["clock"]["synchronized"].is_boolean(), "{v}");
        assert!(v.get("board").is_some(), "{v}");
        let p = &v["paths"][0];
        assert_eq!(p["name"], "cam");
        assert_eq!(p["source"], "/dev/video0");
        assert_eq!(p["route"], "software-encode from YUYV");
        assert_eq!(p["state"], "camera lost: unplugged");
        assert_eq!(p["problem"], "camera lost: unplugged");
        assert_eq!(p["fps"], serde_json::Value::Null);
        assert_eq!(p["resolution"], serde_json::Value::Null);
        assert_eq!(p["clients"], serde_json::json!({"tcp": 1, "udp": 2}));
        assert_eq!(
            p["frames_dropped"],
            serde_json::json!({"camera": 4, "bad": 0, "readers": 7})
        );
        assert_eq!(p["last_error"], "unplugged");
        assert_eq!(p["bytes_sent"], 4_096);
        assert!(m.path("cam").is_some());
        assert!(m.path("nope").is_none());
    }

    #[test]
    fn paths_can_be_watched_and_unwatched_live() {
        let m = fake_monitor();
        m.watch(PathProbe {
            name: "a-first".into(),
            source: "test-pattern".into(),
            media: MediaPath::new("a-first"),
            stats: Arc::new(FakeSource(SourceSample::default())),
            recorder: None,
        });
        assert_eq!(m.path_names(), ["a-first", "cam"]);
        m.sample();
        assert_eq!(m.snapshot().paths.len(), 2);
        m.unwatch("cam");
        assert_eq!(m.path_names(), ["a-first"]);
        assert!(m.path("cam").is_none());
    }
}
