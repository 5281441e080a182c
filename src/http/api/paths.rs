//! The reading routes: the phone page, `/api/v1/status`, the paths, the cameras,
//! `/healthz` and `/metrics`, all answered from `status::Monitor` snapshots.
//!
//! Owns: those answers (health's 200/503 and its problem list), and what a viewer is shown
//! of status: only the paths it may read, each with what watching needs (state, problem,
//! picture, rates, viewers), never its source, the RTSP readers' addresses, errors or the
//! device's own details. Does not own: what status holds (`status`), the metrics text
//! (`http::metrics`), the page (`page.html`), who is a viewer (`http::access`).

use crate::http::access::Viewer;
use crate::http::error::ApiError;
use crate::http::{json, metrics, respond, HttpContext, Response};
use crate::status::{PathStatus, Status};

/// The phone page: one self-contained file, embedded so the appliance needs nothing else.
const PAGE: &str = include_str!("../page.html");
pub const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

/// `GET /`: the page, framed by nobody, running only its own inline script. Its live
/// pictures are MediaSource `blob:` URLs (`media-src`).
pub fn page() -> Result<Response, ApiError> {
    let mut r = respond(200, HTML, PAGE);
    r.headers.push((
        "Content-Security-Policy",
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'".into(),
    ));
    r.headers.push(("X-Frame-Options", "DENY".into()));
    Ok(r)
}

/// A path as a viewer sees it.
pub fn viewer_path(p: &PathStatus) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "state": p.state,
        "problem": p.problem,
        "fps": p.fps,
        "bitrate_kbps": p.bitrate_kbps,
        "resolution": p.resolution,
        "codec": p.codec,
        "streaming_since": p.streaming_since,
        "clients": p.clients,
        "live_viewers": p.live_viewers,
    })
}

/// Status as `viewer` sees it: its paths (healthy when they all deliver), the RTSP port
/// to watch them at, the version and uptime.
pub fn viewer_status(s: &Status, viewer: &Viewer) -> serde_json::Value {
    let paths: Vec<&PathStatus> = s
        .paths
        .iter()
        .filter(|p| viewer.may_read(&p.name))
        .collect();
    serde_json::json!({
        "version": s.version,
        "uptime_s": s.uptime_s,
        "healthy": paths.iter().all(|p| p.problem.is_none()),
        "rtsp": { "port": s.rtsp.port },
        "paths": paths.into_iter().map(viewer_path).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/status`: all of it for the admin, a viewer's share for a viewer.
pub fn status(ctx: &HttpContext, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    let s = ctx.monitor.snapshot();
    Ok(match viewer {
        None => json(200, &s),
        Some(v) => json(200, &viewer_status(&s, v)),
    })
}

/// `GET /api/v1/paths`.
pub fn list(ctx: &HttpContext, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    let s = ctx.monitor.snapshot();
    Ok(match viewer {
        None => json(200, &s.paths),
        Some(v) => json(200, &viewer_status(&s, v)["paths"]),
    })
}

/// `GET /api/v1/paths/{name}` (a viewer gets here only for a path it may read).
pub fn one(ctx: &HttpContext, name: &str, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    match (ctx.monitor.path(name), viewer) {
        (Some(p), None) => Ok(json(200, &p)),
        (Some(p), Some(_)) => Ok(json(200, &viewer_path(&p))),
        (None, _) => Err(ApiError::not_found(
            "unknown_path",
            format!("no path named `{name}`"),
        )),
    }
}

/// `GET /api/v1/cameras`.
pub fn cameras(ctx: &HttpContext) -> Result<Response, ApiError> {
    Ok(json(200, &(ctx.cameras)()))
}

/// `GET /healthz`: 200 `ok`, or 503 with each path's problem.
pub fn health(ctx: &HttpContext) -> Result<Response, ApiError> {
    let s = ctx.monitor.snapshot();
    let problems: Vec<serde_json::Value> = s
        .paths
        .iter()
        .filter_map(|p| {
            let why = p.problem.as_ref()?;
            Some(serde_json::json!({"path": p.name, "problem": why}))
        })
        .collect();
    Ok(if problems.is_empty() {
        json(200, &serde_json::json!({"status": "ok"}))
    } else {
        json(
            503,
            &serde_json::json!({"status": "unhealthy", "problems": problems}),
        )
    })
}

/// `GET /metrics`: Prometheus text.
pub fn metrics(ctx: &HttpContext) -> Result<Response, ApiError> {
    Ok(respond(
        200,
        METRICS,
        metrics::render(&ctx.monitor.snapshot(), metrics::process_rss_bytes()),
    ))
}
