//! The HTTP transport (`vigint::http::server`) on real loopback sockets, driven byte by byte
//! with std `TcpStream`: keep-alive, pipelining, `Connection: close`, HTTP/1.0, HEAD,
//! `100 Continue`, every refusal (400, 408, 411, 413, 431, 501, 503), timeouts, handler
//! panics, `stop`, and an accept loop that survives EMFILE.
//!
//! Timeouts are short here; upper bounds on elapsed time are generous (the machine may be
//! loaded) and only check that something happens at all, not how fast.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vigint::http::server::{Handler, HttpServer, Limits, Request, Response};

/// One runtime for every server in this file, as `app` has one for the appliance.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Plenty for anything that should happen at once, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits {
        max_head: 1024,
        max_body: 4000,
        head_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        max_connections: 16,
    }
}

/// `/panic` panics; anything else answers `METHOD TARGET LENGTH:BODY` as text.
fn echo() -> Handler {
    Arc::new(|r: &Request| {
        if r.target == "/panic" {
            panic!("boom (a test handler panicking on purpose)");
        }
        let body = format!(
            "{} {} {}:{}",
            r.method,
            r.target,
            r.body.len(),
            String::from_utf8_lossy(&r.body)
        );
        Response::new(
            200,
            vec![("Content-Type", "text/plain".to_string())],
            body.into_bytes(),
        )
    })
}

fn start(limits: Limits) -> HttpServer {
    start_with(limits, echo())
}

fn start_with(limits: Limits, handler: Handler) -> HttpServer {
    HttpServer::start(
        rt().handle(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        limits,
        handler,
    )
    .expect("start the HTTP server")
}

#[derive(Debug)]
struct Reply {
    /// `HTTP/1.1`, or `HTTP/1.0` for an HTTP/1.0 request.
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn error_code(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        assert!(v["error"]["field"].is_null(), "{self:?}");
        assert!(v["error"]["message"].is_string(), "{self:?}");
        assert_eq!(self.header("Content-Type"), Some("application/json"));
        v["error"]["code"].as_str().unwrap_or("").to_string()
    }

    /// hyper's own answer to a request it cannot parse (400, 431): the status, an empty
    /// body and `Connection: close`. hyper writes it before any handler could give it
    /// our JSON error body, and offers no hook to change it.
    fn assert_hyper_refusal(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("Content-Length"), Some("0"), "{self:?}");
        assert_eq!(self.body, "", "{self:?}");
    }
}

/// One connection. Reads through a `BufReader` and writes through the same socket (no
/// second descriptor: the EMFILE test counts them).
struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        Client {
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("send");
    }

    fn get(&mut self, target: &str) -> Reply {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.reply()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        if !line.ends_with("\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("incomplete line {line:?}"),
            ));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// The next response; `head_only` for an answer to HEAD.
    fn try_reply(&mut self, head_only: bool) -> std::io::Result<Reply> {
        let status_line = self.line()?;
        let (version, rest) = status_line
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        assert!(
            version == "HTTP/1.1" || version == "HTTP/1.0",
            "bad status line {status_line:?}"
        );
        let version = version.to_string();
        let status = Some(rest)
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (n, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {line:?}"));
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut reply = Reply {
            version,
            status,
            headers,
            body: String::new(),
        };
        if !head_only {
            let n: usize = reply
                .header("Content-Length")
                .unwrap_or_else(|| panic!("no Content-Length: {reply:?}"))
                .parse()
                .expect("Content-Length is a number");
            let mut body = vec![0; n];
            self.r.read_exact(&mut body)?;
            reply.body = String::from_utf8(body).expect("utf-8 body");
        }
        Ok(reply)
    }

    fn reply(&mut self) -> Reply {
        self.try_reply(false).expect("a response")
    }

    /// Whether the server has closed the connection (nothing more arrives).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(n) => panic!("unexpected bytes {:?}", String::from_utf8_lossy(&b[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            Err(e) => panic!("connection still open: {e}"),
        }
    }
}

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
