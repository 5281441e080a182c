//! The capture + encode thread of one path.
//!
//! Owns: the OS thread that opens a source and brings its frames to H.264 by one of three
//! routes (`passthrough` for cameras that encode H.264, `software-encode from MJPG` through
//! the JPEG decoder, `software-encode from <raw format>` through conversion), answers key
//! frame requests from readers (forwarded to the camera on the passthrough route), keeps the
//! path's stream description current, publishes frames to the path's hub with monotonic
//! media time, and retries a failed source with backoff (`stats::next_backoff`); it keeps
//! the counters and state that show how it goes (`stats::PipelineStats`) current, and writes
//! the log lines an operator (and the emulated-board tests) follow: `camera <dev> opened: ...`, `camera lost: <reason>`,
//! `camera back after <N> ms`, `camera dropped <N> frames in all`.
//! Does not own: the path and its hub (the supervisor creates them; stopping a pipeline leaves the
//! hub open so a restarted pipeline can continue it), nor what readers do.
//!
//! When the source fails, the stream description stays (RTSP clients stay connected and
//! resume at the next IDR, with media time continuing after the last frame they got); it is
//! replaced only when the reopened source has another size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::encode::convert::{ConvertError, Converter};
use crate::encode::{EncodeError, Encoder, EncoderSettings, OpenH264Encoder};
use crate::hub::MediaPath;
use crate::media::{stream_info_from_idr, EncodedFrame, PixelFormat, RawFrame, CLOCK_RATE};
use crate::source::stats::{lock, next_backoff, route_for, PipelineStats};
use crate::source::{with_parameter_sets, CaptureError, FrameSource};
use crate::status::SourceState;

/// Opens the source anew (called at start and after every failure).
pub type SourceFactory = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

/// How often a growing dropped-frame count is logged at most.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Undecodable frames in a row after which the source counts as failed.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 30;

/// Handle of a running pipeline thread.
pub struct Pipeline {
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    change: Arc<PendingChange>,
    thread: Option<JoinHandle<()>>,
}

/// New settings for a running pipeline, picked up between frames.
struct Reconfig {
    /// A new source (reopened at once), or `None` to keep the open source and only rebuild
    /// the encoder.
    factory: Option<SourceFactory>,
    settings: EncoderSettings,
}

/// The slot through which `Pipeline::reconfigure` hands a change to the thread.
#[derive(Default)]
struct PendingChange {
    pending: AtomicBool,
    slot: Mutex<Option<Reconfig>>,
}

/// What a running session must do about a pending change.
enum Pending {
    Nothing,
    /// A new source: end the session and reopen.
    Reopen,
    /// Only new encoder settings (taken from the slot).
    Encoder(EncoderSettings),
}

impl PendingChange {
    /// Checked between frames: cheap (one atomic load) when nothing is pending.
    fn poll(&self) -> Pending {
        if !self.is_pending() {
            return Pending::Nothing;
        }
        let reopen = lock(&self.slot)
            .as_ref()
            .is_none_or(|r| r.factory.is_some());
        if reopen {
            return Pending::Reopen;
        }
        match self.take() {
            Some(r) => Pending::Encoder(r.settings),
            None => Pending::Nothing,
        }
    }

    fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
    fn take(&self) -> Option<Reconfig> {
        let r = lock(&self.slot).take();
        self.pending.store(false, Ordering::Release);
        r
    }
}

impl Pipeline {
    /// Starts the thread "pipe-<path>". `settings` gives bitrate and IDR interval (in frames
    /// at `settings.fps`); size and rate are taken from the source once it is open.
    pub fn spawn(
        path: Arc<MediaPath>,
        source: SourceFactory,
        settings: EncoderSettings,
    ) -> std::io::Result<Pipeline> {
        let stats = Arc::new(PipelineStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let change = Arc::new(PendingChange::default());
        let worker = Worker {
            path: path.clone(),
            factory: source,
            settings,
            stats: stats.clone(),
            stop: stop.clone(),
            change: change.clone(),
            last_logged: None,
            last_size: None,
            last_pts: None,
            last_published_at: None,
            lost_since: None,
            drops_logged: 0,
            drops_logged_at: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("pipe-{}", path.name))
            .spawn(move || worker.run())?;
        Ok(Pipeline {
            stats,
            stop,
            change,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// Applies new settings without stopping the path: with a new `source`, the source is
    /// reopened; without, the open source stays and only the encoder is rebuilt (a bitrate
    /// change). Media time continues either way, so viewers stay connected unless the
    /// picture size changes. A later call before the thread picked this one up replaces it.
    pub fn reconfigure(&self, source: Option<SourceFactory>, settings: EncoderSettings) {
        let mut slot = lock(&self.change.slot);
        // A pending source change must not be lost to a later encoder-only change.
        let factory = match (source, slot.take()) {
            (Some(f), _) => Some(f),
            (None, Some(old)) => old.factory,
            (None, None) => None,
        };
        *slot = Some(Reconfig { factory, settings });
        self.change.pending.store(true, Ordering::Release);
        drop(slot);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Stops the thread and waits for it (at most about one frame period, or one blocking
    /// call into the source).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                log::error!("pipeline thread panicked");
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Why a streaming session ended.
enum SessionEnd {
    Stopped,
    /// New settings are waiting (`Pipeline::reconfigure`).
    Reconfigure,
    /// The reason, and whether the source was a camera (so the loss is reported as such).
    Failed {
        reason: String,
        camera: bool,
    },
}

/// Camera errors name the device path; other sources (the test pattern) name themselves.
fn is_camera_error(e: &CaptureError) -> bool {
    e.device().starts_with('/')
}

struct Worker {
    path: Arc<MediaPath>,
    factory: SourceFactory,
    settings: EncoderSettings,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    change: Arc<PendingChange>,
    /// The last error logged, so a repeating error is logged once.
    last_logged: Option<String>,
    last_size: Option<(u32, u32)>,
    /// Media time of the last published frame, and when it was published: a reopened
    /// source continues after it by the time that really passed.
    last_pts: Option<i64>,
    last_published_at: Option<Instant>,
    /// When the camera was lost (for "camera back after N ms").
    lost_since: Option<Instant>,
    /// The dropped-frame total last logged, and when.
    drops_logged: u64,
    drops_logged_at: Option<Instant>,
}

/// Where a reopened source's media time starts: after the last published frame by the
/// time that really passed (whole frame periods, at least one), so media time stays true to
/// elapsed time across an outage. Returns the offset to add to the new source's pts and the
/// number of frame periods the outage swallowed.
fn resume_offset(
    last_pts: Option<i64>,
    last_at: Option<Instant>,
    period_90k: i64,
    first_pts: i64,
) -> (i64, u64) {
    let (Some(last), Some(at)) = (last_pts, last_at) else {
        return (0, 0);
    };
    let period = period_90k.max(1);
    let elapsed = (at.elapsed().as_secs_f64() * crate::media::CLOCK_RATE as f64) as i64;
    let periods = (elapsed / period).max(1);
    (last + periods * period - first_pts, (periods - 1) as u64)
}

/// The IDR interval is configured in seconds: keep it when the source's rate differs.
fn idr_for(settings: &EncoderSettings, fps: u32) -> u32 {
    (settings.idr_interval_frames as u64 * fps as u64 / settings.fps.max(1) as u64).max(1) as u32
}

/// Per-session state shared by both routes.
struct Session {
    /// Added to the source's pts so media time continues across reopens.
    pts_offset: Option<i64>,
    period_90k: i64,
    /// The source's dropped-frame count already added to the stats.
    dropped_seen: u64,
    started: Instant,
    first_published: bool,
    camera: bool,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps up to `d`, waking early when stopped (stop() unparks the thread).
    fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        while !self.stopped() && !self.change.is_pending() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    fn record_failure(&mut self, reason: String, camera: bool) {
        self.stats.set_error(reason.clone());
        let name = &self.path.name;
        if camera {
            self.stats
                .set_state(SourceState::CameraLost(reason.clone()));
            if self.lost_since.is_none() {
                self.lost_since = Some(Instant::now());
                log::warn!("path {name}: camera lost: {reason}");
            } else if self.last_logged.as_deref() != Some(reason.as_str()) {
                log::info!("path {name}: camera still unavailable: {reason}");
            } else {
                log::debug!("path {name}: camera still unavailable: {reason}");
            }
        } else {
            self.stats.set_state(SourceState::Failed(reason.clone()));
            if self.last_logged.as_deref() != Some(reason.as_str()) {
                log::error!("path {name}: {reason}");
            }
        }
        self.last_logged = Some(reason);
    }

    fn run(mut self) {
        let name = self.path.name.clone();
        let mut backoff = None;
        while !self.stopped() {
            let t0 = Instant::now();
            let (end, ran) = match (self.factory)() {
                Ok(source) => {
                    let end = self.stream(source);
                    (end, t0.elapsed())
                }
                Err(e) => {
                    let camera = is_camera_error(&e);
                    let end = SessionEnd::Failed {
                        reason: e.to_string(),
                        camera,
                    };
                    (end, Duration::ZERO)
                }
            };
            self.stats.streaming.store(false, Ordering::Relaxed);
            self.log_drops(true);
            if self.change.is_pending() {
                // Applied here whether the session ended for it or failed meanwhile.
                if let Some(r) = self.change.take() {
                    if let Some(f) = r.factory {
                        self.factory = f;
                    }
                    self.settings = r.settings;
                    log::info!("path {name}: new settings applied");
                }
                backoff = None;
                if !matches!(end, SessionEnd::Stopped) {
                    continue;
                }
            }
            match end {
                SessionEnd::Stopped => break,
                SessionEnd::Reconfigure => continue,
                SessionEnd::Failed { reason, camera } => {
                    self.record_failure(reason, camera);
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    let delay = next_backoff(backoff, ran);
                    backoff = Some(delay);
                    self.sleep(delay);
                }
            }
        }
        self.stats.set_state(SourceState::Stopped);
        log::info!("path {name}: pipeline stopped");
    }

    /// Logs the dropped-frame total when it changed, at most every `DROP_LOG_INTERVAL`
    /// unless `now` (end of a session).
    fn log_drops(&mut self, now: bool) {
        let total = self.stats.camera_dropped();
        if total == self.drops_logged {
            return;
        }
        let due = self
            .drops_logged_at
            .is_none_or(|t| t.elapsed() >= DROP_LOG_INTERVAL);
        if now || due {
            log::info!(
                "path {}: camera dropped {total} frames in all",
                self.path.name
            );
            self.drops_logged = total;
            self.drops_logged_at = Some(Instant::now());
        }
    }

    /// Bookkeeping for every captured frame: dropped-frame count and media time.
    fn on_captured(&mut self, s: &mut Session, source: &dyn FrameSource, frame: &mut RawFrame) {
        self.stats.frames_captured.fetch_add(1, Ordering::Relaxed);
        let dropped = source.dropped_frames();
        if dropped > s.dropped_seen {
            self.stats
                .camera_dropped
                .fetch_add(dropped - s.dropped_seen, Ordering::Relaxed);
            s.dropped_seen = dropped;
        }
        if s.pts_offset.is_none() {
            let (offset, missed) = resume_offset(
                self.last_pts,
                self.last_published_at,
                s.period_90k,
                frame.pts_90k,
            );
            if missed > 0 {
                // Frames the camera did not deliver while it was away are dropped frames too.
                self.stats
                    .camera_dropped
                    .fetch_add(missed, Ordering::Relaxed);
            }
            s.pts_offset = Some(offset);
        }
        self.log_drops(false);
        frame.pts_90k += s.pts_offset.unwrap_or(0);
    }

    /// Publishes one frame and updates counters, state and the recovery log line.
    fn publish(&mut self, s: &mut Session, frame: EncodedFrame) {
        if frame.is_idr {
            self.stats.idr_count.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_encoded
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        self.last_pts = Some(frame.pts_90k);
        self.last_published_at = Some(Instant::now());
        if !s.first_published {
            s.first_published = true;
            self.stats.streaming.store(true, Ordering::Relaxed);
            self.stats.set_state(SourceState::Streaming);
            if let Some(since) = self.lost_since.take() {
                log::info!(
                    "path {}: camera back after {} ms",
                    self.path.name,
                    since.elapsed().as_millis()
                );
            } else if self.last_logged.is_some() && !s.camera {
                log::info!("path {}: recovered", self.path.name);
            }
            self.last_logged = None;
        }
        self.path.frames.publish(Arc::new(frame));
    }

    /// Runs one opened source until it fails or the pipeline is stopped.
    fn stream(&mut self, source: Box<dyn FrameSource>) -> SessionEnd {
        let (width, height) = source.size();
        let fps = source.fps();
        let format = source.format();
        let camera = source.device().is_some();
        let route = route_for(format, camera);
        *lock(&self.stats.route) = route.clone();
        if self.last_size.is_some_and(|s| s != (width, height)) {
            // Old SPS/PPS and the cached key frame no longer describe the stream.
            log::info!(
                "path {}: size changed to {width}x{height}; replacing the stream description",
                self.path.name
            );
            self.path.clear_info();
            self.path.frames.forget_key();
            self.path.picture.clear();
        }
        self.last_size = Some((width, height));
        if let Some(dev) = source.device() {
            log::info!(
                "path {}: camera {dev} opened: {} {width}x{height}@{} ({route})",
                self.path.name,
                format.fourcc(),
                source.rate_text()
            );
        }
        let mut session = Session {
            pts_offset: None,
            period_90k: (CLOCK_RATE / fps.max(1)) as i64,
            dropped_seen: 0,
            started: Instant::now(),
            first_published: false,
            camera,
        };
        if format == PixelFormat::H264 {
            log::info!(
                "path {}: streaming {} ({route})",
                self.path.name,
                source.describe()
            );
            self.passthrough(source, &mut session)
        } else {
            self.encode(source, &mut session)
        }
    }

    /// H.264 from the camera, published as it comes.
    fn passthrough(&mut self, mut source: Box<dyn FrameSource>, s: &mut Session) -> SessionEnd {
        let fps = source.fps();
        let mut params: Option<(Bytes, Bytes)> = None;
        // Snapshots come from the H.264 now, not from a raw picture of an earlier source.
        self.path.picture.clear();
        // Readers need an IDR to start; ask at once rather than wait for the camera's GOP.
        source.request_keyframe();
        let mut waited = 0u32;
        loop {
            if self.stopped() {
                return SessionEnd::Stopped;
            }
            match self.change.poll() {
                Pending::Nothing => {}
                Pending::Reopen => return SessionEnd::Reconfigure,
                // The camera's own encoder ignores our bitrate: only a new source matters.
                Pending::Encoder(settings) => self.settings = settings,
            }
            if crate::fault::enabled() {
                self.injected_hang();
            }
            let mut frame = match source.next_frame() {
                Ok(f) => f,
                Err(e) => return self.failed(e.to_string(), s),
            };
            self.on_captured(s, source.as_ref(), &mut frame);
            if self.path.frames.keyframe_request().take() {
                source.request_keyframe();
            }
            let data = Bytes::from(std::mem::take(&mut frame.data));
            let (pts, wall) = (frame.pts_90k, frame.wall);
            source.recycle(frame);
            let au = EncodedFrame::from_annexb(data, pts, wall);
            if au.nals.is_empty() {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some(info) = stream_info_from_idr(&au, fps) {
                params = Some((info.sps.clone(), info.pps.clone()));
                if au.is_idr {
                    self.path.set_info(info);
                }
            }
            let Some((sps, pps)) = &params else {
                // Nothing is decodable before the first SPS/PPS.
                waited += 1;
                if waited.is_multiple_of(fps.max(1) * 2) {
                    source.request_keyframe();
                }
                continue;
            };
            let au = with_parameter_sets(au, sps, pps);
            if au.is_idr && self.path.info().is_none() {
                if let Some(info) = stream_info_from_idr(&au, fps) {
                    self.path.set_info(info);
                }
            }
            if !s.first_published && !au.is_idr {
                continue;
            }
            self.publish(s, au);
        }
    }

    /// Raw or MJPEG frames: convert (or decode) to I420 and encode with openh264.
    fn encode(&mut self, mut source: Box<dyn FrameSource>, s: &mut Session) -> SessionEnd {
        let (width, height) = source.size();
        let fps = source.fps();
        let settings = EncoderSettings {
            width,
            height,
            fps,
            idr_interval_frames: idr_for(&self.settings, fps),
            ..self.settings.clone()
        };
        let mut encoder = match OpenH264Encoder::new(&settings) {
            Ok(e) => e,
            Err(e) => return self.failed(format!("{}: {e}", source.describe()), s),
        };
        log::info!(
            "path {}: streaming {} at {} kbit/s, IDR every {} frames",
            self.path.name,
            source.describe(),
            settings.bitrate_kbps,
            settings.idr_interval_frames
        );
        let mut converter = Converter::new();
        let mut first = true;
        let mut bad_in_a_row = 0u32;
        loop {
            if self.stopped() {
                return SessionEnd::Stopped;
            }
            match self.change.poll() {
                Pending::Nothing => {}
                Pending::Reopen => return SessionEnd::Reconfigure,
                Pending::Encoder(settings) => {
                    self.settings = settings;
                    let next = EncoderSettings {
                        width,
                        height,
                        fps,
                        idr_interval_frames: idr_for(&self.settings, fps),
                        ..self.settings.clone()
                    };
                    match OpenH264Encoder::new(&next) {
                        Ok(e) => {
                            encoder = e;
                            first = true;
                            log::info!(
                                "path {}: encoder now at {} kbit/s, IDR every {} frames",
                                self.path.name,
                                next.bitrate_kbps,
                                next.idr_interval_frames
                            );
                        }
                        Err(e) => return self.failed(format!("{}: {e}", source.describe()), s),
                    }
                }
            }
            if crate::fault::enabled() {
                self.injected_hang();
            }
            let mut frame = match source.next_frame() {
                Ok(f) => f,
                Err(e) => return self.failed(e.to_string(), s),
            };
            self.on_captured(s, source.as_ref(), &mut frame);
            // A new encoder starts with an IDR anyway; still take (and so clear) the request.
            let force = self.path.frames.keyframe_request().take() || first;
            let t = Instant::now();
            let encoded = match converter.to_i420(&frame) {
                Ok(f) => encoder.encode(f, force),
                Err(ConvertError::Decode { reason }) => {
                    // One corrupt picture (a USB hiccup) is skipped, not fatal.
                    let sequence = frame.sequence;
                    source.recycle(frame);
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    bad_in_a_row += 1;
                    if bad_in_a_row == 1 {
                        log::warn!(
                            "path {}: skipping frame {sequence}: cannot decode: {reason}",
                            self.path.name
                        );
                    }
                    if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                        return self.failed(
                            format!(
                                "{}: {bad_in_a_row} frames in a row cannot be decoded: {reason}",
                                source.describe()
                            ),
                            s,
                        );
                    }
                    continue;
                }
                Err(e) => Err(EncodeError::from(e)),
            };
            bad_in_a_row = 0;
            let took = t.elapsed().as_nanos() as u64;
            if matches!(encoded, Ok(Some(_))) {
                // The picture just encoded becomes the snapshot picture: a buffer swap, the
                // previous picture's buffer comes back for reuse (no copy, no conversion).
                let like = RawFrame {
                    format: PixelFormat::I420,
                    data: Vec::new(),
                    ..frame
                };
                let buffer = if frame.format == PixelFormat::I420 {
                    Some(&mut frame.data)
                } else {
                    converter.output_buffer()
                };
                if let Some(buffer) = buffer {
                    self.path.picture.swap_in(buffer, &like);
                }
            }
            let sequence = frame.sequence;
            source.recycle(frame);
            self.stats
                .encode_ns_total
                .fetch_add(took, Ordering::Relaxed);
            self.stats.encode_buckets[crate::status::encode_bucket(took)]
                .fetch_add(1, Ordering::Relaxed);
            let encoded = match encoded {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.stats.encoder_empty.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    return self.failed(format!("{} frame {sequence}: {e}", source.describe()), s)
                }
            };
            first = false;
            if encoded.is_idr {
                match stream_info_from_idr(&encoded, fps) {
                    Some(info) => self.path.set_info(info),
                    None => log::warn!(
                        "path {}: IDR at frame {sequence} without usable SPS/PPS",
                        self.path.name
                    ),
                }
            }
            self.publish(s, encoded);
        }
    }

    /// The `hang-capture` fault: blocks here, reporting nothing, while it is on.
    fn injected_hang(&self) {
        if crate::fault::active(crate::fault::HANG_CAPTURE) {
            log::warn!(
                "path {}: fault {}: the capture thread hangs",
                self.path.name,
                crate::fault::HANG_CAPTURE
            );
            crate::fault::wait_while(crate::fault::HANG_CAPTURE);
            log::info!(
                "path {}: fault {} off",
                self.path.name,
                crate::fault::HANG_CAPTURE
            );
        }
    }

    fn failed(&self, reason: String, s: &Session) -> SessionEnd {
        log::debug!(
            "path {}: session ended after {} ms",
            self.path.name,
            s.started.elapsed().as_millis()
        );
        SessionEnd::Failed {
            reason,
            camera: s.camera,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{self, NAL_PPS, NAL_SPS};
    use crate::hub::TryNext;
    use crate::source::pattern::TestPattern;
    use std::sync::atomic::AtomicU64;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: 0,
            height: 0,
            fps: 0,
            bitrate_kbps: 300,
            idr_interval_frames: 30,
        }
    }

    fn pattern_factory(w: u32, h: u32, fps: u32) -> SourceFactory {
        Box::new(move || Ok(Box::new(TestPattern::new(w, h, fps)?) as Box<dyn FrameSource>))
    }

    /// Collects frames for `run_for`.
    fn collect(path: &Arc<MediaPath>, run_for: Duration) -> Vec<Arc<EncodedFrame>> {
        collect_n(path, usize::MAX, run_for)
    }

    /// Collects frames until `n` arrived or `limit` passed.
    fn collect_n(path: &Arc<MediaPath>, n: usize, limit: Duration) -> Vec<Arc<EncodedFrame>> {
        let mut reader = path.frames.subscribe();
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            match reader.try_next() {
                TryNext::Item(f) => out.push(f),
                TryNext::Empty => std::thread::sleep(Duration::from_millis(5)),
                TryNext::Closed => break,
            }
        }
        out
    }

    #[test]
    fn streams_test_pattern_in_order_and_stops_promptly() {
        let path = MediaPath::new("cam");
        let p = Pipeline::spawn(path.clone(), pattern_factory(320, 240, 30), settings())
            .expect("spawn");
        // A count, not a time window: CI also runs this under qemu-user on a busy machine.
        let frames = collect_n(&path, 25, Duration::from_secs(30));
        let t = Instant::now();
        let stats = p.stats().clone();
        p.stop();
        let stop_took = t.elapsed();
        // Promptly: not after a capture timeout (seconds), however slow the machine.
        assert!(
            stop_took < Duration::from_secs(2),
            "stop took {stop_took:?}"
        );

        assert!(frames.len() >= 25, "only {} frames in 30 s", frames.len());
        let first = &frames[0];
        assert!(first.is_idr);
        let types: Vec<u8> = first.nal_units().filter_map(h264::nal_type).collect();
        assert!(
            types.contains(&NAL_SPS) && types.contains(&NAL_PPS),
            "{types:?}"
        );
        for pair in frames.windows(2) {
            assert_eq!(pair[1].pts_90k - pair[0].pts_90k, 3000, "in order, no gaps");
        }
        let info = path.info().expect("stream info set");
        assert_eq!((info.width, info.height, info.fps), (320, 240, 30));

        assert!(stats.frames_captured() >= frames.len() as u64);
        assert_eq!(stats.frames_encoded(), stats.frames_captured());
        assert!(stats.idr_count() >= 1);
        assert!(stats.bytes_encoded() > 0 && stats.encode_ns_total() > 0);
        assert_eq!((stats.restarts(), stats.last_error()), (0, None));
        assert!(!stats.streaming(), "stopped");
    }

    #[test]
    fn reconfigure_rebuilds_the_encoder_in_place_or_reopens_the_source() {
        let path = MediaPath::new("re");
        // Key frames only on request, so an IDR after the change can only be the new encoder's.
        let rare_idr = EncoderSettings {
            idr_interval_frames: 10_000,
            ..settings()
        };
        let p = Pipeline::spawn(
            path.clone(),
            pattern_factory(160, 120, 30),
            rare_idr.clone(),
        )
        .expect("spawn");
        let mut reader = path.frames.subscribe();
        let next = |reader: &mut crate::hub::HubReader<EncodedFrame>| loop {
            match reader.try_next() {
                TryNext::Item(f) => return f,
                TryNext::Empty => std::thread::sleep(Duration::from_millis(2)),
                TryNext::Closed => panic!("closed"),
            }
        };
        // Warm-up: the first IDR, and one more if this reader's arrival asked for it.
        let warmup: Vec<_> = (0..10).map(|_| next(&mut reader)).collect();
        let before: Vec<_> = (0..10).map(|_| next(&mut reader)).collect();
        // A new bitrate: same source, a new encoder starting with an IDR, no gap in time.
        p.reconfigure(
            None,
            EncoderSettings {
                bitrate_kbps: 900,
                ..rare_idr
            },
        );
        let after: Vec<_> = (0..40).map(|_| next(&mut reader)).collect();
        let all: Vec<_> = warmup.iter().chain(&before).chain(&after).collect();
        for pair in all.windows(2) {
            assert_eq!(pair[1].pts_90k - pair[0].pts_90k, 3000, "no gap, no repeat");
        }
        assert!(warmup[0].is_idr);
        assert_eq!(before.iter().filter(|f| f.is_idr).count(), 0);
        assert_eq!(
            after.iter().filter(|f| f.is_idr).count(),
            1,
            "the new encoder starts with an IDR"
        );
        assert_eq!(p.stats().restarts(), 0, "the source stayed open");
        // A new source: reopened at its size, media time still moving forward.
        let last = after.last().map(|f| f.pts_90k).unwrap_or(0);
        p.reconfigure(Some(pattern_factory(320, 240, 30)), settings());
        let deadline = Instant::now() + Duration::from_secs(5);
        while path.info().map(|i| i.width) != Some(320) {
            assert!(Instant::now() < deadline, "never reopened at 320x240");
            std::thread::sleep(Duration::from_millis(10));
        }
        let f = next(&mut reader);
        assert!(
            f.pts_90k > last,
            "media time continues: {} after {last}",
            f.pts_90k
        );
        p.stop();
    }

    #[test]
    fn keyframe_request_gives_an_idr() {
        let path = MediaPath::new("kf");
        // This test asks within the first second; the rate limit has its own test (hub).
        path.frames
            .keyframe_request()
            .set_min_interval(Duration::ZERO);
        let p = Pipeline::spawn(path.clone(), pattern_factory(160, 120, 50), settings())
            .expect("spawn");
        let mut reader = path.frames.subscribe();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut seen = 0;
        let mut requested_at = None;
        let mut got_idr_after_request = false;
        while Instant::now() < deadline && !got_idr_after_request {
            match reader.try_next() {
                TryNext::Item(f) => {
                    seen += 1;
                    if seen == 5 {
                        path.frames.keyframe_request().request();
                        requested_at = Some(f.pts_90k);
                    } else if let Some(at) = requested_at {
                        // IDR interval is 30 frames: an IDR within 3 frames is the request's.
                        if f.is_idr {
                            assert!(f.pts_90k - at <= 3 * 1800, "late IDR");
                            got_idr_after_request = true;
                        }
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        p.stop();
        assert!(got_idr_after_request);
    }

    #[test]
    fn failing_source_is_retried_with_backoff() {
        let path = MediaPath::new("flaky");
        let mut attempts = 0;
        let factory: SourceFactory = Box::new(move || {
            attempts += 1;
            if attempts <= 2 {
                Err(CaptureError::Open {
                    device: "/dev/video9".into(),
                    error: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
            } else {
                Ok(Box::new(TestPattern::new(160, 120, 30)?) as Box<dyn FrameSource>)
            }
        });
        let p = Pipeline::spawn(path.clone(), factory, settings()).expect("spawn");
        // 0.5 s + 1 s of backoff, then frames.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.stats().frames_encoded() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = p.stats().clone();
        assert!(stats.frames_encoded() >= 3, "never recovered");
        assert!(stats.streaming());
        assert_eq!(stats.restarts(), 2);
        let e = stats.last_error().expect("error kept");
        assert!(e.contains("/dev/video9"), "{e}");
        assert!(path.info().is_some());
        p.stop();
    }

    /// A source that delivers a few frames, then fails; reopened at another size.
    struct Failing {
        inner: TestPattern,
        left: u32,
    }

    impl FrameSource for Failing {
        fn describe(&self) -> String {
            format!("failing {}", self.inner.describe())
        }
        fn size(&self) -> (u32, u32) {
            self.inner.size()
        }
        fn fps(&self) -> u32 {
            self.inner.fps()
        }
        fn next_frame(&mut self) -> Result<crate::media::RawFrame, CaptureError> {
            if self.left == 0 {
                return Err(CaptureError::Stream {
                    device: "fake".into(),
                    error: std::io::Error::other("unplugged"),
                });
            }
            self.left -= 1;
            self.inner.next_frame()
        }
    }

    #[test]
    fn capture_error_keeps_info_and_size_change_replaces_it() {
        let path = MediaPath::new("resize");
        let mut opens = 0u32;
        // Opens 1 and 2: 160x120 failing after 5 frames; open 3: 320x240 for good.
        let factory: SourceFactory = Box::new(move || {
            opens += 1;
            let (w, h, left) = if opens <= 2 {
                (160, 120, 5)
            } else {
                (320, 240, u32::MAX)
            };
            Ok(Box::new(Failing {
                inner: TestPattern::new(w, h, 50)?,
                left,
            }) as Box<dyn FrameSource>)
        });
        let p = Pipeline::spawn(path.clone(), factory, settings()).expect("spawn");
        let stats = p.stats().clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut checked_while_down = 0;
        let mut final_size = None;
        while Instant::now() < deadline {
            let info = path.info().map(|i| (i.width, i.height));
            if info == Some((320, 240)) {
                final_size = info;
                break;
            }
            if stats.restarts() >= 1 && !stats.streaming() && stats.restarts() < 2 {
                // Down between same-size sessions: the description stays for the readers.
                assert_eq!(info, Some((160, 120)));
                checked_while_down += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        p.stop();
        assert!(checked_while_down > 10, "{checked_while_down}");
        assert_eq!(final_size, Some((320, 240)));
        assert_eq!(stats.restarts(), 2);
        assert!(stats.last_error().is_some_and(|e| e.contains("unplugged")));
    }

    #[test]
    fn parameter_sets_are_put_in_front_of_bare_idrs() {
        use std::time::SystemTime;
        let sps = [0x67, 0x42, 0xC0, 0x1F];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let bare = EncodedFrame::from_annexb(
            Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84]),
            9000,
            SystemTime::UNIX_EPOCH,
        );
        let fixed = with_parameter_sets(bare, &sps, &pps);
        let types: Vec<u8> = fixed.nal_units().filter_map(h264::nal_type).collect();
        assert_eq!(types, [NAL_SPS, NAL_PPS, h264::NAL_IDR]);
        assert_eq!(fixed.pts_90k, 9000);
        assert!(fixed.is_idr);
        // Already complete, or not an IDR: untouched.
        let again = with_parameter_sets(fixed.clone(), &sps, &pps);
        assert_eq!(again.data, fixed.data);
        let p = EncodedFrame::from_annexb(
            Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9A]),
            0,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(with_parameter_sets(p, &sps, &pps).nals.len(), 1);
    }

    /// A camera-like source: test pattern frames, a device path, sequence gaps every
    /// `gap_every` frames, and an ENODEV after `left` frames.
    struct FakeCamera {
        inner: TestPattern,
        left: u32,
        gap_every: u64,
        dropped: u64,
    }

    impl FrameSource for FakeCamera {
        fn describe(&self) -> String {
            "camera /dev/fake".into()
        }
        fn size(&self) -> (u32, u32) {
            self.inner.size()
        }
        fn fps(&self) -> u32 {
            self.inner.fps()
        }
        fn device(&self) -> Option<&str> {
            Some("/dev/fake")
        }
        fn format(&self) -> PixelFormat {
            PixelFormat::I420
        }
        fn dropped_frames(&self) -> u64 {
            self.dropped
        }
        fn next_frame(&mut self) -> Result<RawFrame, CaptureError> {
            if self.left == 0 {
                return Err(CaptureError::Device {
                    device: "/dev/fake".into(),
                    op: "VIDIOC_QBUF",
                    error: std::io::Error::from_raw_os_error(libc::ENODEV),
                });
            }
            self.left -= 1;
            let f = self.inner.next_frame()?;
            if self.gap_every > 0 && f.sequence % self.gap_every == self.gap_every - 1 {
                self.dropped += 1;
            }
            Ok(f)
        }
    }

    #[test]
    fn unplugged_camera_is_lost_then_back_with_media_time_true_to_the_outage() {
        let path = MediaPath::new("plug");
        let mut opens = 0u32;
        // Open 1: 10 frames then ENODEV; open 2: "not plugged in"; open 3: streams.
        let factory: SourceFactory = Box::new(move || {
            opens += 1;
            match opens {
                2 => Err(CaptureError::Open {
                    device: "/dev/fake".into(),
                    error: std::io::Error::from_raw_os_error(libc::ENOENT),
                }),
                n => Ok(Box::new(FakeCamera {
                    inner: TestPattern::new(160, 120, 50)?,
                    left: if n == 1 { 10 } else { u32::MAX },
                    gap_every: 4,
                    dropped: 0,
                }) as Box<dyn FrameSource>),
            }
        });
        let p = Pipeline::spawn(path.clone(), factory, settings()).expect("spawn");
        let stats = p.stats().clone();
        let mut reader = path.frames.subscribe();
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut pts = Vec::new();
        let mut saw_lost = None;
        while Instant::now() < deadline && (stats.restarts() < 2 || pts.len() < 20) {
            if let SourceState::CameraLost(r) = stats.state() {
                saw_lost = Some(r);
            }
            match reader.try_next() {
                TryNext::Item(f) => pts.push(f.pts_90k),
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        p.stop();
        let lost = saw_lost.expect("state showed the loss");
        assert!(lost.contains("/dev/fake"), "{lost}");
        assert_eq!(stats.restarts(), 2);
        assert!(pts.len() >= 20, "{} frames", pts.len());
        // Media time never goes back, and the reopened camera continues one frame after
        // the last frame before the loss.
        assert!(pts.windows(2).all(|w| w[1] > w[0]), "{pts:?}");
        // Media time jumps by the outage (whole frames; the first retry waits 0.5 s) and the
        // frames it swallowed count as dropped.
        let gap = pts[10] - pts[9];
        assert!(gap >= 45_000 && gap % 1800 == 0, "{pts:?}");
        assert!(
            stats.camera_dropped() >= (gap / 1800 - 1) as u64,
            "{}",
            stats.camera_dropped()
        );
        assert_eq!(stats.route(), "software-encode from YU12");
        assert!(stats.camera_dropped() >= 2, "{}", stats.camera_dropped());
        let e = stats.last_error().expect("error kept");
        assert!(e.contains("no such device node"), "{e}");
    }

    /// An H.264 camera: openh264 over the test pattern; SPS/PPS only in the first access
    /// unit, like cameras that send them once; counts key frame requests.
    struct FakeH264Camera {
        inner: TestPattern,
        encoder: OpenH264Encoder,
        sent_params: bool,
        force: bool,
        requests: Arc<AtomicU64>,
    }

    impl FrameSource for FakeH264Camera {
        fn describe(&self) -> String {
            "camera /dev/h264".into()
        }
        fn size(&self) -> (u32, u32) {
            self.inner.size()
        }
        fn fps(&self) -> u32 {
            self.inner.fps()
        }
        fn device(&self) -> Option<&str> {
            Some("/dev/h264")
        }
        fn format(&self) -> PixelFormat {
            PixelFormat::H264
        }
        fn request_keyframe(&mut self) {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.force = true;
        }
        fn next_frame(&mut self) -> Result<RawFrame, CaptureError> {
            let f = self.inner.next_frame()?;
            let force = std::mem::take(&mut self.force);
            let enc = self
                .encoder
                .encode(&f, force)
                .ok()
                .flatten()
                .ok_or(CaptureError::Ended {
                    device: "/dev/h264".into(),
                })?;
            let mut data = Vec::new();
            for nal in enc.nal_units() {
                let t = h264::nal_type(nal);
                if self.sent_params && (t == Some(NAL_SPS) || t == Some(NAL_PPS)) {
                    continue;
                }
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(nal);
            }
            self.sent_params = true;
            Ok(RawFrame {
                format: PixelFormat::H264,
                data,
                ..f
            })
        }
    }

    #[test]
    fn h264_camera_is_passed_through_with_key_frames_on_request() {
        let path = MediaPath::new("h264");
        path.frames
            .keyframe_request()
            .set_min_interval(Duration::ZERO);
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let factory: SourceFactory = Box::new(move || {
            let s = EncoderSettings {
                width: 320,
                height: 240,
                fps: 50,
                bitrate_kbps: 300,
                idr_interval_frames: 0,
            };
            Ok(Box::new(FakeH264Camera {
                inner: TestPattern::new(320, 240, 50)?,
                encoder: OpenH264Encoder::new(&s).map_err(|e| CaptureError::Unsupported {
                    device: "/dev/h264".into(),
                    reason: e.to_string(),
                })?,
                sent_params: false,
                force: false,
                requests: counter.clone(),
            }) as Box<dyn FrameSource>)
        });
        let p = Pipeline::spawn(path.clone(), factory, settings()).expect("spawn");
        let stats = p.stats().clone();
        let frames = collect(&path, Duration::from_millis(400));
        // A reader asks for a key frame: the request reaches the camera, and the IDR that
        // follows carries SPS/PPS again even though the camera sent them only once.
        path.frames.keyframe_request().request();
        let later = collect(&path, Duration::from_millis(400));
        p.stop();
        assert_eq!(stats.route(), "passthrough");
        assert!(frames.len() >= 10, "{}", frames.len());
        assert!(frames[0].is_idr);
        assert!(requests.load(Ordering::Relaxed) >= 2);
        let idr = later.iter().find(|f| f.is_idr).expect("requested IDR");
        let types: Vec<u8> = idr.nal_units().filter_map(h264::nal_type).collect();
        assert!(types.starts_with(&[NAL_SPS, NAL_PPS]), "{types:?}");
        let info = path.info().expect("info from the camera's SPS");
        assert_eq!((info.width, info.height, info.fps), (320, 240, 50));
        assert_eq!(stats.encode_ns_total(), 0, "nothing was re-encoded");
    }

    #[test]
    fn media_time_resumes_after_the_real_outage() {
        let period = 6000; // 15 fps
        assert_eq!(resume_offset(None, None, period, 1234), (0, 0));
        // Published just now: continue one frame later, nothing missed.
        let (offset, missed) = resume_offset(Some(90_000), Some(Instant::now()), period, 500);
        assert_eq!((90_000 + period - 500, 0), (offset, missed));
        // Published a second ago: 15 periods later, 14 frames missed.
        let a_second_ago = Instant::now() - Duration::from_millis(1010);
        let (offset, missed) = resume_offset(Some(90_000), Some(a_second_ago), period, 0);
        assert_eq!(offset, 90_000 + 15 * period);
        assert_eq!(missed, 14);
    }
}
