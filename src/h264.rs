//! Pure H.264 bitstream helpers: Annex-B splitting and NAL unit types.
//!
//! Owns: byte-level parsing of H.264 elementary streams. No I/O.

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
}
