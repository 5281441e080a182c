//! Pure H.264 bitstream helpers: Annex-B splitting and NAL unit types.
//!
//! Owns: byte-level parsing of H.264 elementary streams (including the few SPS fields the
//! stream description needs). No I/O.

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

/// The fields of a sequence parameter set that describe the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Picture size after frame cropping.
    pub width: u32,
    pub height: u32,
}

/// Reads Exp-Golomb coded fields from an RBSP (emulation prevention bytes removed).
struct BitReader {
    data: Vec<u8>,
    pos: usize,
}

impl BitReader {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit as u32)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64).min(u32::MAX as u64) as u32)
    }

    fn se(&mut self) -> Option<i32> {
        let v = self.ue()? as i64;
        Some(if v % 2 == 1 { (v + 1) / 2 } else { -(v / 2) } as i32)
    }
}

/// Parses the size, profile and level out of an SPS NAL unit (without start code).
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal_type(nal)? != NAL_SPS || nal.len() < 4 {
        return None;
    }
    // Remove emulation prevention bytes (00 00 03 -> 00 00).
    let mut data = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in &nal[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        data.push(b);
    }
    let (profile_idc, constraint_flags, level_idc) = (data[0], data[1], data[2]);
    let mut r = BitReader { data, pos: 24 };
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? as u64 + 1;
    let height_map_units = r.ue()? as u64 + 1;
    let frame_mbs_only = r.bit()? as u64;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit()? == 1 {
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let unit_x = sub_w;
        let unit_y = sub_h * (2 - frame_mbs_only);
        crop_x = unit_x * (r.ue()? as u64 + r.ue()? as u64);
        crop_y = unit_y * (r.ue()? as u64 + r.ue()? as u64);
    }
    let width = (width_mbs * 16).checked_sub(crop_x)?;
    let height = ((2 - frame_mbs_only) * height_map_units * 16).checked_sub(crop_y)?;
    Some(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
    })
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

    #[test]
    fn parses_sps_size_with_cropping() {
        // Fixtures written by x264 (ffmpeg -c:v libx264 -profile:v ...).
        let baseline_720 = [
            0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x24, 0x80,
        ];
        let info = parse_sps(&baseline_720).expect("sps");
        assert_eq!((info.profile_idc, info.level_idc), (66, 31));
        assert_eq!((info.width, info.height), (1280, 720));
        // High profile: 120x68 macroblocks cropped by 8 rows.
        let high_1080 = [
            0x67, 0x64, 0x00, 0x28, 0xAC, 0xD9, 0x40, 0x78, 0x02, 0x27, 0xE5, 0xC0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x60, 0xC6, 0x58,
        ];
        let info = parse_sps(&high_1080).expect("sps");
        assert_eq!((info.profile_idc, info.level_idc), (100, 40));
        assert_eq!((info.width, info.height), (1920, 1080));
        // High 4:4:4: crop units are single rows.
        let high444_1080 = [
            0x67, 0xF4, 0x00, 0x28, 0x91, 0x9B, 0x28, 0x0B, 0x40, 0x44, 0xFC, 0x4E, 0x02, 0x20,
            0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x41, 0xE3, 0x06, 0x32, 0xC0,
        ];
        let info = parse_sps(&high444_1080).expect("sps");
        assert_eq!((info.width, info.height), (1440, 1080));
        assert_eq!(parse_sps(&[0x68, 1, 2, 3]), None, "a PPS is not an SPS");
        assert_eq!(parse_sps(&[0x67, 0x42]), None);
    }
}
