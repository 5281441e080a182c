//! Choosing a camera mode: pixel format, size and frame rate (pure, no device access).
//!
//! Owns: the capability table a camera reports (`FormatModes`), the request a path makes
//! (`ModeRequest`) and the rule that picks one mode (`choose_mode`); also turning stepwise
//! size and interval ranges into the few candidates worth considering. Does not own: asking
//! the device (`v4l2.rs`) or what happens to the frames (`pipeline`).
//!
//! The rule, in order:
//! 1. Only formats Vigint can use: H.264 (passed through), YU12, NV12, YUYV, UYVY (converted)
//!    and MJPEG (decoded). If the path names a `pixel_format` the camera has, only that format
//!    is considered; if the camera lacks it, the rule runs on all formats and says so.
//! 2. Nearest size: smallest |w - W| + |h - H|; on a tie the larger picture. Formats that are
//!    encoded in software need an even size no larger than 3840x2160.
//! 3. Rate: the highest rate not above the requested one; if every rate is above it, the
//!    lowest. (A camera faster than asked wastes USB bandwidth and CPU; slower is honest.)
//! 4. Format, when size and rate are equal: H.264 (no CPU at all) > YU12 (a copy) > NV12 >
//!    YUYV > UYVY > MJPEG (a JPEG decode per frame costs the most CPU on a Pi).
//!
//! So a USB 2 webcam asked for 1280x720@30 that offers YUYV 720p only at 10 fps but MJPEG
//! 720p at 30 fps streams MJPEG: the rate comes before the format's cost. Size comes before
//! rate because the size is what a viewer sees and what the bitrate was chosen for.

use std::cmp::Reverse;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::media::PixelFormat;

/// Time between frames in seconds as a fraction, as V4L2 reports it (1/30 is 30 fps).
/// Serialised as frames per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub num: u32,
    pub den: u32,
}

impl Interval {
    pub fn from_fps(fps: u32) -> Interval {
        Interval {
            num: 1,
            den: fps.max(1),
        }
    }

    /// Frames per second (0 for a nonsensical zero interval).
    pub fn fps(self) -> f64 {
        if self.num == 0 {
            0.0
        } else {
            self.den as f64 / self.num as f64
        }
    }

    /// Frames per second rounded to a whole number, at least 1 (what the encoder is told).
    pub fn fps_rounded(self) -> u32 {
        (self.fps().round() as u32).max(1)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fps = (self.fps() * 1000.0).round() / 1000.0;
        if fps.fract() == 0.0 {
            s.serialize_u64(fps as u64)
        } else {
            s.serialize_f64(fps)
        }
    }
}

/// Serialises a format as usable or not (the `PixelFormat` itself is internal).
fn serialize_usable<S: Serializer>(f: &Option<PixelFormat>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(f.is_some())
}

impl fmt::Display for Interval {
    /// The rate as a person writes it: "30", "12.5", "7.5".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.2}", self.fps());
        f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// One frame size and the rates offered at it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SizeModes {
    pub width: u32,
    pub height: u32,
    /// Empty when the driver does not enumerate rates (then the requested one is asked for).
    #[serde(rename = "fps")]
    pub intervals: Vec<Interval>,
}

/// One pixel format a camera offers, with its sizes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FormatModes {
    /// The V4L2 four-character code, e.g. "YUYV", "MJPG".
    pub fourcc: String,
    /// The driver's description, e.g. "YUYV 4:2:2".
    pub description: String,
    /// The format as Vigint knows it; `None` if Vigint cannot use it.
    #[serde(rename = "usable", serialize_with = "serialize_usable")]
    pub format: Option<PixelFormat>,
    pub sizes: Vec<SizeModes>,
}

/// What a path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeRequest {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub pixel_format: Option<PixelFormat>,
}

/// The chosen mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub interval: Interval,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{}@{}",
            self.format.fourcc(),
            self.width,
            self.height,
            self.interval
        )
    }
}

/// The outcome of `choose_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub mode: Mode,
    /// The requested pixel format was not offered, so another was chosen.
    pub preference_unmet: bool,
}

/// Order of formats when everything else is equal (lower is better).
fn format_rank(f: PixelFormat) -> u8 {
    match f {
        PixelFormat::H264 => 0,
        PixelFormat::I420 => 1,
        PixelFormat::Nv12 => 2,
        PixelFormat::Yuyv => 3,
        PixelFormat::Uyvy => 4,
        PixelFormat::Mjpeg => 5,
    }
}

/// Sizes the software encoder can take (openh264 via `EncoderSettings::validate`).
fn encodable(f: PixelFormat, w: u32, h: u32) -> bool {
    if f == PixelFormat::H264 {
        return w > 0 && h > 0;
    }
    w > 0
        && h > 0
        && w.is_multiple_of(2)
        && h.is_multiple_of(2)
        && w.max(h) <= 3840
        && w.min(h) <= 2160
}

/// Rate preference key (lower is better): rates not above the request first, closest first;
/// then rates above it, closest first. In milli-fps so it is an exact integer order.
fn rate_key(interval: Interval, requested: u32) -> (bool, u64) {
    let fps = (interval.fps() * 1000.0).round() as i64;
    let req = requested as i64 * 1000;
    if fps <= req {
        (false, (req - fps) as u64)
    } else {
        (true, (fps - req) as u64)
    }
}

/// Sort key of a candidate (lower is better): size distance, larger area, rate, format.
type ModeKey = (u64, Reverse<u64>, (bool, u64), u8);

/// Picks the mode for `req` from a camera's table per the rule in the module docs;
/// `None` if the camera offers nothing Vigint can use.
pub fn choose_mode(table: &[FormatModes], req: &ModeRequest) -> Option<Choice> {
    let usable = |f: &&FormatModes| f.format.is_some() && !f.sizes.is_empty();
    let has_preferred = req
        .pixel_format
        .is_some_and(|p| table.iter().filter(usable).any(|f| f.format == Some(p)));
    let mut best: Option<(ModeKey, Mode)> = None;
    for fm in table.iter().filter(usable) {
        let Some(format) = fm.format else { continue };
        if has_preferred && Some(format) != req.pixel_format {
            continue;
        }
        for s in &fm.sizes {
            if !encodable(format, s.width, s.height) {
                continue;
            }
            let dist = s.width.abs_diff(req.width) as u64 + s.height.abs_diff(req.height) as u64;
            let area = s.width as u64 * s.height as u64;
            let requested = Interval::from_fps(req.fps);
            let intervals = if s.intervals.is_empty() {
                std::slice::from_ref(&requested)
            } else {
                &s.intervals[..]
            };
            for &interval in intervals.iter().filter(|i| i.num > 0 && i.den > 0) {
                let key = (
                    dist,
                    Reverse(area),
                    rate_key(interval, req.fps),
                    format_rank(format),
                );
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    let mode = Mode {
                        format,
                        width: s.width,
                        height: s.height,
                        interval,
                    };
                    best = Some((key, mode));
                }
            }
        }
    }
    best.map(|(_, mode)| Choice {
        mode,
        preference_unmet: req.pixel_format.is_some() && !has_preferred,
    })
}

/// Candidate sizes from a stepwise or continuous range: the request rounded onto the grid
/// (clamped), plus the smallest and largest size.
pub fn stepwise_sizes(
    (min_w, max_w, step_w): (u32, u32, u32),
    (min_h, max_h, step_h): (u32, u32, u32),
    (req_w, req_h): (u32, u32),
) -> Vec<(u32, u32)> {
    let snap = |v: u32, min: u32, max: u32, step: u32| {
        let v = v.clamp(min, max.max(min));
        let step = step.max(1);
        let k = ((v - min) as f64 / step as f64).round() as u32;
        (min + k * step).min(max.max(min))
    };
    let candidates = [
        (
            snap(req_w, min_w, max_w, step_w),
            snap(req_h, min_h, max_h, step_h),
        ),
        (min_w, min_h),
        (max_w.max(min_w), max_h.max(min_h)),
    ];
    let mut out = Vec::new();
    for c in candidates {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Candidate intervals from a stepwise or continuous range (`min` is the shortest interval,
/// the highest rate): the requested rate if it lies within, plus both ends.
pub fn stepwise_intervals(min: Interval, max: Interval, req_fps: u32) -> Vec<Interval> {
    let mut out = vec![min];
    if max != min {
        out.push(max);
    }
    let req = Interval::from_fps(req_fps);
    if req.fps() >= max.fps() && req.fps() <= min.fps() && !out.contains(&req) {
        out.push(req);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(num: u32, den: u32) -> Interval {
        Interval { num, den }
    }

    fn fm(fourcc: &str, sizes: &[(u32, u32, &[Interval])]) -> FormatModes {
        FormatModes {
            fourcc: fourcc.to_string(),
            description: fourcc.to_string(),
            format: PixelFormat::from_fourcc(fourcc),
            sizes: sizes
                .iter()
                .map(|&(width, height, ivs)| SizeModes {
                    width,
                    height,
                    intervals: ivs.to_vec(),
                })
                .collect(),
        }
    }

    fn req(width: u32, height: u32, fps: u32, pixel_format: Option<PixelFormat>) -> ModeRequest {
        ModeRequest {
            width,
            height,
            fps,
            pixel_format,
        }
    }

    fn pick(table: &[FormatModes], r: ModeRequest) -> String {
        let c = choose_mode(table, &r).expect("a mode");
        format!(
            "{}{}",
            c.mode,
            if c.preference_unmet { " (unmet)" } else { "" }
        )
    }

    /// A typical USB 2 UVC webcam (C270-like): YUYV is bandwidth-limited at large sizes,
    /// MJPEG is not.
    fn uvc_webcam() -> Vec<FormatModes> {
        let fast: &[Interval] = &[
            iv(1, 30),
            iv(1, 25),
            iv(1, 20),
            iv(1, 15),
            iv(1, 10),
            iv(1, 5),
        ];
        let yuyv_720: &[Interval] = &[iv(1, 10), iv(1, 5)];
        let yuyv_960: &[Interval] = &[iv(2, 15), iv(1, 5)];
        vec![
            fm(
                "YUYV",
                &[
                    (640, 480, fast),
                    (320, 240, fast),
                    (800, 600, &[iv(1, 20), iv(1, 15)]),
                    (1280, 720, yuyv_720),
                    (1280, 960, yuyv_960),
                ],
            ),
            fm(
                "MJPG",
                &[
                    (640, 480, fast),
                    (320, 240, fast),
                    (800, 600, fast),
                    (1280, 720, fast),
                    (1280, 960, fast),
                ],
            ),
        ]
    }

    /// vivid's webcam input as Linux 6.1 reports it (read with `vigint --list-cameras` in
    /// the emulated board): many raw formats, the top rate shrinking with the size.
    fn vivid() -> Vec<FormatModes> {
        // Slowest first, as the driver enumerates them: 1 .. 60 fps.
        let all = [
            iv(1, 1),
            iv(1, 2),
            iv(1, 4),
            iv(1, 5),
            iv(1, 10),
            iv(2, 25),
            iv(1, 15),
            iv(1, 25),
            iv(1, 30),
            iv(1, 40),
            iv(1, 50),
            iv(1, 60),
        ];
        let sizes: Vec<(u32, u32, &[Interval])> = vec![
            (320, 180, &all[..]),
            (640, 360, &all[..10]),
            (640, 480, &all[..8]),
            (1280, 720, &all[..6]),
            (1920, 1080, &all[..4]),
            (3840, 2160, &all[..2]),
        ];
        [
            "YUYV", "UYVY", "YVYU", "VYUY", "422P", "YU12", "YV12", "NV12", "NV21", "RGBP", "BA81",
        ]
        .iter()
        .map(|f| fm(f, &sizes))
        .collect()
    }

    /// A camera with an H.264 encoder (Pi camera via bcm2835-v4l2 style, discrete here).
    fn h264_cam() -> Vec<FormatModes> {
        let r: &[Interval] = &[iv(1, 30), iv(1, 15)];
        vec![
            fm("YU12", &[(1280, 720, r), (1920, 1080, &[iv(1, 15)])]),
            fm("H264", &[(1280, 720, r), (1920, 1080, r)]),
            fm("MJPG", &[(1280, 720, r), (1920, 1080, r)]),
            fm("BGR3", &[(1280, 720, r)]),
        ]
    }

    #[test]
    fn uvc_webcam_prefers_rate_over_format_cost() {
        let t = uvc_webcam();
        // Raw cannot do 720p30: MJPEG can.
        assert_eq!(pick(&t, req(1280, 720, 30, None)), "MJPG 1280x720@30");
        // Raw can do 640x480@30: no decode needed.
        assert_eq!(pick(&t, req(640, 480, 30, None)), "YUYV 640x480@30");
        // At 10 fps both can: raw wins.
        assert_eq!(pick(&t, req(1280, 720, 10, None)), "YUYV 1280x720@10");
        // An explicit preference wins over rate.
        assert_eq!(
            pick(&t, req(1280, 720, 30, Some(PixelFormat::Yuyv))),
            "YUYV 1280x720@10"
        );
        assert_eq!(
            pick(&t, req(1280, 960, 30, Some(PixelFormat::Yuyv))),
            "YUYV 1280x960@7.5"
        );
        // A preference the camera cannot meet is reported.
        assert_eq!(
            pick(&t, req(640, 480, 30, Some(PixelFormat::H264))),
            "YUYV 640x480@30 (unmet)"
        );
    }

    #[test]
    fn nearest_size_then_rate_not_above_request() {
        let t = uvc_webcam();
        // 1024x768: 800x600 is 392 away, 1280x720 is 304, 1280x960 is 448.
        assert_eq!(pick(&t, req(1024, 768, 30, None)), "MJPG 1280x720@30");
        // 24 fps asked: 20 is the highest not above it.
        assert_eq!(pick(&t, req(640, 480, 24, None)), "YUYV 640x480@20");
        // 2 fps asked, nothing that slow: the lowest rate.
        assert_eq!(pick(&t, req(640, 480, 2, None)), "YUYV 640x480@5");
        // 720x540 is 140 from both 640x480 and 800x600: the larger picture wins.
        assert_eq!(pick(&t, req(720, 540, 15, None)), "YUYV 800x600@15");
    }

    #[test]
    fn vivid_table() {
        let t = vivid();
        assert_eq!(pick(&t, req(1280, 720, 30, None)), "YU12 1280x720@12.5");
        assert_eq!(pick(&t, req(640, 480, 30, None)), "YU12 640x480@25");
        assert_eq!(
            pick(&t, req(640, 480, 30, Some(PixelFormat::Yuyv))),
            "YUYV 640x480@25"
        );
        assert_eq!(
            pick(&t, req(1280, 720, 30, Some(PixelFormat::Nv12))),
            "NV12 1280x720@12.5"
        );
        assert_eq!(pick(&t, req(320, 240, 60, None)), "YU12 320x180@60");
        // 4K is too large for the software encoder's limits only beyond 3840x2160.
        assert_eq!(pick(&t, req(4096, 2160, 1, None)), "YU12 3840x2160@1");
        // The emulated-board config: 640x480@15 and 320x240@15.
        assert_eq!(pick(&t, req(640, 480, 15, None)), "YU12 640x480@15");
        assert_eq!(pick(&t, req(320, 240, 15, None)), "YU12 320x180@15");
        assert_eq!(pick(&t, req(1920, 1080, 30, None)), "YU12 1920x1080@5");
    }

    #[test]
    fn h264_camera_passes_through() {
        let t = h264_cam();
        assert_eq!(pick(&t, req(1280, 720, 30, None)), "H264 1280x720@30");
        assert_eq!(pick(&t, req(1920, 1080, 30, None)), "H264 1920x1080@30");
        assert_eq!(
            pick(&t, req(1920, 1080, 30, Some(PixelFormat::Mjpeg))),
            "MJPG 1920x1080@30"
        );
    }

    #[test]
    fn nothing_usable() {
        let t = vec![fm("BGR3", &[(640, 480, &[iv(1, 30)])])];
        assert_eq!(choose_mode(&t, &req(640, 480, 30, None)), None);
        assert_eq!(choose_mode(&[], &req(640, 480, 30, None)), None);
        // Odd sizes cannot be encoded in software.
        let t = vec![fm("YUYV", &[(641, 481, &[iv(1, 30)])])];
        assert_eq!(choose_mode(&t, &req(640, 480, 30, None)), None);
    }

    #[test]
    fn missing_intervals_ask_for_the_request() {
        let t = vec![fm("YUYV", &[(640, 480, &[])])];
        assert_eq!(pick(&t, req(640, 480, 15, None)), "YUYV 640x480@15");
    }

    #[test]
    fn stepwise_candidates() {
        let s = stepwise_sizes((16, 1920, 16), (16, 1080, 8), (1000, 700));
        assert_eq!(s, vec![(1008, 704), (16, 16), (1920, 1080)]);
        let s = stepwise_sizes((16, 1920, 16), (16, 1080, 8), (4000, 4000));
        assert_eq!(s, vec![(1920, 1080), (16, 16)]);
        let i = stepwise_intervals(iv(1, 90), iv(1, 1), 30);
        assert_eq!(i, vec![iv(1, 90), iv(1, 1), iv(1, 30)]);
        let i = stepwise_intervals(iv(1, 15), iv(1, 5), 30);
        assert_eq!(i, vec![iv(1, 15), iv(1, 5)]);
    }

    #[test]
    fn tables_serialise_rates_as_numbers() {
        let t = vec![fm("YUYV", &[(640, 480, &[iv(1, 30), iv(2, 25)])])];
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(
            json,
            r#"[{"fourcc":"YUYV","description":"YUYV","usable":true,"sizes":[{"width":640,"height":480,"fps":[30,12.5]}]}]"#
        );
    }

    #[test]
    fn rates_print_like_people_write_them() {
        assert_eq!(iv(1, 30).to_string(), "30");
        assert_eq!(iv(2, 25).to_string(), "12.5");
        assert_eq!(iv(1001, 30000).to_string(), "29.97");
        assert_eq!(iv(2, 15).to_string(), "7.5");
        assert_eq!(iv(2, 25).fps_rounded(), 13);
    }
}
