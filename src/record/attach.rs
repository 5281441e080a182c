//! Attaching a recorder to a path: its store and writer, and what status reads of them.
//!
//! Owns: `start` (open the path's store under the recordings root, start the recorder on the
//! path's hub with the settings from the config) and `RecorderView`, the status probe of a
//! recording path (the recorder's counters, the store's summary and free space as of its
//! last retention pass: no file system I/O when status is read). Does not own: deciding
//! when a path records (the supervisor) or the recording itself (`recorder`, `store`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{FsyncInterval, RecordingConfig};
use crate::hub::{Demand, MediaPath};
use crate::record::recorder::{FsyncCadence, Recorder, RecorderSettings, RecorderStats};
use crate::record::retention::ClockWatch;
use crate::record::store::{PathStore, SegmentBrief, SystemClock};
use crate::status::{RecorderProbe, RecorderSample, StoredRecordings, StoredSegment};

/// A path's recorder and where it writes.
pub struct Recording {
    pub recorder: Recorder,
    pub store: Arc<PathStore>,
    /// A recording path wants its source all the time (an on-demand one never idles).
    _demand: Demand,
}

/// Starts recording `media` as path `name` into `data_dir/recordings` when `rec` says so.
/// A failure is logged and the path streams on without recording (video first).
pub fn start(
    name: &str,
    media: &Arc<MediaPath>,
    rec: &RecordingConfig,
    data_dir: &Path,
    runtime: &tokio::runtime::Handle,
) -> Option<Recording> {
    if !rec.record {
        return None;
    }
    let root = data_dir.join("recordings");
    let store = match PathStore::open(&root, name, rec) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log::error!("path {name}: cannot record: {e}");
            return None;
        }
    };
    let names = store.clone();
    let settings = RecorderSettings {
        path_name: name.to_string(),
        part_duration: rec.part_duration.0,
        segment_duration: rec.segment_duration.0,
        fsync: match rec.fsync_interval {
            FsyncInterval::EveryFragment => FsyncCadence::EveryFragment,
            FsyncInterval::Every(d) => FsyncCadence::Every(d),
        },
        name_for: Box::new(move |start, synced, run_start| {
            names.name_for(start, synced, run_start)
        }),
        clock_synced: Arc::new(crate::status::clock_synchronized),
        clock_stepped: {
            let mut watch = ClockWatch::default();
            Box::new(move || watch.stepped(&SystemClock, Duration::from_secs(1)))
        },
    };
    match Recorder::start(media.clone(), settings, store.clone(), runtime) {
        Ok(recorder) => {
            log::info!("path {name}: recording into {}", root.display());
            Some(Recording {
                recorder,
                store,
                _demand: media.want(),
            })
        }
        Err(e) => {
            log::error!("path {name}: cannot start recording: {e}");
            None
        }
    }
}

/// What status reads of a path's recording: the recorder's counters and its store's disk.
pub struct RecorderView {
    stats: Arc<RecorderStats>,
    store: Arc<PathStore>,
}

impl RecorderView {
    pub fn of(r: &Recording) -> Arc<dyn RecorderProbe> {
        Arc::new(RecorderView {
            stats: r.recorder.stats().clone(),
            store: r.store.clone(),
        })
    }
}

impl RecorderProbe for RecorderView {
    fn sample(&self) -> RecorderSample {
        let mut s = self.stats.sample();
        let summary = self.store.summary();
        s.free_bytes = summary.free_bytes;
        let brief = |b: SegmentBrief| StoredSegment {
            file: b.file.to_string_lossy().into_owned(),
            start: b.start.map(crate::logger::utc_timestamp),
            clock_trusted: b.clock_trusted,
            start_unix_s: b
                .start
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
        };
        s.stored = StoredRecordings {
            segments: summary.segments as u64,
            bytes: summary.bytes,
            oldest: summary.oldest.map(brief),
            newest: summary.newest.map(brief),
        };
        s
    }
}
