//! The supervisor: builds every subsystem from a validated config, runs them, and tears them
//! down in order on one shutdown signal.
//!
//! Owns: the tokio runtime, the per-path pipelines (one thread and one source each, nothing
//! shared between paths, so two cameras serve two paths at once), the RTSP server, the
//! status monitor and the HTTP server (wired to each other only here), and the mapping from a path's `source` to a frame source (resolving `auto` once at start). Does not own: any protocol or media logic.

use crate::capture::format::ModeRequest;
use crate::capture::pattern::TestPattern;
use crate::capture::v4l2::{self, V4l2Source};
use crate::capture::{CaptureError, FrameSource, PixelFormat};
use crate::config::{Config, PathConfig, SourceSpec};
use crate::encode::EncoderSettings;
use crate::http::{HttpContext, HttpServer};
use crate::hub::MediaPath;
use crate::pipeline::{Pipeline, SourceFactory};
use crate::rtsp::server::RtspServer;
use crate::status::{Monitor, PathProbe};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Builds the frame source factory for a path. `auto` is resolved here, once: the first
/// capture-capable camera, or the test pattern (logged loudly) when there is none at start.
/// A camera that vanishes later is retried by the pipeline, never silently replaced.
fn source_factory(name: &str, cfg: &PathConfig) -> SourceFactory {
    let (w, h, fps) = cfg.geometry();
    // Validated before we get here.
    let spec = cfg.source_spec().unwrap_or(SourceSpec::Auto);
    let spec = match spec {
        SourceSpec::Auto => match v4l2::first_camera() {
            Some(dev) => {
                log::info!("path {name}: source auto: using camera {}", dev.display());
                SourceSpec::Device(dev)
            }
            None => {
                log::warn!(
                    "path {name}: source auto: NO CAMERA FOUND, serving the test pattern ({w}x{h}@{fps}) instead"
                );
                SourceSpec::TestPattern { size: None }
            }
        },
        other => other,
    };
    match spec {
        SourceSpec::Device(dev) => {
            let req = ModeRequest {
                width: w,
                height: h,
                fps,
                pixel_format: cfg.pixel_format.as_deref().and_then(PixelFormat::from_name),
            };
            Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
                Ok(Box::new(V4l2Source::open(&dev, &req)?))
            })
        }
        _ => Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
            Ok(Box::new(TestPattern::new(w, h, fps)?))
        }),
    }
}

fn encoder_settings(cfg: &PathConfig) -> EncoderSettings {
    let (width, height, fps) = cfg.geometry();
    EncoderSettings {
        width,
        height,
        fps,
        bitrate_kbps: cfg.bitrate_kbps,
        idr_interval_frames: cfg.idr_interval_frames(),
    }
}

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

/// Runs the appliance until SIGINT or SIGTERM.
pub fn run(cfg: Config) -> Result<(), AppError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigint-net")
        .build()
        .map_err(AppError::Runtime)?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<(), AppError> {
    let server = RtspServer::bind(&cfg.rtsp, &cfg.users)
        .await
        .map_err(AppError::Rtsp)?;
    let listen = server.local_addr().map_err(AppError::Rtsp)?;
    let ctx = server.context().clone();
    let mut pipelines: BTreeMap<String, Pipeline> = BTreeMap::new();
    let mut probes = Vec::new();
    for (name, pcfg) in &cfg.paths {
        let media = MediaPath::new(name);
        ctx.add_path(media.clone(), pcfg.max_readers);
        let pipeline = Pipeline::spawn(
            media.clone(),
            source_factory(name, pcfg),
            encoder_settings(pcfg),
        )
        .map_err(|error| AppError::Pipeline {
            path: name.clone(),
            error,
        })?;
        probes.push(PathProbe {
            name: name.clone(),
            source: pcfg.source.clone(),
            media,
            stats: pipeline.stats().clone(),
        });
        pipelines.insert(name.clone(), pipeline);
    }
    let monitor = Monitor::new(probes, ctx.clone());
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = match monitor.spawn_sampler(sampler_stop.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!(
                "status: cannot start the sampler thread: {e}; fps and bitrate stay unmeasured"
            );
            None
        }
    };
    let http = start_http(&cfg, monitor);
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
    log::info!("shutting down");
    for (_, p) in pipelines {
        p.stop();
    }
    if let Some(h) = http {
        h.stop();
    }
    sampler_stop.store(true, Ordering::Relaxed);
    if let Some(t) = sampler {
        let _ = t.join();
    }
    Ok(())
}

/// Starts the HTTP API. A failure is logged and the appliance runs on without it: video
/// is the appliance's job, and a taken port 8080 must not take the cameras off the air.
fn start_http(cfg: &Config, monitor: Arc<Monitor>) -> Option<HttpServer> {
    let ctx = HttpContext {
        monitor,
        cameras: Arc::new(|| {
            serde_json::to_value(v4l2::list_cameras()).unwrap_or(serde_json::Value::Null)
        }),
    };
    match HttpServer::start(&cfg.http, ctx) {
        Ok(h) => {
            log::info!("http: listening on {}", h.local_addr());
            Some(h)
        }
        Err(e) => {
            log::error!("http: {e}; the HTTP API is off, RTSP keeps serving");
            None
        }
    }
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
