//! Our own small blocking HTTP/1.1 transport: the listener, one thread per connection,
//! request framing (heads parsed by `httparse`, `Content-Length` bodies only), keep-alive,
//! timeouts and limits, and writing responses.
//!
//! Owns: sockets, threads, timeouts, the connection cap, framing errors (400, 408, 411, 413,
//! 431, 501, 503 `busy`) and catching handler panics (500 `internal`). Does not own routes,
//! JSON handlers or authentication: every well-framed request goes to one `Handler`.
//!
//! Why not tiny_http: it sets no read timeout on accepted connections (an idle client holds
//! a thread forever) and its accept thread exits for good on any accept error (EMFILE).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request, head and whole body, as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query), e.g. `/api/v1/paths?x=1`.
    pub target: String,
    /// In arrival order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers. The transport adds `Content-Length` and `Connection` itself and
/// drops those (and `Transfer-Encoding`) from `headers`. Handlers answer HEAD as they would
/// GET: the transport sends the length and drops the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// A body streamed from a file, which replaces `body`: for answers too big to hold in
    /// memory (recordings).
    pub file: Option<FileBody>,
}

/// `len` bytes of `file` from `offset`, sent in 64 KiB chunks. Should the file turn out
/// shorter, the connection is closed (the length was promised).
#[derive(Debug, Clone)]
pub struct FileBody {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
}

impl PartialEq for FileBody {
    fn eq(&self, other: &FileBody) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset && self.len == other.len
    }
}

impl Response {
    /// `{"error":{"code":..,"message":..,"field":null}}` plus a newline, as
    /// `application/json`: the transport's own refusals.
    pub fn json_error(status: u16, code: &str, message: &str) -> Response {
        Response::json_field_error(status, code, message, None)
    }

    /// The one JSON error body of the API (`http::error` and `http::field_error` use it):
    /// `{"error":{"code":..,"message":..,"field":..}}` plus a newline.
    pub fn json_field_error(
        status: u16,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) -> Response {
        // Structs, not `json!`: keys stay in this order.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        #[derive(serde::Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
            field: Option<&'a str>,
        }
        let body = Body {
            error: Detail {
                code,
                message,
                field,
            },
        };
        Response {
            status,
            headers: vec![("Content-Type", "application/json".to_string())],
            body: (serde_json::to_string(&body).unwrap_or_default() + "\n").into_bytes(),
            file: None,
        }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line and headers, in bytes; larger heads get 431.
    pub max_head: usize,
    /// Declared `Content-Length`; larger bodies get 413 without being read.
    pub max_body: usize,
    /// From a request's first byte until its head and body have arrived; then 408.
    pub head_timeout: Duration,
    /// How long a connection may wait for the first byte of its next request.
    pub idle_timeout: Duration,
    /// For writing one response (or the `100 Continue`).
    pub write_timeout: Duration,
    /// Open connections; the next one gets 503 `busy`.
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

/// Connection threads run the handler too. The deepest is the recordings list, which may
/// summarize a segment (mp4-atom decoding its `moov`): measured 32-48 KiB of stack in a
/// release build, 320-352 KiB in a debug build, whose generic decoders are unoptimised (the
/// tests' builds: 128 KiB overflowed and aborted the process). Untouched stack pages cost
/// no memory.
const CONN_STACK: usize = if cfg!(debug_assertions) {
    1024 * 1024
} else {
    128 * 1024
};
/// More headers than this get 431, whatever their size.
const MAX_HEADERS: usize = 100;
const READ_CHUNK: usize = 8 * 1024;
/// File bodies are copied in chunks this large (on the heap: connection stacks are small).
const FILE_CHUNK: usize = 64 * 1024;
/// How often the accept thread looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(200);
/// Pause after a failed accept (EMFILE leaves the listener readable: no spinning).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per kind of trouble this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// After an answer that closes the connection, unread request bytes are read and dropped
/// for this long, so that closing does not reset the connection before the client has
/// read the answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;
/// `stop` waits this long for handlers that are running, then cuts their sockets.
const STOP_GRACE: Duration = Duration::from_secs(5);
const STOP_FORCE: Duration = Duration::from_secs(1);

/// A running server; `stop` (or dropping it) ends it.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    limits: Limits,
    handler: Handler,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    /// Signalled whenever a connection ends.
    ended: Condvar,
}

/// Open connections: a second handle on each socket, so that `stop` can wake its thread.
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl HttpServer {
    /// Binds `listen` and starts the accept thread "http-accept".
    pub fn start(listen: SocketAddr, limits: Limits, handler: Handler) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen for HTTP on {listen}: {e}"))
        })?;
        let addr = listener.local_addr()?;
        // Stopping must not need a client to arrive: the accept thread polls the listener
        // with a timeout and looks at the stop flag in between. A self-connect to wake a
        // blocking accept() would be fragile (wildcard addresses, a full backlog).
        // Nonblocking so that a connection reset between poll and accept cannot block us.
        listener
            .set_nonblocking(true)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot set up HTTP on {addr}: {e}")))?;
        let shared = Arc::new(Shared {
            limits,
            handler,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            ended: Condvar::new(),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(&listener, &s))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start HTTP on {addr}: {e}")))?;
        Ok(HttpServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes idle connections at once, lets running handlers finish and
    /// write their answer (with `Connection: close`) for up to 5 s, and joins the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        if accept.join().is_err() {
            log::error!("http: the accept thread panicked");
        }
        // No new connections from here on. Shutting the read side wakes every thread blocked
        // in a read (idle, or in the middle of a head) with end-of-file; a thread running its
        // handler still writes the answer, then sees the stop flag and ends.
        let conns = self.shared.conns();
        for s in conns.open.values() {
            let _ = s.shutdown(Shutdown::Read);
        }
        let (conns, _) = self
            .shared
            .ended
            .wait_timeout_while(conns, STOP_GRACE, |c| !c.open.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        if conns.open.is_empty() {
            return;
        }
        // A handler still running, or a client not reading its answer: cut the sockets.
        for s in conns.open.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let (conns, _) = self
            .shared
            .ended
            .wait_timeout_while(conns, STOP_FORCE, |c| !c.open.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        if !conns.open.is_empty() {
            log::warn!(
                "http: {} connection thread(s) still busy in a handler after stop; leaving them",
                conns.open.len()
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

/// Waits until the listener has a connection or `timeout` passes.
fn wait_readable(listener: &TcpListener, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd that lives across the call; its fd belongs to `listener`,
    // which is borrowed, hence open, for the duration.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(n > 0)
}

/// Runs until `stop`: never exits on an accept error (EMFILE, ENFILE, ENOBUFS, ...), logs it
/// (rate-limited) and tries again a little later.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut errors = LogLimiter::new(LOG_EVERY);
    let mut refusals = LogLimiter::new(LOG_EVERY);
    while !shared.stopping() {
        match wait_readable(listener, ACCEPT_POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                if let Some(n) = errors.tick(Instant::now()) {
                    log::error!("http: waiting for connections failed: {e}{}", more(n));
                }
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => admit(shared, stream, peer, &mut refusals),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
                // The client gave up before we accepted: nothing wrong here.
                io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {
                    log::debug!("http: accept: {e}");
                }
                _ => {
                    if let Some(n) = errors.tick(Instant::now()) {
                        log::error!("http: accept failed: {e}; retrying{}", more(n));
                    }
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
            },
        }
    }
}

/// Starts a connection thread, or answers 503 when at the cap.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, refusals: &mut LogLimiter) {
    let id = {
        let mut conns = shared.conns();
        let max = shared.limits.max_connections;
        if conns.open.len() >= max {
            drop(conns);
            if let Some(n) = refusals.tick(Instant::now()) {
                log::warn!(
                    "http: {max} connections open (the limit); refusing {peer}{}",
                    more(n)
                );
            }
            refuse(stream);
            return;
        }
        let handle = match stream.try_clone() {
            Ok(h) => h,
            Err(e) => {
                drop(conns);
                if let Some(n) = refusals.tick(Instant::now()) {
                    log::warn!("http: refusing {peer}: {e}{}", more(n));
                }
                refuse(stream);
                return;
            }
        };
        let id = conns.next_id;
        conns.next_id += 1;
        conns.open.insert(id, handle);
        id
    };
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("http-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            let _ended = Ended { shared: &s, id };
            serve_connection(&s, stream, peer);
        });
    if let Err(e) = spawned {
        let handle = shared.conns().open.remove(&id);
        if let Some(n) = refusals.tick(Instant::now()) {
            log::warn!("http: cannot start a thread for {peer}: {e}{}", more(n));
        }
        if let Some(h) = handle {
            refuse(h);
        }
    }
}

/// Removes a connection from the open set when its thread ends, however it ends.
struct Ended<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.shared.conns().open.remove(&self.id);
        self.shared.ended.notify_all();
    }
}

/// 503 `busy` from the accept thread, which must never block: a fresh socket's send buffer
/// takes the small answer in one nonblocking write, or the client misses it.
fn refuse(mut stream: TcpStream) {
    let answer = Response::json_error(503, "busy", "too many connections; try again later");
    let bytes = serialize_response(&answer, false, ConnHeader::Close);
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        // Read what already arrived, so that closing does not reset the connection.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// A request refused by the transport: answered with a JSON error, then the connection
/// closes.
#[derive(Debug, PartialEq)]
struct Reject {
    status: u16,
    code: &'static str,
    message: String,
}

impl Reject {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Reject {
        Reject {
            status,
            code,
            message: message.into(),
        }
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq)]
struct Head {
    method: String,
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, String)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated tokens of every `name` header.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept after this exchange.
    fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            false
        } else if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            true
        }
    }

    fn expects_continue(&self) -> bool {
        // RFC 9110 10.1.1: an HTTP/1.0 client gets no 100 Continue.
        self.version >= 1 && self.has_token("expect", "100-continue")
    }

    /// The body length, or why the request is refused: `Transfer-Encoding` (we take only
    /// `Content-Length` bodies), a bad or conflicting `Content-Length`, or one over `max`.
    fn body_length(&self, max: usize) -> Result<usize, Reject> {
        if let Some(te) = self.values("transfer-encoding").last() {
            let last = te.rsplit(',').next().unwrap_or("").trim();
            return Err(if last.eq_ignore_ascii_case("chunked") {
                Reject::new(
                    411,
                    "length_required",
                    "chunked bodies are not accepted; send Content-Length",
                )
            } else {
                Reject::new(
                    501,
                    "not_implemented",
                    format!("Transfer-Encoding {te} is not supported"),
                )
            });
        }
        let mut length: Option<u64> = None;
        for v in self.values("content-length").flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reject::new(400, "bad_request", "malformed Content-Length"));
            }
            // All digits: only too many of them can fail, which is too large.
            let n = v.parse::<u64>().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(Reject::new(
                    400,
                    "bad_request",
                    "conflicting Content-Length values",
                ));
            }
            length = Some(n);
        }
        let n = length.unwrap_or(0);
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Reject::new(
                413,
                "payload_too_large",
                format!("request bodies are limited to {max} bytes"),
            )),
        }
    }
}

/// Whether bytes from `from` on may have completed a head: an empty line ended, or the first
/// line did (so that garbage is refused at once instead of at `max_head`). Keeps a client
/// that trickles bytes from making us parse the head again for each one.
fn worth_parsing(buf: &[u8], from: usize) -> bool {
    let from = from.min(buf.len());
    let new = &buf[from.saturating_sub(2)..];
    let ends_head = new.windows(2).any(|w| w == b"\n\n") || new.windows(3).any(|w| w == b"\n\r\n");
    let ends_first_line = !buf[..from].contains(&b'\n') && buf[from..].contains(&b'\n');
    ends_head || ends_first_line
}

/// Parses a head at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// head and its length in bytes.
fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<(Head, usize)>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let window = &buf[..buf.len().min(max_head)];
    let too_large = || {
        Reject::new(
            431,
            "headers_too_large",
            format!("request heads are limited to {max_head} bytes and {MAX_HEADERS} headers"),
        )
    };
    match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => {
            let head = Head {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value);
                        (h.name.to_string(), v.trim().to_string())
                    })
                    .collect(),
            };
            Ok(Some((head, n)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= max_head => Err(too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(too_large()),
        Err(e) => Err(Reject::new(
            400,
            "bad_request",
            format!("malformed request: {e}"),
        )),
    }
}

/// What the transport says in the `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    None,
    /// An HTTP/1.0 client asked to keep the connection.
    KeepAlive,
    Close,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        // The reason phrase may be empty (RFC 9112 4).
        _ => "",
    }
}

/// Headers the transport writes itself: the handler's are dropped.
fn transport_header(name: &str) -> bool {
    ["content-length", "connection", "transfer-encoding"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether the answer carries a body at all (not for 204 and 304).
fn has_body(r: &Response) -> bool {
    r.status != 204 && r.status != 304
}

/// The bytes of a response. `head_only` (HEAD) keeps `Content-Length` and drops the body;
/// 204 and 304 carry no body (and 204 no `Content-Length`, RFC 9110 8.6). Header names or
/// values that would break the framing (CR, LF, ':' in names) are dropped. A file body is
/// not included: only its length (the caller streams it after these bytes).
fn serialize_response(r: &Response, head_only: bool, conn: ConnHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + r.body.len());
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (name, value) in &r.headers {
        let bad = name.is_empty()
            || name.bytes().any(|b| !b.is_ascii_graphic() || b == b':')
            || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        if bad {
            log::warn!("http: dropped a malformed response header {name:?}");
            continue;
        }
        if transport_header(name) {
            continue;
        }
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if r.status != 204 {
        let len = match &r.file {
            Some(f) => f.len,
            None => r.body.len() as u64,
        };
        let _ = write!(out, "Content-Length: {len}\r\n");
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && has_body(r) && r.file.is_none() {
        out.extend_from_slice(&r.body);
    }
    out
}

/// The panic message, when it is a string.
fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The request target without its query, which may hold secrets: for logs.
pub(crate) fn log_path(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

enum Filled {
    Data,
    Eof,
    TimedOut,
}

struct Conn<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read but not yet used: the rest of a head, a body, or pipelined requests.
    buf: Vec<u8>,
    shared: &'a Shared,
}

impl Conn<'_> {
    /// Reads more into `buf`, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> io::Result<Filled> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Filled::TimedOut);
            }
            self.stream.set_read_timeout(Some(left))?;
            let start = self.buf.len();
            self.buf.resize(start + READ_CHUNK, 0);
            let r = self.stream.read(&mut self.buf[start..]);
            self.buf.truncate(start + *r.as_ref().unwrap_or(&0));
            return match r {
                Ok(0) => Ok(Filled::Eof),
                Ok(_) => Ok(Filled::Data),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(Filled::TimedOut)
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Writes all of `bytes` within `write_timeout`.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + self.shared.limits.write_timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client does not read its answer",
                ));
            }
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Streams a file body; every chunk must go out within `write_timeout` (a download of
    /// a big file may take long, a client that stops reading may not).
    fn send_file(&mut self, body: &FileBody) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; FILE_CHUNK];
        let mut offset = body.offset;
        let mut left = body.len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(FILE_CHUNK);
            let n = match body.file.read_at(&mut buf[..want], offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was sent",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.send(&buf[..n])?;
            offset += n as u64;
            left -= n as u64;
        }
        Ok(())
    }

    /// Answers a refused request and closes.
    fn reject(&mut self, r: Reject, head_only: bool) -> io::Result<bool> {
        log::debug!("http: {}: {} {}", self.peer, r.status, r.message);
        let answer = Response::json_error(r.status, r.code, &r.message);
        self.send(&serialize_response(&answer, head_only, ConnHeader::Close))?;
        self.linger();
        Ok(false)
    }

    /// Closes our side, then reads and drops what the client still sends for a short
    /// while: closing a socket with unread bytes resets the connection, and a reset can
    /// overtake the answer (the client sees "connection reset" instead of our 413).
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut dropped = self.buf.len();
        self.buf.clear();
        while dropped < LINGER_BYTES {
            match self.fill(deadline) {
                Ok(Filled::Data) => {
                    dropped += self.buf.len();
                    self.buf.clear();
                }
                _ => break,
            }
        }
    }

    /// One request and its answer. `Ok(true)`: the connection stays open for the next.
    fn exchange(&mut self) -> io::Result<bool> {
        let shared = self.shared;
        let limits = &shared.limits;
        // Waiting for the next request. Empty lines between requests (some clients send
        // CRLF after a body) do not start one.
        let idle_until = Instant::now() + limits.idle_timeout;
        loop {
            let blank = self.buf.iter().take_while(|&&b| b == b'\r' || b == b'\n');
            let blank = blank.count();
            self.buf.drain(..blank);
            if !self.buf.is_empty() {
                break;
            }
            match self.fill(idle_until)? {
                Filled::Data => {}
                Filled::Eof | Filled::TimedOut => return Ok(false),
            }
        }
        // The head and the body must arrive within head_timeout of the first byte, however
        // slowly they trickle in.
        let deadline = Instant::now() + limits.head_timeout;
        let mut parsed_up_to = 0;
        let (head, head_len) = loop {
            if worth_parsing(&self.buf, parsed_up_to) || self.buf.len() >= limits.max_head {
                match parse_head(&self.buf, limits.max_head) {
                    Ok(Some(h)) => break h,
                    Ok(None) => {}
                    Err(r) => return self.reject(r, false),
                }
            }
            parsed_up_to = self.buf.len();
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof => return Ok(false),
                Filled::TimedOut => {
                    let r = Reject::new(408, "request_timeout", "the request came too slowly");
                    return self.reject(r, false);
                }
            }
        };
        self.buf.drain(..head_len);
        let head_only = head.method == "HEAD";
        let length = match head.body_length(limits.max_body) {
            Ok(n) => n,
            Err(r) => return self.reject(r, head_only),
        };
        if self.buf.len() < length && head.expects_continue() {
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        while self.buf.len() < length {
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof => return Ok(false),
                Filled::TimedOut => {
                    let r = Reject::new(408, "request_timeout", "the body came too slowly");
                    return self.reject(r, head_only);
                }
            }
        }
        let body: Vec<u8> = self.buf.drain(..length).collect();
        let keep = head.keep_alive();
        let version = head.version;
        let request = Request {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
            peer: self.peer,
        };
        let mut answer = self.call(&request);
        if !(200..=599).contains(&answer.status) {
            log::error!(
                "http: {} {}: the handler answered status {}",
                request.method,
                log_path(&request.target),
                answer.status
            );
            answer = Response::json_error(500, "internal", "invalid answer");
        }
        let keep = keep && !shared.stopping();
        let conn = match (keep, version) {
            (false, _) => ConnHeader::Close,
            (true, 0) => ConnHeader::KeepAlive,
            (true, _) => ConnHeader::None,
        };
        self.send(&serialize_response(&answer, head_only, conn))?;
        if let Some(file) = answer
            .file
            .as_ref()
            .filter(|_| !head_only && has_body(&answer))
        {
            self.send_file(file)?;
        }
        if !keep {
            self.linger();
        }
        Ok(keep)
    }

    /// Runs the handler; a panic becomes 500 `internal`.
    fn call(&self, request: &Request) -> Response {
        let handler = &self.shared.handler;
        match panic::catch_unwind(AssertUnwindSafe(|| handler(request))) {
            Ok(r) => r,
            Err(p) => {
                log::error!(
                    "http: the handler panicked on {} {} from {}: {}",
                    request.method,
                    log_path(&request.target),
                    self.peer,
                    panic_message(p.as_ref())
                );
                Response::json_error(500, "internal", "internal error")
            }
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    // Accepted sockets may inherit the listener's nonblocking mode on some systems.
    if let Err(e) = stream.set_nonblocking(false) {
        log::debug!("http: {peer}: {e}");
        return;
    }
    // Answers go out in one write each: no reason to wait for Nagle.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        peer,
        buf: Vec::new(),
        shared,
    };
    while !shared.stopping() {
        match conn.exchange() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                log::debug!("http: {peer}: {e}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes(), 16 * 1024) {
            Ok(Some((h, n))) => {
                assert_eq!(n, text.len());
                h
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_a_head_and_its_length() {
        let text = "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Thing:  two words \r\n\r\nBODY";
        let (h, n) = parse_head(text.as_bytes(), 1024)
            .expect("valid")
            .expect("complete");
        assert_eq!(n, text.len() - 4);
        assert_eq!(
            h,
            Head {
                method: "POST".into(),
                target: "/a?b=1".into(),
                version: 1,
                headers: vec![
                    ("Host".into(), "x".into()),
                    ("X-Thing".into(), "two words".into())
                ],
            }
        );
        // Bare LF line ends and a leading empty line (RFC 9112 2.2) are accepted.
        assert_eq!(head("\r\nGET / HTTP/1.0\nA: b\n\n").version, 0);
    }

    #[test]
    fn partial_garbage_and_oversize_heads() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", 1024), Ok(None));
        assert_eq!(parse_head(b"", 1024), Ok(None));
        let garbage = parse_head(b"\x16\x03\x01\x02\x00hello\r\n\r\n", 1024);
        assert_eq!(
            garbage.map_err(|r| (r.status, r.code)),
            Err((400, "bad_request"))
        );
        let bad = parse_head(b"GET / HTTP/2.0\r\n\r\n", 1024);
        assert_eq!(bad.map_err(|r| r.status), Err(400));
        // Not complete within max_head.
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        let r = parse_head(big.as_bytes(), 1024).map_err(|r| (r.status, r.code));
        assert_eq!(r, Err((431, "headers_too_large")));
        // Exactly max_head bytes is still fine.
        assert!(matches!(parse_head(big.as_bytes(), big.len()), Ok(Some(_))));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let r = parse_head(many.as_bytes(), 16 * 1024).map_err(|r| r.status);
        assert_eq!(r, Err(431));
    }

    #[test]
    fn parsing_waits_for_an_empty_line_or_the_first_line() {
        let b = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(!worth_parsing(&b[..5], 0));
        assert!(worth_parsing(&b[..16], 5)); // first line ended
        assert!(!worth_parsing(&b[..20], 16)); // in a header line
        assert!(!worth_parsing(&b[..25], 20)); // a header line ended
        assert!(worth_parsing(&b[..], 25)); // "\r\n\r\n" split across two reads
        assert!(worth_parsing(&b[..], 26));
        assert!(worth_parsing(b"GET / HTTP/1.0\nA: b\n\n", 20));
        assert!(!worth_parsing(b"x", 0));
    }

    #[test]
    fn body_length_from_content_length_only() {
        let ok = |t: &str| head(t).body_length(100);
        let status = |t: &str| ok(t).map_err(|r| (r.status, r.code));
        assert_eq!(ok("GET / HTTP/1.1\r\n\r\n"), Ok(0));
        assert_eq!(
            ok("POST / HTTP/1.1\r\ncontent-length: 100\r\n\r\n"),
            Ok(100)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7, 7\r\n\r\n"),
            Ok(7)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"),
            Err((413, "payload_too_large"))
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err((413, "payload_too_large"))
        );
        for bad in ["-1", "+1", "1 2", "", "0x10", "7, 8"] {
            let t = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(&t), Err((400, "bad_request")), "{bad:?}");
        }
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err((400, "bad_request"))
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Err((411, "length_required"))
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err((411, "length_required"))
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err((501, "not_implemented"))
        );
    }

    #[test]
    fn keep_alive_and_expect() {
        let keep = |t: &str| head(t).keep_alive();
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let cont = |t: &str| head(t).expects_continue();
        assert!(cont("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n"));
        assert!(!cont("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
        assert!(!cont("PUT / HTTP/1.1\r\n\r\n"));
    }

    fn text(r: &Response, head_only: bool, conn: ConnHeader) -> String {
        String::from_utf8(serialize_response(r, head_only, conn)).expect("utf-8")
    }

    #[test]
    fn responses_carry_length_and_the_transport_owns_framing() {
        let r = Response {
            status: 200,
            headers: vec![
                ("Content-Type", "text/plain".into()),
                ("Content-Length", "999".into()),
                ("connection", "keep-alive".into()),
                ("Transfer-Encoding", "chunked".into()),
                ("X-Evil", "a\r\nSet-Cookie: x=1".into()),
                ("Bad Name", "v".into()),
            ],
            body: b"hello".to_vec(),
            file: None,
        };
        assert_eq!(
            text(&r, false, ConnHeader::None),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(
            text(&r, true, ConnHeader::Close),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\n"
        );
        assert_eq!(
            text(&r, false, ConnHeader::KeepAlive),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             Connection: keep-alive\r\n\r\nhello"
        );
        let empty = Response {
            status: 204,
            headers: vec![],
            body: b"dropped".to_vec(),
            file: None,
        };
        assert_eq!(
            text(&empty, false, ConnHeader::None),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
        let odd = Response {
            status: 299,
            headers: vec![],
            body: vec![],
            file: None,
        };
        assert_eq!(
            text(&odd, false, ConnHeader::None),
            "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn json_errors_and_reasons() {
        let r = Response::json_error(413, "payload_too_large", "too \"big\"");
        assert_eq!(r.status, 413);
        assert_eq!(
            r.headers,
            vec![("Content-Type", "application/json".to_string())]
        );
        assert_eq!(
            String::from_utf8(r.body).expect("utf-8"),
            "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"too \\\"big\\\"\",\"field\":null}}\n"
        );
        let used = [
            200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 411, 413, 415, 429, 431, 500, 501,
            503,
        ];
        for s in used {
            assert!(!reason(s).is_empty(), "{s}");
        }
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(599), "");
    }

    #[test]
    fn request_header_lookup_is_case_insensitive_first_match() {
        let r = Request {
            method: "GET".into(),
            target: "/".into(),
            headers: vec![
                ("X-A".into(), "1".into()),
                ("x-a".into(), "2".into()),
                ("Host".into(), "h".into()),
            ],
            body: vec![],
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        assert_eq!(r.header("x-A"), Some("1"));
        assert_eq!(r.header("HOST"), Some("h"));
        assert_eq!(r.header("missing"), None);
    }

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

    /// One listed segment that cannot be opened: enough for the list and a play link.
    struct OneSegment;

    impl crate::control::Recordings for OneSegment {
        fn list(&self) -> Vec<crate::control::PathRecordings> {
            vec![crate::control::PathRecordings {
                path: "cam".into(),
                segments: vec![crate::control::SegmentEntry {
                    file: "a.mp4".into(),
                    start: None,
                    clock_trusted: false,
                    duration_s: 1.0,
                    bytes: 1,
                    recording: false,
                }],
            }]
        }
        fn open(
            &self,
            _: &str,
            _: &str,
        ) -> Result<(std::fs::File, u64), crate::control::RecordingError> {
            Err(crate::control::RecordingError::NotFound)
        }
        fn delete(&self, _: &str, _: &str) -> Result<(), crate::control::RecordingError> {
            Err(crate::control::RecordingError::NotFound)
        }
    }

    /// The JSON handlers (`http::answer`: every route, the Argon2 hashing of the first-run
    /// setup, a login check, a config write, play links made and checked with BLAKE2b) fit
    /// in a connection thread's stack, in a debug build (larger frames than release).
    #[test]
    fn the_json_handlers_fit_in_a_connection_stack() {
        let ctx = crate::http::HttpContext {
            monitor: crate::status::tests::fake_monitor(),
            cameras: Arc::new(|| serde_json::json!([{"path": "/dev/video0"}])),
            control: Arc::new(crate::http::tests::MemoryControl(std::sync::Mutex::new(
                crate::config::Config::default(),
            ))),
            login: Arc::default(),
            recordings: Some(Arc::new(OneSegment)),
        };
        let t = std::thread::Builder::new()
            .stack_size(CONN_STACK)
            .spawn(move || {
                let auth = "Basic YWRtaW46bG9uZyBlbm91Z2g="; // admin:long enough
                for (method, target, body) in [
                    ("GET", "/", ""),
                    ("POST", "/api/v1/setup", r#"{"password":"long enough"}"#),
                    ("GET", "/api/v1/status", ""),
                    ("GET", "/api/v1/paths", ""),
                    ("GET", "/api/v1/paths/cam", ""),
                    ("GET", "/api/v1/cameras", ""),
                    ("GET", "/api/v1/config", ""),
                    ("PATCH", "/api/v1/config", r#"{"paths":{"cam":{"fps":15}}}"#),
                    ("GET", "/healthz", ""),
                    ("GET", "/metrics", ""),
                    ("GET", "/api/v1/recordings", ""),
                    ("GET", "/api/v1/recordings/cam/a%2Fb.mp4", ""),
                    ("GET", "/nope", ""),
                ] {
                    let req = Request {
                        method: method.into(),
                        target: target.into(),
                        headers: vec![
                            ("Authorization".into(), auth.into()),
                            ("Content-Type".into(), "application/json".into()),
                        ],
                        body: body.as_bytes().to_vec(),
                        peer: "127.0.0.1:1".parse().expect("addr"),
                    };
                    let r = crate::http::answer(&ctx, &req);
                    // The fake path is unhealthy: 503 is its honest answer.
                    assert!(
                        r.status < 500 || r.status == 503,
                        "{method} {target}: {}",
                        r.status
                    );
                    assert!(!serialize_response(&r, false, ConnHeader::None).is_empty());
                }
                // A play link from the list, checked: 404 from the fake, not 401.
                let list = crate::http::answer(
                    &ctx,
                    &Request {
                        method: "GET".into(),
                        target: "/api/v1/recordings".into(),
                        headers: vec![("Authorization".into(), auth.into())],
                        body: vec![],
                        peer: "127.0.0.1:1".parse().expect("addr"),
                    },
                );
                let list: serde_json::Value = serde_json::from_slice(&list.body).expect("json");
                let url = list[0]["segments"][0]["play_url"]
                    .as_str()
                    .expect("play_url");
                let r = crate::http::answer(
                    &ctx,
                    &Request {
                        method: "GET".into(),
                        target: url.into(),
                        headers: vec![],
                        body: vec![],
                        peer: "127.0.0.1:1".parse().expect("addr"),
                    },
                );
                assert_eq!(r.status, 404);
            })
            .expect("spawn");
        assert!(t.join().is_ok());
    }

    #[test]
    fn logged_paths_lose_their_query() {
        assert_eq!(log_path("/a/b?token=secret"), "/a/b");
        assert_eq!(log_path("/a"), "/a");
    }
}
