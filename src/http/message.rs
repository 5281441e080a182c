//! What a handler sees and answers: `Request` (head and whole body), `Response` (status,
//! headers and one of four bodies: bytes, a file range, a stream of unknown length, or a
//! WebSocket the handler then owns), and the JSON error body every refusal uses.
//!
//! Owns: these plain types, free of any HTTP crate, so handlers and their unit tests need
//! no server. Does not own: framing, sockets or timeouts (`server`), the WebSocket
//! handshake and socket type (`ws`), routes (`routes`, `mod.rs`).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

/// One request, head and whole body, as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query), e.g. `/api/v1/paths?x=1`.
    pub target: String,
    /// Names in lower case (as hyper gives them), values as sent; look up with `header`.
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

/// What a handler answers. The transport writes `Content-Length`, `Connection` and
/// `Transfer-Encoding` itself and drops them from `headers`. Handlers answer HEAD as they
/// would GET: the transport sends the length and drops the body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// A body streamed from a file, which replaces `body`: for answers too big to hold in
    /// memory (recordings).
    pub file: Option<FileBody>,
    /// A body of unknown length or a WebSocket, which replaces `body` and `file`.
    pub streamed: Option<Streamed>,
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

/// The sending side of a streamed body: each `Bytes` goes out as it comes (chunked in
/// HTTP/1.1); dropping the sender ends the body. A full channel means the client reads
/// slower than the producer writes: the producer decides (wait, or drop data).
pub type BodySender = tokio::sync::mpsc::Sender<Bytes>;

/// A future the transport runs on the runtime once the WebSocket handshake is done.
pub type WebSocketTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the handler does with its WebSocket: called on the runtime with the open socket.
pub type OnWebSocket = Box<dyn FnOnce(crate::http::ws::WebSocket) -> WebSocketTask + Send>;

/// The bodies that are not bytes known up front.
pub enum Streamed {
    /// Chunks from a channel, until its senders are gone (live video, long polls).
    Body(tokio::sync::mpsc::Receiver<Bytes>),
    /// A `101 Switching Protocols` answer; the connection then becomes this WebSocket.
    /// Made by `ws::accept`, which checks the handshake.
    WebSocket(OnWebSocket),
}

impl fmt::Debug for Streamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Streamed::Body(_) => f.write_str("Streamed::Body"),
            Streamed::WebSocket(_) => f.write_str("Streamed::WebSocket"),
        }
    }
}

impl Response {
    /// An answer with a byte body.
    pub fn new(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
        Response {
            status,
            headers,
            body,
            file: None,
            streamed: None,
        }
    }

    /// A 200 answer whose body comes from the returned sender, for as long as it lives.
    /// `capacity` chunks may wait for the client before `send` waits (or `try_send` fails).
    pub fn stream(content_type: &str, capacity: usize) -> (Response, BodySender) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let mut r = Response::new(
            200,
            vec![("Content-Type", content_type.to_string())],
            vec![],
        );
        r.streamed = Some(Streamed::Body(rx));
        (r, tx)
    }

    /// `{"error":{"code":..,"message":..,"field":null}}` plus a newline, as
    /// `application/json`: the transport's own refusals.
    pub fn json_error(status: u16, code: &str, message: &str) -> Response {
        Response::json_field_error(status, code, message, None)
    }

    /// The one JSON error body of the API (`http::ApiError` and the transport use it):
    /// `{"error":{"code":..,"message":..,"field":..}}` plus a newline.
    pub fn json_field_error(
        status: u16,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) -> Response {
        Response::new(
            status,
            vec![("Content-Type", "application/json".to_string())],
            json_error_body(code, message, field),
        )
    }
}

/// `{"error":{"code":..,"message":..,"field":..}}` plus a newline.
pub fn json_error_body(code: &str, message: &str, field: Option<&str>) -> Vec<u8> {
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
    (serde_json::to_string(&body).unwrap_or_default() + "\n").into_bytes()
}

/// The target without its query, for logs: a query may hold a play link's token.
pub fn log_path(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_keep_their_shape() {
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
    fn logged_paths_lose_their_query() {
        assert_eq!(log_path("/a/b?token=secret"), "/a/b");
        assert_eq!(log_path("/a"), "/a");
    }
}
