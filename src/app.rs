//! The supervisor: builds every subsystem from a validated config, runs them, and tears them
//! down in order on one shutdown signal.
//!
//! Owns: the tokio runtime, the per-path pipelines (one thread and one source each, nothing
//! shared between paths, so two cameras serve two paths at once), the RTSP server, the
//! status monitor and the HTTP server (wired to each other only here), and the mapping from a path's `source` to a frame source (resolving `auto` once at start). Does not own: any protocol or media logic.

use crate::config::{
    Config, ConfigFile, FsyncInterval, HttpConfig, Overrides, PathConfig, RecordingConfig,
    RtspConfig,
};
use crate::control::{
    Applied, Change, Control, ControlError, PathRecordings, RecordingError, Recordings,
    SegmentEntry,
};
use crate::http::login::Login;
use crate::http::{HttpContext, HttpServer};
use crate::hub::MediaPath;
use crate::record::library;
use crate::record::recorder::{FsyncCadence, Recorder, RecorderSettings};
use crate::record::store::{PathStore, SystemClock};
use crate::rtsp::server::RtspServer;
use crate::rtsp::server::ServerContext;
use crate::source::pipeline::Pipeline;
use crate::source::v4l2;
use crate::status::{Monitor, PathProbe};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Why the appliance could not start or stopped.
#[derive(Debug)]
pub enum AppError {
    Runtime(std::io::Error),
    Rtsp(std::io::Error),
    Pipeline { path: String, error: std::io::Error },
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            AppError::Rtsp(e) => write!(f, "{e}"),
            AppError::Pipeline { path, error } => {
                write!(f, "cannot start the pipeline of path `{path}`: {error}")
            }
        }
    }
}

impl std::error::Error for AppError {}

/// Addresses a person can paste into a player: the listen address, or every interface's
/// address when listening on all of them.
pub fn reachable_urls(listen: SocketAddr, path: &str) -> Vec<String> {
    let ips: Vec<IpAddr> = if listen.ip().is_unspecified() {
        let mut ips = local_ipv4s();
        if ips.is_empty() {
            ips.push(IpAddr::from([127, 0, 0, 1]));
        }
        ips
    } else {
        vec![listen.ip()]
    };
    ips.into_iter()
        .map(|ip| format!("rtsp://{}/{path}", SocketAddr::new(ip, listen.port())))
        .collect()
}

/// Non-loopback IPv4 addresses of this machine's interfaces.
fn local_ipv4s() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below; we only read entries it gave us.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && (*addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    out.push(IpAddr::V4(ip));
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// Runs the appliance until SIGINT or SIGTERM. `file` is the config file as read (changes
/// from the API are saved there), `cfg` what this run uses (`file` plus `overrides`).
pub fn run(file: ConfigFile, overrides: Overrides, cfg: Config) -> Result<(), AppError> {
    run_with(file, overrides, cfg, Startup::default())
}

/// What `main` learned before the appliance started, shown in status.
#[derive(Debug, Default)]
pub struct Startup {
    pub board: Option<crate::board::BoardReport>,
    pub first_boot: Option<crate::firstboot::FirstBootReport>,
}

/// `run`, with what the start found out for status.
pub fn run_with(
    file: ConfigFile,
    overrides: Overrides,
    cfg: Config,
    startup: Startup,
) -> Result<(), AppError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigint-net")
        .build()
        .map_err(AppError::Runtime)?;
    runtime.block_on(serve(file, overrides, cfg, startup))
}

/// A path being served: its pipeline and the settings it runs with.
struct ServedPath {
    media: Arc<MediaPath>,
    pipeline: Pipeline,
    config: PathConfig,
    /// The recorder and its store, when the path records.
    recording: Option<Recording>,
    /// The recording settings it was started with (global defaults applied).
    recording_config: RecordingConfig,
}

/// A path's recorder and where it writes.
struct Recording {
    recorder: Recorder,
    store: Arc<PathStore>,
}

/// How often retention looks at the recordings.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// Applies retention to every recording path every `RETENTION_EVERY` until `stop`.
fn spawn_retention(
    supervisor: Weak<Supervisor>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            let clock = SystemClock;
            while !stop.load(Ordering::Relaxed) {
                let Some(s) = supervisor.upgrade() else {
                    return;
                };
                let stores = s.stores();
                drop(s);
                for store in stores {
                    store.retention_pass(&clock);
                }
                let until = std::time::Instant::now() + RETENTION_EVERY;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
}

/// What the supervisor changes under its lock.
struct State {
    /// The config file's document.
    file: Config,
    /// What runs: `file` with the command-line overrides.
    run: Config,
    paths: BTreeMap<String, ServedPath>,
}

/// Owns the running paths and applies config changes (`Control`) live.
struct Supervisor {
    file_path: PathBuf,
    overrides: Overrides,
    rtsp: Arc<ServerContext>,
    monitor: Arc<Monitor>,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    /// The HTTP server, replaced when `http.listen` changes.
    http: Mutex<Option<HttpServer>>,
    /// Kept across HTTP restarts, so a move does not reset the failed-login record.
    login: Arc<Login>,
    /// The saved admin hash, apart from `state`: every HTTP request reads it, and must not
    /// wait while a change holds `state` (stopping a recorder on a stalled card can take long).
    admin_hash: std::sync::RwLock<Option<String>>,
    /// Itself, for the thread that moves HTTP (it must outlive the request that asked).
    me: Weak<Supervisor>,
}

fn probe(name: &str, cfg: &PathConfig, served: &ServedPath) -> PathProbe {
    PathProbe {
        name: name.to_string(),
        source: cfg.source.clone(),
        media: served.media.clone(),
        stats: served.pipeline.stats().clone(),
        recorder: served.recording.as_ref().map(|r| {
            let probe: Arc<dyn crate::status::RecorderProbe> = Arc::new(RecorderView {
                stats: r.recorder.stats().clone(),
                store: r.store.clone(),
            });
            probe
        }),
    }
}

/// What status reads of a path's recording: the recorder's counters and its store's disk.
struct RecorderView {
    stats: Arc<crate::record::recorder::RecorderStats>,
    store: Arc<PathStore>,
}

impl crate::status::RecorderProbe for RecorderView {
    fn sample(&self) -> crate::status::RecorderSample {
        let mut s = self.stats.sample();
        s.free_bytes = self.store.free_bytes();
        let summary = self.store.summary();
        let brief = |b: crate::record::store::SegmentBrief| crate::status::StoredSegment {
            file: b.file.to_string_lossy().into_owned(),
            start: b.start.map(crate::logger::utc_timestamp),
            clock_trusted: b.clock_trusted,
            start_unix_s: b
                .start
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
        };
        s.stored = crate::status::StoredRecordings {
            segments: summary.segments as u64,
            bytes: summary.bytes,
            oldest: summary.oldest.map(brief),
            newest: summary.newest.map(brief),
        };
        s
    }
}

impl Supervisor {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn http(&self) -> std::sync::MutexGuard<'_, Option<HttpServer>> {
        self.http.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the HTTP API to `next` from a thread of its own: the old server first answers
    /// the request that asked (its `stop` lets running requests finish), then the new one
    /// binds. If it cannot, the old address is taken back, so the page stays reachable.
    fn move_http(&self, prev: HttpConfig, next: HttpConfig) {
        let Some(me) = self.me.upgrade() else { return };
        let to = next.listen;
        let moved = std::thread::Builder::new()
            .name("http-move".into())
            .spawn(move || {
                let old = me.http().take();
                if let Some(old) = old {
                    old.stop();
                }
                let control: Arc<dyn Control> = me.clone();
                let recordings: Arc<dyn Recordings> = me.clone();
                let start = |cfg: &HttpConfig| {
                    start_http(
                        cfg,
                        me.monitor.clone(),
                        control.clone(),
                        me.login.clone(),
                        recordings.clone(),
                    )
                };
                let server = match start(&next) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        log::error!("http: {e}; staying on {}", prev.listen);
                        start(&prev)
                            .map_err(|e| log::error!("http: {e}; the HTTP API is off"))
                            .ok()
                    }
                };
                *me.http() = server;
            });
        if let Err(e) = moved {
            log::error!("http: cannot move to {to}: {e}");
        }
    }

    /// Starts serving one path: hub, RTSP stream, pipeline, status probe.
    /// Starts recording a path when its settings say so. A failure is logged and the path
    /// streams on without recording (video first).
    fn start_recording(
        &self,
        name: &str,
        media: &Arc<MediaPath>,
        rec: &RecordingConfig,
        data_dir: &Path,
    ) -> Option<Recording> {
        if !rec.record {
            return None;
        }
        let root = data_dir.join("recordings");
        let store = match PathStore::open(&root, name, rec) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                log::error!("path {name}: cannot record: {e}");
                return None;
            }
        };
        let names = store.clone();
        let settings = RecorderSettings {
            path_name: name.to_string(),
            part_duration: rec.part_duration.0,
            segment_duration: rec.segment_duration.0,
            fsync: match rec.fsync_interval {
                FsyncInterval::EveryFragment => FsyncCadence::EveryFragment,
                FsyncInterval::Every(d) => FsyncCadence::Every(d),
            },
            name_for: Box::new(move |start, synced, run_start| {
                names.name_for(start, synced, run_start)
            }),
            clock_synced: Arc::new(crate::status::clock_synchronized),
            clock_stepped: {
                let mut watch = crate::record::retention::ClockWatch::default();
                Box::new(move || {
                    watch.stepped(&crate::record::store::SystemClock, Duration::from_secs(1))
                })
            },
        };
        match Recorder::start(media.clone(), settings, store.clone(), &self.runtime) {
            Ok(recorder) => {
                log::info!("path {name}: recording into {}", root.display());
                Some(Recording { recorder, store })
            }
            Err(e) => {
                log::error!("path {name}: cannot start recording: {e}");
                None
            }
        }
    }

    fn start_path(
        &self,
        name: &str,
        cfg: &PathConfig,
        run: &Config,
    ) -> std::io::Result<ServedPath> {
        let media = MediaPath::new(name);
        let pipeline = Pipeline::spawn(
            media.clone(),
            crate::source::factory(name, cfg),
            crate::source::encoder_settings(cfg),
        )?;
        {
            // RTP streams run on the runtime; this may be called from an HTTP thread.
            let _in_runtime = self.runtime.enter();
            self.rtsp.add_path(media.clone(), cfg.max_readers);
        }
        let recording_config = cfg.recording.over(&run.recording);
        let recording = self.start_recording(name, &media, &recording_config, &run.data_dir);
        let served = ServedPath {
            media,
            pipeline,
            config: cfg.clone(),
            recording,
            recording_config,
        };
        self.monitor.watch(probe(name, cfg, &served));
        Ok(served)
    }

    fn stop_path(&self, name: &str, served: ServedPath) {
        self.rtsp.remove_path(name);
        self.monitor.unwatch(name);
        served.pipeline.stop();
        if let Some(r) = served.recording {
            r.recorder.stop();
        }
    }

    /// Brings the running appliance from `st.run` to `next`, touching only what changed.
    fn apply(&self, st: &mut State, next: &Config) -> Applied {
        let mut done = Applied::default();
        let prev = &st.run;
        if prev.rtsp != next.rtsp {
            let restart = self.rtsp.apply_settings(&next.rtsp, &next.users);
            done.restart_required
                .extend(restart.iter().map(|f| f.to_string()));
            let live = RtspConfig {
                listen: prev.rtsp.listen,
                udp_rtp_port: prev.rtsp.udp_rtp_port,
                max_packet_size: prev.rtsp.max_packet_size,
                ..next.rtsp.clone()
            };
            if live != prev.rtsp {
                done.applied.push("rtsp settings".into());
            }
        }
        if prev.http != next.http {
            self.move_http(prev.http.clone(), next.http.clone());
            done.applied
                .push(format!("http moving to {}", next.http.listen));
        }

        if prev.led != next.led {
            // The LED is opened once at start (a GPIO pin is claimed for the process).
            done.restart_required.push("led".into());
        }
        if prev.board != next.board {
            // The profile's defaults were read into every path at start.
            done.restart_required.push("board".into());
        }
        if prev.log_level != next.log_level {
            crate::logger::set_level(&next.log_level);
            done.applied.push(format!("log_level {}", next.log_level));
        }
        if prev.users != next.users {
            self.rtsp.set_users(&next.users);
            done.applied.push("users".into());
        }
        let gone: Vec<String> = st
            .paths
            .keys()
            .filter(|n| !next.paths.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(served) = st.paths.remove(&name) {
                self.stop_path(&name, served);
                log::info!("path {name}: removed");
                done.applied.push(format!("paths.{name} removed"));
            }
        }
        for (name, cfg) in &next.paths {
            let Some(served) = st.paths.get_mut(name) else {
                match self.start_path(name, cfg, next) {
                    Ok(served) => {
                        log::info!("path {name}: added");
                        for url in reachable_urls(self.rtsp_listen(next), name) {
                            log::info!("serving {url}");
                        }
                        st.paths.insert(name.clone(), served);
                        done.applied.push(format!("paths.{name} added"));
                    }
                    Err(e) => {
                        log::error!("path {name}: cannot start: {e}");
                        done.applied
                            .push(format!("paths.{name} failed to start: {e}"));
                    }
                }
                continue;
            };
            let old = served.config.clone();
            if &old == cfg && cfg.recording.over(&next.recording) == served.recording_config {
                continue;
            }
            let source_changed = old.source != cfg.source
                || old.geometry() != cfg.geometry()
                || old.pixel_format != cfg.pixel_format;
            let encoder_changed =
                old.bitrate_kbps != cfg.bitrate_kbps || old.idr_interval_s != cfg.idr_interval_s;
            if source_changed {
                served.pipeline.reconfigure(
                    Some(crate::source::factory(name, cfg)),
                    crate::source::encoder_settings(cfg),
                );
                done.applied.push(format!("paths.{name} source reopened"));
            } else if encoder_changed {
                served
                    .pipeline
                    .reconfigure(None, crate::source::encoder_settings(cfg));
                done.applied.push(format!("paths.{name} encoder restarted"));
            }
            let recording_config = cfg.recording.over(&next.recording);
            if recording_config != served.recording_config || prev.data_dir != next.data_dir {
                if let Some(r) = served.recording.take() {
                    r.recorder.stop();
                }
                served.recording =
                    self.start_recording(name, &served.media, &recording_config, &next.data_dir);
                served.recording_config = recording_config;
                done.applied.push(format!(
                    "paths.{name} recording {}",
                    if served.recording.is_some() {
                        "started"
                    } else {
                        "off"
                    }
                ));
            }
            if old.max_readers != cfg.max_readers {
                self.rtsp.set_max_readers(name, cfg.max_readers);
                done.applied.push(format!("paths.{name}.max_readers"));
            }
            served.config = cfg.clone();
            self.monitor.watch(probe(name, cfg, served));
        }
        st.run = next.clone();
        done
    }

    fn rtsp_listen(&self, cfg: &Config) -> SocketAddr {
        SocketAddr::new(cfg.rtsp.listen.ip(), self.rtsp.local_port())
    }

    /// The stores of the paths that record (for the retention thread).
    fn stores(&self) -> Vec<Arc<PathStore>> {
        self.state()
            .paths
            .values()
            .filter_map(|p| p.recording.as_ref().map(|r| r.store.clone()))
            .collect()
    }

    fn stop_all(&self) {
        let mut st = self.state();
        let paths = std::mem::take(&mut st.paths);
        for (name, served) in paths {
            self.stop_path(&name, served);
        }
    }
}

impl Supervisor {
    /// The recordings root, the store and the segment being written, for a recording path
    /// and a file named as one of its segments (paths may share a directory).
    fn recording_of(
        &self,
        path: &str,
        file: &str,
    ) -> Option<(PathBuf, Arc<PathStore>, Option<PathBuf>)> {
        let st = self.state();
        let served = st.paths.get(path)?;
        let rec = served.recording.as_ref()?;
        if !rec.store.names_a_segment(std::path::Path::new(file)) {
            return None;
        }
        let root = st.run.data_dir.join("recordings");
        let writing = rec.recorder.stats().current().map(|rel| root.join(rel));
        Some((root, rec.store.clone(), writing))
    }
}

impl Recordings for Supervisor {
    fn list(&self) -> Vec<PathRecordings> {
        let stores: Vec<(String, Arc<PathStore>, Option<PathBuf>)> = {
            let st = self.state();
            st.paths
                .iter()
                .filter_map(|(name, p)| {
                    let r = p.recording.as_ref()?;
                    Some((name.clone(), r.store.clone(), r.recorder.stats().current()))
                })
                .collect()
        };
        stores
            .into_iter()
            .map(|(name, store, writing)| {
                let mut segments = store.segments();
                segments.sort_by_key(|s| s.name.sequence);
                // Files are named relative to the path's directory (the template's).
                let prefix = store.scan_dir();
                PathRecordings {
                    segments: segments
                        .into_iter()
                        .filter_map(|s| {
                            let file = s.path.strip_prefix(&prefix).ok()?;
                            Some(SegmentEntry {
                                file: file.to_string_lossy().into_owned(),
                                start: s
                                    .name
                                    .start
                                    .map(|w| crate::logger::utc_timestamp(w.earliest)),
                                clock_trusted: s.name.synced,
                                duration_s: s.duration.as_secs_f64(),
                                bytes: s.bytes,
                                recording: writing.as_deref() == Some(s.path.as_path()),
                            })
                        })
                        .collect(),
                    path: name,
                }
            })
            .collect()
    }

    fn open(&self, path: &str, file: &str) -> Result<(std::fs::File, u64), RecordingError> {
        let (root, store, _) = self
            .recording_of(path, file)
            .ok_or(RecordingError::NotFound)?;
        library::open_segment(&root, store.template(), path, file)
    }

    fn delete(&self, path: &str, file: &str) -> Result<(), RecordingError> {
        let (root, store, writing) = self
            .recording_of(path, file)
            .ok_or(RecordingError::NotFound)?;
        library::delete_segment(&root, store.template(), path, file, writing.as_deref())
    }
}

impl Control for Supervisor {
    fn config(&self) -> Config {
        self.state().file.clone()
    }

    fn admin_hash(&self) -> Option<String> {
        self.admin_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: Change<'_>) -> Result<(Config, Applied), ControlError> {
        let mut st = self.state();
        let file = change(&st.file)?;
        file.validate()?;
        let run = self.overrides.apply(&file)?;
        if file == st.file {
            return Ok((file, Applied::default()));
        }
        file.save(&self.file_path).map_err(|e| {
            ControlError::Save(format!(
                "cannot save the config to {}: {e}",
                self.file_path.display()
            ))
        })?;
        log::info!("config: saved {}", self.file_path.display());
        *self.admin_hash.write().unwrap_or_else(|e| e.into_inner()) =
            file.admin.password_hash.clone();
        let applied = self.apply(&mut st, &run);
        st.file = file.clone();
        Ok((file, applied))
    }
}

async fn serve(
    file: ConfigFile,
    overrides: Overrides,
    cfg: Config,
    startup: Startup,
) -> Result<(), AppError> {
    let server = RtspServer::bind(&cfg.rtsp, &cfg.users)
        .await
        .map_err(AppError::Rtsp)?;
    let listen = server.local_addr().map_err(AppError::Rtsp)?;
    let ctx = server.context().clone();
    let monitor = Monitor::new(Vec::new(), ctx.clone());
    let board_led = startup
        .board
        .as_ref()
        .and_then(|b| crate::led::from_board(&b.led));
    monitor.set_startup(startup.board, startup.first_boot);
    let supervisor = Arc::new_cyclic(|me| Supervisor {
        me: me.clone(),
        http: Mutex::new(None),
        login: Arc::new(Login::default()),
        admin_hash: std::sync::RwLock::new(file.config.admin.password_hash.clone()),
        file_path: file.path,
        overrides,
        rtsp: ctx.clone(),
        monitor: monitor.clone(),
        runtime: tokio::runtime::Handle::current(),
        state: Mutex::new(State {
            file: file.config,
            run: cfg.clone(),
            paths: BTreeMap::new(),
        }),
    });
    {
        let mut st = supervisor.state();
        for (name, pcfg) in &cfg.paths {
            let served =
                supervisor
                    .start_path(name, pcfg, &cfg)
                    .map_err(|error| AppError::Pipeline {
                        path: name.clone(),
                        error,
                    })?;
            st.paths.insert(name.clone(), served);
        }
    }
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let retention = match spawn_retention(Arc::downgrade(&supervisor), sampler_stop.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!("recordings: cannot start the retention thread: {e}");
            None
        }
    };
    let led = start_led(&cfg, board_led.as_ref(), &monitor);
    let sampler = match monitor.spawn_sampler(sampler_stop.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!(
                "status: cannot start the sampler thread: {e}; fps and bitrate stay unmeasured"
            );
            None
        }
    };
    match start_http(
        &cfg.http,
        monitor.clone(),
        supervisor.clone(),
        supervisor.login.clone(),
        supervisor.clone(),
    ) {
        Ok(h) => *supervisor.http() = Some(h),
        Err(e) => log::error!("http: {e}; the HTTP API is off, RTSP keeps serving"),
    }
    let systemd = crate::notify::Systemd::from_env();
    let watchdog = systemd.spawn(monitor.clone(), tokio::runtime::Handle::current());
    if let Some(udp) = &ctx.udp {
        let (rtp, rtcp) = udp.ports();
        log::info!("rtsp: listening on {listen} (TCP), UDP ports {rtp}-{rtcp}");
    } else {
        log::info!("rtsp: listening on {listen} (TCP only)");
    }
    let auth = if cfg.users.is_empty() {
        "no login needed"
    } else {
        "login required"
    };
    for name in cfg.paths.keys() {
        for url in reachable_urls(listen, name) {
            log::info!("serving {url} ({auth})");
        }
    }
    server.run(shutdown_signal()).await;
    systemd.stopping();
    log::info!("shutting down");
    if let Some(l) = &led {
        l.stopping();
    }
    if let Some(t) = watchdog {
        let _ = t.join();
    }
    let http = supervisor.http().take();
    if let Some(h) = http {
        h.stop();
    }
    supervisor.stop_all();
    sampler_stop.store(true, Ordering::Relaxed);
    if let Some(t) = sampler {
        let _ = t.join();
    }
    if let Some(t) = retention {
        let _ = t.join();
    }
    // Last: off and restored once everything else has stopped.
    if let Some(l) = led {
        l.finish();
    }
    Ok(())
}

/// Opens the status LED (the config's, else the board profile's) and starts its thread. A
/// failure is logged and shown in status;
/// the appliance serves on without it (video is its job).
fn start_led(
    cfg: &Config,
    board_led: Option<&crate::config::LedConfig>,
    monitor: &Arc<Monitor>,
) -> Option<crate::led::LedThread> {
    let led_cfg = cfg.led_or(board_led);
    let driver = match crate::led::open(&led_cfg) {
        Ok(d) => d,
        Err(e) => {
            log::error!("led: {e}; the status LED is off");
            monitor.set_led(crate::status::LedStatus {
                driver: led_cfg.driver.as_str().to_string(),
                pattern: None,
                error: Some(e.to_string()),
            });
            return None;
        }
    };
    let name = driver.driver();
    match crate::led::LedThread::spawn(driver, monitor.clone()) {
        Ok(t) => {
            if name != "none" {
                log::info!("led: {name} status LED on");
            }
            Some(t)
        }
        Err(e) => {
            log::error!("led: cannot start the LED thread: {e}");
            None
        }
    }
}

/// Starts the HTTP API. A failure is logged and the appliance runs on without it: video
/// is the appliance's job, and a taken port 8080 must not take the cameras off the air.
fn start_http(
    cfg: &HttpConfig,
    monitor: Arc<Monitor>,
    control: Arc<dyn Control>,
    login: Arc<Login>,
    recordings: Arc<dyn Recordings>,
) -> std::io::Result<HttpServer> {
    let ctx = HttpContext {
        monitor,
        control,
        login,
        // Wired when the recorder joins the app.
        recordings: Some(recordings),
        cameras: Arc::new(|| {
            serde_json::to_value(v4l2::list_cameras()).unwrap_or(serde_json::Value::Null)
        }),
    };
    let h = crate::http::start(cfg, ctx)?;
    log::info!("http: listening on {}", h.local_addr());
    Ok(h)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
