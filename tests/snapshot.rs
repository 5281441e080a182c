//! JPEG snapshots (`GET /api/v1/paths/{name}/snapshot.jpg`) against the real binary: the
//! test pattern's picture at its size and scaled, with a burned-in frame code that is
//! recent (the cache never serves a picture older than a second); H.264 that arrives
//! encoded (an ffmpeg publisher, an MP4 file with B-frames) decoded to the right picture;
//! the errors (unknown path, no picture, bad width, no login).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::http::{assert_error, wait_json};
use common::*;

/// One answer with a binary body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.head, name)
    }
    fn reply(&self) -> common::http::Reply {
        common::http::Reply {
            status: self.status,
            head: self.head.clone(),
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

fn get_bytes(addr: SocketAddr, target: &str, extra: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to HTTP");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: vigint\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {target}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    Answer {
        status: status_of(&head),
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// A decoded JPEG: size and RGB pixels.
struct Rgb {
    width: u32,
    height: u32,
    px: Vec<u8>,
}

fn decode_jpeg(a: &Answer) -> Rgb {
    assert_eq!(
        a.status,
        200,
        "{}\n{}",
        a.head,
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("Content-Type"), Some("image/jpeg"));
    let mut dec = jpeg_decoder::Decoder::new(&a.body[..]);
    let px = dec.decode().expect("a JPEG");
    let info = dec.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    Rgb {
        width: info.width as u32,
        height: info.height as u32,
        px,
    }
}

/// Luma back in video (limited) range, as the code reader expects.
fn luma(img: &Rgb) -> Vec<u8> {
    img.px
        .chunks_exact(3)
        .map(|p| {
            let full = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            (16.0 + full * 219.0 / 255.0).round() as u8
        })
        .collect()
}

fn code_of(img: &Rgb) -> vigint::source::pattern::FrameCode {
    vigint::source::pattern::read_code(&luma(img), img.width as usize, img.width, img.height)
        .expect("the snapshot carries a readable frame code")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Polls the snapshot until it answers 200 (the path streams).
fn first_snapshot(addr: SocketAddr, target: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = get_bytes(addr, target, "");
        if a.status == 200 || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const W: u32 = 640;
const H: u32 = 480;
const FPS: u32 = 15;

#[test]
fn test_pattern_snapshot_is_its_latest_picture_at_its_size_or_scaled() {
    let s = Server::start(serde_json::json!({
        "paths": { "cam": pattern_path(W, H, FPS, 800) }
    }));
    let http = s.http.unwrap();
    let target = "/api/v1/paths/cam/snapshot.jpg";
    let img = decode_jpeg(&first_snapshot(http, target));
    assert_eq!((img.width, img.height), (W, H));
    // Recent, several times over: a picture never older than the cache's second (plus a
    // frame and some slack for a loaded machine), and later pictures once it expires.
    let mut frames = Vec::new();
    for _ in 0..8 {
        let a = get_bytes(http, target, "");
        let asked = now_ms();
        let img = decode_jpeg(&a);
        let code = code_of(&img);
        let age = asked.saturating_sub(code.capture_ms);
        assert!(age < 1600, "picture {} is {age} ms old", code.frame);
        let said: u64 = a.header("X-Picture-Age-Ms").unwrap().parse().unwrap();
        assert!(said <= 1100, "X-Picture-Age-Ms {said}");
        frames.push(code.frame);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(frames.windows(2).all(|w| w[1] >= w[0]), "{frames:?}");
    assert!(
        frames.last().unwrap() - frames[0] >= FPS,
        "2.8 s of snapshots span only {frames:?}"
    );
    // Within the second, every asker gets the same picture: one making for a burst.
    std::thread::sleep(Duration::from_millis(1100));
    let burst: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get_bytes(http, target, "").body))
        .collect();
    let bodies: Vec<Vec<u8>> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "a burst got different pictures"
    );
    // Scaled: 320 wide with the height that keeps 4:3; never wider than the picture.
    let small = decode_jpeg(&get_bytes(http, &format!("{target}?width=320"), ""));
    assert_eq!((small.width, small.height), (320, 240));
    let odd = decode_jpeg(&get_bytes(http, &format!("{target}?width=101"), ""));
    assert_eq!((odd.width, odd.height), (101, 76));
    let wide = decode_jpeg(&get_bytes(http, &format!("{target}?width=4000"), ""));
    assert_eq!((wide.width, wide.height), (W, H), "never upscaled");
    // Nonsense widths are refused clearly.
    for bad in ["0", "-5", "abc", "1e3", "99999", ""] {
        let a = get_bytes(http, &format!("{target}?width={bad}"), "");
        let field = assert_error(&a.reply(), 400, "bad_width");
        assert!(field.is_null());
    }
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

#[test]
fn errors_and_login() {
    let s = Server::start(serde_json::json!({
        "paths": {
            "cam": pattern_path(320, 240, FPS, 300),
            "door": { "source": "publisher" }
        }
    }));
    let http = s.http.unwrap();
    let a = get_bytes(http, "/api/v1/paths/nope/snapshot.jpg", "");
    assert_error(&a.reply(), 404, "unknown_path");
    // A publisher path nobody publishes to has no picture: a clear 503 with its state.
    let a = get_bytes(http, "/api/v1/paths/door/snapshot.jpg", "");
    assert_error(&a.reply(), 503, "not_streaming");
    let message = a.reply().json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("waiting for a publisher"), "{message}");
    assert_eq!(a.header("Retry-After"), Some("5"));
    // Once the admin password is set, snapshots need the login like status does.
    assert_eq!(
        first_snapshot(http, "/api/v1/paths/cam/snapshot.jpg").status,
        200
    );
    common::http::setup_admin(http, "snapshot-admin-1");
    let a = get_bytes(http, "/api/v1/paths/cam/snapshot.jpg", "");
    assert_error(&a.reply(), 401, "unauthorized");
    let a = get_bytes(
        http,
        "/api/v1/paths/cam/snapshot.jpg?width=160",
        &common::http::admin("wrong-password"),
    );
    assert_error(&a.reply(), 401, "unauthorized");
    let a = get_bytes(
        http,
        "/api/v1/paths/cam/snapshot.jpg?width=160",
        &common::http::admin("snapshot-admin-1"),
    );
    let img = decode_jpeg(&a);
    assert_eq!((img.width, img.height), (160, 120));
}

const PUB_PASS: &str = "publish-pw-1";

/// ffmpeg relaying `cam` into the publisher path `door`, the H.264 copied as it is.
fn relay_publisher(s: &Server) -> Child {
    ffmpeg_copy_command(
        &s.url_with_user("cam", "pub", PUB_PASS),
        &s.url_with_user("door", "pub", PUB_PASS),
        "tcp",
    )
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn ffmpeg")
}

#[test]
fn a_published_stream_is_decoded_to_its_latest_picture() {
    let (w, h) = (320, 240);
    let s = Server::start(serde_json::json!({
        "users": [{ "name": "pub", "password": PUB_PASS, "permissions": [
            { "action": "publish", "path": "door" }, { "action": "read" } ] }],
        "paths": {
            "cam": { "source": format!("test-pattern:{w}x{h}@{FPS}"), "bitrate_kbps": 400,
                     "idr_interval_s": 4 },
            "door": { "source": "publisher" }
        }
    }));
    let http = s.http.unwrap();
    let mut publisher = relay_publisher(&s);
    wait_json(http, "/api/v1/paths/door", "door streams", |v| {
        v["state"] == "streaming"
    });
    let img = decode_jpeg(&first_snapshot(http, "/api/v1/paths/door/snapshot.jpg"));
    assert_eq!((img.width, img.height), (w, h));
    // Decoded from the H.264 that arrived (the path has no raw picture): the frame code
    // reads back, and it is the latest picture, not the group's key frame (4 s groups).
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1100));
        let a = get_bytes(http, "/api/v1/paths/door/snapshot.jpg", "");
        let asked = now_ms();
        let code = code_of(&decode_jpeg(&a));
        let age = asked.saturating_sub(code.capture_ms);
        assert!(
            age < 1500,
            "published picture {} is {age} ms old",
            code.frame
        );
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

#[test]
fn an_mp4_file_with_b_frames_is_decoded_to_one_of_its_pictures() {
    require("ffmpeg");
    let dir = TempDir::new("snapshot-file");
    let clip = dir.file("clip.mp4");
    let (w, h) = (320usize, 240usize);
    let r = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=25")
            .args(["-t", "2", "-c:v", "libx264", "-bf", "2", "-g", "25"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&clip),
        Duration::from_secs(60),
    );
    assert!(r.ok, "ffmpeg: {}", r.stderr);
    // Every picture of the clip as ffmpeg decodes it, in RGB.
    let (ok, bytes, err) = run_bytes(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&clip)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg: {err}");
    let pictures: Vec<&[u8]> = bytes.chunks_exact(w * h * 3).collect();
    assert_eq!(pictures.len(), 50);
    let s = Server::start(serde_json::json!({
        "paths": { "clip": { "source": format!("file:{}", clip.display()) } }
    }));
    let http = s.http.unwrap();
    let mean_diff = |a: &[u8], b: &[u8]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
            .sum::<u64>() as f64
            / a.len() as f64
    };
    let mut img = decode_jpeg(&first_snapshot(http, "/api/v1/paths/clip/snapshot.jpg"));
    for round in 0..3 {
        assert_eq!((img.width, img.height), (w as u32, h as u32));
        // testsrc is colourful: the snapshot is one of the clip's pictures (closely, after
        // a JPEG round trip), and far from a flat grey one.
        let best = pictures
            .iter()
            .map(|p| mean_diff(&img.px, p))
            .fold(f64::MAX, f64::min);
        let grey = mean_diff(&img.px, &vec![128u8; w * h * 3]);
        println!(
            "round {round}: mean difference to the closest picture {best:.2}, to grey {grey:.1}"
        );
        assert!(best < 6.0, "no picture of the clip within {best:.2}");
        assert!(grey > 40.0, "a flat picture ({grey:.1})");
        std::thread::sleep(Duration::from_millis(1100));
        img = decode_jpeg(&get_bytes(http, "/api/v1/paths/clip/snapshot.jpg", ""));
    }
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}
