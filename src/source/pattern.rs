//! Test pattern source and the machine-readable frame code burned into every picture.
//!
//! Owns: `TestPattern` (an I420 `FrameSource` paced on an absolute schedule), what it draws,
//! and the frame code (`FrameCode`, `burn_code`, `read_code`) that lets a test or a latency
//! probe read a frame's number and capture time back out of a decoded picture.
//! Does not own: encoding, or where frames go.
//!
//! Picture: a code band at the top (neutral chroma), then scrolling colour bars with a fine
//! luma texture and a vertically moving ripple (so every macroblock changes every frame), a
//! bouncing checkerboard box and a seven-segment frame counter at the bottom left. Drawing is
//! row copies from precomputed templates plus a few rectangles (about 50 us at 1280x720 here).
//!
//! Frame code layout (see `CodeLayout`): a grid of square cells of `block` pixels starting at
//! the top-left corner, read in raster order. `block` is 8 px below 640 px width, else
//! 16 px per started 640 px (16 at 640, 32 at 1280, 48 at 1920: macroblock aligned). The grid
//! has `min(width / block, 40)` columns and as many rows as needed for 100 cells: 12 sync cells
//! (`SYNC`), then 88 data bits MSB first: frame (32), capture_ms (48), CRC-8/SAE-J1850 of the 10
//! big-endian payload bytes (8). A one is luma 235, a zero luma 16; unused grid cells alternate,
//! and the rest of the band is grey 128. The reader averages the middle half of each cell,
//! takes its threshold from the sync cells and rejects low contrast, a sync mismatch or a bad
//! CRC. The reader must be given the picture at the size it was burned at.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{CaptureError, FrameSource};
use crate::media::frame_pts_90k;
use crate::media::{PixelFormat, RawFrame};

/// The number and capture time of one frame, as burned into its picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCode {
    /// Frame index from the source start (wraps at 2^32).
    pub frame: u32,
    /// Wall clock at capture, milliseconds since the Unix epoch (48 bits are kept).
    pub capture_ms: u64,
}

/// Sync cells that start every code; both levels appear so the reader can set its threshold.
const SYNC: [bool; 12] = [
    true, false, true, true, false, false, true, false, false, true, true, true,
];
const DATA_BITS: usize = 32 + 48 + 8;
const CODE_CELLS: usize = SYNC.len() + DATA_BITS;
const MAX_COLS: usize = 40;
const LUMA_ONE: u8 = 235;
const LUMA_ZERO: u8 = 16;
const NEUTRAL: u8 = 128;
/// Smallest luma difference between the darkest sync one and the brightest sync zero.
const MIN_CONTRAST: u32 = 60;
const MS_MASK: u64 = (1 << 48) - 1;

/// Where the frame code sits in a picture of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLayout {
    /// Cell edge in pixels.
    pub block: usize,
    pub cols: usize,
    pub rows: usize,
}

impl CodeLayout {
    /// The layout for a picture of `width` x `height`; `None` if the code does not fit in
    /// the top half of the picture.
    pub fn for_size(width: u32, height: u32) -> Option<CodeLayout> {
        let (w, h) = (width as usize, height as usize);
        let block = if w < 640 { 8 } else { 16 * (w / 640) };
        let cols = (w / block).min(MAX_COLS);
        if cols < 8 {
            return None;
        }
        let rows = CODE_CELLS.div_ceil(cols);
        (rows * block <= h / 2).then_some(CodeLayout { block, cols, rows })
    }

    /// Height of the code band in pixel rows (the band spans the full width).
    pub fn band_height(&self) -> usize {
        self.rows * self.block
    }
}

/// CRC-8/SAE-J1850 (poly 0x1D, init 0xFF, xorout 0xFF): an all-black band does not pass.
fn crc8(data: &[u8]) -> u8 {
    let mut crc: u8 = 0xFF;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x1D
            } else {
                crc << 1
            };
        }
    }
    crc ^ 0xFF
}

fn payload(code: FrameCode) -> [u8; 10] {
    let mut p = [0u8; 10];
    p[..4].copy_from_slice(&code.frame.to_be_bytes());
    p[4..].copy_from_slice(&(code.capture_ms & MS_MASK).to_be_bytes()[2..]);
    p
}

/// The cell values of a code, in raster order.
fn code_cells(code: FrameCode) -> [bool; CODE_CELLS] {
    let mut cells = [false; CODE_CELLS];
    cells[..SYNC.len()].copy_from_slice(&SYNC);
    let p = payload(code);
    let crc = crc8(&p);
    for (i, cell) in cells[SYNC.len()..].iter_mut().enumerate() {
        let byte = if i < 80 { p[i / 8] } else { crc };
        *cell = byte & (0x80 >> (i % 8)) != 0;
    }
    cells
}

/// Burns `code` into the top band of a luma plane. Writes luma only: the caller keeps the
/// band's chroma neutral (128). Does nothing if the picture is too small for the code.
pub fn burn_code(y: &mut [u8], stride: usize, width: u32, height: u32, code: FrameCode) {
    let Some(layout) = CodeLayout::for_size(width, height) else {
        return;
    };
    let w = width as usize;
    let band = layout.band_height();
    if stride < w || y.len() < stride * (band - 1) + w {
        return;
    }
    let cells = code_cells(code);
    let grid_w = layout.cols * layout.block;
    for row in 0..layout.rows {
        for py in 0..layout.block {
            let line = &mut y[(row * layout.block + py) * stride..][..w];
            for col in 0..layout.cols {
                let i = row * layout.cols + col;
                let on = match cells.get(i) {
                    Some(&bit) => bit,
                    None => (i % 2) == 0,
                };
                let v = if on { LUMA_ONE } else { LUMA_ZERO };
                line[col * layout.block..(col + 1) * layout.block].fill(v);
            }
            line[grid_w..].fill(NEUTRAL);
        }
    }
}

/// Reads the code back from a decoded luma plane (e.g. a player's output converted to gray).
/// None if absent or checksum fails. The plane must have the size the code was burned at.
pub fn read_code(y: &[u8], stride: usize, width: u32, height: u32) -> Option<FrameCode> {
    let layout = CodeLayout::for_size(width, height)?;
    let w = width as usize;
    if stride < w || y.len() < stride * (layout.band_height() - 1) + w {
        return None;
    }
    let b = layout.block;
    let (inset, span) = (b / 4, b / 2);
    let cell_mean = |i: usize| -> u32 {
        let (x0, y0) = ((i % layout.cols) * b + inset, (i / layout.cols) * b + inset);
        let mut sum = 0u32;
        for row in y[y0 * stride..].chunks(stride).take(span) {
            sum += row[x0..x0 + span].iter().map(|&v| v as u32).sum::<u32>();
        }
        sum / (span * span) as u32
    };
    let (mut ones, mut zeros) = ((0u32, 0u32, u32::MAX), (0u32, 0u32, 0u32));
    for (i, &bit) in SYNC.iter().enumerate() {
        let m = cell_mean(i);
        if bit {
            ones = (ones.0 + m, ones.1 + 1, ones.2.min(m));
        } else {
            zeros = (zeros.0 + m, zeros.1 + 1, zeros.2.max(m));
        }
    }
    if ones.2 < zeros.2 + MIN_CONTRAST {
        return None;
    }
    let threshold = (ones.0 / ones.1 + zeros.0 / zeros.1) / 2;
    let mut bytes = [0u8; 11];
    for i in 0..DATA_BITS {
        if cell_mean(SYNC.len() + i) > threshold {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if crc8(&bytes[..10]) != bytes[10] {
        return None;
    }
    let frame = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&bytes[4..10]);
    Some(FrameCode {
        frame,
        capture_ms: u64::from_be_bytes(ms),
    })
}

/// 75% colour bars (BT.601 limited range): white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
];

/// Checker cell of the bouncing box: under a macroblock, so every block it covers changes.
const BOX_CHECKER: usize = 8;

/// Seven-segment patterns for 0-9, bit 6 = segment a (top) ... bit 0 = segment g (middle).
const DIGITS: [u8; 10] = [0x7E, 0x30, 0x6D, 0x79, 0x33, 0x5B, 0x5F, 0x70, 0x7F, 0x7B];

/// Everything needed to draw a frame of one size; templates are built once.
struct Painter {
    width: usize,
    height: usize,
    fps: u32,
    band: usize,
    /// One luma row of bars with texture, twice over so any scroll offset is one slice.
    bars_y: Vec<u8>,
    bars_u: Vec<u8>,
    bars_v: Vec<u8>,
}

/// Triangle wave: 0 up to `range` and back down, period `2 * range`.
fn triangle(v: u64, range: u64) -> u64 {
    if range == 0 {
        return 0;
    }
    let p = v % (2 * range);
    if p > range {
        2 * range - p
    } else {
        p
    }
}

fn fill_rect(plane: &mut [u8], stride: usize, x: usize, y: usize, w: usize, h: usize, v: u8) {
    let rows = plane.len() / stride;
    let (x_end, y_end) = ((x + w).min(stride), (y + h).min(rows));
    if x >= x_end {
        return;
    }
    for row in y..y_end {
        plane[row * stride + x..row * stride + x_end].fill(v);
    }
}

impl Painter {
    fn new(width: u32, height: u32, fps: u32, band: usize) -> Painter {
        let (w, h) = (width as usize, height as usize);
        let bar_w = w.div_ceil(BARS.len());
        let mut bars_y = Vec::with_capacity(2 * w);
        for x in 0..2 * w {
            let (y, _, _) = BARS[(x % w) / bar_w];
            // Fine stair texture so motion shows inside the bars, not only at their edges.
            let texture = ((x >> 2) & 3) as i16 * 4 - 6;
            bars_y.push((y as i16 + texture).clamp(16, 235) as u8);
        }
        let (bars_u, bars_v) = (0..w)
            .map(|cx| {
                let (_, u, v) = BARS[((2 * cx) % w) / bar_w];
                (u, v)
            })
            .unzip();
        Painter {
            width: w,
            height: h,
            fps,
            band,
            bars_y,
            bars_u,
            bars_v,
        }
    }

    /// Draws picture `index` with `code` into `out` (I420, exactly `width * height * 3 / 2`).
    fn draw(&self, index: u64, code: FrameCode, out: &mut [u8]) {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w / 2, h / 2);
        let (ys, chroma) = out.split_at_mut(w * h);
        let (us, vs) = chroma.split_at_mut(cw * ch);
        let fps = self.fps.max(1) as u128;

        // Bars scroll one picture width every 4 s; the ripple moves down 1/3 height per s.
        let off = (((index as u128 * w as u128) / (4 * fps)) % w as u128) as usize & !1;
        let ripple_shift = (index as u128 * h as u128 / (3 * fps)) as u64;
        for (yy, line) in ys.chunks_exact_mut(w).enumerate().skip(self.band) {
            line.copy_from_slice(&self.bars_y[off..off + w]);
            let tri = triangle(yy as u64 + 64 - ripple_shift % 64, 32);
            let r = (tri as i32 * 3 / 4 - 12) as i16;
            if r >= 0 {
                line.iter_mut().for_each(|p| *p = p.saturating_add(r as u8));
            } else {
                let d = (-r) as u8;
                line.iter_mut().for_each(|p| *p = p.saturating_sub(d));
            }
        }
        let (coff, cband) = (off / 2, self.band / 2);
        for (plane, tpl) in [(&mut *us, &self.bars_u), (&mut *vs, &self.bars_v)] {
            plane[..cband * cw].fill(NEUTRAL);
            for line in plane.chunks_exact_mut(cw).skip(cband) {
                line.copy_from_slice(&tpl[coff..coff + cw]);
            }
        }

        // Bouncing box: a fine black and white checkerboard (so even its inside moves), with
        // neutral chroma.
        let area_h = h - self.band;
        let size = (w.min(area_h) / 5) & !1;
        let step = |span: usize, secs: u128| (index as u128 * span as u128 / (secs * fps)) as u64;
        let bx = triangle(step(w, 3), (w - size) as u64) as usize & !1;
        let by = self.band + (triangle(step(area_h, 5), (area_h - size) as u64) as usize & !1);
        for row in 0..size {
            let line = &mut ys[(by + row) * w + bx..][..size];
            for (i, run) in line.chunks_mut(BOX_CHECKER).enumerate() {
                let white = (i + row / BOX_CHECKER).is_multiple_of(2);
                run.fill(if white { LUMA_ONE } else { LUMA_ZERO });
            }
        }
        fill_rect(us, cw, bx / 2, by / 2, size / 2, size / 2, NEUTRAL);
        fill_rect(vs, cw, bx / 2, by / 2, size / 2, size / 2, NEUTRAL);

        self.draw_counter(ys, us, vs, index);
        burn_code(ys, w, w as u32, h as u32, code);
    }

    /// Where the frame counter goes: (x, y, width, height) of its black box, digit height,
    /// digit width, stroke and gap. `None` if it does not fit below the band.
    fn counter_geometry(&self) -> Option<([usize; 4], [usize; 4])> {
        let (w, h) = (self.width, self.height);
        let dh = (((h - self.band) / 8).max(12)) & !1;
        let dw = (dh / 2) & !1;
        let t = (dh / 8).max(2) & !1;
        let gap = (dw / 3).max(2) & !1;
        let (rw, rh) = (6 * (dw + gap) + gap, dh + 2 * gap);
        let (rx, ry) = (gap, h.saturating_sub(rh + gap) & !1);
        (ry >= self.band && rx + rw <= w).then_some(([rx, ry, rw, rh], [dh, dw, t, gap]))
    }

    /// Six seven-segment digits of the frame index, white on black, bottom left.
    fn draw_counter(&self, ys: &mut [u8], us: &mut [u8], vs: &mut [u8], index: u64) {
        let Some(([rx, ry, rw, rh], [dh, dw, t, gap])) = self.counter_geometry() else {
            return;
        };
        let w = self.width;
        fill_rect(ys, w, rx, ry, rw, rh, LUMA_ZERO);
        fill_rect(us, w / 2, rx / 2, ry / 2, rw / 2 + 1, rh / 2, NEUTRAL);
        fill_rect(vs, w / 2, rx / 2, ry / 2, rw / 2 + 1, rh / 2, NEUTRAL);
        let mut n = index % 1_000_000;
        for d in (0..6).rev() {
            let segs = DIGITS[(n % 10) as usize];
            n /= 10;
            let (x0, y0) = (rx + gap + d * (dw + gap), ry + gap);
            let half = dh / 2;
            let rects = [
                (x0, y0, dw, t),
                (x0 + dw - t, y0, t, half),
                (x0 + dw - t, y0 + half, t, dh - half),
                (x0, y0 + dh - t, dw, t),
                (x0, y0 + half, t, dh - half),
                (x0, y0, t, half),
                (x0, y0 + half - t / 2, dw, t),
            ];
            for (s, &(x, y, rw, rh)) in rects.iter().enumerate() {
                if segs & (0x40 >> s) != 0 {
                    fill_rect(ys, w, x, y, rw, rh, LUMA_ONE);
                }
            }
        }
    }
}

/// Test pattern source: I420 at exactly `fps` on an absolute schedule, with a frame code.
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    painter: Painter,
    next_index: u64,
    /// Frame `anchor.1` is due at `anchor.0`; later frames every 1/fps after it.
    anchor: Option<(Instant, u64)>,
    reanchors: u64,
    spare: Option<Vec<u8>>,
}

const NAME: &str = "test pattern";

impl TestPattern {
    /// Largest size: openh264's limit.
    pub const MAX_SIZE: (u32, u32) = (3840, 2160);
    /// Smallest size that still carries a readable frame code.
    pub const MIN_SIZE: (u32, u32) = (160, 120);

    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, CaptureError> {
        let unsupported = |reason: String| CaptureError::Unsupported {
            device: NAME.to_string(),
            reason,
        };
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(unsupported(format!(
                "size {width}x{height} must be even in both directions"
            )));
        }
        let (min, max) = (Self::MIN_SIZE, Self::MAX_SIZE);
        if width < min.0 || height < min.1 || width > max.0 || height > max.1 {
            return Err(unsupported(format!(
                "size {width}x{height} outside {}x{} .. {}x{}",
                min.0, min.1, max.0, max.1
            )));
        }
        if !(1..=120).contains(&fps) {
            return Err(unsupported(format!("frame rate {fps} outside 1..=120")));
        }
        let layout = CodeLayout::for_size(width, height).ok_or_else(|| {
            unsupported(format!(
                "size {width}x{height} too small for the frame code"
            ))
        })?;
        Ok(TestPattern {
            width,
            height,
            fps,
            painter: Painter::new(width, height, fps, layout.band_height()),
            next_index: 0,
            anchor: None,
            reanchors: 0,
            spare: None,
        })
    }

    /// Draws picture `index` with `code` into `out` without any pacing (for tests and
    /// benchmarks). `out` is resized to one I420 frame.
    pub fn draw(&self, index: u64, code: FrameCode, out: &mut Vec<u8>) {
        let len = self.frame_len();
        out.resize(len, 0);
        self.painter.draw(index, code, out);
    }

    /// How often the schedule was re-anchored because the consumer fell behind.
    pub fn reanchors(&self) -> u64 {
        self.reanchors
    }

    fn frame_len(&self) -> usize {
        self.width as usize * self.height as usize * 3 / 2
    }

    fn period_after(&self, frames: u64) -> Duration {
        Duration::from_nanos((frames as u128 * 1_000_000_000 / self.fps as u128) as u64)
    }

    /// Waits until frame `n` is due. If the consumer is more than a frame late, the schedule
    /// restarts at `now` instead of bursting to catch up.
    fn wait_for(&mut self, n: u64) {
        let now = Instant::now();
        let (t0, n0) = *self.anchor.get_or_insert((now, n));
        let due = t0 + self.period_after(n - n0);
        if now > due + self.period_after(1) {
            if self.reanchors == 0 {
                log::warn!(
                    "{NAME}: consumer fell {} ms behind at frame {n}; restarting the schedule (logged once)",
                    (now - due).as_millis()
                );
            }
            self.reanchors += 1;
            self.anchor = Some((now, n));
        } else if now < due {
            std::thread::sleep(due - now);
        }
    }
}

impl FrameSource for TestPattern {
    fn describe(&self) -> String {
        format!("{NAME} {}x{}@{}", self.width, self.height, self.fps)
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn next_frame(&mut self) -> Result<RawFrame, CaptureError> {
        let n = self.next_index;
        self.next_index += 1;
        self.wait_for(n);
        let wall = SystemTime::now();
        let capture_ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut data = self.spare.take().unwrap_or_default();
        data.resize(self.frame_len(), 0);
        let code = FrameCode {
            frame: n as u32,
            capture_ms,
        };
        self.painter.draw(n, code, &mut data);
        Ok(RawFrame {
            format: PixelFormat::I420,
            width: self.width,
            height: self.height,
            data,
            pts_90k: frame_pts_90k(n, self.fps),
            wall,
            sequence: n,
        })
    }

    fn recycle(&mut self, frame: RawFrame) {
        if frame.data.capacity() >= self.frame_len() {
            self.spare = Some(frame.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [(u32, u32); 7] = [
        (160, 120),
        (320, 240),
        (352, 288),
        (640, 480),
        (1024, 576),
        (1280, 720),
        (1920, 1080),
    ];

    #[test]
    fn crc8_check_value() {
        assert_eq!(crc8(b"123456789"), 0x4B);
    }

    #[test]
    fn layouts_fit_and_are_macroblock_aligned_from_640() {
        for (w, h) in SIZES {
            let l = CodeLayout::for_size(w, h).expect("layout");
            assert!(l.cols * l.rows >= CODE_CELLS);
            assert!(l.cols * l.block <= w as usize);
            assert!(l.band_height() <= h as usize / 2);
            assert!(l.block >= 8);
            if w >= 640 {
                assert_eq!(l.block % 16, 0, "{w}x{h}");
            }
            println!("{w}x{h}: {l:?} band {} px", l.band_height());
        }
        assert_eq!(CodeLayout::for_size(64, 48), None);
    }

    #[test]
    fn burn_read_round_trip_at_several_sizes() {
        let mut rng = crate::test_util::XorShift(0x1234_5678);
        for (w, h) in SIZES {
            for _ in 0..20 {
                let code = FrameCode {
                    frame: rng.next_u64() as u32,
                    capture_ms: rng.next_u64() & MS_MASK,
                };
                // Grey picture with some stride padding.
                let stride = w as usize + 32;
                let mut y = vec![90u8; stride * h as usize];
                burn_code(&mut y, stride, w, h, code);
                assert_eq!(read_code(&y, stride, w, h), Some(code), "{w}x{h}");
            }
        }
    }

    #[test]
    fn capture_ms_keeps_48_bits() {
        let code = FrameCode {
            frame: u32::MAX,
            capture_ms: u64::MAX,
        };
        let mut y = vec![0u8; 320 * 240];
        burn_code(&mut y, 320, 320, 240, code);
        let back = read_code(&y, 320, 320, 240).expect("code");
        assert_eq!(back.frame, u32::MAX);
        assert_eq!(back.capture_ms, MS_MASK);
    }

    #[test]
    fn read_code_rejects_noise_and_damage() {
        let mut rng = crate::test_util::XorShift(99);
        let (w, h) = (320u32, 240u32);
        // Pixel noise.
        for _ in 0..50 {
            let y: Vec<u8> = (0..w * h).map(|_| rng.next_u64() as u8).collect();
            assert_eq!(read_code(&y, w as usize, w, h), None);
        }
        // Cell-sized black/white noise: sync and CRC both have to fail.
        let l = CodeLayout::for_size(w, h).expect("layout");
        for _ in 0..500 {
            let mut y = vec![128u8; (w * h) as usize];
            for i in 0..l.cols * l.rows {
                let v = if rng.next_u64() & 1 == 1 {
                    LUMA_ONE
                } else {
                    LUMA_ZERO
                };
                let (x0, y0) = ((i % l.cols) * l.block, (i / l.cols) * l.block);
                fill_rect(&mut y, w as usize, x0, y0, l.block, l.block, v);
            }
            assert_eq!(read_code(&y, w as usize, w, h), None);
        }
        // Flat pictures.
        for v in [0u8, 16, 128, 235, 255] {
            let y = vec![v; (w * h) as usize];
            assert_eq!(read_code(&y, w as usize, w, h), None);
        }
        // A valid code with one data cell flipped fails the CRC.
        let mut y = vec![128u8; (w * h) as usize];
        let code = FrameCode {
            frame: 7,
            capture_ms: 1_700_000_000_000,
        };
        burn_code(&mut y, w as usize, w, h, code);
        let i = SYNC.len() + 40;
        let (x0, y0) = ((i % l.cols) * l.block, (i / l.cols) * l.block);
        let flipped = if y[y0 * w as usize + x0] > 128 {
            LUMA_ZERO
        } else {
            LUMA_ONE
        };
        fill_rect(&mut y, w as usize, x0, y0, l.block, l.block, flipped);
        assert_eq!(read_code(&y, w as usize, w, h), None);
    }

    #[test]
    fn new_validates_settings() {
        assert!(TestPattern::new(321, 240, 30).is_err());
        assert!(TestPattern::new(320, 241, 30).is_err());
        assert!(TestPattern::new(100, 80, 30).is_err());
        assert!(TestPattern::new(4096, 2160, 30).is_err());
        assert!(TestPattern::new(320, 240, 0).is_err());
        let e = TestPattern::new(320, 240, 0).err().expect("error");
        assert!(e.to_string().contains("test pattern"), "{e}");
        assert!(TestPattern::new(160, 120, 1).is_ok());
    }

    #[test]
    fn frames_carry_code_pts_and_neutral_band_chroma() {
        let mut p = TestPattern::new(320, 240, 100).expect("pattern");
        let band = CodeLayout::for_size(320, 240)
            .expect("layout")
            .band_height();
        for n in 0..5u64 {
            let f = p.next_frame().expect("frame");
            assert_eq!((f.format, f.width, f.height), (PixelFormat::I420, 320, 240));
            assert_eq!(f.sequence, n);
            assert_eq!(f.pts_90k, frame_pts_90k(n, 100));
            let (y, u, v) = f.i420_planes().expect("planes");
            let code = read_code(y, 320, 320, 240).expect("code");
            assert_eq!(code.frame, n as u32);
            let ms = f
                .wall
                .duration_since(UNIX_EPOCH)
                .expect("after epoch")
                .as_millis() as u64;
            assert_eq!(code.capture_ms, ms);
            assert!(u[..band / 2 * 160].iter().all(|&c| c == NEUTRAL));
            assert!(v[..band / 2 * 160].iter().all(|&c| c == NEUTRAL));
            p.recycle(f);
        }
    }

    #[test]
    fn picture_changes_everywhere_below_the_band() {
        let (w, h) = (640usize, 480usize);
        let p = TestPattern::new(w as u32, h as u32, 30).expect("pattern");
        let band = p.painter.band;
        let ([cx, cy, cw, ch], _) = p.painter.counter_geometry().expect("counter fits");
        let code = FrameCode {
            frame: 0,
            capture_ms: 0,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for n in [0u64, 10, 299] {
            p.draw(n, code, &mut a);
            p.draw(n + 1, code, &mut b);
            // Every 16x16 macroblock below the band differs between consecutive frames,
            // except in the frame counter's box (where only the digits change).
            for my in (band / 16)..(h / 16) {
                for mx in 0..(w / 16) {
                    let (x, y) = (mx * 16, my * 16);
                    let in_counter = x + 16 > cx && x < cx + cw && y + 16 > cy && y < cy + ch;
                    let differs = (0..16).any(|r| {
                        let o = (y + r) * w + x;
                        a[o..o + 16] != b[o..o + 16]
                    });
                    assert!(
                        differs || in_counter,
                        "frame {n}: macroblock ({mx}, {my}) still"
                    );
                }
            }
        }
    }

    #[test]
    fn schedule_is_paced_and_reanchors_without_bursting() {
        let fps = 50;
        let mut p = TestPattern::new(160, 120, fps).expect("pattern");
        let t0 = Instant::now();
        for _ in 0..10 {
            let f = p.next_frame().expect("frame");
            p.recycle(f);
        }
        let elapsed = t0.elapsed();
        // 10 frames: frame 0 immediately, frame 9 due at 180 ms.
        assert!(elapsed >= Duration::from_millis(175), "{elapsed:?}");
        // Fall behind by 5 frame periods: the next frame comes at once, the one after a
        // full period later (no burst of catch-up frames).
        std::thread::sleep(Duration::from_millis(100));
        let f = p.next_frame().expect("frame");
        p.recycle(f);
        assert_eq!(p.reanchors(), 1);
        let t1 = Instant::now();
        let f = p.next_frame().expect("frame");
        assert!(
            t1.elapsed() >= Duration::from_millis(15),
            "{:?}",
            t1.elapsed()
        );
        assert_eq!(f.sequence, 11, "frame numbers stay contiguous");
    }

    #[test]
    fn draw_cost() {
        for (w, h) in [(640, 480), (1280, 720), (1920, 1080)] {
            let p = TestPattern::new(w, h, 30).expect("pattern");
            let mut buf = Vec::new();
            let code = FrameCode {
                frame: 1,
                capture_ms: 2,
            };
            p.draw(0, code, &mut buf);
            let n = 200;
            let t = Instant::now();
            for i in 0..n {
                p.draw(i, code, &mut buf);
            }
            let per = t.elapsed() / n as u32;
            println!("test pattern draw {w}x{h}: {per:?} per frame");
        }
    }

    /// Encodes pattern frames at a low bitrate, decodes them and reads every code back.
    fn codes_survive_compression(w: u32, h: u32, kbps: u32) {
        use crate::encode::openh264::test_decoder::TestDecoder;
        use crate::encode::{Encoder, EncoderSettings, OpenH264Encoder};
        let settings = EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_kbps: kbps,
            idr_interval_frames: 30,
        };
        let mut enc = OpenH264Encoder::new(&settings).expect("encoder");
        let mut dec = TestDecoder::new();
        let p = TestPattern::new(w, h, 30).expect("pattern");
        let mut buf = Vec::new();
        let (mut bytes, n) = (0, 60u64);
        for i in 0..n {
            // Scrambled frame numbers flip many cells per frame: harder than counting.
            let code = FrameCode {
                frame: (i as u32).wrapping_mul(0x9E37_79B1),
                capture_ms: 1_700_000_000_000 + i * 33,
            };
            p.draw(i, code, &mut buf);
            let frame = RawFrame {
                format: PixelFormat::I420,
                width: w,
                height: h,
                data: std::mem::take(&mut buf),
                pts_90k: frame_pts_90k(i, 30),
                wall: UNIX_EPOCH,
                sequence: i,
            };
            let out = enc.encode(&frame, false).expect("encode").expect("output");
            buf = frame.data;
            bytes += out.data.len();
            let pic = dec.decode(&out.data).expect("picture");
            assert_eq!((pic.width, pic.height), (w, h));
            assert_eq!(
                read_code(&pic.y, w as usize, w, h),
                Some(code),
                "{w}x{h} @ {kbps} kbit/s, frame {i}"
            );
        }
        println!(
            "{w}x{h} @ {kbps} kbit/s: all {n} codes read back; stream {} kbit/s",
            bytes as u64 * 8 * 30 / n / 1000
        );
    }

    #[test]
    fn codes_survive_openh264_320x240_at_200_kbps() {
        codes_survive_compression(320, 240, 200);
    }

    #[test]
    fn codes_survive_openh264_1280x720_at_1000_kbps() {
        codes_survive_compression(1280, 720, 1000);
    }

    #[test]
    fn codes_survive_openh264_small_and_large() {
        codes_survive_compression(160, 120, 64);
        codes_survive_compression(1920, 1080, 1500);
    }
}
