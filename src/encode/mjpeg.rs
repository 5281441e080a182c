//! MJPEG decoding to I420 (the only file naming the zune-jpeg crate).
//!
//! Owns: `MjpegDecoder`, which decodes one JPEG picture from a camera to YCbCr (never RGB:
//! the encoder wants YUV, so an RGB round trip would only cost time and precision) and
//! subsamples it to I420; and the fix-up for UVC MJPEG frames that leave out their Huffman
//! tables (the UVC MJPEG payload spec allows it: decoders must then use the standard tables
//! of ITU-T T.81 K.3). Does not own: the pixel arithmetic (`convert.rs`).
//!
//! zune-jpeg was chosen over jpeg-decoder: it is actively maintained, decodes 720p about
//! twice as fast here (see `benches/convert.rs`), and outputs YCbCr directly; jpeg-decoder
//! always converts to RGB.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::convert::{i420_len, ycbcr444_to_i420, ConvertError};

/// Largest picture accepted from a camera, so a corrupt header cannot ask for gigabytes.
const MAX_SIDE: usize = 8192;

/// Decodes JPEG pictures into I420, reusing its buffers from frame to frame.
#[derive(Default)]
pub struct MjpegDecoder {
    /// Decoded YCbCr 4:4:4, interleaved.
    ycc: Vec<u8>,
    /// The input with standard Huffman tables spliced in, when the camera left them out.
    patched: Vec<u8>,
}

impl MjpegDecoder {
    pub fn new() -> Self {
        MjpegDecoder::default()
    }

    /// Decodes `jpeg` into `out` (resized to one I420 picture) and returns its size.
    pub fn decode_i420(
        &mut self,
        jpeg: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(u32, u32), ConvertError> {
        let bad = |reason: String| ConvertError::Decode { reason };
        let layout = scan_markers(jpeg).ok_or_else(|| bad("not a JPEG picture".into()))?;
        let input: &[u8] = if layout.has_dht {
            jpeg
        } else {
            self.patched.clear();
            self.patched.extend_from_slice(&jpeg[..layout.sos]);
            self.patched.extend_from_slice(&standard_dht_segment());
            self.patched.extend_from_slice(&jpeg[layout.sos..]);
            &self.patched
        };
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::YCbCr)
            .set_max_width(MAX_SIDE)
            .set_max_height(MAX_SIDE);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(input), options);
        decoder
            .decode_headers()
            .map_err(|e| bad(format!("JPEG header: {e:?}")))?;
        let (w, h) = decoder
            .dimensions()
            .ok_or_else(|| bad("JPEG without a size".into()))?;
        let len = decoder
            .output_buffer_size()
            .ok_or_else(|| bad("JPEG size overflows".into()))?;
        if decoder.output_colorspace() != Some(ColorSpace::YCbCr) {
            return Err(bad(format!(
                "JPEG in {:?}, expected YCbCr",
                decoder.input_colorspace()
            )));
        }
        self.ycc.resize(len, 0);
        decoder
            .decode_into(&mut self.ycc)
            .map_err(|e| bad(format!("JPEG data: {e:?}")))?;
        let (w, h) = (w as u32, h as u32);
        out.resize(i420_len(w, h), 0);
        ycbcr444_to_i420(&self.ycc, w, h, out)?;
        Ok((w, h))
    }
}

/// Where the first scan starts and whether Huffman tables were defined before it.
struct Layout {
    has_dht: bool,
    sos: usize,
}

/// Walks the marker segments up to the first start-of-scan; `None` if this is not a JPEG.
fn scan_markers(data: &[u8]) -> Option<Layout> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    let mut has_dht = false;
    loop {
        if *data.get(i)? != 0xFF {
            return None;
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while *data.get(i + 1)? == 0xFF {
            i += 1;
        }
        let marker = *data.get(i + 1)?;
        match marker {
            0xDA => return Some(Layout { has_dht, sos: i }),
            // Markers without a length field.
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xC4 => has_dht = true,
            _ => {}
        }
        let len = u16::from_be_bytes([*data.get(i + 2)?, *data.get(i + 3)?]) as usize;
        if len < 2 {
            return None;
        }
        i += 2 + len;
    }
}

const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
const LUMA_AC_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const CHROMA_AC_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// One DHT segment with the four standard tables (T.81 K.3.3): DC and AC, luma (id 0) and
/// chroma (id 1).
fn standard_dht_segment() -> Vec<u8> {
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &LUMA_DC_BITS, &DC_VALUES),
        (0x01, &CHROMA_DC_BITS, &DC_VALUES),
        (0x10, &LUMA_AC_BITS, &LUMA_AC_VALUES),
        (0x11, &CHROMA_AC_BITS, &CHROMA_AC_VALUES),
    ];
    let body: usize = tables.iter().map(|(_, _, v)| 17 + v.len()).sum();
    let mut seg = Vec::with_capacity(4 + body);
    seg.extend_from_slice(&[0xFF, 0xC4]);
    seg.extend_from_slice(&((body + 2) as u16).to_be_bytes());
    for (class_id, bits, values) in tables {
        seg.push(class_id);
        seg.extend_from_slice(bits);
        seg.extend_from_slice(values);
    }
    seg
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    /// A 64x32 picture: horizontal luma ramp, chroma changing by quadrant.
    fn picture() -> (Vec<u8>, Vec<u8>) {
        let (w, h) = (64usize, 32usize);
        let mut ycc = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                ycc.push((16 + x * 3) as u8);
                ycc.push(if x < w / 2 { 90 } else { 170 });
                ycc.push(if y < h / 2 { 100 } else { 200 });
            }
        }
        let mut jpeg = Vec::new();
        let mut enc = Encoder::new(&mut jpeg, 95);
        enc.set_sampling_factor(SamplingFactor::R_4_2_2);
        enc.encode(&ycc, w as u16, h as u16, ColorType::Ycbcr)
            .expect("encode");
        (jpeg, ycc)
    }

    fn check_decoded(i420: &[u8]) {
        let (w, h) = (64usize, 32usize);
        let (y, chroma) = i420.split_at(w * h);
        let (u, v) = chroma.split_at(w * h / 4);
        for x in [0usize, 10, 40, 63] {
            let want = (16 + x * 3) as i32;
            assert!((y[5 * w + x] as i32 - want).abs() <= 3, "luma at {x}");
        }
        // Away from block edges the chroma quadrants come back.
        assert!((u[4 * 32 + 4] as i32 - 90).abs() <= 3);
        assert!((u[4 * 32 + 28] as i32 - 170).abs() <= 3);
        assert!((v[2 * 32 + 4] as i32 - 100).abs() <= 3);
        assert!((v[13 * 32 + 4] as i32 - 200).abs() <= 3);
    }

    #[test]
    fn decodes_to_i420() {
        let (jpeg, _) = picture();
        let mut d = MjpegDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode_i420(&jpeg, &mut out).expect("decode"), (64, 32));
        assert_eq!(out.len(), 64 * 32 * 3 / 2);
        check_decoded(&out);
    }

    /// Removes every DHT segment, like UVC cameras that rely on the standard tables.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let sos = scan_markers(jpeg).expect("jpeg").sos;
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i < sos {
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[sos..]);
        out
    }

    #[test]
    fn decodes_frames_without_huffman_tables() {
        let (jpeg, _) = picture();
        let stripped = strip_dht(&jpeg);
        assert!(stripped.len() < jpeg.len());
        assert!(!scan_markers(&stripped).expect("jpeg").has_dht);
        let mut d = MjpegDecoder::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.decode_i420(&jpeg, &mut a).expect("decode");
        d.decode_i420(&stripped, &mut b).expect("decode stripped");
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_garbage_and_truncation_without_panicking() {
        let mut d = MjpegDecoder::new();
        let mut out = Vec::new();
        assert!(d.decode_i420(&[], &mut out).is_err());
        assert!(d.decode_i420(&[0xFF, 0xD8, 0xFF], &mut out).is_err());
        let (jpeg, _) = picture();
        for cut in [3, 20, 200, jpeg.len() / 2] {
            // A truncated scan may decode to a partial picture or fail; it must not panic.
            let _ = d.decode_i420(&jpeg[..cut], &mut out);
        }
        let e = d.decode_i420(b"not a jpeg", &mut out).expect_err("garbage");
        assert!(e.to_string().contains("not a JPEG"), "{e}");
    }
}
