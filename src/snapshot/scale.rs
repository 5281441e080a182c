//! Pure picture arithmetic for snapshots: the size a snapshot is made at, and scaling a
//! planar 4:2:0 picture down by area averaging.
//!
//! Owns: `Picture` (a borrowed planar 4:2:0 view), `target_size` (keep the aspect ratio,
//! never upscale) and `scale_down`. No I/O, no allocation beyond the output picture.
//! Does not own: where pictures come from (`snapshot`), nor JPEG (`jpeg.rs`).

/// A planar 4:2:0 picture: Y `width` x `height`, then U and V of
/// `width.div_ceil(2)` x `height.div_ceil(2)`, tightly packed (the layout of the pictures
/// the pipeline encodes and of `encode::DecodedPicture`).
#[derive(Clone, Copy, Debug)]
pub struct Picture<'a> {
    pub width: u32,
    pub height: u32,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
}

/// The chroma plane size of a 4:2:0 picture.
pub fn chroma_size(width: u32, height: u32) -> (usize, usize) {
    (width.div_ceil(2) as usize, height.div_ceil(2) as usize)
}

/// Bytes of a tightly packed 4:2:0 picture.
pub fn planar_len(width: u32, height: u32) -> usize {
    let (cw, ch) = chroma_size(width, height);
    width as usize * height as usize + 2 * cw * ch
}

impl<'a> Picture<'a> {
    /// Splits a tightly packed buffer; `None` when it is too short or the size is zero.
    pub fn from_packed(width: u32, height: u32, data: &'a [u8]) -> Option<Picture<'a>> {
        if width == 0 || height == 0 || data.len() < planar_len(width, height) {
            return None;
        }
        let (cw, ch) = chroma_size(width, height);
        let (y, rest) = data.split_at(width as usize * height as usize);
        let (u, rest) = rest.split_at(cw * ch);
        Some(Picture {
            width,
            height,
            y,
            u,
            v: &rest[..cw * ch],
        })
    }
}

/// The size of a snapshot of a `width` x `height` picture asked `wanted` pixels wide: the
/// picture's own size when none is asked or when asked wider (never upscaled), else that
/// width with the height that keeps the aspect ratio (rounded, at least 1).
pub fn target_size(width: u32, height: u32, wanted: Option<u32>) -> (u32, u32) {
    match wanted {
        Some(w) if w > 0 && w < width => {
            let h = (height as u64 * w as u64 * 2 + width as u64) / (2 * width as u64);
            (w, h.max(1) as u32)
        }
        _ => (width, height),
    }
}

/// For each output index, the input range it averages: `[start, end)` with at least one
/// sample, covering the input exactly once over all outputs.
fn spans(input: usize, output: usize) -> Vec<(usize, usize)> {
    (0..output)
        .map(|i| {
            let start = i * input / output;
            let end = ((i + 1) * input / output).max(start + 1).min(input);
            (start, end)
        })
        .collect()
}

/// Scales one plane (`sw` x `sh`, tightly packed) down to `dw` x `dh` into `out`, each
/// output sample the rounded mean of the input samples it covers.
fn scale_plane(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize, out: &mut Vec<u8>) {
    let xs = spans(sw, dw);
    let mut sums = vec![0u32; dw];
    for (y0, y1) in spans(sh, dh) {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in src[y0 * sw..y1 * sw].chunks_exact(sw) {
            for (sum, &(x0, x1)) in sums.iter_mut().zip(&xs) {
                *sum += row[x0..x1].iter().map(|&p| p as u32).sum::<u32>();
            }
        }
        let rows = (y1 - y0) as u32;
        for (sum, &(x0, x1)) in sums.iter().zip(&xs) {
            let n = rows * (x1 - x0) as u32;
            out.push(((sum + n / 2) / n) as u8);
        }
    }
}

/// Scales `pic` down to `dw` x `dh` (each no larger than the picture's) by area averaging;
/// the result is tightly packed 4:2:0 (`Picture::from_packed`).
pub fn scale_down(pic: &Picture<'_>, dw: u32, dh: u32) -> Vec<u8> {
    let (dw, dh) = (dw.clamp(1, pic.width), dh.clamp(1, pic.height));
    let mut out = Vec::with_capacity(planar_len(dw, dh));
    let (sw, sh) = (pic.width as usize, pic.height as usize);
    let (scw, sch) = chroma_size(pic.width, pic.height);
    let (dcw, dch) = chroma_size(dw, dh);
    scale_plane(pic.y, sw, sh, dw as usize, dh as usize, &mut out);
    scale_plane(pic.u, scw, sch, dcw, dch, &mut out);
    scale_plane(pic.v, scw, sch, dcw, dch, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_ratio_and_never_upscale() {
        assert_eq!(target_size(640, 480, None), (640, 480));
        assert_eq!(target_size(640, 480, Some(320)), (320, 240));
        assert_eq!(target_size(1280, 720, Some(320)), (320, 180));
        assert_eq!(
            target_size(1920, 1080, Some(1000)),
            (1000, 563),
            "562.5 rounds up"
        );
        assert_eq!(target_size(640, 480, Some(640)), (640, 480));
        assert_eq!(
            target_size(640, 480, Some(4000)),
            (640, 480),
            "never upscaled"
        );
        assert_eq!(target_size(640, 480, Some(0)), (640, 480));
        assert_eq!(target_size(4000, 10, Some(16)), (16, 1), "at least one row");
    }

    #[test]
    fn spans_cover_the_input_once() {
        for (i, o) in [(640, 320), (480, 240), (1080, 563), (7, 3), (5, 5), (3, 1)] {
            let s = spans(i, o);
            assert_eq!(s.len(), o);
            assert_eq!(s[0].0, 0);
            assert_eq!(s[o - 1].1, i);
            for w in s.windows(2) {
                assert_eq!(w[0].1, w[1].0, "{i}->{o}: gap or overlap");
            }
            assert!(s.iter().all(|(a, b)| b > a));
        }
    }

    /// A picture whose luma is `f(x, y)` and whose chroma planes are constant.
    fn picture(w: u32, h: u32, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut data = Vec::new();
        for y in 0..h as usize {
            for x in 0..w as usize {
                data.push(f(x, y));
            }
        }
        let (cw, ch) = chroma_size(w, h);
        data.extend(std::iter::repeat_n(90, cw * ch));
        data.extend(std::iter::repeat_n(200, cw * ch));
        data
    }

    #[test]
    fn halving_averages_each_two_by_two_block() {
        let data = picture(4, 4, |x, y| (x * 10 + y * 50) as u8);
        let pic = Picture::from_packed(4, 4, &data).expect("picture");
        let out = scale_down(&pic, 2, 2);
        let small = Picture::from_packed(2, 2, &out).expect("scaled");
        // Block (0,0): 0, 10, 50, 60 -> 30; (1,0): 20, 30, 70, 80 -> 50; and so on.
        assert_eq!(small.y, &[30, 50, 130, 150]);
        assert_eq!((small.u, small.v), (&[90u8][..], &[200u8][..]));
    }

    #[test]
    fn flat_pictures_stay_flat_and_edges_stay_put() {
        // Left half black, right half white, at any odd or even scale.
        let (w, h) = (641u32, 361u32);
        let data = picture(w, h, |x, _| if x < 320 { 16 } else { 235 });
        let pic = Picture::from_packed(w, h, &data).expect("picture");
        for dw in [320u32, 161, 100, 17] {
            let (tw, th) = target_size(w, h, Some(dw));
            let out = scale_down(&pic, tw, th);
            assert_eq!(out.len(), planar_len(tw, th));
            let small = Picture::from_packed(tw, th, &out).expect("scaled");
            for row in small.y.chunks_exact(tw as usize) {
                assert_eq!(row[0], 16, "{dw}: left edge");
                assert_eq!(row[tw as usize - 1], 235, "{dw}: right edge");
                // One column at most is a mix of both halves.
                let mixed = row.iter().filter(|&&p| p != 16 && p != 235).count();
                assert!(mixed <= 1, "{dw}: {mixed} mixed columns");
            }
            assert!(small.u.iter().all(|&c| c == 90) && small.v.iter().all(|&c| c == 200));
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        assert!(Picture::from_packed(4, 4, &[0; 23]).is_none());
        assert!(Picture::from_packed(4, 4, &[0; 24]).is_some());
        assert!(
            Picture::from_packed(3, 3, &[0; 9 + 8]).is_some(),
            "odd sizes round chroma up"
        );
        assert!(Picture::from_packed(0, 4, &[0; 24]).is_none());
    }
}
