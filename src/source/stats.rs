//! A source's state and counters, and its retry policy.
//!
//! Owns: `PipelineStats` (the counters and state status reads, from any thread), the
//! backoff between attempts to open a failed source (`next_backoff`), and how a route is
//! named (`route_for`). Does not own: the thread that updates them (`pipeline`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::media::PixelFormat;
use crate::status::SourceState;

/// First retry delay after a failure.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest delay between retries: a replugged camera is picked up within this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A session that streamed this long was a good run: the next retry starts fast again.
pub const GOOD_RUN: Duration = Duration::from_secs(10);
/// Delay before the next attempt to open a source. `prev`: the delay used before the
/// previous attempt (`None` after a success); `ran`: how long the failed session streamed.
/// 0.5 s doubling up to 5 s; back to 0.5 s after a good run.
pub fn next_backoff(prev: Option<Duration>, ran: Duration) -> Duration {
    match prev {
        Some(p) if ran < GOOD_RUN => (p * 2).min(BACKOFF_MAX),
        _ => BACKOFF_START,
    }
}

/// How frames of `format` become H.264, as the status names it.
pub fn route_for(format: PixelFormat, camera: bool) -> String {
    match (format, camera) {
        (PixelFormat::H264, _) => "passthrough".to_string(),
        (_, false) => "software-encode".to_string(),
        (f, true) => format!("software-encode from {}", f.fourcc()),
    }
}

/// Counters of one pipeline, readable from any thread.
#[derive(Default, Debug)]
pub struct PipelineStats {
    pub(super) frames_captured: AtomicU64,
    pub(super) frames_encoded: AtomicU64,
    pub(super) bytes_encoded: AtomicU64,
    pub(super) idr_count: AtomicU64,
    pub(super) encode_ns_total: AtomicU64,
    /// The encode-time histogram (`status::ENCODE_BUCKETS_S`).
    pub(super) encode_buckets: [AtomicU64; crate::status::ENCODE_BUCKETS_S.len() + 1],
    pub(super) restarts: AtomicU64,
    /// Frames the encoder produced nothing for (should stay 0).
    pub(super) encoder_empty: AtomicU64,
    /// Frames the camera lost (sequence gaps, failed buffers), over all sessions.
    pub(super) camera_dropped: AtomicU64,
    /// Frames skipped because they could not be decoded or converted.
    pub(super) bad_frames: AtomicU64,
    /// A source is open and frames are flowing.
    pub(super) streaming: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) state: Mutex<Option<SourceState>>,
    pub(super) route: Mutex<String>,
}

impl PipelineStats {
    pub fn frames_captured(&self) -> u64 {
        self.frames_captured.load(Ordering::Relaxed)
    }
    /// Frames published (encoded, or passed through from an H.264 camera).
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
    /// Frames the camera dropped (kernel sequence gaps, buffers flagged as failed).
    pub fn camera_dropped(&self) -> u64 {
        self.camera_dropped.load(Ordering::Relaxed)
    }
    /// Frames skipped because they could not be decoded (e.g. a corrupt MJPEG picture).
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames.load(Ordering::Relaxed)
    }
    /// True while a source is open and frames are being encoded.
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }
    /// The most recent error (kept after recovery; see `state` for the current state).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
    /// `starting`, `streaming`, `camera lost: <reason>`, `failed: <reason>` or `stopped`.
    pub fn state(&self) -> SourceState {
        lock(&self.state).clone().unwrap_or(SourceState::Starting)
    }
    /// How frames become H.264: `passthrough`, `software-encode from YUYV`, ... (empty
    /// before the first source opened).
    pub fn route(&self) -> String {
        lock(&self.route).clone()
    }

    pub(super) fn set_error(&self, e: String) {
        *lock(&self.last_error) = Some(e);
    }
    pub(super) fn set_state(&self, s: SourceState) {
        *lock(&self.state) = Some(s);
    }
}

impl crate::status::SourceProbe for PipelineStats {
    fn sample(&self) -> crate::status::SourceSample {
        crate::status::SourceSample {
            state: self.state(),
            streaming: self.streaming(),
            route: self.route(),
            last_error: self.last_error(),
            frames: self.frames_encoded(),
            bytes: self.bytes_encoded(),
            idr_frames: self.idr_count(),
            encode_ns_total: self.encode_ns_total(),
            encode_buckets: std::array::from_fn(|i| self.encode_buckets[i].load(Ordering::Relaxed)),
            camera_dropped: self.camera_dropped(),
            bad_frames: self.bad_frames(),
            restarts: self.restarts(),
        }
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked (plain values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds_and_resets_after_a_good_run() {
        let ms = Duration::from_millis;
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let next = next_backoff(d, ms(100));
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(next_backoff(d, GOOD_RUN), BACKOFF_START);
        assert_eq!(next_backoff(None, Duration::ZERO), BACKOFF_START);
    }

    #[test]
    fn routes_and_states_read_well() {
        assert_eq!(route_for(PixelFormat::H264, true), "passthrough");
        assert_eq!(
            route_for(PixelFormat::Yuyv, true),
            "software-encode from YUYV"
        );
        assert_eq!(
            route_for(PixelFormat::Mjpeg, true),
            "software-encode from MJPG"
        );
        assert_eq!(route_for(PixelFormat::I420, false), "software-encode");
        assert_eq!(
            SourceState::CameraLost("/dev/video0: gone".into()).to_string(),
            "camera lost: /dev/video0: gone"
        );
        assert_eq!(SourceState::Streaming.to_string(), "streaming");
    }
}
