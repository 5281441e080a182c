//! Where raw pictures come from.
//!
//! Owns: the `FrameSource` trait every picture source implements (V4L2 camera, test pattern),
//! the `RawFrame` it yields, pixel format names and `CaptureError`. The test pattern lives in
//! `pattern.rs`, the V4L2 camera in `v4l2.rs` (the only file naming the v4l crate), the pure
//! mode choice in `format.rs` and kernel timestamps/sequence numbers in `clock.rs`.
//! Does not own: pixel conversion or encoding (`encode`), nor the thread that drives a
//! source and restarts it (`pipeline`).

pub mod clock;
pub mod format;
pub mod pattern;
pub mod v4l2;

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
    /// Every format, in the order `--list-cameras` and the docs name them.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::H264,
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Mjpeg,
    ];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> &'static str {
        match self {
            PixelFormat::I420 => "YU12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Mjpeg => "MJPG",
            PixelFormat::H264 => "H264",
        }
    }

    /// The format for a V4L2 four-character code; `None` for formats Vigint cannot use.
    pub fn from_fourcc(fourcc: &str) -> Option<PixelFormat> {
        match fourcc {
            "YU12" => Some(PixelFormat::I420),
            "YUYV" => Some(PixelFormat::Yuyv),
            "UYVY" => Some(PixelFormat::Uyvy),
            "NV12" => Some(PixelFormat::Nv12),
            // Some UVC cameras call their MJPEG stream JPEG.
            "MJPG" | "JPEG" => Some(PixelFormat::Mjpeg),
            "H264" => Some(PixelFormat::H264),
            _ => None,
        }
    }

    /// A format named in the config: its fourcc or a common alias, any case.
    pub fn from_name(name: &str) -> Option<PixelFormat> {
        match name.to_ascii_uppercase().as_str() {
            "I420" | "YUV420" => Some(PixelFormat::I420),
            "MJPEG" => Some(PixelFormat::Mjpeg),
            other => PixelFormat::from_fourcc(other),
        }
    }

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
        if self.format != PixelFormat::I420
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
        {
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

    #[test]
    fn fourcc_names() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(PixelFormat::from_name(&f.fourcc().to_lowercase()), Some(f));
        }
        assert_eq!(PixelFormat::from_name("I420"), Some(PixelFormat::I420));
        assert_eq!(PixelFormat::from_name("mjpeg"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc("RGB3"), None);
        for name in crate::config::PIXEL_FORMAT_NAMES {
            assert!(PixelFormat::from_name(name).is_some(), "{name}");
        }
    }
}
