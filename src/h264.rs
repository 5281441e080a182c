//! Pure H.264 bitstream helpers: Annex-B splitting, NAL unit types and SPS parsing.
//!
//! Owns: byte-level parsing of H.264 elementary streams (ITU-T H.264). No I/O, no decoding of
//! slices: only what the appliance needs to describe a stream (picture size, profile, level).

use std::ops::Range;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The `nal_unit_type` of a NAL unit (without start code), if it has a header byte.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1F)
}

/// Splits an Annex-B byte stream into NAL unit ranges (start codes excluded).
/// Accepts 3- and 4-byte start codes; trailing zero bytes of a NAL are trimmed.
pub fn split_annexb(data: &[u8]) -> Vec<Range<usize>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &(_, payload_start)) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&(sc, _)| sc);
        while end > payload_start && data[end - 1] == 0 {
            end -= 1;
        }
        if end > payload_start {
            out.push(payload_start..end);
        }
    }
    out
}

/// Why an SPS could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H264Error {
    /// The NAL unit is not a sequence parameter set (its type is given).
    NotSps(Option<u8>),
    /// The RBSP ended before the named syntax element.
    Truncated(&'static str),
    /// A syntax element holds a value H.264 does not allow.
    Invalid(&'static str),
}

impl std::fmt::Display for H264Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            H264Error::NotSps(Some(t)) => write!(f, "NAL unit type {t} is not an SPS (7)"),
            H264Error::NotSps(None) => write!(f, "empty NAL unit where an SPS was expected"),
            H264Error::Truncated(what) => write!(f, "SPS truncated before {what}"),
            H264Error::Invalid(what) => write!(f, "SPS has an invalid {what}"),
        }
    }
}

impl std::error::Error for H264Error {}

/// What the appliance needs from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as the byte after `profile_idc`.
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Displayed width in pixels (after frame cropping).
    pub width: u32,
    /// Displayed height in pixels (after frame cropping; both fields for interlaced streams).
    pub height: u32,
    /// 0, 1 or 2: type 2 means output order is decode order (no reordering).
    pub pic_order_cnt_type: u32,
    /// `max_num_reorder_frames` from the VUI's bitstream restriction, when the SPS has it.
    pub max_num_reorder_frames: Option<u32>,
}

impl SpsInfo {
    /// How many frames may come before a frame in decode order and after it in output
    /// order (B-frames): known when the stream cannot reorder (baseline profile, POC type
    /// 2) or says so in its VUI; `None` when the SPS does not tell.
    pub fn reorder_frames(&self) -> Option<u32> {
        if self.pic_order_cnt_type == 2 || self.profile_idc == 66 {
            return Some(0);
        }
        self.max_num_reorder_frames
    }
}

/// Removes emulation prevention bytes (the 0x03 in 0x00 0x00 0x03) to get the RBSP.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader with Exp-Golomb decoding over an RBSP.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self, what: &'static str) -> Result<u32, H264Error> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(H264Error::Truncated(what))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, H264Error> {
        Ok(self.bit(what)? == 1)
    }

    fn bits(&mut self, n: u32, what: &'static str) -> Result<u32, H264Error> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit(what)?;
        }
        Ok(v)
    }

    /// ue(v). Values needing more than 32 bits are invalid in an SPS.
    fn ue(&mut self, what: &'static str) -> Result<u32, H264Error> {
        let mut zeros = 0u32;
        while self.bit(what)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(H264Error::Invalid(what));
            }
        }
        let rest = self.bits(zeros, what)?;
        // (1 << zeros) - 1 + rest fits in u32 for zeros <= 31; compute in u64 to be plain.
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| H264Error::Invalid(what))
    }

    /// se(v).
    fn se(&mut self, what: &'static str) -> Result<i32, H264Error> {
        let k = i64::from(self.ue(what)?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| H264Error::Invalid(what))
    }
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Skips one scaling_list() (7.3.2.1.1.1); only its length in bits matters here.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::Invalid("delta_scale"));
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Parses a sequence parameter set NAL unit (with its one-byte NAL header, without start code)
/// far enough to know the profile, level and displayed picture size. VUI is not read.
pub fn parse_sps(sps: &[u8]) -> Result<SpsInfo, H264Error> {
    match nal_type(sps) {
        Some(NAL_SPS) => {}
        other => return Err(H264Error::NotSps(other)),
    }
    let rbsp = nal_to_rbsp(&sps[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8, "profile_idc")? as u8;
    let constraint_flags = r.bits(8, "constraint flags")? as u8;
    let level_idc = r.bits(8, "level_idc")? as u8;
    if r.ue("seq_parameter_set_id")? > 31 {
        return Err(H264Error::Invalid("seq_parameter_set_id"));
    }

    // Defaults for profiles that do not code them: 4:2:0, one colour plane.
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue("chroma_format_idc")?;
        if chroma_format_idc > 3 {
            return Err(H264Error::Invalid("chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        if r.ue("bit_depth_luma_minus8")? > 6 {
            return Err(H264Error::Invalid("bit_depth_luma_minus8"));
        }
        if r.ue("bit_depth_chroma_minus8")? > 6 {
            return Err(H264Error::Invalid("bit_depth_chroma_minus8"));
        }
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    if r.ue("log2_max_frame_num_minus4")? > 12 {
        return Err(H264Error::Invalid("log2_max_frame_num_minus4"));
    }
    let pic_order_cnt_type = r.ue("pic_order_cnt_type")?;
    match pic_order_cnt_type {
        0 => {
            if r.ue("log2_max_pic_order_cnt_lsb_minus4")? > 12 {
                return Err(H264Error::Invalid("log2_max_pic_order_cnt_lsb_minus4"));
            }
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
            if cycle > 255 {
                return Err(H264Error::Invalid("num_ref_frames_in_pic_order_cnt_cycle"));
            }
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        _ => return Err(H264Error::Invalid("pic_order_cnt_type")),
    }
    r.ue("max_num_ref_frames")?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag("frame_cropping_flag")? {
        crop_left = u64::from(r.ue("frame_crop_left_offset")?);
        crop_right = u64::from(r.ue("frame_crop_right_offset")?);
        crop_top = u64::from(r.ue("frame_crop_top_offset")?);
        crop_bottom = u64::from(r.ue("frame_crop_bottom_offset")?);
    }

    // 7.4.2.1.1: field-coded streams count map units in field pairs.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_width = width_mbs * 16;
    let full_height = height_map_units * 16 * field_factor;
    let crop_x = (crop_left + crop_right) * crop_unit_x;
    let crop_y = (crop_top + crop_bottom) * crop_unit_y;
    if crop_x >= full_width || crop_y >= full_height {
        return Err(H264Error::Invalid("frame cropping"));
    }
    let width = u32::try_from(full_width - crop_x).map_err(|_| H264Error::Invalid("width"))?;
    let height = u32::try_from(full_height - crop_y).map_err(|_| H264Error::Invalid("height"))?;
    // The VUI is optional extra information: a damaged one loses only what it would say.
    let max_num_reorder_frames = match r.flag("vui_parameters_present_flag") {
        Ok(true) => vui_max_num_reorder_frames(&mut r).ok().flatten(),
        _ => None,
    };
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
        pic_order_cnt_type,
        max_num_reorder_frames,
    })
}

/// Reads vui_parameters() (E.1.1) up to `max_num_reorder_frames`, when the bitstream
/// restriction is present.
fn vui_max_num_reorder_frames(r: &mut BitReader<'_>) -> Result<Option<u32>, H264Error> {
    if r.flag("aspect_ratio_info_present_flag")? && r.bits(8, "aspect_ratio_idc")? == 255 {
        r.bits(32, "sar_width, sar_height")?;
    }
    if r.flag("overscan_info_present_flag")? {
        r.flag("overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.bits(4, "video_format, video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            r.bits(24, "colour description")?;
        }
    }
    if r.flag("chroma_loc_info_present_flag")? {
        r.ue("chroma_sample_loc_type_top_field")?;
        r.ue("chroma_sample_loc_type_bottom_field")?;
    }
    if r.flag("timing_info_present_flag")? {
        r.bits(32, "num_units_in_tick")?;
        r.bits(32, "time_scale")?;
        r.flag("fixed_frame_rate_flag")?;
    }
    let nal_hrd = r.flag("nal_hrd_parameters_present_flag")?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.flag("vcl_hrd_parameters_present_flag")?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag("low_delay_hrd_flag")?;
    }
    r.flag("pic_struct_present_flag")?;
    if !r.flag("bitstream_restriction_flag")? {
        return Ok(None);
    }
    r.flag("motion_vectors_over_pic_boundaries_flag")?;
    r.ue("max_bytes_per_pic_denom")?;
    r.ue("max_bits_per_mb_denom")?;
    r.ue("log2_max_mv_length_horizontal")?;
    r.ue("log2_max_mv_length_vertical")?;
    let reorder = r.ue("max_num_reorder_frames")?;
    let dpb = r.ue("max_dec_frame_buffering")?;
    if reorder > dpb || dpb > 16 {
        return Err(H264Error::Invalid("max_num_reorder_frames"));
    }
    Ok(Some(reorder))
}

/// Skips hrd_parameters() (E.1.2).
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), H264Error> {
    let cpb_cnt = r.ue("cpb_cnt_minus1")? + 1;
    if cpb_cnt > 32 {
        return Err(H264Error::Invalid("cpb_cnt_minus1"));
    }
    r.bits(8, "bit_rate_scale, cpb_size_scale")?;
    for _ in 0..cpb_cnt {
        r.ue("bit_rate_value_minus1")?;
        r.ue("cpb_size_value_minus1")?;
        r.flag("cbr_flag")?;
    }
    r.bits(20, "delay lengths, time_offset_length")?;
    Ok(())
}

/// Decode times for frames that arrive in decode order with presentation times only (RTP
/// carries no decode time). With at most `reorder` frames reordered (the SPS says how many,
/// `SpsInfo::reorder_frames`), the decode time of the n-th frame is the (n - reorder)-th
/// smallest presentation time seen so far: it never exceeds the frame's own presentation
/// time and never goes back. The first `reorder` frames get times one `step` apart before
/// the first presentation time. A stream that reorders more than it said raises `reorder`
/// by one from then on (that one frame's decode time is then later than its presentation).
#[derive(Debug)]
pub struct DtsEstimator {
    reorder: usize,
    step: i64,
    pending: std::collections::BinaryHeap<std::cmp::Reverse<i64>>,
    first: Option<i64>,
    emitted: usize,
    last: Option<i64>,
}

impl DtsEstimator {
    /// `step`: the expected time between frames (90 kHz ticks), used only for the first
    /// `reorder` frames.
    pub fn new(reorder: u32, step: i64) -> DtsEstimator {
        DtsEstimator {
            reorder: reorder.min(16) as usize,
            step: step.max(1),
            pending: std::collections::BinaryHeap::new(),
            first: None,
            emitted: 0,
            last: None,
        }
    }

    /// The decode time of the next frame, whose presentation time is `pts`.
    pub fn next(&mut self, pts: i64) -> i64 {
        let first = *self.first.get_or_insert(pts);
        if let Some(last) = self.last {
            // Presented before a frame already decoded at `last`: the stream reorders more
            // than `reorder` frames.
            if pts < last && self.reorder < 16 {
                self.reorder += 1;
            }
        }
        self.pending.push(std::cmp::Reverse(pts));
        let candidate = if self.pending.len() > self.reorder {
            self.pending.pop().map_or(pts, |std::cmp::Reverse(p)| p)
        } else {
            first - self.reorder.saturating_sub(self.emitted) as i64 * self.step
        };
        let dts = match self.last {
            Some(last) if candidate <= last => last + 1,
            _ => candidate,
        };
        self.emitted += 1;
        self.last = Some(dts);
        dts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6,
        ];
        let nals: Vec<&[u8]> = split_annexb(&data).into_iter().map(|r| &data[r]).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]]);
        assert_eq!(nal_type(nals[2]), Some(NAL_IDR));
    }

    #[test]
    fn no_start_code_means_no_nal() {
        assert!(split_annexb(&[1, 2, 3, 4]).is_empty());
        assert!(split_annexb(&[]).is_empty());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPS NAL units written by ffmpeg 5.1 / libx264 (`ffmpeg -f lavfi -i testsrc=size=WxH
    /// -frames:v 1 -c:v libx264 -pix_fmt ... -profile:v ... -f h264 -`), with the expected
    /// profile, constraint flags, level and displayed size.
    const X264_SPS: &[(&str, &str, u8, u8, u8, u32, u32)] = &[
        (
            "baseline 1280x720",
            "6742c01fd9005005bb0110000003001000000303c0f1832480",
            66,
            0xc0,
            31,
            1280,
            720,
        ),
        (
            "main 640x480",
            "674d401eeca0501ed80880000003008000001e078b16cb",
            77,
            0x40,
            30,
            640,
            480,
        ),
        (
            "high 1920x1080 (cropped from 1088)",
            "67640028acd940780227e5c044000003000400000300f03c60c658",
            100,
            0,
            40,
            1920,
            1080,
        ),
        (
            "high 642x362 (crop right and bottom)",
            "6764001eacd940a42fe224c044000003000400000300f03c58b658",
            100,
            0,
            30,
            642,
            362,
        ),
        (
            "high interlaced 720x576 (frame_mbs_only=0)",
            "6764001facd940b424d80880000003008000001e0f8b16cb",
            100,
            0,
            31,
            720,
            576,
        ),
        (
            "high interlaced 1920x1080 (field cropping)",
            "67640028acd94078044fde0220000003002000000783e2c5b2c0",
            100,
            0,
            40,
            1920,
            1080,
        ),
        (
            "high 4:4:4 1280x720 (chroma_format_idc=3)",
            "67f4001f919b280a00b76022000003000200000300781e30632c",
            244,
            0,
            31,
            1280,
            720,
        ),
        (
            "high 4:4:4 641x361 (odd crop, unit 1)",
            "67f4001e919b281485fc21118088000003000800000301e078b16cb0",
            244,
            0,
            30,
            641,
            361,
        ),
        (
            "high 4:2:2 642x362",
            "677a001ebcd940a42fe227c044000003000400000300f03c58b658",
            122,
            0,
            30,
            642,
            362,
        ),
        (
            "baseline 176x144",
            "6742c00bd902c4ec0440000003004000000f03c50a92",
            66,
            0xc0,
            11,
            176,
            144,
        ),
    ];

    #[test]
    fn parses_real_x264_sps() {
        for &(name, h, profile, flags, level, w, ht) in X264_SPS {
            let info = parse_sps(&hex(h)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (
                    info.profile_idc,
                    info.constraint_flags,
                    info.level_idc,
                    info.width,
                    info.height
                ),
                (profile, flags, level, w, ht),
                "{name}"
            );
            // x264's VUI says how many frames it reorders: none in baseline (POC type 2),
            // two with its default B-pyramid.
            let (poc, reorder) = if profile == 66 { (2, 0) } else { (0, 2) };
            assert_eq!(info.pic_order_cnt_type, poc, "{name}");
            assert_eq!(info.max_num_reorder_frames, Some(reorder), "{name}");
            assert_eq!(info.reorder_frames(), Some(reorder), "{name}");
        }
    }

    #[test]
    fn truncated_or_garbage_sps_is_an_error_not_a_panic() {
        for &(name, h, ..) in X264_SPS {
            let sps = hex(h);
            // Every prefix that stops before frame cropping is complete must fail cleanly.
            for n in 0..sps.len() {
                let _ = parse_sps(&sps[..n]);
            }
            assert!(parse_sps(&sps[..6]).is_err(), "{name}");
        }
        assert_eq!(parse_sps(&[]), Err(H264Error::NotSps(None)));
        assert_eq!(
            parse_sps(&[0x68, 0xce]),
            Err(H264Error::NotSps(Some(NAL_PPS)))
        );
        // A run of zero bits longer than any ue(v) allows.
        assert!(matches!(
            parse_sps(&[0x67, 0x42, 0, 0x1f, 0, 0, 0, 0, 0, 0]),
            Err(H264Error::Invalid(_)) | Err(H264Error::Truncated(_))
        ));
        let mut rng = crate::test_util::XorShift(0x1234_5678_9abc_def0);
        for len in 0..200 {
            let mut buf = vec![0x67];
            for _ in 0..len {
                buf.push(rng.next_u64() as u8);
            }
            let _ = parse_sps(&buf);
        }
    }

    #[test]
    fn removes_emulation_prevention_bytes() {
        assert_eq!(nal_to_rbsp(&[0, 0, 3, 1]), vec![0, 0, 1]);
        assert_eq!(nal_to_rbsp(&[0, 0, 3, 0, 0, 3]), vec![0, 0, 0, 0]);
        assert_eq!(nal_to_rbsp(&[0, 3, 0, 0, 3, 3]), vec![0, 3, 0, 0, 3]);
        assert_eq!(nal_to_rbsp(&[1, 2, 3]), vec![1, 2, 3]);
    }

    /// Bit writer for synthetic SPS: covers syntax x264 never writes (scaling lists in the
    /// SPS, pic_order_cnt_type 1, huge crop offsets that need emulation prevention).
    /// Checked once against ffmpeg's `trace_headers` bitstream filter, which read the same
    /// scaling-list flags and crop offsets from these NAL units.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<u8>,
    }

    impl BitWriter {
        fn u(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bits.push(((v >> i) & 1) as u8);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            for _ in 0..len - 1 {
                self.bits.push(0);
            }
            for i in (0..len).rev() {
                self.bits.push(((x >> i) & 1) as u8);
            }
        }
        fn se(&mut self, v: i32) {
            let k = if v > 0 {
                2 * v as u32 - 1
            } else {
                (-2 * v) as u32
            };
            self.ue(k);
        }
        /// rbsp_trailing_bits, then emulation prevention, then the NAL header.
        fn finish_nal(mut self) -> Vec<u8> {
            self.bits.push(1);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(0);
            }
            let rbsp: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | b))
                .collect();
            let mut nal = vec![0x67];
            let mut zeros = 0;
            for b in rbsp {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                nal.push(b);
            }
            nal
        }
    }

    struct Synth {
        profile: u32,
        chroma_format_idc: u32,
        separate_colour_plane: bool,
        scaling: bool,
        poc_type: u32,
        width_mbs: u32,
        height_map_units: u32,
        frame_mbs_only: bool,
        crop: Option<(u32, u32, u32, u32)>,
    }

    fn synth(s: &Synth) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.u(8, s.profile);
        w.u(8, 0);
        w.u(8, 0); // level 0: makes "00 00" after the profile, exercising emulation prevention
        w.ue(0);
        if has_chroma_info(s.profile as u8) {
            w.ue(s.chroma_format_idc);
            if s.chroma_format_idc == 3 {
                w.u(1, s.separate_colour_plane as u32);
            }
            w.ue(2); // 10-bit luma
            w.ue(2);
            w.u(1, 0);
            w.u(1, s.scaling as u32);
            if s.scaling {
                let lists = if s.chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    // Lists 0, 3 and 6 present: a 4x4 list that stops early (next_scale 0)
                    // and full ones with varied deltas.
                    let present = i % 3 == 0;
                    w.u(1, present as u32);
                    if present {
                        let size = if i < 6 { 16 } else { 64 };
                        if i == 0 {
                            w.se(-8); // next_scale = 0: the rest of the list is implied
                        } else {
                            for j in 0..size {
                                w.se(if j % 2 == 0 { 5 } else { -3 });
                            }
                        }
                    }
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(s.poc_type);
        match s.poc_type {
            0 => w.ue(2),
            1 => {
                w.u(1, 0);
                w.se(-3);
                w.se(7);
                w.ue(3);
                w.se(1);
                w.se(-1);
                w.se(100);
            }
            _ => {}
        }
        w.ue(4); // max_num_ref_frames
        w.u(1, 0);
        w.ue(s.width_mbs - 1);
        w.ue(s.height_map_units - 1);
        w.u(1, s.frame_mbs_only as u32);
        if !s.frame_mbs_only {
            w.u(1, 1);
        }
        w.u(1, 1);
        match s.crop {
            Some((l, r, t, b)) => {
                w.u(1, 1);
                w.ue(l);
                w.ue(r);
                w.ue(t);
                w.ue(b);
            }
            None => w.u(1, 0),
        }
        w.u(1, 0); // vui_parameters_present_flag
        w.finish_nal()
    }

    const BASE: Synth = Synth {
        profile: 100,
        chroma_format_idc: 1,
        separate_colour_plane: false,
        scaling: false,
        poc_type: 0,
        width_mbs: 80,
        height_map_units: 45,
        frame_mbs_only: true,
        crop: None,
    };

    fn size_of(s: &Synth) -> (u32, u32) {
        let info = parse_sps(&synth(s)).unwrap();
        (info.width, info.height)
    }

    #[test]
    fn synthetic_sps_cover_scaling_lists_poc_type_and_chroma_formats() {
        assert_eq!(size_of(&BASE), (1280, 720));
        assert_eq!(
            size_of(&Synth {
                scaling: true,
                ..BASE
            }),
            (1280, 720)
        );
        assert_eq!(
            size_of(&Synth {
                scaling: true,
                chroma_format_idc: 3,
                crop: Some((1, 2, 3, 4)),
                ..BASE
            }),
            (1280 - 3, 720 - 7)
        );
        assert_eq!(
            size_of(&Synth {
                poc_type: 1,
                crop: Some((0, 4, 0, 4)),
                ..BASE
            }),
            (1280 - 8, 720 - 8)
        );
        assert_eq!(
            size_of(&Synth {
                poc_type: 2,
                chroma_format_idc: 2,
                crop: Some((0, 4, 0, 4)),
                ..BASE
            }),
            (1280 - 8, 720 - 4)
        );
        // Separate colour planes: ChromaArrayType 0, crop units of one luma sample.
        assert_eq!(
            size_of(&Synth {
                chroma_format_idc: 3,
                separate_colour_plane: true,
                crop: Some((1, 0, 0, 1)),
                ..BASE
            }),
            (1279, 719)
        );
        // Monochrome (chroma_format_idc 0).
        assert_eq!(
            size_of(&Synth {
                chroma_format_idc: 0,
                crop: Some((1, 0, 0, 1)),
                ..BASE
            }),
            (1279, 719)
        );
        // Field coding with 4:2:0: map units are field MB rows, crop unit is 4 lines.
        assert_eq!(
            size_of(&Synth {
                frame_mbs_only: false,
                height_map_units: 34,
                crop: Some((0, 0, 0, 2)),
                ..BASE
            }),
            (1280, 1080)
        );
        // Baseline has no chroma syntax at all.
        assert_eq!(
            size_of(&Synth {
                profile: 66,
                ..BASE
            }),
            (1280, 720)
        );
    }

    #[test]
    fn synthetic_sps_with_emulation_prevention_and_bad_crop() {
        // Crop offsets with long zero runs force 00 00 03 sequences into the NAL.
        let s = Synth {
            width_mbs: 3_000_000,
            height_map_units: 3_000_000,
            crop: Some((0, 1 << 24, 0, 1 << 24)),
            ..BASE
        };
        let nal = synth(&s);
        assert!(nal.windows(3).any(|w| w == [0, 0, 3]), "{nal:02x?}");
        assert_eq!(
            size_of(&s),
            (48_000_000 - (2 << 24), 48_000_000 - (2 << 24))
        );
        // Cropping away the whole picture is invalid.
        let s = Synth {
            crop: Some((640, 0, 0, 0)),
            ..BASE
        };
        assert_eq!(
            parse_sps(&synth(&s)),
            Err(H264Error::Invalid("frame cropping"))
        );
    }

    /// Decode order I0 P3 B1 B2 P6 B4 B5 (presentation times in frames of 3000 ticks).
    fn b_frame_stream(n: i64) -> Vec<i64> {
        let mut pts = vec![0];
        let mut base = 0;
        while (pts.len() as i64) < n {
            pts.extend([base + 3, base + 1, base + 2]);
            base += 3;
        }
        pts.truncate(n as usize);
        pts.into_iter().map(|p| 90_000 + p * 3000).collect()
    }

    #[test]
    fn dts_never_exceeds_pts_and_always_rises() {
        for reorder in [2, 3] {
            let mut e = DtsEstimator::new(reorder, 3000);
            let pts = b_frame_stream(40);
            let dts: Vec<i64> = pts.iter().map(|p| e.next(*p)).collect();
            for (i, (d, p)) in dts.iter().zip(&pts).enumerate() {
                assert!(d <= p, "frame {i}: dts {d} > pts {p}");
                if i > 0 {
                    assert!(*d > dts[i - 1], "frame {i}: dts goes back");
                }
            }
            // After the start, decode times are one frame apart.
            assert!(
                dts.windows(2).skip(4).all(|w| w[1] - w[0] == 3000),
                "{dts:?}"
            );
        }
    }

    #[test]
    fn dts_is_pts_without_reordering_and_grows_when_the_sps_said_too_little() {
        let mut e = DtsEstimator::new(0, 3000);
        assert_eq!([0, 3000, 6000].map(|p| e.next(p)), [0, 3000, 6000]);
        // Said 0, sends B-frames: one frame goes wrong, then the estimator keeps up.
        let mut e = DtsEstimator::new(0, 3000);
        let pts = b_frame_stream(30);
        let dts: Vec<i64> = pts.iter().map(|p| e.next(*p)).collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
        let late = dts.iter().zip(&pts).filter(|(d, p)| d > p).count();
        assert!(
            late <= 2,
            "{late} frames decoded after their presentation: {dts:?}"
        );
    }
}
