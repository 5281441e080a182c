//! One RTSP connection: reading, CSeq, authentication and request routing.
//!
//! Owns: reading the socket and acting on each framing decision (garbage closes this
//! connection only, with 400 or 413), answering in the request's order with its CSeq, the
//! version check, authentication (who this connection is), routing each method to its
//! handler (`play` for viewers, `record` for publishers), and the connection's end with one
//! log line. Does not own: where a message ends and the size caps (`framing`, pure), the
//! session and the answers (`play`), writing to the socket (`writer`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rtsp_types::{Message, Method as RtspMethod, Request, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::auth::permissions::{Action, Verdict};
use crate::rtsp::auth::AuthResult;
use crate::rtsp::framing::{frame, Framed};
use crate::rtsp::play::{path_of, After, Play, WriterGone};
use crate::rtsp::record::{Record, RecordEvent, READ_TIMEOUT};
use crate::rtsp::reply::{Reply, StatusCode};
use crate::rtsp::server::ServerContext;
use crate::rtsp::session;
use crate::rtsp::writer::{limit_send_buffer, writer_task, WriterMsg};

pub const PUBLIC_METHODS: &str =
    "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// Why a connection ended, for the log line.
enum End {
    Closed,
    FormatChanged,
    Garbage(&'static str),
    Timeout,
    /// A publisher sent nothing for the read timeout.
    PublisherSilent,
    /// Another publisher took the path over (or the path went away).
    Replaced,
    WriterGone,
    ReadError(std::io::Error),
}

pub struct Conn {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    /// The user this connection authenticated as, once it has.
    user: Option<String>,
    tx: mpsc::Sender<WriterMsg>,
    play: Play,
    record: Record,
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
        play: Play::new(ctx.clone(), peer, local, tx.clone()),
        record: Record::new(ctx.clone(), peer),
        ctx,
        peer,
        user: None,
        tx,
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
                if conn.play.expired() {
                    break End::Timeout;
                }
                if conn.record.expired() {
                    break End::PublisherSilent;
                }
            }
            event = conn.record.event() => match event {
                RecordEvent::Udp(p) => conn.record.on_udp(p),
                RecordEvent::Kicked => break End::Replaced,
            },
            _ = conn.play.format_changed() => break End::FormatChanged,
            _ = conn.tx.closed() => break End::WriterGone,
        }
    };
    let summary = conn.play.end() + &conn.record.end();
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
        End::PublisherSilent => log::info!(
            "rtsp: {peer} published nothing for {} s; closing{summary}",
            READ_TIMEOUT.as_secs()
        ),
        End::Replaced => {
            log::info!(
                "rtsp: {peer} was replaced by another publisher (or its path removed){summary}"
            )
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
            match frame(&buf[..]) {
                Framed::Message { message, consumed } => {
                    buf.advance(consumed);
                    match message {
                        Message::Request(req) => self.answer(req).await?,
                        Message::Data(data) => {
                            if self.record.active() {
                                self.record
                                    .on_interleaved(data.channel_id(), data.as_slice())
                            } else {
                                self.play.on_rtcp(data.as_slice())
                            }
                        }
                        Message::Response(_) => {} // Answers to nothing we asked: ignore.
                    }
                }
                Framed::Incomplete => return Ok(()),
                Framed::BodyTooLarge { cseq } => {
                    let refusal = Reply::new(StatusCode::RequestMessageBodyTooLarge);
                    self.send_now(refusal.to_bytes(cseq.as_deref())).await;
                    return Err(End::Garbage("a request body over 16 KiB"));
                }
                Framed::TooLong => {
                    self.send_now(Reply::new(StatusCode::BadRequest).to_bytes(None))
                        .await;
                    return Err(End::Garbage("a request line or head over 64 KiB"));
                }
                Framed::Malformed => {
                    self.send_now(Reply::new(StatusCode::BadRequest).to_bytes(None))
                        .await;
                    return Err(End::Garbage("a malformed request"));
                }
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
            self.send_now(Reply::new(StatusCode::BadRequest).to_bytes(None))
                .await;
            return Err(End::Garbage("a request without CSeq"));
        };
        let (reply, after) = if req.version() != Version::V1_0 {
            (Reply::new(StatusCode::RTSPVersionNotSupported), None)
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
            Some(after) => self
                .play
                .start_media(after, bytes)
                .await
                .map_err(|WriterGone| End::WriterGone)?,
        }
        Ok(())
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

    /// 401 (log in) or 403 (not allowed) when the connection's user may not do `action`
    /// on the request's path; counted with the failed logins.
    fn check_permission(&self, req: &Request<Vec<u8>>, action: Action) -> Option<Reply> {
        let path = path_of(req).map(|(p, _)| p).unwrap_or_default();
        match self.ctx.authorize(self.user.as_deref(), action, &path) {
            Verdict::Allowed => None,
            Verdict::LogIn => {
                self.ctx.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                let auth = self.ctx.auth();
                if auth.is_open() {
                    // No users at all: nobody may publish, and no login could help.
                    log::warn!(
                        "rtsp: {} may not {} {path}: publishing needs a user with the publish permission, and none is configured",
                        self.peer,
                        action.as_str()
                    );
                    return Some(Reply::new(StatusCode::Unauthorized));
                }
                Some(self.challenge(&auth, false))
            }
            Verdict::Forbidden => {
                self.ctx.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "rtsp: {} user `{}` may not {} {path}",
                    self.peer,
                    self.user.as_deref().unwrap_or("?"),
                    action.as_str()
                );
                Some(Reply::new(StatusCode::Forbidden))
            }
        }
    }

    fn challenge(&self, auth: &crate::rtsp::auth::Authenticator, stale: bool) -> Reply {
        let mut r = Reply::new(StatusCode::Unauthorized);
        for c in auth.challenges(stale) {
            r = r.header("WWW-Authenticate", c);
        }
        r
    }

    /// Authenticates, checks the user may do what the request asks on its path, then
    /// routes the request to its handler (a connection either plays or publishes).
    async fn dispatch(&mut self, req: &Request<Vec<u8>>) -> (Reply, Option<After>) {
        if let Some(r) = self.check_auth(req) {
            return (r, None);
        }
        let publishing = self.record.active();
        let action = match req.method() {
            RtspMethod::Describe | RtspMethod::Play => Some(Action::Read),
            RtspMethod::Setup if publishing => Some(Action::Publish),
            RtspMethod::Setup => Some(Action::Read),
            RtspMethod::Announce | RtspMethod::Record => Some(Action::Publish),
            _ => None,
        };
        if let Some(action) = action {
            if let Some(r) = self.check_permission(req, action) {
                return (r, None);
            }
        }
        if publishing {
            let reply = match req.method() {
                RtspMethod::Setup => self.record.setup(req),
                RtspMethod::Record => self.record.record(req),
                RtspMethod::Teardown => self.record.teardown(req),
                RtspMethod::GetParameter | RtspMethod::SetParameter | RtspMethod::Options => {
                    self.record.keep_alive(req)
                }
                RtspMethod::Announce => Reply::new(StatusCode::MethodNotValidInThisState),
                _ => Reply::new(StatusCode::MethodNotValidInThisState),
            };
            return (reply, None);
        }
        let method = match req.method() {
            RtspMethod::Options => {
                return (
                    Reply::new(StatusCode::Ok).header("Public", PUBLIC_METHODS),
                    None,
                )
            }
            RtspMethod::Describe => return (self.play.describe(req).await, None),
            RtspMethod::Setup => return (self.play.setup(req), None),
            RtspMethod::Play => session::Method::Play,
            RtspMethod::Pause => session::Method::Pause,
            RtspMethod::Teardown => session::Method::Teardown,
            RtspMethod::GetParameter | RtspMethod::SetParameter => session::Method::KeepAlive,
            RtspMethod::Announce => return (self.record.announce(req), None),
            RtspMethod::Record => return (Reply::new(StatusCode::MethodNotValidInThisState), None),
            RtspMethod::Redirect => {
                return (
                    Reply::new(StatusCode::MethodNotAllowed).header("Allow", PUBLIC_METHODS),
                    None,
                )
            }
            _ => {
                return (
                    Reply::new(StatusCode::NotImplemented).header("Public", PUBLIC_METHODS),
                    None,
                )
            }
        };
        self.play.session_request(req, method).await
    }
}
