//! Media types shared by every stage: encoded frames, stream descriptions and media time.
//!
//! Owns: `RawFrame` and `PixelFormat` (pictures before encoding), `LatestPicture` (the last
//! picture an encoder took, handed over without a copy for snapshots), `EncodedFrame`,
//! `StreamInfo` (and reading it from an IDR access unit), the 90 kHz clock. Does not own:
//! how frames are made (source, encode) or sent (rtsp, record).

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::h264::{self, NAL_PPS, NAL_SPS};

/// RTP/H.264 media clock rate. Media time is counted in these ticks from the source start.
pub const CLOCK_RATE: u32 = 90_000;

/// Converts a frame index at `fps` frames per second to 90 kHz media time.
pub fn frame_pts_90k(index: u64, fps: u32) -> i64 {
    (index as i128 * CLOCK_RATE as i128 / fps.max(1) as i128) as i64
}

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

/// The last I420 picture a path's encoder took, for snapshots. The pipeline hands each
/// picture over by swapping buffers with the slot (`swap_in`): per frame one short lock and a
/// pointer swap, no copy, no conversion and, unless a snapshot still holds the previous
/// picture, no allocation. Readers take an `Arc` (`latest`) and convert it when asked.
#[derive(Default)]
pub struct LatestPicture {
    slot: Mutex<Option<(Arc<RawFrame>, Instant)>>,
}

impl LatestPicture {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<RawFrame>, Instant)>> {
        // Plain field writes under the lock: a poisoned lock is still consistent.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `data` (a tightly packed I420 picture described by `like`, whose own `data` is
    /// not used) the latest picture; `data` gets the previous picture's buffer back for reuse,
    /// or an empty one while a snapshot is still reading the previous picture.
    pub fn swap_in(&self, data: &mut Vec<u8>, like: &RawFrame) {
        let now = Instant::now();
        let mut slot = self.lock();
        if let Some((pic, at)) = slot.as_mut() {
            if let Some(p) = Arc::get_mut(pic) {
                std::mem::swap(&mut p.data, data);
                p.width = like.width;
                p.height = like.height;
                p.pts_90k = like.pts_90k;
                p.wall = like.wall;
                p.sequence = like.sequence;
                *at = now;
                return;
            }
        }
        let pic = RawFrame {
            format: PixelFormat::I420,
            width: like.width,
            height: like.height,
            data: std::mem::take(data),
            pts_90k: like.pts_90k,
            wall: like.wall,
            sequence: like.sequence,
        };
        *slot = Some((Arc::new(pic), now));
    }

    /// The latest picture and when it was handed over.
    pub fn latest(&self) -> Option<(Arc<RawFrame>, Instant)> {
        self.lock().clone()
    }

    /// Forgets the picture (the source stopped or changed size).
    pub fn clear(&self) {
        *self.lock() = None;
    }
}

/// One encoded access unit (one picture) as it leaves the encoder or a passthrough camera.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// Presentation time in 90 kHz ticks, from capture timestamps; frames come in decode
    /// order, so with B-frames it goes back and forth.
    pub pts_90k: i64,
    /// Decode time in 90 kHz ticks: rises with every frame; equal to `pts_90k` for streams
    /// without B-frames.
    pub dts_90k: i64,
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
    /// Builds a frame from an Annex-B buffer, splitting its NAL units once. Its decode
    /// time is its presentation time (`with_dts` for streams with B-frames).
    pub fn from_annexb(data: Bytes, pts_90k: i64, wall: SystemTime) -> Self {
        let nals = crate::h264::split_annexb(&data);
        let is_idr = nals
            .iter()
            .any(|r| crate::h264::nal_type(&data[r.clone()]) == Some(crate::h264::NAL_IDR));
        EncodedFrame {
            pts_90k,
            dts_90k: pts_90k,
            wall,
            is_idr,
            data,
            nals,
        }
    }

    /// The same frame with decode time `dts_90k`.
    pub fn with_dts(mut self, dts_90k: i64) -> Self {
        self.dts_90k = dts_90k;
        self
    }

    /// Moves the frame in media time by `ticks` (both its times).
    pub fn shifted(mut self, ticks: i64) -> Self {
        self.pts_90k += ticks;
        self.dts_90k += ticks;
        self
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

/// Picks the SPS and PPS NAL units out of an IDR access unit and reads the size from the SPS.
/// `None` if either is missing or the SPS cannot be parsed.
pub fn stream_info_from_idr(frame: &EncodedFrame, fps: u32) -> Option<StreamInfo> {
    let find = |t: u8| {
        frame
            .nals
            .iter()
            .find(|r| h264::nal_type(&frame.data[(*r).clone()]) == Some(t))
            .map(|r| frame.data.slice(r.clone()))
    };
    let (sps, pps) = (find(NAL_SPS)?, find(NAL_PPS)?);
    let parsed = h264::parse_sps(&sps).ok()?;
    Some(StreamInfo {
        width: parsed.width,
        height: parsed.height,
        fps,
        sps,
        pps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

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

    #[test]
    fn stream_info_needs_sps_and_pps() {
        use bytes::Bytes;
        use std::time::SystemTime;
        let sps = [
            0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x24, 0x80,
        ];
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&sps);
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80]);
        let idr_only = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        au.extend_from_slice(&idr_only);
        let f = EncodedFrame::from_annexb(Bytes::from(au), 0, SystemTime::UNIX_EPOCH);
        let info = stream_info_from_idr(&f, 25).expect("info");
        assert_eq!((info.width, info.height, info.fps), (1280, 720, 25));
        assert_eq!(&info.sps[..], &sps[..]);
        assert_eq!(&info.pps[..], &[0x68, 0xCE, 0x3C, 0x80]);
        let f =
            EncodedFrame::from_annexb(Bytes::copy_from_slice(&idr_only), 0, SystemTime::UNIX_EPOCH);
        assert_eq!(stream_info_from_idr(&f, 25), None);
    }

    #[test]
    fn latest_picture_swaps_buffers_without_copying() {
        let slot = LatestPicture::default();
        let like = RawFrame {
            format: PixelFormat::I420,
            width: 4,
            height: 2,
            data: Vec::new(),
            pts_90k: 7,
            wall: SystemTime::UNIX_EPOCH,
            sequence: 1,
        };
        let mut a = vec![1u8; 12];
        let a_ptr = a.as_ptr();
        slot.swap_in(&mut a, &like);
        assert!(a.is_empty(), "first picture: nothing to give back");
        let (pic, _) = slot.latest().expect("picture");
        assert_eq!((pic.data.as_ptr(), pic.sequence), (a_ptr, 1));
        // While a snapshot holds picture 1, picture 2 goes into a new slot entry.
        let mut b = vec![2u8; 12];
        slot.swap_in(
            &mut b,
            &RawFrame {
                sequence: 2,
                ..like.clone_meta()
            },
        );
        assert!(b.is_empty());
        drop(pic);
        // Nobody holds picture 2: picture 3 swaps with it, and its buffer comes back.
        let (p2, _) = slot.latest().expect("picture");
        let b_ptr = p2.data.as_ptr();
        drop(p2);
        let mut c = vec![3u8; 12];
        let c_ptr = c.as_ptr();
        slot.swap_in(
            &mut c,
            &RawFrame {
                sequence: 3,
                ..like.clone_meta()
            },
        );
        assert_eq!(c.as_ptr(), b_ptr, "the previous buffer is reused");
        let (p3, _) = slot.latest().expect("picture");
        assert_eq!((p3.data.as_ptr(), p3.sequence, p3.data[0]), (c_ptr, 3, 3));
        slot.clear();
        assert!(slot.latest().is_none());
    }

    impl RawFrame {
        fn clone_meta(&self) -> RawFrame {
            RawFrame {
                data: Vec::new(),
                ..*self
            }
        }
    }

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
