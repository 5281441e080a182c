//! RTSP publishing into a `publisher` path with real publishers (ffmpeg over TCP and UDP,
//! GStreamer's rtspclientsink) and real players reading it back (ffprobe, ffmpeg,
//! GStreamer, retina); B-frames and an AAC track; permissions; a busy path; a publisher
//! that leaves and comes back while a viewer stays; malformed input on a raw socket.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::raw_rtsp::RawClient;
use common::*;

const PUBLISHER: &str = "pub";
const PUB_PASS: &str = "publish-pw-1";
const VIEWER: &str = "viewer";
const VIEW_PASS: &str = "viewer-pw-1";
const W: u32 = 320;
const H: u32 = 240;
const FPS: u32 = 15;

/// A server with a test-pattern path `cam` (the stream publishers relay) and a publisher
/// path `door`; `pub` may publish `door` and read everything, `viewer` may read.
fn server(extra_door: serde_json::Value) -> Server {
    let mut door = serde_json::json!({ "source": "publisher" });
    if let (Some(d), Some(e)) = (door.as_object_mut(), extra_door.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    Server::start(serde_json::json!({
        "users": [
            { "name": PUBLISHER, "password": PUB_PASS, "permissions": [
                { "action": "publish", "path": "door" }, { "action": "read" } ] },
            { "name": VIEWER, "password": VIEW_PASS }
        ],
        "paths": { "cam": pattern_path(W, H, FPS, 300), "door": door }
    }))
}

/// ffmpeg relaying `cam` into `door` (copying the H.264 as is) over `transport`.
fn relay_publisher(s: &Server, transport: &str) -> Child {
    ffmpeg_copy_command(
        &s.url_with_user("cam", VIEWER, VIEW_PASS),
        &s.url_with_user("door", PUBLISHER, PUB_PASS),
        transport,
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ffmpeg")
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_publishing(s: &Server) {
    assert!(
        s.wait_log("path door: ", Duration::from_secs(20))
            && s.wait_log(" publishing", Duration::from_secs(20)),
        "no publisher arrived:\n{}",
        s.log_text()
    );
}

fn door(s: &Server) -> String {
    s.url_with_user("door", VIEWER, VIEW_PASS)
}

fn check_publish(transport: &str) {
    let s = server(serde_json::json!({}));
    let publisher = relay_publisher(&s, transport);
    wait_publishing(&s);
    // The pushed test pattern decodes with every burned-in frame number, in order.
    let (frames, stderr) = ffmpeg_gray_frames(&door(&s), "tcp", 4, W, H);
    assert!(stderr.trim().is_empty(), "decode errors: {stderr}");
    assert!(
        frames.len() as u32 >= 3 * FPS,
        "only {} frames over {transport}",
        frames.len()
    );
    assert_gapless(
        &codes_of(&frames, W, H),
        &format!("published over {transport}"),
    );
    // And a strict client reads it too.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stamps = rt
        .block_on(retina_util::frames(
            &s.url("door"),
            "tcp",
            Some((VIEWER, VIEW_PASS)),
            Duration::from_secs(3),
        ))
        .unwrap_or_else(|e| panic!("retina: {e}"));
    assert!(stamps.len() as u32 >= 2 * FPS, "retina: {}", stamps.len());
    retina_util::assert_consecutive(&stamps, FPS, "retina of a published path");
    let errors = stop(publisher);
    assert!(
        !s.log_text().contains("panicked"),
        "{errors}\n{}",
        s.log_text()
    );
}

#[test]
fn ffmpeg_publishes_over_tcp() {
    check_publish("tcp");
}

#[test]
fn ffmpeg_publishes_over_udp() {
    check_publish("udp");
}

#[test]
fn gstreamer_rtspclientsink_publishes_and_gstreamer_and_ffprobe_read() {
    require("gst-launch-1.0");
    let s = server(serde_json::json!({}));
    let publisher = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "is-live=true",
            "!",
            "video/x-raw,width=320,height=240,framerate=15/1",
            "!",
            "x264enc",
            "tune=zerolatency",
            "key-int-max=15",
            "!",
            "rtspclientsink",
            &format!("location={}", s.url("door")),
            &format!("user-id={PUBLISHER}"),
            &format!("user-pw={PUB_PASS}"),
            "protocols=tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gst-launch");
    wait_publishing(&s);
    let probe = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-read_intervals",
            "%+3",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=nw=1",
            &door(&s),
        ]),
        Duration::from_secs(30),
    );
    assert!(probe.ok, "ffprobe: {}", probe.stderr);
    assert!(
        probe.stdout.contains("codec_name=h264") && probe.stdout.contains("width=320"),
        "{}",
        probe.stdout
    );
    let gst = run(
        Command::new("gst-launch-1.0").args([
            "rtspsrc",
            &format!("location={}", s.url("door")),
            &format!("user-id={VIEWER}"),
            &format!("user-pw={VIEW_PASS}"),
            "protocols=tcp",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            "num-buffers=30",
        ]),
        Duration::from_secs(30),
    );
    assert!(
        gst.stdout.contains("Got EOS from element"),
        "GStreamer reading the published path:\n{}\n{}",
        gst.stdout,
        gst.stderr
    );
    stop(publisher);
}

/// A file with B-frames (x264 `-bf 2`) and an AAC track: the audio is accepted and
/// dropped, the video kept as sent; the recording carries the publisher's frame order.
#[test]
fn b_frames_and_an_audio_track_are_kept_and_recorded_in_order() {
    require("ffmpeg");
    require("ffprobe");
    let dir = TempDir::new("bframes");
    let src = dir.file("bframes.mp4");
    let made = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=25")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args([
                "-t", "6", "-c:v", "libx264", "-bf", "2", "-g", "25", "-pix_fmt", "yuv420p",
                "-c:a", "aac",
            ])
            .arg(&src),
        Duration::from_secs(60),
    );
    assert!(made.ok, "making the B-frame file: {}", made.stderr);
    let s = Server::start(serde_json::json!({
        "users": [ { "name": PUBLISHER, "password": PUB_PASS, "permissions": [
            { "action": "publish", "path": "door" }, { "action": "read" } ] } ],
        "recording": { "record": true, "part_duration": "500ms", "segment_duration": "1h" },
        "paths": { "door": { "source": "publisher" } }
    }));
    let push = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(&src)
            .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(s.url_with_user("door", PUBLISHER, PUB_PASS)),
        Duration::from_secs(40),
    );
    assert!(push.ok, "ffmpeg push: {}", push.stderr);
    assert!(
        s.log_text().contains("MPEG4-GENERIC") && s.log_text().contains("accepted and dropped"),
        "the audio track is named and dropped:\n{}",
        s.log_text()
    );
    // Let the recorder finish its fragment, then look at what it wrote.
    std::thread::sleep(Duration::from_secs(2));
    let mut s = s;
    s.terminate();
    let recorded = find_mp4(&s.config_path.parent().unwrap().join("data/recordings"));
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let decode = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&recorded[0])
            .args(["-f", "null", "-"]),
        Duration::from_secs(30),
    );
    assert!(
        decode.ok && decode.stderr.trim().is_empty(),
        "the recording decodes with errors (non-monotonic DTS?): {}",
        decode.stderr
    );
    // Presentation order of the packets as stored (decode order): the publisher's pattern
    // of B-frames, and decode times that only rise.
    let src_order = pts_order(&src);
    let rec_order = pts_order(&recorded[0]);
    assert!(
        rec_order.len() >= 100,
        "{} frames recorded",
        rec_order.len()
    );
    let offset = src_order
        .windows(rec_order.len().min(20))
        .position(|w| w == &rec_order[..rec_order.len().min(20)])
        .unwrap_or_else(|| panic!("recorded order {rec_order:?} is not the file's {src_order:?}"));
    assert_eq!(
        &src_order[offset..offset + rec_order.len()],
        &rec_order[..],
        "frame order differs"
    );
    assert!(
        rec_order.windows(2).any(|w| w[1] < w[0]),
        "no reordered frame: were the B-frames lost? {rec_order:?}"
    );
}

/// Every `.mp4` under `dir`.
fn find_mp4(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                out.push(p);
            }
        }
    }
    out
}

/// The video packets' presentation times in stored (decode) order, as frame indexes
/// relative to the first packet (so a file and a recording of it compare).
fn pts_order(file: &std::path::Path) -> Vec<i64> {
    let r = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["packet=pts,dts", "-of", "csv=p=0"])
            .arg(file),
        Duration::from_secs(30),
    );
    assert!(r.ok, "ffprobe packets: {}", r.stderr);
    let rows: Vec<(i64, i64)> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let (p, d) = l.split_once(',')?;
            Some((p.trim().parse().ok()?, d.trim().parse().ok()?))
        })
        .collect();
    assert!(
        rows.windows(2).all(|w| w[1].1 > w[0].1),
        "decode times must rise: {:?}",
        rows.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    // One frame's time: the most common step between decode times.
    let mut steps: Vec<i64> = rows.windows(2).map(|w| w[1].1 - w[0].1).collect();
    steps.sort_unstable();
    let step = steps.get(steps.len() / 2).copied().unwrap_or(1).max(1);
    let base = rows.iter().map(|r| r.0).min().unwrap_or(0);
    rows.iter()
        .map(|(p, _)| ((p - base) as f64 / step as f64).round() as i64)
        .collect()
}

/// The smallest SDP a publisher announces: one H.264 track.
const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";

#[test]
fn permissions_decide_who_publishes_and_who_reads() {
    require("ffmpeg");
    // No users at all: reading is open, publishing never.
    let open = Server::start(serde_json::json!({
        "paths": { "door": { "source": "publisher" } }
    }));
    let mut c = RawClient::connect(open.rtsp);
    let r = c.request_with_body(
        "ANNOUNCE",
        &open.url("door"),
        "Content-Type: application/sdp\r\n",
        SDP.as_bytes(),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    drop(c);
    // Through ffmpeg, as users would see it.
    let push = |url: String| {
        run(
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
                .arg("testsrc=size=160x120:rate=10")
                .args([
                    "-t",
                    "1",
                    "-c:v",
                    "libx264",
                    "-f",
                    "rtsp",
                    "-rtsp_transport",
                    "tcp",
                ])
                .arg(url),
            Duration::from_secs(30),
        )
    };
    let anonymous = push(open.url("door"));
    assert!(!anonymous.ok, "anonymous publishing must fail");
    assert!(
        open.log_text()
            .contains("publishing needs a user with the publish permission"),
        "{}",
        open.log_text()
    );
    let s = server(serde_json::json!({}));
    let anonymous = push(s.url("door"));
    assert!(
        !anonymous.ok && anonymous.stderr.contains("401"),
        "{}",
        anonymous.stderr
    );
    let reader = push(s.url_with_user("door", VIEWER, VIEW_PASS));
    assert!(
        !reader.ok && reader.stderr.contains("403"),
        "a read-only user must not publish: {}",
        reader.stderr
    );
    assert!(
        s.log_text().contains("user `viewer` may not publish door"),
        "{}",
        s.log_text()
    );
    // A user who may publish `door` but read nothing.
    let strict = Server::start(serde_json::json!({
        "users": [ { "name": PUBLISHER, "password": PUB_PASS, "permissions": [
            { "action": "publish", "path": "door" } ] } ],
        "paths": { "cam": pattern_path(W, H, FPS, 300), "door": { "source": "publisher" } }
    }));
    let probe = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp"])
            .arg(strict.url_with_user("cam", PUBLISHER, PUB_PASS)),
        Duration::from_secs(20),
    );
    assert!(
        !probe.ok && probe.stderr.contains("403"),
        "no read permission: {}",
        probe.stderr
    );
}

#[test]
fn a_second_publisher_is_refused_unless_the_path_lets_it_take_over() {
    let s = server(serde_json::json!({}));
    let first = relay_publisher(&s, "tcp");
    wait_publishing(&s);
    let second = relay_publisher(&s, "tcp");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log_text().contains("path busy") {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(second);
    stop(first);

    let s = server(serde_json::json!({ "override_publisher": true }));
    let first = relay_publisher(&s, "tcp");
    wait_publishing(&s);
    let second = relay_publisher(&s, "tcp");
    assert!(
        s.wait_log("(override_publisher)", Duration::from_secs(20)),
        "{}",
        s.log_text()
    );
    assert!(
        s.wait_log("was replaced by another publisher", Duration::from_secs(10)),
        "{}",
        s.log_text()
    );
    stop(second);
    stop(first);
}

/// A viewer of a path whose publisher leaves stays connected, and resumes when the next
/// publisher comes (as with a camera unplugged and plugged back).
#[test]
fn viewers_stay_while_the_publisher_leaves_and_comes_back() {
    let s = server(serde_json::json!({}));
    let first = relay_publisher(&s, "tcp");
    wait_publishing(&s);
    let url = s.url("door");
    let viewer = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(retina_util::frames(
            &url,
            "tcp",
            Some((VIEWER, VIEW_PASS)),
            Duration::from_secs(12),
        ))
    });
    std::thread::sleep(Duration::from_secs(3));
    stop(first);
    assert!(
        s.wait_log("publisher 127.0.0.1", Duration::from_secs(10))
            && s.wait_log("left; waiting for a publisher", Duration::from_secs(10)),
        "{}",
        s.log_text()
    );
    let status = common::http::get(s.http.expect("HTTP"), "/api/v1/paths/door").json();
    assert_eq!(status["state"], "waiting for a publisher", "{status}");
    std::thread::sleep(Duration::from_secs(2));
    let second = relay_publisher(&s, "tcp");
    let stamps = viewer
        .join()
        .expect("viewer")
        .unwrap_or_else(|e| panic!("the viewer was dropped: {e}"));
    stop(second);
    // Frames before the gap and after it; media time went on across the gap.
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap >= 90_000, "no pause seen: largest step {gap} ticks");
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "media time went back across publishers"
    );
    let after = stamps.len() - 1 - stamps.windows(2).position(|w| w[1] - w[0] == gap).unwrap();
    assert!(
        after >= 10,
        "only {after} frames after the publisher came back"
    );
}

/// What a hostile or broken publisher sends: the connection gets an error or is closed,
/// the server and its other paths go on.
#[test]
fn malformed_publishers_get_errors_and_disturb_nobody() {
    use common::raw_rtsp::{digest_challenge, digest_header};
    let s = server(serde_json::json!({}));
    let url = s.url("door");
    // A strict client watches `cam` the whole time.
    let watch_url = s.url("cam");
    let watcher = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(retina_util::frames(
            &watch_url,
            "tcp",
            Some((VIEWER, VIEW_PASS)),
            Duration::from_secs(6),
        ))
    });
    // The publisher's login for `method` on `url`, from a fresh challenge.
    let login = |c: &mut RawClient, method: &str| {
        let r = c.request("OPTIONS", &url, "");
        let (realm, nonce) = digest_challenge(&r);
        format!(
            "Authorization: {}\r\n",
            digest_header(PUBLISHER, PUB_PASS, &realm, &nonce, method, &url, &url)
        )
    };
    // A request body over the cap: 413 at once, without waiting for the body.
    let mut c = RawClient::connect(s.rtsp);
    let t0 = Instant::now();
    let r = c.request(
        "ANNOUNCE",
        &url,
        "Content-Type: application/sdp\r\nContent-Length: 10000000\r\n",
    );
    assert_eq!(status_of(&r), 413, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Bad SDPs: a clear status each, the connection still answers.
    for (body, want) in [
        ("this is not an SDP", 400),
        (
            "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n",
            415,
        ),
        (
            "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
            415,
        ),
    ] {
        let mut c = RawClient::connect(s.rtsp);
        let a = login(&mut c, "ANNOUNCE");
        let r = c.request_with_body("ANNOUNCE", &url, &a, body.as_bytes());
        assert_eq!(status_of(&r), want, "{body}: {r}");
        let o = login(&mut c, "OPTIONS");
        assert_eq!(c.status("OPTIONS", &url, &o), 200, "the connection still answers");
    }
    assert!(
        s.log_text()
            .contains("no H.264 video track (the SDP offers video H265/90000)"),
        "{}",
        s.log_text()
    );
    // A publisher that announces, sets up, records, then sends nonsense: RTP too short,
    // an FU-A without its start, a huge interleaved frame of garbage, frames on a channel
    // no track uses. Its connection stays or is closed; nothing else notices.
    let mut c = RawClient::connect(s.rtsp);
    let a = login(&mut c, "ANNOUNCE");
    let r = c.request_with_body(
        "ANNOUNCE",
        &url,
        &format!("{a}Content-Type: application/sdp\r\n"),
        SDP.as_bytes(),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    let track = format!("{url}/trackID=0");
    let a = login(&mut c, "SETUP");
    let r = c.request(
        "SETUP",
        &track,
        &format!("{a}Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n"),
    );
    assert_eq!(status_of(&r), 200, "{r}");
    let session = header_of(&r, "Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let a = login(&mut c, "RECORD");
    let r = c.request("RECORD", &url, &format!("{a}Session: {session}\r\n"));
    assert_eq!(status_of(&r), 200, "{r}");
    let frame = |channel: u8, payload: &[u8]| {
        let mut f = vec![b'$', channel];
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    rtp.extend_from_slice(&[28, 0x05, 1, 2, 3]); // FU-A middle without a start
    c.send_raw(&frame(0, &[0x80, 96, 0])); // shorter than an RTP header
    c.send_raw(&frame(0, &rtp));
    c.send_raw(&frame(7, b"a channel nobody set up"));
    let mut big = vec![0x80, 96, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1];
    big.extend(std::iter::repeat_n(0x41, 60_000));
    c.send_raw(&frame(0, &big));
    let a = login(&mut c, "GET_PARAMETER");
    assert_eq!(
        c.status("GET_PARAMETER", &url, &format!("{a}Session: {session}\r\n")),
        200,
        "the publisher's connection still answers"
    );
    assert!(
        s.wait_log("which no track uses", Duration::from_secs(5)),
        "{}",
        s.log_text()
    );
    let frames = watcher
        .join()
        .expect("watcher")
        .unwrap_or_else(|e| panic!("the viewer of another path was disturbed: {e}"));
    assert!(frames.len() as u32 >= 4 * FPS, "{} frames", frames.len());
    retina_util::assert_consecutive(&frames, FPS, "cam while door's publisher misbehaves");
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

/// A publisher's long groups of pictures (8 s here): with `fast_start` a viewer joining
/// mid-group starts at once with the group so far (its first picture captured well before
/// it joined, every picture after it there), not at the next key frame.
#[test]
fn fast_start_hands_a_joining_viewer_the_group_so_far() {
    let mut cam = pattern_path(W, H, FPS, 300);
    cam["idr_interval_s"] = 8.into();
    let s = Server::start(serde_json::json!({
        "users": [
            { "name": PUBLISHER, "password": PUB_PASS, "permissions": [
                { "action": "publish", "path": "door" }, { "action": "read" } ] },
            { "name": VIEWER, "password": VIEW_PASS }
        ],
        "paths": { "cam": cam, "door": { "source": "publisher", "fast_start": true } }
    }));
    let http = s.http.expect("HTTP");
    let publisher = relay_publisher(&s, "tcp");
    wait_publishing(&s);
    // Join 2 s after a key frame went through the path.
    let idrs = || common::http::get(http, "/api/v1/paths/door").json()["idr_frames"].clone();
    let before = idrs();
    let deadline = Instant::now() + Duration::from_secs(20);
    while idrs() == before {
        assert!(Instant::now() < deadline, "no key frame on door");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let joined_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (frames, stderr) = ffmpeg_gray_frames(&door(&s), "tcp", 3, W, H);
    stop(publisher);
    assert!(stderr.trim().is_empty(), "decode errors: {stderr}");
    let codes = codes_of(&frames, W, H);
    assert!(codes.len() as u32 >= 2 * FPS, "only {} frames", codes.len());
    assert_gapless(&codes, "fast start");
    let first = codes[0].capture_ms;
    assert!(
        first + 1500 <= joined_ms && joined_ms - first < 8_000,
        "the first picture was captured {} ms before the viewer joined: expected the group \
         since the key frame 2 s earlier",
        joined_ms as i64 - first as i64
    );
}
