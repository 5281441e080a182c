//! Fan-out under load: 50 concurrent sessions (retina, mixed TCP/UDP, one process) all get
//! every frame; a TCP client that stops reading is dropped after the stall timeout without
//! disturbing the others; a client that pauses reading resumes at a key frame with whole
//! frames only; server memory stays bounded.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;

const FPS: u32 = 30;

/// Sets a socket's receive buffer, so a client that stops reading stalls the server fast.
fn set_receive_buffer(s: &TcpStream, size: libc::c_int) {
    // SAFETY: setsockopt with a valid fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// DESCRIBE, SETUP (TCP interleaved) and PLAY on a raw socket; media follows. A small
/// receive buffer makes a client that never reads stall the server quickly (it is not used
/// for a client that resumes: with a buffer far below the loopback MSS the receiver sends no
/// window update, and the sender's zero-window probes back off for seconds).
fn play_raw_tcp(s: &Server, small_buffer: bool) -> TcpStream {
    let mut c = TcpStream::connect(s.rtsp).expect("connect");
    // A fixed buffer also stops Linux from growing it to megabytes while the client reads.
    set_receive_buffer(&c, if small_buffer { 4096 } else { 128 * 1024 });
    let url = s.url("cam");
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    let r = raw_request(
        &mut c,
        &format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    let session = header_of(&r, "Session")
        .and_then(|v| v.split(';').next())
        .expect("session")
        .to_string();
    let r = raw_request(
        &mut c,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    c
}

fn sessions(url: &str, n: usize, seconds: u64) -> Vec<(String, Result<Vec<i64>, String>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = url.to_string();
            let kind = if i % 2 == 0 { "tcp" } else { "udp" };
            tasks.push(tokio::spawn(async move {
                let r = retina_util::frames(&url, kind, None, Duration::from_secs(seconds)).await;
                (format!("session {i} ({kind})"), r)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("session task"));
        }
        out
    })
}

#[test]
fn fifty_sessions_get_every_frame_and_a_stalled_client_is_dropped() {
    let s = Server::start(serde_json::json!({
        "rtsp": { "stall_timeout_s": 3 },
        "paths": { "cam": pattern_path(1280, 720, FPS, 2000) }
    }));
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = s.rss_kib();

    // The stalled client: plays, then never reads again.
    let stalled = play_raw_tcp(&s, true);
    let stalled_since = Instant::now();

    let url = s.url("cam");
    let cpu_before = s.cpu_ticks();
    let results = sessions(&url, 50, 6);
    let cpu_ticks = s.cpu_ticks() - cpu_before;
    let rss_loaded = s.rss_kib();

    for (name, r) in &results {
        let stamps = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            stamps.len() as u32 >= 5 * FPS,
            "{name}: {} frames in 6 s",
            stamps.len()
        );
        retina_util::assert_consecutive(stamps, FPS, name);
    }

    assert!(
        s.wait_log("stopped reading", Duration::from_secs(10)),
        "the stalled client was not dropped:\n{}",
        s.log_text()
    );
    let dropped_after = stalled_since.elapsed();
    // Its connection is closed: reading what is buffered ends in EOF or reset.
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    let closed = loop {
        match stalled.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    assert!(closed, "the stalled client's connection is still open");

    eprintln!(
        "FIGURES: 50 sessions of 720p30 2 Mbit/s: server RSS idle {} KiB, with 50 clients {} KiB; server CPU {:.1}% of one core over 6 s; stalled client dropped {:.1} s after it stopped reading",
        rss_idle,
        rss_loaded,
        cpu_ticks as f64 / 6.0,
        dropped_after.as_secs_f64()
    );
    assert!(
        rss_loaded < 150 * 1024,
        "server RSS {rss_loaded} KiB with 50 clients is not bounded"
    );
}

/// Parses interleaved RTP from a raw socket and checks H.264 integrity: FU-A fragments are
/// never cut, and after any loss the next frame is a key frame.
struct IntegrityChecker {
    last_seq: Option<u16>,
    in_fu: bool,
    need_key: bool,
    frames: u32,
    gaps: u32,
    frame_start: bool,
}

impl IntegrityChecker {
    fn packet(&mut self, rtp: &[u8]) {
        assert!(rtp.len() > 13, "short RTP packet");
        let seq = u16::from_be_bytes([rtp[2], rtp[3]]);
        let marker = rtp[1] & 0x80 != 0;
        let payload = &rtp[12..];
        if let Some(last) = self.last_seq {
            if seq != last.wrapping_add(1) {
                self.gaps += 1;
                // Whole frames only: a gap may only come between frames.
                assert!(!self.in_fu, "a gap cut a fragmented NAL unit");
                assert!(self.frame_start, "a gap cut a frame");
                self.need_key = true;
            }
        }
        self.last_seq = Some(seq);
        let nal = payload[0] & 0x1f;
        let carried = match nal {
            28 => {
                let start = payload[1] & 0x80 != 0;
                let end = payload[1] & 0x40 != 0;
                assert_eq!(
                    start, !self.in_fu,
                    "FU-A start/continuation mismatch at seq {seq}"
                );
                self.in_fu = !end;
                payload[1] & 0x1f
            }
            24 => payload[3] & 0x1f,
            n => n,
        };
        if self.frame_start && self.need_key {
            assert!(
                matches!(carried, 5 | 7),
                "after a loss the first frame must be a key frame (got NAL {carried})"
            );
            self.need_key = false;
        }
        self.frame_start = marker;
        if marker {
            self.frames += 1;
        }
    }
}

#[test]
fn a_paused_reader_skips_whole_frames_to_a_key_frame() {
    let s = Server::start(serde_json::json!({
        "rtsp": { "stall_timeout_s": 30, "max_lag_ms": 1000 },
        "paths": { "cam": pattern_path(1280, 720, FPS, 8000) }
    }));
    let mut c = play_raw_tcp(&s, false);
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut checker = IntegrityChecker {
        last_seq: None,
        in_fu: false,
        need_key: false,
        frames: 0,
        gaps: 0,
        frame_start: true,
    };
    let read_for = |c: &mut TcpStream, d: Duration, checker: &mut IntegrityChecker| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            let mut h = [0u8; 4];
            c.read_exact(&mut h).expect("interleaved header");
            assert_eq!(h[0], b'$', "media stream out of sync");
            let len = u16::from_be_bytes([h[2], h[3]]) as usize;
            let mut pkt = vec![0u8; len];
            c.read_exact(&mut pkt).expect("packet");
            if h[1] == 0 {
                checker.packet(&pkt);
            }
        }
    };
    read_for(&mut c, Duration::from_secs(2), &mut checker);
    // Stop reading far longer than `max_lag_ms` (and than it takes to fill the socket
    // buffers), shorter than the stall timeout.
    std::thread::sleep(Duration::from_secs(6));
    read_for(&mut c, Duration::from_secs(3), &mut checker);
    assert!(
        checker.gaps >= 1,
        "the paused reader should have skipped frames"
    );
    assert!(checker.frames >= 60, "{} frames", checker.frames);
    let _ = c.write_all(b"TEARDOWN * RTSP/1.0\r\nCSeq: 9\r\n\r\n");
}
