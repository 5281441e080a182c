//! One RTSP connection: request framing, the session it owns, and its writer.
//!
//! Owns: reading and answering requests (in the request's order), the session state, and the
//! writer task that interleaves responses and media on the socket. Media for a TCP client is
//! written one whole frame at a time (one write of the shared buffer); a client that blocks a
//! frame longer than the stall timeout is disconnected; one that falls behind the hub's ring
//! skips whole frames to the next key frame. Malformed input closes this connection only.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rtsp_types::{Message, Method as RtspMethod, Request, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::hub::HubReader;
use crate::rtsp::auth::AuthResult;
use crate::rtsp::rtp::RtpFrame;
use crate::rtsp::server::ServerContext;
use crate::rtsp::session::{self, Next, State};
use crate::rtsp::stream::{ReaderSlot, RtpStream};
use crate::rtsp::transport::{self, Transport};
use crate::rtsp::udp::{self, Destination, Liveness};
use crate::rtsp::{rtcp, sdp};
use crate::status::{self, ClientGuard};

/// Largest request we buffer before calling it garbage.
const MAX_REQUEST: usize = 64 * 1024;
/// How often a playing client gets an RTCP sender report.
const SR_INTERVAL: Duration = Duration::from_secs(5);
/// How long DESCRIBE waits for a starting source, and PLAY for the first key frame.
const SOURCE_WAIT: Duration = Duration::from_secs(5);
pub const PUBLIC_METHODS: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// A response before serialisation.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// Serialises as RTSP/1.0 with the request's CSeq.
    pub fn to_bytes(&self, cseq: Option<&str>) -> Vec<u8> {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(cseq) = cseq {
            s.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        s.push_str(concat!(
            "Server: vigint/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
        for (name, value) in &self.headers {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The one place status codes get their reason phrases.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        451 => "Parameter Not Understood",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Unknown",
    }
}

/// What the request handler tells the writer.
enum WriterMsg {
    /// Bytes to write; `sent` fires once they are on the socket.
    Bytes(Vec<u8>, Option<oneshot::Sender<()>>),
    Play(Box<TcpPlay>),
    Stop,
}

/// A playing TCP-interleaved session, owned by the writer.
struct TcpPlay {
    reader: HubReader<RtpFrame>,
    first: Option<Arc<RtpFrame>>,
    rtp_channel: u8,
    rtcp_channel: u8,
    stream: Arc<RtpStream>,
    max_lag: i64,
    /// Interleaved headers for channels other than 0, reused frame after frame.
    headers: Vec<[u8; 4]>,
}

impl TcpPlay {
    async fn next(&mut self) -> Option<Arc<RtpFrame>> {
        match self.first.take() {
            Some(f) => Some(f),
            None => next_live(&mut self.reader, &self.stream, self.max_lag).await,
        }
    }
}

/// The reader's next frame, unless it is more than `max_lag` ticks behind the newest one:
/// then the rest of that group of pictures is dropped and the reader resumes at the next
/// key frame, so a slow client's video stays live instead of drifting behind.
async fn next_live(
    reader: &mut HubReader<RtpFrame>,
    stream: &RtpStream,
    max_lag: i64,
) -> Option<Arc<RtpFrame>> {
    loop {
        let frame = reader.next().await?;
        let lag = stream.lag_of(&frame);
        if lag <= max_lag {
            return Some(frame);
        }
        log::debug!(
            "rtsp: a reader of {} is {} ms behind; skipping to the next key frame",
            stream.media.name,
            lag * 1000 / crate::media::CLOCK_RATE as i64
        );
        reader.resync();
    }
}

/// A session on this connection.
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
}

struct UdpSession {
    rtp_dest: SocketAddr,
    rtcp_dest: SocketAddr,
    live: Arc<Liveness>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Why a connection ended, for the log line.
enum End {
    Closed,
    FormatChanged,
    Garbage(&'static str),
    Timeout,
    WriterGone,
    ReadError(std::io::Error),
}

pub struct Conn {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    /// The address the client reached us on (for SDP `o=`): with a `[::]` listener, the
    /// one address of this connection rather than the wildcard.
    local: IpAddr,
    /// The user this connection authenticated as, once it has.
    user: Option<String>,
    tx: mpsc::Sender<WriterMsg>,
    session: Option<Session>,
}

/// Serves one accepted connection until it closes.
pub async fn serve(ctx: Arc<ServerContext>, stream: TcpStream, peer: SocketAddr) {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d: logged as plain IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let _ = stream.set_nodelay(true);
    limit_send_buffer(&stream);
    let local = stream
        .local_addr()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(16);
    let stall = ctx.stall_timeout();
    let writer = tokio::spawn(writer_task(wr, rx, stall, peer));
    log::info!("rtsp: {peer} connected");
    let mut conn = Conn {
        ctx,
        peer,
        local,
        user: None,
        tx,
        session: None,
    };
    let mut buf = BytesMut::with_capacity(4096);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = loop {
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break End::Closed,
                Ok(_) => {
                    if let Err(end) = conn.process(&mut buf).await {
                        break end;
                    }
                }
                Err(e) => break End::ReadError(e),
            },
            _ = tick.tick() => {
                if conn.udp_session_expired() {
                    break End::Timeout;
                }
            }
            _ = conn.format_changed() => break End::FormatChanged,
            _ = conn.tx.closed() => break End::WriterGone,
        }
    };
    let summary = conn.end_session();
    drop(conn);
    // The writer ends once its channel is closed; it reports a stall itself.
    let _ = writer.await;
    match end {
        End::Closed => log::info!("rtsp: {peer} disconnected{summary}"),
        End::FormatChanged => {
            log::info!("rtsp: {peer} closed so it reconnects with the new picture format{summary}")
        }
        End::Garbage(why) => log::warn!("rtsp: {peer} sent {why}; closing its connection{summary}"),
        End::Timeout => {
            log::info!("rtsp: {peer} session timed out (no request or RTCP report){summary}")
        }
        End::WriterGone => log::info!("rtsp: {peer} connection closed{summary}"),
        End::ReadError(e) => log::info!("rtsp: {peer} disconnected: {e}{summary}"),
    }
}

impl Conn {
    /// Parses and answers every complete message in `buf`.
    async fn process(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        loop {
            if buf.is_empty() {
                return Ok(());
            }
            let parsed = Message::<Vec<u8>>::parse(&buf[..]);
            match parsed {
                Ok((msg, consumed)) => {
                    buf.advance(consumed);
                    match msg {
                        Message::Request(req) => self.answer(req).await?,
                        Message::Data(data) => {
                            self.on_interleaved(data.channel_id(), data.as_slice())
                        }
                        Message::Response(_) => {} // Answers to nothing we asked: ignore.
                    }
                }
                Err(rtsp_types::ParseError::Incomplete(_)) => {
                    if buf.len() > MAX_REQUEST {
                        self.send_now(Reply::new(400).to_bytes(None)).await;
                        return Err(End::Garbage("a request over 64 KiB"));
                    }
                    return Ok(());
                }
                Err(rtsp_types::ParseError::Error) => {
                    self.send_now(Reply::new(400).to_bytes(None)).await;
                    return Err(End::Garbage("a malformed request"));
                }
            }
        }
    }

    /// RTCP from the client over the interleaved channel: loss it reports is logged.
    fn on_interleaved(&mut self, _channel: u8, data: &[u8]) {
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

    /// Writes bytes and waits until they are on the socket.
    async fn send_now(&self, bytes: Vec<u8>) {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(WriterMsg::Bytes(bytes, Some(done)))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
    }

    async fn answer(&mut self, req: Request<Vec<u8>>) -> Result<(), End> {
        let cseq = req
            .header(&rtsp_types::headers::CSEQ)
            .map(|v| v.as_str().trim().to_string());
        let Some(cseq) = cseq.filter(|c| !c.is_empty() && c.len() < 16) else {
            self.send_now(Reply::new(400).to_bytes(None)).await;
            return Err(End::Garbage("a request without CSeq"));
        };
        let (reply, after) = if req.version() != Version::V1_0 {
            (Reply::new(505), None)
        } else {
            self.dispatch(&req).await
        };
        let bytes = reply.to_bytes(Some(&cseq));
        match after {
            None => {
                if self.tx.send(WriterMsg::Bytes(bytes, None)).await.is_err() {
                    return Err(End::WriterGone);
                }
            }
            Some(after) => after.run(self, bytes).await?,
        }
        Ok(())
    }

    /// The request's path name and the rest of its URL path (`trackID=0`), if any.
    fn path_of(req: &Request<Vec<u8>>) -> Option<(String, String)> {
        let url = req.request_uri()?;
        let path = url.path().trim_start_matches('/');
        let (name, rest) = match path.split_once('/') {
            Some((n, r)) => (n, r.trim_end_matches('/')),
            None => (path, ""),
        };
        Some((name.to_string(), rest.to_string()))
    }

    /// The request URL without credentials, query or fragment: safe to echo and to log.
    fn clean_url(req: &Request<Vec<u8>>) -> String {
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

    fn check_auth(&mut self, req: &Request<Vec<u8>>) -> Option<Reply> {
        let auth = self.ctx.auth();
        let method: &str = req.method().into();
        let uri = req.request_uri().map(|u| u.as_str()).unwrap_or("*");
        let header = req
            .header(&rtsp_types::headers::AUTHORIZATION)
            .map(|v| v.as_str());
        match auth.check(method, uri, header) {
            AuthResult::Open => None,
            AuthResult::Allowed { user } => {
                self.user = Some(user);
                None
            }
            AuthResult::Missing => Some(self.challenge(&auth, false)),
            // Clients keep the first nonce for a whole session: once this connection proved
            // the password, an expired nonce with a correct digest is still that user.
            AuthResult::Rejected {
                user: Some(u),
                stale: true,
                ..
            } if self.user.as_deref() == Some(u.as_str()) => None,
            AuthResult::Rejected {
                user,
                reason,
                stale,
            } => {
                if !stale {
                    self.ctx.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "rtsp: {} authentication failed for user `{}`: {reason}",
                        self.peer,
                        user.as_deref().unwrap_or("?")
                    );
                }
                Some(self.challenge(&auth, stale))
            }
        }
    }

    fn challenge(&self, auth: &crate::rtsp::auth::Authenticator, stale: bool) -> Reply {
        let mut r = Reply::new(401);
        for c in auth.challenges(stale) {
            r = r.header("WWW-Authenticate", c);
        }
        r
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
            _ => Err(Reply::new(454)),
        }
    }

    async fn dispatch(&mut self, req: &Request<Vec<u8>>) -> (Reply, Option<After>) {
        if let Some(r) = self.check_auth(req) {
            return (r, None);
        }
        let method = match req.method() {
            RtspMethod::Options => return (Reply::new(200).header("Public", PUBLIC_METHODS), None),
            RtspMethod::Describe => return (self.describe(req).await, None),
            RtspMethod::Setup => return (self.setup(req), None),
            RtspMethod::Play => session::Method::Play,
            RtspMethod::Pause => session::Method::Pause,
            RtspMethod::Teardown => session::Method::Teardown,
            RtspMethod::GetParameter | RtspMethod::SetParameter => session::Method::KeepAlive,
            RtspMethod::Announce | RtspMethod::Record | RtspMethod::Redirect => {
                return (Reply::new(405).header("Allow", PUBLIC_METHODS), None)
            }
            _ => return (Reply::new(501).header("Public", PUBLIC_METHODS), None),
        };
        let named = match self.session_check(req) {
            Ok(named) => named,
            Err(r) => return (r, None),
        };
        if method == session::Method::KeepAlive {
            if let Some(s) = &self.session {
                if let Some(u) = &s.udp {
                    u.live.touch();
                }
            }
            let set_with_body = *req.method() == RtspMethod::SetParameter && !req.body().is_empty();
            return (Reply::new(if set_with_body { 451 } else { 200 }), None);
        }
        if !named && self.session.is_some() && method != session::Method::Teardown {
            // A session exists but the request does not say so.
            return (Reply::new(454), None);
        }
        let state = self.session.as_ref().map(|s| s.state);
        let next = match session::transition(state, method) {
            Ok(n) => n,
            Err(_) => return (Reply::new(455), None),
        };
        match (method, next) {
            (session::Method::Play, _) => self.play(req).await,
            (session::Method::Pause, _) => {
                self.stop_media().await;
                if let Some(s) = &mut self.session {
                    s.state = State::Ready;
                }
                (self.with_session(Reply::new(200)), None)
            }
            (_, Next::Ended) => {
                let summary = self.end_session();
                log::info!("rtsp: {} teardown{summary}", self.peer);
                (Reply::new(200), None)
            }
            _ => (Reply::new(455), None),
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

    async fn describe(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let Some((name, _)) = Self::path_of(req) else {
            return Reply::new(400);
        };
        let Some(stream) = self.ctx.path(&name) else {
            return Reply::new(404);
        };
        let mut watch = stream.media.watch_info();
        let wait = watch.wait_for(|i| i.is_some());
        let info = match tokio::time::timeout(SOURCE_WAIT, wait).await {
            Ok(Ok(info)) => info.clone(),
            _ => None,
        };
        let Some(info) = info else {
            log::warn!(
                "rtsp: {} DESCRIBE {name}: the source has no picture yet",
                self.peer
            );
            return Reply::new(503).header("Retry-After", "5");
        };
        let body = sdp::describe(&info, &name, self.local, session_id_number());
        let mut base = Self::clean_url(req);
        if !base.ends_with('/') {
            base.push('/');
        }
        let mut r = Reply::new(200)
            .header("Content-Base", base)
            .header("Content-Type", "application/sdp");
        r.body = body.into_bytes();
        r
    }

    fn setup(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let named = match self.session_check(req) {
            Ok(n) => n,
            Err(r) => return r,
        };
        if self.session.is_some() && !named {
            // One session per connection; a second one needs its own connection.
            return Reply::new(459);
        }
        let state = self.session.as_ref().map(|s| s.state);
        if session::transition(state, session::Method::Setup).is_err() {
            return Reply::new(455);
        }
        let Some((name, rest)) = Self::path_of(req) else {
            return Reply::new(400);
        };
        if !(rest.is_empty() || rest == sdp::TRACK_CONTROL) {
            return Reply::new(404);
        }
        let Some(stream) = self.ctx.path(&name) else {
            return Reply::new(404);
        };
        if let Some(s) = &self.session {
            if !Arc::ptr_eq(&s.stream, &stream) {
                return Reply::new(459);
            }
        }
        let Some(header) = req.header(&rtsp_types::headers::TRANSPORT) else {
            return Reply::new(461);
        };
        let chosen = match transport::choose(header.as_str()) {
            Ok(t) => t,
            Err(transport::Unsupported(why)) => {
                log::info!(
                    "rtsp: {} SETUP {name}: no usable transport: {why}",
                    self.peer
                );
                return Reply::new(461);
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
                return Reply::new(461);
            };
            let Some(client_ip) = pair.reach.address_for(self.peer.ip()) else {
                log::info!(
                    "rtsp: {} SETUP {name}: the UDP ports ({:?}) cannot reach this client; it must use TCP",
                    self.peer,
                    pair.reach
                );
                return Reply::new(461);
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
                return Reply::new(503);
            };
            let mut base = Self::clean_url(req);
            if rest.is_empty() {
                base = format!("{}/{}", base.trim_end_matches('/'), sdp::TRACK_CONTROL);
            }
            let mut format = stream.watch_format();
            format.mark_unchanged();
            self.session = Some(Session {
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
        self.with_session(Reply::new(200).header("Transport", answer))
    }

    async fn play(&mut self, _req: &Request<Vec<u8>>) -> (Reply, Option<After>) {
        let Some(s) = &mut self.session else {
            return (Reply::new(455), None);
        };
        if s.state == State::Playing {
            // Already playing: a keep-alive in disguise.
            return (
                self.with_session(Reply::new(200).header("Range", "npt=0.000-")),
                None,
            );
        }
        let mut reader = s.stream.hub.subscribe();
        let first = tokio::time::timeout(SOURCE_WAIT, reader.next())
            .await
            .unwrap_or_default();
        let mut reply = Reply::new(200).header("Range", "npt=0.000-");
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
        s.playing = Some(s.stream.clients.enter(counted));
        log::info!(
            "rtsp: {} playing {} over {kind} (session {})",
            self.peer,
            s.stream.media.name,
            s.id
        );
        let reply = self.with_session(reply);
        (reply, Some(After::StartMedia { reader, first }))
    }

    /// Stops media for the session (PAUSE, TEARDOWN, disconnect).
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

    /// Ends the session (if any); returns a summary for the log line.
    fn end_session(&mut self) -> String {
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

    /// Resolves when the session's path changes picture format (never without a session).
    async fn format_changed(&self) {
        match &self.session {
            Some(s) => {
                let mut rx = s.format.clone();
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }

    fn udp_session_expired(&self) -> bool {
        match self.session.as_ref().and_then(|s| s.udp.as_ref()) {
            Some(u) => u.live.idle_for() > self.ctx.session_timeout(),
            None => false,
        }
    }
}

/// Work that must happen after the response is sent (media must not precede PLAY's answer).
enum After {
    StartMedia {
        reader: HubReader<RtpFrame>,
        first: Option<Arc<RtpFrame>>,
    },
}

impl After {
    async fn run(self, conn: &mut Conn, response: Vec<u8>) -> Result<(), End> {
        let After::StartMedia { reader, first } = self;
        let Some(s) = &mut conn.session else {
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
                    max_lag: conn.ctx.max_lag_ticks(),
                    headers: Vec::new(),
                };
                // Same channel, same order: the answer is on the wire before any media.
                if conn
                    .tx
                    .send(WriterMsg::Bytes(response, None))
                    .await
                    .is_err()
                    || conn.tx.send(WriterMsg::Play(Box::new(play))).await.is_err()
                {
                    return Err(End::WriterGone);
                }
            }
            Transport::Udp { .. } => {
                let (sent_tx, sent_rx) = oneshot::channel();
                if conn
                    .tx
                    .send(WriterMsg::Bytes(response, Some(sent_tx)))
                    .await
                    .is_err()
                {
                    return Err(End::WriterGone);
                }
                let (Some(u), Some(pair)) = (&mut s.udp, conn.ctx.udp.clone()) else {
                    return Ok(());
                };
                u.live.touch();
                let dest = Destination::new(u.rtp_dest);
                let rtcp_dest = u.rtcp_dest;
                let stream = s.stream.clone();
                let peer = conn.peer;
                let max_lag = conn.ctx.max_lag_ticks();
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
}

/// A playing UDP session, owned by its sender task.
struct UdpPlay {
    pair: Arc<udp::UdpPair>,
    stream: Arc<RtpStream>,
    reader: HubReader<RtpFrame>,
    first: Option<Arc<RtpFrame>>,
    dest: Destination,
    rtcp_dest: SocketAddr,
    max_lag: i64,
}

/// Sends a UDP session's media: one `sendmmsg` batch per frame, a sender report now and then.
async fn udp_sender(play: UdpPlay, peer: SocketAddr) {
    let UdpPlay {
        pair,
        stream,
        mut reader,
        mut first,
        dest,
        rtcp_dest,
        max_lag,
    } = play;
    let mut next_sr = Instant::now();
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => match next_live(&mut reader, &stream, max_lag).await {
                Some(f) => f,
                None => return,
            },
        };
        if Instant::now() >= next_sr {
            next_sr = Instant::now() + SR_INTERVAL;
            if let Some(sr) = sender_report(&stream) {
                let _ = pair.rtcp.send_to(&sr, rtcp_dest).await;
            }
        }
        if let Err(e) = udp::send_frame(&pair.rtp, &frame, &dest).await {
            log::warn!("rtsp: {peer} UDP send failed: {e}; stopping its media");
            return;
        }
    }
}

fn sender_report(stream: &RtpStream) -> Option<Vec<u8>> {
    let i = stream.sender_info()?;
    Some(rtcp::sender_report(
        i.ssrc,
        i.wall,
        i.rtp_timestamp,
        i.packets,
        i.octets,
        "vigint",
    ))
}

/// The writer: responses and media, in order, one whole frame at a time.
async fn writer_task(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<WriterMsg>,
    stall: Duration,
    peer: SocketAddr,
) {
    let mut play: Option<Box<TcpPlay>> = None;
    let mut next_sr = Instant::now();
    loop {
        let next_frame = async {
            match play.as_mut() {
                Some(p) => p.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                None => return,
                Some(WriterMsg::Bytes(b, done)) => {
                    match tokio::time::timeout(stall, wr.write_all(&b)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Some(WriterMsg::Play(p)) => {
                    play = Some(p);
                    next_sr = Instant::now();
                }
                Some(WriterMsg::Stop) => play = None,
            },
            frame = next_frame => {
                let Some(frame) = frame else {
                    // The path went away.
                    play = None;
                    continue;
                };
                let Some(p) = play.as_mut() else { continue };
                if Instant::now() >= next_sr {
                    next_sr = Instant::now() + SR_INTERVAL;
                    if let Some(sr) = sender_report(&p.stream) {
                        let mut b = Vec::with_capacity(sr.len() + 4);
                        b.extend_from_slice(&[b'$', p.rtcp_channel]);
                        b.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                        b.extend_from_slice(&sr);
                        if !matches!(tokio::time::timeout(stall, wr.write_all(&b)).await, Ok(Ok(()))) {
                            return;
                        }
                    }
                }
                match tokio::time::timeout(stall, write_frame(&mut wr, &frame, p)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        log::warn!(
                            "rtsp: {peer} stopped reading: a frame could not be written in {} s; disconnecting",
                            stall.as_secs()
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Writes one frame: the shared buffer as is on channel 0, else with this client's headers.
async fn write_frame(
    wr: &mut OwnedWriteHalf,
    frame: &RtpFrame,
    p: &mut TcpPlay,
) -> std::io::Result<()> {
    if p.rtp_channel == 0 {
        return wr.write_all(&frame.buf).await;
    }
    let n = frame.packet_count();
    p.headers.clear();
    for i in 0..n {
        let len = frame.packet(i).len() as u16;
        let l = len.to_be_bytes();
        p.headers.push([b'$', p.rtp_channel, l[0], l[1]]);
    }
    let mut slices = Vec::with_capacity(2 * n);
    for i in 0..n {
        slices.push(IoSlice::new(&p.headers[i]));
        slices.push(IoSlice::new(frame.packet(i)));
    }
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let written = wr.write_vectored(bufs).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, written);
    }
    Ok(())
}

/// Kernel send buffer per client. Linux would grow it to megabytes; on a small board with
/// many clients that memory matters, and a client that stops reading should stall (and be
/// noticed) after about a second of video, not after tens of seconds.
const SEND_BUFFER: libc::c_int = 256 * 1024;

fn limit_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a valid socket fd with a c_int value of the stated size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &SEND_BUFFER as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::debug!(
            "rtsp: cannot limit the send buffer: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn new_session_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn session_id_number() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_ne_bytes(b) >> 1
}
