//! The HTTP transport (`vigint::http::server`) on real loopback sockets, driven byte by byte
//! with std `TcpStream`: keep-alive, pipelining, `Connection: close`, HTTP/1.0, HEAD,
//! `100 Continue`, every refusal (400, 408, 411, 413, 431, 501, 503), timeouts, handler
//! panics, `stop`, and an accept loop that survives EMFILE. Answers that live on
//! (WebSockets, streamed bodies) are in tests/http_live.rs.
//!
//! Timeouts are short here; upper bounds on elapsed time are generous (the machine may be
//! loaded) and only check that something happens at all, not how fast.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vigint::http::server::{Handler, HttpServer, Limits, Request, Response};

#[path = "common/raw_http.rs"]
mod raw_http;
use raw_http::*;

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    let a = c.get("/a?x=1");
    assert_eq!((a.status, a.body.as_str()), (200, "GET /a?x=1 0:"));
    assert_eq!(a.header("Content-Type"), Some("text/plain"));
    assert_eq!(a.header("Content-Length"), Some("13"));
    assert_eq!(a.header("Connection"), None);
    let b = c.get("/b");
    assert_eq!((b.status, b.body.as_str()), (200, "GET /b 0:"));
    server.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    // Three requests in one write, then a fourth split inside its head and its body.
    c.send(
        b"POST /one HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /two HTTP/1.1\r\nHost: t\r\n\r\n\
          PUT /three HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcPOST /fo",
    );
    assert_eq!(c.reply().body, "POST /one 5:hello");
    assert_eq!(c.reply().body, "GET /two 0:");
    assert_eq!(c.reply().body, "PUT /three 3:abc");
    c.send(b"ur HTTP/1.1\r\nContent-Length: 4\r\n\r\nxy");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"z!");
    assert_eq!(c.reply().body, "POST /four 4:xyz!");
    server.stop();
}

#[test]
fn connection_close_is_honoured() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.reply();
    assert_eq!((r.status, r.body.as_str()), (200, "GET /bye 0:"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    server.stop();
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = c.reply();
    assert_eq!((r.status, r.body.as_str()), (200, "GET /old 0:"));
    // hyper answers an HTTP/1.0 client in HTTP/1.0 (RFC 9110 2.5 allows either).
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());

    let mut c = Client::connect(server.local_addr());
    for target in ["/k1", "/k2"] {
        c.send(format!("GET {target} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let r = c.reply();
        assert_eq!(r.body, format!("GET {target} 0:"));
        assert_eq!(r.header("Connection"), Some("keep-alive"));
    }
    server.stop();
}

#[test]
fn head_gets_the_length_but_no_body() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.try_reply(true).expect("HEAD answer");
    assert_eq!(r.status, 200);
    // The handler saw HEAD and answered "HEAD /h 0:".
    assert_eq!(r.header("Content-Length"), Some("10"));
    // Had the body been sent, it would be read here as the next status line.
    let next = c.get("/after");
    assert_eq!((next.status, next.body.as_str()), (200, "GET /after 0:"));
    server.stop();
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    let body = "b".repeat(3000);
    c.send(
        format!(
            "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.line().expect("interim answer"), "HTTP/1.1 100 Continue");
    assert_eq!(c.line().expect("end of interim answer"), "");
    c.send(body.as_bytes());
    let r = c.reply();
    assert_eq!((r.status, r.body), (200, format!("PUT /up 3000:{body}")));
    server.stop();
}

#[test]
fn oversize_body_gets_413_without_being_read() {
    // The head timeout is longer than the client waits: a server waiting for the body
    // would fail this test.
    let l = Limits {
        head_timeout: Duration::from_secs(60),
        ..limits()
    };
    let server = start(l);
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut c = Client::connect(server.local_addr());
        c.send(
            format!("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n{expect}\r\n")
                .as_bytes(),
        );
        let r = c.reply();
        assert_eq!(r.status, 413, "{r:?}");
        assert_eq!(r.error_code(), "payload_too_large");
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(c.closed());
    }
    // 4000 (max_body) is fine.
    let mut c = Client::connect(server.local_addr());
    let body = "x".repeat(4000);
    c.send(format!("POST /max HTTP/1.1\r\nContent-Length: 4000\r\n\r\n{body}").as_bytes());
    assert_eq!(c.reply().body, format!("POST /max 4000:{body}"));
    server.stop();
}

#[test]
fn garbage_gets_400_and_close() {
    let server = start(limits());
    for garbage in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut c = Client::connect(server.local_addr());
        c.send(garbage);
        let r = c.reply();
        // Was our JSON `bad_request`; hyper refuses these itself (empty body).
        r.assert_hyper_refusal(400);
        assert_eq!(r.header("Connection"), Some("close"), "{garbage:?}");
        assert!(c.closed());
    }
    server.stop();
}

#[test]
fn oversize_head_gets_431() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    let big = "a".repeat(2000);
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.reply();
    // Was our JSON `headers_too_large`; hyper answers 431 itself (empty body).
    r.assert_hyper_refusal(431);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    server.stop();
}

#[test]
fn transfer_encoding_is_refused() {
    let server = start(limits());
    for te in ["chunked", "gzip, chunked", "gzip"] {
        let mut c = Client::connect(server.local_addr());
        c.send(
            format!("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .as_bytes(),
        );
        let r = c.reply();
        if te == "gzip" {
            // Was our 501 `not_implemented`: a request whose last coding is not chunked has
            // no knowable length, and hyper refuses it itself with 400 (RFC 9112 6.3).
            r.assert_hyper_refusal(400);
        } else {
            // hyper would decode chunked bodies; we refuse them before reading (411).
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (411, "length_required")
            );
        }
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(c.closed());
    }
    server.stop();
}

#[test]
fn idle_clients_are_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let server = start(Limits {
        idle_timeout: idle,
        ..limits()
    });
    // After one request (keep-alive), and without any.
    let mut used = Client::connect(server.local_addr());
    assert_eq!(used.get("/once").status, 200);
    let t = Instant::now();
    let mut silent = Client::connect(server.local_addr());
    assert!(used.closed());
    assert!(silent.closed());
    let waited = t.elapsed();
    assert!(waited >= idle - Duration::from_millis(50), "{waited:?}");
    assert!(waited < PATIENCE, "{waited:?}");
    server.stop();
}

#[test]
fn a_slowloris_is_dropped_after_the_head_timeout() {
    let server = start(Limits {
        head_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(30),
        ..limits()
    });
    let mut c = Client::connect(server.local_addr());
    let mut w = c.r.get_ref().try_clone().expect("clone");
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    // One byte every 50 ms for up to 20 s: a per-read timeout would never fire.
    let trickler = std::thread::spawn(move || {
        let _ = w.write_all(b"GET / HTTP/1.1\r\nX-Slow: ");
        for _ in 0..400 {
            if stop.load(Ordering::Relaxed) || w.write_all(b"z").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let t = Instant::now();
    let r = c.reply();
    let waited = t.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = trickler.join();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (408, "request_timeout")
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < PATIENCE, "{waited:?}");
    assert!(c.closed());
    server.stop();
}

#[test]
fn connections_over_the_cap_get_503_busy() {
    let server = start(Limits {
        max_connections: 2,
        idle_timeout: Duration::from_secs(30),
        ..limits()
    });
    let addr = server.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    assert_eq!(a.get("/a").status, 200);
    assert_eq!(b.get("/b").status, 200);
    let mut c = Client::connect(addr);
    let r = c.reply();
    assert_eq!((r.status, r.error_code().as_str()), (503, "busy"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    // A slot frees when a client leaves.
    drop(a);
    let t = Instant::now();
    loop {
        let mut d = Client::connect(addr);
        d.send(b"GET /d HTTP/1.1\r\nHost: t\r\n\r\n");
        match d.try_reply(false) {
            Ok(r) if r.status == 200 => break,
            other => assert!(t.elapsed() < PATIENCE, "still refused: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The other client was served all along.
    assert_eq!(b.get("/b2").body, "GET /b2 0:");
    server.stop();
}

#[test]
fn a_handler_panic_is_500_and_the_server_keeps_serving() {
    let server = start(limits());
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/panic");
    assert_eq!((r.status, r.error_code().as_str()), (500, "internal"));
    // Same connection, and a new one.
    assert_eq!(c.get("/ok").body, "GET /ok 0:");
    let mut d = Client::connect(server.local_addr());
    assert_eq!(d.get("/ok2").body, "GET /ok2 0:");
    server.stop();
}

#[test]
fn stop_returns_promptly_with_idle_clients_connected() {
    let server = start(Limits {
        head_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..limits()
    });
    let addr = server.local_addr();
    let mut used = Client::connect(addr);
    assert_eq!(used.get("/x").status, 200);
    let mut silent = Client::connect(addr);
    let mut half = Client::connect(addr);
    half.send(b"GET /half HTTP/1.1\r\nHo");
    // Let the server take both in (a reply proves the accept loop has passed them).
    assert_eq!(Client::connect(addr).get("/y").status, 200);
    let t = Instant::now();
    server.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(4), "stop took {took:?}");
    assert!(used.closed());
    assert!(silent.closed());
    assert!(half.closed());
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[test]
fn stop_lets_a_running_handler_answer() {
    let (started_tx, started) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let handler: Handler = Arc::new(move |r: &Request| {
        let _ = started_tx.lock().map(|tx| tx.send(()));
        std::thread::sleep(Duration::from_millis(500));
        Response::new(201, vec![], format!("done {}", r.target).into_bytes())
    });
    let server = start_with(limits(), handler);
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    started.recv_timeout(PATIENCE).expect("handler started");
    server.stop();
    let r = c.reply();
    assert_eq!((r.status, r.body.as_str()), (201, "done /slow"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn start_names_the_address_it_cannot_bind() {
    let server = start(limits());
    let addr = server.local_addr();
    let e = HttpServer::start(rt().handle(), addr, limits(), echo())
        .err()
        .expect("the port is taken");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    server.stop();
}

/// Runs in a child process (it lowers the descriptor limit, which is per process).
#[test]
fn the_accept_loop_survives_emfile() {
    const CHILD: &str = "VIGINT_TEST_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        emfile_child();
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "the_accept_loop_survives_emfile",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn emfile_child() {
    let server = start(limits());
    let addr = server.local_addr();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to a local rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_cur.min(128);
    // SAFETY: as above; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    // One descriptor for the client; none left for the server's accept().
    files.pop();
    let mut c = Client::connect(addr);
    c.send(b"GET /e HTTP/1.1\r\nHost: t\r\n\r\n");
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut b = [0u8; 1];
    let e =
        c.r.read(&mut b)
            .expect_err("no answer while accept() fails");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    // Descriptors again: the same connection, still queued, is accepted and answered.
    files.truncate(files.len().saturating_sub(16));
    c.r.get_ref()
        .set_read_timeout(Some(PATIENCE))
        .expect("timeout");
    let r = c.reply();
    assert_eq!((r.status, r.body.as_str()), (200, "GET /e 0:"));
    drop(files);
    server.stop();
}

/// A handler answering with file bodies: `/whole`, `/part` (from 70000, 100000 bytes) and
/// `/short` (promises more bytes than the file has).
fn file_handler(path: std::path::PathBuf, len: u64) -> Handler {
    Arc::new(move |r: &Request| {
        let file = Arc::new(std::fs::File::open(&path).expect("open the fixture"));
        let (offset, n) = match r.target.as_str() {
            "/part" => (70_000, 100_000),
            "/short" => (len - 10, 20),
            _ => (0, len),
        };
        let mut r = Response::new(
            200,
            vec![("Content-Type", "video/mp4".to_string())],
            b"ignored when there is a file".to_vec(),
        );
        r.file = Some(vigint::http::server::FileBody {
            file,
            offset,
            len: n,
        });
        r
    })
}

#[test]
fn file_bodies_are_streamed_exactly_and_keep_the_connection() {
    // Several 64 KiB chunks and a partial last one.
    let data: Vec<u8> = (0..300_001u32).map(|i| b'a' + (i % 26) as u8).collect();
    let path = std::env::temp_dir().join(format!("vigint-file-body-{}", std::process::id()));
    std::fs::write(&path, &data).expect("write the fixture");
    let server = start_with(limits(), file_handler(path.clone(), data.len() as u64));
    let mut c = Client::connect(server.local_addr());
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("ascii");
    let r = c.get("/whole");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("300001"));
    assert_eq!(r.header("Content-Type"), Some("video/mp4"));
    assert!(r.body == text(&data), "the whole file, exactly");
    // Keep-alive after a file body; a range of it.
    let r = c.get("/part");
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert!(r.body == text(&data[70_000..170_000]));
    // HEAD: the length, no body (the next answer would be garbled otherwise).
    c.send(b"HEAD /whole HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.try_reply(true).expect("HEAD answer");
    assert_eq!(
        (r.status, r.header("Content-Length")),
        (200, Some("300001"))
    );
    let r = c.get("/part");
    assert!(r.body == text(&data[70_000..170_000]));
    // A file shorter than promised: what there is, then the connection closes.
    c.send(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        assert!(c.r.read_line(&mut line).expect("head") > 0);
        head.push_str(&line);
    }
    // Header names are case-insensitive; hyper writes them in lower case.
    assert!(
        head.to_ascii_lowercase().contains("content-length: 20\r\n"),
        "{head}"
    );
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest);
    assert_eq!(rest, &data[data.len() - 10..]);
    server.stop();
    let _ = std::fs::remove_file(&path);
}
