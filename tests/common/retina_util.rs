//! retina (a strict independent RTSP client) as an in-process client and light load generator.

use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::CodecItem;

fn transport(kind: &str) -> Transport {
    match kind {
        "udp" => Transport::Udp(UdpTransportOptions::default()),
        _ => Transport::Tcp(TcpTransportOptions::default()),
    }
}

/// Plays `url` for `duration` and returns the RTP timestamps of the video frames received.
/// Any protocol or depacketisation error is returned as Err.
pub async fn frames(
    url: &str,
    kind: &str,
    creds: Option<(&str, &str)>,
    duration: Duration,
) -> Result<Vec<i64>, String> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let creds = creds.map(|(u, p)| Credentials {
        username: u.to_string(),
        password: p.to_string(),
    });
    let mut session = Session::describe(url, SessionOptions::default().creds(creds))
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    session
        .setup(0, SetupOptions::default().transport(transport(kind)))
        .await
        .map_err(|e| format!("SETUP: {e}"))?;
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| format!("demux: {e}"))?;
    let deadline = Instant::now() + duration;
    let mut stamps = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, demuxed.next()).await {
            Err(_) => break,
            Ok(None) => return Err("stream ended early".into()),
            Ok(Some(Err(e))) => return Err(format!("after {} frames: {e}", stamps.len())),
            Ok(Some(Ok(CodecItem::VideoFrame(f)))) => {
                if stamps.is_empty() && !f.is_random_access_point() {
                    return Err("first frame is not a key frame".into());
                }
                stamps.push(f.timestamp().timestamp());
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    Ok(stamps)
}

/// Asserts frames are exactly one frame interval apart: none lost, none repeated.
pub fn assert_consecutive(stamps: &[i64], fps: u32, what: &str) {
    let step = 90_000 / fps as i64;
    for (i, w) in stamps.windows(2).enumerate() {
        assert_eq!(
            w[1] - w[0],
            step,
            "{what}: frame {i}->{} jumps {} ticks (expected {step})",
            i + 1,
            w[1] - w[0]
        );
    }
}

/// How many steps between consecutive frames are not exactly one frame interval: frames
/// lost or repeated (0 for a viewer that got every frame).
pub fn gaps(stamps: &[i64], fps: u32) -> usize {
    let step = 90_000 / fps as i64;
    stamps.windows(2).filter(|w| w[1] - w[0] != step).count()
}
