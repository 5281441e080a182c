//! The HTTP/1.1 transport: hyper on the tokio runtime. A listener task accepts, a semaphore
//! caps connections, hyper frames each connection (`timed_io` adds our timeouts), and every
//! well-framed request goes to one synchronous `Handler`, run with `spawn_blocking` (it may
//! wait for the supervisor), whose `Response` becomes bytes, a file range, a stream or a
//! WebSocket.
//!
//! Owns: the listener, the connection cap (503 `busy`), what hyper is allowed to accept
//! (heads up to `max_head`, `Content-Length` bodies up to `max_body`: 413 before reading,
//! `Transfer-Encoding` refused with 411, slow bodies 408), catching handler panics (500
//! `internal`), turning `Response`s into hyper answers, upgrades, and `stop`. The only file
//! naming hyper. Does not own: routes, JSON handlers or authentication (`mod.rs`), the
//! WebSocket protocol (`ws`), the read and write timers (`timed_io`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use crate::http::body::{read_file, Body, Kind};
use crate::http::timed_io::{BusyGuard, ConnState, TimedIo, Timeouts};
use crate::http::ws;

pub use crate::http::message::{log_path, BodySender, FileBody, Request, Response, Streamed};

/// Every request goes here, on a blocking thread of the runtime's pool.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// An upgraded connection, as `ws` gets it.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line and headers, in bytes; larger heads get 431.
    pub max_head: usize,
    /// Declared `Content-Length`; larger bodies get 413 without being read.
    pub max_body: usize,
    /// From a request's first byte until its head has arrived (then 408), and again from
    /// the head for its body.
    pub head_timeout: Duration,
    /// How long a connection may wait for the first byte of its next request.
    pub idle_timeout: Duration,
    /// A write (an answer, a chunk of a file) that makes no progress this long ends the
    /// connection: the client stopped reading.
    pub write_timeout: Duration,
    /// Open connections (WebSockets included); the next one gets 503 `busy`. Handlers run
    /// one per connection at most, so this also bounds the blocking threads they use.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_body: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
            max_connections: 32,
        }
    }
}

/// More headers than this get 431, whatever their size.
const MAX_HEADERS: usize = 100;
/// Pause after a failed accept (EMFILE leaves the listener readable: no spinning).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per kind of trouble this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// After refusing a connection (503), what it sent is read and dropped for this long, so
/// that closing does not reset the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(1);
/// `stop` waits this long for handlers that are running, then cuts their connections.
const STOP_GRACE: Duration = Duration::from_secs(5);
const STOP_FORCE: Duration = Duration::from_secs(1);

/// A running server; `stop` (or dropping it) ends it.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    stopped: bool,
}

struct Shared {
    limits: Limits,
    handler: Handler,
    rt: Handle,
    tasks: Mutex<Tasks>,
    /// Signalled whenever a task ends.
    ended: Condvar,
}

/// The accept task and the connection (and WebSocket) tasks still running.
#[derive(Default)]
struct Tasks {
    accepting: bool,
    next_id: u64,
    open: HashMap<u64, AbortHandle>,
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the runtime as a task that `stop` waits for (and cuts after the grace).
    fn spawn_tracked<F>(self: &Arc<Self>, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Held across the spawn, so the task's end (which takes the lock) comes after its
        // registration.
        let mut tasks = self.tasks();
        let id = tasks.next_id;
        tasks.next_id += 1;
        let ended = Ended {
            shared: self.clone(),
            id,
        };
        let task = self.rt.spawn(async move {
            let _ended = ended;
            f.await;
        });
        tasks.open.insert(id, task.abort_handle());
    }
}

/// Removes a task from the open set when it ends, however it ends (aborts included).
struct Ended {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.shared.tasks().open.remove(&self.id);
        self.shared.ended.notify_all();
    }
}

impl HttpServer {
    /// Binds `listen` and starts accepting on `rt`.
    pub fn start(
        rt: &Handle,
        listen: SocketAddr,
        limits: Limits,
        handler: Handler,
    ) -> io::Result<HttpServer> {
        let named = |e: io::Error| {
            io::Error::new(e.kind(), format!("cannot listen for HTTP on {listen}: {e}"))
        };
        let std_listener = std::net::TcpListener::bind(listen).map_err(named)?;
        std_listener.set_nonblocking(true).map_err(named)?;
        let addr = std_listener.local_addr().map_err(named)?;
        let listener = {
            let _in_rt = rt.enter();
            TcpListener::from_std(std_listener).map_err(named)?
        };
        let shared = Arc::new(Shared {
            limits,
            handler,
            rt: rt.clone(),
            tasks: Mutex::new(Tasks {
                accepting: true,
                ..Tasks::default()
            }),
            ended: Condvar::new(),
        });
        let (stop, stopping) = watch::channel(false);
        let s = shared.clone();
        rt.spawn(async move {
            accept_loop(listener, &s, stopping).await;
            s.tasks().accepting = false;
            s.ended.notify_all();
        });
        Ok(HttpServer {
            addr,
            shared,
            stop,
            stopped: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes idle connections at once, lets running handlers finish and
    /// write their answer (with `Connection: close`) for up to 5 s, then cuts what is left.
    /// Blocks: call it from a thread, not from a task.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let _ = self.stop.send(true);
        let busy = |t: &mut Tasks| t.accepting || !t.open.is_empty();
        let tasks = self.shared.tasks();
        let (mut tasks, _) = self
            .shared
            .ended
            .wait_timeout_while(tasks, STOP_GRACE, busy)
            .unwrap_or_else(|e| e.into_inner());
        if !busy(&mut tasks) {
            return;
        }
        for t in tasks.open.values() {
            t.abort();
        }
        let (tasks, _) = self
            .shared
            .ended
            .wait_timeout_while(tasks, STOP_FORCE, busy)
            .unwrap_or_else(|e| e.into_inner());
        if !tasks.open.is_empty() {
            log::warn!(
                "http: {} connection(s) still open after stop; leaving them",
                tasks.open.len()
            );
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts events and says when one may be logged: the first at once, then at most one per
/// `every`, with the number left unlogged in between.
struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(events not logged since the last logged one)` when this one may be logged.
    fn tick(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

fn more(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more not logged)")
    }
}

/// Resolves when `stop` has been called (or the server is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// Runs until `stop`: never exits on an accept error (EMFILE, ENFILE, ENOBUFS, ...), logs it
/// (rate-limited) and tries again a little later.
async fn accept_loop(listener: TcpListener, shared: &Arc<Shared>, stopping: watch::Receiver<bool>) {
    let cap = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut errors = LogLimiter::new(LOG_EVERY);
    let mut refusals = LogLimiter::new(LOG_EVERY);
    let mut stop = stopping.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
                    // The client gave up before we accepted: nothing wrong here.
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {
                        log::debug!("http: accept: {e}");
                    }
                    _ => {
                        if let Some(n) = errors.tick(Instant::now()) {
                            log::error!("http: accept failed: {e}; retrying{}", more(n));
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
                continue;
            }
        };
        match cap.clone().try_acquire_owned() {
            Ok(permit) => {
                let s = shared.clone();
                let stopping = stopping.clone();
                shared.spawn_tracked(async move {
                    serve_connection(stream, peer, s, permit, stopping).await;
                });
            }
            Err(_) => {
                let max = shared.limits.max_connections;
                if let Some(n) = refusals.tick(Instant::now()) {
                    log::warn!(
                        "http: {max} connections open (the limit); refusing {peer}{}",
                        more(n)
                    );
                }
                refuse(stream);
            }
        }
    }
}

/// A whole answer written straight to a socket, for when there is no request to answer
/// through hyper: the connection cap and a head that came too slowly.
fn raw_answer(status: u16, reason: &str, code: &str, message: &str) -> Bytes {
    let body = crate::http::message::json_error_body(code, message, None);
    let mut b = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    b.extend_from_slice(&body);
    Bytes::from(b)
}

/// 503 `busy`: one nonblocking write (a fresh socket's send buffer takes it whole), then
/// what the client sent is read and dropped for a moment, so closing does not reset the
/// connection before it has read the answer.
fn refuse(stream: TcpStream) {
    let answer = raw_answer(
        503,
        "Service Unavailable",
        "busy",
        "too many connections; try again later",
    );
    let _ = stream.try_write(&answer);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

/// What one connection's requests share.
struct Conn {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    /// The connection's place under the cap; a WebSocket takes it along.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    stopping: watch::Receiver<bool>,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    stopping: watch::Receiver<bool>,
) {
    // Answers go out whole: no reason to wait for Nagle.
    let _ = stream.set_nodelay(true);
    let l = &shared.limits;
    let state = Arc::new(ConnState::default());
    let timeout_answer = raw_answer(
        408,
        "Request Timeout",
        "request_timeout",
        "the request did not arrive in time",
    );
    let io = TimedIo::new(
        stream,
        state.clone(),
        Timeouts {
            idle: l.idle_timeout,
            head: l.head_timeout,
            write: l.write_timeout,
        },
        timeout_answer,
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Our own (`timed_io`): hyper's would also cut idle connections at the head timeout.
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS)
        .max_header_size(l.max_head)
        .keep_alive(true);
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        state: state.clone(),
        peer,
        permit: Mutex::new(Some(permit)),
        stopping: stopping.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(answer(&conn, req).await) }
    });
    let served = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(served);
    let mut stop = stopping;
    tokio::select! {
        r = served.as_mut() => {
            if let Err(e) = r {
                log::debug!("http: {peer}: {e}");
            }
        }
        _ = stopped(&mut stop) => {
            // Idle or in the middle of a head: close now. A request in progress gets its
            // answer, with `Connection: close`.
            if state.busy() {
                served.as_mut().graceful_shutdown();
                if let Err(e) = served.await {
                    log::debug!("http: {peer}: {e}");
                }
            }
        }
    }
}

/// A refusal that ends the connection.
fn closing(status: u16, code: &str, message: &str) -> (Response, bool) {
    (Response::json_error(status, code, message), true)
}

/// Reads the body, runs the handler, and turns its `Response` into hyper's.
async fn answer(conn: &Arc<Conn>, mut req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let busy = conn.state.begin();
    let head_only = req.method() == Method::HEAD;
    let on_upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    // HTTP/1.0 closes unless asked not to; say so (hyper would only stay silent).
    let close_10 = req.version() == Version::HTTP_10 && !has_token(&req, "keep-alive");
    let (response, close) = match read_request(conn, req).await {
        Ok(request) => (run_handler(&conn.shared, request).await, false),
        Err(refusal) => refusal,
    };
    into_hyper(
        conn,
        response,
        head_only,
        close || close_10,
        busy,
        on_upgrade,
    )
}

fn has_token(req: &hyper::Request<Incoming>, token: &str) -> bool {
    req.headers().get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The request with its whole body, or the refusal that closes the connection.
async fn read_request(
    conn: &Conn,
    req: hyper::Request<Incoming>,
) -> Result<Request, (Response, bool)> {
    let l = &conn.shared.limits;
    // hyper decodes chunked bodies, but an API that takes small JSON documents has no use
    // for them, and a length known up front lets us refuse before reading. Other codings
    // never get here: hyper answers 400 to a request whose last coding is not chunked.
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        return Err(closing(
            411,
            "length_required",
            "send the body with a Content-Length",
        ));
    }
    // hyper has checked that it is one valid number.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if declared > l.max_body as u64 {
        // Unread, so hyper never sends `100 Continue` for it.
        return Err(closing(
            413,
            "payload_too_large",
            &format!("request bodies are limited to {} bytes", l.max_body),
        ));
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(l.head_timeout, Limited::new(body, l.max_body).collect())
        .await
    {
        Ok(Ok(b)) => b.to_bytes().to_vec(),
        Ok(Err(e)) => {
            return Err(closing(
                400,
                "bad_request",
                &format!("cannot read the body: {e}"),
            ))
        }
        Err(_) => {
            return Err(closing(
                408,
                "request_timeout",
                "the request body did not arrive in time",
            ))
        }
    };
    let target = match parts.uri.path_and_query() {
        Some(p) => p.as_str().to_string(),
        None => parts.uri.to_string(),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_string(),
        target,
        headers,
        body,
        peer: conn.peer,
    })
}

/// The handler on a blocking thread; a panic there is 500 `internal`.
async fn run_handler(shared: &Arc<Shared>, request: Request) -> Response {
    let handler = shared.handler.clone();
    let what = format!("{} {}", request.method, log_path(&request.target));
    match tokio::task::spawn_blocking(move || handler(&request)).await {
        Ok(r) => r,
        Err(e) => {
            log::error!("http: the handler failed on {what}: {e}");
            Response::json_error(500, "internal", "internal error")
        }
    }
}

/// Headers the transport writes itself.
fn framing_header(name: &str) -> bool {
    [
        "content-length",
        "connection",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn into_hyper(
    conn: &Arc<Conn>,
    r: Response,
    head_only: bool,
    close: bool,
    busy: BusyGuard,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> hyper::Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = hyper::Response::new(Body::empty(None));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, value) in &r.headers {
        if framing_header(name) {
            continue;
        }
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => log::warn!("http: dropping a malformed answer header {name:?}"),
        }
    }
    let length = |h: &mut hyper::HeaderMap, n: u64| {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    };
    let no_length = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = match r.streamed {
        Some(Streamed::WebSocket(on_open)) => match on_upgrade {
            Some(on_upgrade) if status == StatusCode::SWITCHING_PROTOCOLS => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                start_websocket(conn, on_upgrade, on_open);
                Body::empty(Some(busy))
            }
            _ => {
                let e = Response::json_error(500, "internal", "a WebSocket without a handshake");
                return into_hyper(conn, e, head_only, true, busy, None);
            }
        },
        Some(Streamed::Body(rx)) if !head_only => Body {
            kind: Kind::Chunks(rx),
            _busy: Some(busy),
        },
        Some(Streamed::Body(_)) => Body::empty(Some(busy)),
        None => match r.file {
            Some(f) => {
                length(headers, f.len);
                if head_only {
                    Body::empty(Some(busy))
                } else {
                    Body {
                        kind: Kind::File {
                            left: f.len,
                            rx: read_file(f),
                            failed: None,
                        },
                        _busy: Some(busy),
                    }
                }
            }
            None if no_length => Body::empty(Some(busy)),
            None => {
                length(headers, r.body.len() as u64);
                if head_only {
                    Body::empty(Some(busy))
                } else {
                    Body {
                        kind: Kind::Full(Some(Bytes::from(r.body))),
                        _busy: Some(busy),
                    }
                }
            }
        },
    };
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    *out.body_mut() = body;
    out
}

/// Once hyper hands the connection over, runs the handler's WebSocket task; it keeps the
/// connection's place under the cap and ends at `stop`.
fn start_websocket(
    conn: &Arc<Conn>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    on_open: crate::http::message::OnWebSocket,
) {
    let permit = conn.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
    let state = conn.state.clone();
    let peer = conn.peer;
    let mut stopping = conn.stopping.clone();
    conn.shared.spawn_tracked(async move {
        let _permit = permit;
        let upgraded = tokio::select! {
            u = on_upgrade => u,
            _ = stopped(&mut stopping) => return,
        };
        match upgraded {
            Ok(u) => {
                state.set_upgraded();
                let socket = ws::open(TokioIo::new(u)).await;
                tokio::select! {
                    _ = on_open(socket) => {}
                    _ = stopped(&mut stopping) => {}
                }
            }
            Err(e) => log::debug!("http: {peer}: upgrade failed: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_logs_first_then_once_per_period_with_a_count() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.tick(t0), Some(0));
        assert_eq!(l.tick(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.tick(t0 + Duration::from_secs(9)), None);
        assert_eq!(l.tick(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(l.tick(t0 + Duration::from_secs(11)), None);
        assert_eq!(l.tick(t0 + Duration::from_secs(30)), Some(1));
    }

    #[test]
    fn raw_answers_are_whole_http_messages() {
        let a = raw_answer(503, "Service Unavailable", "busy", "full");
        let text = String::from_utf8(a.to_vec()).expect("utf-8");
        let body = "{\"error\":{\"code\":\"busy\",\"message\":\"full\",\"field\":null}}\n";
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn the_transport_owns_framing_headers() {
        for h in [
            "Content-Length",
            "connection",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            assert!(framing_header(h), "{h}");
        }
        assert!(!framing_header("Content-Type"));
    }
}
