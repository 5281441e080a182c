//! Where one RTSP message ends in a connection's bytes, and when those bytes are garbage.
//!
//! Owns: the framing decision for the front of a connection's buffer (`frame`): a whole
//! message (request, response or `$` interleaved data, parsed with rtsp-types), more bytes
//! needed, a declared body over `MAX_BODY` (413 before the body is read), a line or head
//! not within `MAX_REQUEST` (400) or one that does not parse (400). The first line, the
//! head and the body are each judged once whole, so the answer never depends on how the
//! bytes were split into reads. Pure: no I/O, so `conn` and the fuzz harness
//! (`src/fuzzing.rs`) share it. Does not own: reading the socket, answering or closing
//! (`conn`), what a message's headers mean (the handlers).

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
    /// A request line or head that does not end within `MAX_REQUEST` bytes (blank lines
    /// before it counted): 400, then close.
    TooLong,
    /// Not RTSP: 400, then close.
    Malformed,
}

/// Decides what the front of `buf` is. The decision depends only on the bytes, never on
/// how they were split into reads (the fuzz harness checks that): each step below waits
/// for a boundary (the first line's end, the head's end, the body's end) and then judges
/// the bytes up to it alone, so a longer buffer never takes back what a shorter one said.
/// rtsp-types is only ever asked about such whole pieces: on a partial head it may call a
/// prefix malformed and the longer buffer incomplete.
pub fn frame(buf: &[u8]) -> Framed {
    // rtsp-types skips blank lines before a message; so does everything here.
    let front = without_blank_lines(buf);
    let skipped = buf.len() - front.len();
    if skipped > MAX_REQUEST {
        return Framed::TooLong;
    }
    if front.is_empty() {
        return Framed::Incomplete;
    }
    if front[0] == b'$' {
        // Interleaved data: no head to read (its payload may hold anything), and its
        // 16-bit length bounds it at 65,539 bytes: never over the cap, only incomplete.
        return match Message::<Vec<u8>>::parse(buf) {
            Ok((message, consumed)) => Framed::Message { message, consumed },
            Err(_) => Framed::Incomplete,
        };
    }
    // A request or response: its line and head are looked for in the first MAX_REQUEST
    // bytes only, so that "too long" is decided at the same byte however the reads fell.
    let window = &front[..front.len().min(MAX_REQUEST - skipped)];
    let Some(line_end) = find(window, b"\r\n") else {
        return wait_or_too_long(buf);
    };
    if !line_parses(&window[..line_end]) {
        return Framed::Malformed;
    }
    let Some(head_end) = find(window, b"\r\n\r\n").map(|at| at + 4) else {
        return wait_or_too_long(buf);
    };
    let head = &window[..head_end];
    if !head_parses(head) {
        return Framed::Malformed;
    }
    let Some(length) = content_length(head) else {
        return Framed::Malformed;
    };
    if length > MAX_BODY {
        return Framed::BodyTooLarge { cseq: cseq(head) };
    }
    // The body: bounded by MAX_BODY, so it may end past MAX_REQUEST.
    let Some(message) = front.get(..head_end + length) else {
        return Framed::Incomplete;
    };
    match Message::<Vec<u8>>::parse(message) {
        Ok((message, consumed)) if consumed == head_end + length => Framed::Message {
            message,
            consumed: skipped + consumed,
        },
        // rtsp-types read another length, or refused the whole: not a message we frame.
        _ => Framed::Malformed,
    }
}

/// No boundary yet: more bytes, unless the buffer is already over the cap.
fn wait_or_too_long(buf: &[u8]) -> Framed {
    if buf.len() > MAX_REQUEST {
        Framed::TooLong
    } else {
        Framed::Incomplete
    }
}

/// Where `needle` first starts in `haystack`. Every read rescans the buffer (a client
/// may send a head a byte at a time), so this is memchr's vectorised search.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// `buf` without the blank lines (CRLF pairs) rtsp-types skips before a message.
fn without_blank_lines(mut buf: &[u8]) -> &[u8] {
    while let Some(rest) = buf.strip_prefix(b"\r\n") {
        buf = rest;
    }
    buf
}

/// Whether `line` (without its CRLF) is a request or status line: rtsp-types' judgement
/// of it as a message with no headers.
fn line_parses(line: &[u8]) -> bool {
    let mut alone = Vec::with_capacity(line.len() + 4);
    alone.extend_from_slice(line);
    alone.extend_from_slice(b"\r\n\r\n");
    matches!(
        Message::<Vec<u8>>::parse(&alone),
        Ok((Message::Request(_) | Message::Response(_), _))
    )
}

/// Whether `head` (through its blank line) parses as a message on its own, its
/// `Content-Length` left out (with it, rtsp-types would wait for the body).
fn head_parses(head: &[u8]) -> bool {
    let without: Vec<u8> = head
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| !is_header(line, "content-length"))
        .flatten()
        .copied()
        .collect();
    matches!(
        Message::<Vec<u8>>::parse(&without),
        Ok((Message::Request(_) | Message::Response(_), _))
    )
}

/// Whether `line` is a header named `name` (any case).
fn is_header(line: &[u8], name: &str) -> bool {
    header_value(line, name).is_some()
}

/// The trimmed value of `line` when it is a header named `name` (any case).
fn header_value<'a>(line: &'a [u8], name: &str) -> Option<&'a str> {
    let (n, value) = std::str::from_utf8(line).ok()?.split_once(':')?;
    n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
}

/// The body length a parsed head declares, read as rtsp-types reads it (the first
/// `Content-Length`, a decimal `usize`; none: 0); `None` when it cannot be read.
fn content_length(head: &[u8]) -> Option<usize> {
    match head
        .split_inclusive(|b| *b == b'\n')
        .find_map(|line| header_value(line, "content-length"))
    {
        Some(value) => value.parse().ok(),
        None => Some(0),
    }
}

/// The `CSeq` to answer a refused head with (short and non-empty, else none).
fn cseq(head: &[u8]) -> Option<String> {
    head.split_inclusive(|b| *b == b'\n')
        .find_map(|line| header_value(line, "cseq"))
        .filter(|c| !c.is_empty() && c.len() < 16)
        .map(str::to_string)
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

    #[test]
    fn garbage_in_a_head_gets_one_answer_however_it_arrives() {
        // Found by CI's fuzzing: a status line, then a header of bytes that are not UTF-8
        // continued over folded lines. In one read rtsp-types called it incomplete; read in
        // pieces, a prefix ending at a CRLF was malformed. Now nothing is judged before the
        // head is whole, and the line alone is judged as soon as it is whole.
        let repro = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/rtsp_request/response-garbage-incomplete-whole-malformed-in-pieces"
        ))
        .unwrap();
        let stream = &repro[1..];
        let whole = read_in_pieces(stream, stream.len());
        for step in 1..stream.len() {
            assert_eq!(read_in_pieces(stream, step), whole, "{step}");
        }
        let mut cases: Vec<Vec<u8>> = vec![
            b"RTSP/1.0 200 OK\r\nCSeq: \xff\xff\r\n\tmore\r\n".to_vec(),
            b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\nGARBAGE\r\n".to_vec(),
            b"\x01\x02 not a line\r\nCSeq: 1\r\n".to_vec(),
            b"\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n$\x00\x00\x01z".to_vec(),
            b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: 3\r\n\r\nv=0".to_vec(),
            b"ANNOUNCE rtsp://h/cam RTSP/1.0\r\nContent-Length: x\r\n\r\nv=0".to_vec(),
        ];
        // A head still open at the cap, and blank lines over it before interleaved data.
        let mut long = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nX: ".to_vec();
        long.resize(MAX_REQUEST + 10, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        cases.push(long);
        let mut blank = b"\r\n".repeat(MAX_REQUEST / 2 + 1);
        blank.extend_from_slice(b"$\x00\x00\x01z");
        cases.push(blank);
        for case in &cases {
            let whole = read_in_pieces(case, case.len());
            // (Byte by byte over 64 KiB is minutes unoptimised: the long ones from 64 up.)
            let steps: &[usize] = if case.len() > 1000 {
                &[64, 1000, 4096]
            } else {
                &[1, 2, 3, 5, 7, 64]
            };
            for &step in steps {
                assert_eq!(read_in_pieces(case, step), whole, "{step}: {case:?}");
            }
        }
        assert!(matches!(frame(&cases[2]), Framed::Malformed));
        assert!(matches!(frame(&cases[5]), Framed::Malformed));
        assert!(matches!(frame(&cases[6]), Framed::TooLong));
        assert!(matches!(frame(&cases[7]), Framed::TooLong));
        assert_eq!(read_in_pieces(&cases[3], 3), (2, "Incomplete".into()));
        assert_eq!(read_in_pieces(&cases[4], 3), (1, "Incomplete".into()));
    }
}
