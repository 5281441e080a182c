//! The play side of an RTSP connection: DESCRIBE, SETUP (play mode), PLAY, PAUSE, TEARDOWN
//! and keep-alives, for the one session a connection may hold.
//!
//! Owns: the session (id, state, transport, the path's stream and reader slot, the client
//! counted while it plays, UDP destination and liveness), each request's answer, and
//! starting and stopping media after an answer is on the wire. Handlers take a parsed
//! request and return a `Reply`: they need no socket (the writer is a channel), so they are
//! unit-tested with a fed `MediaPath`. Does not own: framing, CSeq and authentication
//! (`conn`), or writing bytes (`writer`). The record side (publishers) gets its own module.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rtsp_types::{Method as RtspMethod, Request};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Demand, HubReader};
use crate::rtsp::reply::{Reply, StatusCode};
use crate::rtsp::rtcp;
use crate::rtsp::rtp::RtpFrame;
use crate::rtsp::sdp;
use crate::rtsp::server::ServerContext;
use crate::rtsp::session::{self, Next, State};
use crate::rtsp::stream::{ReaderSlot, RtpStream};
use crate::rtsp::transport::{self, Transport};
use crate::rtsp::udp::{Destination, Liveness};
use crate::rtsp::writer::{udp_sender, TcpPlay, UdpPlay, WriterMsg};
use crate::status::{self, ClientGuard};

/// How long DESCRIBE waits for a starting source, and PLAY for the first key frame.
const SOURCE_WAIT: Duration = Duration::from_secs(5);

/// The session on this connection.
struct Session {
    id: String,
    state: State,
    stream: Arc<RtpStream>,
    _slot: ReaderSlot,
    /// Counts this client in the path's status while it plays.
    playing: Option<ClientGuard>,
    transport: Transport,
    track_url: String,
    /// UDP only: where media goes, liveness, and the sender task while playing.
    udp: Option<UdpSession>,
    /// The path's picture-format generation as of SETUP.
    format: tokio::sync::watch::Receiver<u64>,
    /// The session wants the path (an on-demand source runs while it lasts).
    _demand: Demand,
}

struct UdpSession {
    rtp_dest: SocketAddr,
    rtcp_dest: SocketAddr,
    live: Arc<Liveness>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Work that must happen after the response is sent (media must not precede PLAY's answer).
pub(super) enum After {
    StartMedia {
        reader: HubReader<RtpFrame>,
        first: Option<Arc<RtpFrame>>,
    },
}

/// The writer went away (the connection is closing).
pub(super) struct WriterGone;

/// The play side of one connection.
pub(super) struct Play {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    /// The address the client reached us on (for SDP `o=`): with a `[::]` listener, the
    /// one address of this connection rather than the wildcard.
    local: IpAddr,
    tx: mpsc::Sender<WriterMsg>,
    session: Option<Session>,
}

/// The request's path name and the rest of its URL path (`trackID=0`), if any.
pub(crate) fn path_of(req: &Request<Vec<u8>>) -> Option<(String, String)> {
    let url = req.request_uri()?;
    let path = url.path().trim_start_matches('/');
    let (name, rest) = match path.split_once('/') {
        Some((n, r)) => (n, r.trim_end_matches('/')),
        None => (path, ""),
    };
    Some((name.to_string(), rest.to_string()))
}

/// The request URL without credentials, query or fragment: safe to echo and to log.
pub(crate) fn clean_url(req: &Request<Vec<u8>>) -> String {
    match req.request_uri() {
        Some(url) => {
            let mut u = url.clone();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        None => "*".to_string(),
    }
}

impl Play {
    pub(super) fn new(
        ctx: Arc<ServerContext>,
        peer: SocketAddr,
        local: IpAddr,
        tx: mpsc::Sender<WriterMsg>,
    ) -> Play {
        Play {
            ctx,
            peer,
            local,
            tx,
            session: None,
        }
    }

    /// Checks a `Session` header against this connection's session: 454 when it names
    /// another one.
    fn session_check(&self, req: &Request<Vec<u8>>) -> Result<bool, Reply> {
        let Some(v) = req.header(&rtsp_types::headers::SESSION) else {
            return Ok(false);
        };
        let id = v.as_str().split(';').next().unwrap_or("").trim();
        match &self.session {
            Some(s) if s.id == id => Ok(true),
            _ => Err(Reply::new(StatusCode::SessionNotFound)),
        }
    }

    fn with_session(&self, r: Reply) -> Reply {
        match &self.session {
            Some(s) => r.header(
                "Session",
                format!("{};timeout={}", s.id, self.ctx.session_timeout().as_secs()),
            ),
            None => r,
        }
    }

    pub(super) async fn describe(&self, req: &Request<Vec<u8>>) -> Reply {
        let Some((name, _)) = path_of(req) else {
            return Reply::new(StatusCode::BadRequest);
        };
        let Some(stream) = self.ctx.path(&name) else {
            return Reply::new(StatusCode::NotFound);
        };
        // Wanted while it answers: an on-demand source starts now.
        let _want = stream.media.want();
        let mut watch = stream.media.watch_info();
        let wait = watch.wait_for(|i| i.is_some());
        let info = match tokio::time::timeout(stream.media.start_wait(), wait).await {
            Ok(Ok(info)) => info.clone(),
            _ => None,
        };
        let Some(info) = info else {
            log::warn!(
                "rtsp: {} DESCRIBE {name}: the source has no picture yet",
                self.peer
            );
            return Reply::new(StatusCode::ServiceUnavailable).header("Retry-After", "5");
        };
        let body = sdp::describe(&info, &name, self.local, session_id_number());
        let mut base = clean_url(req);
        if !base.ends_with('/') {
            base.push('/');
        }
        let mut r = Reply::new(StatusCode::Ok)
            .header("Content-Base", base)
            .header("Content-Type", "application/sdp");
        r.body = body.into_bytes();
        r
    }

    pub(super) fn setup(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let named = match self.session_check(req) {
            Ok(n) => n,
            Err(r) => return r,
        };
        if self.session.is_some() && !named {
            // One session per connection; a second one needs its own connection.
            return Reply::new(StatusCode::AggregateOperationNotAllowed);
        }
        let state = self.session.as_ref().map(|s| s.state);
        if session::transition(state, session::Method::Setup).is_err() {
            return Reply::new(StatusCode::MethodNotValidInThisState);
        }
        let Some((name, rest)) = path_of(req) else {
            return Reply::new(StatusCode::BadRequest);
        };
        if !(rest.is_empty() || rest == sdp::TRACK_CONTROL) {
            return Reply::new(StatusCode::NotFound);
        }
        let Some(stream) = self.ctx.path(&name) else {
            return Reply::new(StatusCode::NotFound);
        };
        if let Some(s) = &self.session {
            if !Arc::ptr_eq(&s.stream, &stream) {
                return Reply::new(StatusCode::AggregateOperationNotAllowed);
            }
        }
        let Some(header) = req.header(&rtsp_types::headers::TRANSPORT) else {
            return Reply::new(StatusCode::UnsupportedTransport);
        };
        let chosen = match transport::choose(header.as_str()) {
            Ok(t) => t,
            Err(transport::Unsupported(why)) => {
                log::info!(
                    "rtsp: {} SETUP {name}: no usable transport: {why}",
                    self.peer
                );
                return Reply::new(StatusCode::UnsupportedTransport);
            }
        };
        let mut udp_session = None;
        let mut server_ports = None;
        if let Transport::Udp {
            rtp_port,
            rtcp_port,
        } = chosen
        {
            let Some(pair) = self.ctx.udp.as_ref() else {
                return Reply::new(StatusCode::UnsupportedTransport);
            };
            let Some(client_ip) = pair.reach.address_for(self.peer.ip()) else {
                log::info!(
                    "rtsp: {} SETUP {name}: the UDP ports ({:?}) cannot reach this client; it must use TCP",
                    self.peer,
                    pair.reach
                );
                return Reply::new(StatusCode::UnsupportedTransport);
            };
            server_ports = Some(pair.ports());
            let rtcp_dest = SocketAddr::new(client_ip, rtcp_port);
            let live = Liveness::new();
            pair.register(rtcp_dest, live.clone());
            udp_session = Some(UdpSession {
                rtp_dest: SocketAddr::new(client_ip, rtp_port),
                rtcp_dest,
                live,
                task: None,
            });
        }
        if let Some(s) = &mut self.session {
            // Re-SETUP of the same track (e.g. a new transport) while not playing.
            if let Some(old) = s.udp.take() {
                if let Some(pair) = &self.ctx.udp {
                    pair.unregister(old.rtcp_dest);
                }
            }
            s.transport = chosen;
            s.udp = udp_session;
        } else {
            let Some(slot) = stream.try_add_reader() else {
                if let (Some(u), Some(pair)) = (&udp_session, &self.ctx.udp) {
                    pair.unregister(u.rtcp_dest);
                }
                log::warn!(
                    "rtsp: {} SETUP {name}: reader limit of {} reached",
                    self.peer,
                    stream
                        .max_readers
                        .load(std::sync::atomic::Ordering::Relaxed)
                );
                return Reply::new(StatusCode::ServiceUnavailable);
            };
            let mut base = clean_url(req);
            if rest.is_empty() {
                base = format!("{}/{}", base.trim_end_matches('/'), sdp::TRACK_CONTROL);
            }
            let mut format = stream.watch_format();
            format.mark_unchanged();
            self.session = Some(Session {
                _demand: stream.media.want(),
                format,
                id: new_session_id(),
                state: State::Ready,
                stream: stream.clone(),
                _slot: slot,
                playing: None,
                transport: chosen,
                track_url: base,
                udp: udp_session,
            });
        }
        let answer = transport::answer(&chosen, server_ports, stream.ssrc);
        self.with_session(Reply::new(StatusCode::Ok).header("Transport", answer))
    }

    /// PLAY, PAUSE, TEARDOWN and the keep-alives (GET_PARAMETER, SET_PARAMETER) on the
    /// session, after the connection routed them here.
    pub(super) async fn session_request(
        &mut self,
        req: &Request<Vec<u8>>,
        method: session::Method,
    ) -> (Reply, Option<After>) {
        let named = match self.session_check(req) {
            Ok(named) => named,
            Err(r) => return (r, None),
        };
        if method == session::Method::KeepAlive {
            if let Some(u) = self.session.as_ref().and_then(|s| s.udp.as_ref()) {
                u.live.touch();
            }
            let set_with_body = *req.method() == RtspMethod::SetParameter && !req.body().is_empty();
            let status = if set_with_body {
                StatusCode::ParameterNotUnderstood
            } else {
                StatusCode::Ok
            };
            return (Reply::new(status), None);
        }
        if !named && self.session.is_some() && method != session::Method::Teardown {
            // A session exists but the request does not say so.
            return (Reply::new(StatusCode::SessionNotFound), None);
        }
        let state = self.session.as_ref().map(|s| s.state);
        let next = match session::transition(state, method) {
            Ok(n) => n,
            Err(_) => return (Reply::new(StatusCode::MethodNotValidInThisState), None),
        };
        match (method, next) {
            (session::Method::Play, _) => self.play().await,
            (session::Method::Pause, _) => {
                self.stop_media().await;
                if let Some(s) = &mut self.session {
                    s.state = State::Ready;
                }
                (self.with_session(Reply::new(StatusCode::Ok)), None)
            }
            (_, Next::Ended) => {
                let summary = self.end();
                log::info!("rtsp: {} teardown{summary}", self.peer);
                (Reply::new(StatusCode::Ok), None)
            }
            _ => (Reply::new(StatusCode::MethodNotValidInThisState), None),
        }
    }

    async fn play(&mut self) -> (Reply, Option<After>) {
        let Some(s) = &mut self.session else {
            return (Reply::new(StatusCode::MethodNotValidInThisState), None);
        };
        if s.state == State::Playing {
            // Already playing: a keep-alive in disguise.
            return (
                self.with_session(Reply::new(StatusCode::Ok).header("Range", "npt=0.000-")),
                None,
            );
        }
        let mut reader = s.stream.hub.subscribe();
        let first =
            tokio::time::timeout(s.stream.media.start_wait().max(SOURCE_WAIT), reader.next())
                .await
                .unwrap_or_default();
        let mut reply = Reply::new(StatusCode::Ok).header("Range", "npt=0.000-");
        if let Some(f) = &first {
            reply = reply.header(
                "RTP-Info",
                format!(
                    "url={};seq={};rtptime={}",
                    s.track_url, f.first_seq, f.rtp_timestamp
                ),
            );
        }
        s.state = State::Playing;
        let (kind, counted) = match s.transport {
            Transport::Tcp { .. } => ("TCP", status::Transport::Tcp),
            Transport::Udp { .. } => ("UDP", status::Transport::Udp),
        };
        s.playing = Some(s.stream.clients.enter(counted, self.peer));
        log::info!(
            "rtsp: {} playing {} over {kind} (session {})",
            self.peer,
            s.stream.media.name,
            s.id
        );
        let reply = self.with_session(reply);
        (reply, Some(After::StartMedia { reader, first }))
    }

    /// Sends PLAY's answer, then starts the media: the answer is on the wire before any of it.
    pub(super) async fn start_media(
        &mut self,
        after: After,
        response: Vec<u8>,
    ) -> Result<(), WriterGone> {
        let After::StartMedia { reader, first } = after;
        let Some(s) = &mut self.session else {
            return Ok(());
        };
        match s.transport {
            Transport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => {
                let play = TcpPlay {
                    reader,
                    first,
                    rtp_channel,
                    rtcp_channel,
                    stream: s.stream.clone(),
                    max_lag: self.ctx.max_lag_ticks(),
                    headers: Vec::new(),
                };
                // Same channel, same order: the answer is on the wire before any media.
                if self
                    .tx
                    .send(WriterMsg::Bytes(response, None))
                    .await
                    .is_err()
                    || self.tx.send(WriterMsg::Play(Box::new(play))).await.is_err()
                {
                    return Err(WriterGone);
                }
            }
            Transport::Udp { .. } => {
                let (sent_tx, sent_rx) = oneshot::channel();
                if self
                    .tx
                    .send(WriterMsg::Bytes(response, Some(sent_tx)))
                    .await
                    .is_err()
                {
                    return Err(WriterGone);
                }
                let (Some(u), Some(pair)) = (&mut s.udp, self.ctx.udp.clone()) else {
                    return Ok(());
                };
                u.live.touch();
                let dest = Destination::new(u.rtp_dest);
                let rtcp_dest = u.rtcp_dest;
                let stream = s.stream.clone();
                let peer = self.peer;
                let max_lag = self.ctx.max_lag_ticks();
                u.task = Some(tokio::spawn(async move {
                    let _ = sent_rx.await;
                    let play = UdpPlay {
                        pair,
                        stream,
                        reader,
                        first,
                        dest,
                        rtcp_dest,
                        max_lag,
                    };
                    udp_sender(play, peer).await;
                }));
            }
        }
        Ok(())
    }

    /// Stops media for the session (PAUSE).
    async fn stop_media(&mut self) {
        if let Some(s) = &mut self.session {
            s.playing = None;
            if let Some(u) = &mut s.udp {
                if let Some(t) = u.task.take() {
                    t.abort();
                }
            }
            if matches!(s.transport, Transport::Tcp { .. }) {
                let _ = self.tx.send(WriterMsg::Stop).await;
            }
        }
    }

    /// Ends the session (TEARDOWN, disconnect), if any; returns a summary for the log line.
    pub(super) fn end(&mut self) -> String {
        let Some(mut s) = self.session.take() else {
            return String::new();
        };
        if let Some(u) = &mut s.udp {
            if let Some(t) = u.task.take() {
                t.abort();
            }
            if let Some(pair) = &self.ctx.udp {
                pair.unregister(u.rtcp_dest);
                // Tell the client the stream ended, as TCP clients learn from the close.
                let _ = pair
                    .rtcp
                    .try_send_to(&rtcp::bye(s.stream.ssrc), u.rtcp_dest);
            }
        }
        // A TCP session's media stops with the writer's Stop or with the connection.
        let _ = self.tx.try_send(WriterMsg::Stop);
        let kind = match s.transport {
            Transport::Tcp { .. } => "TCP",
            Transport::Udp { .. } => "UDP",
        };
        format!(" (session {} on {} over {kind})", s.id, s.stream.media.name)
    }

    /// RTCP from the client over the interleaved channel: loss it reports is logged.
    pub(super) fn on_rtcp(&self, data: &[u8]) {
        let Some(s) = &self.session else { return };
        if let Ok(reports) = rtcp::parse_receiver_reports(data) {
            for r in reports
                .iter()
                .filter(|r| r.ssrc == s.stream.ssrc && r.fraction_lost > 0)
            {
                log::debug!(
                    "rtsp: {} reports {:.1}% loss ({} packets in all)",
                    self.peer,
                    r.fraction_lost as f64 * 100.0 / 256.0,
                    r.cumulative_lost
                );
            }
        }
    }

    /// Resolves when the session's path changes picture format (never without a session).
    pub(super) async fn format_changed(&self) {
        match &self.session {
            Some(s) => {
                let mut rx = s.format.clone();
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }

    /// True when a UDP session heard nothing (request or RTCP) for the session timeout.
    pub(super) fn expired(&self) -> bool {
        match self.session.as_ref().and_then(|s| s.udp.as_ref()) {
            Some(u) => u.live.idle_for() > self.ctx.session_timeout(),
            None => false,
        }
    }
}

pub(super) fn new_session_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn session_id_number() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_ne_bytes(b) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RtspConfig;
    use crate::hub::MediaPath;
    use crate::media::{EncodedFrame, StreamInfo};
    use bytes::Bytes;
    use rtsp_types::headers::{SESSION, TRANSPORT};
    use std::time::SystemTime;

    const SPS: [u8; 25] = [
        0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x24, 0x80,
    ];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    fn request(
        method: RtspMethod,
        url: &str,
        headers: &[(&rtsp_types::HeaderName, &str)],
    ) -> Request<Vec<u8>> {
        let mut b = Request::builder(method, rtsp_types::Version::V1_0)
            .request_uri(rtsp_types::Url::parse(url).unwrap())
            .header(rtsp_types::headers::CSEQ, "1");
        for (name, value) in headers {
            b = b.header((*name).clone(), *value);
        }
        b.build(Vec::new())
    }

    /// A served path `cam` fed with key frames every 20 ms, and a `Play` on it.
    fn setup() -> (Play, mpsc::Receiver<WriterMsg>, tokio::task::JoinHandle<()>) {
        let ctx = ServerContext::new(&RtspConfig::default(), &[], None, 8554);
        let media = MediaPath::new("cam");
        media.set_info(StreamInfo {
            width: 1280,
            height: 720,
            fps: 25,
            sps: Bytes::from_static(&SPS),
            pps: Bytes::from_static(&PPS),
        });
        ctx.add_path(media.clone(), 0);
        let feed = tokio::spawn(async move {
            for n in 0.. {
                let mut au = vec![0, 0, 0, 1];
                au.extend_from_slice(&SPS);
                au.extend_from_slice(&[0, 0, 0, 1]);
                au.extend_from_slice(&PPS);
                au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21]);
                let f = EncodedFrame::from_annexb(Bytes::from(au), n * 3600, SystemTime::now());
                media.frames.publish(Arc::new(f));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let (tx, rx) = mpsc::channel(16);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        (Play::new(ctx, peer, local, tx), rx, feed)
    }

    #[tokio::test]
    async fn a_viewer_session_from_describe_to_teardown_without_a_socket() {
        let (mut play, mut rx, feed) = setup();
        let url = "rtsp://127.0.0.1:8554/cam";
        let r = play
            .describe(&request(RtspMethod::Describe, url, &[]))
            .await;
        assert_eq!(r.status, StatusCode::Ok);
        assert_eq!(
            r.header_value("Content-Base"),
            Some("rtsp://127.0.0.1:8554/cam/")
        );
        let sdp = String::from_utf8(r.body).unwrap();
        assert!(
            sdp.contains("m=video 0 RTP/AVP 96") && sdp.contains("IN IP4 127.0.0.1"),
            "{sdp}"
        );
        let r = play
            .describe(&request(RtspMethod::Describe, "rtsp://h/nope", &[]))
            .await;
        assert_eq!(r.status, StatusCode::NotFound);

        // UDP without a socket pair: 461; TCP: a session.
        let track = "rtsp://127.0.0.1:8554/cam/trackID=0";
        let udp = [(&TRANSPORT, "RTP/AVP;unicast;client_port=5000-5001")];
        assert_eq!(
            play.setup(&request(RtspMethod::Setup, track, &udp)).status,
            StatusCode::UnsupportedTransport
        );
        let tcp = [(&TRANSPORT, "RTP/AVP/TCP;unicast;interleaved=0-1")];
        let r = play.setup(&request(RtspMethod::Setup, track, &tcp));
        assert_eq!(r.status, StatusCode::Ok);
        assert!(r
            .header_value("Transport")
            .unwrap()
            .contains("interleaved=0-1"));
        let id = r
            .header_value("Session")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        // A second SETUP without the session: one session per connection.
        assert_eq!(
            play.setup(&request(RtspMethod::Setup, track, &tcp)).status,
            StatusCode::AggregateOperationNotAllowed
        );

        let session = [(&SESSION, id.as_str())];
        let wrong = [(&SESSION, "00DEADBEEF")];
        let (r, after) = play
            .session_request(
                &request(RtspMethod::Play, url, &wrong),
                session::Method::Play,
            )
            .await;
        assert_eq!(
            (r.status, after.is_none()),
            (StatusCode::SessionNotFound, true)
        );
        let (r, after) = play
            .session_request(
                &request(RtspMethod::Play, url, &session),
                session::Method::Play,
            )
            .await;
        assert_eq!(r.status, StatusCode::Ok);
        assert!(r
            .header_value("RTP-Info")
            .unwrap()
            .starts_with(&format!("url={track};seq=")));
        // The answer goes out first, then the writer gets the media.
        let after = after.expect("media starts after the answer");
        assert!(play.start_media(after, b"answer".to_vec()).await.is_ok());
        assert!(matches!(rx.recv().await, Some(WriterMsg::Bytes(b, None)) if b == b"answer"));
        assert!(matches!(rx.recv().await, Some(WriterMsg::Play(_))));

        let (r, _) = play
            .session_request(
                &request(RtspMethod::Pause, url, &session),
                session::Method::Pause,
            )
            .await;
        assert_eq!(r.status, StatusCode::Ok);
        assert!(matches!(rx.recv().await, Some(WriterMsg::Stop)));
        let (r, _) = play
            .session_request(
                &request(RtspMethod::Teardown, url, &session),
                session::Method::Teardown,
            )
            .await;
        assert_eq!(r.status, StatusCode::Ok);
        let (r, _) = play
            .session_request(
                &request(RtspMethod::GetParameter, url, &session),
                session::Method::KeepAlive,
            )
            .await;
        assert_eq!(r.status, StatusCode::SessionNotFound, "the session ended");
        feed.abort();
    }

    #[tokio::test]
    async fn play_before_setup_and_unknown_tracks() {
        let (mut play, _rx, feed) = setup();
        let url = "rtsp://127.0.0.1:8554/cam";
        let (r, _) = play
            .session_request(&request(RtspMethod::Play, url, &[]), session::Method::Play)
            .await;
        assert_eq!(r.status, StatusCode::MethodNotValidInThisState);
        let tcp = [(&TRANSPORT, "RTP/AVP/TCP;unicast;interleaved=0-1")];
        let r = play.setup(&request(RtspMethod::Setup, "rtsp://h/cam/trackID=1", &tcp));
        assert_eq!(r.status, StatusCode::NotFound);
        let r = play.setup(&request(RtspMethod::Setup, "rtsp://h/cam/trackID=0", &[]));
        assert_eq!(r.status, StatusCode::UnsupportedTransport);
        feed.abort();
    }
}
