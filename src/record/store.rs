//! One path's recordings on disk: finding them, repairing what a crash left, naming new
//! segments, and applying retention.
//!
//! Owns: the scan of a path's directory (names through `naming`, durations through
//! `repair::summarize`, cached by file length), the repair pass at start (a torn tail is cut
//! back to the last complete fragment; a file with nothing playable is removed), the next
//! sequence number, the retention pass (`retention::plan` with the clocks it is given and
//! the [`Volume`]'s free space; deletions followed by an fsync of the directory), and a
//! summary of the last scan for status ([`StoreSummary`]). Implements the recorder's
//! `Storage`. Does not own: what a segment contains (`recorder`, `fmp4`).
//!
//! The filesystem's free space and directory syncs go through [`Volume`] (`statvfs` and
//! `fsync` in production) so that tests can run retention on real files with a fake disk.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::RecordingConfig;
use crate::naming::Template;
use crate::record::recorder::{sync_dir, DiskStorage, SegmentFile, Storage};
use crate::record::repair::{self, Repaired};
use crate::record::retention::{self, AgeState, Clock, Disk, Policy, Segment};

/// Free space below which a disk-full pause does not end (besides `min_free`), so that
/// recording does not flap at the edge: 16 MiB, or 2 % of a small filesystem.
fn resume_margin(total: u64) -> u64 {
    (16 * 1024 * 1024).min(total / 50)
}

/// The real clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn synced(&self) -> bool {
        crate::status::clock_synchronized()
    }
    fn boot_time(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        if r != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// The filesystem holding the recordings: its free space and directory syncs.
pub trait Volume: Send + Sync {
    /// Size and free space of the filesystem holding `dir`.
    fn disk(&self, dir: &Path) -> io::Result<Disk>;
    /// fsyncs `dir`, so that removed entries stay removed after a power cut.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real filesystem: `statvfs` and `fsync`.
pub struct SystemVolume;

impl Volume for SystemVolume {
    fn disk(&self, dir: &Path) -> io::Result<Disk> {
        disk_of(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sync_dir(dir)
    }
}

/// `statvfs` of the filesystem holding `dir`.
pub fn disk_of(dir: &Path) -> io::Result<Disk> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills one struct from a NUL-terminated path that outlives the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok(Disk {
        total: st.f_blocks as u64 * unit,
        free: st.f_bavail as u64 * unit,
    })
}

/// A length in 90 kHz media ticks as a `Duration`.
fn media_duration(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / crate::media::CLOCK_RATE as u64)
}

struct Scan {
    age: AgeState,
    /// Measured durations by file, valid while the file keeps its length.
    durations: HashMap<PathBuf, (u64, Duration)>,
}

/// One segment as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBrief {
    /// Relative to the path's directory ([`PathStore::scan_dir`]), as the recordings API
    /// names it.
    pub file: PathBuf,
    /// The start its name gives (the earliest instant it allows), if the template has one.
    pub start: Option<SystemTime>,
    /// The wall clock was synchronised when it started (else `start` is not believed).
    pub clock_trusted: bool,
}

/// What the last scan found (at open, then at every retention pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSummary {
    pub segments: usize,
    pub bytes: u64,
    /// Oldest and newest by sequence number (the only order).
    pub oldest: Option<SegmentBrief>,
    pub newest: Option<SegmentBrief>,
    /// Free space of the recordings filesystem at that pass (`statvfs`), when known: status
    /// reads it from here, so a hung card never blocks a status read.
    pub free_bytes: Option<u64>,
}

/// A path's recordings directory.
pub struct PathStore {
    root: PathBuf,
    path_name: String,
    template: Template,
    settings: RecordingConfig,
    next_sequence: AtomicU64,
    scan: Mutex<Scan>,
    /// The segment being written (set by `Storage::create`, cleared by `Storage::closed`,
    /// as the recorder's own `RecorderStats::current`), never deleted.
    writing: Mutex<Option<PathBuf>>,
    disk: DiskStorage,
    volume: Arc<dyn Volume>,
    summary: Mutex<StoreSummary>,
}

impl PathStore {
    /// Opens `root/<path's directory>`, repairs what a crash left and finds the next
    /// sequence number.
    pub fn open(
        root: &Path,
        path_name: &str,
        settings: &RecordingConfig,
    ) -> Result<PathStore, String> {
        PathStore::open_with(root, path_name, settings, Arc::new(SystemVolume))
    }

    /// [`PathStore::open`] on a given [`Volume`] (tests: a fake disk).
    pub fn open_with(
        root: &Path,
        path_name: &str,
        settings: &RecordingConfig,
        volume: Arc<dyn Volume>,
    ) -> Result<PathStore, String> {
        let template = Template::parse(&settings.record_path)?;
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let store = PathStore {
            root: root.to_path_buf(),
            path_name: path_name.to_string(),
            template,
            settings: settings.clone(),
            next_sequence: AtomicU64::new(1),
            scan: Mutex::new(Scan {
                age: AgeState::new(),
                durations: HashMap::new(),
            }),
            writing: Mutex::new(None),
            disk: DiskStorage {
                root: root.to_path_buf(),
            },
            volume,
            summary: Mutex::new(StoreSummary::default()),
        };
        store.repair_all();
        // Durations are cached by the repair pass: this reads no file again.
        let segments = store.segments();
        store.next_sequence.store(
            crate::naming::next_sequence(segments.iter().map(|s| s.name.sequence)),
            Ordering::Relaxed,
        );
        let free = store.volume.disk(&store.root).ok().map(|d| d.free);
        store.set_summary(&segments, free);
        Ok(store)
    }

    /// The directory under the root holding all of this path's files; the recordings API
    /// names files relative to it.
    pub fn scan_dir(&self) -> PathBuf {
        self.template.scan_dir(&self.path_name)
    }

    /// The naming template (the recordings API resolves names through it).
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Whether `file` (relative to [`PathStore::scan_dir`]) is named as one of this path's
    /// segments. Several paths can share a directory (a template whose `%path` is not in
    /// its fixed prefix): this keeps a path's API away from the others' files.
    pub fn names_a_segment(&self, file: &Path) -> bool {
        self.template
            .parse_name(&self.path_name, &self.scan_dir().join(file))
            .is_some()
    }

    /// What the last scan found; no I/O.
    pub fn summary(&self) -> StoreSummary {
        self.summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_summary(&self, segments: &[Segment], free_bytes: Option<u64>) {
        let dir = self.scan_dir();
        let brief = |s: &Segment| SegmentBrief {
            file: s.path.strip_prefix(&dir).unwrap_or(&s.path).to_path_buf(),
            start: s.name.start.map(|w| w.earliest),
            clock_trusted: s.name.synced,
        };
        let by_seq = |s: &&Segment| s.name.sequence;
        let summary = StoreSummary {
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.bytes).sum(),
            oldest: segments.iter().min_by_key(by_seq).map(brief),
            newest: segments.iter().max_by_key(by_seq).map(brief),
            free_bytes,
        };
        *self.summary.lock().unwrap_or_else(|e| e.into_inner()) = summary;
    }

    /// The files of this path: relative path and what the name says.
    fn files(&self) -> Vec<(PathBuf, crate::naming::SegmentName)> {
        let dir = self.template.scan_dir(&self.path_name);
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.root.join(&rel)) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(kind) = e.file_type() else { continue };
                let child = rel.join(e.file_name());
                if kind.is_dir() {
                    stack.push(child);
                } else if kind.is_file() {
                    if let Some(name) = self.template.parse_name(&self.path_name, &child) {
                        out.push((child, name));
                    }
                }
            }
        }
        out
    }

    /// Cuts torn tails back to the last complete fragment; removes files with nothing
    /// playable (a crash before the first fragment was complete). Remembers the measured
    /// durations, so the first retention pass does not read every file again.
    fn repair_all(&self) {
        let mut measured = HashMap::new();
        for (rel, _) in self.files() {
            let path = self.root.join(&rel);
            let summary = match repair::summarize(&path) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("recordings: cannot read {}: {e}", path.display());
                    continue;
                }
            };
            let duration = media_duration(summary.duration_90k);
            if summary.has_init && summary.fragments > 0 && summary.complete_len == summary.file_len
            {
                measured.insert(rel, (summary.file_len, duration));
                continue;
            }
            if !summary.has_init || summary.fragments == 0 {
                log::warn!(
                    "recordings: {} holds no complete fragment (cut off by a crash or power loss); removed",
                    rel.display()
                );
                if std::fs::remove_file(&path).is_ok() {
                    if let Some(dir) = path.parent() {
                        let _ = self.volume.sync_dir(dir);
                    }
                }
                continue;
            }
            match repair::repair(&path) {
                Ok(Repaired::Truncated { from, to }) => {
                    log::warn!(
                        "recordings: repaired {} after a crash: cut from {from} to {to} bytes ({:.1} s kept)",
                        rel.display(),
                        summary.duration_90k as f64 / 90_000.0
                    );
                    measured.insert(rel, (to, duration));
                }
                Ok(_) => {}
                Err(e) => log::error!("recordings: cannot repair {}: {e}", path.display()),
            }
        }
        self.scan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .durations = measured;
    }

    /// The next segment's file, relative to the recordings root.
    pub fn name_for(&self, start: SystemTime, synced: bool, run_start: bool) -> PathBuf {
        let seq = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        match self
            .template
            .expand(&self.path_name, start, seq, synced, run_start)
        {
            Ok(p) => p,
            // Path names are validated by config; this cannot happen, but never write
            // outside the path's own directory.
            Err(_) => PathBuf::from(&self.path_name).join(format!("segment_{seq:09}.mp4")),
        }
    }

    /// The path's segments with their measured durations and sizes.
    pub fn segments(&self) -> Vec<Segment> {
        let mut scan = self.scan.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (rel, name) in self.files() {
            let path = self.root.join(&rel);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let len = meta.len();
            let duration = match scan.durations.get(&rel) {
                Some((l, d)) if *l == len => *d,
                _ => repair::summarize(&path)
                    .map(|s| media_duration(s.duration_90k))
                    .unwrap_or_default(),
            };
            seen.insert(rel.clone(), (len, duration));
            out.push(Segment {
                path: rel,
                name,
                duration,
                bytes: len,
            });
        }
        scan.durations = seen;
        out
    }

    fn policy(&self, disk: Disk) -> Policy {
        Policy {
            delete_after: self.settings.delete_after.0,
            max_bytes: self.settings.max_bytes.map(|b| b.0),
            min_free: match self.settings.min_free {
                Some(a) => a.resolve(disk.total),
                None => retention::default_min_free(disk.total),
            },
        }
    }

    /// Free space of the recordings filesystem as of the last retention pass (no I/O).
    pub fn free_bytes(&self) -> Option<u64> {
        self.summary().free_bytes
    }

    fn set_writing(&self, rel: Option<PathBuf>) {
        *self.writing.lock().unwrap_or_else(|e| e.into_inner()) = rel;
    }

    fn writing(&self) -> Option<PathBuf> {
        self.writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies retention once; returns how many segments were deleted. Updates the
    /// summary.
    pub fn retention_pass(&self, clock: &dyn Clock) -> usize {
        let mut segments = self.segments();
        let disk = match self.volume.disk(&self.root) {
            Ok(d) => d,
            Err(e) => {
                log::warn!(
                    "recordings: cannot read free space of {}: {e}",
                    self.root.display()
                );
                self.set_summary(&segments, None);
                return 0;
            }
        };
        let writing = self.writing();
        let plan = {
            let mut scan = self.scan.lock().unwrap_or_else(|e| e.into_inner());
            retention::plan(
                &segments,
                writing.as_deref(),
                &self.policy(disk),
                disk,
                clock,
                &mut scan.age,
            )
        };
        let deleted = self.delete(
            &plan
                .iter()
                .map(|(p, r)| (p.clone(), format!("{r:?}")))
                .collect::<Vec<_>>(),
        );
        segments.retain(|s| !deleted.contains(&s.path));
        let free = if deleted.is_empty() {
            Some(disk.free)
        } else {
            self.volume.disk(&self.root).ok().map(|d| d.free)
        };
        self.set_summary(&segments, free);
        deleted.len()
    }

    /// Deletes `victims` (relative file, why); returns those deleted.
    fn delete(&self, victims: &[(PathBuf, String)]) -> Vec<PathBuf> {
        let mut deleted = Vec::new();
        let mut dirs = Vec::new();
        for (rel, why) in victims {
            let path = self.root.join(rel);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    deleted.push(rel.clone());
                    log::info!("recordings: deleted {} ({why})", rel.display());
                    if let Some(d) = path.parent() {
                        if !dirs.contains(&d.to_path_buf()) {
                            dirs.push(d.to_path_buf());
                        }
                    }
                }
                Err(e) => log::warn!("recordings: cannot delete {}: {e}", rel.display()),
            }
        }
        for d in dirs {
            if let Err(e) = self.volume.sync_dir(&d) {
                log::warn!("recordings: cannot sync {}: {e}", d.display());
            }
        }
        deleted
    }

    /// The oldest segment that is not being written.
    fn oldest(&self, writing: &Path) -> Option<PathBuf> {
        let mut segs = self.segments();
        segs.sort_by_key(|s| s.name.sequence);
        segs.into_iter().map(|s| s.path).find(|p| p != writing)
    }
}

impl Storage for PathStore {
    fn create(&self, rel: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = self.disk.create(rel)?;
        self.set_writing(Some(rel.to_path_buf()));
        Ok(f)
    }

    fn closed(&self, rel: &Path) {
        let mut writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if writing.as_deref() == Some(rel) {
            *writing = None;
        }
    }

    fn make_room(&self, writing: &Path) -> bool {
        // Retention first (it may already have work); then the oldest segment regardless.
        if self.retention_pass(&SystemClock) > 0 {
            return true;
        }
        match self.oldest(writing) {
            Some(rel) => !self.delete(&[(rel, "disk full".to_string())]).is_empty(),
            None => false,
        }
    }

    fn has_room(&self) -> bool {
        match self.volume.disk(&self.root) {
            Ok(disk) => disk.free > self.policy(disk).min_free.max(resume_margin(disk.total)),
            Err(_) => false,
        }
    }

    fn discard(&self, rel: &Path) -> io::Result<()> {
        self.disk.discard(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::tests::{segment_lasting, TempDir};
    use crate::record::retention::FakeClock;
    use crate::units::{Amount, Bytes, Seconds};
    use std::sync::atomic::AtomicU64;
    use std::time::UNIX_EPOCH;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3_600);
    const DAY: Duration = Duration::from_secs(86_400);
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    /// Sample bytes per segment (the files are a little larger: init and boxes).
    const PAYLOAD: usize = 4_000;

    /// 2024-05-01 00:00:00 UTC.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_521_600)
    }

    /// A disk of `total` bytes holding the real files under `root` plus `other` bytes of
    /// something else: deleting a file frees its size, as on a real filesystem. Records the
    /// directories synced.
    struct FakeVolume {
        root: PathBuf,
        total: AtomicU64,
        other: AtomicU64,
        synced: Mutex<Vec<PathBuf>>,
    }

    impl FakeVolume {
        fn used(&self) -> u64 {
            let mut used = 0;
            let mut stack = vec![self.root.clone()];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let meta = e.metadata().unwrap();
                    if meta.is_dir() {
                        stack.push(e.path());
                    } else {
                        used += meta.len();
                    }
                }
            }
            used
        }

        fn synced(&self) -> Vec<PathBuf> {
            self.synced.lock().unwrap().clone()
        }
    }

    impl Volume for FakeVolume {
        fn disk(&self, dir: &Path) -> io::Result<Disk> {
            assert_eq!(dir, self.root);
            let total = self.total.load(Ordering::Relaxed);
            let used = self.used() + self.other.load(Ordering::Relaxed);
            Ok(Disk {
                total,
                free: total.saturating_sub(used),
            })
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.synced.lock().unwrap().push(dir.to_path_buf());
            sync_dir(dir)
        }
    }

    /// A segment the bench wrote.
    struct Written {
        sequence: u64,
        rel: PathBuf,
        /// When it really ended, in time since the bench began (not any clock).
        true_end: Duration,
    }

    /// The recorder's side of a store, by hand: segments of chosen media durations,
    /// created through `Storage::create` under names from `name_for`, over a fake clock and
    /// a fake disk; retention passes on the real directory.
    struct Bench {
        _dir: TempDir,
        root: PathBuf,
        settings: RecordingConfig,
        volume: Arc<FakeVolume>,
        clock: FakeClock,
        store: PathStore,
        /// Time really passed since the bench began.
        truth: Duration,
        written: Vec<Written>,
        new_run: bool,
    }

    impl Bench {
        fn new(tag: &str, settings: RecordingConfig, clock: FakeClock) -> Bench {
            let dir = TempDir::new(tag);
            let root = dir.0.join("recordings");
            std::fs::create_dir_all(&root).unwrap();
            let volume = Arc::new(FakeVolume {
                root: root.clone(),
                total: AtomicU64::new(1 << 30),
                other: AtomicU64::new(0),
                synced: Mutex::new(Vec::new()),
            });
            let store = PathStore::open_with(&root, "cam", &settings, volume.clone()).unwrap();
            Bench {
                _dir: dir,
                root,
                settings,
                volume,
                clock,
                store,
                truth: Duration::ZERO,
                written: Vec::new(),
                new_run: true,
            }
        }

        /// Retention's defaults but no free-space floor (tests of the floor set one).
        fn settings() -> RecordingConfig {
            RecordingConfig {
                min_free: Some(Amount::Bytes(0)),
                ..RecordingConfig::default()
            }
        }

        /// Writes a segment lasting `len` (as the recorder would, over `len` of time) and
        /// leaves it the one being written; returns its file.
        fn start(&mut self, len: Duration) -> PathBuf {
            let rel = self
                .store
                .name_for(self.clock.wall(), self.clock.synced(), self.new_run);
            self.new_run = false;
            let mut f = self.store.create(&rel).unwrap();
            f.write_all(&segment_file(len)).unwrap();
            f.sync_data().unwrap();
            self.run(len);
            let sequence = self
                .store
                .template
                .parse_name("cam", &rel)
                .unwrap()
                .sequence;
            self.written.push(Written {
                sequence,
                rel: rel.clone(),
                true_end: self.truth,
            });
            rel
        }

        /// A new store on the same directory (vigint restarted): what it knew is lost.
        fn reopen(&mut self) {
            self.store =
                PathStore::open_with(&self.root, "cam", &self.settings, self.volume.clone())
                    .unwrap();
            self.new_run = true;
        }

        /// Time passes on both clocks.
        fn run(&mut self, d: Duration) {
            self.clock.advance(d);
            self.truth += d;
        }

        /// Recording stops: nothing is being written; the next segment starts a run.
        fn stop(&mut self) {
            // As the recorder says it: the segment being written is closed.
            if let Some(last) = self.written.last() {
                self.store.closed(&PathBuf::from("nothing-of-ours.mp4"));
                self.store.closed(&last.rel);
            }
            self.new_run = true;
        }

        /// `n` segments of `len`, a retention pass after each; checks every pass with
        /// `check`.
        fn record(&mut self, n: usize, len: Duration, check: impl Fn(&Bench)) {
            for _ in 0..n {
                self.start(len);
                self.store.retention_pass(&self.clock);
                check(self);
            }
        }

        /// Sequences of the written files still on disk (looked at directly).
        fn on_disk(&self) -> Vec<u64> {
            self.written
                .iter()
                .filter(|w| self.root.join(&w.rel).exists())
                .map(|w| w.sequence)
                .collect()
        }

        /// Sequences the age rule must keep now: those that really ended `delete_after`
        /// ago or less.
        fn within_age(&self) -> Vec<u64> {
            let limit = self.settings.delete_after.0;
            self.written
                .iter()
                .filter(|w| self.truth - w.true_end <= limit)
                .map(|w| w.sequence)
                .collect()
        }

        fn size_of(&self, sequence: u64) -> u64 {
            let w = self
                .written
                .iter()
                .find(|w| w.sequence == sequence)
                .unwrap();
            std::fs::metadata(self.root.join(&w.rel)).unwrap().len()
        }

        fn cam_dir(&self) -> PathBuf {
            self.root.join("cam")
        }
    }

    /// The bytes of a segment lasting `len`.
    fn segment_file(len: Duration) -> Vec<u8> {
        let ticks = len.as_nanos() * crate::media::CLOCK_RATE as u128 / 1_000_000_000;
        segment_lasting(ticks as u64, PAYLOAD)
    }

    /// Every retention pass of a test that leaves room for five segments.
    fn newest_five(b: &Bench) {
        let newest = b.written.len() as u64;
        assert_eq!(b.on_disk(), range(newest.saturating_sub(4).max(1), newest));
    }

    /// What the age rule keeps is exactly what is within `delete_after`, by true time.
    fn exact_age(b: &Bench) {
        assert_eq!(b.on_disk(), b.within_age(), "at {:?}", b.truth);
    }

    fn range(a: u64, b: u64) -> Vec<u64> {
        (a..=b).collect()
    }

    #[test]
    fn age_limit_deletes_exactly_the_expired_segments_oldest_first_and_syncs() {
        let mut b = Bench::new("age", Bench::settings(), FakeClock::new(t0(), true));
        b.record(25, HOUR, exact_age);
        assert_eq!(b.on_disk(), range(1, 25), "seg 1 is exactly 24 h old: kept");
        assert!(
            b.volume.synced().is_empty(),
            "nothing deleted, nothing synced"
        );
        b.record(1, HOUR, exact_age);
        assert_eq!(b.on_disk(), range(2, 26));
        assert_eq!(b.volume.synced(), vec![b.cam_dir()]);
        b.record(4, HOUR, exact_age);
        assert_eq!(b.on_disk(), range(6, 30));
        // Not recording: the boot clock ages them; several expire in one pass.
        b.stop();
        b.run(3 * HOUR + MIN);
        assert_eq!(b.store.retention_pass(&b.clock), 4);
        exact_age(&b);
        assert_eq!(b.on_disk(), range(10, 30));
        let mut listed: Vec<u64> = b.store.segments().iter().map(|s| s.name.sequence).collect();
        listed.sort();
        assert_eq!(listed, b.on_disk());
    }

    #[test]
    fn byte_limit_deletes_oldest_until_under() {
        let size = segment_file(HOUR).len() as u64;
        // Room for 5 whole segments, the one being written included.
        let max = 5 * size + size / 2;
        let settings = RecordingConfig {
            max_bytes: Some(Bytes(max)),
            delete_after: Seconds(Duration::ZERO),
            ..Bench::settings()
        };
        let mut b = Bench::new("bytes", settings, FakeClock::new(t0(), true));
        b.record(9, HOUR, newest_five);
        assert_eq!(b.on_disk(), range(5, 9));
        assert_eq!(b.store.summary().bytes, 5 * size);
    }

    #[test]
    fn free_space_floor_deletes_oldest_until_above() {
        let size = segment_file(HOUR).len() as u64;
        let floor = 4 * size + size / 2;
        let settings = RecordingConfig {
            min_free: Some(Amount::Bytes(floor)),
            delete_after: Seconds(Duration::ZERO),
            ..Bench::settings()
        };
        let mut b = Bench::new("floor", settings, FakeClock::new(t0(), true));
        // 20 segments' worth of disk, 10 used by something else: room for 5 segments.
        b.volume.total.store(20 * size, Ordering::Relaxed);
        b.volume.other.store(10 * size, Ordering::Relaxed);
        b.record(8, HOUR, |b| {
            newest_five(b);
            let disk = b.volume.disk(&b.root).unwrap();
            assert!(disk.free >= floor, "{disk:?}");
        });
        assert_eq!(b.on_disk(), range(4, 8));
        assert_eq!(b.store.free_bytes(), Some(5 * size));
    }

    #[test]
    fn the_recorders_make_room_loop_ends_and_spares_the_segment_being_written() {
        let mut settings = Bench::settings();
        settings.delete_after = Seconds(Duration::ZERO);
        let mut b = Bench::new("room", settings, FakeClock::new(t0(), true));
        b.record(5, HOUR, |_| {});
        let size = b.size_of(1);
        // Free space two segments short of the resume margin: three must go (has_room
        // wants more than the margin).
        let total = 1u64 << 30;
        let used = b.volume.used();
        b.volume.other.store(
            total - used - resume_margin(total) + 2 * size,
            Ordering::Relaxed,
        );
        assert!(!b.store.has_room());
        let writing = b.written[4].rel.clone();
        let mut rounds = 0;
        while !b.store.has_room() {
            assert!(b.store.make_room(&writing), "round {rounds}");
            rounds += 1;
        }
        assert_eq!(rounds, 3);
        assert_eq!(b.on_disk(), range(4, 5));
        // Full again: the rest goes, then nothing is left to free but the one being written.
        b.volume.other.store(total, Ordering::Relaxed);
        assert!(b.store.make_room(&writing));
        assert!(!b.store.make_room(&writing));
        assert_eq!(b.on_disk(), vec![5]);
    }

    #[test]
    fn the_segment_being_written_is_never_deleted() {
        let mut settings = Bench::settings();
        settings.max_bytes = Some(Bytes(10));
        settings.min_free = Some(Amount::Bytes(u64::MAX));
        settings.delete_after = Seconds(MIN);
        let mut b = Bench::new("writing", settings, FakeClock::new(t0(), true));
        b.volume.other.store(1 << 30, Ordering::Relaxed);
        b.record(3, HOUR, |b| {
            assert_eq!(b.on_disk(), vec![b.written.len() as u64]);
        });
        b.run(DAY);
        assert_eq!(b.store.retention_pass(&b.clock), 0);
        assert_eq!(b.on_disk(), vec![3]);
        assert!(!b.store.has_room());
        // Once it is no longer being written, it is a segment like the others.
        b.stop();
        assert_eq!(b.store.retention_pass(&b.clock), 1);
        assert!(b.on_disk().is_empty());
    }

    #[test]
    fn a_year_step_either_way_deletes_nothing_early_and_deletion_stays_on_time() {
        for step in [true, false] {
            let clock = FakeClock::new(t0(), true);
            let mut b = Bench::new("step", Bench::settings(), clock);
            let step_clock = |b: &Bench| match step {
                true => b.clock.step_forward(YEAR),
                false => b.clock.step_back(YEAR),
            };
            // While recording.
            b.record(3, HOUR, exact_age);
            step_clock(&b);
            b.record(30, HOUR, exact_age);
            assert_eq!(b.on_disk(), range(9, 33), "step {step}");
            // While not recording: the boot clock ages them.
            b.stop();
            step_clock(&b);
            b.run(HOUR);
            assert_eq!(b.store.retention_pass(&b.clock), 1, "step {step}");
            exact_age(&b);
            b.run(20 * HOUR);
            b.store.retention_pass(&b.clock);
            exact_age(&b);
            assert_eq!(b.on_disk(), range(30, 33), "step {step}");
        }
    }

    #[test]
    fn segments_recorded_before_clock_sync_age_by_media_and_boot_time() {
        // No RTC: the board believes it is 1970.
        let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(7), false);
        let mut b = Bench::new("unsynced", Bench::settings(), clock);
        b.record(3, 10 * MIN, exact_age);
        for s in b.store.segments() {
            let name = s.path.to_str().unwrap();
            assert!(name.starts_with("cam/1970-01-01_00-"), "{name}");
            assert!(name.ends_with("-unsynced.mp4"), "{name}");
            assert!(!s.name.synced, "{name}");
        }
        let summary = b.store.summary();
        let oldest = summary.oldest.unwrap();
        assert!(!oldest.clock_trusted);
        assert_eq!(oldest.start, Some(UNIX_EPOCH + Duration::from_secs(7)));
        assert!(!summary.newest.unwrap().clock_trusted);
        // Never synchronised: a 1970 name is not an age; media time gives the exact one.
        b.record(25, HOUR, exact_age);
        assert_eq!(b.on_disk(), range(4, 28));
        // NTP arrives: the old names stay untrusted, nothing changes its age.
        b.clock.set_wall(t0());
        b.clock.set_synced(true);
        b.record(1, HOUR, exact_age);
        let segments = b.store.segments();
        let trusted = |seq: u64| {
            segments
                .iter()
                .find(|s| s.name.sequence == seq)
                .unwrap()
                .name
                .synced
        };
        assert!(!trusted(28) && trusted(29));
        assert!(b.store.summary().newest.unwrap().clock_trusted);
        assert!(!b.store.summary().oldest.unwrap().clock_trusted);
    }

    #[test]
    fn restart_after_a_power_off_with_an_unsynced_clock() {
        let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(7), false);
        let mut b = Bench::new("restart", Bench::settings(), clock);
        b.record(3, HOUR, exact_age);
        // Power cut while writing seg 3: a torn fragment at its end.
        let last = b.root.join(&b.written[2].rel);
        let good_len = std::fs::metadata(&last).unwrap().len();
        let torn = segment_lasting(90_000, PAYLOAD);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        io::Write::write_all(&mut f, &torn[torn.len() - 100..]).unwrap();
        drop(f);
        // Off for 2 h; the board boots with the time it shut down (a fake-hwclock), unsynced.
        let shutdown = b.clock.wall();
        b.truth += 2 * HOUR;
        b.clock.set_boot_time(Duration::from_secs(8));
        b.clock.set_wall(shutdown);
        b.reopen();
        assert_eq!(
            std::fs::metadata(&last).unwrap().len(),
            good_len,
            "repaired"
        );
        let summary = b.store.summary();
        assert_eq!(summary.segments, 3);
        assert_eq!(summary.bytes, 3 * b.size_of(1));
        assert!(!summary.oldest.unwrap().clock_trusted);

        assert_eq!(b.store.retention_pass(&b.clock), 0);
        // The 2 h off cannot be known: deleted late by at most that, never early.
        let never_early = |b: &Bench| {
            let kept = b.within_age();
            let on_disk = b.on_disk();
            assert!(kept.iter().all(|s| on_disk.contains(s)), "at {:?}", b.truth);
        };
        b.record(22, HOUR, never_early);
        assert_eq!(b.written[3].sequence, 4, "the sequence continues");
        assert!(b.written[3]
            .rel
            .to_str()
            .unwrap()
            .ends_with("-start-unsynced.mp4"));
        assert_eq!(b.on_disk(), range(1, 25), "seg 1: 24 h proven, 26 h true");
        b.record(1, HOUR, never_early);
        assert_eq!(b.on_disk(), range(2, 26), "25 h proven: not kept forever");
    }

    #[test]
    fn summary_of_a_prefixed_template() {
        let settings = RecordingConfig {
            record_path: "rec/%path/%Y/%m/%d/%H%M%S%f.mp4".into(),
            ..Bench::settings()
        };
        let clock = FakeClock::new(UNIX_EPOCH + Duration::from_secs(7), false);
        let mut b = Bench::new("summary", settings, clock);
        // The free space is read at open and at every pass (status reads it from here).
        let free_at_open = b.volume.disk(&b.root).ok().map(|d| d.free);
        assert!(free_at_open.is_some());
        assert_eq!(
            b.store.summary(),
            StoreSummary {
                free_bytes: free_at_open,
                ..StoreSummary::default()
            }
        );
        assert_eq!(b.store.scan_dir(), Path::new("rec/cam"));
        b.start(HOUR);
        b.clock.set_wall(t0());
        b.clock.set_synced(true);
        b.start(HOUR);
        b.store.retention_pass(&b.clock);
        let want = StoreSummary {
            segments: 2,
            bytes: b.size_of(1) + b.size_of(2),
            oldest: Some(SegmentBrief {
                file: "1970/01/01/000007000000_000000001-start-unsynced.mp4".into(),
                start: Some(UNIX_EPOCH + Duration::from_secs(7)),
                clock_trusted: false,
            }),
            newest: Some(SegmentBrief {
                file: "2024/05/01/000000000000_000000002.mp4".into(),
                start: Some(t0()),
                clock_trusted: true,
            }),
            free_bytes: b.volume.disk(&b.root).ok().map(|d| d.free),
        };
        assert_eq!(b.store.summary(), want);
        assert!(b
            .store
            .names_a_segment(Path::new("2024/05/01/000000000000_000000002.mp4")));
        assert!(!b.store.names_a_segment(Path::new("2024/05/01/notes.mp4")));
        // A new store finds the same at open, without a pass.
        b.reopen();
        assert_eq!(b.store.summary(), want);
        // A deletion shows at the next pass.
        std::fs::remove_file(b.root.join(&b.written[0].rel)).unwrap();
        b.store.retention_pass(&b.clock);
        let summary = b.store.summary();
        assert_eq!(summary.segments, 1);
        assert_eq!(summary.oldest, want.newest);
    }

    #[test]
    fn api_names_of_a_prefixed_template_list_and_download() {
        let settings = RecordingConfig {
            record_path: "rec/%path/%Y/%m/%d/%H%M%S%f.mp4".into(),
            ..Bench::settings()
        };
        let mut b = Bench::new("api", settings, FakeClock::new(t0(), true));
        b.record(2, HOUR, |_| {});
        // As the recordings API lists them: relative to the path's directory.
        let dir = b.store.scan_dir();
        let files: Vec<PathBuf> = b
            .store
            .segments()
            .iter()
            .map(|s| s.path.strip_prefix(&dir).unwrap().to_path_buf())
            .collect();
        assert_eq!(files.len(), 2);
        for file in &files {
            assert!(file.starts_with("2024/05/01"), "{}", file.display());
            assert!(b.store.names_a_segment(file));
            let name = file.to_str().unwrap();
            let (mut f, len) =
                crate::record::library::open_segment(&b.root, b.store.template(), "cam", name)
                    .unwrap();
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut f, &mut bytes).unwrap();
            assert_eq!(bytes, std::fs::read(b.root.join(&dir).join(file)).unwrap());
            assert_eq!(len, bytes.len() as u64);
            let escape = format!("../../rec/cam/{name}");
            assert!(!b.store.names_a_segment(Path::new(&escape)));
            assert!(crate::record::library::open_segment(
                &b.root,
                b.store.template(),
                "cam",
                &escape
            )
            .is_err());
        }
    }
}
