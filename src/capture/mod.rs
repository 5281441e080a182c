//! Where raw pictures come from.
//!
//! Owns: the `FrameSource` trait every picture source implements (V4L2 camera, test pattern),
//! the `RawFrame` it yields, pixel format names and `CaptureError`. The test pattern lives in
//! `pattern.rs`. Does not own: pixel conversion or encoding (`encode`), nor the thread that
//! drives a source and restarts it (`pipeline`).

pub mod pattern;

use std::fmt;
use std::time::{Duration, SystemTime};

/// Pixel layouts a source can deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Planar 4:2:0: Y (stride = width), then U, then V (stride = width / 2).
    I420,
    /// Packed 4:2:2: Y0 U Y1 V.
    Yuyv,
    /// Packed 4:2:2: U Y0 V Y1.
    Uyvy,
    /// Semi-planar 4:2:0: Y plane, then interleaved U V plane.
    Nv12,
    /// One JPEG image per frame.
    Mjpeg,
    /// One H.264 access unit (Annex-B) per frame, from a camera that encodes.
    H264,
}

impl PixelFormat {
    /// Bytes of one tightly packed frame, for the raw formats; `None` for compressed ones.
    pub fn frame_len(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                Some(w * h + 2 * (w.div_ceil(2) * h.div_ceil(2)))
            }
            PixelFormat::Yuyv | PixelFormat::Uyvy => Some(w * h * 2),
            PixelFormat::Mjpeg | PixelFormat::H264 => None,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PixelFormat::I420 => "I420",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::H264 => "H264",
        };
        f.write_str(s)
    }
}

/// One captured picture. For I420: Y plane (stride = width) then U then V (stride width/2).
/// Packed and semi-planar formats are tightly packed too (no row padding).
#[derive(Debug)]
pub struct RawFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// Media time in 90 kHz ticks from the source start (monotonic).
    pub pts_90k: i64,
    /// Wall clock at capture.
    pub wall: SystemTime,
    /// Frame counter from the source; a gap means the source dropped frames.
    pub sequence: u64,
}

impl RawFrame {
    /// The Y, U and V planes of an I420 frame; `None` for other formats or a short buffer.
    pub fn i420_planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        if self.format != PixelFormat::I420 || self.width % 2 != 0 || self.height % 2 != 0 {
            return None;
        }
        let y_len = self.width as usize * self.height as usize;
        let c_len = y_len / 4;
        if self.data.len() < y_len + 2 * c_len {
            return None;
        }
        let (y, rest) = self.data.split_at(y_len);
        let (u, rest) = rest.split_at(c_len);
        Some((y, u, &rest[..c_len]))
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
            CaptureError::Open { device, error } => write!(f, "{device}: cannot open: {error}"),
            CaptureError::Stream { device, error } => {
                write!(f, "{device}: capture failed: {error}")
            }
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
            CaptureError::Open { error, .. } | CaptureError::Stream { error, .. } => Some(error),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(PixelFormat::I420.frame_len(4, 2), Some(12));
        assert_eq!(PixelFormat::Nv12.frame_len(4, 2), Some(12));
        assert_eq!(PixelFormat::Yuyv.frame_len(4, 2), Some(16));
        assert_eq!(PixelFormat::Mjpeg.frame_len(4, 2), None);
    }

    #[test]
    fn i420_planes_split() {
        let f = RawFrame {
            format: PixelFormat::I420,
            width: 4,
            height: 2,
            data: (0..12).collect(),
            pts_90k: 0,
            wall: SystemTime::UNIX_EPOCH,
            sequence: 0,
        };
        let (y, u, v) = f.i420_planes().expect("valid I420");
        assert_eq!((y.len(), u, v), (8, &[8, 9][..], &[10, 11][..]));
    }

    #[test]
    fn error_names_the_device() {
        let e = CaptureError::Open {
            device: "/dev/video0".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(e.to_string().starts_with("/dev/video0: cannot open"));
        assert_eq!(e.device(), "/dev/video0");
    }
}
