//! The openh264 software encoder (the only file that names the openh264 crate).
//!
//! Owns: configuring openh264 for a camera stream (Baseline profile, bitrate rate control,
//! no skipped frames, SPS/PPS before every IDR, constant parameter set ids so the stream
//! description stays the same across IDRs, one thread) and choosing the H.264 level; and
//! `H264Decoder`, which decodes a group of pictures to its latest picture for snapshots.
//! Under `#[cfg(test)]` it also exports a small decoder helper for tests elsewhere.

use ::openh264::decoder::{DecodeOptions, Decoder as OpenH264Decoder, DecoderConfig, Flush};
use ::openh264::encoder::{
    BitRate, Encoder as H264Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType,
};
use ::openh264::formats::{YUVSlices, YUVSource};
use ::openh264::{OpenH264API, Timestamp};
use bytes::Bytes;

use super::{EncodeError, Encoder, EncoderSettings};
use crate::media::EncodedFrame;
use crate::media::{PixelFormat, RawFrame};

/// H.264 level limits (Table A-1): level_idc, max macroblocks per second, max frame size in
/// macroblocks, max bitrate (kbit/s, Baseline).
const LEVELS: [(u8, u64, u64, u64); 16] = [
    (10, 1_485, 99, 64),
    (11, 3_000, 396, 192),
    (12, 6_000, 396, 384),
    (13, 11_880, 396, 768),
    (20, 11_880, 396, 2_000),
    (21, 19_800, 792, 4_000),
    (22, 20_250, 1_620, 4_000),
    (30, 40_500, 1_620, 10_000),
    (31, 108_000, 3_600, 14_000),
    (32, 216_000, 5_120, 20_000),
    (40, 245_760, 8_192, 20_000),
    (41, 245_760, 8_192, 50_000),
    (42, 522_240, 8_704, 50_000),
    (50, 589_824, 22_080, 135_000),
    (51, 983_040, 36_864, 240_000),
    (52, 2_073_600, 36_864, 240_000),
];

/// The lowest level (as level_idc, e.g. 31 for 3.1) that allows this size, rate and bitrate.
pub fn level_idc_for(settings: &EncoderSettings) -> u8 {
    let (mbw, mbh) = (
        settings.width.div_ceil(16) as u64,
        settings.height.div_ceil(16) as u64,
    );
    let fs = mbw * mbh;
    let mbps = fs * settings.fps as u64;
    LEVELS
        .iter()
        .find(|&&(_, max_mbps, max_fs, max_br)| {
            // A side may not exceed sqrt(8 * MaxFS) macroblocks (A.3.1).
            let side = ((8 * max_fs) as f64).sqrt() as u64;
            fs <= max_fs
                && mbw <= side
                && mbh <= side
                && mbps <= max_mbps
                && settings.bitrate_kbps as u64 <= max_br
        })
        .map_or(52, |l| l.0)
}

fn level(idc: u8) -> Level {
    match idc {
        10 => Level::Level_1_0,
        11 => Level::Level_1_1,
        12 => Level::Level_1_2,
        13 => Level::Level_1_3,
        20 => Level::Level_2_0,
        21 => Level::Level_2_1,
        22 => Level::Level_2_2,
        30 => Level::Level_3_0,
        31 => Level::Level_3_1,
        32 => Level::Level_3_2,
        40 => Level::Level_4_0,
        41 => Level::Level_4_1,
        42 => Level::Level_4_2,
        50 => Level::Level_5_0,
        51 => Level::Level_5_1,
        _ => Level::Level_5_2,
    }
}

/// openh264 as an `Encoder` for one fixed size and rate.
pub struct OpenH264Encoder {
    inner: H264Encoder,
    settings: EncoderSettings,
    /// Frames for which openh264 returned no bitstream (should stay 0: skipping is off).
    empty_outputs: u64,
}

impl OpenH264Encoder {
    pub fn new(settings: &EncoderSettings) -> Result<Self, EncodeError> {
        settings.validate()?;
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(level(level_idc_for(settings)))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_kbps * 1000))
            .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
            // A skipped frame is a hole in every reader's stream and recording.
            .skip_frames(false)
            // Same SPS/PPS ids at every IDR: the stream description (SDP, MP4 init) stays valid.
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.idr_interval_frames,
            ))
            // One encoder thread: the pipeline is one thread per path; auto mode would start
            // a thread per core on a 4-core Pi for every path.
            .num_threads(1);
        let inner =
            H264Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                EncodeError::Init {
                    reason: format!("openh264: {e}"),
                }
            })?;
        Ok(OpenH264Encoder {
            inner,
            settings: settings.clone(),
            empty_outputs: 0,
        })
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Frames for which openh264 produced no output.
    pub fn empty_outputs(&self) -> u64 {
        self.empty_outputs
    }
}

impl Encoder for OpenH264Encoder {
    fn encode(
        &mut self,
        frame: &RawFrame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let s = &self.settings;
        let input = |reason: String| EncodeError::Input {
            sequence: frame.sequence,
            reason,
        };
        if frame.format != PixelFormat::I420 {
            return Err(input(format!("format {} is not I420", frame.format)));
        }
        if (frame.width, frame.height) != (s.width, s.height) {
            return Err(input(format!(
                "size {}x{} differs from the encoder's {}x{}",
                frame.width, frame.height, s.width, s.height
            )));
        }
        let expected = super::convert::i420_len(s.width, s.height);
        if frame.data.len() != expected {
            return Err(input(format!(
                "I420 buffer has {} bytes, expected {expected}",
                frame.data.len()
            )));
        }
        let (y, u, v) = frame
            .i420_planes()
            .ok_or_else(|| input("I420 planes do not fit the buffer".to_string()))?;
        let (w, h) = (s.width as usize, s.height as usize);
        let source = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        if force_idr {
            self.inner.force_intra_frame();
        }
        // openh264 takes milliseconds; rate control only uses differences.
        let ts = Timestamp::from_millis((frame.pts_90k.max(0) / 90) as u64);
        let bitstream = self
            .inner
            .encode_at(&source, ts)
            .map_err(|e| EncodeError::Encode {
                sequence: frame.sequence,
                reason: format!("openh264: {e}"),
            })?;
        let frame_type = bitstream.frame_type();
        let len: usize = (0..bitstream.num_layers())
            .filter_map(|l| bitstream.layer(l))
            .map(|layer| {
                (0..layer.nal_count())
                    .filter_map(|n| layer.nal_unit(n).map(<[u8]>::len))
                    .sum::<usize>()
            })
            .sum();
        if len == 0 || matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            self.empty_outputs += 1;
            if self.empty_outputs.is_power_of_two() {
                log::warn!(
                    "openh264 produced no output for frame {} (type {frame_type:?}); {} such frames so far",
                    frame.sequence,
                    self.empty_outputs
                );
            }
            return Ok(None);
        }
        let mut data = Vec::with_capacity(len);
        bitstream.write_vec(&mut data);
        let out = EncodedFrame::from_annexb(Bytes::from(data), frame.pts_90k, frame.wall);
        if force_idr && !out.is_idr {
            log::warn!(
                "openh264 ignored a key frame request at frame {} (type {frame_type:?})",
                frame.sequence
            );
        }
        Ok(Some(out))
    }
}

/// One decoded picture: tightly packed planar 4:2:0 (Y `width` x `height`, then U and V of
/// `width.div_ceil(2)` x `height.div_ceil(2)` each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPicture {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// How many of the access units given were decoded to reach it.
    pub units: usize,
}

/// openh264's decoder, for turning a group of pictures back into its latest picture
/// (snapshots of H.264 that arrives encoded). One decoder per group: it starts at the key
/// frame. Not for the hot path: nothing decodes unless someone asks for a picture.
pub struct H264Decoder {
    inner: OpenH264Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, EncodeError> {
        // Pictures come out when the stream says (B-frames held back), not after every unit.
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let inner =
            OpenH264Decoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                EncodeError::Init {
                    reason: format!("openh264 decoder: {e}"),
                }
            })?;
        Ok(H264Decoder { inner })
    }

    /// Decodes `units` (Annex-B access units, a key frame with its SPS/PPS first) in order
    /// and returns the last picture in display order; `None` if none came out. Stops before a
    /// unit once `deadline` has passed (the picture so far), and at the first unit that
    /// fails after the first (a broken frame spoils the rest of its group); a first unit
    /// that fails is the error.
    pub fn decode_latest(
        &mut self,
        units: &[&[u8]],
        deadline: std::time::Instant,
    ) -> Result<Option<DecodedPicture>, EncodeError> {
        let mut out: Option<DecodedPicture> = None;
        let mut fed = 0;
        for (i, au) in units.iter().enumerate() {
            if i > 0 && std::time::Instant::now() >= deadline {
                break;
            }
            let options = DecodeOptions::new().flush_after_decode(Flush::NoFlush);
            match self.inner.decode_with_options(au, options) {
                Ok(Some(pic)) => copy_picture(&pic, fed + 1, &mut out),
                Ok(None) => {}
                Err(e) if i == 0 => {
                    return Err(EncodeError::Decode {
                        index: 0,
                        reason: format!("openh264: {e}"),
                    })
                }
                Err(e) => {
                    log::debug!("snapshot: decoding stopped at unit {i} of the group: {e}");
                    break;
                }
            }
            fed = i + 1;
        }
        match self.inner.flush_remaining() {
            Ok(pics) => {
                if let Some(pic) = pics.last() {
                    copy_picture(pic, fed, &mut out);
                }
            }
            Err(e) if out.is_none() => {
                return Err(EncodeError::Decode {
                    index: fed,
                    reason: format!("openh264: {e}"),
                })
            }
            Err(_) => {}
        }
        Ok(out)
    }
}

/// Copies a decoded picture (rows with stride padding) into `out`, reusing its buffer.
fn copy_picture(pic: &impl YUVSource, units: usize, out: &mut Option<DecodedPicture>) {
    let (w, h) = pic.dimensions();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (sy, su, sv) = pic.strides();
    let o = out.get_or_insert_with(|| DecodedPicture {
        width: 0,
        height: 0,
        data: Vec::new(),
        units: 0,
    });
    o.data.clear();
    o.data.reserve(w * h + 2 * cw * ch);
    for (plane, stride, pw, ph) in [
        (pic.y(), sy, w, h),
        (pic.u(), su, cw, ch),
        (pic.v(), sv, cw, ch),
    ] {
        let mut rows = 0;
        for row in plane.chunks(stride.max(1)).take(ph) {
            let row = &row[..pw.min(row.len())];
            o.data.extend_from_slice(row);
            // A short last row (odd sizes): repeat its last sample.
            let last = row.last().copied().unwrap_or(128);
            o.data.extend(std::iter::repeat_n(last, pw - row.len()));
            rows += 1;
        }
        // Rows the decoder's buffer does not have (odd heights): neutral.
        o.data.extend(std::iter::repeat_n(128, (ph - rows) * pw));
    }
    o.width = w as u32;
    o.height = h as u32;
    o.units = units;
}

/// Decoding helper for tests in other modules (they may not name the openh264 crate).
#[cfg(test)]
pub(crate) mod test_decoder {
    use ::openh264::decoder::Decoder;
    use ::openh264::formats::YUVSource;

    pub(crate) struct TestDecoder(Decoder);

    /// One decoded picture's luma plane, tightly packed.
    pub(crate) struct Luma {
        pub width: u32,
        pub height: u32,
        pub y: Vec<u8>,
    }

    impl TestDecoder {
        pub(crate) fn new() -> Self {
            TestDecoder(Decoder::new().expect("openh264 decoder"))
        }

        /// Decodes one access unit (Annex-B); the picture if one came out.
        pub(crate) fn decode(&mut self, access_unit: &[u8]) -> Option<Luma> {
            let pic = self.0.decode(access_unit).expect("decodable access unit")?;
            let (w, h) = pic.dimensions();
            let stride = pic.strides().0;
            let mut y = Vec::with_capacity(w * h);
            for row in pic.y().chunks(stride).take(h) {
                y.extend_from_slice(&row[..w]);
            }
            Some(Luma {
                width: w as u32,
                height: h as u32,
                y,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_decoder::TestDecoder;
    use super::*;
    use crate::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};
    use crate::media::frame_pts_90k;
    use crate::media::stream_info_from_idr;
    use crate::source::pattern::{FrameCode, TestPattern};
    use std::time::{Duration, Instant, SystemTime};

    fn settings(width: u32, height: u32, kbps: u32, idr: u32) -> EncoderSettings {
        EncoderSettings {
            width,
            height,
            fps: 30,
            bitrate_kbps: kbps,
            idr_interval_frames: idr,
        }
    }

    fn pattern_frame(p: &TestPattern, n: u64, fps: u32) -> RawFrame {
        let (width, height) = crate::source::FrameSource::size(p);
        let mut data = Vec::new();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + n * 33);
        let code = FrameCode {
            frame: n as u32,
            capture_ms: 1_700_000_000_000 + n * 33,
        };
        p.draw(n, code, &mut data);
        RawFrame {
            format: PixelFormat::I420,
            width,
            height,
            data,
            pts_90k: frame_pts_90k(n, fps),
            wall,
            sequence: n,
        }
    }

    #[test]
    fn levels() {
        // 320x240 is 300 macroblocks: 9000 per second at 30 fps is over level 1.2's 6000.
        assert_eq!(level_idc_for(&settings(320, 240, 200, 30)), 13);
        assert_eq!(
            level_idc_for(&EncoderSettings {
                fps: 15,
                ..settings(176, 144, 64, 30)
            }),
            10
        );
        assert_eq!(level_idc_for(&settings(176, 144, 64, 30)), 11);
        assert_eq!(level_idc_for(&settings(640, 480, 1000, 30)), 30);
        assert_eq!(level_idc_for(&settings(1280, 720, 2000, 30)), 31);
        assert_eq!(level_idc_for(&settings(1920, 1080, 4000, 30)), 40);
        assert_eq!(
            level_idc_for(&EncoderSettings {
                fps: 60,
                ..settings(1920, 1080, 8000, 30)
            }),
            42
        );
        assert_eq!(level_idc_for(&settings(3840, 2160, 20000, 30)), 51);
    }

    #[test]
    fn every_input_gives_an_output_and_every_idr_carries_sps_pps() {
        let (w, h, n) = (320, 240, 95u64);
        let s = settings(w, h, 300, 30);
        let mut enc = OpenH264Encoder::new(&s).expect("encoder");
        let p = TestPattern::new(w, h, 30).expect("pattern");
        let forced = [45u64, 46, 70];
        let mut idrs = Vec::new();
        let mut info_seen = None;
        for i in 0..n {
            let f = pattern_frame(&p, i, 30);
            let out = enc
                .encode(&f, forced.contains(&i))
                .expect("encode")
                .unwrap_or_else(|| panic!("frame {i} produced no output"));
            assert_eq!(out.pts_90k, f.pts_90k);
            assert_eq!(out.wall, f.wall);
            let types: Vec<u8> = out.nal_units().filter_map(h264::nal_type).collect();
            if out.is_idr {
                idrs.push(i);
                assert!(types.contains(&NAL_SPS), "IDR {i} without SPS: {types:?}");
                assert!(types.contains(&NAL_PPS), "IDR {i} without PPS: {types:?}");
                let sps = types.iter().position(|&t| t == NAL_SPS);
                let idr = types.iter().position(|&t| t == NAL_IDR);
                assert!(sps < idr, "SPS after the IDR slice: {types:?}");
                let info = stream_info_from_idr(&out, 30).expect("stream info");
                assert_eq!((info.width, info.height, info.fps), (w, h, 30));
                assert_eq!(info.profile_level_id()[0], 66, "Baseline");
                if let Some(prev) = &info_seen {
                    assert_eq!(prev, &info, "SPS/PPS changed between IDRs");
                }
                info_seen = Some(info);
            } else {
                assert!(!types.contains(&NAL_SPS), "SPS outside an IDR at {i}");
            }
        }
        assert_eq!(enc.empty_outputs(), 0);
        for i in [0u64, 30, 45, 46, 70] {
            assert!(idrs.contains(&i), "frame {i} should be an IDR: {idrs:?}");
        }
        println!("IDR frames: {idrs:?}");
    }

    #[test]
    fn level_and_cropped_size_are_signalled() {
        for (w, h, kbps, level) in [(1280, 720, 2000, 31), (1920, 1080, 4000, 40)] {
            let mut enc = OpenH264Encoder::new(&settings(w, h, kbps, 30)).expect("encoder");
            let p = TestPattern::new(w, h, 30).expect("pattern");
            let out = enc
                .encode(&pattern_frame(&p, 0, 30), false)
                .expect("encode")
                .expect("output");
            // 1080 is not a multiple of 16: the SPS crops 1088 rows to 1080.
            let info = stream_info_from_idr(&out, 30).expect("info");
            assert_eq!((info.width, info.height), (w, h));
            let sps = h264::parse_sps(&info.sps).expect("sps");
            assert_eq!((sps.profile_idc, sps.level_idc), (66, level));
        }
    }

    #[test]
    fn rejects_frames_that_do_not_match() {
        let mut enc = OpenH264Encoder::new(&settings(320, 240, 300, 30)).expect("encoder");
        let p = TestPattern::new(640, 480, 30).expect("pattern");
        let f = pattern_frame(&p, 0, 30);
        assert!(matches!(
            enc.encode(&f, false),
            Err(EncodeError::Input { .. })
        ));
        let mut f = pattern_frame(&TestPattern::new(320, 240, 30).expect("pattern"), 0, 30);
        f.format = PixelFormat::Yuyv;
        assert!(matches!(
            enc.encode(&f, false),
            Err(EncodeError::Input { .. })
        ));
        f.format = PixelFormat::I420;
        f.data.truncate(100);
        assert!(matches!(
            enc.encode(&f, false),
            Err(EncodeError::Input { .. })
        ));
        assert!(OpenH264Encoder::new(&settings(321, 240, 300, 30)).is_err());
    }

    #[test]
    fn decodes_to_the_same_size() {
        let s = settings(320, 240, 500, 30);
        let mut enc = OpenH264Encoder::new(&s).expect("encoder");
        let mut dec = TestDecoder::new();
        let p = TestPattern::new(320, 240, 30).expect("pattern");
        let out = enc
            .encode(&pattern_frame(&p, 0, 30), false)
            .expect("encode")
            .expect("output");
        let pic = dec.decode(&out.data).expect("picture");
        assert_eq!((pic.width, pic.height, pic.y.len()), (320, 240, 320 * 240));
    }

    #[test]
    fn encode_speed() {
        for (w, h, kbps) in [(640, 480, 1000), (1280, 720, 2000)] {
            let mut enc = OpenH264Encoder::new(&settings(w, h, kbps, 60)).expect("encoder");
            let p = TestPattern::new(w, h, 30).expect("pattern");
            let mut frames: Vec<RawFrame> = (0..30).map(|i| pattern_frame(&p, i, 30)).collect();
            let n = 120u64;
            let mut bytes = 0;
            let t = Instant::now();
            for i in 0..n {
                // The same 30 pictures over again, with advancing timestamps.
                let f = &mut frames[(i % 30) as usize];
                f.pts_90k = frame_pts_90k(i, 30);
                bytes += enc
                    .encode(f, false)
                    .expect("encode")
                    .map_or(0, |o| o.data.len());
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "openh264 encode {w}x{h} @ {kbps} kbit/s: {:.0} fps ({:.2} ms/frame, {} kbit/s at 30 fps)",
                n as f64 / secs,
                secs * 1000.0 / n as f64,
                bytes as u64 * 8 * 30 / n / 1000
            );
        }
    }
}
