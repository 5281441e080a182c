//! A WebSocket client (tokio-tungstenite) for the tests of vigint's live sockets
//! (`live_ws.rs`, `http_viewer.rs`): a runtime to run it on, a socket opened with an optional
//! login and Origin, the HTTP status of a refused handshake, and what a socket carried for a
//! while.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A current-thread runtime for a test's socket clients.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Opens `target` as a WebSocket, with `authorization` (the header's value) and `origin` when
/// given; fails the test when the handshake does not answer within 10 s.
pub async fn open(
    http: SocketAddr,
    target: &str,
    authorization: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{http}{target}")
        .into_client_request()
        .unwrap();
    if let Some(a) = authorization {
        req.headers_mut()
            .insert("Authorization", a.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("the handshake answers")
    .map(|(s, _)| s)
}

/// The HTTP status a refused handshake got.
pub fn refused_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("not an HTTP refusal: {other}"),
    }
}

/// What came over a socket in `seconds`: the text messages and the binary bytes in order.
pub async fn read_for(socket: &mut Socket, seconds: f64) -> (Vec<serde_json::Value>, Vec<u8>) {
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let (mut texts, mut bytes) = (Vec::new(), Vec::new());
    while let Ok(m) = tokio::time::timeout_at(until, socket.next()).await {
        match m {
            Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Binary(b))) => bytes.extend_from_slice(&b),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    (texts, bytes)
}
