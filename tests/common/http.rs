//! A plain HTTP/1.1 client on `TcpStream` for the API tests: one request per connection,
//! read to the end, and the admin login header.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header_of(&self.head, name)
    }
}

/// One request on its own connection (`Connection: close`), read to the end. `extra` are
/// header lines, each ending in CRLF; a non-empty `body` is sent with its length.
pub fn send(addr: SocketAddr, method: &str, target: &str, extra: &str, body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to HTTP");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: vigint\r\nConnection: close\r\n{extra}{length}\r\n{body}"
    )
    .expect("write request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response to {method} {target}: {text:?}"));
    Reply {
        status: super::status_of(head),
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Reply {
    send(addr, method, target, extra, "")
}

pub fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, "")
}

/// The admin's Basic `Authorization` header line.
pub fn admin(password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    )
}

/// A JSON body request as the admin.
pub fn send_json(
    addr: SocketAddr,
    password: &str,
    method: &str,
    target: &str,
    body: &str,
) -> Reply {
    let extra = format!("{}Content-Type: application/json\r\n", admin(password));
    send(addr, method, target, &extra, body)
}

/// Polls `target` (with `extra` headers) until `ok` holds for its JSON; returns that JSON.
pub fn wait_json_with(
    addr: SocketAddr,
    target: &str,
    extra: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = request(addr, "GET", target, extra).json();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last {target}: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_json(
    addr: SocketAddr,
    target: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_json_with(addr, target, "", what, ok)
}

/// Asserts a JSON error with `status` and `code`; returns its `field`.
pub fn assert_error(r: &Reply, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    v["error"]["field"].clone()
}

/// The first-run setup: sets the admin password (201).
pub fn setup_admin(addr: SocketAddr, password: &str) {
    let r = send(
        addr,
        "POST",
        "/api/v1/setup",
        "Content-Type: application/json\r\n",
        &serde_json::json!({ "password": password }).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}
