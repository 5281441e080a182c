//! Every status code the server promises, provoked on a raw socket; and a fuzz-style test:
//! random and truncated requests never disturb other clients.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn server_with(extra: serde_json::Value) -> Server {
    let mut cfg = serde_json::json!({ "paths": { "cam": pattern_path(320, 240, 15, 300) } });
    if let (Some(obj), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    Server::start(cfg)
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.rtsp).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c
}

fn req(method: &str, url: &str, cseq: u32, extra: &str) -> String {
    format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n")
}

/// DESCRIBE + SETUP over TCP; returns the session id.
fn setup_tcp(c: &mut TcpStream, s: &Server) -> String {
    let url = s.url("cam");
    let r = raw_request(c, &req("DESCRIBE", &url, 1, ""));
    assert_eq!(status_of(&r), 200, "{r}");
    let r = raw_request(
        c,
        &req(
            "SETUP",
            &format!("{url}/trackID=0"),
            2,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    header_of(&r, "Session")
        .and_then(|v| v.split(';').next())
        .expect("session header")
        .to_string()
}

/// True when the server closed the connection (EOF or reset) within the timeout.
fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn status_codes() {
    let s = server_with(serde_json::json!({}));
    let url = s.url("cam");

    // 200 OPTIONS with the methods we serve.
    let mut c = connect(&s);
    let r = raw_request(&mut c, &req("OPTIONS", &url, 1, ""));
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(header_of(&r, "Public")
        .is_some_and(|p| p.contains("DESCRIBE") && p.contains("GET_PARAMETER")));
    assert_eq!(header_of(&r, "CSeq"), Some("1"));

    // 404 unknown path.
    let r = raw_request(&mut c, &req("DESCRIBE", &s.url("nope"), 2, ""));
    assert_eq!(status_of(&r), 404, "{r}");

    // 455 PLAY before SETUP.
    let r = raw_request(&mut c, &req("PLAY", &url, 3, ""));
    assert_eq!(status_of(&r), 455, "{r}");

    // 461 unsupported transport.
    let r = raw_request(
        &mut c,
        &req(
            "SETUP",
            &format!("{url}/trackID=0"),
            4,
            "Transport: RTP/AVP;multicast\r\n",
        ),
    );
    assert_eq!(status_of(&r), 461, "{r}");

    // 501 unknown method.
    let r = raw_request(&mut c, &req("FROBNICATE", &url, 5, ""));
    assert_eq!(status_of(&r), 501, "{r}");

    // 401: nobody publishes anonymously (no user exists here who could).
    let r = raw_request(&mut c, &req("ANNOUNCE", &url, 6, ""));
    assert_eq!(status_of(&r), 401, "{r}");

    // 505 RTSP/2.0.
    let r = raw_request(&mut c, "OPTIONS * RTSP/2.0\r\nCSeq: 7\r\n\r\n");
    assert_eq!(status_of(&r), 505, "{r}");

    // 454 unknown session, then a normal lifecycle with PAUSE and TEARDOWN.
    let mut c = connect(&s);
    let id = setup_tcp(&mut c, &s);
    let r = raw_request(&mut c, &req("PLAY", &url, 3, "Session: 0000DEADBEEF\r\n"));
    assert_eq!(status_of(&r), 454, "{r}");
    let r = raw_request(
        &mut c,
        &req("GET_PARAMETER", &url, 4, &format!("Session: {id}\r\n")),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    let r = raw_request(&mut c, &req("PLAY", &url, 5, &format!("Session: {id}\r\n")));
    assert_eq!(status_of(&r), 200, "{r}");
    let rtp_info = header_of(&r, "RTP-Info").expect("RTP-Info on PLAY");
    assert!(
        rtp_info.contains("seq=") && rtp_info.contains("rtptime="),
        "{rtp_info}"
    );
    // 455 SETUP while playing.
    let r = send_and_find_response(
        &mut c,
        &req(
            "SETUP",
            &format!("{url}/trackID=0"),
            6,
            &format!("Session: {id}\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n"),
        ),
    );
    assert_eq!(status_of(&r), 455, "{r}");
    let r = send_and_find_response(
        &mut c,
        &req("TEARDOWN", &url, 7, &format!("Session: {id}\r\n")),
    );
    assert_eq!(status_of(&r), 200, "{r}");

    // 400 for garbage; the connection is closed.
    let mut c = connect(&s);
    let r = raw_request(&mut c, "this is not rtsp\r\n\r\n");
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(closed(&mut c), "garbage must close the connection");

    // 400 for a request without CSeq.
    let mut c = connect(&s);
    let r = raw_request(&mut c, &format!("OPTIONS {url} RTSP/1.0\r\n\r\n"));
    assert_eq!(status_of(&r), 400, "{r}");
}

/// Skips interleaved media ($-frames) until the RTSP response arrives.
fn send_and_find_response(c: &mut TcpStream, request: &str) -> String {
    c.write_all(request.as_bytes()).expect("write");
    let mut b = [0u8; 1];
    loop {
        c.read_exact(&mut b).expect("read");
        if b[0] == b'$' {
            let mut h = [0u8; 3];
            c.read_exact(&mut h).expect("read");
            let len = u16::from_be_bytes([h[1], h[2]]) as usize;
            let mut skip = vec![0u8; len];
            c.read_exact(&mut skip).expect("read");
        } else if b[0] == b'R' {
            let rest = read_response(c);
            return format!("R{rest}");
        }
    }
}

#[test]
fn connection_limit_gives_503() {
    let s = server_with(serde_json::json!({ "rtsp": { "max_connections": 2 } }));
    let url = s.url("cam");
    let mut a = connect(&s);
    let mut b = connect(&s);
    assert_eq!(
        status_of(&raw_request(&mut a, &req("OPTIONS", &url, 1, ""))),
        200
    );
    assert_eq!(
        status_of(&raw_request(&mut b, &req("OPTIONS", &url, 1, ""))),
        200
    );
    let mut c = connect(&s);
    let r = raw_request(&mut c, &req("OPTIONS", &url, 1, ""));
    assert_eq!(status_of(&r), 503, "{r}");
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut d = connect(&s);
    assert_eq!(
        status_of(&raw_request(&mut d, &req("OPTIONS", &url, 1, ""))),
        200,
        "a slot is free again"
    );
}

#[test]
fn reader_limit_gives_503() {
    let mut cfg = serde_json::json!({ "paths": { "cam": pattern_path(320, 240, 15, 300) } });
    cfg["paths"]["cam"]["max_readers"] = 1.into();
    let s = Server::start(cfg);
    let mut a = connect(&s);
    setup_tcp(&mut a, &s);
    let mut b = connect(&s);
    let url = s.url("cam");
    let r = raw_request(
        &mut b,
        &req(
            "SETUP",
            &format!("{url}/trackID=0"),
            1,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    );
    assert_eq!(status_of(&r), 503, "{r}");
}

#[test]
fn fuzzed_requests_do_not_disturb_other_clients() {
    let s = server_with(serde_json::json!({}));
    let url = s.url("cam");
    // A strict client watches the stream the whole time.
    let watcher_url = url.clone();
    let watcher = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(retina_util::frames(
            &watcher_url,
            "tcp",
            None,
            Duration::from_secs(8),
        ))
    });
    std::thread::sleep(Duration::from_millis(500));

    let valid = [
        req("OPTIONS", &url, 1, ""),
        req("DESCRIBE", &url, 2, "Accept: application/sdp\r\n"),
        req(
            "SETUP",
            &format!("{url}/trackID=0"),
            3,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
        req(
            "SETUP",
            &format!("{url}/trackID=0"),
            3,
            "Transport: RTP/AVP;unicast;client_port=40000-40001\r\n",
        ),
        req("PLAY", &url, 4, "Session: 1234\r\nRange: npt=0-\r\n"),
        req("GET_PARAMETER", &url, 5, "Content-Length: 5\r\n\r\nhello"),
        req(
            "DESCRIBE",
            &url,
            6,
            "Authorization: Digest username=\"a\", realm=\"x\", nonce=\"\\\", uri=\r\n",
        ),
        req("DESCRIBE", &url, 7, "Authorization: Basic !!!!\r\n"),
        req("SETUP", &url, 8, "Transport: RTP/AVP;dest_addr=\"\\\r\n"),
    ];
    let mut rng = XorShift(0x5eed_1234_abcd_9876);
    for round in 0..300 {
        let Ok(mut c) = TcpStream::connect(s.rtsp) else {
            panic!("server stopped accepting at round {round}");
        };
        c.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        c.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let payload: Vec<u8> = match round % 4 {
            0 => (0..rng.below(3000) + 1)
                .map(|_| rng.next_u64() as u8)
                .collect(),
            1 => {
                let v = valid[rng.below(valid.len())].as_bytes();
                v[..rng.below(v.len()) + 1].to_vec()
            }
            2 => {
                // A valid request with random bytes flipped.
                let mut v = valid[rng.below(valid.len())].as_bytes().to_vec();
                for _ in 0..rng.below(5) + 1 {
                    let i = rng.below(v.len());
                    v[i] = rng.next_u64() as u8;
                }
                v
            }
            _ => {
                // An endless header line or interleaved frame with a bogus length.
                if rng.below(2) == 0 {
                    let mut v = b"OPTIONS * RTSP/1.0\r\nX: ".to_vec();
                    v.extend(std::iter::repeat_n(b'a', 70_000));
                    v
                } else {
                    vec![b'$', 0, 0xff, 0xff, 1, 2, 3]
                }
            }
        };
        let _ = c.write_all(&payload);
        let mut sink = [0u8; 4096];
        let _ = c.read(&mut sink);
    }
    let frames = watcher
        .join()
        .expect("watcher thread")
        .unwrap_or_else(|e| panic!("the watching client was disturbed: {e}"));
    assert!(
        frames.len() >= 100,
        "watcher got {} frames in 8 s",
        frames.len()
    );
    retina_util::assert_consecutive(&frames, 15, "watcher during fuzzing");
    // And the server still serves new clients.
    let mut c = connect(&s);
    assert_eq!(
        status_of(&raw_request(&mut c, &req("OPTIONS", &url, 1, ""))),
        200
    );
    assert!(
        !s.log_text().contains("panicked"),
        "a task panicked:\n{}",
        s.log_text()
    );
}

/// Session requests in every URL and header form players send: live555 (VLC) uses its
/// Content-Base with the trailing slash for PLAY, PAUSE, TEARDOWN and GET_PARAMETER, keeps
/// alive with OPTIONS carrying a Session header, and resumes with a PLAY without Range;
/// others use the URL without the slash or the track URL, and some echo the whole Session
/// header (`id;timeout=60`). Each form must work, and the session must end at TEARDOWN.
#[test]
fn session_requests_in_every_url_form() {
    use common::raw_rtsp::{is_h264_rtp, RawClient};
    let s = server_with(serde_json::json!({}));
    let url = s.url("cam");
    let forms = [
        (format!("{url}/"), "{id}"),
        (url.clone(), "{id}"),
        (format!("{url}/trackID=0"), "{id}"),
        (format!("{url}/"), "{id};timeout=60"),
    ];
    for (session_url, session_form) in forms {
        let what = format!("{session_url} with Session: {session_form}");
        let mut c = RawClient::connect(s.rtsp);
        assert_eq!(c.status("OPTIONS", &url, ""), 200, "{what}");
        let r = c.request("DESCRIBE", &url, "Accept: application/sdp\r\n");
        assert_eq!(status_of(&r), 200, "{what}: {r}");
        let base = header_of(&r, "Content-Base")
            .expect("Content-Base")
            .to_string();
        let r = c.request(
            "SETUP",
            &format!("{base}trackID=0"),
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        );
        assert_eq!(status_of(&r), 200, "{what}: {r}");
        let id = header_of(&r, "Session")
            .and_then(|v| v.split(';').next())
            .expect("Session")
            .to_string();
        let session = format!("Session: {}\r\n", session_form.replace("{id}", &id));
        let r = c.request(
            "PLAY",
            &session_url,
            &format!("{session}Range: npt=0.000-\r\n"),
        );
        assert_eq!(status_of(&r), 200, "PLAY {what}: {r}");
        let first = c.rtp_packets(0, 5, Duration::from_secs(10));
        assert!(first.iter().all(|p| is_h264_rtp(p)), "{what}");
        assert_eq!(c.status("OPTIONS", &url, &session), 200, "{what}");
        assert_eq!(
            c.status("GET_PARAMETER", &session_url, &session),
            200,
            "{what}"
        );
        assert_eq!(c.status("PAUSE", &session_url, &session), 200, "{what}");
        // Resume as live555 does: no Range.
        assert_eq!(c.status("PLAY", &session_url, &session), 200, "{what}");
        c.media.clear();
        let again = c.rtp_packets(0, 5, Duration::from_secs(10));
        assert!(again.iter().all(|p| is_h264_rtp(p)), "{what}");
        assert_eq!(c.status("TEARDOWN", &session_url, &session), 200, "{what}");
        assert_eq!(
            c.status("GET_PARAMETER", &session_url, &session),
            454,
            "{what}: the session ended"
        );
    }
}
