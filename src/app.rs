//! The appliance's wiring: builds every subsystem from a validated config, runs them, and
//! tears them down in order on one shutdown signal.
//!
//! Owns: the tokio runtime, the RTSP listener, the status monitor, the sampler, retention,
//! LED and watchdog threads, the HTTP server's construction (wired to the monitor and the
//! supervisor only here), and the shutdown order: stop accepting, LED dark, HTTP stopped,
//! paths and recorders stopped (fragments finished and synced), threads joined, LED off.
//! Does not own: the running paths and config changes (`supervisor`), nor any protocol or
//! media logic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::{Config, ConfigFile, HttpConfig, Overrides, VideoDefaults};
use crate::control::{Control, Recordings};
use crate::http::{HttpContext, HttpServer};
use crate::record::store::SystemClock;
use crate::rtsp::server::{reachable_urls, RtspServer};
use crate::source::v4l2;
use crate::status::Monitor;
use crate::supervisor::Supervisor;

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
    let defaults = startup
        .board
        .as_ref()
        .map_or(VideoDefaults::BUILT_IN, |b| b.video_defaults);
    monitor.set_startup(startup.board, startup.first_boot);
    let http_monitor = monitor.clone();
    let http_rt = tokio::runtime::Handle::current();
    let supervisor = Supervisor::new(
        file.path,
        file.config,
        cfg.clone(),
        overrides,
        defaults,
        ctx.clone(),
        monitor.clone(),
        Box::new(move |http: &HttpConfig, s: Arc<Supervisor>| {
            start_http(&http_rt, http, http_monitor.clone(), s)
        }),
    );
    supervisor
        .start_paths()
        .map_err(|(path, error)| AppError::Pipeline { path, error })?;
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
    supervisor.start_http();
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
    supervisor.stop_http();
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

/// Starts the HTTP API on `cfg.listen`, wired to the monitor and the supervisor.
fn start_http(
    rt: &tokio::runtime::Handle,
    cfg: &HttpConfig,
    monitor: Arc<Monitor>,
    supervisor: Arc<Supervisor>,
) -> std::io::Result<HttpServer> {
    let control: Arc<dyn Control> = supervisor.clone();
    let recordings: Arc<dyn Recordings> = supervisor.clone();
    let live: Arc<dyn crate::control::LiveViews> = supervisor.clone();
    let ctx = HttpContext {
        monitor,
        control,
        login: supervisor.login.clone(),
        recordings: Some(recordings),
        live: Some(live),
        cameras: Arc::new(|| {
            serde_json::to_value(v4l2::list_cameras()).unwrap_or(serde_json::Value::Null)
        }),
    };
    let h = crate::http::start(rt, cfg, ctx)?;
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
