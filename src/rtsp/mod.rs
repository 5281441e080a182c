//! RTSP server side: pure building blocks (RTP packetising, RTCP, SDP, authentication).
//!
//! Owns: everything RTSP clients see on the wire. The modules declared here are I/O-free;
//! the listener, connection framing and session state machine build on them.

pub mod auth;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
