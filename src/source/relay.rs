//! A path that relays another RTSP server's stream (`"source": "rtsp://..."`), pulled with
//! the retina crate.
//!
//! Owns: the pull task (on the runtime): DESCRIBE, SETUP of the first H.264 video track
//! over TCP, UDP or `auto` (UDP first, TCP once UDP brought nothing), PLAY, frames into the
//! path through an `Intake` (media time continuing across reconnects, so viewers stay);
//! reconnecting with the backoff every source uses when the camera drops or restarts;
//! `source_on_demand` (pull only while someone wants the path, stop `close_after` after the
//! last one left); and never showing the URL's password (logs, status, errors).
//! Does not own: RTSP serving (the path's viewers are `rtsp`'s), the hub (the supervisor's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tokio::sync::watch;

use crate::config::{masked_source, RtspTransport};
use crate::hub::MediaPath;
use crate::media::CLOCK_RATE;
use crate::source::intake::{Intake, IntakeStats, Resume};
use crate::source::stats::next_backoff;
use crate::status::SourceState;

/// What status shows while an on-demand relay waits for a viewer.
pub const IDLE: &str = "idle until someone watches (on demand)";
/// How long one attempt may take to describe, set up and play.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// With `auto`, UDP that brings no frame for this long counts as failed: TCP next.
const UDP_PROOF: Duration = Duration::from_secs(4);
/// A pull that lasted this long was a good run: the next retry starts fast again.
const GOOD_RUN: Duration = Duration::from_secs(10);

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub url: String,
    pub transport: RtspTransport,
    /// `Some((start_timeout, close_after))` for `source_on_demand`.
    pub on_demand: Option<(Duration, Duration)>,
}

/// A running relay; stopped when dropped.
pub struct Relay {
    stats: Arc<IntakeStats>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Starts pulling into `media` on `runtime`.
    pub fn start(
        media: Arc<MediaPath>,
        settings: RelaySettings,
        runtime: &tokio::runtime::Handle,
    ) -> Relay {
        let initial = match settings.on_demand {
            Some(_) => SourceState::Idle(IDLE.to_string()),
            None => SourceState::Starting,
        };
        let stats = IntakeStats::new(initial);
        if let Some((start_timeout, _)) = settings.on_demand {
            media.set_start_wait(start_timeout);
        }
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(media, settings, stats.clone(), stopped));
        Relay {
            stats,
            stop,
            task: Some(task),
        }
    }

    pub fn stats(&self) -> &Arc<IntakeStats> {
        &self.stats
    }

    /// Stops the pull (the upstream session is torn down).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How one pull ended.
enum Ended {
    /// On demand, and nobody wanted the path for `close_after`.
    Idle,
    /// Asked to stop.
    Stopped,
}

/// The pull loop: connect, stream, reconnect with backoff, idle on demand.
async fn run(
    media: Arc<MediaPath>,
    settings: RelaySettings,
    stats: Arc<IntakeStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let shown = masked_source(&settings.url);
    let name = media.name.clone();
    let mut demand = media.demand();
    let mut resume: Option<Resume> = None;
    let mut backoff: Option<Duration> = None;
    let mut use_tcp = settings.transport != RtspTransport::Udp;
    if settings.transport == RtspTransport::Auto {
        use_tcp = false;
    }
    loop {
        if settings.on_demand.is_some() {
            stats.set_state(SourceState::Idle(IDLE.to_string()));
            stats.set_route(String::new());
            tokio::select! {
                r = demand.wait_for(|n| *n > 0) => if r.is_err() { return },
                _ = stopped.wait_for(|s| *s) => return,
            }
            log::info!("path {name}: someone wants it; pulling {shown}");
        }
        stats.session_started();
        stats.set_state(SourceState::Starting);
        stats.set_route(format!(
            "rtsp relay over {}",
            if use_tcp { "TCP" } else { "UDP" }
        ));
        let t0 = Instant::now();
        let mut intake = Intake::new(media.clone(), stats.clone(), resume);
        let result = tokio::select! {
            r = pull(&settings, use_tcp, &mut intake, &mut demand, &name) => r,
            _ = stopped.wait_for(|s| *s) => Ok(Ended::Stopped),
        };
        resume = intake.resume_point();
        let got_frames = intake.published();
        drop(intake);
        match result {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Idle) => {
                log::info!(
                    "path {name}: nobody watched for {} s; stopped pulling {shown}",
                    settings.on_demand.map_or(0, |(_, c)| c.as_secs())
                );
                // The next viewer waits for a fresh description, not a stale one.
                media.clear_info();
                backoff = None;
                continue;
            }
            Err(why) => {
                let why = redact(&why, &settings.url);
                log::warn!("path {name}: relay of {shown} failed: {why}");
                stats.set_error(why.clone());
                stats.set_state(SourceState::CameraLost(format!("upstream: {why}")));
                if settings.transport == RtspTransport::Auto && !use_tcp && !got_frames {
                    log::info!("path {name}: nothing came over UDP; trying TCP");
                    use_tcp = true;
                }
            }
        }
        let ran = t0.elapsed();
        let wait = next_backoff(backoff, ran.min(GOOD_RUN));
        backoff = Some(wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// One upstream session, until it fails, ends, or (on demand) nobody wants it.
async fn pull(
    settings: &RelaySettings,
    use_tcp: bool,
    intake: &mut Intake,
    demand: &mut watch::Receiver<usize>,
    name: &str,
) -> Result<Ended, String> {
    let mut url = url::Url::parse(&settings.url).map_err(|e| e.to_string())?;
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or("")),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("vigint/{}", env!("CARGO_PKG_VERSION")));
    let connect = async {
        let mut session = Session::describe(url, options)
            .await
            .map_err(|e| e.to_string())?;
        let video = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
            .ok_or_else(|| {
                let offered: Vec<String> = session
                    .streams()
                    .iter()
                    .map(|s| format!("{} {}", s.media(), s.encoding_name()))
                    .collect();
                format!(
                    "no H.264 video track (the camera offers {})",
                    offered.join(", ")
                )
            })?;
        let transport = if use_tcp {
            Transport::Tcp(TcpTransportOptions::default())
        } else {
            Transport::Udp(UdpTransportOptions::default())
        };
        session
            .setup(
                video,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::SIMPLE),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(ParametersRef::Video(v)) = session.streams()[video].parameters() {
            if let VideoParametersCodec::H264 { sps, pps } = v.codec_params() {
                intake.set_parameter_sets(sps.clone(), pps.clone());
            }
            // A frame's duration in seconds, as (numerator, denominator).
            if let Some((num, den)) = v.frame_rate() {
                if let Some(fps) = (den + num / 2).checked_div(num) {
                    intake.set_fps(fps);
                }
            }
        }
        let playing = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        playing.demuxed().map_err(|e| e.to_string())
    };
    let mut demuxed = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))??;
    log::info!("path {name}: relaying {}", masked_source(&settings.url));
    let started = Instant::now();
    let mut unwanted_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            item = demuxed.next() => match item {
                Some(Ok(CodecItem::VideoFrame(f))) => {
                    let ts = f.timestamp();
                    let rate = i64::from(ts.clock_rate().get());
                    let pts = ts.elapsed() * i64::from(CLOCK_RATE) / rate.max(1);
                    // A refused unit is counted in the path's status; the stream goes on.
                    let _ = intake.publish(pts, None, Bytes::from(f.into_data()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the camera ended the stream".to_string()),
            },
            _ = tick.tick() => {
                if !use_tcp && !intake.published() && started.elapsed() > UDP_PROOF {
                    return Err(format!(
                        "no frame over UDP in {} s (a firewall or NAT?)",
                        UDP_PROOF.as_secs()
                    ));
                }
                if let Some((_, close_after)) = settings.on_demand {
                    if *demand.borrow() == 0 {
                        let since = *unwanted_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= close_after {
                            return Ok(Ended::Idle);
                        }
                    } else {
                        unwanted_since = None;
                    }
                }
            }
        }
    }
}

/// `%XX` escapes in a URL's user or password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error message with the URL's password (plain or percent-encoded) taken out, in case
/// a library put the URL in it.
fn redact(message: &str, url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return message.to_string();
    };
    let mut out = message.replace(url, &masked_source(url));
    if let Some(p) = u.password().filter(|p| !p.is_empty()) {
        out = out.replace(p, crate::config::PASSWORD_MASK);
        let decoded = percent_decode(p);
        if !decoded.is_empty() {
            out = out.replace(&decoded, crate::config::PASSWORD_MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_an_error_message() {
        let url = "rtsp://admin:p%40ss@192.0.2.9/stream1";
        let msg = format!("cannot connect to {url}: bad password p@ss (p%40ss)");
        let out = redact(&msg, url);
        assert!(!out.contains("p@ss") && !out.contains("p%40ss"), "{out}");
        assert!(out.contains("rtsp://admin:***@192.0.2.9/stream1"), "{out}");
        assert_eq!(percent_decode("p%40ss%2"), "p@ss%2");
    }
}
