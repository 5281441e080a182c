//! One path's recorder: an async tap on the path's hub that feeds a bounded queue, and a
//! writer thread ("rec-<path>") that turns the frames into fragmented MP4 segments.
//!
//! Owns: segment and fragment boundaries (a segment starts at an IDR; a fragment closes once
//! it holds `part_duration`; a segment rotates at the first IDR after `segment_duration`),
//! exact sample durations from media time, the fsync cadence (file data, then the directory
//! after a file is created), and what happens when storage misbehaves. The queue between tap
//! and writer is the only coupling to the live stream: the tap never waits, so a stalled SD
//! card never slows capture or RTSP; when the queue is full, frames are dropped up to the
//! next IDR and the gap is counted, logged and starts a new segment.
//! Does not own: file names (`naming`), deleting (`retention`), the MP4 boxes (`fmp4`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::hub::MediaPath;
use crate::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use crate::mux::fmp4;
use crate::record::meter::WriteMeter;
use crate::status::{RecorderState, FSYNC_BUCKETS_S};

/// Frames the queue holds: about 4 s at 30 fps; a longer stall drops to the next IDR.
pub const QUEUE_FRAMES: usize = 128;

/// When file data is forced to the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncCadence {
    /// After every fragment: the worst-case loss on a power cut is one fragment.
    EveryFragment,
    /// At most this often (fewer writes to the card, more loss on a power cut).
    Every(Duration),
}

/// Where and how one path records.
pub struct RecorderSettings {
    pub path_name: String,
    pub part_duration: Duration,
    pub segment_duration: Duration,
    pub fsync: FsyncCadence,
    /// The new segment's file, relative to the storage root, from its start time, whether
    /// the clock was synchronised then, and whether it starts a new run (the first segment,
    /// or the first after a gap: it does not continue the previous one's timeline).
    pub name_for: Box<dyn Fn(SystemTime, bool, bool) -> PathBuf + Send>,
    /// Whether wall time is trustworthy now (injected: tests fake it).
    pub clock_synced: Arc<dyn Fn() -> bool + Send + Sync>,
    /// True when the wall clock stepped or became synchronised since the previous call
    /// (`retention::ClockWatch` on the real clocks). The segment is then cut at the next
    /// key frame, so the step lies between two names and retention can tell after a restart.
    pub clock_stepped: Box<dyn FnMut() -> bool + Send>,
}

/// How often the writer asks whether the wall clock stepped.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// An open segment file.
pub trait SegmentFile: Send {
    /// Appends `bytes`, all or nothing: after an error none of them stays in the file (a
    /// retry after freeing space must not leave a torn fragment in the middle of a segment).
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data written so far survives a power cut.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Where segments go: the real directory tree, or a fake that stalls or fills up in tests.
pub trait Storage: Send + Sync {
    /// Creates `rel` (and its directories) for writing; the directory entry is made durable.
    fn create(&self, rel: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Called when a write failed for lack of space: frees what it can (oldest segments
    /// first, never `writing`); true if anything was freed.
    fn make_room(&self, writing: &Path) -> bool;
    /// True when there is room to record again (after a disk-full pause).
    fn has_room(&self) -> bool;
    /// `rel` is no longer being written (closed, or ended early): retention may take it.
    fn closed(&self, _rel: &Path) {}
    /// Removes `rel`, which ended before its first fragment: an init alone is no video
    /// (players refuse it), and a restart's repair would remove it anyway.
    fn discard(&self, rel: &Path) -> io::Result<()>;
}

/// Counters of one recorder, readable from any thread.
pub struct RecorderStats {
    pub segments: AtomicU64,
    pub fragments: AtomicU64,
    pub bytes_written: AtomicU64,
    pub frames_written: AtomicU64,
    /// Frames lost because the queue was full or the hub skipped them (a stalled writer).
    pub frames_dropped: AtomicU64,
    /// Media time lost in those gaps (90 kHz ticks).
    pub dropped_ticks: AtomicU64,
    pub gaps: AtomicU64,
    pub write_errors: AtomicU64,
    /// Slowest `fdatasync` so far, in microseconds, and the total time spent in them.
    pub fsync_max_us: AtomicU64,
    pub fsync_total_us: AtomicU64,
    pub fsyncs: AtomicU64,
    /// The fsync-time histogram (`status::FSYNC_BUCKETS_S`).
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_S.len() + 1],
    written: Mutex<WriteMeter>,
    state: Mutex<Option<RecorderState>>,
    current: Mutex<Option<PathBuf>>,
}

impl Default for RecorderStats {
    fn default() -> Self {
        RecorderStats {
            segments: AtomicU64::new(0),
            fragments: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            frames_written: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            dropped_ticks: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            fsync_max_us: AtomicU64::new(0),
            fsync_total_us: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            written: Mutex::new(WriteMeter::new(Instant::now())),
            state: Mutex::new(None),
            current: Mutex::new(None),
        }
    }
}

impl RecorderStats {
    pub fn state(&self) -> RecorderState {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(RecorderState::Waiting)
    }
    fn set_state(&self, s: RecorderState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }
    /// The segment being written (never deleted by retention).
    pub fn current(&self) -> Option<PathBuf> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Everything status shows.
    pub fn sample(&self) -> crate::status::RecorderSample {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (write_bytes_per_second, bytes_written_24h) = {
            let mut meter = self.meter();
            let now = Instant::now();
            (meter.rate(now), meter.last_day(now))
        };
        crate::status::RecorderSample {
            state: self.state(),
            segment: self.current().map(|p| p.display().to_string()),
            segments_written: get(&self.segments),
            bytes_written: get(&self.bytes_written),
            frames_written: get(&self.frames_written),
            frames_dropped: get(&self.frames_dropped),
            dropped_seconds: get(&self.dropped_ticks) as f64 / CLOCK_RATE as f64,
            gaps: get(&self.gaps),
            write_errors: get(&self.write_errors),
            write_bytes_per_second,
            bytes_written_24h,
            fsyncs: get(&self.fsyncs),
            fsync_seconds_total: get(&self.fsync_total_us) as f64 / 1e6,
            fsync_seconds_max: get(&self.fsync_max_us) as f64 / 1e6,
            fsync_buckets: std::array::from_fn(|i| get(&self.fsync_buckets[i])),
            // The store's part (`app::RecorderView`).
            free_bytes: None,
            stored: Default::default(),
        }
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, WriteMeter> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_written(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.meter().add(Instant::now(), bytes);
    }

    fn count_fsync(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_total_us.fetch_add(us, Ordering::Relaxed);
        self.fsync_max_us.fetch_max(us, Ordering::Relaxed);
        let bucket = crate::status::bucket_of(&FSYNC_BUCKETS_S, took.as_nanos() as u64);
        self.fsync_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn set_current(&self, p: Option<PathBuf>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

/// One queued frame, with the span lost just before it (if any).
struct Queued {
    frame: Arc<EncodedFrame>,
    /// Frames lost right before this one.
    gap_frames: u64,
}

/// A running recorder; `stop` finishes the open fragment, syncs it and closes the file.
pub struct Recorder {
    stats: Arc<RecorderStats>,
    tap: tokio::task::JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start(
        media: Arc<MediaPath>,
        settings: RecorderSettings,
        storage: Arc<dyn Storage>,
        runtime: &tokio::runtime::Handle,
    ) -> io::Result<Recorder> {
        let stats = Arc::new(RecorderStats::default());
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_FRAMES);
        let writer = Writer {
            media: media.clone(),
            settings,
            storage,
            stats: stats.clone(),
            segment: None,
            pending: Vec::new(),
            last_sync: Instant::now(),
            scratch: Vec::new(),
            run_start: true,
            paused_check: None,
            last_clock_check: Instant::now(),
            cut_for_clock: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("rec-{}", media.name))
            .spawn(move || writer.run(rx))?;
        let tap = runtime.spawn(tap(media, tx, stats.clone()));
        Ok(Recorder {
            stats,
            tap,
            writer: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the tap drops the queue's sender: the writer drains, closes, returns.
        self.tap.abort();
        if let Some(t) = self.writer.take() {
            if t.join().is_err() {
                log::error!("recorder thread panicked");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads the hub and queues frames without ever waiting for the writer.
async fn tap(media: Arc<MediaPath>, tx: SyncSender<Queued>, stats: Arc<RecorderStats>) {
    let mut reader = media.frames.subscribe();
    // Frames skipped while joining (before the first key frame) are no loss.
    let mut hub_dropped = None;
    let mut lost = 0u64;
    let mut lost_ticks_from: Option<i64> = None;
    // The last frame seen and the period before it: where a gap the hub made begins.
    let mut last_dts: Option<i64> = None;
    let mut period = 0i64;
    while let Some(frame) = reader.next().await {
        // The hub skips to the next IDR by itself when this reader lags.
        let now_dropped = reader.dropped_frames();
        let skipped = now_dropped - hub_dropped.unwrap_or(now_dropped);
        hub_dropped = Some(now_dropped);
        lost += skipped;
        if skipped > 0 {
            if let Some(last) = last_dts {
                lost_ticks_from.get_or_insert(last + period);
            }
        }
        if let Some(last) = last_dts.replace(frame.dts_90k) {
            if skipped == 0 {
                period = (frame.dts_90k - last).max(0);
            }
        }
        if lost > 0 && !frame.is_idr {
            // Within a gap: only an IDR can start the picture again.
            lost += 1;
            lost_ticks_from.get_or_insert(frame.dts_90k);
            continue;
        }
        let at = frame.dts_90k;
        match tx.try_send(Queued {
            frame,
            gap_frames: lost,
        }) {
            Ok(()) => {
                if lost > 0 {
                    stats.frames_dropped.fetch_add(lost, Ordering::Relaxed);
                    if let Some(from) = lost_ticks_from.take() {
                        stats
                            .dropped_ticks
                            .fetch_add((at - from).max(0) as u64, Ordering::Relaxed);
                    }
                    stats.gaps.fetch_add(1, Ordering::Relaxed);
                }
                lost = 0;
            }
            Err(TrySendError::Full(_)) => {
                lost += 1;
                lost_ticks_from.get_or_insert(at);
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}

/// The open segment.
struct Segment {
    rel: PathBuf,
    file: Box<dyn SegmentFile>,
    info: Arc<StreamInfo>,
    /// Media time of its first frame: decode times in the file start at 0.
    first_dts: i64,
    started: Instant,
    /// The next fragment's sequence number, counted on once a fragment is written whole
    /// (1: the file holds no video yet).
    next_sequence: u32,
}

struct Writer {
    media: Arc<MediaPath>,
    settings: RecorderSettings,
    storage: Arc<dyn Storage>,
    stats: Arc<RecorderStats>,
    segment: Option<Segment>,
    /// Frames of the fragment being gathered (each one's duration is known when the next
    /// arrives).
    pending: Vec<Arc<EncodedFrame>>,
    last_sync: Instant,
    scratch: Vec<u8>,
    /// The next segment starts a new run (see `RecorderSettings::name_for`).
    run_start: bool,
    /// Set while paused for a full disk: when storage was last asked for room.
    paused_check: Option<Instant>,
    last_clock_check: Instant,
    /// The wall clock stepped: the segment ends at the next key frame.
    cut_for_clock: bool,
}

/// How often a paused recorder asks whether the disk has room again.
const ROOM_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How many times one write may ask storage to make room before recording pauses.
const MAKE_ROOM_ATTEMPTS: usize = 16;

/// Why a segment could not be written.
enum WriteFailure {
    /// The storage is full even after making room: pause.
    Full(String),
    Other(String),
}

fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

impl Writer {
    fn name(&self) -> &str {
        &self.settings.path_name
    }

    fn run(mut self, rx: Receiver<Queued>) {
        self.stats.set_state(RecorderState::Waiting);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(q) => self.on_frame(q),
                Err(RecvTimeoutError::Timeout) => self.on_idle(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.close_segment(None);
        self.stats.set_state(RecorderState::Stopped);
    }

    /// While paused for a full disk: asks storage, at most once a second, whether there is
    /// room again; true when recording may go on.
    fn may_resume(&mut self) -> bool {
        let Some(since) = self.paused_check else {
            return true;
        };
        if since.elapsed() < ROOM_CHECK_INTERVAL {
            return false;
        }
        if !self.storage.has_room() {
            self.paused_check = Some(Instant::now());
            return false;
        }
        log::info!(
            "path {}: recording resumes: storage has room again",
            self.name()
        );
        self.paused_check = None;
        self.stats.set_state(RecorderState::Waiting);
        true
    }

    fn on_idle(&mut self) {
        self.may_resume();
    }

    fn on_frame(&mut self, q: Queued) {
        if q.gap_frames > 0 {
            log::warn!(
                "path {}: recording gap: {} frames dropped (storage too slow); a new segment starts here",
                self.name(),
                q.gap_frames
            );
            self.close_segment(None);
            self.run_start = true;
        }
        let frame = q.frame;
        if !self.may_resume() {
            return;
        }
        if self.segment.is_none() && !frame.is_idr {
            return;
        }
        // The IDR carries its own SPS/PPS: the init segment must describe exactly these.
        let info = if frame.is_idr {
            let fps = self.media.info().map_or(30, |i| i.fps);
            crate::media::stream_info_from_idr(&frame, fps)
                .map(Arc::new)
                .or_else(|| self.media.info())
        } else {
            None
        };
        if self.last_clock_check.elapsed() >= CLOCK_CHECK_INTERVAL {
            self.last_clock_check = Instant::now();
            if (self.settings.clock_stepped)() && self.segment.is_some() {
                log::info!(
                    "path {}: the wall clock stepped or was synchronised; the segment ends at the next key frame",
                    self.name()
                );
                self.cut_for_clock = true;
            }
        }
        let rotate = match (&self.segment, &info) {
            (None, _) => true,
            (Some(seg), Some(info)) if frame.is_idr => {
                self.cut_for_clock
                    || seg.started.elapsed() >= self.settings.segment_duration
                    || !seg.info.same_picture_format(info)
                    || seg.info.sps != info.sps
                    || seg.info.pps != info.pps
            }
            _ => false,
        };
        if rotate {
            self.close_segment(Some(frame.dts_90k));
            if self.paused_check.is_some() {
                // Closing found the disk full and paused: no new segment until there is
                // room (opening one would free the closed segment's space for its init and
                // then report "recording" while every frame is skipped).
                return;
            }
            let Some(info) = info else {
                return;
            };
            if let Err(f) = self.open_segment(&frame, info) {
                self.failed(f);
                return;
            }
        }
        if let Some(first) = self.pending.first() {
            let span = frame.dts_90k - first.dts_90k;
            if span >= ticks(self.settings.part_duration) {
                if let Err(f) = self.write_fragment(Some(frame.dts_90k)) {
                    self.failed(f);
                    return;
                }
            }
        }
        self.pending.push(frame);
    }

    fn failed(&mut self, f: WriteFailure) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.pending.clear();
        self.run_start = true;
        if let Some(seg) = self.segment.take() {
            self.stats.set_current(None);
            log::warn!(
                "path {}: segment {} ends early",
                self.name(),
                seg.rel.display()
            );
            self.release(seg);
        }
        match f {
            WriteFailure::Full(why) => {
                log::error!("path {}: recording paused: {why}", self.name());
                self.paused_check = Some(Instant::now());
                self.stats.set_state(RecorderState::Paused(why));
            }
            WriteFailure::Other(why) => {
                log::error!(
                    "path {}: recording: {why}; retrying at the next key frame",
                    self.name()
                );
                self.stats.set_state(RecorderState::Waiting);
            }
        }
    }

    /// Writes `bytes`; on a full disk asks storage to make room (oldest segments first)
    /// and retries until the write fits or nothing more can be freed.
    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteFailure> {
        let Some(seg) = self.segment.as_mut() else {
            return Err(WriteFailure::Other("no open segment".into()));
        };
        let mut attempts = 0;
        loop {
            // A failed write leaves nothing behind (`SegmentFile::write_all`): retrying
            // cannot tear the segment.
            match seg.file.write_all(bytes) {
                Ok(()) => break,
                Err(e) if is_no_space(&e) => {
                    attempts += 1;
                    if attempts > MAKE_ROOM_ATTEMPTS || !self.storage.make_room(&seg.rel) {
                        return Err(WriteFailure::Full(format!("storage full: {e}")));
                    }
                }
                Err(e) => {
                    return Err(WriteFailure::Other(format!(
                        "cannot write {}: {e}",
                        seg.rel.display()
                    )))
                }
            }
        }
        self.stats.count_written(bytes.len() as u64);
        Ok(())
    }

    fn sync(&mut self, force: bool) -> Result<(), WriteFailure> {
        let due = match self.settings.fsync {
            FsyncCadence::EveryFragment => true,
            FsyncCadence::Every(d) => self.last_sync.elapsed() >= d,
        };
        if !(force || due) {
            return Ok(());
        }
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let t = Instant::now();
        let result = seg.file.sync_data();
        let took = t.elapsed();
        self.last_sync = Instant::now();
        self.stats.count_fsync(took);
        if took > Duration::from_secs(1) {
            log::warn!(
                "path {}: writing to storage took {} ms (a slow or worn SD card?)",
                self.settings.path_name,
                took.as_millis()
            );
        }
        result.map_err(|e| {
            if is_no_space(&e) {
                WriteFailure::Full(format!("storage full: {e}"))
            } else {
                WriteFailure::Other(format!("cannot sync {}: {e}", seg.rel.display()))
            }
        })
    }

    fn open_segment(
        &mut self,
        frame: &EncodedFrame,
        info: Arc<StreamInfo>,
    ) -> Result<(), WriteFailure> {
        let synced = (self.settings.clock_synced)();
        let rel = (self.settings.name_for)(frame.wall, synced, self.run_start);
        let file = match self.storage.create(&rel) {
            Ok(f) => f,
            Err(e) if is_no_space(&e) => {
                if !self.storage.make_room(&rel) {
                    return Err(WriteFailure::Full(format!("storage full: {e}")));
                }
                self.storage
                    .create(&rel)
                    .map_err(|e| WriteFailure::Full(format!("storage full: {e}")))?
            }
            Err(e) => {
                return Err(WriteFailure::Other(format!(
                    "cannot create {}: {e}",
                    rel.display()
                )))
            }
        };
        self.cut_for_clock = false;
        self.segment = Some(Segment {
            rel: rel.clone(),
            file,
            info: info.clone(),
            first_dts: frame.dts_90k,
            started: Instant::now(),
            next_sequence: 1,
        });
        self.stats.set_current(Some(rel.clone()));
        self.run_start = false;
        let init = fmp4::init_segment(&info);
        self.write(&init)?;
        self.sync(true)?;
        self.stats.segments.fetch_add(1, Ordering::Relaxed);
        self.stats.set_state(RecorderState::Recording);
        log::info!(
            "path {}: recording to {}{}",
            self.name(),
            rel.display(),
            if synced {
                ""
            } else {
                " (clock not synchronised yet)"
            }
        );
        Ok(())
    }

    /// Writes the pending frames as one fragment. `next_dts` is the media time of the frame
    /// after them (gives the last one's exact duration); without it, the last frame lasts as
    /// long as the one before it (or one frame period).
    fn write_fragment(&mut self, next_dts: Option<i64>) -> Result<(), WriteFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(seg) = self.segment.as_mut() else {
            self.pending.clear();
            return Ok(());
        };
        let fps = seg.info.fps.max(1) as i64;
        let period = CLOCK_RATE as i64 / fps;
        let frames = std::mem::take(&mut self.pending);
        let mut durations = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let next = frames.get(i + 1).map(|n| n.dts_90k).or(next_dts);
            let d = match next {
                Some(n) => n - f.dts_90k,
                None => durations.last().copied().unwrap_or(period),
            };
            durations.push(d.clamp(1, u32::MAX as i64));
        }
        self.scratch.clear();
        let mut ranges = Vec::with_capacity(frames.len());
        for f in &frames {
            let start = self.scratch.len();
            fmp4::append_avcc(f, &mut self.scratch);
            ranges.push(start..self.scratch.len());
        }
        let samples: Vec<fmp4::Sample<'_>> = frames
            .iter()
            .zip(&ranges)
            .zip(&durations)
            .map(|((f, r), d)| fmp4::Sample {
                data: &self.scratch[r.clone()],
                duration: *d as u32,
                composition_offset: (f.pts_90k - f.dts_90k)
                    .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                    as i32,
                is_sync: f.is_idr,
            })
            .collect();
        let base = (frames[0].dts_90k - seg.first_dts).max(0) as u64;
        let sequence = seg.next_sequence;
        let bytes = fmp4::fragment(sequence, base, &samples);
        self.write(&bytes)?;
        if let Some(seg) = self.segment.as_mut() {
            seg.next_sequence = sequence + 1;
        }
        self.sync(false)?;
        self.stats.fragments.fetch_add(1, Ordering::Relaxed);
        self.stats
            .frames_written
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Finishes the open segment: writes what is pending and syncs the file.
    fn close_segment(&mut self, next_dts: Option<i64>) {
        if self.segment.is_none() {
            self.pending.clear();
            return;
        }
        let result = self.write_fragment(next_dts).and_then(|_| self.sync(true));
        if let Err(f) = result {
            self.failed(f);
        }
        if let Some(seg) = self.segment.take() {
            log::debug!("path {}: segment {} closed", self.name(), seg.rel.display());
            self.release(seg);
        }
        self.stats.set_current(None);
    }

    /// A segment is no longer written: retention may take it, and one that ended before its
    /// first fragment (the disk filled up right after its init) is removed.
    fn release(&self, seg: Segment) {
        let Segment {
            rel,
            file,
            next_sequence,
            ..
        } = seg;
        drop(file);
        self.storage.closed(&rel);
        if next_sequence > 1 {
            return;
        }
        match self.storage.discard(&rel) {
            Ok(()) => log::info!(
                "path {}: removed {}: it ended before its first fragment",
                self.name(),
                rel.display()
            ),
            Err(e) => log::warn!(
                "path {}: cannot remove {}, which holds no video: {e}",
                self.name(),
                rel.display()
            ),
        }
    }
}

fn ticks(d: Duration) -> i64 {
    (d.as_secs_f64() * CLOCK_RATE as f64) as i64
}

/// Segments on the real filesystem under `root`.
pub struct DiskStorage {
    pub root: PathBuf,
}

struct DiskFile {
    file: std::fs::File,
    /// Bytes written so far: where a failed write is cut back to.
    len: u64,
}

impl SegmentFile for DiskFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A full disk takes part of a write: cut the file back so that it ends at
                // the last whole fragment.
                if let Err(cut) = self
                    .file
                    .set_len(self.len)
                    .and_then(|_| self.file.seek(SeekFrom::Start(self.len)))
                {
                    log::warn!("recordings: cannot cut back a failed write: {cut}");
                }
                Err(e)
            }
        }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A segment file whose writes block while the test fault `stall-storage` is on (a card
/// that stops answering); only used when fault injection is enabled.
struct StallableFile(DiskFile);

impl SegmentFile for StallableFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        crate::fault::wait_while(crate::fault::STALL_STORAGE);
        self.0.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        crate::fault::wait_while(crate::fault::STALL_STORAGE);
        self.0.sync_data()
    }
}

/// fsyncs a directory so that a created, renamed or removed entry survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Storage for DiskStorage {
    fn create(&self, rel: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        sync_dir(&dir)?;
        let file = DiskFile { file, len: 0 };
        if crate::fault::enabled() {
            return Ok(Box::new(StallableFile(file)));
        }
        Ok(Box::new(file))
    }
    fn make_room(&self, _writing: &Path) -> bool {
        false
    }
    fn has_room(&self) -> bool {
        true
    }
    fn discard(&self, rel: &Path) -> io::Result<()> {
        let path = self.root.join(rel);
        std::fs::remove_file(&path)?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::EncoderSettings;
    use crate::source::pattern::TestPattern;
    use crate::source::pipeline::Pipeline;
    use crate::source::FrameSource;
    use crate::test_util::{require, TempDir};
    use std::sync::atomic::AtomicBool;

    /// A 160x120@30 test pattern with an IDR every `idr` frames.
    fn source(name: &str, idr: u32) -> (Arc<MediaPath>, Pipeline) {
        let media = MediaPath::new(name);
        let pipeline = Pipeline::spawn(
            media.clone(),
            Box::new(|| Ok(Box::new(TestPattern::new(160, 120, 30)?) as Box<dyn FrameSource>)),
            EncoderSettings {
                width: 160,
                height: 120,
                fps: 30,
                bitrate_kbps: 200,
                idr_interval_frames: idr,
            },
        )
        .expect("pipeline");
        (media, pipeline)
    }

    fn settings(name: &str, part_ms: u64, segment_ms: u64) -> RecorderSettings {
        let counter = Arc::new(AtomicU64::new(0));
        let name_owned = name.to_string();
        RecorderSettings {
            path_name: name.to_string(),
            part_duration: Duration::from_millis(part_ms),
            segment_duration: Duration::from_millis(segment_ms),
            fsync: FsyncCadence::EveryFragment,
            name_for: Box::new(move |_, synced, _| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                PathBuf::from(&name_owned).join(format!(
                    "{n:04}{}.mp4",
                    if synced { "" } else { "-unsynced" }
                ))
            }),
            clock_synced: Arc::new(|| true),
            clock_stepped: Box::new(|| false),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// ffprobe's frame count and duration (s) of a file; asserts no errors.
    fn probe(file: &Path) -> (u64, f64) {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=nb_read_frames:format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(file)
            .output()
            .expect("ffprobe");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{}: {stderr}", file.display());
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<f64> = text
            .split(['\n', ','])
            .filter_map(|t| t.trim().parse().ok())
            .collect();
        assert_eq!(nums.len(), 2, "{}: {text}", file.display());
        (nums[0] as u64, nums[1])
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn segments_rotate_at_key_frames_and_play_back_to_back() {
        require("ffprobe");
        let rt = runtime();
        let dir = TempDir::new("rec-rotate");
        let root = dir.path().to_path_buf();
        let (media, pipeline) = source("cam", 15);
        let rec = Recorder::start(
            media,
            settings("cam", 250, 1000),
            Arc::new(DiskStorage { root: root.clone() }),
            rt.handle(),
        )
        .expect("recorder");
        std::thread::sleep(Duration::from_millis(3300));
        let stats = rec.stats().clone();
        rec.stop();
        pipeline.stop();
        let segs = files(&root.join("cam"));
        assert!(segs.len() >= 3, "{segs:?}");
        let mut frames = 0;
        for s in &segs {
            let (n, secs) = probe(s);
            // Rotation happens at the first IDR (every 0.5 s) after 1 s.
            assert!(
                (0.9..=1.6).contains(&secs) || s == segs.last().expect("last"),
                "{}: {secs} s",
                s.display()
            );
            assert!(
                ((n as f64 / 30.0) - secs).abs() < 0.05,
                "{}: {n} frames in {secs} s",
                s.display()
            );
            frames += n;
        }
        assert_eq!(frames, stats.frames_written.load(Ordering::Relaxed));
        assert_eq!(stats.frames_dropped.load(Ordering::Relaxed), 0);
        assert_eq!(stats.state(), RecorderState::Stopped);
    }

    /// A storage whose writes block while `stalled` is set, and that can run out of space:
    /// at once (`full`), or as a real disk does, when a write is larger than the `room`
    /// left (a smaller one, such as a segment's init, still fits).
    struct FakeStorage {
        inner: DiskStorage,
        stalled: Arc<AtomicBool>,
        full: Arc<AtomicBool>,
        room: Arc<AtomicU64>,
        /// The largest first write of a file so far: the init segments' size.
        largest_init: Arc<AtomicU64>,
        /// When set, the next file created leaves only this much `room` (the disk filling
        /// up just as a segment opens).
        room_at_next_create: Arc<Mutex<Option<u64>>>,
    }

    impl FakeStorage {
        fn new(root: &Path) -> FakeStorage {
            FakeStorage {
                inner: DiskStorage {
                    root: root.to_path_buf(),
                },
                stalled: Arc::new(AtomicBool::new(false)),
                full: Arc::new(AtomicBool::new(false)),
                room: Arc::new(AtomicU64::new(u64::MAX)),
                largest_init: Arc::new(AtomicU64::new(0)),
                room_at_next_create: Arc::new(Mutex::new(None)),
            }
        }
    }

    struct FakeFile {
        inner: Box<dyn SegmentFile>,
        stalled: Arc<AtomicBool>,
        full: Arc<AtomicBool>,
        room: Arc<AtomicU64>,
        largest_init: Arc<AtomicU64>,
        written: u64,
    }

    impl SegmentFile for FakeFile {
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            while self.stalled.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let len = bytes.len() as u64;
            let fits = self
                .room
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(len))
                .is_ok();
            if self.full.load(Ordering::Acquire) || !fits {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if self.written == 0 {
                self.largest_init.fetch_max(len, Ordering::AcqRel);
            }
            self.written += len;
            self.inner.write_all(bytes)
        }
        fn sync_data(&mut self) -> io::Result<()> {
            self.inner.sync_data()
        }
    }

    impl Storage for FakeStorage {
        fn create(&self, rel: &Path) -> io::Result<Box<dyn SegmentFile>> {
            if self.full.load(Ordering::Acquire) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if let Some(room) = self.room_at_next_create.lock().unwrap().take() {
                self.room.store(room, Ordering::Release);
            }
            Ok(Box::new(FakeFile {
                inner: self.inner.create(rel)?,
                stalled: self.stalled.clone(),
                full: self.full.clone(),
                room: self.room.clone(),
                largest_init: self.largest_init.clone(),
                written: 0,
            }))
        }
        fn make_room(&self, _writing: &Path) -> bool {
            false
        }
        fn has_room(&self) -> bool {
            !self.full.load(Ordering::Acquire) && self.room.load(Ordering::Acquire) > 1 << 20
        }
        fn discard(&self, rel: &Path) -> io::Result<()> {
            self.inner.discard(rel)
        }
    }

    #[test]
    fn a_clock_step_cuts_the_segment_at_the_next_key_frame_and_the_run_goes_on() {
        require("ffprobe");
        let rt = runtime();
        let dir = TempDir::new("rec-clockstep");
        let root = dir.path().to_path_buf();
        let (media, pipeline) = source("cam", 15);
        let stepped = Arc::new(AtomicBool::new(false));
        let run_starts = Arc::new(Mutex::new(Vec::new()));
        let mut settings = settings("cam", 250, 60_000);
        let inner = settings.name_for;
        let starts = run_starts.clone();
        settings.name_for = Box::new(move |wall, synced, run_start| {
            starts.lock().expect("lock").push(run_start);
            inner(wall, synced, run_start)
        });
        let flag = stepped.clone();
        settings.clock_stepped = Box::new(move || flag.swap(false, Ordering::AcqRel));
        let rec = Recorder::start(
            media,
            settings,
            Arc::new(DiskStorage { root: root.clone() }),
            rt.handle(),
        )
        .expect("recorder");
        // Counts and generous limits, not times: CI also runs this under qemu-user.
        let deadline = Instant::now() + Duration::from_secs(20);
        while rec.stats().frames_written.load(Ordering::Relaxed) < 30 {
            assert!(Instant::now() < deadline, "never recorded");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rec.stats().segments.load(Ordering::Relaxed), 1);
        stepped.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(20);
        while rec.stats().segments.load(Ordering::Relaxed) < 2 {
            // The check runs every 500 ms, the next IDR comes within 500 ms.
            assert!(Instant::now() < deadline, "no cut");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(1000));
        let stats = rec.stats().clone();
        rec.stop();
        pipeline.stop();
        // One run: the first segment starts it, the second continues it.
        assert_eq!(*run_starts.lock().expect("lock"), vec![true, false]);
        let segs = files(&root.join("cam"));
        assert_eq!(segs.len(), 2, "{segs:?}");
        let frames: u64 = segs.iter().map(|s| probe(s).0).sum();
        assert_eq!(frames, stats.frames_written.load(Ordering::Relaxed));
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stalled_card_drops_to_the_next_key_frame_and_never_holds_up_the_stream() {
        require("ffprobe");
        let rt = runtime();
        let dir = TempDir::new("rec-stall");
        let root = dir.path().to_path_buf();
        let (media, pipeline) = source("cam", 15);
        let storage = FakeStorage::new(&root);
        let stalled = storage.stalled.clone();
        // A live viewer of the same path: it must get every frame through the stall.
        let mut viewer = media.frames.subscribe();
        let rec = Recorder::start(
            media,
            settings("cam", 250, 60_000),
            Arc::new(storage),
            rt.handle(),
        )
        .expect("recorder");
        std::thread::sleep(Duration::from_millis(800));
        stalled.store(true, Ordering::Release);
        // 6 s of stall at 30 fps overflows the 128-frame queue.
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            match viewer.try_next() {
                crate::hub::TryNext::Item(f) => seen.push(f.pts_90k),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        stalled.store(false, Ordering::Release);
        std::thread::sleep(Duration::from_millis(1500));
        let stats = rec.stats().clone();
        rec.stop();
        pipeline.stop();
        for w in seen.windows(2) {
            assert_eq!(
                w[1] - w[0],
                3000,
                "the viewer lost nothing during the stall"
            );
        }
        assert!(seen.len() >= 150, "{} frames", seen.len());
        let dropped = stats.frames_dropped.load(Ordering::Relaxed);
        assert!(
            dropped > 0 && stats.gaps.load(Ordering::Relaxed) >= 1,
            "dropped {dropped}"
        );
        let lost_s = stats.dropped_ticks.load(Ordering::Relaxed) as f64 / 90_000.0;
        assert!(lost_s > 0.5, "the gap is measured: {lost_s} s");
        // Two segments: before and after the gap, both playable.
        let segs = files(&root.join("cam"));
        assert!(segs.len() >= 2, "{segs:?}");
        for s in &segs {
            probe(s);
        }
    }

    #[test]
    fn a_full_disk_pauses_recording_and_it_resumes_by_itself() {
        require("ffprobe");
        let rt = runtime();
        let dir = TempDir::new("rec-full");
        let root = dir.path().to_path_buf();
        let (media, pipeline) = source("cam", 15);
        let storage = FakeStorage::new(&root);
        let full = storage.full.clone();
        let rec = Recorder::start(
            media,
            settings("cam", 250, 60_000),
            Arc::new(storage),
            rt.handle(),
        )
        .expect("recorder");
        std::thread::sleep(Duration::from_millis(1000));
        full.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(rec.stats().state(), RecorderState::Paused(_)) {
            assert!(
                Instant::now() < deadline,
                "never paused: {}",
                rec.stats().state()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(rec.stats().state().to_string().contains("storage full"));
        full.store(false, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rec.stats().segments.load(Ordering::Relaxed) < 2 {
            assert!(
                Instant::now() < deadline,
                "never resumed: {}",
                rec.stats().state()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(rec.stats().state(), RecorderState::Recording);
        rec.stop();
        pipeline.stop();
        let segs = files(&root.join("cam"));
        assert_eq!(segs.len(), 2, "{segs:?}");
        // The first was cut by the full disk: playable up to its last complete fragment
        // once repaired (what a restart does); the second is whole.
        for s in &segs {
            crate::record::repair::repair(s).expect("repair");
            probe(s);
        }
    }

    /// Waits up to 10 s for `done`, failing with `what` and the recorder's state.
    fn wait_for(stats: &RecorderStats, what: &str, done: impl Fn(&RecorderStats) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(stats) {
            assert!(Instant::now() < deadline, "{what}: {}", stats.state());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Records `cam` (a key frame every 15 frames) onto `storage` until two segments are
    /// written; returns the runtime, the recorder, the source and the init segment's size.
    fn two_segments_on(
        storage: FakeStorage,
        part_ms: u64,
        segment_ms: u64,
    ) -> (tokio::runtime::Runtime, Recorder, Pipeline, u64) {
        let rt = runtime();
        let (media, pipeline) = source("cam", 15);
        let largest_init = storage.largest_init.clone();
        let rec = Recorder::start(
            media,
            settings("cam", part_ms, segment_ms),
            Arc::new(storage),
            rt.handle(),
        )
        .expect("recorder");
        wait_for(rec.stats(), "two segments", |s| {
            s.segments.load(Ordering::Relaxed) >= 2
        });
        let init = largest_init.load(Ordering::Acquire);
        assert!(init > 0 && init < 4096, "init segment of {init} bytes");
        (rt, rec, pipeline, init)
    }

    #[test]
    fn a_disk_found_full_when_a_segment_closes_opens_no_next_segment() {
        // Fragments are written only when a segment closes (parts longer than segments),
        // and the disk then has room for an init segment but not for a fragment: the close
        // fails and pauses. Opening the next segment anyway (as once happened) wrote its
        // init, said "recording" and skipped every frame until the disk had room.
        require("ffprobe");
        let dir = TempDir::new("rec-full-at-close");
        let root = dir.path().to_path_buf();
        let storage = FakeStorage::new(&root);
        let room = storage.room.clone();
        let (_rt, rec, pipeline, init) = two_segments_on(storage, 60_000, 500);
        let stats = rec.stats().clone();
        // Room for one more init (and a little), never for half a second of video.
        room.store(init + 64, Ordering::Release);
        wait_for(&stats, "paused", |s| {
            matches!(s.state(), RecorderState::Paused(_))
        });
        let segments = stats.segments.load(Ordering::Relaxed);
        let frames = stats.frames_written.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            matches!(stats.state(), RecorderState::Paused(_)),
            "still paused while the disk is full: {}",
            stats.state()
        );
        assert_eq!(
            stats.segments.load(Ordering::Relaxed),
            segments,
            "no segment opened while paused"
        );
        assert_eq!(stats.frames_written.load(Ordering::Relaxed), frames);
        // Room again: a new segment within the check interval and a key frame.
        room.store(u64::MAX, Ordering::Release);
        wait_for(&stats, "resumed", |s| {
            s.segments.load(Ordering::Relaxed) > segments + 1
        });
        assert_eq!(stats.state(), RecorderState::Recording);
        rec.stop();
        pipeline.stop();
        let last = files(&root.join("cam")).pop().expect("a segment");
        assert!(probe(&last).0 > 0, "{}", last.display());
    }

    #[test]
    fn a_segment_the_disk_fills_up_after_its_init_is_removed() {
        // The disk has room for a new segment's init and not for its first fragment: the
        // file ends early holding no video. Left behind, it was a file no player opens (the
        // end-to-end full-disk test found one now and then).
        let dir = TempDir::new("rec-full-after-init");
        let root = dir.path().to_path_buf();
        let storage = FakeStorage::new(&root);
        let room_at_next_create = storage.room_at_next_create.clone();
        let (_rt, rec, pipeline, init) = two_segments_on(storage, 250, 500);
        let stats = rec.stats().clone();
        *room_at_next_create.lock().unwrap() = Some(init + 64);
        wait_for(&stats, "paused", |s| {
            matches!(s.state(), RecorderState::Paused(_))
        });
        assert!(
            room_at_next_create.lock().unwrap().is_none(),
            "paused before a segment opened on the nearly full disk"
        );
        rec.stop();
        pipeline.stop();
        let segs = files(&root.join("cam"));
        assert!(segs.len() >= 2, "{segs:?}");
        for s in &segs {
            let summary = crate::record::repair::summarize(s).expect("summary");
            assert!(
                summary.has_init && summary.fragments > 0,
                "{}: {summary:?}",
                s.display()
            );
        }
    }
}
