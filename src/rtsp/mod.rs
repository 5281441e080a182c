//! The RTSP server (RFC 2326): listener, connections, sessions, SDP, RTP/RTCP, auth.
//!
//! Pure pieces (auth, depacketize, framing, reply, rtp, rtcp, sdp, session, transport) have
//! no I/O. `server` accepts; `conn` reads one connection's requests (`framing` says where
//! each ends), authenticates and routes them; `play` answers a viewer's requests and owns
//! its session (no socket: testable with a channel); `record` a publisher's;
//! `writer` puts answers and media on the socket; `stream` packetises a path once for every
//! viewer; `udp` is the shared RTP/RTCP socket pair.

pub mod auth;
pub mod conn;
pub mod depacketize;
pub mod framing;
pub(crate) mod play;
pub(crate) mod record;
pub mod reply;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod session;
pub mod stream;
pub mod transport;
pub mod udp;
mod writer;
