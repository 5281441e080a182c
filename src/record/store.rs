//! One path's recordings on disk: finding them, repairing what a crash left, naming new
//! segments, and applying retention.
//!
//! Owns: the scan of a path's directory (names through `naming`, durations through
//! `repair::summarize`, cached by file length), the repair pass at start (a torn tail is cut
//! back to the last complete fragment; a file with nothing playable is removed), the next
//! sequence number, and the retention pass (`retention::plan` with the real clocks and
//! `statvfs`; deletions followed by an fsync of the directory). Implements the recorder's
//! `Storage`. Does not own: what a segment contains (`recorder`, `fmp4`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::RecordingConfig;
use crate::record::naming::Template;
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

/// `statvfs` of the filesystem holding `dir`.
pub fn disk_of(dir: &Path) -> io::Result<Disk> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs fills one struct from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
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

/// A path's recordings directory.
pub struct PathStore {
    root: PathBuf,
    path_name: String,
    template: Template,
    settings: RecordingConfig,
    next_sequence: AtomicU64,
    scan: Mutex<Scan>,
    /// The segment being written (the recorder's), never deleted.
    writing: Mutex<Option<PathBuf>>,
    disk: DiskStorage,
}

impl PathStore {
    /// Opens `root/<path's directory>`, repairs what a crash left and finds the next
    /// sequence number.
    pub fn open(
        root: &Path,
        path_name: &str,
        settings: &RecordingConfig,
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
        };
        store.repair_all();
        let found = store.files().into_iter().map(|(_, name)| name.sequence);
        store.next_sequence.store(
            crate::record::naming::next_sequence(found),
            Ordering::Relaxed,
        );
        Ok(store)
    }

    /// The files of this path: relative path and what the name says.
    fn files(&self) -> Vec<(PathBuf, crate::record::naming::SegmentName)> {
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
    /// durations, so the first retention pass does not read every file again. Returns the
    /// sequence numbers found.
    fn repair_all(&self) -> Vec<u64> {
        let mut sequences = Vec::new();
        let mut measured = HashMap::new();
        for (rel, name) in self.files() {
            sequences.push(name.sequence);
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
                        let _ = sync_dir(dir);
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
        sequences
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

    /// Free space of the recordings filesystem.
    pub fn free_bytes(&self) -> Option<u64> {
        disk_of(&self.root).ok().map(|d| d.free)
    }

    pub fn set_writing(&self, rel: Option<PathBuf>) {
        *self.writing.lock().unwrap_or_else(|e| e.into_inner()) = rel;
    }

    fn writing(&self) -> Option<PathBuf> {
        self.writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies retention once; returns how many segments were deleted.
    pub fn retention_pass(&self, clock: &dyn Clock) -> usize {
        let disk = match disk_of(&self.root) {
            Ok(d) => d,
            Err(e) => {
                log::warn!(
                    "recordings: cannot read free space of {}: {e}",
                    self.root.display()
                );
                return 0;
            }
        };
        let segments = self.segments();
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
        self.delete(
            &plan
                .iter()
                .map(|(p, r)| (p.clone(), format!("{r:?}")))
                .collect::<Vec<_>>(),
        )
    }

    fn delete(&self, victims: &[(PathBuf, String)]) -> usize {
        let mut deleted = 0;
        let mut dirs = Vec::new();
        for (rel, why) in victims {
            let path = self.root.join(rel);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    deleted += 1;
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
            let _ = sync_dir(&d);
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

    fn make_room(&self, writing: &Path) -> bool {
        // Retention first (it may already have work); then the oldest segment regardless.
        if self.retention_pass(&SystemClock) > 0 {
            return true;
        }
        match self.oldest(writing) {
            Some(rel) => self.delete(&[(rel, "disk full".to_string())]) > 0,
            None => false,
        }
    }

    fn has_room(&self) -> bool {
        match disk_of(&self.root) {
            Ok(disk) => disk.free > self.policy(disk).min_free.max(resume_margin(disk.total)),
            Err(_) => false,
        }
    }
}
