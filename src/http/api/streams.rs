//! The "RTSP stream viewer" API's REST side: `GET/POST /api/streams/`,
//! `GET/DELETE /api/streams/{id}/` and `GET /api/health/`. A stream is a path whose source
//! is an RTSP URL (a relay); its id is the path's name, which `/ws/stream?id=` watches.
//!
//! Owns: those answers' shapes (`{"id","url","on_demand","state","problem","ws","rtsp"}`,
//! the URL's credentials masked) and turning a `POST` into a relay path (validated, saved
//! and started like any config change). A viewer sees only the streams it may read, and
//! no `url`. Does not own: validation, saving and applying (`supervisor` behind
//! `control`), the WebSocket (`http::live`), the viewer limits.

use crate::config::{self, Config, SourceSpec};
use crate::control::ControlError;
use crate::http::access::Viewer;
use crate::http::error::ApiError;
use crate::http::{json, json_body, HttpContext, Request, Response};
use crate::status::PathStatus;

/// The stream of path `name` as the API shows it; `None` when the path's source is not an
/// RTSP URL.
fn stream_json(cfg: &Config, name: &str, status: Option<&PathStatus>) -> Option<serde_json::Value> {
    let path = cfg.paths.get(name)?;
    if !matches!(SourceSpec::parse(&path.source), Ok(SourceSpec::Relay(_))) {
        return None;
    }
    Some(serde_json::json!({
        "id": name,
        "url": config::masked_source(&path.source),
        "on_demand": path.source_on_demand,
        "state": status.map(|s| s.state.to_string()),
        "problem": status.and_then(|s| s.problem.clone()),
        "ws": format!("/ws/stream?id={}", crate::http::play::encode_component(name)),
    }))
}

/// A stream as `viewer` may see it: `None` when it may not read it; without the camera's
/// URL (a viewer needs none).
fn for_viewer(v: serde_json::Value, viewer: Option<&Viewer>) -> Option<serde_json::Value> {
    match viewer {
        None => Some(v),
        Some(viewer) => {
            let id = v.get("id").and_then(|i| i.as_str()).unwrap_or_default();
            if !viewer.may_read(id) {
                return None;
            }
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.remove("url");
            }
            Some(v)
        }
    }
}

/// `GET /api/streams/`: every stream (a viewer's only).
pub fn list(ctx: &HttpContext, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    let cfg = ctx.control.config();
    let status = ctx.monitor.snapshot();
    let streams: Vec<serde_json::Value> = cfg
        .paths
        .keys()
        .filter_map(|name| {
            let s = status.paths.iter().find(|p| &p.name == name);
            for_viewer(stream_json(&cfg, name, s)?, viewer)
        })
        .collect();
    Ok(json(200, &serde_json::json!({ "streams": streams })))
}

/// `GET /api/streams/{id}/` (a viewer gets here only for a path it may read).
pub fn one(ctx: &HttpContext, id: &str, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    let cfg = ctx.control.config();
    let status = ctx.monitor.path(id);
    stream_json(&cfg, id, status.as_ref())
        .and_then(|v| for_viewer(v, viewer))
        .map(|v| json(200, &v))
        .ok_or_else(|| ApiError::not_found("unknown_stream", format!("no stream `{id}`")))
}

/// `POST /api/streams/`: `{"id": "door", "url": "rtsp://...", "on_demand": true}` adds a
/// relay path (`on_demand` defaults to true: a camera is pulled only while watched).
pub fn add(ctx: &HttpContext, req: &Request) -> Result<Response, ApiError> {
    let body = json_body(req, false)?;
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let (id, url) = (field("id").to_string(), field("url").to_string());
    if id.is_empty() {
        return Err(ApiError::field("id", "give the stream an id (a path name)"));
    }
    if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") {
        return Err(ApiError::field("url", "an rtsp:// URL"));
    }
    let on_demand = match body.get("on_demand") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::field("on_demand", "true or false"))?,
    };
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["id", "url", "on_demand"].contains(&k.as_str()))
    }) {
        return Err(ApiError::field(
            k,
            "not a stream field (id, url, on_demand)",
        ));
    }
    let (cfg, _) = ctx.control.update(&mut |cur| {
        if cur.paths.contains_key(&id) {
            return Err(ControlError::Conflict(
                "stream_exists",
                format!("`{id}` exists"),
            ));
        }
        let mut doc = config::to_public_json(cur);
        doc["paths"][&id] = serde_json::json!({ "source": url, "source_on_demand": on_demand });
        Ok(config::from_public_json(doc, cur)?)
    })?;
    let made = stream_json(&cfg, &id, None)
        .ok_or_else(|| ApiError::internal("the new stream is not a relay"))?;
    Ok(json(201, &made))
}

/// `DELETE /api/streams/{id}/`: removes a stream's path (only a stream's: a camera is not
/// removed from here).
pub fn delete(ctx: &HttpContext, id: &str) -> Result<Response, ApiError> {
    ctx.control.update(&mut |cur| {
        if stream_json(cur, id, None).is_none() {
            return Err(ControlError::NotFound(
                "unknown_stream",
                format!("no stream `{id}`"),
            ));
        }
        let mut next = cur.clone();
        next.paths.remove(id);
        Ok(next)
    })?;
    Ok(Response::new(204, vec![], vec![]))
}

/// `GET /api/health/`: `{"status":"ok"|"degraded","streams","streaming","uptime_s"}` (a
/// viewer's counts are of its streams).
pub fn health(ctx: &HttpContext, viewer: Option<&Viewer>) -> Result<Response, ApiError> {
    let cfg = ctx.control.config();
    let s = ctx.monitor.snapshot();
    let streams: Vec<&PathStatus> = s
        .paths
        .iter()
        .filter(|p| stream_json(&cfg, &p.name, None).is_some())
        .filter(|p| viewer.is_none_or(|v| v.may_read(&p.name)))
        .collect();
    let streaming = streams.iter().filter(|p| p.problem.is_none()).count();
    // A viewer learns nothing of paths it may not read, their health neither.
    let healthy = match viewer {
        None => s.healthy,
        Some(_) => streaming == streams.len(),
    };
    Ok(json(
        200,
        &serde_json::json!({
            "status": if healthy { "ok" } else { "degraded" },
            "streams": streams.len(),
            "healthy_streams": streaming,
            "uptime_s": s.uptime_s,
        }),
    ))
}
