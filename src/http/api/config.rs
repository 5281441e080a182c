//! The config routes: `GET`/`PUT`/`PATCH /api/v1/config` (the public document, secrets
//! kept) and adding or removing a path, all applied live through `Control::update`.
//!
//! Owns: those answers (`{"config", "restart_required", ...}`). Does not own: validation,
//! saving and applying (`supervisor` behind `control`), the public view (`config::public`).

use serde::Serialize;

use crate::config::{self, Config};
use crate::control::{Applied, ControlError};
use crate::http::error::ApiError;
use crate::http::{json, json_body, HttpContext, Request, Response};

#[derive(Serialize)]
struct Written {
    config: serde_json::Value,
    #[serde(flatten)]
    applied: Applied,
}

fn written(
    status: u16,
    result: Result<(Config, Applied), ControlError>,
) -> Result<Response, ApiError> {
    let (cfg, applied) = result?;
    Ok(json(
        status,
        &Written {
            config: config::to_public_json(&cfg),
            applied,
        },
    ))
}

/// `GET /api/v1/config`: without secrets.
pub fn get(ctx: &HttpContext) -> Result<Response, ApiError> {
    Ok(json(200, &config::to_public_json(&ctx.control.config())))
}

/// `PUT /api/v1/config`: the whole document (secrets left out are kept).
pub fn put(ctx: &HttpContext, req: &Request) -> Result<Response, ApiError> {
    let doc = json_body(req, false)?;
    written(
        200,
        ctx.control
            .update(&mut |cur| Ok(config::from_public_json(doc.clone(), cur)?)),
    )
}

/// `PATCH /api/v1/config`: an RFC 7396 merge patch.
pub fn patch(ctx: &HttpContext, req: &Request) -> Result<Response, ApiError> {
    let patch = json_body(req, true)?;
    written(
        200,
        ctx.control.update(&mut |cur| {
            let mut doc = config::to_public_json(cur);
            config::merge_patch::apply(&mut doc, &patch);
            Ok(config::from_public_json(doc, cur)?)
        }),
    )
}

/// `POST /api/v1/paths/{name}`: a new path (409 when it exists).
pub fn add_path(ctx: &HttpContext, req: &Request, name: &str) -> Result<Response, ApiError> {
    let body = json_body(req, false)?;
    written(
        201,
        ctx.control.update(&mut |cur| {
            if cur.paths.contains_key(name) {
                return Err(ControlError::Conflict(
                    "path_exists",
                    format!("path `{name}` exists; change it with PATCH /api/v1/config"),
                ));
            }
            let mut doc = config::to_public_json(cur);
            doc["paths"][name] = body.clone();
            Ok(config::from_public_json(doc, cur)?)
        }),
    )
}

/// `DELETE /api/v1/paths/{name}`.
pub fn delete_path(ctx: &HttpContext, name: &str) -> Result<Response, ApiError> {
    written(
        200,
        ctx.control.update(&mut |cur| {
            let mut next = cur.clone();
            if next.paths.remove(name).is_none() {
                return Err(ControlError::NotFound(
                    "unknown_path",
                    format!("no path named `{name}`"),
                ));
            }
            Ok(next)
        }),
    )
}
