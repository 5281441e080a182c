//! The RTSP server (RFC 2326): listener, connections, sessions, SDP, RTP/RTCP, auth.
//!
//! Pure pieces (auth, rtp, rtcp, sdp, session, transport) have no I/O; `server`, `conn`,
//! `stream` and `udp` do the networking.

pub mod auth;
pub mod conn;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod session;
pub mod stream;
pub mod transport;
pub mod udp;
