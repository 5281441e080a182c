//! Cost of bringing one 1280x720 camera frame to I420 (the encoder's input), per raw format,
//! with our own loops (`encode::convert`) and with the SIMD crate yuvutils-rs, and of MJPEG
//! decoding with zune-jpeg (our choice, YCbCr output) and jpeg-decoder (RGB output).
//!
//! Run: `cargo bench --bench convert`. Prints ms/frame and ns/pixel; asserts only that the
//! alternatives agree on the picture (timing goals live here, not in tests).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::hint::black_box;
use std::time::{Duration, Instant};

use vigint::encode::convert::{
    i420_len, nv12_to_i420, uyvy_to_i420, ycbcr444_to_i420, yuyv_to_i420,
};
use vigint::encode::mjpeg::MjpegDecoder;
use vigint::source::pattern::{FrameCode, TestPattern};
use yuvutils_rs::{
    uyvy422_to_yuv420, yuyv422_to_yuv420, BufferStoreMut, YuvPackedImage, YuvPlanarImageMut,
};

const W: u32 = 1280;
const H: u32 = 720;

/// Runs `f` for about a second after a warm-up; returns the mean time per call.
fn time(mut f: impl FnMut()) -> Duration {
    for _ in 0..5 {
        f();
    }
    let (t0, mut n) = (Instant::now(), 0u32);
    while t0.elapsed() < Duration::from_secs(1) || n < 20 {
        f();
        n += 1;
    }
    t0.elapsed() / n
}

fn report(name: &str, d: Duration) {
    let px = (W * H) as f64;
    println!(
        "{name:<44} {:>7.3} ms/frame {:>6.2} ns/pixel",
        d.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e9 / px
    );
}

/// Test-pattern picture in I420 (realistic detail, every block changes).
fn i420_picture() -> Vec<u8> {
    let p = TestPattern::new(W, H, 30).expect("pattern");
    let mut out = Vec::new();
    let code = FrameCode {
        frame: 7,
        capture_ms: 1,
    };
    p.draw(7, code, &mut out);
    out
}

fn planes(i420: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (w, h) = (W as usize, H as usize);
    let (y, rest) = i420.split_at(w * h);
    let (u, v) = rest.split_at(w * h / 4);
    (y, u, v)
}

/// Packed 4:2:2 from I420 (chroma rows doubled); `uyvy` swaps the byte order.
fn packed(i420: &[u8], uyvy: bool) -> Vec<u8> {
    let (w, h) = (W as usize, H as usize);
    let (y, u, v) = planes(i420);
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        for x in (0..w).step_by(2) {
            let (y0, y1) = (y[row * w + x], y[row * w + x + 1]);
            let c = (row / 2) * (w / 2) + x / 2;
            if uyvy {
                out.extend_from_slice(&[u[c], y0, v[c], y1]);
            } else {
                out.extend_from_slice(&[y0, u[c], y1, v[c]]);
            }
        }
    }
    out
}

fn nv12(i420: &[u8]) -> Vec<u8> {
    let (y, u, v) = planes(i420);
    let mut out = y.to_vec();
    for (a, b) in u.iter().zip(v) {
        out.extend_from_slice(&[*a, *b]);
    }
    out
}

/// Interleaved YCbCr 4:4:4 (chroma repeated) for the JPEG encoder.
fn ycc444(i420: &[u8]) -> Vec<u8> {
    let (w, h) = (W as usize, H as usize);
    let (y, u, v) = planes(i420);
    let mut out = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for x in 0..w {
            let c = (row / 2) * (w / 2) + x / 2;
            out.extend_from_slice(&[y[row * w + x], u[c], v[c]]);
        }
    }
    out
}

/// A 4:2:2 JPEG at the quality webcams use, like one MJPEG frame.
fn mjpeg_frame(ycc: &[u8]) -> Vec<u8> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let mut jpeg = Vec::new();
    let mut enc = Encoder::new(&mut jpeg, 85);
    enc.set_sampling_factor(SamplingFactor::R_4_2_2);
    enc.encode(ycc, W as u16, H as u16, ColorType::Ycbcr)
        .expect("jpeg encode");
    jpeg
}

/// yuvutils-rs packed 4:2:2 -> I420 into `dst`.
fn yuvutils_packed(src: &[u8], dst: &mut [u8], uyvy: bool) {
    let (w, h) = (W as usize, H as usize);
    let (y, rest) = dst.split_at_mut(w * h);
    let (u, v) = rest.split_at_mut(w * h / 4);
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: W,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: W / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: W / 2,
        width: W,
        height: H,
    };
    let packed = YuvPackedImage {
        yuy: src,
        yuy_stride: 2 * W,
        width: W,
        height: H,
    };
    let r = if uyvy {
        uyvy422_to_yuv420(&mut planar, &packed)
    } else {
        yuyv422_to_yuv420(&mut planar, &packed)
    };
    r.expect("yuvutils conversion");
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn main() {
    println!(
        "1280x720 to I420, {} ({} threads of the machine; one is used)",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let i420 = i420_picture();
    let mut dst = vec![0u8; i420_len(W, H)];
    let mut other = vec![0u8; i420_len(W, H)];

    for (name, uyvy) in [("YUYV", false), ("UYVY", true)] {
        let src = packed(&i420, uyvy);
        let ours = if uyvy { uyvy_to_i420 } else { yuyv_to_i420 };
        report(
            &format!("{name} -> I420 (vigint convert.rs)"),
            time(|| ours(black_box(&src), 2 * W as usize, W, H, &mut dst).expect("convert")),
        );
        report(
            &format!("{name} -> I420 (yuvutils-rs 0.8 SIMD)"),
            time(|| yuvutils_packed(black_box(&src), &mut other, uyvy)),
        );
        let (y, c) = (W as usize * H as usize, i420_len(W, H));
        let wrong = (0..y).filter(|&i| dst[i] != other[i]).count();
        let rows: std::collections::BTreeSet<usize> = (0..y)
            .filter(|&i| dst[i] != other[i])
            .map(|i| i % W as usize)
            .collect();
        println!(
            "  luma samples that differ: {wrong} of {y}, in columns {:?}..{:?}",
            rows.first(),
            rows.last()
        );
        println!(
            "  agree: luma max diff {}, chroma max diff {}",
            max_diff(&dst[..y], &other[..y]),
            max_diff(&dst[y..c], &other[y..c])
        );
    }

    let src = nv12(&i420);
    report(
        "NV12 -> I420 (vigint convert.rs)",
        time(|| nv12_to_i420(black_box(&src), W as usize, W, H, &mut dst).expect("convert")),
    );
    report(
        "YU12 = I420 (copy out of the capture buffer)",
        time(|| dst.copy_from_slice(black_box(&i420))),
    );

    let ycc = ycc444(&i420);
    let jpeg = mjpeg_frame(&ycc);
    println!("MJPEG frame: 4:2:2, quality 85, {} KiB", jpeg.len() / 1024);
    let mut dec = MjpegDecoder::new();
    let mut out = Vec::new();
    report(
        "MJPEG -> I420 (zune-jpeg YCbCr + convert.rs)",
        time(|| {
            dec.decode_i420(black_box(&jpeg), &mut out).expect("decode");
        }),
    );
    report(
        "  of which YCbCr 4:4:4 -> I420",
        time(|| ycbcr444_to_i420(black_box(&ycc), W, H, &mut dst).expect("convert")),
    );
    report(
        "MJPEG -> RGB (jpeg-decoder 0.3, for comparison)",
        time(|| {
            let mut d = jpeg_decoder::Decoder::new(black_box(&jpeg[..]));
            black_box(d.decode().expect("jpeg-decoder"));
        }),
    );
}
