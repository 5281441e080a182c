//! A path that plays an MP4 file in a loop (`"source": "file:/path/video.mp4"`, or a plain
//! absolute `*.mp4` path).
//!
//! Owns: the thread "file-<path>" that indexes the file (`mux::mp4read`: plain or
//! fragmented MP4, the first H.264 video track), paces its samples in real time by their
//! decode times, and loops with times that keep rising (each pass starts where the last
//! ended); B-frames keep their composition offsets. A missing or unplayable file is the
//! path's error, retried with the backoff every source uses (so a file that appears later
//! plays). Does not own: MP4 parsing (`mux::mp4read`), the hub.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hub::MediaPath;
use crate::media::CLOCK_RATE;
use crate::mux::mp4read;
use crate::source::intake::{Intake, IntakeStats, Resume};
use crate::source::stats::next_backoff;
use crate::status::SourceState;

/// A playing file; stopped (and its thread joined) by `stop` or when dropped.
pub struct FileSource {
    stats: Arc<IntakeStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileSource {
    pub fn start(media: Arc<MediaPath>, path: PathBuf) -> std::io::Result<FileSource> {
        let stats = IntakeStats::new(SourceState::Starting);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("file-{}", media.name))
                .spawn(move || run(media, path, stats, stop))?
        };
        Ok(FileSource {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<IntakeStats> {
        &self.stats
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sleeps up to `d`, returning early (true) once `stop` is set.
fn sleep_or_stop(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::park_timeout(left.min(Duration::from_millis(100)));
    }
}

fn run(media: Arc<MediaPath>, path: PathBuf, stats: Arc<IntakeStats>, stop: Arc<AtomicBool>) {
    let name = media.name.clone();
    let mut backoff: Option<Duration> = None;
    let mut resume: Option<Resume> = None;
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        stats.session_started();
        let t0 = Instant::now();
        let mut intake = Intake::new(media.clone(), stats.clone(), resume);
        let result = play(&path, &mut intake, &stop, &name);
        resume = intake.resume_point();
        match result {
            Ok(()) => return,
            Err(e) => {
                let why = format!("{}: {e}", path.display());
                if why != last_error {
                    log::warn!("path {name}: cannot play {why}; retrying");
                    last_error = why.clone();
                }
                stats.set_error(why.clone());
                stats.set_state(SourceState::Failed(why));
            }
        }
        let wait = next_backoff(backoff, t0.elapsed());
        backoff = Some(wait);
        if sleep_or_stop(wait, &stop) {
            return;
        }
    }
}

/// Plays the file in a loop until `stop` (Ok) or an error.
fn play(
    path: &std::path::Path,
    intake: &mut Intake,
    stop: &AtomicBool,
    name: &str,
) -> Result<(), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let track = mp4read::read_index(&f)?;
    let to_90k = |t: i64| t * i64::from(CLOCK_RATE) / i64::from(track.timescale);
    let period = track.duration();
    if period == 0 {
        return Err("the video track lasts no time".into());
    }
    let fps = (track.samples.len() as u64 * u64::from(track.timescale) / period).max(1);
    intake.set_fps(fps as u32);
    intake.set_parameter_sets(
        Bytes::from(track.sps.clone()),
        Bytes::from(track.pps.clone()),
    );
    intake
        .stats()
        .set_route(format!("file {}, looped", path.display()));
    log::info!(
        "path {name}: playing {} ({} frames, {:.1} s), looped",
        path.display(),
        track.samples.len(),
        period as f64 / f64::from(track.timescale)
    );
    let start = Instant::now();
    let mut pass_start: i64 = 0;
    loop {
        for s in &track.samples {
            let dts = pass_start + to_90k(s.dts as i64);
            let due = start
                + Duration::from_micros((dts.max(0) as u64) * 1_000_000 / u64::from(CLOCK_RATE));
            if sleep_or_stop(due.saturating_duration_since(Instant::now()), stop) {
                return Ok(());
            }
            let data = mp4read::read_sample(&f, s, track.length_size)?;
            let pts = dts + to_90k(s.cts_offset);
            // A refused unit is counted in the path's status; playing goes on.
            let _ = intake.publish(pts, Some(dts), Bytes::from(data));
        }
        pass_start += to_90k(period as i64);
    }
}
