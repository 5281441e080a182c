//! Everything that feeds a path's hub.
//!
//! Owns: the `FrameSource` trait every raw picture source implements (V4L2 camera, test
//! pattern) and `CaptureError`; the test pattern in `pattern.rs`, the V4L2 camera in
//! `v4l2.rs` (the only file naming the v4l crate), the pure mode choice in `format.rs`,
//! kernel timestamps and sequence numbers in `clock.rs`; the supervised capture + encode
//! thread in `pipeline.rs` (with its counters and retry policy in `stats.rs`); and `factory`, which
//! turns a path's `SourceSpec` into the source its pipeline opens.
//! Does not own: the frame types (`media`), pixel conversion or encoding (`encode`), the
//! path's hub (`hub`), nor what readers do with the frames.

pub mod clock;
pub mod file;
pub mod format;
pub mod intake;
pub mod pattern;
pub mod pipeline;
pub mod publisher;
pub mod relay;
pub mod stats;
pub mod v4l2;

use std::fmt;
use std::time::Duration;

use crate::config::{PathConfig, SourceSpec};
use crate::encode::EncoderSettings;
use crate::media::{EncodedFrame, PixelFormat, RawFrame};
use format::ModeRequest;
use pattern::TestPattern;
use pipeline::SourceFactory;
use v4l2::V4l2Source;

/// What an OS error from a camera means for an operator (`None` when errno says it plainly).
pub fn errno_meaning(e: &std::io::Error) -> Option<&'static str> {
    match e.raw_os_error()? {
        libc::ENODEV | libc::ENXIO => Some("camera unplugged"),
        libc::EIO => Some("driver I/O error"),
        libc::ENOENT => Some("no such device node"),
        libc::EBUSY => Some("camera busy (another program may be using it)"),
        libc::EACCES | libc::EPERM => Some("permission denied (is the user in group video?)"),
        libc::EINVAL => Some("the driver rejected the request"),
        libc::ENOMEM | libc::ENOSPC => Some("the driver is out of buffer memory"),
        libc::EPIPE => Some("the camera stopped streaming"),
        libc::ENOTTY => Some("not a V4L2 device"),
        _ => None,
    }
}

/// `meaning (error)` or just the error.
fn explain(e: &std::io::Error) -> String {
    match errno_meaning(e) {
        Some(m) => format!("{m} ({e})"),
        None => e.to_string(),
    }
}

/// Why a source could not deliver a frame. Each variant names the source so an operator can
/// find it (device path or "test pattern").
#[derive(Debug)]
pub enum CaptureError {
    /// The requested settings cannot be produced by this source (size, rate, format).
    Unsupported { device: String, reason: String },
    /// Opening or configuring the device failed.
    Open {
        device: String,
        error: std::io::Error,
    },
    /// The device failed while streaming (it may have been unplugged).
    Stream {
        device: String,
        error: std::io::Error,
    },
    /// One device operation (an ioctl such as VIDIOC_STREAMON) failed.
    Device {
        device: String,
        op: &'static str,
        error: std::io::Error,
    },
    /// The driver marked too many buffers in a row as failed.
    Corrupt { device: String, buffers: u32 },
    /// No frame arrived in time.
    Timeout { device: String, waited: Duration },
    /// The source ended (end of file, device gone for good).
    Ended { device: String },
}

impl CaptureError {
    /// The device path or source name this error is about.
    pub fn device(&self) -> &str {
        match self {
            CaptureError::Unsupported { device, .. }
            | CaptureError::Open { device, .. }
            | CaptureError::Stream { device, .. }
            | CaptureError::Device { device, .. }
            | CaptureError::Corrupt { device, .. }
            | CaptureError::Timeout { device, .. }
            | CaptureError::Ended { device } => device,
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Unsupported { device, reason } => {
                write!(f, "{device}: unsupported settings: {reason}")
            }
            CaptureError::Open { device, error } => {
                write!(f, "{device}: cannot open: {}", explain(error))
            }
            CaptureError::Stream { device, error } => {
                write!(f, "{device}: capture failed: {}", explain(error))
            }
            CaptureError::Device { device, op, error } => {
                write!(f, "{device}: {op} failed: {}", explain(error))
            }
            CaptureError::Corrupt { device, buffers } => write!(
                f,
                "{device}: driver marked {buffers} buffers in a row as failed"
            ),
            CaptureError::Timeout { device, waited } => {
                write!(f, "{device}: no frame for {} ms", waited.as_millis())
            }
            CaptureError::Ended { device } => write!(f, "{device}: source ended"),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Open { error, .. }
            | CaptureError::Stream { error, .. }
            | CaptureError::Device { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A source of raw pictures at a fixed size and rate.
pub trait FrameSource: Send {
    /// Human-readable description for logs ("test pattern 1280x720@30", "/dev/video0 YUYV ...").
    fn describe(&self) -> String;
    /// Actual picture size (what the device agreed to, not what was asked for).
    fn size(&self) -> (u32, u32);
    /// Actual frame rate.
    fn fps(&self) -> u32;
    /// Blocks until the next frame is due/available.
    fn next_frame(&mut self) -> Result<RawFrame, CaptureError>;
    /// Gives a frame's buffer back so the next `next_frame` can reuse it instead of allocating.
    fn recycle(&mut self, frame: RawFrame) {
        drop(frame);
    }
    /// The format frames arrive in (what the pipeline must convert, decode or pass through).
    fn format(&self) -> PixelFormat {
        PixelFormat::I420
    }
    /// Exact frame rate when it is not a whole number (12.5 fps); shown in logs.
    fn rate_text(&self) -> String {
        self.fps().to_string()
    }
    /// The camera's device path; `None` for sources that are not cameras.
    fn device(&self) -> Option<&str> {
        None
    }
    /// Frames the source lost so far (sequence gaps, buffers the driver marked as failed).
    fn dropped_frames(&self) -> u64 {
        0
    }
    /// Asks a source that encodes (an H.264 camera) for a key frame soon.
    fn request_keyframe(&mut self) {}
}

/// Builds the frame source factory for a path. `auto` is resolved here, once: the first
/// capture-capable camera, or the test pattern (logged loudly) when there is none at start.
/// A camera that vanishes later is retried by the pipeline, never silently replaced.
pub fn factory(name: &str, cfg: &PathConfig) -> SourceFactory {
    let (w, h, fps) = cfg.geometry();
    // Validated before we get here.
    let spec = cfg.source_spec().unwrap_or(SourceSpec::Auto);
    let spec = match spec {
        SourceSpec::Auto => match v4l2::first_camera() {
            Some(dev) => {
                log::info!("path {name}: source auto: using camera {}", dev.display());
                SourceSpec::Device(dev)
            }
            None => {
                log::warn!(
                    "path {name}: source auto: NO CAMERA FOUND, serving the test pattern ({w}x{h}@{fps}) instead"
                );
                SourceSpec::TestPattern { size: None }
            }
        },
        other => other,
    };
    match spec {
        SourceSpec::Device(dev) => {
            let req = ModeRequest {
                width: w,
                height: h,
                fps,
                pixel_format: cfg.pixel_format.as_deref().and_then(PixelFormat::from_name),
            };
            Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
                Ok(Box::new(V4l2Source::open(&dev, &req)?))
            })
        }
        _ => Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
            Ok(Box::new(TestPattern::new(w, h, fps)?))
        }),
    }
}

pub fn encoder_settings(cfg: &PathConfig) -> EncoderSettings {
    let (width, height, fps) = cfg.geometry();
    EncoderSettings {
        width,
        height,
        fps,
        bitrate_kbps: cfg.bitrate(),
        idr_interval_frames: cfg.idr_interval_frames(),
    }
}

/// An IDR access unit from a source that sends SPS/PPS only now and then (a camera, a
/// publisher), made
/// self-contained: the hub hands its cached key frame to every new reader, which needs
/// the parameter sets in front of it. Frames that have them, or are not IDRs, pass as they are.
pub fn with_parameter_sets(frame: EncodedFrame, sps: &[u8], pps: &[u8]) -> EncodedFrame {
    let has = |t: u8| {
        frame
            .nal_units()
            .any(|n| crate::h264::nal_type(n) == Some(t))
    };
    if !frame.is_idr || (has(crate::h264::NAL_SPS) && has(crate::h264::NAL_PPS)) {
        return frame;
    }
    let mut data = Vec::with_capacity(frame.data.len() + sps.len() + pps.len() + 8);
    for nal in [sps, pps] {
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(nal);
    }
    data.extend_from_slice(&frame.data);
    EncodedFrame::from_annexb(bytes::Bytes::from(data), frame.pts_90k, frame.wall)
        .with_dts(frame.dts_90k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_device() {
        let e = CaptureError::Open {
            device: "/dev/video0".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(e.to_string().starts_with("/dev/video0: cannot open"));
        assert_eq!(e.device(), "/dev/video0");
    }

    #[test]
    fn errors_say_what_errno_means() {
        let e = CaptureError::Device {
            device: "/dev/video1".into(),
            op: "VIDIOC_DQBUF",
            error: std::io::Error::from_raw_os_error(libc::ENODEV),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("/dev/video1: VIDIOC_DQBUF failed: camera unplugged ("),
            "{text}"
        );
        let e = CaptureError::Stream {
            device: "/dev/video1".into(),
            error: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(e.to_string().contains("driver I/O error"), "{e}");
    }
}
