//! Answers that live on after the handler returns, on a real server on loopback: a
//! WebSocket route (the handler owns the socket as a task) driven by tokio-tungstenite's
//! client, and a streamed body of unknown length read chunk by chunk while its producer is
//! live, and by curl.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::io::Read;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vigint::http::server::{Handler, Request, Response};

#[path = "common/raw_http.rs"]
mod raw_http;
use raw_http::*;

/// `/ws` echoes every text and binary message back over a WebSocket (the handler owns the
/// socket as a task); `/stream` sends `one\n`, waits for the test's go, then `two\n` and ends;
/// anything else is the echo handler's.
fn live_handler(go: Arc<Mutex<Option<mpsc::Receiver<()>>>>) -> Handler {
    Arc::new(move |r: &Request| match r.target.as_str() {
        "/ws" => vigint::http::ws::accept(r, |mut socket| async move {
            use futures::{SinkExt, StreamExt};
            while let Some(Ok(m)) = socket.next().await {
                if m.is_close() {
                    break;
                }
                if (m.is_text() || m.is_binary()) && socket.send(m).await.is_err() {
                    break;
                }
            }
        }),
        "/stream" => {
            let (response, tx) = Response::stream("text/plain", 4);
            let go = go.lock().unwrap().take();
            std::thread::spawn(move || {
                let _ = tx.blocking_send(bytes::Bytes::from_static(b"one\n"));
                if let Some(go) = go {
                    let _ = go.recv_timeout(PATIENCE);
                }
                let _ = tx.blocking_send(bytes::Bytes::from_static(b"two\n"));
            });
            response
        }
        _ => echo()(r),
    })
}

#[test]
fn a_websocket_route_echoes_with_a_real_client() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = start_with(limits(), live_handler(Arc::default()));
    let addr = server.local_addr();
    // A plain GET of a WebSocket address is refused with our JSON error.
    let mut c = Client::connect(addr);
    let r = c.get("/ws");
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_websocket"));
    rt().block_on(async {
        let url = format!("ws://{addr}/ws");
        let (mut socket, answer) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
                .await
                .expect("in time")
                .expect("the handshake");
        assert_eq!(answer.status(), 101);
        for m in [
            Message::text("hello"),
            Message::binary(vec![0u8, 1, 2, 255]),
            Message::text("x".repeat(20_000)),
        ] {
            socket.send(m.clone()).await.expect("send");
            let back = tokio::time::timeout(PATIENCE, socket.next())
                .await
                .expect("an echo in time")
                .expect("an echo")
                .expect("a message");
            assert_eq!(back, m);
        }
        // The socket is not an idle HTTP connection: it outlives the idle timeout.
        tokio::time::sleep(limits().idle_timeout + Duration::from_millis(300)).await;
        socket.send(Message::text("still")).await.expect("send");
        let back = socket.next().await.expect("an echo").expect("a message");
        assert_eq!(back, Message::text("still"));
        socket.close(None).await.expect("close");
    });
    // The server serves plain requests alongside.
    assert_eq!(Client::connect(addr).get("/after").body, "GET /after 0:");
    server.stop();
}

#[test]
fn stop_ends_an_open_websocket_promptly() {
    use futures::StreamExt;
    let server = start_with(limits(), live_handler(Arc::default()));
    let addr = server.local_addr();
    let mut socket = rt().block_on(async {
        let (s, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("the handshake");
        s
    });
    let t = Instant::now();
    server.stop();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
    rt().block_on(async {
        let end = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("ended in time");
        assert!(!matches!(
            end,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ));
    });
}

/// Reads one chunk of a chunked body: `Some(bytes)`, or `None` for the last (empty) one.
fn read_chunk(c: &mut Client) -> Option<Vec<u8>> {
    let size = c.line().expect("chunk size");
    let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
    let mut data = vec![0; n];
    c.r.read_exact(&mut data).expect("chunk data");
    assert_eq!(c.line().expect("chunk end"), "");
    (n > 0).then_some(data)
}

#[test]
fn a_streamed_body_of_unknown_length_flows_as_it_comes() {
    let (go_tx, go_rx) = mpsc::channel();
    let server = start_with(limits(), live_handler(Arc::new(Mutex::new(Some(go_rx)))));
    let addr = server.local_addr();
    let mut c = Client::connect(addr);
    c.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.try_reply(true).expect("the head");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(head.header("Content-Length"), None);
    // The first chunk arrives while the producer still holds the stream open.
    assert_eq!(read_chunk(&mut c).as_deref(), Some(&b"one\n"[..]));
    go_tx.send(()).expect("go");
    assert_eq!(read_chunk(&mut c).as_deref(), Some(&b"two\n"[..]));
    assert_eq!(read_chunk(&mut c), None);
    // The connection is kept after the stream ends.
    assert_eq!(c.get("/next").body, "GET /next 0:");
    // curl, an independent client, decodes the same stream (no go: it ends after
    // PATIENCE at most, as the producer stops waiting).
    let (go_tx, go_rx) = mpsc::channel();
    let server2 = start_with(limits(), live_handler(Arc::new(Mutex::new(Some(go_rx)))));
    go_tx.send(()).expect("go");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-"])
        .arg(format!("http://{}/stream", server2.local_addr()))
        .output()
        .expect("curl (apt-get install -y curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.ends_with("\r\n\r\none\ntwo\n"), "{text:?}");
    server2.stop();
    server.stop();
}
