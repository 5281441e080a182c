//! WebSocket answers: a handler that wants one calls `accept(req, on_open)`, which checks
//! the client's handshake (RFC 6455 4.2.1) and answers `101 Switching Protocols`; once
//! hyper hands over the connection, `on_open` runs as a task on the runtime with the
//! `WebSocket` (a `futures` `Stream` + `Sink` of `Message`s) and owns it until it returns.
//!
//! Owns: the handshake's checks and accept key, and the socket's limits (the only file
//! naming tokio-tungstenite). Does not own: the upgrade itself (`server`, through hyper),
//! what goes over the socket (the route's handler).

use std::future::Future;

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::http::message::{Request, Response, Streamed};
use crate::http::server::Upgraded;

pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::{Error, Message};

/// An open WebSocket, server side.
pub type WebSocket = WebSocketStream<Upgraded>;

/// Messages from a browser are small (commands); larger ones close the socket.
const MAX_INCOMING: usize = 64 * 1024;
/// The read buffer's start size (it grows for a larger message, up to `MAX_INCOMING`).
const READ_BUFFER: usize = 4 * 1024;

fn has_token(req: &Request, header: &str, token: &str) -> bool {
    req.header(header)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Answers a WebSocket handshake: `101` and `on_open` run with the socket, or a JSON 400
/// (`bad_websocket`) naming what is missing, or 426 for another protocol version.
pub fn accept<F, Fut>(req: &Request, on_open: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let refuse = |m: &str| Response::json_error(400, "bad_websocket", m);
    if req.method != "GET" {
        return refuse("a WebSocket is opened with GET");
    }
    if !has_token(req, "Upgrade", "websocket") || !has_token(req, "Connection", "upgrade") {
        return refuse("this address is a WebSocket: send Upgrade: websocket");
    }
    if req.header("Sec-WebSocket-Version") != Some("13") {
        let mut r = Response::json_error(426, "upgrade_required", "WebSocket version 13 only");
        r.headers.push(("Sec-WebSocket-Version", "13".into()));
        return r;
    }
    let Some(key) = req.header("Sec-WebSocket-Key").filter(|k| !k.is_empty()) else {
        return refuse("Sec-WebSocket-Key is missing");
    };
    let mut r = Response::new(
        101,
        vec![("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes()))],
        vec![],
    );
    r.streamed = Some(Streamed::WebSocket(Box::new(move |ws| {
        Box::pin(on_open(ws))
    })));
    r
}

/// The server side of the socket over the upgraded connection (no handshake: done above).
pub(crate) async fn open(io: Upgraded) -> WebSocket {
    // Read little (commands), and write each message as it comes (a frame is flushed at
    // once anyway): tungstenite's 128 KiB defaults cost a live viewer over 200 KiB.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING));
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}
