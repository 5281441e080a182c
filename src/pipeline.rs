//! The capture + encode thread of one path.
//!
//! Owns: the OS thread that opens a source, converts and encodes its frames, answers key
//! frame requests from readers, keeps the path's stream description current and publishes
//! encoded frames to the path's hub; restart with backoff when the source or encoder fails;
//! the counters that show how it goes (`PipelineStats`).
//! Does not own: the path and its hub (the app creates them; stopping a pipeline leaves the
//! hub open so a restarted pipeline can continue it), nor what readers do.
//!
//! When the source fails, the stream description stays (RTSP clients stay connected and
//! resume at the next IDR); it is replaced only when the reopened source has another size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::{CaptureError, FrameSource};
use crate::encode::convert::Converter;
use crate::encode::{stream_info_from_idr, EncodeError, Encoder, EncoderSettings, OpenH264Encoder};
use crate::hub::MediaPath;

/// Opens the source anew (called at start and after every failure).
pub type SourceFactory = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Counters of one pipeline, readable from any thread.
#[derive(Default, Debug)]
pub struct PipelineStats {
    frames_captured: AtomicU64,
    frames_encoded: AtomicU64,
    bytes_encoded: AtomicU64,
    idr_count: AtomicU64,
    encode_ns_total: AtomicU64,
    restarts: AtomicU64,
    /// Frames the encoder produced nothing for (should stay 0).
    encoder_empty: AtomicU64,
    /// A source is open and frames are flowing.
    streaming: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl PipelineStats {
    pub fn frames_captured(&self) -> u64 {
        self.frames_captured.load(Ordering::Relaxed)
    }
    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded.load(Ordering::Relaxed)
    }
    pub fn bytes_encoded(&self) -> u64 {
        self.bytes_encoded.load(Ordering::Relaxed)
    }
    pub fn idr_count(&self) -> u64 {
        self.idr_count.load(Ordering::Relaxed)
    }
    /// Total time spent in conversion and encoding, in nanoseconds.
    pub fn encode_ns_total(&self) -> u64 {
        self.encode_ns_total.load(Ordering::Relaxed)
    }
    /// How often the pipeline started over after an error (open, capture or encode).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub fn encoder_empty(&self) -> u64 {
        self.encoder_empty.load(Ordering::Relaxed)
    }
    /// True while a source is open and frames are being encoded.
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }
    /// The most recent error (kept after recovery; see `streaming` for the current state).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

/// Handle of a running pipeline thread.
pub struct Pipeline {
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the thread "pipe-<path>". `settings` gives bitrate and IDR interval; size and
    /// rate are taken from the source once it is open.
    pub fn spawn(
        path: Arc<MediaPath>,
        source: SourceFactory,
        settings: EncoderSettings,
    ) -> std::io::Result<Pipeline> {
        let stats = Arc::new(PipelineStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            path: path.clone(),
            factory: source,
            settings,
            stats: stats.clone(),
            stop: stop.clone(),
            last_logged: None,
            last_size: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("pipe-{}", path.name))
            .spawn(move || worker.run())?;
        Ok(Pipeline {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
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
    Failed(String),
}

struct Worker {
    path: Arc<MediaPath>,
    factory: SourceFactory,
    settings: EncoderSettings,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    /// The last error logged, so a repeating error is logged once.
    last_logged: Option<String>,
    last_size: Option<(u32, u32)>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps up to `d`, waking early when stopped (stop() unparks the thread).
    fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        while !self.stopped() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    fn record_error(&mut self, e: String) {
        self.stats.set_error(e.clone());
        if self.last_logged.as_deref() != Some(e.as_str()) {
            log::error!("path {}: {e}", self.path.name);
            self.last_logged = Some(e);
        }
    }

    fn run(mut self) {
        let name = self.path.name.clone();
        let mut backoff = BACKOFF_START;
        while !self.stopped() {
            let started = self.stats.frames_encoded();
            let end = match (self.factory)() {
                Ok(source) => self.stream(source),
                Err(e) => SessionEnd::Failed(e.to_string()),
            };
            self.stats.streaming.store(false, Ordering::Relaxed);
            match end {
                SessionEnd::Stopped => break,
                SessionEnd::Failed(e) => {
                    self.record_error(e);
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    if self.stats.frames_encoded() > started {
                        // It worked for a while: retry soon.
                        backoff = BACKOFF_START;
                    }
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        log::info!("path {name}: pipeline stopped");
    }

    /// Runs one opened source until it fails or the pipeline is stopped.
    fn stream(&mut self, mut source: Box<dyn FrameSource>) -> SessionEnd {
        let (width, height) = source.size();
        let fps = source.fps();
        let settings = EncoderSettings {
            width,
            height,
            fps,
            ..self.settings.clone()
        };
        let mut encoder = match OpenH264Encoder::new(&settings) {
            Ok(e) => e,
            Err(e) => return SessionEnd::Failed(format!("{}: {e}", source.describe())),
        };
        if self.last_size.is_some_and(|s| s != (width, height)) {
            // Old SPS/PPS and the cached key frame no longer describe the stream.
            log::info!(
                "path {}: size changed to {width}x{height}; replacing the stream description",
                self.path.name
            );
            self.path.clear_info();
            self.path.frames.forget_key();
        }
        self.last_size = Some((width, height));
        log::info!(
            "path {}: streaming {} at {} kbit/s, IDR every {} frames",
            self.path.name,
            source.describe(),
            settings.bitrate_kbps,
            settings.idr_interval_frames
        );
        let mut converter = Converter::new();
        let mut first = true;
        loop {
            if self.stopped() {
                return SessionEnd::Stopped;
            }
            let frame = match source.next_frame() {
                Ok(f) => f,
                Err(e) => return SessionEnd::Failed(e.to_string()),
            };
            self.stats.frames_captured.fetch_add(1, Ordering::Relaxed);
            // A new encoder starts with an IDR anyway; still take (and so clear) the request.
            let force = self.path.frames.keyframe_request().take() || first;
            let t = Instant::now();
            let encoded = converter
                .to_i420(&frame)
                .map_err(EncodeError::from)
                .and_then(|f| encoder.encode(f, force));
            let took = t.elapsed().as_nanos() as u64;
            let sequence = frame.sequence;
            source.recycle(frame);
            self.stats
                .encode_ns_total
                .fetch_add(took, Ordering::Relaxed);
            let encoded = match encoded {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.stats.encoder_empty.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    return SessionEnd::Failed(format!(
                        "{} frame {sequence}: {e}",
                        source.describe()
                    ))
                }
            };
            first = false;
            if encoded.is_idr {
                self.stats.idr_count.fetch_add(1, Ordering::Relaxed);
                match stream_info_from_idr(&encoded, fps) {
                    Some(info) => self.path.set_info(info),
                    None => log::warn!(
                        "path {}: IDR at frame {sequence} without usable SPS/PPS",
                        self.path.name
                    ),
                }
            }
            self.stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_encoded
                .fetch_add(encoded.data.len() as u64, Ordering::Relaxed);
            if !self.stats.streaming.swap(true, Ordering::Relaxed) && self.last_logged.is_some() {
                log::info!("path {}: recovered", self.path.name);
                self.last_logged = None;
            }
            self.path.frames.publish(Arc::new(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pattern::TestPattern;
    use crate::h264::{self, NAL_PPS, NAL_SPS};
    use crate::hub::TryNext;
    use crate::media::EncodedFrame;

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

    /// Collects frames until `deadline`.
    fn collect(path: &Arc<MediaPath>, run_for: Duration) -> Vec<Arc<EncodedFrame>> {
        let mut reader = path.frames.subscribe();
        let deadline = Instant::now() + run_for;
        let mut out = Vec::new();
        while Instant::now() < deadline {
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
        let frames = collect(&path, Duration::from_millis(1100));
        let t = Instant::now();
        let stats = p.stats().clone();
        p.stop();
        let stop_took = t.elapsed();
        assert!(
            stop_took < Duration::from_millis(500),
            "stop took {stop_took:?}"
        );

        assert!(frames.len() >= 25, "only {} frames in 1.1 s", frames.len());
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
    fn keyframe_request_gives_an_idr() {
        let path = MediaPath::new("kf");
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
        fn next_frame(&mut self) -> Result<crate::capture::RawFrame, CaptureError> {
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
}
