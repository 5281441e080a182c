//! A raw RTSP client for exchange-shape tests: each request exactly as written (the request
//! line and the Digest `uri` chosen by the test, as a given real client sends them),
//! interleaved media read past and kept while waiting for a response, and Digest responses
//! computed here with the md-5 crate, independently of the server's code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};

use super::{header_of, read_response, status_of};

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An `Authorization` header value in the RFC 2069 form live555 sends: the response is
/// computed over `digest_uri` with `password`, and `uri` says `sent_uri`.
pub fn digest_header(
    user: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    method: &str,
    digest_uri: &str,
    sent_uri: &str,
) -> String {
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{digest_uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{sent_uri}\", response=\"{response}\""
    )
}

/// Realm and nonce of the Digest challenge in a 401 response.
pub fn digest_challenge(response: &str) -> (String, String) {
    let challenge = response
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .find(|c| c.starts_with("Digest "))
        .unwrap_or_else(|| panic!("no Digest challenge in:\n{response}"));
    let field = |name: &str| {
        let start = challenge
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("no {name} in {challenge}"))
            + name.len()
            + 2;
        let len = challenge[start..].find('"').expect("closing quote");
        challenge[start..start + len].to_string()
    };
    (field("realm"), field("nonce"))
}

pub struct RawClient {
    pub stream: TcpStream,
    cseq: u32,
    /// Interleaved packets read while waiting for responses: (channel, payload).
    pub media: Vec<(u8, Vec<u8>)>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawClient {
            stream,
            cseq: 0,
            media: Vec::new(),
        }
    }

    /// Sends `METHOD url RTSP/1.0` with the next CSeq and `headers` (each ending in CRLF);
    /// returns the response, reading past interleaved media.
    pub fn request(&mut self, method: &str, url: &str, headers: &str) -> String {
        self.request_with_body(method, url, headers, b"")
    }

    /// `request` with a body (its `Content-Length` is added).
    pub fn request_with_body(
        &mut self,
        method: &str,
        url: &str,
        headers: &str,
        body: &[u8],
    ) -> String {
        self.cseq += 1;
        let length = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let mut req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: raw-test (live555 request shapes)\r\n{headers}{length}\r\n",
            self.cseq
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).expect("write");
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).expect("read response");
            if b[0] == b'$' {
                let packet = self.read_interleaved_rest();
                self.media.push(packet);
                continue;
            }
            let response = format!("{}{}", b[0] as char, read_response(&mut self.stream));
            assert_eq!(
                header_of(&response, "CSeq"),
                Some(self.cseq.to_string().as_str()),
                "{response}"
            );
            return response;
        }
    }

    /// Status of a request.
    pub fn status(&mut self, method: &str, url: &str, headers: &str) -> u16 {
        status_of(&self.request(method, url, headers))
    }

    /// Sends raw bytes (an interleaved frame, garbage) as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn read_interleaved_rest(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 3];
        self.stream.read_exact(&mut h).expect("interleaved header");
        let len = u16::from_be_bytes([h[1], h[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .expect("interleaved payload");
        (h[0], payload)
    }

    /// Reads interleaved packets until `n` RTP packets arrived on `channel` (and returns
    /// them), or panics after `limit`.
    pub fn rtp_packets(&mut self, channel: u8, n: usize, limit: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut out: Vec<Vec<u8>> = self
            .media
            .drain(..)
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| p)
            .collect();
        while out.len() < n {
            assert!(Instant::now() < deadline, "only {} RTP packets", out.len());
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).expect("read media");
            assert_eq!(b[0], b'$', "media out of sync");
            let (c, p) = self.read_interleaved_rest();
            if c == channel {
                out.push(p);
            }
        }
        out
    }
}

/// Receives `n` datagrams on `sock` within `limit`.
pub fn udp_packets(sock: &UdpSocket, n: usize, limit: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + limit;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while out.len() < n && Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            out.push(buf[..len].to_vec());
        }
    }
    assert!(out.len() >= n, "only {} UDP packets", out.len());
    out
}

/// True for an RTP packet of the H.264 payload type vigint sends.
pub fn is_h264_rtp(p: &[u8]) -> bool {
    p.len() > 12 && p[0] >> 6 == 2 && (p[1] & 0x7f) == 96
}
