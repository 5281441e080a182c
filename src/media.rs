//! Media types shared by every stage: encoded frames, stream descriptions and media time.
//!
//! Owns: `EncodedFrame`, `StreamInfo`, the 90 kHz clock. Does not own: how frames are made
//! (capture, encode) or sent (rtsp, record).

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

/// RTP/H.264 media clock rate. Media time is counted in these ticks from the source start.
pub const CLOCK_RATE: u32 = 90_000;

/// Converts a frame index at `fps` frames per second to 90 kHz media time.
pub fn frame_pts_90k(index: u64, fps: u32) -> i64 {
    (index as i128 * CLOCK_RATE as i128 / fps.max(1) as i128) as i64
}

/// One encoded access unit (one picture) as it leaves the encoder or a passthrough camera.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// Presentation time in 90 kHz ticks; monotonic, from capture timestamps.
    pub pts_90k: i64,
    /// Wall clock at capture. Only for names, retention and latency measurement.
    pub wall: SystemTime,
    /// True when this access unit starts with SPS/PPS and an IDR slice.
    pub is_idr: bool,
    /// Annex-B byte stream (start codes included), exactly as the encoder wrote it.
    pub data: Bytes,
    /// NAL units without start codes, as ranges into `data`.
    pub nals: Vec<Range<usize>>,
}

impl EncodedFrame {
    /// Builds a frame from an Annex-B buffer, splitting its NAL units once.
    pub fn from_annexb(data: Bytes, pts_90k: i64, wall: SystemTime) -> Self {
        let nals = crate::h264::split_annexb(&data);
        let is_idr = nals
            .iter()
            .any(|r| crate::h264::nal_type(&data[r.clone()]) == Some(crate::h264::NAL_IDR));
        EncodedFrame {
            pts_90k,
            wall,
            is_idr,
            data,
            nals,
        }
    }

    /// Iterates over the NAL units (without start codes).
    pub fn nal_units(&self) -> impl Iterator<Item = &[u8]> {
        self.nals.iter().map(move |r| &self.data[r.clone()])
    }
}

/// What a reader needs to describe a stream before the first frame (SDP, MP4 init).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Sequence parameter set NAL unit, without start code.
    pub sps: Bytes,
    /// Picture parameter set NAL unit, without start code.
    pub pps: Bytes,
}

impl StreamInfo {
    /// True when a player can go on decoding across the change from `self` to `other`:
    /// same size and profile. A new level or other in-band SPS/PPS details (a bitrate
    /// change moves the level) arrive before the next IDR, as decoders expect them.
    pub fn same_picture_format(&self, other: &StreamInfo) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.sps.get(1..3) == other.sps.get(1..3)
    }

    /// `profile-level-id` for SDP: the three bytes after the SPS NAL header.
    pub fn profile_level_id(&self) -> [u8; 3] {
        match self.sps.get(1..4) {
            Some(b) => [b[0], b[1], b[2]],
            None => [0x42, 0xC0, 0x1F],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(w: u32, sps: &'static [u8]) -> StreamInfo {
        StreamInfo {
            width: w,
            height: 240,
            fps: 15,
            sps: Bytes::from_static(sps),
            pps: Bytes::from_static(&[0x68, 0xce]),
        }
    }

    #[test]
    fn a_new_level_is_the_same_picture_format_a_new_size_or_profile_is_not() {
        let base = info(320, &[0x67, 0x42, 0xc0, 0x0c, 0x8c]);
        assert!(base.same_picture_format(&info(320, &[0x67, 0x42, 0xc0, 0x14, 0x8d])));
        assert!(!base.same_picture_format(&info(640, &[0x67, 0x42, 0xc0, 0x0c, 0x8c])));
        assert!(!base.same_picture_format(&info(320, &[0x67, 0x4d, 0x40, 0x0c, 0x8c])));
    }
}
