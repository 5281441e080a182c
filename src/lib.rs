//! Vigint: a camera appliance in one binary.
//! Source (V4L2 camera or test pattern) -> H.264 -> per-path hub -> RTSP clients.

pub mod app;
pub mod auth;
pub mod board;
pub mod calendar;
pub mod config;
pub mod control;
pub mod encode;
pub mod fault;
pub mod firstboot;
#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod health;
pub mod http;
pub mod hub;
pub mod led;
pub mod live;
pub mod logger;
pub mod media;
pub mod mux;
pub mod naming;
pub mod notify;
pub mod record;
pub mod rtsp;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod supervisor;
#[cfg(test)]
mod test_util;
pub mod units;
