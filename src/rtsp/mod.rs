//! The RTSP server (RFC 2326): listener, connections, sessions, SDP, RTP/RTCP, auth.
//!
//! Pure pieces (auth, reply, rtp, rtcp, sdp, session, transport) have no I/O. `server`
//! accepts; `conn` frames one connection's requests, authenticates and routes them; `play`
//! answers a viewer's requests and owns its session (no socket: testable with a channel);
//! `writer` puts answers and media on the socket; `stream` packetises a path once for every
//! viewer; `udp` is the shared RTP/RTCP socket pair.

pub mod auth;
pub mod conn;
pub mod depacketize;
mod play;
mod record;
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
