//! Where one RTSP message ends in a connection's bytes, and when those bytes are garbage.
//!
//! Owns: the framing decision for the front of a connection's buffer (`frame`): a whole
//! message (request, response or `$` interleaved data, parsed with rtsp-types), more bytes
//! needed, a declared body over `MAX_BODY` (413 before the body is read), a message over
//! `MAX_REQUEST` or one that does not parse (400). Pure: no I/O, so `conn` and the fuzz
//! harness (`src/fuzzing.rs`) share it. Does not own: reading the socket, answering or
//! closing (`conn`), what a message's headers mean (the handlers).

use rtsp_types::Message;

/// Largest request we buffer before calling it garbage.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest request body (a publisher's SDP, a parameter): a bigger `Content-Length` gets
/// 413 at once, before any of the body is read.
pub const MAX_BODY: usize = 16 * 1024;

/// What the bytes at the front of a connection's buffer are.
#[derive(Debug)]
pub enum Framed {
    /// A whole message, `consumed` bytes of the buffer long.
    Message {
        message: Message<Vec<u8>>,
        consumed: usize,
    },
    /// Not whole yet (or nothing at all): wait for more bytes.
    Incomplete,
    /// A request whose head declares a body over `MAX_BODY`: 413 with its `CSeq`, then close.
    BodyTooLarge { cseq: Option<String> },
    /// Over `MAX_REQUEST` and still not a whole message: 400, then close.
    TooLong,
    /// Not RTSP: 400, then close.
    Malformed,
}

/// Decides what the front of `buf` is. The decision depends only on the bytes, never on
/// how they were split into reads (the fuzz harness checks that).
pub fn frame(buf: &[u8]) -> Framed {
    if buf.is_empty() {
        return Framed::Incomplete;
    }
    // rtsp-types skips blank lines before a message; so does everything here.
    let front = without_blank_lines(buf);
    // A whole head that declares a body over the cap decides at once, from the head alone:
    // 413 when the head is a good one, else 400, whether or not any of the body came (in
    // one read, rtsp-types would judge the request line only once the body is whole).
    // Interleaved data has no head (its payload may hold anything).
    if front.first() != Some(&b'$') {
        if let Some((head, cseq)) = head_with_body_too_large(front) {
            return if head_parses(head) {
                Framed::BodyTooLarge { cseq }
            } else {
                Framed::Malformed
            };
        }
    }
    match Message::<Vec<u8>>::parse(buf) {
        Ok((message, consumed)) => Framed::Message { message, consumed },
        Err(rtsp_types::ParseError::Incomplete(_)) if front.first() == Some(&b'$') => {
            // Interleaved data: no head to read (its payload may hold anything), and its
            // 16-bit length bounds it at 65,539 bytes, above `MAX_REQUEST`.
            if buf.len() - front.len() > MAX_REQUEST {
                Framed::TooLong
            } else {
                Framed::Incomplete
            }
        }
        Err(rtsp_types::ParseError::Incomplete(_)) => {
            if buf.len() > MAX_REQUEST {
                return Framed::TooLong;
            }
            Framed::Incomplete
        }
        Err(rtsp_types::ParseError::Error) => Framed::Malformed,
    }
}

/// `buf` without the blank lines (CRLF pairs) rtsp-types skips before a message.
fn without_blank_lines(mut buf: &[u8]) -> &[u8] {
    while let Some(rest) = buf.strip_prefix(b"\r\n") {
        buf = rest;
    }
    buf
}

/// The head (through its blank line) and the `CSeq` to answer with, when the message at
/// the front of `buf` has a whole head that declares a body over `MAX_BODY`.
fn head_with_body_too_large(buf: &[u8]) -> Option<(&[u8], Option<String>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let header = |want: &str| {
        text.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(want)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    if length <= MAX_BODY {
        return None;
    }
    let cseq = header("cseq").filter(|c| !c.is_empty() && c.len() < 16);
    Some((&buf[..end + 4], cseq))
}

/// Whether `head` parses as a message on its own, its `Content-Length` left out.
fn head_parses(head: &[u8]) -> bool {
    let is_length = |line: &[u8]| {
        std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(':'))
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
    };
    let without: Vec<u8> = head
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| !is_length(line))
        .flatten()
        .copied()
        .collect();
    matches!(
        Message::<Vec<u8>>::parse(&without),
        Ok((Message::Request(_) | Message::Response(_), _))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_partial_oversized_and_garbage() {
        let options = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        match frame(options) {
            Framed::Message { consumed, .. } => assert_eq!(consumed, options.len()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(frame(&options[..20]), Framed::Incomplete));
        assert!(matches!(frame(b""), Framed::Incomplete));
        let big = b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 99999\r\n\r\nv=0";
        match frame(big) {
            Framed::BodyTooLarge { cseq } => assert_eq!(cseq.as_deref(), Some("7")),
            other => panic!("{other:?}"),
        }
        let mut long = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nX: ".to_vec();
        long.resize(MAX_REQUEST + 1, b'a');
        assert!(matches!(frame(&long), Framed::TooLong));
        assert!(matches!(
            frame(b"\x01\x02garbage\r\n\r\n"),
            Framed::Malformed
        ));
        match frame(b"$\x01\x00\x02ab") {
            Framed::Message { consumed, .. } => assert_eq!(consumed, 6),
            other => panic!("{other:?}"),
        }
    }

    /// What `frame` decides at the end of `bytes` read in pieces of `step` bytes, as `conn`
    /// reads them: the messages taken, then the last decision.
    fn read_in_pieces(bytes: &[u8], step: usize) -> (usize, String) {
        let mut buf = Vec::new();
        let mut messages = 0;
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match frame(&buf) {
                    Framed::Message { consumed, .. } => {
                        buf.drain(..consumed);
                        messages += 1;
                    }
                    Framed::Incomplete => break,
                    other => return (messages, format!("{other:?}")),
                }
            }
        }
        (messages, "Incomplete".into())
    }

    #[test]
    fn interleaved_data_is_never_read_as_a_request_head() {
        // A publisher's RTP may hold any bytes: split across reads, this one once got 413.
        let mut data = b"$\x00\x00\x60x\r\nContent-Length: 99999\r\n\r\n".to_vec();
        data.resize(4 + 0x60, b'v');
        assert_eq!(read_in_pieces(&data, 8), (1, "Incomplete".into()));
        assert_eq!(read_in_pieces(&data, data.len()), (1, "Incomplete".into()));
    }

    #[test]
    fn the_largest_interleaved_frames_are_not_over_the_request_cap() {
        // 4 + 65,535 bytes: more than MAX_REQUEST, once closed as "a request over 64 KiB"
        // when a read ended 1 or 2 bytes short of its end.
        let mut data = vec![b'$', 0, 0xFF, 0xFF];
        data.resize(4 + 65_535, 0x80);
        for step in [1000, 65_537, 65_538, data.len()] {
            assert_eq!(
                read_in_pieces(&data, step),
                (1, "Incomplete".into()),
                "{step}"
            );
        }
        // Blank lines before it still count against the cap.
        let mut padded = b"\r\n".repeat(MAX_REQUEST / 2 + 1);
        padded.extend_from_slice(&data[..10]);
        assert!(matches!(frame(&padded), Framed::TooLong));
    }

    #[test]
    fn a_body_over_the_cap_is_refused_however_it_arrives() {
        // Once accepted when the whole request came in one read, 413 when in pieces.
        let mut req = format!(
            "\r\nSET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 9\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        )
        .into_bytes();
        req.resize(req.len() + MAX_BODY + 1, b'x');
        let refused = (0, r#"BodyTooLarge { cseq: Some("9") }"#.to_string());
        for step in [100, req.len()] {
            assert_eq!(read_in_pieces(&req, step), refused, "{step}");
        }
        // At the cap it is a message.
        let mut ok = format!(
            "SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 9\r\nContent-Length: {MAX_BODY}\r\n\r\n"
        )
        .into_bytes();
        ok.resize(ok.len() + MAX_BODY, b'x');
        assert_eq!(read_in_pieces(&ok, 100), (1, "Incomplete".into()));
    }
}
