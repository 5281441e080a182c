//! Turning raw pictures into H.264.
//!
//! Owns: the `Encoder` trait, `EncoderSettings`, `EncodeError`, picking the stream description
//! (SPS/PPS, size) out of an IDR access unit, pure pixel conversion to I420 (`convert.rs`),
//! MJPEG decoding (`mjpeg.rs`, the only file naming zune-jpeg) and the openh264 software
//! encoder and decoder (`openh264.rs`, the only file naming the openh264 crate; the decoder
//! turns a group of pictures back into a picture for snapshots).
//! Does not own: capture, pacing or restarts (`pipeline`), nor distributing frames (`hub`).

pub mod convert;
pub mod mjpeg;
pub mod openh264;

use std::fmt;

use crate::media::EncodedFrame;
use crate::media::RawFrame;

pub use self::convert::ConvertError;
pub use self::openh264::{DecodedPicture, H264Decoder, OpenH264Encoder};

/// What to encode and how.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Frames between IDRs (the group of pictures); 0 leaves it to the encoder (only the
    /// first frame and requested ones are IDRs).
    pub idr_interval_frames: u32,
}

impl EncoderSettings {
    /// Checks the settings an encoder can work with.
    pub fn validate(&self) -> Result<(), EncodeError> {
        let invalid = |reason: String| Err(EncodeError::InvalidSettings { reason });
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
        {
            return invalid(format!(
                "size {}x{} must be non-zero and even",
                self.width, self.height
            ));
        }
        if self.width.max(self.height) > 3840 || self.width.min(self.height) > 2160 {
            return invalid(format!(
                "size {}x{} larger than 3840x2160",
                self.width, self.height
            ));
        }
        if !(1..=240).contains(&self.fps) {
            return invalid(format!("frame rate {} outside 1..=240", self.fps));
        }
        if !(10..=100_000).contains(&self.bitrate_kbps) {
            return invalid(format!(
                "bitrate {} kbit/s outside 10..=100000",
                self.bitrate_kbps
            ));
        }
        Ok(())
    }
}

/// Why a frame could not be encoded.
#[derive(Debug)]
pub enum EncodeError {
    /// The settings cannot be used (size, rate, bitrate).
    InvalidSettings { reason: String },
    /// The encoder library could not be created or configured.
    Init { reason: String },
    /// The frame does not match what the encoder was set up for.
    Input { sequence: u64, reason: String },
    /// The encoder library failed on a frame.
    Encode { sequence: u64, reason: String },
    /// The frame could not be converted to I420.
    Convert(ConvertError),
    /// An H.264 access unit (the `index`th of those given) could not be decoded.
    Decode { index: usize, reason: String },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidSettings { reason } => {
                write!(f, "invalid encoder settings: {reason}")
            }
            EncodeError::Init { reason } => write!(f, "encoder setup failed: {reason}"),
            EncodeError::Input { sequence, reason } => {
                write!(f, "frame {sequence} not encodable: {reason}")
            }
            EncodeError::Encode { sequence, reason } => {
                write!(f, "encoding frame {sequence} failed: {reason}")
            }
            EncodeError::Convert(e) => write!(f, "{e}"),
            EncodeError::Decode { index, reason } => {
                write!(f, "access unit {index} cannot be decoded: {reason}")
            }
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncodeError::Convert(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConvertError> for EncodeError {
    fn from(e: ConvertError) -> Self {
        EncodeError::Convert(e)
    }
}

/// An H.264 encoder for one fixed size and rate.
pub trait Encoder: Send {
    /// Encodes one I420 frame. force_idr: the next output must be an IDR (with SPS/PPS before it).
    /// `Ok(None)` means the encoder produced nothing for this frame (logged by the encoder).
    fn encode(
        &mut self,
        frame: &RawFrame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 640,
            height: 480,
            fps: 30,
            bitrate_kbps: 1000,
            idr_interval_frames: 60,
        }
    }

    #[test]
    fn validate_rejects_bad_settings() {
        assert!(settings().validate().is_ok());
        for s in [
            EncoderSettings {
                width: 641,
                ..settings()
            },
            EncoderSettings {
                height: 0,
                ..settings()
            },
            EncoderSettings {
                width: 4096,
                height: 2160,
                ..settings()
            },
            EncoderSettings {
                fps: 0,
                ..settings()
            },
            EncoderSettings {
                bitrate_kbps: 0,
                ..settings()
            },
        ] {
            let e = s.validate().expect_err("invalid");
            assert!(e.to_string().starts_with("invalid encoder settings"), "{e}");
        }
    }
}
