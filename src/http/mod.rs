//! The HTTP side: the JSON API (status, config, paths, login, recordings), `/healthz`,
//! `/metrics` and the phone page, served by hyper on the tokio runtime (`server`).
//!
//! Owns: who may do what (`routes::Access` and `access::admit`: the admin, a viewer (an
//! RTSP user watching the paths it may read) or anyone; same-origin and JSON-only writes;
//! the login in `login`), `answer`: from a request to the one small handler of its area
//! (`api`, `recordings`, `mediamtx`), and where a play or live link (`play`) stands in for
//! the login.
//! Errors are `error::ApiError`, which becomes a status and JSON body in one place. Reads the
//! appliance through `status::Monitor` and changes it only through `control::Control`;
//! never imports `rtsp`, `source` or `record`.

pub mod access;
pub mod api;
mod body;
pub mod error;
pub mod live;
pub mod login;
pub mod mediamtx;
pub mod message;
pub mod metrics;
pub mod play;
pub mod recordings;
pub mod routes;
pub mod server;
pub mod snapshot;
mod timed_io;
pub mod ws;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::HttpConfig;
use crate::control::{Control, LiveViews, Recordings};
use crate::status::Monitor;
use access::{Refusal, Viewer};
pub use error::ApiError;
use login::{Login, Verdict};
use routes::{Access, Route, RouteError};
pub use server::{HttpServer, Request, Response};

/// Requests are small; anything larger is refused before it is read.
pub const MAX_BODY: usize = 64 * 1024;

/// Lists capture devices as JSON (`--list-cameras --json`): injected so that `http` names no
/// capture code and tests can fake it.
pub type CameraLister = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the handlers read and change.
pub struct HttpContext {
    pub monitor: Arc<Monitor>,
    pub cameras: CameraLister,
    pub control: Arc<dyn Control>,
    /// Shared with whoever restarts the server, so failed logins are remembered across it.
    pub login: Arc<Login>,
    /// The recordings on disk; None when recording is off (the routes answer 404).
    pub recordings: Option<Arc<dyn Recordings>>,
    /// Live video (WebSocket routes); None: they answer 404.
    pub live: Option<Arc<dyn LiveViews>>,
}

const JSON: &str = "application/json";

fn respond(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    Response::new(
        status,
        vec![("Content-Type", content_type.to_string())],
        body.into(),
    )
}

fn json(status: u16, value: &impl Serialize) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(body) => respond(status, JSON, body + "\n"),
        Err(e) => ApiError::internal(format!("cannot serialise: {e}")).into_response(),
    }
}

/// A state-changing request from a browser must come from our own page: `Origin` (when
/// sent) names the host the request went to, and `Sec-Fetch-Site` (when sent) is not
/// cross-site. Scripts send neither. With JSON-only bodies this stops cross-site posts.
fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.header("Sec-Fetch-Site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match req.header("Origin") {
        None => true,
        Some(origin) => {
            let host = req.header("Host").unwrap_or_default();
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
        }
    }
}

/// The request body as JSON (an empty body is `{}`); must be an object unless `any`.
fn json_body(req: &Request, any: bool) -> Result<serde_json::Value, ApiError> {
    if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(serde_json::json!({}));
    }
    let v: serde_json::Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad("bad_json", format!("the body is not JSON: {e}")))?;
    if !any && !v.is_object() {
        return Err(ApiError::bad("bad_json", "the body must be a JSON object"));
    }
    Ok(v)
}

/// A client that is not a browser: browsers send `Origin` or `Sec-Fetch-Site` with every
/// state-changing request, scripts (curl, MediaMTX clients) neither.
fn from_script(req: &Request) -> bool {
    req.header("Origin").is_none() && req.header("Sec-Fetch-Site").is_none()
}

/// JSON bodies only, so that a cross-site form cannot post one. MediaMTX's API also takes
/// what `curl -d` sends (`application/x-www-form-urlencoded`, holding JSON) from scripts,
/// never from a browser.
fn content_type_ok(req: &Request, route: &Route) -> bool {
    if req.body.is_empty() {
        return true;
    }
    let ct = req
        .header("Content-Type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct == JSON
        || (req.method == "PATCH" && ct == "application/merge-patch+json")
        || (matches!(route, Route::Mediamtx(_))
            && from_script(req)
            && matches!(
                ct.as_str(),
                "" | "application/x-www-form-urlencoded" | "text/plain"
            ))
}

/// Answers one request; errors under MediaMTX's API take its shape.
pub fn answer(ctx: &HttpContext, req: &Request) -> Response {
    let r = answer_route(ctx, req).unwrap_or_else(ApiError::into_response);
    if mediamtx::is_mediamtx(&req.target) {
        mediamtx::reshape_error(r)
    } else {
        r
    }
}

/// The route, once the request may ask for it.
fn decode(req: &Request) -> Result<Route, ApiError> {
    if req.body.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
    }
    let route = routes::decode(&req.method, &req.target).map_err(|e| match e {
        RouteError::NotFound => ApiError::not_found("not_found", "no such resource"),
        RouteError::BadTarget(why) => ApiError::bad("bad_path", why),
        RouteError::MethodNotAllowed { allow } => ApiError::MethodNotAllowed {
            method: req.method.clone(),
            allow,
        },
    })?;
    if routes::changes_state(&req.method) {
        if !same_origin(req) {
            return Err(ApiError::Forbidden {
                code: "cross_origin",
                message: "changes must come from this device's own page".into(),
            });
        }
        if !content_type_ok(req, &route) {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(route)
}

/// Whether the login lets a route of `access` reading `path` through; `Err` is the
/// refusal as an answer.
fn admit(
    req: &Request,
    access: Access,
    path: Option<&str>,
    verdict: &Verdict,
) -> Result<(), ApiError> {
    access::admit(access, path, verdict).map_err(|r| match r {
        Refusal::SetupRequired => ApiError::Forbidden {
            code: "setup_required",
            message: "set the admin password first (first-run setup on the page)".into(),
        },
        Refusal::Wait(wait) => ApiError::TooManyAttempts {
            retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
        },
        Refusal::LogIn { wrong } => ApiError::Unauthorized {
            message: if wrong {
                "wrong password"
            } else {
                "log in as admin"
            }
            .into(),
            // A page's own fetch() gets no browser login dialog.
            challenge: req.header("X-Requested-With").is_none(),
        },
        Refusal::AdminOnly => ApiError::Forbidden {
            code: "admin_only",
            message: "only the admin may do this".into(),
        },
        Refusal::NotReadable => ApiError::Forbidden {
            code: "not_allowed",
            message: "this user may not watch this path".into(),
        },
    })
}

/// The viewer behind a verdict (`None` for the admin, and before the first-run setup,
/// when everything readable is shown to all).
fn viewer_of(verdict: &Verdict) -> Option<&Viewer> {
    match verdict {
        Verdict::Viewer(v) => Some(v),
        _ => None,
    }
}

/// Whether `token` is a live link for `path`: minted for the admin, or for an RTSP user
/// who may still read `path` with the same password (a changed password, a removed user or
/// a withdrawn grant ends the user's links; a changed admin password ends them all).
fn live_link_valid(ctx: &HttpContext, admin_hash: &str, path: &str, token: &str) -> bool {
    let key = ctx.login.play();
    let now = Instant::now();
    if key
        .check(admin_hash, path, live::LINK_SCOPE, token, now)
        .is_ok()
    {
        return true;
    }
    ctx.control.config().users.iter().any(|u| {
        u.name != login::ADMIN_USER
            && Viewer::new(&u.name, u.permissions.clone()).may_read(path)
            && key
                .check(admin_hash, path, &live::viewer_link_scope(u), token, now)
                .is_ok()
    })
}

fn answer_route(ctx: &HttpContext, req: &Request) -> Result<Response, ApiError> {
    let route = decode(req)?;
    let admin_hash = ctx.control.admin_hash();
    // A play link stands in for the login on GET/HEAD of the one segment it names, and only
    // there (a DELETE with one still needs the login). It is judged alone, never by the
    // password check: a stale link is not a password guess and must not lock the admin out.
    if let Route::Segment { path, file } = &route {
        if let Some(token) = play::token_in(&req.target) {
            return recordings::play_segment(ctx, req, admin_hash.as_deref(), path, file, token);
        }
    }
    // A live link stands in for the login on reading the one path it names: its live view,
    // stream-viewer socket and snapshot (a WebSocket or an <img> cannot send the login).
    // The stream-viewer socket's request, read once.
    let stream_request =
        (route == Route::StreamViewer).then(|| live::stream_request(routes::query_of(&req.target)));
    let live_path = match (&route, &stream_request) {
        (Route::Live(p) | Route::Snapshot(p), _) => Some(p.clone()),
        // A token is for a path; an unsaved relay's `url` needs the admin's login.
        (_, Some(Ok(r))) if r.url.is_none() => Some(r.id.clone()),
        _ => None,
    };
    if matches!(
        route,
        Route::Live(_) | Route::StreamViewer | Route::Snapshot(_)
    ) && !same_origin(req)
    {
        // Another site's page must not open a socket or a picture with this browser's login.
        return Err(ApiError::Forbidden {
            code: "cross_origin",
            message: "live video and snapshots are opened from this device's own page".into(),
        });
    }
    let link_path = match (&live_path, play::token_in(&req.target), &admin_hash) {
        (Some(path), Some(token), Some(hash)) => {
            let valid = live_link_valid(ctx, hash, path, token);
            if !valid && !matches!(route, Route::StreamViewer) {
                return Err(ApiError::Unauthorized {
                    message: "this live link is not valid (expired, or the password changed)"
                        .into(),
                    challenge: false,
                });
            }
            valid.then_some(path)
        }
        _ => None,
    };
    // Resolved once: the admin, a viewer (its grants, or the one path a link opens), nobody.
    let verdict = match link_path {
        Some(path) => Verdict::Viewer(Viewer::of_link(path)),
        None => ctx.login.check(
            admin_hash.as_deref(),
            &|| ctx.control.config().users,
            req.header("Authorization"),
            req.peer.ip(),
            Instant::now(),
        ),
    };
    if let Some(parsed) = stream_request {
        // Refusals are said in the stream-viewer protocol, after the upgrade.
        let media_only = parsed.as_ref().is_ok_and(|r| r.media_only);
        let auth = |e: ApiError| live::Refusal {
            code: "AUTH",
            message: e.to_string(),
        };
        let asked = admit(req, Access::Viewer, None, &verdict)
            .map_err(auth)
            .and(parsed)
            .and_then(|a| {
                // `url=` starts a pull from anywhere: the admin's alone (links and viewers
                // are for paths).
                let checked = match &a.url {
                    Some(_) => admit(req, Access::Admin, None, &verdict),
                    None => admit(req, Access::Viewer, Some(&a.id), &verdict),
                };
                checked.map_err(auth).map(|()| a)
            });
        return Ok(live::stream_viewer(
            live_views(ctx)?,
            req,
            asked,
            media_only,
        ));
    }
    admit(req, route.access(), route.read_path(), &verdict)?;
    let setup_required = verdict == Verdict::SetupRequired;
    let viewer = viewer_of(&verdict);
    match route {
        Route::Page => api::paths::page(),
        Route::Status => api::paths::status(ctx, viewer),
        Route::Paths => api::paths::list(ctx, viewer),
        Route::Path(name) => api::paths::one(ctx, &name, viewer),
        Route::Cameras => api::paths::cameras(ctx),
        Route::Healthz => api::paths::health(ctx),
        Route::Metrics => api::paths::metrics(ctx),
        Route::Session => api::admin::state(ctx, setup_required, &verdict),
        Route::Setup => api::admin::setup(ctx, req, setup_required),
        Route::SetAdminPassword => api::admin::set_password(ctx, req),
        Route::GetConfig => api::config::get(ctx),
        Route::PutConfig => api::config::put(ctx, req),
        Route::PatchConfig => api::config::patch(ctx, req),
        Route::AddPath(name) => api::config::add_path(ctx, req, &name),
        Route::DeletePath(name) => api::config::delete_path(ctx, &name),
        r @ (Route::Recordings | Route::Segment { .. } | Route::DeleteSegment { .. }) => {
            recordings::answer(ctx, req, r, admin_hash.as_deref())
        }
        Route::Mediamtx(call) => Ok(mediamtx::answer(ctx, req, call)),
        Route::Snapshot(path) => snapshot::answer(ctx.control.as_ref(), &path, &req.target),
        Route::Live(path) => live::live_view(&live_views(ctx)?, req, &path),
        Route::LiveLinks(path) => live_links(ctx, admin_hash.as_deref(), viewer, &path),
        Route::StreamViewer => Err(ApiError::internal("the stream viewer is answered above")),
        Route::StreamList => api::streams::list(ctx, viewer),
        Route::AddStream => api::streams::add(ctx, req),
        Route::Stream(id) => api::streams::one(ctx, &id, viewer),
        Route::DeleteStream(id) => api::streams::delete(ctx, &id),
        Route::StreamsHealth => api::streams::health(ctx, viewer),
    }
}

/// The live video side, or 404 when this server has none.
fn live_views(ctx: &HttpContext) -> Result<Arc<dyn LiveViews>, ApiError> {
    ctx.live
        .clone()
        .ok_or_else(|| ApiError::not_found("not_found", "live video is off"))
}

/// `GET /api/v1/paths/{name}/live-links`: the path's live view, stream-viewer socket and
/// snapshot with a token each (none needed before the first-run setup). A viewer's token
/// opens that path only, and only while the viewer keeps its password and its `read`.
fn live_links(
    ctx: &HttpContext,
    admin_hash: Option<&str>,
    viewer: Option<&Viewer>,
    path: &str,
) -> Result<Response, ApiError> {
    if ctx.monitor.path(path).is_none() {
        return Err(ApiError::not_found(
            "unknown_path",
            format!("no path named `{path}`"),
        ));
    }
    let scope = match viewer {
        None => live::LINK_SCOPE.to_string(),
        Some(v) => ctx
            .control
            .config()
            .users
            .iter()
            .find(|u| u.name == v.name)
            .map(live::viewer_link_scope)
            .ok_or(ApiError::Forbidden {
                code: "not_allowed",
                message: "this user may not watch this path".into(),
            })?,
    };
    let token = match admin_hash {
        None => None,
        Some(hash) => Some(
            ctx.login
                .play()
                .mint(hash, path, &scope, Instant::now())
                .ok_or_else(|| ApiError::Unavailable {
                    code: "no_links",
                    message: "this device cannot make links (no random numbers)".into(),
                    retry_after_s: None,
                })?,
        ),
    };
    let with = |url: String| match &token {
        Some(t) => format!(
            "{url}{}token={t}",
            if url.contains('?') { '&' } else { '?' }
        ),
        None => url,
    };
    let enc = play::encode_component(path);
    Ok(json(
        200,
        &serde_json::json!({
            "path": path,
            "expires_in_s": play::LIFETIME.as_secs(),
            "live": with(format!("/api/v1/paths/{enc}/live")),
            "stream": with(format!("/ws/stream?id={enc}")),
            "snapshot": with(format!("/api/v1/paths/{enc}/snapshot.jpg")),
        }),
    ))
}

/// Starts the HTTP API on `cfg.listen` on the runtime `rt`, with `answer` as the handler,
/// every response marked `Cache-Control: no-store` (status and config are live).
pub fn start(
    rt: &tokio::runtime::Handle,
    cfg: &HttpConfig,
    ctx: HttpContext,
) -> io::Result<HttpServer> {
    let ctx = Arc::new(ctx);
    let handler: server::Handler = Arc::new(move |req: &Request| {
        let mut r = answer(&ctx, req);
        if r.status >= 500 && r.status != 503 {
            // Without the query: it may hold a play link's token.
            log::error!(
                "http: {} {} -> {}",
                req.method,
                server::log_path(&req.target),
                r.status
            );
        }
        r.headers.push(("Cache-Control", "no-store".into()));
        r
    });
    let limits = server::Limits {
        max_body: MAX_BODY,
        ..server::Limits::default()
    };
    HttpServer::start(rt, cfg.listen, limits, handler)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::control::{Applied, ControlError};
    use std::sync::Mutex;

    /// A `Control` that keeps the config in memory and records nothing else.
    pub(crate) struct MemoryControl(pub Mutex<Config>);

    impl Control for MemoryControl {
        fn config(&self) -> Config {
            self.0.lock().unwrap().clone()
        }
        fn admin_hash(&self) -> Option<String> {
            self.0.lock().unwrap().admin.password_hash.clone()
        }
        fn update(
            &self,
            change: crate::control::Change<'_>,
        ) -> Result<(Config, Applied), ControlError> {
            let mut cur = self.0.lock().unwrap();
            let next = change(&cur)?;
            next.validate()?;
            *cur = next.clone();
            Ok((next, Applied::default()))
        }
        fn snapshot(
            &self,
            path: &str,
            width: Option<u32>,
        ) -> Result<crate::control::Jpeg, crate::control::SnapshotError> {
            // A fixed 2x1 "picture" for paths in the config, so answers can be checked.
            if !self.0.lock().unwrap().paths.contains_key(path) {
                return Err(crate::control::SnapshotError::UnknownPath(path.into()));
            }
            Ok(crate::control::Jpeg {
                bytes: Arc::new(vec![0xff, 0xd8, 0xff, 0xd9]),
                width: width.unwrap_or(2),
                height: 1,
                age_ms: 5,
            })
        }
    }

    fn ctx() -> HttpContext {
        HttpContext {
            monitor: crate::status::tests::fake_monitor(),
            cameras: Arc::new(|| serde_json::json!([{"path": "/dev/video0"}])),
            control: Arc::new(MemoryControl(Mutex::new(Config::default()))),
            login: Arc::default(),
            recordings: None,
            live: None,
        }
    }

    /// A request; a body is sent as JSON unless `headers` name another type.
    fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        if !body.is_empty() && !headers.iter().any(|(n, _)| n == "Content-Type") {
            headers.push(("Content-Type".into(), JSON.into()));
        }
        Request {
            method: method.into(),
            target: target.into(),
            headers,
            body: body.as_bytes().to_vec(),
            peer: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    fn post_setup(c: &HttpContext, password: &str) -> Response {
        let body = serde_json::json!({ "password": password }).to_string();
        answer(c, &req("POST", "/api/v1/setup", &[], &body))
    }

    fn get(c: &HttpContext, target: &str) -> Response {
        answer(c, &req("GET", target, &[], ""))
    }

    fn body(a: &Response) -> serde_json::Value {
        serde_json::from_slice(&a.body).expect("json body")
    }

    fn header<'a>(a: &'a Response, name: &str) -> Option<&'a str> {
        a.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn errors_are_json_with_code_message_and_field() {
        let c = ctx();
        let a = get(&c, "/nope");
        assert_eq!((a.status, header(&a, "Content-Type")), (404, Some(JSON)));
        assert_eq!(body(&a)["error"]["code"], "not_found");
        assert!(body(&a)["error"]["field"].is_null());
        let a = answer(&c, &req("DELETE", "/api/v1/status", &[], ""));
        assert_eq!((a.status, header(&a, "Allow")), (405, Some("GET, HEAD")));
        assert_eq!(body(&a)["error"]["code"], "method_not_allowed");
        let a = get(&c, "/api/v1/paths/other");
        assert_eq!(a.status, 404);
        assert_eq!(body(&a)["error"]["code"], "unknown_path");
        let big = "x".repeat(MAX_BODY + 1);
        assert_eq!(
            answer(&c, &req("PUT", "/api/v1/config", &[], &big)).status,
            413
        );
    }

    #[test]
    fn snapshots_answer_jpeg_or_a_json_error() {
        let c = ctx();
        let a = get(&c, "/api/v1/paths/cam/snapshot.jpg?width=320");
        assert_eq!(
            (a.status, header(&a, "Content-Type")),
            (200, Some("image/jpeg"))
        );
        assert_eq!(a.body, [0xff, 0xd8, 0xff, 0xd9]);
        assert_eq!(header(&a, "X-Picture-Size"), Some("320x1"));
        let a = get(&c, "/api/v1/paths/cam/snapshot.jpg?width=big");
        assert_eq!(
            (a.status, body(&a)["error"]["code"].as_str()),
            (400, Some("bad_width"))
        );
        let a = get(&c, "/api/v1/paths/nope/snapshot.jpg");
        assert_eq!(
            (a.status, body(&a)["error"]["code"].as_str()),
            (404, Some("unknown_path"))
        );
        // Once the admin password is set, a snapshot needs the login like status does.
        post_setup(&c, "long enough");
        assert_eq!(get(&c, "/api/v1/paths/cam/snapshot.jpg").status, 401);
    }

    #[test]
    fn routes_answer_from_the_monitor() {
        let c = ctx();
        let a = get(&c, "/api/v1/paths/cam");
        assert_eq!(a.status, 200);
        assert_eq!(body(&a)["name"], "cam");
        assert_eq!(body(&get(&c, "/api/v1/paths"))[0]["name"], "cam");
        // The fake path's camera is lost: unhealthy, with the reason.
        let a = get(&c, "/healthz");
        assert_eq!(a.status, 503);
        assert_eq!(body(&a)["problems"][0]["problem"], "camera lost: unplugged");
        let a = get(&c, "/metrics");
        assert_eq!(
            (a.status, header(&a, "Content-Type")),
            (200, Some(api::paths::METRICS))
        );
        assert!(String::from_utf8_lossy(&a.body).contains("vigint_frames_total{path=\"cam\"} 10"));
        let a = get(&c, "/");
        assert_eq!(
            (a.status, header(&a, "Content-Type")),
            (200, Some(api::paths::HTML))
        );
    }

    #[test]
    fn before_setup_only_status_reads_and_nothing_changes() {
        let c = ctx();
        assert_eq!(
            body(&get(&c, "/api/v1/session")),
            serde_json::json!({"setup_required": true, "logged_in": false})
        );
        assert_eq!(get(&c, "/api/v1/status").status, 200);
        for (method, target) in [
            ("GET", "/api/v1/config"),
            ("GET", "/api/v1/cameras"),
            ("PATCH", "/api/v1/config"),
            ("DELETE", "/api/v1/paths/cam"),
            ("PUT", "/api/v1/admin/password"),
        ] {
            let a = answer(&c, &req(method, target, &[], ""));
            assert_eq!(a.status, 403, "{method} {target}");
            assert_eq!(body(&a)["error"]["code"], "setup_required");
        }
        // A short password is refused with its field; then setup works once.
        let a = post_setup(&c, "short");
        assert_eq!(
            (a.status, body(&a)["error"]["field"].as_str()),
            (400, Some("password"))
        );
        let a = post_setup(&c, "long enough");
        assert_eq!(a.status, 201);
        let a = post_setup(&c, "another one");
        assert_eq!(
            (a.status, body(&a)["error"]["code"].as_str()),
            (409, Some("already_set"))
        );
        // Now status needs the login too; the page and health do not.
        let a = get(&c, "/api/v1/status");
        assert_eq!(a.status, 401);
        assert_eq!(
            header(&a, "WWW-Authenticate"),
            Some("Basic realm=\"vigint\", charset=\"UTF-8\"")
        );
        let a = answer(
            &c,
            &req(
                "GET",
                "/api/v1/status",
                &[("X-Requested-With", "vigint-page")],
                "",
            ),
        );
        assert_eq!((a.status, header(&a, "WWW-Authenticate")), (401, None));
        assert_eq!(get(&c, "/").status, 200);
        assert_ne!(get(&c, "/healthz").status, 401);
        let auth = "Basic YWRtaW46bG9uZyBlbm91Z2g="; // admin:long enough
        let a = answer(
            &c,
            &req("GET", "/api/v1/session", &[("Authorization", auth)], ""),
        );
        assert_eq!(
            body(&a),
            serde_json::json!({"setup_required": false, "logged_in": true, "role": "admin", "user": "admin"})
        );
        let a = answer(
            &c,
            &req("GET", "/api/v1/config", &[("Authorization", auth)], ""),
        );
        assert_eq!(a.status, 200);
        assert!(body(&a).get("admin").is_none(), "the hash is never shown");
    }

    #[test]
    fn changes_must_be_same_origin_json() {
        let c = ctx();
        let setup = |headers: &[(&str, &str)]| {
            answer(
                &c,
                &req("POST", "/api/v1/setup", headers, r#"{"password":"x"}"#),
            )
            .status
        };
        // 400 = got through the checks to the (too short) password.
        assert_eq!(setup(&[]), 400);
        assert_eq!(
            setup(&[
                ("Host", "cam.local:8080"),
                ("Origin", "http://cam.local:8080")
            ]),
            400
        );
        assert_eq!(setup(&[("Sec-Fetch-Site", "same-origin")]), 400);
        assert_eq!(
            setup(&[
                ("Host", "cam.local:8080"),
                ("Origin", "http://evil.example")
            ]),
            403
        );
        assert_eq!(
            setup(&[("Host", "cam.local:8080"), ("Origin", "null")]),
            403
        );
        assert_eq!(setup(&[("Sec-Fetch-Site", "cross-site")]), 403);
        assert_eq!(setup(&[("Sec-Fetch-Site", "same-site")]), 403);
        let form = answer(
            &c,
            &req(
                "POST",
                "/api/v1/setup",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                "password=12345678",
            ),
        );
        assert_eq!(form.status, 415);
    }

    #[test]
    fn config_writes_validate_name_the_field_and_keep_secrets() {
        let c = ctx();
        post_setup(&c, "long enough");
        let auth = [("Authorization", "Basic YWRtaW46bG9uZyBlbm91Z2g=")];
        let send =
            |method: &str, target: &str, body: &str| answer(&c, &req(method, target, &auth, body));
        let a = send(
            "PATCH",
            "/api/v1/config",
            r#"{"paths":{"cam":{"bitrate_kbps":1}}}"#,
        );
        assert_eq!(a.status, 400);
        assert_eq!(body(&a)["error"]["field"], "paths.cam.bitrate_kbps");
        assert_eq!(
            c.control.config().paths["cam"].bitrate_kbps,
            None,
            "nothing changed"
        );
        let a = send("PATCH", "/api/v1/config", "{not json");
        assert_eq!(
            (a.status, body(&a)["error"]["code"].as_str()),
            (400, Some("bad_json"))
        );
        let a = send(
            "PATCH",
            "/api/v1/config",
            r#"{"paths":{"cam":{"bitrate_kbps":800}},"users":[{"name":"v","password":"pw"}]}"#,
        );
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(body(&a)["config"]["paths"]["cam"]["bitrate_kbps"], 800);
        assert_eq!(
            body(&a)["config"]["users"],
            serde_json::json!([{"name": "v"}])
        );
        assert_eq!(c.control.config().users[0].password, "pw");
        // PUT of what GET returned keeps everything, passwords and admin included.
        let doc = body(&send("GET", "/api/v1/config", ""));
        let before = c.control.config();
        assert_eq!(send("PUT", "/api/v1/config", &doc.to_string()).status, 200);
        assert_eq!(c.control.config(), before);
        let a = send(
            "PUT",
            "/api/v1/config",
            r#"{"admin":{"password_hash":"x"}}"#,
        );
        assert_eq!(body(&a)["error"]["field"], "admin");
        // Paths: add, conflict, delete, unknown, and the last one stays.
        let a = send(
            "POST",
            "/api/v1/paths/side",
            r#"{"source":"test-pattern","bitrate_kbps":500}"#,
        );
        assert_eq!(a.status, 201);
        assert_eq!(body(&a)["config"]["paths"]["side"]["bitrate_kbps"], 500);
        assert_eq!(send("POST", "/api/v1/paths/side", "{}").status, 409);
        let a = send("POST", "/api/v1/paths/x", r#"{"fps":0}"#);
        assert_eq!(body(&a)["error"]["field"], "paths.x.fps");
        assert_eq!(send("DELETE", "/api/v1/paths/side", "").status, 200);
        assert_eq!(send("DELETE", "/api/v1/paths/side", "").status, 404);
        let a = send("DELETE", "/api/v1/paths/cam", "");
        assert_eq!(
            (a.status, body(&a)["error"]["field"].as_str()),
            (400, Some("paths"))
        );
        // The admin password can be changed; the old one then fails.
        assert_eq!(
            send(
                "PUT",
                "/api/v1/admin/password",
                r#"{"password":"new password"}"#
            )
            .status,
            200
        );
        assert_eq!(send("GET", "/api/v1/config", "").status, 401);
    }

    #[test]
    fn viewers_watch_their_paths_and_nothing_else() {
        let c = ctx();
        post_setup(&c, "long enough");
        let admin = [("Authorization", "Basic YWRtaW46bG9uZyBlbm91Z2g=")];
        let users = r#"{"users":[
            {"name":"ann","password":"ann-pass","permissions":[{"action":"read","path":"cam"}]},
            {"name":"bob","password":"bob-pass","permissions":[{"action":"read","path":"door"}]},
            {"name":"pub","password":"pub-pass","permissions":[{"action":"publish","path":"cam"}]}]}"#;
        let a = answer(&c, &req("PATCH", "/api/v1/config", &admin, users));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let basic = |u: &str, p: &str| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let as_user = |auth: &str, method: &str, target: &str| {
            answer(&c, &req(method, target, &[("Authorization", auth)], ""))
        };
        let ann = basic("ann", "ann-pass");
        let a = as_user(&ann, "GET", "/api/v1/session");
        assert_eq!(
            body(&a),
            serde_json::json!({"setup_required": false, "logged_in": true,
                "role": "viewer", "user": "ann", "paths": ["cam"]})
        );
        // Status: its path, what watching needs, no source or readers.
        let s = body(&as_user(&ann, "GET", "/api/v1/status"));
        assert_eq!(s["paths"][0]["name"], "cam");
        for secret in ["source", "readers", "last_error", "route", "recording"] {
            assert!(s["paths"][0].get(secret).is_none(), "{secret}: {s}");
        }
        for device in ["board", "board_profile", "first_boot", "led"] {
            assert!(s.get(device).is_none(), "{device}: {s}");
        }
        assert_eq!(as_user(&ann, "GET", "/api/v1/paths/cam").status, 200);
        let snap = as_user(&ann, "GET", "/api/v1/paths/cam/snapshot.jpg");
        assert_eq!((snap.status, &snap.body[..2]), (200, &[0xff, 0xd8][..]));
        // Every route that is not a viewer's is refused with 403, whatever it is.
        for (method, target) in routes::EXAMPLES {
            let route = routes::decode(method, target).unwrap();
            if matches!(route.access(), Access::Status | Access::Admin) {
                let a = answer(&c, &req(method, target, &[("Authorization", &ann)], "{}"));
                assert_eq!(a.status, 403, "{method} {target}");
                if !mediamtx::is_mediamtx(target) {
                    assert_eq!(body(&a)["error"]["code"], "admin_only", "{method} {target}");
                }
            }
        }
        // Another viewer's path, and a publisher who may not watch: 403, nothing shown.
        let bob = basic("bob", "bob-pass");
        assert_eq!(
            body(&as_user(&bob, "GET", "/api/v1/status"))["paths"],
            serde_json::json!([])
        );
        for target in [
            "/api/v1/paths/cam",
            "/api/v1/paths/cam/snapshot.jpg",
            "/api/v1/paths/cam/live-links",
        ] {
            for who in [&bob, &basic("pub", "pub-pass")] {
                let a = as_user(who, "GET", target);
                assert_eq!(
                    (a.status, body(&a)["error"]["code"].as_str()),
                    (403, Some("not_allowed")),
                    "{target}"
                );
            }
        }
        // A wrong password is a 401 like the admin's.
        assert_eq!(
            as_user(&basic("ann", "nope"), "GET", "/api/v1/status").status,
            401
        );
        // A viewer's live link opens its path's snapshot, not another path, and ends with
        // its password.
        let links = body(&as_user(&ann, "GET", "/api/v1/paths/cam/live-links"));
        let snapshot = links["snapshot"].as_str().unwrap().to_string();
        assert_eq!(get(&c, &snapshot).status, 200);
        let token = play::token_in(&snapshot).unwrap().to_string();
        assert_eq!(
            get(
                &c,
                &format!("/api/v1/paths/door/snapshot.jpg?token={token}")
            )
            .status,
            401
        );
        assert_eq!(
            get(&c, &format!("/api/v1/status?token={token}")).status,
            401,
            "a link is no login"
        );
        let a = answer(
            &c,
            &req(
                "PATCH",
                "/api/v1/config",
                &admin,
                r#"{"users":[{"name":"ann","password":"new-pass"}]}"#,
            ),
        );
        assert_eq!(a.status, 200);
        assert_eq!(get(&c, &snapshot).status, 401);
    }
}
