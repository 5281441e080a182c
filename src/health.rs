//! `Health`: what the appliance's state means to a person standing next to it, in the few
//! conditions the status LED shows (and the systemd watchdog may read later).
//!
//! Owns: the conditions (`Health`) and how they are read from a `status::Status` snapshot
//! (`HealthTracker`, which remembers write-error counts so that an old error does not light
//! the storage warning forever). Pure: no I/O, time is passed in. Does not own: the snapshot
//! (that is `status`), how a condition looks on an LED (that is `led`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::status::{PathHealth, RecorderState, Status};

/// A recorder's write error lights the storage warning for this long after it happened;
/// a pause (storage full) lights it for as long as it lasts.
pub const STORAGE_ERROR_HOLD: Duration = Duration::from_secs(60);

/// The conditions that hold at one instant; several can hold at once (the LED shows the
/// most severe, see `led::pattern`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The appliance is shutting down.
    pub stopping: bool,
    /// Some path has not yet served a frame nor reported a failure.
    pub starting: bool,
    /// Some path does not deliver frames (camera lost, failed, stalled).
    pub camera_lost: bool,
    /// Some recorder is paused (storage full) or failed a write recently.
    pub storage_problem: bool,
    /// Some path is writing a recording.
    pub recording: bool,
    /// The wall clock is not synchronised yet (recordings are named `-unsynced`).
    pub clock_unsynchronized: bool,
}

/// Reads `Health` from successive snapshots; keeps what one snapshot cannot tell (whether
/// a cumulative write-error count grew recently).
#[derive(Debug, Default)]
pub struct HealthTracker {
    /// Per path: the last write-error count seen and when it last grew.
    write_errors: BTreeMap<String, (u64, Option<Instant>)>,
}

impl HealthTracker {
    /// The health shown by `status` at `now`; `stopping` once shutdown has begun.
    pub fn observe(&mut self, status: &Status, now: Instant, stopping: bool) -> Health {
        let mut h = Health {
            stopping,
            // No path at all: nothing has served yet.
            starting: status.paths.is_empty(),
            clock_unsynchronized: !status.clock.synchronized,
            ..Health::default()
        };
        for p in &status.paths {
            // A streaming path is judged once the monitor has measured its rate (its first
            // samples, ~1 s): until then it is still starting as far as a person can tell.
            match p.health() {
                PathHealth::Starting => h.starting = true,
                PathHealth::Serving | PathHealth::Stalled(_) if p.fps.is_none() => {
                    h.starting = true
                }
                // A path waiting for its publisher is at rest, not in trouble.
                PathHealth::Serving | PathHealth::Idle(_) => {}
                PathHealth::Stalled(_) | PathHealth::Reported(_) => h.camera_lost = true,
            }
            let Some(rec) = &p.recording else {
                self.write_errors.remove(&p.name);
                continue;
            };
            if rec.state == RecorderState::Recording {
                h.recording = true;
            }
            if matches!(rec.state, RecorderState::Paused(_)) {
                h.storage_problem = true;
            }
            // A count first seen non-zero counts as new: the tracker starts with the process.
            let entry = self.write_errors.entry(p.name.clone()).or_insert((0, None));
            if rec.write_errors > entry.0 {
                entry.1 = Some(now);
            }
            // A new recorder (config change) starts its count from zero again.
            entry.0 = rec.write_errors;
            if entry
                .1
                .is_some_and(|t| now.saturating_duration_since(t) < STORAGE_ERROR_HOLD)
            {
                h.storage_problem = true;
            }
        }
        self.write_errors
            .retain(|name, _| status.paths.iter().any(|p| &p.name == name));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::{test_path as path, test_status as status};
    use crate::status::RecorderSample;

    fn recording(state: &str, write_errors: u64) -> Option<RecorderSample> {
        Some(RecorderSample {
            state: state.into(),
            write_errors,
            ..Default::default()
        })
    }

    #[test]
    fn each_condition_is_read_from_the_snapshot() {
        let now = Instant::now();
        let mut t = HealthTracker::default();
        let mut streaming = path("cam", "streaming", None);
        streaming.fps = Some(15.0);
        let healthy = status(vec![streaming.clone()], true);
        assert_eq!(t.observe(&healthy, now, false), Health::default());
        assert!(t.observe(&healthy, now, true).stopping);

        let starting = status(
            vec![path("a", "starting", Some("starting")), streaming.clone()],
            true,
        );
        let h = t.observe(&starting, now, false);
        assert!(h.starting && !h.camera_lost, "{h:?}");
        // Streaming but not measured yet: the stall it reports is no stall.
        let unmeasured = path("cam", "streaming", Some("no frames for more than 3 s"));
        let h = t.observe(&status(vec![unmeasured], true), now, false);
        assert!(h.starting && !h.camera_lost, "{h:?}");
        assert!(t.observe(&status(vec![], true), now, false).starting);

        for (state, problem) in [
            ("camera lost: unplugged", "camera lost: unplugged"),
            ("failed: no encoder", "failed: no encoder"),
            ("streaming", "no frames for more than 3 s"),
        ] {
            let mut p = path("cam", state, Some(problem));
            p.fps = Some(0.0);
            let s = status(vec![p], true);
            let h = t.observe(&s, now, false);
            assert!(h.camera_lost && !h.starting, "{state}: {h:?}");
        }

        let unsynced = status(vec![streaming.clone()], false);
        assert!(t.observe(&unsynced, now, false).clock_unsynchronized);

        let mut rec = streaming.clone();
        rec.recording = recording("recording", 0);
        let h = t.observe(&status(vec![rec.clone()], true), now, false);
        assert!(h.recording && !h.storage_problem, "{h:?}");
        rec.recording = recording("waiting for a key frame", 0);
        assert!(
            !t.observe(&status(vec![rec.clone()], true), now, false)
                .recording
        );
        rec.recording = recording("paused: storage full (no room left)", 0);
        let h = t.observe(&status(vec![rec], true), now, false);
        assert!(h.storage_problem && !h.recording, "{h:?}");
    }

    #[test]
    fn a_write_error_warns_for_a_while_then_no_more() {
        let t0 = Instant::now();
        let mut t = HealthTracker::default();
        let with_errors = |n| {
            let mut p = path("cam", "streaming", None);
            p.recording = recording("recording", n);
            status(vec![p], true)
        };
        assert!(!t.observe(&with_errors(0), t0, false).storage_problem);
        let t1 = t0 + Duration::from_secs(5);
        let h = t.observe(&with_errors(1), t1, false);
        assert!(h.storage_problem && h.recording, "{h:?}");
        let later = t1 + STORAGE_ERROR_HOLD - Duration::from_millis(1);
        assert!(t.observe(&with_errors(1), later, false).storage_problem);
        let gone = t1 + STORAGE_ERROR_HOLD;
        assert!(!t.observe(&with_errors(1), gone, false).storage_problem);
        // Another error warns again.
        assert!(t.observe(&with_errors(2), gone, false).storage_problem);
        // A restarted recorder's count starts from zero: no warning, and its next error counts.
        let far = gone + STORAGE_ERROR_HOLD;
        assert!(!t.observe(&with_errors(0), far, false).storage_problem);
        assert!(t.observe(&with_errors(1), far, false).storage_problem);
    }

    #[test]
    fn errors_already_counted_when_first_seen_are_recent() {
        let mut t = HealthTracker::default();
        let mut p = path("cam", "streaming", None);
        p.recording = recording("recording", 3);
        assert!(
            t.observe(&status(vec![p], true), Instant::now(), false)
                .storage_problem
        );
    }
}
