//! Pure pixel conversion to I420, the encoder's input format.
//!
//! Owns: packed/semi-planar 4:2:x and decoded 4:4:4 to planar 4:2:0 conversion (no I/O, no
//! allocation in the per-frame functions) and `Converter`, which passes I420 frames through and
//! converts others (MJPEG through `mjpeg.rs`) into one reused buffer. Does not own: JPEG
//! decoding itself (`mjpeg.rs`), nor H.264 passthrough (`pipeline`).
//!
//! The plain loops here were measured against the SIMD crate yuvutils-rs (see
//! `benches/convert.rs`); they are kept while the crate does not win clearly.

use std::fmt;

use super::mjpeg::MjpegDecoder;
use crate::media::{PixelFormat, RawFrame};

/// Why a frame could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// No conversion from this format to I420 (yet).
    Unsupported(PixelFormat),
    /// 4:2:0 output needs an even, non-zero size.
    BadSize { width: u32, height: u32 },
    /// The input or output buffer is shorter or longer than the size says.
    BadLength {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    /// A compressed picture (MJPEG) could not be decoded.
    Decode { reason: String },
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::Unsupported(fmt) => write!(f, "cannot convert {fmt} to I420"),
            ConvertError::BadSize { width, height } => {
                write!(
                    f,
                    "cannot convert a {width}x{height} picture: size must be even"
                )
            }
            ConvertError::BadLength {
                format,
                width,
                height,
                expected,
                got,
            } => write!(
                f,
                "{format} {width}x{height} buffer has {got} bytes, expected {expected}"
            ),
            ConvertError::Decode { reason } => write!(f, "cannot decode picture: {reason}"),
        }
    }
}

impl std::error::Error for ConvertError {}

/// Bytes in an I420 picture of this size.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

fn check(
    format: PixelFormat,
    width: u32,
    height: u32,
    src_len: usize,
    src_needed: usize,
    dst_len: usize,
) -> Result<(), ConvertError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(ConvertError::BadSize { width, height });
    }
    let bad = |expected, got| ConvertError::BadLength {
        format,
        width,
        height,
        expected,
        got,
    };
    if src_len < src_needed {
        return Err(bad(src_needed, src_len));
    }
    let out = i420_len(width, height);
    if dst_len != out {
        return Err(bad(out, dst_len));
    }
    Ok(())
}

/// Packed 4:2:2 (two pixels in four bytes) to I420; `y0`, `u`, `v` are byte offsets of the
/// first luma sample and the chroma samples within each 4-byte group.
fn packed422_to_i420(
    src: &[u8],
    src_stride: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
    (y0, u_off, v_off): (usize, usize, usize),
) {
    let (w, h) = (width as usize, height as usize);
    let (ys, chroma) = dst.split_at_mut(w * h);
    let (us, vs) = chroma.split_at_mut((w / 2) * (h / 2));
    for (row, yline) in ys.chunks_exact_mut(w).enumerate() {
        let s = &src[row * src_stride..][..2 * w];
        for (pair, out) in s.chunks_exact(4).zip(yline.chunks_exact_mut(2)) {
            out[0] = pair[y0];
            out[1] = pair[y0 + 2];
        }
    }
    // Chroma: average the two source rows of each output row (4:2:2 -> 4:2:0).
    for crow in 0..h / 2 {
        let a = &src[2 * crow * src_stride..][..2 * w];
        let b = &src[(2 * crow + 1) * src_stride..][..2 * w];
        let (uline, vline) = (
            &mut us[crow * (w / 2)..][..w / 2],
            &mut vs[crow * (w / 2)..][..w / 2],
        );
        for (i, (pa, pb)) in a.chunks_exact(4).zip(b.chunks_exact(4)).enumerate() {
            uline[i] = (pa[u_off] as u16 + pb[u_off] as u16).div_ceil(2) as u8;
            vline[i] = (pa[v_off] as u16 + pb[v_off] as u16).div_ceil(2) as u8;
        }
    }
}

fn packed_needed(src_stride: usize, width: u32, height: u32) -> usize {
    src_stride * (height as usize).saturating_sub(1) + 2 * width as usize
}

/// YUYV (Y0 U Y1 V) with `src_stride` bytes per row to I420 in `dst` (exactly `i420_len`).
pub fn yuyv_to_i420(
    src: &[u8],
    src_stride: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    packed_to_i420(PixelFormat::Yuyv, src, src_stride, width, height, dst)
}

/// UYVY (U Y0 V Y1) with `src_stride` bytes per row to I420 in `dst` (exactly `i420_len`).
pub fn uyvy_to_i420(
    src: &[u8],
    src_stride: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    packed_to_i420(PixelFormat::Uyvy, src, src_stride, width, height, dst)
}

/// Packed 4:2:2 to I420; the format decides where Y0, U and V sit in each 4-byte group.
fn packed_to_i420(
    format: PixelFormat,
    src: &[u8],
    src_stride: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let offsets = match format {
        PixelFormat::Uyvy => (1, 0, 2),
        _ => (0, 1, 3),
    };
    let stride = src_stride.max(2 * width as usize);
    let needed = packed_needed(stride, width, height);
    check(format, width, height, src.len(), needed, dst.len())?;
    packed422_to_i420(src, stride, width, height, dst, offsets);
    Ok(())
}

/// NV12 (Y plane, then interleaved U V plane, both with `src_stride` bytes per row) to I420.
pub fn nv12_to_i420(
    src: &[u8],
    src_stride: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let (w, h) = (width as usize, height as usize);
    let stride = src_stride.max(w);
    let needed = stride * h + stride * (h / 2).saturating_sub(1) + w;
    check(
        PixelFormat::Nv12,
        width,
        height,
        src.len(),
        needed,
        dst.len(),
    )?;
    let (ys, chroma) = dst.split_at_mut(w * h);
    let (us, vs) = chroma.split_at_mut((w / 2) * (h / 2));
    for (row, yline) in ys.chunks_exact_mut(w).enumerate() {
        yline.copy_from_slice(&src[row * stride..][..w]);
    }
    let uv = &src[stride * h..];
    for crow in 0..h / 2 {
        let s = &uv[crow * stride..][..w];
        let (uline, vline) = (
            &mut us[crow * (w / 2)..][..w / 2],
            &mut vs[crow * (w / 2)..][..w / 2],
        );
        for (i, pair) in s.chunks_exact(2).enumerate() {
            uline[i] = pair[0];
            vline[i] = pair[1];
        }
    }
    Ok(())
}

/// Interleaved YCbCr 4:4:4 (what the JPEG decoder gives) to I420: luma picked out, chroma
/// averaged over each 2x2 block.
pub fn ycbcr444_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let (w, h) = (width as usize, height as usize);
    check(
        PixelFormat::Mjpeg,
        width,
        height,
        src.len(),
        3 * w * h,
        dst.len(),
    )?;
    let (ys, chroma) = dst.split_at_mut(w * h);
    let (us, vs) = chroma.split_at_mut((w / 2) * (h / 2));
    for (row, yline) in ys.chunks_exact_mut(w).enumerate() {
        let s = &src[row * 3 * w..][..3 * w];
        for (px, out) in s.chunks_exact(3).zip(yline.iter_mut()) {
            *out = px[0];
        }
    }
    for crow in 0..h / 2 {
        let a = &src[2 * crow * 3 * w..][..3 * w];
        let b = &src[(2 * crow + 1) * 3 * w..][..3 * w];
        let (uline, vline) = (
            &mut us[crow * (w / 2)..][..w / 2],
            &mut vs[crow * (w / 2)..][..w / 2],
        );
        for (i, (pa, pb)) in a.chunks_exact(6).zip(b.chunks_exact(6)).enumerate() {
            let sum = |k: usize| pa[k] as u16 + pa[k + 3] as u16 + pb[k] as u16 + pb[k + 3] as u16;
            uline[i] = ((sum(1) + 2) / 4) as u8;
            vline[i] = ((sum(2) + 2) / 4) as u8;
        }
    }
    Ok(())
}

/// A conversion: source, source stride, width, height, destination.
type ConvertFn = fn(&[u8], usize, u32, u32, &mut [u8]) -> Result<(), ConvertError>;

/// Brings frames to I420: I420 passes through untouched, raw formats are converted into one
/// buffer that is reused from frame to frame.
#[derive(Default)]
pub struct Converter {
    out: Option<RawFrame>,
    mjpeg: Option<MjpegDecoder>,
}

impl Converter {
    pub fn new() -> Self {
        Converter::default()
    }

    /// `frame` itself if it is I420, else the converted copy (same size, times and sequence).
    pub fn to_i420<'a>(&'a mut self, frame: &'a RawFrame) -> Result<&'a RawFrame, ConvertError> {
        let convert: ConvertFn = match frame.format {
            PixelFormat::I420 => {
                let expected = i420_len(frame.width, frame.height);
                if frame.data.len() != expected {
                    return Err(ConvertError::BadLength {
                        format: frame.format,
                        width: frame.width,
                        height: frame.height,
                        expected,
                        got: frame.data.len(),
                    });
                }
                return Ok(frame);
            }
            PixelFormat::Yuyv => yuyv_to_i420,
            PixelFormat::Uyvy => uyvy_to_i420,
            PixelFormat::Nv12 => nv12_to_i420,
            PixelFormat::Mjpeg => return self.decode_mjpeg(frame),
            PixelFormat::H264 => return Err(ConvertError::Unsupported(frame.format)),
        };
        let stride = match frame.format {
            PixelFormat::Nv12 => frame.width as usize,
            _ => 2 * frame.width as usize,
        };
        let out = out_frame(&mut self.out, frame);
        out.data.resize(i420_len(frame.width, frame.height), 0);
        convert(
            &frame.data,
            stride,
            frame.width,
            frame.height,
            &mut out.data,
        )?;
        out.width = frame.width;
        out.height = frame.height;
        Ok(out)
    }

    /// The buffer holding the last converted picture, so that the caller can take it
    /// without a copy by swapping in another buffer (which the next conversion reuses).
    /// `None` before the first conversion.
    pub fn output_buffer(&mut self) -> Option<&mut Vec<u8>> {
        self.out.as_mut().map(|o| &mut o.data)
    }

    /// Decodes an MJPEG frame; its picture must have the size the stream was set up with.
    fn decode_mjpeg<'a>(&'a mut self, frame: &'a RawFrame) -> Result<&'a RawFrame, ConvertError> {
        let decoder = self.mjpeg.get_or_insert_with(MjpegDecoder::new);
        let out = out_frame(&mut self.out, frame);
        let (w, h) = decoder.decode_i420(&frame.data, &mut out.data)?;
        if (w, h) != (frame.width, frame.height) {
            return Err(ConvertError::Decode {
                reason: format!(
                    "picture is {w}x{h}, the stream is {}x{}",
                    frame.width, frame.height
                ),
            });
        }
        out.width = w;
        out.height = h;
        Ok(out)
    }
}

/// The reused output frame, carrying `frame`'s times and sequence.
fn out_frame<'a>(slot: &'a mut Option<RawFrame>, frame: &RawFrame) -> &'a mut RawFrame {
    let out = slot.get_or_insert_with(|| RawFrame {
        format: PixelFormat::I420,
        width: 0,
        height: 0,
        data: Vec::new(),
        pts_90k: 0,
        wall: frame.wall,
        sequence: 0,
    });
    out.pts_90k = frame.pts_90k;
    out.wall = frame.wall;
    out.sequence = frame.sequence;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// A 4x2 picture: luma 10..17, left pixel pair chroma (100, 200) on row 0 and (102, 204)
    /// on row 1, right pair (50, 60) and (52, 64).
    const Y: [u8; 8] = [10, 11, 12, 13, 14, 15, 16, 17];
    const EXPECTED: [u8; 12] = [10, 11, 12, 13, 14, 15, 16, 17, 101, 51, 202, 62];

    #[test]
    fn yuyv() {
        let src = [
            10, 100, 11, 200, 12, 50, 13, 60, //
            14, 102, 15, 204, 16, 52, 17, 64,
        ];
        let mut dst = [0u8; 12];
        yuyv_to_i420(&src, 8, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, EXPECTED);
    }

    #[test]
    fn uyvy() {
        let src = [
            100, 10, 200, 11, 50, 12, 60, 13, //
            102, 14, 204, 15, 52, 16, 64, 17,
        ];
        let mut dst = [0u8; 12];
        uyvy_to_i420(&src, 8, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, EXPECTED);
    }

    #[test]
    fn yuyv_with_row_padding() {
        let src = [
            10, 100, 11, 200, 12, 50, 13, 60, 0xEE, 0xEE, //
            14, 102, 15, 204, 16, 52, 17, 64,
        ];
        let mut dst = [0u8; 12];
        yuyv_to_i420(&src, 10, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, EXPECTED);
    }

    #[test]
    fn nv12() {
        let mut src = Y.to_vec();
        src.extend_from_slice(&[101, 202, 51, 62]);
        let mut dst = [0u8; 12];
        nv12_to_i420(&src, 4, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, EXPECTED);
    }

    #[test]
    fn nv12_with_stride() {
        let src = [
            10, 11, 12, 13, 0, 0, //
            14, 15, 16, 17, 0, 0, //
            101, 202, 51, 62,
        ];
        let mut dst = [0u8; 12];
        nv12_to_i420(&src, 6, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, EXPECTED);
    }

    #[test]
    fn rejects_bad_sizes_and_lengths() {
        let mut dst = [0u8; 12];
        assert_eq!(
            yuyv_to_i420(&[0; 16], 8, 3, 2, &mut dst),
            Err(ConvertError::BadSize {
                width: 3,
                height: 2
            })
        );
        assert!(matches!(
            yuyv_to_i420(&[0; 15], 8, 4, 2, &mut dst),
            Err(ConvertError::BadLength {
                expected: 16,
                got: 15,
                ..
            })
        ));
        assert!(matches!(
            nv12_to_i420(&[0; 12], 4, 4, 2, &mut [0u8; 11]),
            Err(ConvertError::BadLength {
                expected: 12,
                got: 11,
                ..
            })
        ));
    }

    fn frame(format: PixelFormat, data: Vec<u8>) -> RawFrame {
        RawFrame {
            format,
            width: 4,
            height: 2,
            data,
            pts_90k: 3000,
            wall: SystemTime::UNIX_EPOCH,
            sequence: 7,
        }
    }

    #[test]
    fn converter_passes_i420_through_and_reuses_its_buffer() {
        let mut c = Converter::new();
        let f = frame(PixelFormat::I420, EXPECTED.to_vec());
        let out = c.to_i420(&f).expect("passthrough");
        assert!(std::ptr::eq(out, &f));

        let f = frame(
            PixelFormat::Yuyv,
            vec![
                10, 100, 11, 200, 12, 50, 13, 60, 14, 102, 15, 204, 16, 52, 17, 64,
            ],
        );
        let out = c.to_i420(&f).expect("convert");
        assert_eq!(
            (out.format, out.pts_90k, out.sequence),
            (PixelFormat::I420, 3000, 7)
        );
        assert_eq!(out.data, EXPECTED);
        let ptr = out.data.as_ptr();
        let out = c.to_i420(&f).expect("convert");
        assert_eq!(out.data.as_ptr(), ptr, "buffer reused");

        let f = frame(PixelFormat::H264, vec![0, 0, 0, 1]);
        assert_eq!(
            c.to_i420(&f).err(),
            Some(ConvertError::Unsupported(PixelFormat::H264))
        );
        let f = frame(PixelFormat::Mjpeg, vec![0xFF, 0xD8]);
        assert!(matches!(c.to_i420(&f), Err(ConvertError::Decode { .. })));
    }

    #[test]
    fn ycbcr444() {
        // 4x2: Y 10..17; chroma per pixel so each 2x2 block averages to a known value.
        let mut src = Vec::new();
        for (i, y) in Y.iter().enumerate() {
            let left = i % 4 < 2;
            src.extend_from_slice(&[*y, if left { 100 } else { 50 }, if left { 201 } else { 61 }]);
        }
        // Make one sample odd so the rounding shows: (201*3 + 203 + 2) / 4 = 202.
        src[3 * 5 + 2] = 203;
        let mut dst = [0u8; 12];
        ycbcr444_to_i420(&src, 4, 2, &mut dst).expect("convert");
        assert_eq!(dst, [10, 11, 12, 13, 14, 15, 16, 17, 100, 50, 202, 61]);
    }
}
