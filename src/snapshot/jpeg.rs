//! Writing a snapshot picture as a JPEG (the only file naming the jpeg-encoder crate).
//!
//! Owns: handing a planar 4:2:0 picture to jpeg-encoder row by row (no RGB or interleaved
//! copy: its `ImageBuffer` reads our planes), 4:2:0 JPEG at a fixed quality, and the range
//! conversion: video pictures use the limited range (luma 16-235, chroma 16-240) that players
//! assume for H.264 without other signalling, JFIF the full range, so both are stretched
//! through two 256-entry tables and the JPEG looks as a player shows the stream.
//! Does not own: scaling (`scale.rs`) or where pictures come from.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use super::scale::Picture;

/// JPEG quality (1-100): sharp enough to read a frame code or a number plate, about
/// 60-150 KB at 1280x720.
pub const QUALITY: u8 = 85;

/// Limited-range video levels to full-range JFIF levels: luma and chroma tables.
fn range_tables() -> ([u8; 256], [u8; 256]) {
    let mut luma = [0u8; 256];
    let mut chroma = [0u8; 256];
    for i in 0..256 {
        let v = i as i32;
        luma[i] = (((v - 16) * 255 * 2 + 219) / (2 * 219)).clamp(0, 255) as u8;
        let c = (v - 128) * 255 * 2;
        let c = if c >= 0 {
            (c + 224) / 448
        } else {
            (c - 224) / 448
        };
        chroma[i] = (c + 128).clamp(0, 255) as u8;
    }
    (luma, chroma)
}

/// The picture as jpeg-encoder reads it: one row of each component at a time, chroma
/// repeated across the two pixels (and two rows) it covers.
struct Rows<'a> {
    pic: Picture<'a>,
    luma: [u8; 256],
    chroma: [u8; 256],
}

impl ImageBuffer for Rows<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.pic.width as u16
    }

    fn height(&self) -> u16 {
        self.pic.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let w = self.pic.width as usize;
        let cw = self.pic.width.div_ceil(2) as usize;
        let row = y as usize;
        let ys = &self.pic.y[row * w..][..w];
        let us = &self.pic.u[(row / 2) * cw..][..cw];
        let vs = &self.pic.v[(row / 2) * cw..][..cw];
        buffers[0].extend(ys.iter().map(|&p| self.luma[p as usize]));
        for x in 0..w {
            buffers[1].push(self.chroma[us[x / 2] as usize]);
            buffers[2].push(self.chroma[vs[x / 2] as usize]);
        }
    }
}

/// The largest side a JPEG can have.
pub const MAX_SIDE: u32 = u16::MAX as u32;

/// Encodes `pic` as a baseline 4:2:0 JPEG.
pub fn encode(pic: &Picture<'_>) -> Result<Vec<u8>, String> {
    if pic.width > MAX_SIDE || pic.height > MAX_SIDE {
        return Err(format!(
            "a {}x{} picture is too large for a JPEG",
            pic.width, pic.height
        ));
    }
    let (luma, chroma) = range_tables();
    let mut out = Vec::with_capacity(pic.y.len() / 8);
    let mut encoder = Encoder::new(&mut out, QUALITY);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder
        .encode_image(Rows {
            pic: *pic,
            luma,
            chroma,
        })
        .map_err(|e| format!("JPEG encoding failed: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::scale::chroma_size;

    #[test]
    fn limited_range_is_stretched_to_full() {
        let (luma, chroma) = range_tables();
        assert_eq!((luma[0], luma[16], luma[235], luma[255]), (0, 0, 255, 255));
        assert_eq!(luma[126], 128, "mid grey stays mid grey");
        assert_eq!((chroma[16], chroma[128], chroma[240]), (0, 128, 255));
    }

    #[test]
    fn encodes_a_picture_that_decodes_to_its_size_and_levels() {
        // Odd size: chroma rounds up, the JPEG keeps the exact size.
        let (w, h) = (33u32, 17u32);
        let (cw, ch) = chroma_size(w, h);
        let mut data = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                data.push(if x < 16 { 16 } else { 235 });
            }
        }
        data.extend(std::iter::repeat_n(128, 2 * cw * ch));
        let pic = Picture::from_packed(w, h, &data).expect("picture");
        let jpeg = encode(&pic).expect("jpeg");
        let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
        let rgb = dec.decode().expect("decodes");
        let info = dec.info().expect("info");
        assert_eq!((info.width as u32, info.height as u32), (w, h));
        // Black left, white right (full range after the stretch), grey chroma.
        let px = |x: usize, y: usize| &rgb[(y * w as usize + x) * 3..][..3];
        assert!(px(2, 8).iter().all(|&c| c < 10), "{:?}", px(2, 8));
        assert!(px(30, 8).iter().all(|&c| c > 245), "{:?}", px(30, 8));
    }
}
