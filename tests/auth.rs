//! Authentication with real clients: Basic and Digest each accepted by ffprobe, GStreamer and
//! retina with the right credentials, rejected (401) with wrong or missing ones; passwords
//! never appear in the log. live555's request shapes (VLC) replayed on a raw socket.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::raw_rtsp::{digest_challenge, digest_header, is_h264_rtp, udp_packets, RawClient};
use common::*;

const USER: &str = "viewer";
const PASS: &str = "s3cret-Pw";
const TRIED: &str = "Tr1ed-Guess";

fn server(methods: &[&str]) -> Server {
    Server::start(serde_json::json!({
        "rtsp": { "auth_methods": methods },
        "users": [ { "name": USER, "password": PASS } ],
        "paths": { "cam": pattern_path(320, 240, 15, 300) }
    }))
}

fn ffprobe_ok(url: &str) -> Run {
    require("ffprobe");
    run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "default=nw=1",
            url,
        ]),
        Duration::from_secs(20),
    )
}

fn retina(url: &str, user: &str, pass: &str) -> Result<Vec<i64>, String> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(retina_util::frames(
        url,
        "tcp",
        Some((user, pass)),
        Duration::from_secs(2),
    ))
}

/// GStreamer's rtspsrc with `user-id`/`user-pw`: true when it played 30 frames to EOS.
fn gstreamer_plays(url: &str, user: &str, pass: &str) -> (bool, String) {
    require("gst-launch-1.0");
    let r = run(
        Command::new("gst-launch-1.0").args([
            "rtspsrc",
            &format!("location={url}"),
            &format!("user-id={user}"),
            &format!("user-pw={pass}"),
            "protocols=tcp",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "fakesink",
            "num-buffers=30",
        ]),
        Duration::from_secs(30),
    );
    (
        r.stdout.contains("Got EOS from element"),
        format!("{}\n{}", r.stdout, r.stderr),
    )
}

fn check_method(method: &str) {
    let s = server(&[method]);
    // The challenge offers exactly the configured scheme.
    let mut c = TcpStream::connect(s.rtsp).expect("connect");
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", s.url("cam")),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    let challenge = header_of(&r, "WWW-Authenticate").expect("challenge");
    assert!(
        challenge.to_ascii_lowercase().starts_with(method),
        "{challenge}"
    );

    let good = ffprobe_ok(&s.url_with_user("cam", USER, PASS));
    assert!(
        good.ok && good.stdout.contains("codec_name=h264"),
        "ffprobe with {method}: {}",
        good.stderr
    );
    let bad = ffprobe_ok(&s.url_with_user("cam", USER, TRIED));
    assert!(
        !bad.ok,
        "ffprobe with a wrong password must fail ({method})"
    );
    assert!(
        bad.stderr.contains("401"),
        "ffprobe should report 401: {}",
        bad.stderr
    );
    let none = ffprobe_ok(&s.url("cam"));
    assert!(!none.ok, "ffprobe without credentials must fail ({method})");

    let (played, out) = gstreamer_plays(&s.url("cam"), USER, PASS);
    assert!(played, "GStreamer with {method}: {out}");
    let (played, out) = gstreamer_plays(&s.url("cam"), USER, TRIED);
    assert!(
        !played && out.contains("Unauthorized"),
        "GStreamer with a wrong password ({method}): {out}"
    );

    let frames =
        retina(&s.url("cam"), USER, PASS).unwrap_or_else(|e| panic!("retina with {method}: {e}"));
    assert!(
        frames.len() >= 20,
        "retina with {method}: {} frames",
        frames.len()
    );
    let err = retina(&s.url("cam"), USER, TRIED).expect_err("retina with a wrong password");
    assert!(err.contains("401"), "retina should see 401: {err}");

    assert!(
        s.wait_log("authentication failed", Duration::from_secs(2)),
        "failures are logged"
    );
    assert!(
        !s.log_text().contains(PASS),
        "the password leaked into the log:\n{}",
        s.log_text()
    );
    assert!(
        !s.log_text().contains(TRIED),
        "a tried password leaked into the log"
    );
}

#[test]
fn digest_with_ffprobe_gstreamer_and_retina() {
    check_method("digest");
}

#[test]
fn basic_with_ffprobe_gstreamer_and_retina() {
    check_method("basic");
}

#[test]
fn both_challenges_by_default_and_credentials_in_urls_are_not_logged() {
    let s = Server::start(serde_json::json!({
        "users": [ { "name": USER, "password": PASS } ],
        "paths": { "cam": pattern_path(320, 240, 15, 300) }
    }));
    let mut c = TcpStream::connect(s.rtsp).expect("connect");
    let url = format!("rtsp://{USER}:{PASS}@{}/cam", s.rtsp);
    let r = raw_request(
        &mut c,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    let challenges: Vec<&str> = r
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2, "{r}");
    assert!(
        challenges[0].starts_with("Digest ") && challenges.iter().any(|c| c.starts_with("Basic ")),
        "{challenges:?}"
    );
    // Wrong Basic credentials: 401 again.
    let r = raw_request(
        &mut c,
        &format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic dmlld2VyOm5vcGU=\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    // ffmpeg picks Digest when both are offered.
    let good = ffprobe_ok(&s.url_with_user("cam", USER, PASS));
    assert!(good.ok, "ffprobe: {}", good.stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !s.log_text().contains(PASS),
        "the password leaked:\n{}",
        s.log_text()
    );
}

/// The transport a live555 client asks for, and how media reaches the test.
enum Live555Transport {
    Tcp,
    /// RTP and RTCP sockets (RTCP only held, so the port pair stays ours).
    Udp(UdpSocket, #[allow(dead_code)] UdpSocket),
}

impl Live555Transport {
    fn udp() -> Live555Transport {
        // live555 takes an even port for RTP and the next one for RTCP.
        loop {
            let rtp = UdpSocket::bind("127.0.0.1:0").expect("udp");
            let port = rtp.local_addr().expect("addr").port();
            if port.is_multiple_of(2) {
                if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
                    return Live555Transport::Udp(rtp, rtcp);
                }
            }
        }
    }

    /// The Transport header exactly as live555's RTSPClient::setRequestFields writes it.
    fn header(&self) -> String {
        match self {
            Live555Transport::Tcp => "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n".into(),
            Live555Transport::Udp(rtp, _) => {
                let port = rtp.local_addr().expect("addr").port();
                format!(
                    "Transport: RTP/AVP;unicast;client_port={port}-{}\r\n",
                    port + 1
                )
            }
        }
    }

    fn expect_media(&self, c: &mut RawClient) {
        let packets = match self {
            Live555Transport::Tcp => c.rtp_packets(0, 10, Duration::from_secs(10)),
            Live555Transport::Udp(rtp, _) => udp_packets(rtp, 10, Duration::from_secs(10)),
        };
        assert!(packets.iter().all(|p| is_h264_rtp(p)), "not H.264 RTP");
    }
}

/// One connection after live555's OPTIONS and DESCRIBE: the URL it was given, the
/// Content-Base it now computes every digest over, and the nonce.
struct Live555 {
    c: RawClient,
    base: String,
    realm: String,
    nonce: String,
}

impl Live555 {
    fn start(s: &Server) -> Live555 {
        let url = s.url("cam");
        let mut c = RawClient::connect(s.rtsp);
        let r = c.request("OPTIONS", &url, "");
        assert_eq!(status_of(&r), 401, "{r}");
        let (realm, nonce) = digest_challenge(&r);
        let auth = |method: &str| {
            format!(
                "Authorization: {}\r\n",
                digest_header(USER, PASS, &realm, &nonce, method, &url, &url)
            )
        };
        assert_eq!(c.status("OPTIONS", &url, &auth("OPTIONS")), 200);
        let r = c.request(
            "DESCRIBE",
            &url,
            &format!("{}Accept: application/sdp\r\n", auth("DESCRIBE")),
        );
        assert_eq!(status_of(&r), 200, "{r}");
        let base = header_of(&r, "Content-Base")
            .expect("Content-Base")
            .to_string();
        assert_eq!(base, format!("{url}/"));
        Live555 {
            c,
            base,
            realm,
            nonce,
        }
    }

    /// An Authorization header: the response over `digest_uri` with `password`, sent with
    /// `uri` = `sent_uri`.
    fn auth(&self, method: &str, password: &str, digest_uri: &str, sent_uri: &str) -> String {
        format!(
            "Authorization: {}\r\n",
            digest_header(
                USER,
                password,
                &self.realm,
                &self.nonce,
                method,
                digest_uri,
                sent_uri
            )
        )
    }

    /// live555's own digest: the right password, over the base URL.
    fn good(&self, method: &str) -> String {
        self.auth(method, PASS, &self.base, &self.base)
    }

    fn track(&self) -> String {
        format!("{}trackID=0", self.base)
    }

    fn setup(&mut self, transport: &Live555Transport, auth: &str) -> String {
        let track = self.track();
        self.c
            .request("SETUP", &track, &format!("{auth}{}", transport.header()))
    }
}

/// The exact request shapes of live555 (VLC), with Digest: DESCRIBE over the request URL,
/// then SETUP, PLAY, GET_PARAMETER and TEARDOWN with `uri` = the Content-Base. Right
/// password: played; wrong password, a `uri` of another path, or a response computed over
/// another uri than the one sent: 401.
fn live555_exchange(transport: fn() -> Live555Transport) {
    let s = Server::start(serde_json::json!({
        "users": [ { "name": USER, "password": PASS } ],
        "paths": {
            "cam": pattern_path(320, 240, 15, 300),
            "other": pattern_path(320, 240, 15, 300)
        }
    }));
    let other_base = format!("{}/", s.url("other"));

    // The whole session as live555 plays it.
    let t = transport();
    let mut l = Live555::start(&s);
    let r = l.setup(&t, &l.good("SETUP"));
    assert_eq!(status_of(&r), 200, "SETUP with uri=base:\n{r}");
    let session = header_of(&r, "Session")
        .and_then(|v| v.split(';').next())
        .expect("Session")
        .to_string();
    let base = l.base.clone();
    let play = format!(
        "{}Session: {session}\r\nRange: npt=0.000-\r\n",
        l.good("PLAY")
    );
    let r = l.c.request("PLAY", &base, &play);
    assert_eq!(status_of(&r), 200, "PLAY:\n{r}");
    t.expect_media(&mut l.c);
    let keepalive = format!("{}Session: {session}\r\n", l.good("GET_PARAMETER"));
    assert_eq!(l.c.status("GET_PARAMETER", &base, &keepalive), 200);
    // A PLAY whose digest names another path, or was computed for another uri: refused.
    let wrong_path = format!(
        "{}Session: {session}\r\n",
        l.auth("PLAY", PASS, &other_base, &other_base)
    );
    assert_eq!(l.c.status("PLAY", &base, &wrong_path), 401);
    let teardown = format!("{}Session: {session}\r\n", l.good("TEARDOWN"));
    assert_eq!(l.c.status("TEARDOWN", &base, &teardown), 200);

    // SETUP refused: wrong password; uri of another path (right password); uri of this
    // path with a response computed over the track URL; no Authorization.
    let refused = |what: &str, auth: &dyn Fn(&Live555) -> String| {
        let t = transport();
        let mut l = Live555::start(&s);
        let header = auth(&l);
        let r = l.setup(&t, &header);
        assert_eq!(status_of(&r), 401, "SETUP with {what}:\n{r}");
    };
    refused("a wrong password", &|l| {
        l.auth("SETUP", TRIED, &l.base, &l.base)
    });
    refused("the uri of another path", &|l| {
        l.auth("SETUP", PASS, &other_base, &other_base)
    });
    refused("a response over another uri than the one sent", &|l| {
        l.auth("SETUP", PASS, &l.track(), &l.base)
    });
    refused("a response over another path's uri", &|l| {
        l.auth("SETUP", PASS, &other_base, &l.base)
    });
    refused("no credentials", &|_| String::new());
    assert!(
        s.log_text()
            .contains("digest uri does not match the request"),
        "the log names the refused uri:\n{}",
        s.log_text()
    );
    assert!(!s.log_text().contains(PASS), "the password leaked");
}

#[test]
fn live555_digest_over_the_base_url_tcp() {
    live555_exchange(|| Live555Transport::Tcp);
}

#[test]
fn live555_digest_over_the_base_url_udp() {
    live555_exchange(Live555Transport::udp);
}
