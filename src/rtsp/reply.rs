//! An RTSP response before it is written.
//!
//! Owns: `Reply` (an `rtsp_types::StatusCode`, headers and body) and its RTSP/1.0 bytes with
//! the request's CSeq and our `Server` header. Does not own: which status a request gets
//! (the handlers) or the socket (the writer).

pub use rtsp_types::StatusCode;

/// A response before serialisation.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of the first header called `name` (tests and logs).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises as RTSP/1.0 with the request's CSeq.
    pub fn to_bytes(&self, cseq: Option<&str>) -> Vec<u8> {
        let mut s = format!(
            "RTSP/1.0 {} {}\r\n",
            u16::from(self.status),
            reason(self.status)
        );
        if let Some(cseq) = cseq {
            s.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        s.push_str(concat!(
            "Server: vigint/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
        for (name, value) in &self.headers {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase: RFC 2326's spelling of 200 ("OK"), rtsp-types' names for the rest.
fn reason(status: StatusCode) -> String {
    match status {
        StatusCode::Ok => "OK".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_status_cseq_headers_and_body() {
        let mut r = Reply::new(StatusCode::Ok).header("Content-Type", "application/sdp");
        r.body = b"v=0\r\n".to_vec();
        let text = String::from_utf8(r.to_bytes(Some("7"))).unwrap();
        assert!(text.starts_with("RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: vigint/"));
        assert!(text.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        let text =
            String::from_utf8(Reply::new(StatusCode::SessionNotFound).to_bytes(None)).unwrap();
        assert!(
            text.starts_with("RTSP/1.0 454 Session Not Found\r\n"),
            "{text}"
        );
        assert_eq!(r.header_value("content-type"), Some("application/sdp"));
    }
}
