//! A server from `vigint::http::server` on a shared runtime, and a raw HTTP/1.1 client on a
//! std `TcpStream` that reads answers byte by byte: shared by tests/http_transport.rs and
//! tests/http_live.rs.
#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use vigint::http::server::{Handler, HttpServer, Limits, Request, Response};

/// Plenty for anything that should happen at once, on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One runtime for every server in this file, as `app` has one for the appliance.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

pub fn limits() -> Limits {
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
pub fn echo() -> Handler {
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

pub fn start(limits: Limits) -> HttpServer {
    start_with(limits, echo())
}

pub fn start_with(limits: Limits, handler: Handler) -> HttpServer {
    HttpServer::start(
        rt().handle(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        limits,
        handler,
    )
    .expect("start the HTTP server")
}

#[derive(Debug)]
pub struct Reply {
    /// `HTTP/1.1`, or `HTTP/1.0` for an HTTP/1.0 request.
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn error_code(&self) -> String {
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
    pub fn assert_hyper_refusal(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("Content-Length"), Some("0"), "{self:?}");
        assert_eq!(self.body, "", "{self:?}");
    }
}

/// One connection. Reads through a `BufReader` and writes through the same socket (no
/// second descriptor: the EMFILE test counts them).
pub struct Client {
    pub r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        Client {
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("send");
    }

    pub fn get(&mut self, target: &str) -> Reply {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.reply()
    }

    pub fn line(&mut self) -> std::io::Result<String> {
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
    pub fn try_reply(&mut self, head_only: bool) -> std::io::Result<Reply> {
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

    pub fn reply(&mut self) -> Reply {
        self.try_reply(false).expect("a response")
    }

    /// Whether the server has closed the connection (nothing more arrives).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(n) => panic!("unexpected bytes {:?}", String::from_utf8_lossy(&b[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            Err(e) => panic!("connection still open: {e}"),
        }
    }
}
