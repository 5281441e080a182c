//! V4L2 cameras (the only file naming the v4l crate).
//!
//! Owns: finding capture devices (`list_cameras`, `first_camera`), reading a camera's
//! formats, sizes and rates, setting the mode `format::choose_mode` picked, and `V4l2Source`:
//! memory-mapped streaming with `BUFFERS` buffers, kernel timestamps turned into media time,
//! sequence gaps and buffers the driver flags as failed counted as dropped, errno turned into
//! what it means for an operator, and key frame requests for cameras that encode H.264.
//! Does not own: the choice rule (`format.rs`), timing arithmetic (`clock.rs`), conversion,
//! or retrying (`pipeline` reopens the camera through its source factory).
//!
//! Streaming is done with the v4l crate's raw ioctl/mmap wrappers rather than its
//! `io::mmap::Stream`: that type panics in `Drop` when STREAMOFF or freeing the buffers fails
//! with anything but ENODEV, and a camera failing in new ways must never take the process
//! down. Buffers are copied out of the mapping (a 720p YUYV frame is about 0.2 ms) so each
//! buffer goes back to the driver at once and a slow encoder never starves the camera.

use std::io;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use v4l::v4l2::vidioc;
use v4l::v4l_sys::{
    v4l2_buffer, v4l2_capability, v4l2_control, v4l2_queryctrl, v4l2_requestbuffers,
    V4L2_BUF_FLAG_ERROR, V4L2_CAP_DEVICE_CAPS, V4L2_CAP_STREAMING, V4L2_CAP_VIDEO_CAPTURE,
    V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, V4L2_CTRL_FLAG_DISABLED,
};
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::clock::{FrameClock, SequenceTracker};
use super::format::{
    choose_mode, stepwise_intervals, stepwise_sizes, FormatModes, Interval, Mode, ModeRequest,
    SizeModes,
};
use super::{CaptureError, FrameSource};
use crate::media::CLOCK_RATE;
use crate::media::{PixelFormat, RawFrame};

/// Buffers the driver fills while we copy one out: enough to ride out a slow frame.
pub const BUFFERS: u32 = 4;
/// `V4L2_BUF_TYPE_VIDEO_CAPTURE` and `V4L2_MEMORY_MMAP`.
const BUF_TYPE: u32 = 1;
const MEMORY_MMAP: u32 = 1;
/// Consecutive buffers flagged as failed after which the camera counts as lost.
const MAX_ERROR_BUFFERS_IN_A_ROW: u32 = 30;

/// What `--list-cameras` shows about one device.
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    pub path: String,
    pub driver: String,
    pub card: String,
    pub bus: String,
    pub formats: Vec<FormatModes>,
}

/// `/dev/video*` nodes in number order (video2 before video10).
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_prefix("video")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// Device identity and the capabilities of this node (not of the whole device: a UVC
/// camera's metadata node shares the physical device's capture capability).
struct NodeCaps {
    driver: String,
    card: String,
    bus: String,
    caps: u32,
}

impl NodeCaps {
    fn can_capture(&self) -> bool {
        self.caps & V4L2_CAP_VIDEO_CAPTURE != 0 && self.caps & V4L2_CAP_STREAMING != 0
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An ioctl, retried when a signal interrupts it.
///
/// # Safety
/// `arg` must point to the structure `request` expects.
unsafe fn xioctl<T>(fd: i32, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    loop {
        match v4l::v4l2::ioctl(fd, request, arg as *mut T as *mut c_void) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn query_caps(dev: &Device) -> io::Result<NodeCaps> {
    // SAFETY: plain C struct, all-zero is a valid value; QUERYCAP fills it.
    let mut cap: v4l2_capability = unsafe { std::mem::zeroed() };
    // SAFETY: QUERYCAP takes a v4l2_capability.
    unsafe { xioctl(dev.handle().fd(), vidioc::VIDIOC_QUERYCAP, &mut cap)? };
    let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok(NodeCaps {
        driver: c_string(&cap.driver),
        card: c_string(&cap.card),
        bus: c_string(&cap.bus_info),
        caps,
    })
}

fn fourcc_text(f: FourCC) -> String {
    f.repr
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn interval(f: Fraction) -> Interval {
    Interval {
        num: f.numerator,
        den: f.denominator,
    }
}

/// The device's formats x sizes x intervals; stepwise ranges become the candidates that
/// matter for `req` (see `format::stepwise_sizes`).
fn read_modes(dev: &Device, req: &ModeRequest) -> io::Result<Vec<FormatModes>> {
    use v4l::frameinterval::FrameIntervalEnum;
    use v4l::framesize::FrameSizeEnum;
    let mut out = Vec::new();
    for desc in dev.enum_formats()? {
        let fourcc = fourcc_text(desc.fourcc);
        let mut sizes = Vec::new();
        // A format without enumerable sizes is listed without sizes (and so never chosen).
        for fs in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            let candidates = match fs.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => stepwise_sizes(
                    (s.min_width, s.max_width, s.step_width),
                    (s.min_height, s.max_height, s.step_height),
                    (req.width, req.height),
                ),
            };
            for (width, height) in candidates {
                let mut intervals = Vec::new();
                for fi in dev
                    .enum_frameintervals(desc.fourcc, width, height)
                    .unwrap_or_default()
                {
                    match fi.interval {
                        FrameIntervalEnum::Discrete(f) => intervals.push(interval(f)),
                        FrameIntervalEnum::Stepwise(s) => intervals.extend(stepwise_intervals(
                            interval(s.min),
                            interval(s.max),
                            req.fps,
                        )),
                    }
                }
                sizes.push(SizeModes {
                    width,
                    height,
                    intervals,
                });
            }
        }
        out.push(FormatModes {
            format: PixelFormat::from_fourcc(&fourcc),
            fourcc,
            description: desc.description,
            sizes,
        });
    }
    Ok(out)
}

/// Every V4L2 node that can capture video, with what it offers. Nodes that cannot be opened
/// or that only output or carry metadata are left out.
pub fn list_cameras() -> Vec<CameraInfo> {
    let req = ModeRequest {
        width: 1280,
        height: 720,
        fps: 30,
        pixel_format: None,
    };
    video_nodes()
        .into_iter()
        .filter_map(|path| {
            let dev = Device::with_path(&path).ok()?;
            let caps = query_caps(&dev).ok()?;
            if !caps.can_capture() {
                return None;
            }
            Some(CameraInfo {
                path: path.display().to_string(),
                formats: read_modes(&dev, &req).unwrap_or_default(),
                driver: caps.driver,
                card: caps.card,
                bus: caps.bus,
            })
        })
        .collect()
}

/// The first node that can capture video (what `source: auto` uses), if any.
pub fn first_camera() -> Option<PathBuf> {
    video_nodes().into_iter().find(|path| {
        Device::with_path(path)
            .and_then(|dev| query_caps(&dev))
            .is_ok_and(|c| c.can_capture())
    })
}

/// One driver buffer mapped into our address space.
struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

/// Copies a raw picture with `stride` bytes per (luma) row into `dst` without row padding.
/// Returns false if `src` is too short for the picture.
fn copy_tight(
    format: PixelFormat,
    (w, h): (usize, usize),
    stride: usize,
    src: &[u8],
    dst: &mut Vec<u8>,
) -> bool {
    let Some(len) = format.frame_len(w as u32, h as u32) else {
        return false;
    };
    // (bytes per row, rows, source stride) for each plane, in order.
    let planes: [(usize, usize, usize); 3] = match format {
        PixelFormat::Yuyv | PixelFormat::Uyvy => [(2 * w, h, stride), (0, 0, 0), (0, 0, 0)],
        PixelFormat::Nv12 => [(w, h, stride), (w, h / 2, stride), (0, 0, 0)],
        PixelFormat::I420 => [
            (w, h, stride),
            (w / 2, h / 2, stride / 2),
            (w / 2, h / 2, stride / 2),
        ],
        PixelFormat::Mjpeg | PixelFormat::H264 => return false,
    };
    let tight = planes.iter().all(|&(row, _, s)| row == s);
    if tight {
        if src.len() < len {
            return false;
        }
        dst.clear();
        dst.extend_from_slice(&src[..len]);
        return true;
    }
    let needed: usize = planes.iter().map(|&(_, rows, s)| rows * s).sum();
    if src.len() < needed || planes.iter().any(|&(row, _, s)| s < row) {
        return false;
    }
    dst.clear();
    let mut offset = 0;
    for (row, rows, s) in planes {
        for r in 0..rows {
            dst.extend_from_slice(&src[offset + r * s..][..row]);
        }
        offset += rows * s;
    }
    true
}

/// A V4L2 camera streaming through memory-mapped buffers.
pub struct V4l2Source {
    device: String,
    dev: Device,
    mode: Mode,
    /// Bytes per row the driver uses (may include padding).
    stride: usize,
    maps: Vec<Mapping>,
    /// The buffer handed out last, given back to the driver before the next wait.
    pending: Option<u32>,
    streaming: bool,
    clock: FrameClock,
    sequence: SequenceTracker,
    error_buffers: u64,
    errors_in_a_row: u32,
    timeout: Duration,
    keyframe_control: bool,
    spare: Option<Vec<u8>>,
}

// SAFETY: the raw pointers are the source's own mappings; they are only touched through
// `&mut self` on whichever thread owns the source.
unsafe impl Send for V4l2Source {}

impl V4l2Source {
    /// Opens `path`, chooses and sets the mode for `req`, maps `BUFFERS` buffers and starts
    /// streaming. Logs what was chosen when it differs from the request.
    pub fn open(path: &Path, req: &ModeRequest) -> Result<V4l2Source, CaptureError> {
        let device = path.display().to_string();
        let err = |op: &'static str| {
            let device = device.clone();
            move |error: io::Error| CaptureError::Device { device, op, error }
        };
        let dev = Device::with_path(path).map_err(|error| CaptureError::Open {
            device: device.clone(),
            error,
        })?;
        let caps = query_caps(&dev).map_err(err("VIDIOC_QUERYCAP"))?;
        if !caps.can_capture() {
            return Err(CaptureError::Unsupported {
                device,
                reason: format!(
                    "{} ({}) is not a streaming video capture node (a metadata or output node?)",
                    caps.card, caps.driver
                ),
            });
        }
        let table = read_modes(&dev, req).map_err(err("VIDIOC_ENUM_FMT"))?;
        let Some(choice) = choose_mode(&table, req) else {
            let offered: Vec<&str> = table.iter().map(|f| f.fourcc.as_str()).collect();
            return Err(CaptureError::Unsupported {
                device,
                reason: format!(
                    "offers no format Vigint can use (it has {}; usable: H264, YU12, NV12, YUYV, UYVY, MJPG)",
                    offered.join(", ")
                ),
            });
        };
        if choice.preference_unmet {
            if let Some(p) = req.pixel_format {
                log::warn!("{device}: has no {} format; choosing another", p.fourcc());
            }
        }
        let mut mode = choice.mode;
        let fourcc = FourCC::new(&fourcc_bytes(mode.format));
        let set = dev
            .set_format(&Format::new(mode.width, mode.height, fourcc))
            .map_err(err("VIDIOC_S_FMT"))?;
        if set.fourcc != fourcc {
            return Err(CaptureError::Unsupported {
                device,
                reason: format!(
                    "asked for {}, the driver set {}",
                    mode.format.fourcc(),
                    fourcc_text(set.fourcc)
                ),
            });
        }
        if (set.width, set.height) != (mode.width, mode.height) {
            log::warn!(
                "{device}: asked for {}x{}, the driver set {}x{}",
                mode.width,
                mode.height,
                set.width,
                set.height
            );
            if mode.format != PixelFormat::H264 && (set.width % 2 != 0 || set.height % 2 != 0) {
                return Err(CaptureError::Unsupported {
                    device,
                    reason: format!("odd size {}x{} cannot be encoded", set.width, set.height),
                });
            }
            mode.width = set.width;
            mode.height = set.height;
        }
        // Not every driver lets the rate be set; then it runs at its own.
        let params = v4l::video::capture::Parameters::new(Fraction::new(
            mode.interval.num,
            mode.interval.den,
        ));
        match dev.set_params(&params) {
            Ok(p) if p.interval.numerator > 0 && p.interval.denominator > 0 => {
                mode.interval = interval(p.interval);
            }
            Ok(_) => {}
            Err(e) => log::debug!("{device}: cannot set the frame rate: {e}"),
        }
        let keyframe_control = mode.format == PixelFormat::H264 && has_keyframe_control(&dev);
        let period = (CLOCK_RATE as f64 / mode.interval.fps().max(0.1)).round() as i64;
        // Long enough for the slowest rate plus USB hiccups, short enough to notice a hang.
        let timeout = Duration::from_secs_f64((4.0 / mode.interval.fps().max(0.1)).max(2.0));
        let mut source = V4l2Source {
            device,
            dev,
            mode,
            stride: set.stride as usize,
            maps: Vec::new(),
            pending: None,
            streaming: false,
            clock: FrameClock::new(period),
            sequence: SequenceTracker::default(),
            error_buffers: 0,
            errors_in_a_row: 0,
            timeout,
            keyframe_control,
            spare: None,
        };
        source.start()?;
        Ok(source)
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Buffers the driver flagged as failed (skipped).
    pub fn error_buffers(&self) -> u64 {
        self.error_buffers
    }

    fn fd(&self) -> i32 {
        self.dev.handle().fd()
    }

    fn fail(&self, op: &'static str, error: io::Error) -> CaptureError {
        CaptureError::Device {
            device: self.device.clone(),
            op,
            error,
        }
    }

    /// REQBUFS, QUERYBUF + mmap each buffer, QBUF all, STREAMON.
    fn start(&mut self) -> Result<(), CaptureError> {
        let fd = self.fd();
        let mut req = v4l2_requestbuffers {
            count: BUFFERS,
            type_: BUF_TYPE,
            memory: MEMORY_MMAP,
            // SAFETY: plain C struct; zero is valid for the remaining fields.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: REQBUFS takes a v4l2_requestbuffers.
        unsafe { xioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req) }
            .map_err(|e| self.fail("VIDIOC_REQBUFS", e))?;
        if req.count < 2 {
            return Err(self.fail(
                "VIDIOC_REQBUFS",
                io::Error::other(format!("driver granted {} buffers", req.count)),
            ));
        }
        for index in 0..req.count {
            let mut buf = self.buffer(index);
            // SAFETY: QUERYBUF takes a v4l2_buffer.
            unsafe { xioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut buf) }
                .map_err(|e| self.fail("VIDIOC_QUERYBUF", e))?;
            let len = buf.length as usize;
            // SAFETY: maps the driver buffer at the offset it gave us; unmapped in Drop.
            let ptr = unsafe {
                v4l::v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    buf.m.offset as libc::off_t,
                )
            }
            .map_err(|e| self.fail("mmap", e))?;
            self.maps.push(Mapping { ptr, len });
        }
        for index in 0..req.count {
            self.queue(index)?;
        }
        let mut typ = BUF_TYPE;
        // SAFETY: STREAMON takes the buffer type as an int.
        unsafe { xioctl(fd, vidioc::VIDIOC_STREAMON, &mut typ) }
            .map_err(|e| self.fail("VIDIOC_STREAMON", e))?;
        self.streaming = true;
        Ok(())
    }

    fn buffer(&self, index: u32) -> v4l2_buffer {
        v4l2_buffer {
            index,
            type_: BUF_TYPE,
            memory: MEMORY_MMAP,
            // SAFETY: plain C struct; zero is valid for the remaining fields.
            ..unsafe { std::mem::zeroed() }
        }
    }

    fn queue(&mut self, index: u32) -> Result<(), CaptureError> {
        let mut buf = self.buffer(index);
        // SAFETY: QBUF takes a v4l2_buffer.
        unsafe { xioctl(self.fd(), vidioc::VIDIOC_QBUF, &mut buf) }
            .map_err(|e| self.fail("VIDIOC_QBUF", e))
    }

    /// Waits for the next filled buffer and dequeues it.
    fn dequeue(&mut self) -> Result<v4l2_buffer, CaptureError> {
        let fd = self.fd();
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(CaptureError::Timeout {
                    device: self.device.clone(),
                    waited: self.timeout,
                });
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.fail("poll", e));
            }
            if n == 0 {
                continue;
            }
            // Readable or in error: DQBUF says which.
            let mut buf = self.buffer(0);
            // SAFETY: DQBUF takes a v4l2_buffer.
            match unsafe { xioctl(fd, vidioc::VIDIOC_DQBUF, &mut buf) } {
                Ok(()) => return Ok(buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.fail("VIDIOC_DQBUF", e)),
            }
        }
    }

    fn stop(&mut self) {
        let fd = self.fd();
        if self.streaming {
            let mut typ = BUF_TYPE;
            // SAFETY: STREAMOFF takes the buffer type as an int. Errors (the camera is gone)
            // change nothing: the mappings are released below either way.
            let _ = unsafe { xioctl(fd, vidioc::VIDIOC_STREAMOFF, &mut typ) };
            self.streaming = false;
        }
        for m in self.maps.drain(..) {
            // SAFETY: each mapping was made by mmap with this length and is unmapped once.
            let _ = unsafe { v4l::v4l2::munmap(m.ptr, m.len) };
        }
        let mut req = v4l2_requestbuffers {
            count: 0,
            type_: BUF_TYPE,
            memory: MEMORY_MMAP,
            // SAFETY: plain C struct; zero is valid for the remaining fields.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: REQBUFS takes a v4l2_requestbuffers; frees the driver's buffers.
        let _ = unsafe { xioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req) };
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fourcc_bytes(f: PixelFormat) -> [u8; 4] {
    let mut out = [b' '; 4];
    for (o, b) in out.iter_mut().zip(f.fourcc().bytes()) {
        *o = b;
    }
    out
}

fn has_keyframe_control(dev: &Device) -> bool {
    let mut q = v4l2_queryctrl {
        id: V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME,
        // SAFETY: plain C struct; zero is valid for the remaining fields.
        ..unsafe { std::mem::zeroed() }
    };
    // SAFETY: QUERYCTRL takes a v4l2_queryctrl.
    let ok = unsafe { xioctl(dev.handle().fd(), vidioc::VIDIOC_QUERYCTRL, &mut q) }.is_ok();
    ok && q.flags & V4L2_CTRL_FLAG_DISABLED == 0
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        format!("camera {} {}", self.device, self.mode)
    }

    fn size(&self) -> (u32, u32) {
        (self.mode.width, self.mode.height)
    }

    fn fps(&self) -> u32 {
        self.mode.interval.fps_rounded()
    }

    fn rate_text(&self) -> String {
        self.mode.interval.to_string()
    }

    fn format(&self) -> PixelFormat {
        self.mode.format
    }

    fn device(&self) -> Option<&str> {
        Some(&self.device)
    }

    fn dropped_frames(&self) -> u64 {
        self.sequence.dropped() + self.error_buffers
    }

    fn request_keyframe(&mut self) {
        if !self.keyframe_control {
            return;
        }
        let mut c = v4l2_control {
            id: V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME,
            value: 1,
        };
        // SAFETY: S_CTRL takes a v4l2_control.
        if let Err(e) = unsafe { xioctl(self.fd(), vidioc::VIDIOC_S_CTRL, &mut c) } {
            log::debug!("{}: key frame request failed: {e}", self.device);
        }
    }

    fn next_frame(&mut self) -> Result<RawFrame, CaptureError> {
        loop {
            if let Some(index) = self.pending.take() {
                self.queue(index)?;
            }
            let buf = self.dequeue()?;
            self.pending = Some(buf.index);
            self.sequence.observe(buf.sequence);
            let Some(map) = self.maps.get(buf.index as usize) else {
                return Err(self.fail(
                    "VIDIOC_DQBUF",
                    io::Error::other(format!("unknown buffer index {}", buf.index)),
                ));
            };
            // SAFETY: the mapping is live until Drop and the driver does not write to a
            // dequeued buffer until we queue it again.
            let mapped = unsafe { std::slice::from_raw_parts(map.ptr as *const u8, map.len) };
            let used = (buf.bytesused as usize).min(mapped.len());
            let mut data = self.spare.take().unwrap_or_default();
            let (w, h) = (self.mode.width as usize, self.mode.height as usize);
            let ok = buf.flags & V4L2_BUF_FLAG_ERROR == 0
                && match self.mode.format {
                    PixelFormat::Mjpeg | PixelFormat::H264 => {
                        data.clear();
                        data.extend_from_slice(&mapped[..used]);
                        used > 0
                    }
                    raw => {
                        // Some drivers leave bytesused at 0 for raw formats.
                        let src = if used == 0 { mapped } else { &mapped[..used] };
                        copy_tight(raw, (w, h), self.stride, src, &mut data)
                    }
                };
            if !ok {
                self.spare = Some(data);
                self.error_buffers += 1;
                self.errors_in_a_row += 1;
                if self.errors_in_a_row >= MAX_ERROR_BUFFERS_IN_A_ROW {
                    return Err(CaptureError::Corrupt {
                        device: self.device.clone(),
                        buffers: self.errors_in_a_row,
                    });
                }
                continue;
            }
            self.errors_in_a_row = 0;
            let ts = Duration::new(
                buf.timestamp.tv_sec.max(0) as u64,
                (buf.timestamp.tv_usec.clamp(0, 999_999) as u32) * 1000,
            );
            return Ok(RawFrame {
                format: self.mode.format,
                width: self.mode.width,
                height: self.mode.height,
                data,
                pts_90k: self.clock.pts(ts),
                wall: SystemTime::now(),
                sequence: buf.sequence as u64,
            });
        }
    }

    fn recycle(&mut self, frame: RawFrame) {
        self.spare = Some(frame.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tight_copy_of_padded_rows() {
        // YUYV 2x2 with 2 bytes of padding per row.
        let src = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0];
        let mut dst = Vec::new();
        assert!(copy_tight(PixelFormat::Yuyv, (2, 2), 6, &src, &mut dst));
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8]);
        // Already tight: one copy of exactly the frame (trailing bytes ignored).
        assert!(copy_tight(
            PixelFormat::Yuyv,
            (2, 2),
            4,
            &src[..10],
            &mut dst
        ));
        assert_eq!(dst, src[..8]);
        // Too short.
        assert!(!copy_tight(
            PixelFormat::Yuyv,
            (2, 2),
            6,
            &src[..8],
            &mut dst
        ));
    }

    #[test]
    fn tight_copy_of_planar_formats() {
        // I420 4x2, stride 6 (chroma stride 3).
        let mut src = vec![];
        src.extend_from_slice(&[1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0]);
        src.extend_from_slice(&[9, 10, 0]);
        src.extend_from_slice(&[11, 12, 0]);
        let mut dst = Vec::new();
        assert!(copy_tight(PixelFormat::I420, (4, 2), 6, &src, &mut dst));
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        // NV12 4x2, stride 6.
        let src = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12, 0, 0];
        assert!(copy_tight(PixelFormat::Nv12, (4, 2), 6, &src, &mut dst));
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(!copy_tight(PixelFormat::Mjpeg, (4, 2), 6, &src, &mut dst));
    }

    #[test]
    fn fourcc_bytes_pad_short_codes() {
        assert_eq!(&fourcc_bytes(PixelFormat::Yuyv), b"YUYV");
        assert_eq!(&fourcc_bytes(PixelFormat::I420), b"YU12");
        assert_eq!(fourcc_text(FourCC::new(b"Y10 ")), "Y10");
    }

    #[test]
    fn listing_without_cameras_is_empty_not_an_error() {
        // There is no camera on build machines; on a board this lists real ones. Either way
        // it must not panic and every entry must be a capture node.
        for cam in list_cameras() {
            assert!(!cam.path.is_empty());
        }
        let _ = first_camera();
    }
}
