//! The HTTP side: a tiny_http server on its own named threads serving the read-only JSON
//! API, `/healthz` and `/metrics`.
//!
//! Owns: the listener and its worker threads, request limits, the mapping from routes to
//! responses and from errors to HTTP status codes and JSON error bodies (`answer`, in one
//! place). Reads the appliance only through `status::Monitor` and an injected camera lister;
//! never imports `rtsp` or `record`. Not yet: config writes, login, the phone page.

pub mod merge_patch;
pub mod metrics;
pub mod routes;
pub mod server;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::config::HttpConfig;
use crate::status::Monitor;
use routes::{Route, RouteError};

/// Requests are small; anything larger is refused before it is read.
pub const MAX_BODY: usize = 64 * 1024;
/// Requests answered at once; more wait in tiny_http's queue.
pub const WORKERS: usize = 2;

/// Lists capture devices as JSON (`--list-cameras --json`): injected so that `http` names no
/// capture code and tests can fake it.
pub type CameraLister = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the handlers read.
pub struct HttpContext {
    pub monitor: Arc<Monitor>,
    pub cameras: CameraLister,
}

/// A finished answer, before it meets the socket.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

const JSON: &str = "application/json";
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

fn json(status: u16, value: &impl Serialize) -> Answer {
    match serde_json::to_string_pretty(value) {
        Ok(body) => Answer {
            status,
            content_type: JSON,
            body: body + "\n",
            allow: None,
        },
        Err(e) => error(500, "internal", &format!("cannot serialise: {e}")),
    }
}

/// A JSON error: `{"error":{"code":..,"message":..,"field":null}}`.
pub fn error(status: u16, code: &str, message: &str) -> Answer {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field: None,
        },
    };
    Answer {
        status,
        content_type: JSON,
        body: serde_json::to_string(&body).unwrap_or_default() + "\n",
        allow: None,
    }
}

/// Answers one request. `body_length` is the declared body size, if any.
pub fn answer(ctx: &HttpContext, method: &str, url: &str, body_length: Option<usize>) -> Answer {
    if body_length.is_some_and(|n| n > MAX_BODY) {
        return error(
            413,
            "payload_too_large",
            &format!("request bodies are limited to {MAX_BODY} bytes"),
        );
    }
    let route = match routes::decode(method, url) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            return error(404, "not_found", "no such resource");
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let mut a = error(
                405,
                "method_not_allowed",
                &format!("{method} is not allowed here; allowed: {allow}"),
            );
            a.allow = Some(allow);
            return a;
        }
    };
    let m = &ctx.monitor;
    match route {
        Route::Status => json(200, &m.snapshot()),
        Route::Paths => json(200, &m.snapshot().paths),
        Route::Path(name) => match m.path(&name) {
            Some(p) => json(200, &p),
            None => error(404, "unknown_path", &format!("no path named `{name}`")),
        },
        Route::Cameras => json(200, &(ctx.cameras)()),
        Route::Healthz => {
            let s = m.snapshot();
            let problems: Vec<serde_json::Value> = s
                .paths
                .iter()
                .filter_map(|p| {
                    let why = p.problem.as_ref()?;
                    Some(serde_json::json!({"path": p.name, "problem": why}))
                })
                .collect();
            if problems.is_empty() {
                json(200, &serde_json::json!({"status": "ok"}))
            } else {
                json(
                    503,
                    &serde_json::json!({"status": "unhealthy", "problems": problems}),
                )
            }
        }
        Route::Metrics => Answer {
            status: 200,
            content_type: METRICS,
            body: metrics::render(&m.snapshot(), metrics::process_rss_bytes()),
            allow: None,
        },
    }
}

/// A running HTTP server; `stop` ends it.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `cfg.listen` and starts `WORKERS` threads "http-N".
    pub fn start(cfg: &HttpConfig, ctx: HttpContext) -> io::Result<HttpServer> {
        let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for HTTP on {}: {e}", cfg.listen),
            )
        })?;
        let addr = listener.local_addr()?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| io::Error::other(format!("cannot start HTTP on {addr}: {e}")))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Arc::new(ctx);
        let mut workers = Vec::new();
        for n in 0..WORKERS {
            let (s, halt, c) = (server.clone(), stop.clone(), ctx.clone());
            let worker = std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || serve(&s, &halt, &c));
            match worker {
                Ok(w) => workers.push(w),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(HttpServer {
            server,
            addr,
            stop,
            workers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the workers (each finishes its request) and closes the listener.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn serve(server: &tiny_http::Server, stop: &AtomicBool, ctx: &HttpContext) {
    while !stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                log::error!("http: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let a = answer(
            ctx,
            request.method().as_str(),
            request.url(),
            request.body_length(),
        );
        if a.status >= 500 && a.status != 503 {
            log::error!(
                "http: {} {} -> {}",
                request.method(),
                request.url(),
                a.status
            );
        }
        let mut response = tiny_http::Response::from_string(a.body).with_status_code(a.status);
        for (name, value) in [
            ("Content-Type", Some(a.content_type)),
            ("Cache-Control", Some("no-store")),
            ("Allow", a.allow),
        ] {
            if let Some(value) = value {
                if let Ok(h) = tiny_http::Header::from_bytes(name, value) {
                    response.add_header(h);
                }
            }
        }
        if let Err(e) = request.respond(response) {
            log::debug!("http: cannot answer: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HttpContext {
        HttpContext {
            monitor: crate::status::tests::fake_monitor(),
            cameras: Arc::new(|| serde_json::json!([{"path": "/dev/video0"}])),
        }
    }

    fn body(a: &Answer) -> serde_json::Value {
        serde_json::from_str(&a.body).expect("json body")
    }

    #[test]
    fn errors_are_json_with_code_message_and_field() {
        let c = ctx();
        let a = answer(&c, "GET", "/nope", None);
        assert_eq!((a.status, a.content_type, a.allow), (404, JSON, None));
        assert_eq!(body(&a)["error"]["code"], "not_found");
        assert!(body(&a)["error"]["field"].is_null());
        let a = answer(&c, "DELETE", "/api/v1/status", None);
        assert_eq!((a.status, a.allow), (405, Some("GET")));
        assert_eq!(body(&a)["error"]["code"], "method_not_allowed");
        let a = answer(&c, "GET", "/api/v1/paths/other", None);
        assert_eq!(a.status, 404);
        assert_eq!(body(&a)["error"]["code"], "unknown_path");
        let a = answer(&c, "GET", "/api/v1/status", Some(MAX_BODY + 1));
        assert_eq!(a.status, 413);
    }

    #[test]
    fn routes_answer_from_the_monitor() {
        let c = ctx();
        let a = answer(&c, "GET", "/api/v1/paths/cam", None);
        assert_eq!(a.status, 200);
        assert_eq!(body(&a)["name"], "cam");
        assert_eq!(
            body(&answer(&c, "GET", "/api/v1/paths", None))[0]["name"],
            "cam"
        );
        assert_eq!(
            body(&answer(&c, "GET", "/api/v1/cameras", None))[0]["path"],
            "/dev/video0"
        );
        // The fake path's camera is lost: unhealthy, with the reason.
        let a = answer(&c, "GET", "/healthz", None);
        assert_eq!(a.status, 503);
        assert_eq!(body(&a)["problems"][0]["problem"], "camera lost: unplugged");
        let a = answer(&c, "GET", "/metrics", None);
        assert_eq!((a.status, a.content_type), (200, METRICS));
        assert!(a.body.contains("vigint_frames_total{path=\"cam\"} 10"));
    }
}
