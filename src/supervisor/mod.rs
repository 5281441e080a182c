//! The supervisor: the running paths, and config changes applied live.
//!
//! Owns: the served paths (hub, pipeline, RTSP stream, recorder, status probe, each
//! started and stopped here), `Control` for the HTTP API (a change is validated, saved,
//! planned by the pure `plan` and carried out; snapshots of streaming paths through
//! `snapshot::Snapshots`), `Recordings` (the segments of the paths that record), moving the
//! HTTP API, and the threads that stop what a change removed.
//!
//! Locks: `changes` serialises changes (validate, save, plan, apply); `state` guards what
//! runs and is held only for short in-memory steps, never across file I/O or a stop. A path
//! or recorder that a change removes is stopped by a thread of its own ("stop-<path>"), so
//! a camera or card that hangs while stopping never holds up status, the API's reads or the
//! next change; shutdown waits for those threads a bounded time.
//! Does not own: the runtime, the listeners and the shutdown order (`app`), nor any
//! protocol or media logic.

mod live;
pub mod plan;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::SourceSpec;
use crate::config::{Config, HttpConfig, Overrides, PathConfig, RecordingConfig, VideoDefaults};
use crate::control::{
    Applied, Change, Control, ControlError, Feed, FeedError, FeedFormat, Jpeg, LiveViews,
    PathRecordings, RecordingError, Recordings, SegmentEntry, SnapshotError,
};
use crate::http::login::Login;
use crate::http::HttpServer;
use crate::hub::MediaPath;
use crate::record::attach::{self, RecorderView, Recording};
use crate::record::library;
use crate::record::store::PathStore;
use crate::rtsp::server::ServerContext;
use crate::snapshot::Snapshots;
use crate::source::file::FileSource;
use crate::source::pipeline::Pipeline;
use crate::source::publisher::PublisherSlot;
use crate::source::relay::{Relay, RelaySettings};
use crate::status::{Monitor, PathProbe, SourceProbe, SourceState};
use plan::{plan, Action, RunningPath};

/// Starts the HTTP API on an address (`app` knows how); used when `http.listen` changes.
pub type HttpStarter =
    dyn Fn(&HttpConfig, Arc<Supervisor>) -> std::io::Result<HttpServer> + Send + Sync;

/// What feeds a served path's hub.
enum RunningSource {
    /// A camera or the test pattern, through the capture + encode thread.
    Pipeline(Pipeline),
    /// Whoever publishes over RTSP.
    Publisher(Arc<PublisherSlot>),
    /// Another RTSP server's stream, pulled.
    Relay(Relay),
    /// An MP4 file, looped.
    File(FileSource),
}

/// Which kind of source a path's config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pipeline,
    Publisher,
    Relay,
    File,
}

fn kind_of(cfg: &PathConfig) -> Kind {
    match cfg.source_spec() {
        Ok(SourceSpec::Publisher) => Kind::Publisher,
        Ok(SourceSpec::Relay(_)) => Kind::Relay,
        Ok(SourceSpec::File(_)) => Kind::File,
        _ => Kind::Pipeline,
    }
}

impl RunningSource {
    /// Starts the source `cfg` names on `media`, registering a publisher slot with RTSP.
    fn start(
        name: &str,
        cfg: &PathConfig,
        media: &Arc<MediaPath>,
        rtsp: &ServerContext,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<RunningSource> {
        Ok(match cfg.source_spec() {
            Ok(SourceSpec::Publisher) => {
                let slot = PublisherSlot::new(media.clone(), cfg.override_publisher);
                rtsp.set_publisher(slot.clone());
                RunningSource::Publisher(slot)
            }
            Ok(SourceSpec::Relay(url)) => RunningSource::Relay(Relay::start(
                media.clone(),
                RelaySettings {
                    url,
                    transport: cfg.rtsp_transport,
                    on_demand: cfg.source_on_demand.then_some((
                        cfg.source_on_demand_start_timeout.0,
                        cfg.source_on_demand_close_after.0,
                    )),
                },
                runtime,
            )),
            Ok(SourceSpec::File(path)) => {
                RunningSource::File(FileSource::start(media.clone(), path)?)
            }
            _ => RunningSource::Pipeline(Pipeline::spawn(
                media.clone(),
                crate::source::factory(name, cfg),
                crate::source::encoder_settings(cfg),
            )?),
        })
    }

    fn stats(&self) -> Arc<dyn SourceProbe> {
        match self {
            RunningSource::Pipeline(p) => p.stats().clone(),
            RunningSource::Publisher(s) => s.stats().clone(),
            RunningSource::Relay(r) => r.stats().clone(),
            RunningSource::File(f) => f.stats().clone(),
        }
    }

    /// Stops it (a pipeline's thread is joined: call it off the state lock).
    fn stop(self) {
        match self {
            RunningSource::Pipeline(p) => p.stop(),
            // Its publisher was told to leave when the slot left RTSP's registry.
            RunningSource::Publisher(slot) => slot.close(),
            RunningSource::Relay(r) => r.stop(),
            RunningSource::File(f) => f.stop(),
        }
    }
}

/// A path being served: its source and the settings it runs with.
struct ServedPath {
    media: Arc<MediaPath>,
    source: RunningSource,
    config: PathConfig,
    /// The recorder and its store, when the path records.
    recording: Option<Recording>,
    /// The recording settings it was started with (global defaults applied).
    recording_config: RecordingConfig,
}

impl ServedPath {
    fn stop(self) {
        self.source.stop();
        if let Some(r) = self.recording {
            r.recorder.stop();
        }
    }
}

/// What runs.
struct State {
    /// The config file's document.
    file: Config,
    /// What runs: `file` with the board's defaults and the command-line overrides.
    run: Config,
    paths: BTreeMap<String, ServedPath>,
}

/// Owns the running paths and applies config changes (`Control`) live.
pub struct Supervisor {
    file_path: PathBuf,
    overrides: Overrides,
    /// The board profile's defaults for what paths leave unset.
    defaults: VideoDefaults,
    rtsp: Arc<ServerContext>,
    monitor: Arc<Monitor>,
    runtime: tokio::runtime::Handle,
    /// Held by one change at a time, from reading the document to the last start.
    changes: Mutex<()>,
    state: Mutex<State>,
    /// The HTTP server, replaced when `http.listen` changes.
    http: Mutex<Option<HttpServer>>,
    start_http: Box<HttpStarter>,
    /// Kept across HTTP restarts, so a move does not reset the failed-login record.
    pub login: Arc<Login>,
    /// Threads stopping what changes removed (joined, a bounded time, at shutdown).
    stopping: Mutex<Vec<JoinHandle<()>>>,
    /// JPEG snapshots of the paths, cached.
    snapshots: Snapshots,
    /// Itself, for the threads that move HTTP (they must outlive the request that asked).
    me: Weak<Supervisor>,
    /// Live (browser) viewers and their paths' live streams.
    live: live::LiveRegistry,
    /// The admin's unsaved relays of a URL (the stream viewer's `?url=`).
    url_relays: live::UrlRelays,
}

/// How long shutdown waits for paths that are still stopping after a change.
const STOPPING_WAIT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn probe(name: &str, served: &ServedPath) -> PathProbe {
    PathProbe {
        name: name.to_string(),
        source: crate::config::masked_source(&served.config.source),
        media: served.media.clone(),
        stats: served.source.stats(),
        recorder: served.recording.as_ref().map(RecorderView::of),
    }
}

impl Supervisor {
    /// A supervisor with nothing running yet (`start_paths` starts the config's paths).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        file_path: PathBuf,
        file: Config,
        run: Config,
        overrides: Overrides,
        defaults: VideoDefaults,
        rtsp: Arc<ServerContext>,
        monitor: Arc<Monitor>,
        start_http: Box<HttpStarter>,
    ) -> Arc<Supervisor> {
        Arc::new_cyclic(|me| Supervisor {
            file_path,
            overrides,
            defaults,
            rtsp,
            monitor,
            runtime: tokio::runtime::Handle::current(),
            changes: Mutex::new(()),
            state: Mutex::new(State {
                file,
                run,
                paths: BTreeMap::new(),
            }),
            http: Mutex::new(None),
            start_http,
            login: Arc::new(Login::default()),
            stopping: Mutex::new(Vec::new()),
            snapshots: Snapshots::default(),
            me: me.clone(),
            live: live::LiveRegistry::default(),
            url_relays: live::UrlRelays::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Starts every configured path; the first that cannot start is the error.
    pub fn start_paths(&self) -> Result<(), (String, std::io::Error)> {
        let run = self.state().run.clone();
        for (name, cfg) in &run.paths {
            let served = self
                .start_path(name, cfg, &run)
                .map_err(|e| (name.clone(), e))?;
            self.monitor.watch(probe(name, &served));
            self.state().paths.insert(name.clone(), served);
        }
        Ok(())
    }

    /// Starts serving one path: hub, source, RTSP stream, recording.
    fn start_path(
        &self,
        name: &str,
        cfg: &PathConfig,
        run: &Config,
    ) -> std::io::Result<ServedPath> {
        let media = MediaPath::new(name);
        apply_keyframe_policy(&media, cfg);
        let source = RunningSource::start(name, cfg, &media, &self.rtsp, &self.runtime)?;
        {
            // RTP streams run on the runtime; this may be called from an HTTP thread.
            let _in_runtime = self.runtime.enter();
            self.rtsp.add_path(media.clone(), cfg.max_readers);
        }
        let recording_config = cfg.recording.over(&run.recording);
        let recording = attach::start(
            name,
            &media,
            &recording_config,
            &run.data_dir,
            &self.runtime,
        );
        Ok(ServedPath {
            media,
            source,
            config: cfg.clone(),
            recording,
            recording_config,
        })
    }

    /// Runs `stop` on a thread of its own: a camera or card that hangs while stopping must
    /// not hold up whoever asked.
    fn stop_in_background(&self, what: String, stop: impl FnOnce() + Send + 'static) {
        let name = format!("stop-{what}");
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let t0 = Instant::now();
                stop();
                log::debug!("{what}: stopped in {} ms", t0.elapsed().as_millis());
            });
        match spawned {
            Ok(t) => {
                let mut stopping = lock(&self.stopping);
                stopping.retain(|t| !t.is_finished());
                stopping.push(t);
            }
            // The closure is gone with the failed spawn: dropping a pipeline stops it too.
            Err(e) => log::error!("{name}: cannot start a thread: {e}"),
        }
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
                let old = lock(&me.http).take();
                if let Some(old) = old {
                    old.stop();
                }
                let server = match (me.start_http)(&next, me.clone()) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        log::error!("http: {e}; staying on {}", prev.listen);
                        (me.start_http)(&prev, me.clone())
                            .map_err(|e| log::error!("http: {e}; the HTTP API is off"))
                            .ok()
                    }
                };
                *lock(&me.http) = server;
            });
        if let Err(e) = moved {
            log::error!("http: cannot move to {to}: {e}");
        }
    }

    /// Starts the HTTP API at start-up. A failure is logged and the appliance runs on
    /// without it: video is its job, and a taken port must not take the cameras off the air.
    pub fn start_http(self: &Arc<Self>) {
        let cfg = self.state().run.http.clone();
        match (self.start_http)(&cfg, self.clone()) {
            Ok(h) => *lock(&self.http) = Some(h),
            Err(e) => log::error!("http: {e}; the HTTP API is off, RTSP keeps serving"),
        }
    }

    /// Stops the HTTP API (first at shutdown).
    pub fn stop_http(&self) {
        let http = lock(&self.http).take();
        if let Some(h) = http {
            h.stop();
        }
    }

    /// The config this run uses for a file's document: the board's defaults for what its
    /// paths leave unset, then the command-line overrides (validated).
    fn effective(&self, file: &Config) -> Result<Config, ControlError> {
        Ok(self.overrides.apply(&file.with_defaults(&self.defaults))?)
    }

    /// Brings what runs to `next`: plans under the state lock, applies the quick steps
    /// there, then stops (on threads of their own) and starts outside it.
    fn apply(&self, next: &Config) -> Applied {
        let mut done = Applied::default();
        let mut stops: Vec<(String, Box<ServedPath>)> = Vec::new();
        let mut recorder_stops: Vec<(String, Recording)> = Vec::new();
        let mut source_stops: Vec<(String, RunningSource)> = Vec::new();
        let mut starts: Vec<String> = Vec::new();
        let mut recorder_starts: Vec<String> = Vec::new();
        let mut move_http = false;
        let prev_http;
        {
            let mut st = self.state();
            let running: BTreeMap<String, RunningPath> = st
                .paths
                .iter()
                .map(|(n, p)| {
                    let run = RunningPath {
                        config: p.config.clone(),
                        recording: p.recording_config.clone(),
                    };
                    (n.clone(), run)
                })
                .collect();
            let actions = plan(&st.run, next, &running);
            prev_http = st.run.http.clone();
            for action in actions {
                self.step(&mut st, next, action, &mut done, |what| match what {
                    Deferred::Stop(n, p) => stops.push((n, p)),
                    Deferred::StopSource(n, s) => source_stops.push((n, s)),
                    Deferred::StopRecorder(n, r) => recorder_stops.push((n, r)),
                    Deferred::Start(n) => starts.push(n),
                    Deferred::StartRecorder(n) => recorder_starts.push(n),
                    Deferred::MoveHttp => move_http = true,
                });
            }
            st.run = next.clone();
        }
        if move_http {
            self.move_http(prev_http, next.http.clone());
        }
        for (name, served) in stops {
            self.stop_in_background(format!("path {name}"), move || served.stop());
        }
        for (name, source) in source_stops {
            self.stop_in_background(format!("source {name}"), move || source.stop());
        }
        for (name, rec) in recorder_stops {
            self.stop_in_background(format!("recorder {name}"), move || rec.recorder.stop());
        }
        for name in recorder_starts {
            let Some(cfg) = next.paths.get(&name) else {
                continue;
            };
            let media = match self.state().paths.get(&name) {
                Some(p) => p.media.clone(),
                None => continue,
            };
            let rec_cfg = cfg.recording.over(&next.recording);
            let recording = attach::start(&name, &media, &rec_cfg, &next.data_dir, &self.runtime);
            let records = recording.is_some();
            let mut st = self.state();
            if let Some(served) = st.paths.get_mut(&name) {
                served.recording = recording;
                served.recording_config = rec_cfg;
                self.monitor.watch(probe(&name, served));
            }
            done.applied.push(format!(
                "paths.{name} recording {}",
                if records { "started" } else { "off" }
            ));
        }
        for name in starts {
            let Some(cfg) = next.paths.get(&name) else {
                continue;
            };
            match self.start_path(&name, cfg, next) {
                Ok(served) => {
                    log::info!("path {name}: added");
                    for url in crate::rtsp::server::reachable_urls(self.rtsp_listen(next), &name) {
                        log::info!("serving {url}");
                    }
                    self.monitor.watch(probe(&name, &served));
                    self.state().paths.insert(name.clone(), served);
                    done.applied.push(format!("paths.{name} added"));
                }
                Err(e) => {
                    log::error!("path {name}: cannot start: {e}");
                    done.applied
                        .push(format!("paths.{name} failed to start: {e}"));
                }
            }
        }
        done
    }

    /// One planned step, under the state lock: quick in-memory work happens here; stops and
    /// starts are handed to `defer`.
    fn step(
        &self,
        st: &mut State,
        next: &Config,
        action: Action,
        done: &mut Applied,
        mut defer: impl FnMut(Deferred),
    ) {
        match action {
            Action::RestartRequired(field) => done.restart_required.push(field.to_string()),
            Action::RtspSettings => {
                self.rtsp.apply_settings(&next.rtsp, &next.users);
                done.applied.push("rtsp settings".into());
            }
            Action::MoveHttp => {
                defer(Deferred::MoveHttp);
                done.applied
                    .push(format!("http moving to {}", next.http.listen));
            }
            Action::LogLevel => {
                crate::logger::set_level(&next.log_level);
                done.applied.push(format!("log_level {}", next.log_level));
            }
            Action::Users => {
                self.rtsp.set_users(&next.users);
                done.applied.push("users".into());
            }
            Action::StopPath(name) => {
                if let Some(served) = st.paths.remove(&name) {
                    // Off the air at once; the threads finish in the background.
                    self.rtsp.remove_path(&name);
                    self.rtsp.remove_publisher(&name);
                    self.monitor.unwatch(&name);
                    log::info!("path {name}: removed");
                    done.applied.push(format!("paths.{name} removed"));
                    defer(Deferred::Stop(name, Box::new(served)));
                }
            }
            Action::StartPath(name) => defer(Deferred::Start(name)),
            Action::ReopenSource(name) => {
                if let (Some(served), Some(cfg)) = (st.paths.get_mut(&name), next.paths.get(&name))
                {
                    match (&served.source, kind_of(cfg)) {
                        // A camera or pattern to another: the same thread reopens.
                        (RunningSource::Pipeline(p), Kind::Pipeline) => p.reconfigure(
                            Some(crate::source::factory(&name, cfg)),
                            crate::source::encoder_settings(cfg),
                        ),
                        (RunningSource::Publisher(_), Kind::Publisher) => {}
                        // Another kind: a new source on the same hub (viewers stay).
                        _ => {
                            if matches!(served.source, RunningSource::Publisher(_)) {
                                self.rtsp.remove_publisher(&name);
                            }
                            match RunningSource::start(
                                &name,
                                cfg,
                                &served.media,
                                &self.rtsp,
                                &self.runtime,
                            ) {
                                Ok(new) => {
                                    let old = std::mem::replace(&mut served.source, new);
                                    defer(Deferred::StopSource(name.clone(), old));
                                }
                                Err(e) => {
                                    log::error!("path {name}: cannot start its new source: {e}")
                                }
                            }
                        }
                    }
                    done.applied.push(format!("paths.{name} source reopened"));
                }
            }
            Action::RestartEncoder(name) => {
                if let (Some(served), Some(cfg)) = (st.paths.get(&name), next.paths.get(&name)) {
                    if let RunningSource::Pipeline(p) = &served.source {
                        p.reconfigure(None, crate::source::encoder_settings(cfg));
                        done.applied.push(format!("paths.{name} encoder restarted"));
                    }
                }
            }
            Action::RestartRecording(name) => {
                if let Some(served) = st.paths.get_mut(&name) {
                    if let Some(r) = served.recording.take() {
                        defer(Deferred::StopRecorder(name.clone(), r));
                    }
                    defer(Deferred::StartRecorder(name));
                }
            }
            Action::SetMaxReaders(name) => {
                if let Some(cfg) = next.paths.get(&name) {
                    self.rtsp.set_max_readers(&name, cfg.max_readers);
                    done.applied.push(format!("paths.{name}.max_readers"));
                }
            }
            Action::Refresh(name) => {
                if let (Some(served), Some(cfg)) = (st.paths.get_mut(&name), next.paths.get(&name))
                {
                    if let RunningSource::Publisher(slot) = &served.source {
                        slot.set_override(cfg.override_publisher);
                    }
                    apply_keyframe_policy(&served.media, cfg);
                    served.config = cfg.clone();
                    self.monitor.watch(probe(&name, served));
                }
            }
        }
    }

    fn rtsp_listen(&self, cfg: &Config) -> SocketAddr {
        SocketAddr::new(cfg.rtsp.listen.ip(), self.rtsp.local_port())
    }

    /// The stores of the paths that record (for the retention thread).
    pub fn stores(&self) -> Vec<Arc<PathStore>> {
        self.state()
            .paths
            .values()
            .filter_map(|p| p.recording.as_ref().map(|r| r.store.clone()))
            .collect()
    }

    /// Stops every path (shutdown), then waits a bounded time for those a change was still
    /// stopping.
    pub fn stop_all(&self) {
        let _no_change = lock(&self.changes);
        let paths = std::mem::take(&mut self.state().paths);
        for (name, served) in paths {
            self.rtsp.remove_path(&name);
            self.rtsp.remove_publisher(&name);
            self.monitor.unwatch(&name);
            served.stop();
        }
        let deadline = Instant::now() + STOPPING_WAIT;
        let threads = std::mem::take(&mut *lock(&self.stopping));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!(
                    "{}: still stopping after {} s; not waiting for it",
                    t.thread().name().unwrap_or("stop"),
                    STOPPING_WAIT.as_secs()
                );
            }
        }
    }

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

/// Work a step hands back to be done outside the state lock.
enum Deferred {
    Stop(String, Box<ServedPath>),
    StopSource(String, RunningSource),
    StopRecorder(String, Recording),
    Start(String),
    StartRecorder(String),
    MoveHttp,
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
    /// The config file's document, with the board's defaults shown for what its paths
    /// leave unset (they stay unset in the file).
    fn config(&self) -> Config {
        self.state().file.with_defaults(&self.defaults)
    }

    fn admin_hash(&self) -> Option<String> {
        self.state().file.admin.password_hash.clone()
    }

    fn update(&self, change: Change<'_>) -> Result<(Config, Applied), ControlError> {
        let _one = lock(&self.changes);
        let current = self.state().file.clone();
        let file = change(&current)?;
        file.validate()?;
        let run = self.effective(&file)?;
        if file == current {
            return Ok((file, Applied::default()));
        }
        file.save(&self.file_path).map_err(|e| {
            ControlError::Save(format!(
                "cannot save the config to {}: {e}",
                self.file_path.display()
            ))
        })?;
        log::info!("config: saved {}", self.file_path.display());
        self.state().file = file.clone();
        let applied = self.apply(&run);
        Ok((file, applied))
    }

    fn snapshot(&self, path: &str, width: Option<u32>) -> Result<Jpeg, SnapshotError> {
        let (media, stats) = {
            let st = self.state();
            let served = st
                .paths
                .get(path)
                .ok_or_else(|| SnapshotError::UnknownPath(path.to_string()))?;
            (served.media.clone(), served.source.stats())
        };
        // Outside the state lock: decoding and encoding take milliseconds.
        match stats.sample().state {
            SourceState::Streaming => self.snapshots.take(&media, width),
            other => Err(SnapshotError::NotStreaming(other.to_string())),
        }
    }
}

impl LiveViews for Supervisor {
    fn live(
        &self,
        path: &str,
        format: FeedFormat,
        peer: IpAddr,
    ) -> Result<Box<dyn Feed>, FeedError> {
        let (media, limits) = {
            let st = self.state();
            let served = st.paths.get(path).ok_or(FeedError::NotFound)?;
            (served.media.clone(), live_limits(&st.run.http))
        };
        // A path's first viewer starts its muxer task on the runtime; this may be called
        // from a blocking thread.
        let _in_runtime = self.runtime.enter();
        self.live.viewer(&media, live_format(format), peer, limits)
    }

    fn live_url(
        &self,
        url: &str,
        format: FeedFormat,
        peer: IpAddr,
    ) -> Result<Box<dyn Feed>, FeedError> {
        let limits = live_limits(&self.state().run.http);
        let _in_runtime = self.runtime.enter();
        let relay = self.url_relays.relay(url, &self.runtime)?;
        let feed = self
            .live
            .viewer(&relay.media, live_format(format), peer, limits)?;
        Ok(Box::new(live::RelayFeed {
            feed,
            _relay: relay,
        }))
    }
}

fn live_limits(http: &HttpConfig) -> live::Limits {
    live::Limits {
        total: http.max_live_viewers,
        per_client: http.max_live_viewers_per_client,
    }
}

fn live_format(format: FeedFormat) -> crate::live::Format {
    match format {
        FeedFormat::Fmp4 => crate::live::Format::Fmp4,
        FeedFormat::MpegTs => crate::live::Format::MpegTs,
    }
}

/// The path's key-frame policy (forced-IDR rate, fast start), applied live.
fn apply_keyframe_policy(media: &MediaPath, cfg: &PathConfig) {
    let k = media.frames.keyframe_request();
    k.set_min_interval(cfg.forced_idr_min_interval.0);
    k.set_fast_start(cfg.fast_start);
}
