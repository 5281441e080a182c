//! The login's routes: `/api/v1/session` (setup or login state: who is logged in and, for
//! a viewer, which paths it may watch), the first-run setup and changing the admin
//! password.
//!
//! Owns: those three answers and the new-password checks on the way in. Does not own: the
//! password policy and hashing (`auth::password`), checking a login (`http::login`).

use crate::control::ControlError;
use crate::http::error::ApiError;
use crate::http::login::{Verdict, ADMIN_USER};
use crate::http::{json, json_body, HttpContext, Request, Response};

fn session(setup_required: bool, logged_in: bool) -> serde_json::Value {
    serde_json::json!({"setup_required": setup_required, "logged_in": logged_in})
}

/// `GET /api/v1/session`: `{"setup_required", "logged_in"}`, and once logged in `role`
/// (`admin` or `viewer`) and `user`; a viewer also gets `paths`, those it may watch.
pub fn state(
    ctx: &HttpContext,
    setup_required: bool,
    verdict: &Verdict,
) -> Result<Response, ApiError> {
    let mut s = session(setup_required, false);
    match verdict {
        Verdict::Admin => {
            s["logged_in"] = true.into();
            s["role"] = "admin".into();
            s["user"] = ADMIN_USER.into();
        }
        Verdict::Viewer(v) => {
            let paths: Vec<String> = ctx
                .monitor
                .snapshot()
                .paths
                .into_iter()
                .map(|p| p.name)
                .filter(|p| v.may_read(p))
                .collect();
            s["logged_in"] = true.into();
            s["role"] = "viewer".into();
            s["user"] = v.name.clone().into();
            s["paths"] = paths.into();
        }
        _ => {}
    }
    Ok(json(200, &s))
}

/// `{"password": "..."}` checked as a new admin password, hashed.
fn new_admin_hash(req: &Request) -> Result<String, ApiError> {
    let body = json_body(req, false)?;
    let password = body
        .get("password")
        .and_then(|p| p.as_str())
        .ok_or_else(|| ApiError::field("password", "a password is needed"))?;
    crate::auth::password::check_new_password(password)
        .map_err(|why| ApiError::field("password", why))?;
    crate::auth::password::hash_password(password).map_err(ApiError::internal)
}

fn already_set() -> ControlError {
    ControlError::Conflict("already_set", "the admin password is already set".into())
}

/// `POST /api/v1/setup`: only while no admin password is set.
pub fn setup(ctx: &HttpContext, req: &Request, setup_required: bool) -> Result<Response, ApiError> {
    if !setup_required {
        return Err(already_set().into());
    }
    let hash = new_admin_hash(req)?;
    ctx.control.update(&mut |cur| {
        if cur.admin.password_hash.is_some() {
            return Err(already_set());
        }
        let mut next = cur.clone();
        next.admin.password_hash = Some(hash.clone());
        Ok(next)
    })?;
    log::info!(
        "http: admin password set (first-run setup) from {}",
        req.peer.ip()
    );
    Ok(json(201, &session(false, false)))
}

/// `PUT /api/v1/admin/password`.
pub fn set_password(ctx: &HttpContext, req: &Request) -> Result<Response, ApiError> {
    let hash = new_admin_hash(req)?;
    ctx.control.update(&mut |cur| {
        let mut next = cur.clone();
        next.admin.password_hash = Some(hash.clone());
        Ok(next)
    })?;
    log::info!("http: admin password changed from {}", req.peer.ip());
    Ok(json(200, &session(false, false)))
}
