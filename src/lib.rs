//! Vigint: a camera appliance in one binary.
//! Source (V4L2 camera or test pattern) -> H.264 -> per-path hub -> RTSP clients.

pub mod capture;
pub mod encode;
pub mod h264;
pub mod hub;
pub mod media;
pub mod pipeline;
