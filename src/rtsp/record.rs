//! The record side of an RTSP connection: a publisher's ANNOUNCE, SETUP (mode=record),
//! RECORD and TEARDOWN, and its media coming in over TCP interleaved or UDP.
//!
//! Owns: reading the publisher's SDP (with sdp-types: the H.264 video track, its payload
//! type, control URL and `sprop-parameter-sets`; other tracks are accepted and their data
//! dropped; no H.264 at all is refused naming what was offered), the record session (id,
//! tracks and their transports, the UDP routes), parsing RTP (rtp-types) and handing the
//! video track's payloads to the depacketiser, and the whole access units to the path's
//! `Publishing`. Everything a publisher sends is untrusted: bad SDP is 400 (or 415),
//! unknown channels are ignored and counted, broken RTP is dropped to the next IDR.
//! Does not own: framing, authentication and permissions (`conn`), the path's slot, media
//! time and stream description (`source::publisher`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtsp_types::Request;
use tokio::sync::mpsc;

use crate::rtsp::depacketize::{AccessUnit, Depacketizer};
use crate::rtsp::play::{clean_url, path_of};
use crate::rtsp::reply::{Reply, StatusCode};
use crate::rtsp::server::ServerContext;
use crate::rtsp::transport::{self, Mode, Transport};
use crate::rtsp::udp::PUBLISHER_QUEUE;
use crate::source::publisher::{ClaimError, Publishing};

/// A publisher that sends nothing for this long is dropped (MediaMTX's `readTimeout`).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest SDP we read.
const MAX_SDP: usize = 16 * 1024;

/// One track the publisher announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Track {
    /// The control URL SETUP names (absolute).
    pub control: String,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrackKind {
    /// H.264 video in RTP payload type `payload_type`.
    H264 { payload_type: u8 },
    /// Anything else: accepted, its data dropped. `codec` names it for the log.
    Other { codec: String },
}

/// What an SDP says, for a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announced {
    pub tracks: Vec<Track>,
    /// `sprop-parameter-sets` of the H.264 track, when given.
    pub sps_pps: Option<(Bytes, Bytes)>,
}

/// Reads a publisher's SDP; `base` is the ANNOUNCE URL (relative controls resolve
/// against it). The error is for the publisher and the log.
pub(crate) fn read_sdp(body: &[u8], base: &str) -> Result<Announced, (StatusCode, String)> {
    let bad = |why: String| (StatusCode::BadRequest, why);
    if body.is_empty() {
        return Err(bad("ANNOUNCE without an SDP body".into()));
    }
    if body.len() > MAX_SDP {
        return Err(bad(format!("an SDP over {MAX_SDP} bytes")));
    }
    lines_well_formed(body).map_err(bad)?;
    let session =
        sdp_types::Session::parse(body).map_err(|e| bad(format!("the SDP does not parse: {e}")))?;
    let base = base.trim_end_matches('/');
    let mut tracks = Vec::new();
    let mut sps_pps = None;
    let mut h264_seen = false;
    for (i, m) in session.medias.iter().enumerate() {
        let attr = |name: &'static str| attributes(m, name);
        let control = match attr("control").next() {
            Some(c) if c.starts_with("rtsp://") || c.starts_with("rtsps://") => c.to_string(),
            Some("*") | None if session.medias.len() == 1 => base.to_string(),
            Some(c) => format!("{base}/{}", c.trim_start_matches('/')),
            None => format!("{base}/trackID={i}"),
        };
        let pt: Option<u8> = m.fmt.split_whitespace().next().and_then(|f| f.parse().ok());
        // rtpmap of the first payload type: `96 H264/90000`.
        let encoding = attr("rtpmap").find_map(|v| {
            let (p, enc) = v.split_once(' ')?;
            (p.trim().parse::<u8>().ok()? == pt?).then(|| enc.trim().to_string())
        });
        let codec = encoding
            .clone()
            .unwrap_or_else(|| static_codec(pt).unwrap_or("unknown").to_string());
        let is_h264 = m.media.eq_ignore_ascii_case("video")
            && codec
                .split('/')
                .next()
                .is_some_and(|e| e.eq_ignore_ascii_case("H264"));
        if is_h264 && !h264_seen {
            let Some(payload_type) = pt.filter(|p| *p < 128) else {
                return Err(bad("the H.264 track has no payload type".into()));
            };
            let fmtp: String = attr("fmtp")
                .find(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<u8>().ok())
                        == pt
                })
                .map(|v| v.split_once(' ').map_or("", |(_, f)| f).to_string())
                .unwrap_or_default();
            for param in fmtp.split(';').map(str::trim) {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("packetization-mode") && v.trim() == "2" {
                    return Err((
                        StatusCode::UnsupportedMediaType,
                        "H.264 packetization-mode=2 (interleaved) is not supported".into(),
                    ));
                }
                if k.trim().eq_ignore_ascii_case("sprop-parameter-sets") {
                    sps_pps = parameter_sets(v.trim());
                }
            }
            h264_seen = true;
            tracks.push(Track {
                control,
                kind: TrackKind::H264 { payload_type },
            });
        } else {
            tracks.push(Track {
                control,
                kind: TrackKind::Other {
                    codec: format!("{} {codec}", m.media),
                },
            });
        }
    }
    if !h264_seen {
        let found: Vec<String> = tracks
            .iter()
            .filter_map(|t| match &t.kind {
                TrackKind::Other { codec } => Some(codec.clone()),
                TrackKind::H264 { .. } => None,
            })
            .collect();
        return Err((
            StatusCode::UnsupportedMediaType,
            if found.is_empty() {
                "the SDP has no media".to_string()
            } else {
                format!(
                    "no H.264 video track (the SDP offers {}); vigint serves H.264",
                    found.join(", ")
                )
            },
        ));
    }
    Ok(Announced { tracks, sps_pps })
}

/// Refuses an SDP with a line that is not `x=...` before handing it to sdp-types: its
/// 0.1 parser panics (an `assert_eq!` on the line key) when such a line is followed by one
/// that is not `m=` (`v=0\no\na=`), and skips it silently otherwise. Lines are split as
/// sdp-types splits them (bstr: at `\n`, one `\r` before it dropped; empty lines skipped).
fn lines_well_formed(body: &[u8]) -> Result<(), String> {
    let mut lines = body.split(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        let terminated = lines.peek().is_some();
        let line = match line {
            [rest @ .., b'\r'] if terminated => rest,
            _ => line,
        };
        if !line.is_empty() && line.iter().position(|b| *b == b'=') != Some(1) {
            return Err(format!("SDP line {n} is not `type=value`"));
        }
    }
    Ok(())
}

/// The values of a media's attributes called `name`.
fn attributes<'a>(m: &'a sdp_types::Media, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    m.attributes
        .iter()
        .filter(move |a| a.attribute.eq_ignore_ascii_case(name))
        .filter_map(|a| a.value.as_deref())
}

/// The names of the static payload types publishers send (RFC 3551).
fn static_codec(pt: Option<u8>) -> Option<&'static str> {
    Some(match pt? {
        0 => "PCMU/8000",
        8 => "PCMA/8000",
        14 => "MPA/90000",
        26 => "JPEG/90000",
        32 => "MPV/90000",
        33 => "MP2T/90000",
        _ => return None,
    })
}

/// `sprop-parameter-sets=<base64 SPS>,<base64 PPS>`.
fn parameter_sets(v: &str) -> Option<(Bytes, Bytes)> {
    use base64::Engine as _;
    let mut it = v.split(',');
    let dec = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .filter(|b| !b.is_empty())
            .map(Bytes::from)
    };
    let sps = dec(it.next()?)?;
    let pps = dec(it.next()?)?;
    (crate::h264::nal_type(&sps) == Some(crate::h264::NAL_SPS)
        && crate::h264::nal_type(&pps) == Some(crate::h264::NAL_PPS))
    .then_some((sps, pps))
}

/// What happens to a record session between requests.
pub(super) enum RecordEvent {
    Udp(Bytes),
    Kicked,
}

/// How one set-up track receives its packets.
#[derive(Debug, Clone, Copy)]
enum TrackRoute {
    /// Interleaved channel of its RTP.
    Channel(u8),
    /// UDP, from this publisher address.
    Udp(SocketAddr),
}

/// A publisher's session on this connection.
struct Session {
    id: String,
    path: String,
    tracks: Vec<Track>,
    routes: Vec<Option<TrackRoute>>,
    recording: bool,
    publishing: Publishing,
    depacketizer: Depacketizer,
    /// UDP packets routed here by the server's socket.
    udp_rx: Option<mpsc::Receiver<Bytes>>,
    udp_tx: Option<mpsc::Sender<Bytes>>,
    last_data: Instant,
    units: Vec<AccessUnit>,
    /// Interleaved frames on channels no track uses.
    stray_frames: u64,
}

/// The record side of one connection.
pub(super) struct Record {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    session: Option<Session>,
}

impl Record {
    pub(super) fn new(ctx: Arc<ServerContext>, peer: SocketAddr) -> Record {
        Record {
            ctx,
            peer,
            session: None,
        }
    }

    /// True once a publisher announced on this connection (its SETUPs are record SETUPs).
    pub(super) fn active(&self) -> bool {
        self.session.is_some()
    }

    fn session_id_matches(&self, req: &Request<Vec<u8>>) -> Result<(), Reply> {
        let id = req.header(&rtsp_types::headers::SESSION).map(|v| {
            v.as_str()
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
        match (&self.session, id) {
            (Some(s), Some(id)) if s.id == id => Ok(()),
            // Publishers' SETUPs before the first answer carry no Session yet.
            (Some(_), None) => Ok(()),
            _ => Err(Reply::new(StatusCode::SessionNotFound)),
        }
    }

    fn with_session(&self, r: Reply) -> Reply {
        match &self.session {
            Some(s) => r.header(
                "Session",
                format!("{};timeout={}", s.id, READ_TIMEOUT.as_secs()),
            ),
            None => r,
        }
    }

    /// ANNOUNCE: the path must be a publisher path and free (or let a newcomer take over).
    pub(super) fn announce(&mut self, req: &Request<Vec<u8>>) -> Reply {
        if self.session.is_some() {
            return Reply::new(StatusCode::MethodNotValidInThisState);
        }
        let Some((name, _)) = path_of(req) else {
            return Reply::new(StatusCode::BadRequest);
        };
        let Some(slot) = self.ctx.publisher(&name) else {
            log::warn!(
                "rtsp: {} ANNOUNCE {name}: not a publisher path (its source must be `publisher`)",
                self.peer
            );
            return Reply::new(if self.ctx.path(&name).is_some() {
                StatusCode::MethodNotAllowed
            } else {
                StatusCode::NotFound
            });
        };
        let base = clean_url(req);
        let announced = match read_sdp(req.body(), &base) {
            Ok(a) => a,
            Err((status, why)) => {
                log::warn!("rtsp: {} ANNOUNCE {name}: {why}", self.peer);
                slot.stats().set_error(format!("{}: {why}", self.peer));
                return Reply::new(status);
            }
        };
        let mut publishing = match slot.claim(self.peer) {
            Ok(p) => p,
            Err(e @ ClaimError::Busy { .. }) => {
                log::warn!("rtsp: {} ANNOUNCE {name}: {e}", self.peer);
                return Reply::new(StatusCode::BadRequest);
            }
            Err(e) => {
                log::warn!("rtsp: {} ANNOUNCE {name}: {e}", self.peer);
                return Reply::new(StatusCode::NotFound);
            }
        };
        if let Some((sps, pps)) = announced.sps_pps.clone() {
            publishing.set_parameter_sets(sps, pps);
        }
        for t in &announced.tracks {
            if let TrackKind::Other { codec } = &t.kind {
                log::info!(
                    "rtsp: {} publishing {name}: track {codec} is accepted and dropped (vigint serves H.264)",
                    self.peer
                );
            }
        }
        log::info!("rtsp: {} announced {name}", self.peer);
        let routes = vec![None; announced.tracks.len()];
        self.session = Some(Session {
            id: super::play::new_session_id(),
            path: name,
            tracks: announced.tracks,
            routes,
            recording: false,
            publishing,
            depacketizer: Depacketizer::new(),
            udp_rx: None,
            udp_tx: None,
            last_data: Instant::now(),
            units: Vec::new(),
            stray_frames: 0,
        });
        Reply::new(StatusCode::Ok)
    }

    /// SETUP of one announced track, mode=record.
    pub(super) fn setup(&mut self, req: &Request<Vec<u8>>) -> Reply {
        if let Err(r) = self.session_id_matches(req) {
            return r;
        }
        let url = clean_url(req);
        let peer_ip = self.peer.ip();
        let udp = self.ctx.udp.clone();
        let Some(s) = self.session.as_mut() else {
            return Reply::new(StatusCode::MethodNotValidInThisState);
        };
        if s.recording {
            return Reply::new(StatusCode::MethodNotValidInThisState);
        }
        let Some(index) = track_of(&s.tracks, &url) else {
            log::info!("rtsp: {} SETUP {url}: no such announced track", self.peer);
            return Reply::new(StatusCode::NotFound);
        };
        let Some(header) = req.header(&rtsp_types::headers::TRANSPORT) else {
            return Reply::new(StatusCode::UnsupportedTransport);
        };
        let chosen = match transport::choose_for(header.as_str(), Mode::Record) {
            Ok(t) => t,
            Err(transport::Unsupported(why)) => {
                log::info!(
                    "rtsp: {} SETUP {url}: no usable transport: {why}",
                    self.peer
                );
                return Reply::new(StatusCode::UnsupportedTransport);
            }
        };
        let mut server_ports = None;
        let route = match chosen {
            Transport::Tcp { rtp_channel, .. } => {
                let taken = s
                    .routes
                    .iter()
                    .any(|r| matches!(r, Some(TrackRoute::Channel(c)) if *c == rtp_channel));
                if taken {
                    return Reply::new(StatusCode::UnsupportedTransport);
                }
                TrackRoute::Channel(rtp_channel)
            }
            Transport::Udp { rtp_port, .. } => {
                let Some(pair) = udp else {
                    return Reply::new(StatusCode::UnsupportedTransport);
                };
                let Some(ip) = pair.reach.address_for(peer_ip) else {
                    return Reply::new(StatusCode::UnsupportedTransport);
                };
                let from = SocketAddr::new(ip, rtp_port);
                if matches!(s.tracks[index].kind, TrackKind::H264 { .. }) {
                    let tx = s
                        .udp_tx
                        .get_or_insert_with(|| {
                            let (tx, rx) = mpsc::channel(PUBLISHER_QUEUE);
                            s.udp_rx = Some(rx);
                            tx
                        })
                        .clone();
                    pair.route_publisher(from, tx);
                }
                server_ports = Some(pair.ports());
                TrackRoute::Udp(from)
            }
        };
        s.routes[index] = Some(route);
        let answer = transport::answer_record(&chosen, server_ports);
        self.with_session(Reply::new(StatusCode::Ok).header("Transport", answer))
    }

    /// RECORD: media may flow.
    pub(super) fn record(&mut self, req: &Request<Vec<u8>>) -> Reply {
        if let Err(r) = self.session_id_matches(req) {
            return r;
        }
        let peer = self.peer;
        let Some(s) = self.session.as_mut() else {
            return Reply::new(StatusCode::MethodNotValidInThisState);
        };
        let video_set_up = s
            .tracks
            .iter()
            .zip(&s.routes)
            .any(|(t, r)| matches!(t.kind, TrackKind::H264 { .. }) && r.is_some());
        if !video_set_up {
            log::info!(
                "rtsp: {peer} RECORD {}: the video track was not set up",
                s.path
            );
            return Reply::new(StatusCode::MethodNotValidInThisState);
        }
        s.recording = true;
        s.last_data = Instant::now();
        log::info!("rtsp: {peer} recording {} (session {})", s.path, s.id);
        self.with_session(Reply::new(StatusCode::Ok))
    }

    /// TEARDOWN, or the keep-alives, on the record session.
    pub(super) fn keep_alive(&mut self, req: &Request<Vec<u8>>) -> Reply {
        if let Err(r) = self.session_id_matches(req) {
            return r;
        }
        if let Some(s) = self.session.as_mut() {
            s.last_data = Instant::now();
        }
        self.with_session(Reply::new(StatusCode::Ok))
    }

    pub(super) fn teardown(&mut self, req: &Request<Vec<u8>>) -> Reply {
        if let Err(r) = self.session_id_matches(req) {
            return r;
        }
        let summary = self.end();
        log::info!("rtsp: {} teardown{summary}", self.peer);
        Reply::new(StatusCode::Ok)
    }

    /// Interleaved data from the publisher: the video track's RTP is depacketised.
    pub(super) fn on_interleaved(&mut self, channel: u8, data: &[u8]) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let video = s
            .tracks
            .iter()
            .zip(&s.routes)
            .find_map(|(t, r)| match (t.kind.clone(), r) {
                (TrackKind::H264 { payload_type }, Some(TrackRoute::Channel(c))) => {
                    Some((payload_type, *c))
                }
                _ => None,
            });
        let known = s.routes.iter().any(|r| {
            matches!(r, Some(TrackRoute::Channel(c)) if *c == channel || c.wrapping_add(1) == channel)
        });
        if !known {
            s.stray_frames += 1;
            if s.stray_frames == 1 {
                log::warn!(
                    "rtsp: {} sends data on channel {channel}, which no track uses; ignored",
                    self.peer
                );
            }
            return;
        }
        s.last_data = Instant::now();
        if let Some((pt, c)) = video {
            if c == channel && s.recording {
                Self::on_rtp(s, pt, data);
            }
        }
    }

    /// A UDP packet from the publisher's video RTP address.
    pub(super) fn on_udp(&mut self, packet: Bytes) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        s.last_data = Instant::now();
        let pt = s.tracks.iter().find_map(|t| match t.kind {
            TrackKind::H264 { payload_type } => Some(payload_type),
            TrackKind::Other { .. } => None,
        });
        if let (Some(pt), true) = (pt, s.recording) {
            Self::on_rtp(s, pt, &packet);
        }
    }

    /// One RTP packet of the video track: depacketised, whole units published.
    fn on_rtp(s: &mut Session, payload_type: u8, data: &[u8]) {
        let Ok(p) = rtp_types::RtpPacket::parse(data) else {
            s.depacketizer.count_malformed();
            return;
        };
        if p.payload_type() != payload_type {
            return; // RTCP multiplexed on the same channel, or another stream.
        }
        let mut units = std::mem::take(&mut s.units);
        s.depacketizer.push(
            p.sequence_number(),
            p.timestamp(),
            p.marker_bit(),
            p.payload(),
            &mut units,
        );
        for au in units.drain(..) {
            // A refused unit is counted in the path's status; the stream goes on.
            let _ = s.publishing.publish(au.timestamp, au.data, au.is_idr);
        }
        s.units = units;
    }

    /// The next thing that happens to the session outside requests: a UDP packet routed to
    /// it, or the path taken over by another publisher (or removed). Never resolves without
    /// a session.
    pub(super) async fn event(&mut self) -> RecordEvent {
        let Some(s) = self.session.as_mut() else {
            return std::future::pending().await;
        };
        let kicked = s.publishing.kicked();
        match s.udp_rx.as_mut() {
            Some(rx) => tokio::select! {
                p = rx.recv() => p.map_or(RecordEvent::Kicked, RecordEvent::Udp),
                _ = kicked => RecordEvent::Kicked,
            },
            None => {
                kicked.await;
                RecordEvent::Kicked
            }
        }
    }

    /// True when a recording publisher sent nothing for `READ_TIMEOUT`.
    pub(super) fn expired(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.last_data.elapsed() > READ_TIMEOUT)
    }

    /// Ends the session; the path waits for the next publisher. Returns a log summary.
    pub(super) fn end(&mut self) -> String {
        let Some(s) = self.session.take() else {
            return String::new();
        };
        if let Some(pair) = &self.ctx.udp {
            for r in s.routes.iter().flatten() {
                if let TrackRoute::Udp(from) = r {
                    pair.unroute_publisher(*from);
                }
            }
        }
        let d = s.depacketizer.drops();
        if d.lost_packets + d.late_packets + d.malformed_packets + d.dropped_units > 0 {
            log::info!(
                "rtsp: {} publishing {}: {} packets lost, {} late, {} malformed; {} frames dropped",
                self.peer,
                s.path,
                d.lost_packets,
                d.late_packets,
                d.malformed_packets,
                d.dropped_units
            );
        }
        format!(" (publisher session {} on {})", s.id, s.path)
    }
}

/// The announced track a SETUP URL names: its control URL, with or without a trailing
/// slash, or (publishers differ) by the control's last segment.
pub(crate) fn track_of(tracks: &[Track], url: &str) -> Option<usize> {
    let norm = |u: &str| u.trim_end_matches('/').to_string();
    tracks
        .iter()
        .position(|t| norm(&t.control) == norm(url))
        .or_else(|| {
            let tail = |u: &str| norm(u).rsplit('/').next().map(str::to_string);
            tracks
                .iter()
                .position(|t| tail(&t.control) == tail(url) && tail(url).is_some())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\nb=AS:200\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAHqzZQKAv+XARAAADAAEAAAMAMg8WLZY=,aOvjyyLA; profile-level-id=64001E\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\na=control:streamid=1\r\n";

    #[test]
    fn ffmpegs_sdp_with_h264_and_aac() {
        let a = read_sdp(FFMPEG_SDP.as_bytes(), "rtsp://127.0.0.1:8554/door").unwrap();
        assert_eq!(
            a.tracks,
            [
                Track {
                    control: "rtsp://127.0.0.1:8554/door/streamid=0".into(),
                    kind: TrackKind::H264 { payload_type: 96 },
                },
                Track {
                    control: "rtsp://127.0.0.1:8554/door/streamid=1".into(),
                    kind: TrackKind::Other {
                        codec: "audio MPEG4-GENERIC/44100/2".into()
                    },
                },
            ]
        );
        let (sps, pps) = a.sps_pps.expect("sprop-parameter-sets");
        assert_eq!(
            crate::h264::parse_sps(&sps).map(|s| s.width).ok(),
            Some(640)
        );
        assert_eq!(pps[0] & 0x1f, 8);
        assert_eq!(
            track_of(&a.tracks, "rtsp://127.0.0.1:8554/door/streamid=1/"),
            Some(1)
        );
        assert_eq!(
            track_of(&a.tracks, "rtsp://other:1/door/streamid=0"),
            Some(0)
        );
        assert_eq!(
            track_of(&a.tracks, "rtsp://127.0.0.1:8554/door/streamid=7"),
            None
        );
    }

    #[test]
    fn sdps_without_h264_or_broken_are_refused_clearly() {
        let h265 = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n";
        let (status, why) = read_sdp(h265.as_bytes(), "rtsp://h/p").unwrap_err();
        assert_eq!(status, StatusCode::UnsupportedMediaType);
        assert!(why.contains("video H265/90000"), "{why}");
        let pcmu = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        let (_, why) = read_sdp(pcmu.as_bytes(), "rtsp://h/p").unwrap_err();
        assert!(why.contains("PCMU"), "{why}");
        let mode2 = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\n";
        assert_eq!(
            read_sdp(mode2.as_bytes(), "rtsp://h/p").unwrap_err().0,
            StatusCode::UnsupportedMediaType
        );
        for garbage in [&b""[..], b"not an sdp", b"v=0\r\nm=video", &[0xff; 100]] {
            assert!(read_sdp(garbage, "rtsp://h/p").is_err());
        }
        assert!(read_sdp(&vec![b'a'; MAX_SDP + 1], "rtsp://h/p").is_err());
    }

    #[test]
    fn a_line_that_is_not_type_value_is_refused_not_a_panic() {
        // sdp-types 0.1 asserts on these (found by fuzz/fuzz_targets/sdp.rs).
        for sdp in [
            &b"v=0\no\na="[..],
            b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nbroken\r\na=x\r\nm=video 0 RTP/AVP 96\r\n",
            b"v=0\r\nm=video 0 RTP/AVP 96\r\nbroken\r\na=rtpmap:96 H264/90000\r\n",
            b"v=0\r\nxy=1\r\nt=0 0\r\n",
            b"v=0\r\n=a\r\ns=-\r\n",
            b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\r",
        ] {
            let (status, why) = read_sdp(sdp, "rtsp://h/p").unwrap_err();
            assert_eq!(status, StatusCode::BadRequest);
            assert!(why.contains("is not `type=value`"), "{why}");
        }
        // Blank lines, bare LF and a CR before LF are fine.
        let sdp = "v=0\n\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\n\r\nt=0 0\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\n";
        assert!(read_sdp(sdp.as_bytes(), "rtsp://h/p").is_ok());
    }

    #[test]
    fn one_track_without_control_is_the_base_url() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let a = read_sdp(sdp.as_bytes(), "rtsp://h/p/").unwrap();
        assert_eq!(a.tracks[0].control, "rtsp://h/p");
        assert_eq!(a.sps_pps, None);
    }
}
