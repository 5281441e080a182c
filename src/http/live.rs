//! Live video over WebSocket: the browser live view (`GET /api/v1/paths/{name}/live`,
//! fMP4 for Media Source Extensions) and the stream-viewer API's socket
//! (`GET /ws/stream?id={path}[&format=fmp4]`, MPEG-TS by default, with JSON status and error
//! messages and `start`/`stop`/`reconnect` commands).
//!
//! Owns: the socket loop: pulling a viewer's feed and writing its messages, each within
//! `SEND_DEADLINE` (a viewer whose socket takes longer for one message is closed: it is
//! stuck, and the live reader behind the feed has already dropped frames for it), counting
//! the bytes sent, and the stream-viewer protocol's messages. Does not own: muxing, lag
//! and the viewer limits (the live reader behind `control::LiveViews`), who may watch
//! (`routes`, `mod.rs`), the handshake and the socket type (`ws`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};

use crate::config::masked_source;
use crate::control::{Feed, FeedError, FeedFormat, FeedMessage, LiveViews};
use crate::http::error::ApiError;
use crate::http::message::{Request, Response};
use crate::http::ws::{self, CloseCode, CloseFrame, Message, WebSocket};

/// What a live link's token is minted for, in place of a recording's file name (no file
/// name the API accepts contains a NUL, so a recording's play link never opens live video
/// and a live link never opens a recording).
pub const LINK_SCOPE: &str = "\0live";

/// The scope of a viewer's live links: `LINK_SCOPE` bound to the RTSP user's name and
/// password (the name's length first: no two users share an encoding), so that a link
/// ends with a changed password. Only ever hashed into a token's MAC.
pub fn viewer_link_scope(user: &crate::config::User) -> String {
    format!(
        "{LINK_SCOPE}\0{}:{}{}",
        user.name.len(),
        user.name,
        user.password
    )
}

/// The longest one message may take to leave: past it the viewer is stuck and closed.
pub const SEND_DEADLINE: Duration = Duration::from_secs(10);

/// How long the stream-viewer socket waits for the first picture before saying `TIMEOUT`
/// (a source that is starting, or an on-demand source that does not come up).
pub const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(15);

/// `GET /api/v1/paths/{name}/live`: the path's live fMP4. The feed is opened before the
/// upgrade, so that refusals are plain HTTP answers (404, 503).
pub fn live_view(
    live: &Arc<dyn LiveViews>,
    req: &Request,
    path: &str,
) -> Result<Response, ApiError> {
    let feed = live
        .live(path, FeedFormat::Fmp4, req.peer.ip())
        .map_err(|e| match e {
            FeedError::NotFound => {
                ApiError::not_found("unknown_path", format!("no path named `{path}`"))
            }
            FeedError::Limit(message) => ApiError::Unavailable {
                code: "too_many_viewers",
                message,
                retry_after_s: Some(5),
            },
            FeedError::BadSource(message) => ApiError::bad("bad_source", message),
        })?;
    let peer = req.peer.ip();
    Ok(ws::accept(req, move |socket| async move {
        Viewer::new(socket, peer, false).plain(feed).await;
    }))
}

/// What the stream-viewer socket was asked for (`/ws/stream?...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// The path (`id`); for a `url` request, the URL as it may be shown (password masked).
    pub id: String,
    /// `url=`: another RTSP server's stream, relayed unsaved (the admin's only).
    pub url: Option<String>,
    pub format: FeedFormat,
    /// `messages=none`: media only, no JSON text (players that take the socket as a plain
    /// byte stream, such as mpegts.js's own loader, stop at a text message); a refusal is
    /// then the close frame's reason.
    pub media_only: bool,
}

/// Why the stream-viewer socket refuses, said in its own protocol after the upgrade
/// (`{"type":"error","code":"AUTH",...}`), as its clients expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// `GET /ws/stream?id=...`: upgrades, then speaks the stream-viewer protocol. `asked` is
/// the request with the access decision for it (checked by the caller: a refusal is sent
/// as an `AUTH` error over the socket); `media_only` is the request's `messages=none`,
/// known even when it is refused.
pub fn stream_viewer(
    live: Arc<dyn LiveViews>,
    req: &Request,
    asked: Result<StreamRequest, Refusal>,
    media_only: bool,
) -> Response {
    let peer = req.peer.ip();
    ws::accept(req, move |socket| async move {
        Viewer::new(socket, peer, media_only)
            .stream_viewer(live, asked)
            .await;
    })
}

/// Reads `?id=&format=` (or `?url=&format=`) of `/ws/stream`. The error is for the socket
/// (code `NOT_FOUND` for neither; `BAD_REQUEST` for both or a bad format). Whether the
/// asker may have a `url` is the caller's to check.
pub fn stream_request(query: &str) -> Result<StreamRequest, Refusal> {
    let mut id = None;
    let mut url = None;
    let mut media_only = false;
    let mut format = FeedFormat::MpegTs;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = crate::http::routes::percent_decode(v).unwrap_or_default();
        match k {
            "id" => id = Some(v),
            "format" => {
                format = match v.as_str() {
                    "fmp4" | "mp4" => FeedFormat::Fmp4,
                    "mpegts" | "ts" => FeedFormat::MpegTs,
                    other => {
                        return Err(Refusal {
                            code: "BAD_REQUEST",
                            message: format!("format {other:?}: mpegts or fmp4"),
                        })
                    }
                }
            }
            "url" => url = Some(v),
            "messages" => {
                media_only = match v.as_str() {
                    "none" => true,
                    "all" => false,
                    other => {
                        return Err(Refusal {
                            code: "BAD_REQUEST",
                            message: format!("messages {other:?}: all or none"),
                        })
                    }
                }
            }
            _ => {}
        }
    }
    match (id.filter(|i| !i.is_empty()), url.filter(|u| !u.is_empty())) {
        (Some(id), None) => Ok(StreamRequest {
            id,
            url: None,
            format,
            media_only,
        }),
        (None, Some(url)) => Ok(StreamRequest {
            id: masked_source(&url),
            url: Some(url),
            format,
            media_only,
        }),
        (Some(_), Some(_)) => Err(Refusal {
            code: "BAD_REQUEST",
            message: "id= or url=, not both".into(),
        }),
        (None, None) => Err(Refusal {
            code: "NOT_FOUND",
            message: "which stream? /ws/stream?id=PATH (or, for the admin, url=rtsp://...)".into(),
        }),
    }
}

/// A command from a stream-viewer client.
#[derive(serde::Deserialize)]
struct Command {
    action: String,
}

/// One viewer's socket.
struct Viewer {
    socket: WebSocket,
    peer: IpAddr,
    /// No JSON text: statuses are left out, an error becomes the close frame's reason.
    media_only: bool,
    /// The last error of a media-only viewer, said when the socket closes.
    close_reason: Option<String>,
}

/// What happened while waiting for the next thing to do.
enum Event {
    Media(Option<FeedMessage>),
    Client(Option<Message>),
}

impl Viewer {
    fn new(socket: WebSocket, peer: IpAddr, media_only: bool) -> Viewer {
        Viewer {
            socket,
            peer,
            media_only,
            close_reason: None,
        }
    }

    /// Sends `m`; false when the socket failed or took over `SEND_DEADLINE`.
    async fn send(&mut self, m: Message) -> bool {
        match tokio::time::timeout(SEND_DEADLINE, self.socket.send(m)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                log::info!(
                    "live: a viewer at {} took over {} s for one message; closed",
                    self.peer,
                    SEND_DEADLINE.as_secs()
                );
                false
            }
        }
    }

    /// Sends a feed's message; the bytes sent, or `None` when the socket failed.
    async fn send_media(&mut self, m: FeedMessage) -> Option<usize> {
        let (message, len) = match m {
            FeedMessage::Text(t) => {
                let n = t.len();
                (Message::text(t), n)
            }
            FeedMessage::Binary(b) => {
                let n = b.len();
                (Message::Binary(b), n)
            }
        };
        self.send(message).await.then_some(len)
    }

    async fn send_json(&mut self, v: serde_json::Value) -> bool {
        self.send(Message::text(v.to_string())).await
    }

    /// Closes the socket; a media-only viewer's last error is the close frame's reason.
    async fn close(&mut self) {
        let frame = self.close_reason.take().map(|reason| CloseFrame {
            code: CloseCode::Policy,
            reason: reason.into(),
        });
        let _ = tokio::time::timeout(SEND_DEADLINE, self.socket.close(frame)).await;
    }

    /// The next media message of `feed` (none: waits for the client only) or the next
    /// message from the client. Reading the client keeps pings answered and notices a
    /// close.
    async fn next_event(&mut self, feed: Option<&mut Box<dyn Feed>>) -> Event {
        match feed {
            Some(feed) => tokio::select! {
                m = feed.next() => Event::Media(m),
                c = self.socket.next() => Event::Client(c.and_then(Result::ok)),
            },
            None => Event::Client(self.socket.next().await.and_then(Result::ok)),
        }
    }

    /// The live view: the feed's messages as they come; nothing is read from the client
    /// but its close and pings.
    async fn plain(&mut self, mut feed: Box<dyn Feed>) {
        loop {
            match self.next_event(Some(&mut feed)).await {
                Event::Media(Some(m)) => match self.send_media(m).await {
                    Some(n) => feed.count_sent(n),
                    None => return,
                },
                Event::Media(None) => {
                    // The path stopped or restarted: the page reconnects.
                    self.close().await;
                    return;
                }
                Event::Client(None | Some(Message::Close(_))) => return,
                Event::Client(Some(_)) => {}
            }
        }
    }

    async fn status(&mut self, phase: &str) -> bool {
        if self.media_only {
            return true;
        }
        self.send_json(serde_json::json!({"type": "status", "phase": phase}))
            .await
    }

    async fn error(&mut self, code: &str, message: &str) -> bool {
        if self.media_only {
            self.close_reason = Some(close_reason(code, message));
            return true;
        }
        self.send_json(serde_json::json!({"type": "error", "code": code, "message": message}))
            .await
    }

    /// The stream-viewer protocol: `connecting`, then `connected` once the feed is open,
    /// `playing` at its first media (the codec message included), `stopped` when it ends or is stopped; errors as
    /// `{"type":"error","code":...}`; `start`, `stop` and `reconnect` from the client.
    async fn stream_viewer(
        &mut self,
        live: Arc<dyn LiveViews>,
        asked: Result<StreamRequest, Refusal>,
    ) {
        let asked = match asked {
            Ok(a) => a,
            Err(r) => {
                let _ = self.error(r.code, &r.message).await;
                self.close().await;
                return;
            }
        };
        let mut feed: Option<Box<dyn Feed>>;
        let mut playing = false;
        if !self.status("connecting").await {
            return;
        }
        match open(&*live, &asked, self.peer) {
            Ok(f) => feed = Some(f),
            Err((code, m)) => {
                let _ = self.error(code, &m).await;
                self.close().await;
                return;
            }
        }
        if !self.status("connected").await {
            return;
        }
        let mut waiting_since = Some(tokio::time::Instant::now());
        loop {
            let deadline = waiting_since.map(|t| t + FIRST_PICTURE_WAIT);
            let event = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.next_event(feed.as_mut())).await {
                    Ok(e) => e,
                    Err(_) => {
                        waiting_since = None;
                        if !self
                            .error(
                                "TIMEOUT",
                                &format!(
                                    "no picture from {} within {} s; still waiting",
                                    asked.id,
                                    FIRST_PICTURE_WAIT.as_secs()
                                ),
                            )
                            .await
                        {
                            return;
                        }
                        continue;
                    }
                },
                None => self.next_event(feed.as_mut()).await,
            };
            match event {
                Event::Media(Some(FeedMessage::Text(_))) if self.media_only => {
                    // fMP4's codec message: text, which a media-only client does not read.
                }
                Event::Media(Some(m)) => {
                    if !playing {
                        playing = true;
                        waiting_since = None;
                        self.close_reason = None;
                        if !self.status("playing").await {
                            return;
                        }
                    }
                    match self.send_media(m).await {
                        Some(n) => {
                            if let Some(f) = &feed {
                                f.count_sent(n);
                            }
                        }
                        None => return,
                    }
                }
                Event::Media(None) => {
                    feed = None;
                    playing = false;
                    waiting_since = None;
                    if !self.status("stopped").await {
                        return;
                    }
                }
                Event::Client(None | Some(Message::Close(_))) => return,
                Event::Client(Some(Message::Text(t))) => {
                    let action = serde_json::from_str::<Command>(t.as_str()).map(|c| c.action);
                    match action.as_deref() {
                        Ok("stop") => {
                            feed = None;
                            playing = false;
                            waiting_since = None;
                            if !self.status("stopped").await {
                                return;
                            }
                        }
                        Ok(a @ ("start" | "reconnect")) => {
                            if a == "start" && feed.is_some() {
                                continue; // Already playing: nothing to do.
                            }
                            feed = None;
                            playing = false;
                            if !self.status("connecting").await {
                                return;
                            }
                            match open(&*live, &asked, self.peer) {
                                Ok(f) => feed = Some(f),
                                Err((code, m)) => {
                                    if !self.error(code, &m).await {
                                        return;
                                    }
                                    continue;
                                }
                            }
                            waiting_since = Some(tokio::time::Instant::now());
                            if !self.status("connected").await {
                                return;
                            }
                        }
                        _ => {
                            let m = "send {\"action\":\"start\"}, \"stop\" or \"reconnect\"";
                            if !self.error("BAD_REQUEST", m).await {
                                return;
                            }
                        }
                    }
                }
                Event::Client(Some(_)) => {}
            }
        }
    }
}

/// `CODE: message` within a close frame's 123 bytes (cut at a character).
fn close_reason(code: &str, message: &str) -> String {
    let mut reason = format!("{code}: {message}");
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// Opens `asked`'s feed for `peer`; the error is the stream-viewer protocol's code and
/// message.
fn open(
    live: &dyn LiveViews,
    asked: &StreamRequest,
    peer: IpAddr,
) -> Result<Box<dyn Feed>, (&'static str, String)> {
    let feed = match &asked.url {
        Some(url) => live.live_url(url, asked.format, peer),
        None => live.live(&asked.id, asked.format, peer),
    };
    feed.map_err(|e| match e {
        FeedError::NotFound => ("NOT_FOUND", format!("no stream {}", asked.id)),
        FeedError::Limit(m) => ("LIMIT", m),
        FeedError::BadSource(m) => ("BAD_REQUEST", m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_requests() {
        assert_eq!(
            stream_request("id=cam"),
            Ok(StreamRequest {
                id: "cam".into(),
                url: None,
                format: FeedFormat::MpegTs,
                media_only: false,
            })
        );
        assert!(stream_request("id=cam&messages=none").unwrap().media_only);
        assert!(!stream_request("id=cam&messages=all").unwrap().media_only);
        assert_eq!(
            stream_request("id=cam&messages=some").unwrap_err().code,
            "BAD_REQUEST"
        );
        assert_eq!(close_reason("AUTH", "no").as_str(), "AUTH: no");
        let long = close_reason("LIMIT", &"é".repeat(100));
        assert!(long.len() <= 123 && long.starts_with("LIMIT: é"), "{long}");
        assert_eq!(
            stream_request("format=fmp4&id=door%20cam").map(|r| (r.id, r.format)),
            Ok(("door cam".to_string(), FeedFormat::Fmp4))
        );
        assert_eq!(stream_request("").unwrap_err().code, "NOT_FOUND");
        assert_eq!(stream_request("id=").unwrap_err().code, "NOT_FOUND");
        assert_eq!(
            stream_request("id=a&format=flv").unwrap_err().code,
            "BAD_REQUEST"
        );
        assert_eq!(
            stream_request("url=rtsp%3A%2F%2Fx&id=a").unwrap_err().code,
            "BAD_REQUEST"
        );
        // A URL: shown with its password masked.
        let relay =
            stream_request("url=rtsp%3A%2F%2Fu%3Asecret%40cam.lan%2Fs1&format=fmp4").unwrap();
        assert_eq!(relay.url.as_deref(), Some("rtsp://u:secret@cam.lan/s1"));
        assert_eq!(relay.id, "rtsp://u:***@cam.lan/s1");
        assert_eq!(relay.format, FeedFormat::Fmp4);
    }
}
