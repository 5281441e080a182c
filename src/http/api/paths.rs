//! The reading routes: the phone page, `/api/v1/status`, the paths, the cameras,
//! `/healthz` and `/metrics`, all answered from `status::Monitor` snapshots.
//!
//! Owns: those answers (health's 200/503 and its problem list). Does not own: what status
//! holds (`status`), the metrics text (`http::metrics`), the page (`page.html`).

use crate::http::error::ApiError;
use crate::http::{json, metrics, respond, HttpContext, Response};

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

/// `GET /api/v1/status`.
pub fn status(ctx: &HttpContext) -> Result<Response, ApiError> {
    Ok(json(200, &ctx.monitor.snapshot()))
}

/// `GET /api/v1/paths`.
pub fn list(ctx: &HttpContext) -> Result<Response, ApiError> {
    Ok(json(200, &ctx.monitor.snapshot().paths))
}

/// `GET /api/v1/paths/{name}`.
pub fn one(ctx: &HttpContext, name: &str) -> Result<Response, ApiError> {
    match ctx.monitor.path(name) {
        Some(p) => Ok(json(200, &p)),
        None => Err(ApiError::not_found(
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
