//! Retention: which segments of one path to delete now, and why. Pure: the caller lists the
//! files, measures them, reads the clocks through [`Clock`] and deletes what [`plan`] returns.
//!
//! Owns: the age rule, the byte limit, the free-space floor. Does not own: file names (that
//! is `naming`), scanning, measuring or deleting files, the real clock.
//!
//! # Order
//!
//! Segments are ordered by their sequence number only, never by a time. Every rule deletes
//! oldest first, and never the segment being written.
//!
//! # The age rule
//!
//! A segment's age is the time since it *ended*; it is expired when the age exceeds
//! `delete_after` (zero disables the rule). No single clock can be trusted with that age, so
//! it is built from lower bounds, each from the witness nearest to the time it measures:
//!
//! 1. **Media time** (clock-free): every newer segment was recorded after this one ended, so
//!    the sum of their media durations (the one being written included, as far as written)
//!    bounds its age from below. While recording runs, this alone is the exact age.
//! 2. **Boot time** (`CLOCK_BOOTTIME`: monotonic, counts suspend): [`AgeState`] remembers
//!    every age it gave and lets it grow with the boot clock. So an age never shrinks while
//!    the process runs, and all time this process watched (recording paused, recording off)
//!    is measured by the boot clock alone.
//! 3. **Wall time, only for the time nobody watched**: a power-off or a stopped process,
//!    i.e. the gap after a run whose end happened before this process's first plan. A run
//!    is a segment named `-start` and the segments continuing it (gap zero between them by
//!    construction, whatever the wall clock did). Each run is placed on the wall clock by its
//!    names written with a synchronised clock, its media durations in between; the run being
//!    written is also placed by "it ends now". The gap before a run is its earliest possible
//!    start minus the previous run's latest possible end (names' precision included; a step
//!    inside a run makes its names disagree, and this choice credits nothing for it), and
//!    counts only when positive. If nothing is being written, the time from the last run's
//!    end to now is credited the same way. "Now" is the first synchronised wall reading of
//!    this process, carried forward by the boot clock: later steps change nothing.
//!
//! What follows:
//! - (a) segments named before sync (1970, a stale fake-hwclock) are never aged by their own
//!   names: only by media time, boot time, and synced names or "now" elsewhere in their run
//!   (NTP arriving mid-run places the run);
//! - (b) a +1 year step while running adds nothing: not to media or boot time, not inside a
//!   run, not to the pinned "now", not to a gap this process watched; (c) nor does -1 year
//!   take anything away: media and boot time keep ageing segments, deletion stays on time;
//! - (d) after a week switched off, the first synchronised reading (at boot, or when NTP
//!   arrives) places the new run, or "now" when not recording, a week after the old run's
//!   end: the old segments go at once;
//! - (e) after a restart, ages are rebuilt from names, sizes and durations. What cannot be
//!   proven is not credited, so errors only ever delete late: by at most the time nobody
//!   could measure (a power-off that no synchronised clock bracketed), and by no more than
//!   `delete_after` of recording, or of running without a restart, after that.
//!
//! The limit: across a power-off the wall clock is the only witness of the time that passed.
//! A clock that is *synchronised* at boot yet wrong by +1 year (a bad NTP server, a date set
//! by hand) cannot be told from a device that really was off for a year, and is believed.
//! Steps while vigint runs are always ignored; one that happens while a segment is being
//! written is still ignored after a restart, because the writer cuts the segment at the next
//! key frame when [`ClockWatch`] reports it (the step then lies inside a run, between two
//! names; `recorder` checks twice a second).
//!
//! # Size rules
//!
//! After the age rule: while the path's total (the segment being written included) is over
//! `max_bytes`, delete the oldest; then while `free` plus what was deleted is below
//! `min_free`, delete the oldest (a deleted file is assumed to free its size). When several
//! paths share a filesystem, the caller applies one path's plan and updates `Disk` before
//! planning the next, or they would all free the same shortfall.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::naming::SegmentName;

/// One segment file of a path, as found and measured by the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// What the name says: sequence, start, synced, run start.
    pub name: SegmentName,
    /// Media time, measured from the file (for the segment being written: so far).
    pub duration: Duration,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Zero disables deletion by age.
    pub delete_after: Duration,
    pub max_bytes: Option<u64>,
    pub min_free: u64,
}

/// The filesystem holding the recordings, as `statvfs` sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub free: u64,
}

/// The default `min_free`: 10% of the filesystem or 500 MB, whichever is smaller.
pub fn default_min_free(total: u64) -> u64 {
    (total / 10).min(500_000_000)
}

/// The clocks retention reads.
pub trait Clock {
    /// The wall clock (`CLOCK_REALTIME`); may be wrong and may step.
    fn wall(&self) -> SystemTime;
    /// The kernel believes the wall clock synchronised (`adjtimex` without `STA_UNSYNC`).
    fn synced(&self) -> bool;
    /// `CLOCK_BOOTTIME`: monotonic, counts suspend, starts near 0 at boot.
    fn boot_time(&self) -> Duration;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age,
    Bytes,
    FreeSpace,
}

/// What retention remembers between plans of one path, in memory only: it makes ages grow
/// with the boot clock and pins the wall clock. Losing it (a restart) loses nothing that
/// the files cannot rebuild; it only forgets what was proven by watching.
#[derive(Debug, Clone, Default)]
pub struct AgeState {
    /// (wall, boot) in ns at the first plan that saw a synchronised clock.
    pinned: Option<(i128, i128)>,
    /// Per sequence number: when the segment ended, on the boot clock (ns, may be < 0).
    ended: BTreeMap<u64, i128>,
    /// What the first plan of this process found: what ended before it was not watched.
    first_plan: Option<FirstPlan>,
}

#[derive(Debug, Clone, Copy)]
struct FirstPlan {
    newest: Option<u64>,
    writing: Option<u64>,
}

impl AgeState {
    pub fn new() -> AgeState {
        AgeState::default()
    }

    /// The age last judged for a segment, carried forward to `boot_time` (for the API).
    pub fn age(&self, sequence: u64, boot_time: Duration) -> Option<Duration> {
        let ended = *self.ended.get(&sequence)?;
        Some(from_ns(ns(boot_time) - ended))
    }
}

/// Which segments to delete now, oldest first, never `writing`.
pub fn plan(
    segments: &[Segment],
    writing: Option<&Path>,
    policy: &Policy,
    disk: Disk,
    clock: &dyn Clock,
    state: &mut AgeState,
) -> Vec<(PathBuf, Reason)> {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
    sorted.sort_by(|a, b| (a.name.sequence, &a.path).cmp(&(b.name.sequence, &b.path)));
    let writing_idx = writing.and_then(|w| sorted.iter().position(|s| s.path == w));
    let ages = judge_ages(&sorted, writing_idx, clock, state);

    let mut out = Vec::new();
    let mut gone = vec![false; sorted.len()];
    let deletable = |i: usize, gone: &[bool]| Some(i) != writing_idx && !gone[i];

    if !policy.delete_after.is_zero() {
        let limit = ns(policy.delete_after);
        for i in 0..sorted.len() {
            if deletable(i, &gone) && ages[i] > limit {
                gone[i] = true;
                out.push((sorted[i].path.clone(), Reason::Age));
            }
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = (0..sorted.len())
            .filter(|&i| !gone[i])
            .map(|i| sorted[i].bytes)
            .sum();
        for i in 0..sorted.len() {
            if total <= max {
                break;
            }
            if deletable(i, &gone) {
                gone[i] = true;
                total -= sorted[i].bytes;
                out.push((sorted[i].path.clone(), Reason::Bytes));
            }
        }
    }
    let mut free = disk.free.saturating_add(
        (0..sorted.len())
            .filter(|&i| gone[i])
            .map(|i| sorted[i].bytes)
            .sum(),
    );
    for i in 0..sorted.len() {
        if free >= policy.min_free {
            break;
        }
        if deletable(i, &gone) {
            gone[i] = true;
            free = free.saturating_add(sorted[i].bytes);
            out.push((sorted[i].path.clone(), Reason::FreeSpace));
        }
    }
    out
}

/// Ages in ns of `sorted` (by sequence), per the rule in the module doc; updates `state`.
fn judge_ages(
    sorted: &[&Segment],
    writing: Option<usize>,
    clock: &dyn Clock,
    state: &mut AgeState,
) -> Vec<i128> {
    let boot = ns(clock.boot_time());
    if state.pinned.is_none() && clock.synced() {
        state.pinned = Some((wall_ns(clock.wall()), boot));
    }
    let now_wall = state.pinned.map(|(w, b)| w + (boot - b));
    let first = *state.first_plan.get_or_insert_with(|| FirstPlan {
        newest: sorted.iter().map(|s| s.name.sequence).max(),
        writing: writing.map(|i| sorted[i].name.sequence),
    });
    // This process saw the segment's end happen (so the boot clock measured what followed).
    let watched_end = |seq: u64| first.newest.is_none_or(|m| seq > m) || first.writing == Some(seq);

    let n = sorted.len();
    if n == 0 {
        state.ended.clear();
        return Vec::new();
    }
    let d: Vec<i128> = sorted.iter().map(|s| ns(s.duration)).collect();

    // (1) Media time of the newer segments.
    let mut newer = vec![0i128; n];
    for k in (0..n - 1).rev() {
        newer[k] = newer[k + 1] + d[k + 1];
    }

    // (3) Runs, placed on the wall clock: the earliest start and the latest end their synced
    //    names allow (a step inside a run makes them disagree; this way it credits nothing).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (k, seg) in sorted.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if !seg.name.run_start => run.1 = k,
            _ => runs.push((k, k)),
        }
    }
    let last_run = runs.len() - 1;
    let placed: Vec<Option<(i128, i128)>> = runs
        .iter()
        .enumerate()
        .map(|(r, &(first, last))| {
            let len: i128 = d[first..=last].iter().sum();
            let mut place: Option<(i128, i128)> = None;
            let mut widen = |start_lo: i128, start_hi: i128| {
                let (lo, hi) = place.unwrap_or((start_lo, start_hi + len));
                place = Some((lo.min(start_lo), hi.max(start_hi + len)));
            };
            let mut offset = 0i128;
            for k in first..=last {
                let name = &sorted[k].name;
                if let (true, Some(start)) = (name.synced, name.start) {
                    let lo = wall_ns(start.earliest) - offset;
                    widen(lo, lo + ns(start.precision));
                }
                offset += d[k];
            }
            // (3) The run being written ends now.
            if let Some(w) = now_wall {
                if r == last_run && writing == Some(last) {
                    widen(w - len, w - len);
                }
            }
            place
        })
        .collect();

    // (3) Time since the last run ended, if nothing is being written and nobody watched it.
    let newest = sorted[n - 1].name.sequence;
    let tail = match (now_wall, placed[last_run]) {
        (Some(w), Some((_, end))) if writing != Some(n - 1) && !watched_end(newest) => {
            (w - end).max(0)
        }
        _ => 0,
    };

    let mut ages = vec![0i128; n];
    let mut credit = tail;
    for r in (0..runs.len()).rev() {
        let (first, last) = runs[r];
        for k in first..=last {
            ages[k] = newer[k] + credit;
        }
        if r == 0 {
            break;
        }
        // (3) The gap before run r, when it happened before this process watched.
        let before_last = sorted[runs[r - 1].1].name.sequence;
        if let (false, Some((start, _)), Some((_, end))) =
            (watched_end(before_last), placed[r], placed[r - 1])
        {
            credit += (start - end).max(0);
        }
    }

    // (2) Never younger than last judged, carried forward by the boot clock.
    let mut ended = BTreeMap::new();
    for (k, age) in ages.iter_mut().enumerate() {
        let seq = sorted[k].name.sequence;
        if let Some(e) = state.ended.get(&seq) {
            *age = (*age).max(boot - e);
        }
        ended.insert(seq, boot - *age);
    }
    state.ended = ended;
    ages
}

/// Tells a writer when the wall clock stepped or became synchronised, judged against the
/// boot clock. Cutting the segment then puts the step into the names (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct ClockWatch {
    last: Option<(i128, bool)>,
}

impl ClockWatch {
    /// True when, since the previous call, the clock became synchronised or the wall clock
    /// moved against the boot clock by more than `tolerance` (slewing never adds up to that:
    /// each call compares with the previous one).
    pub fn stepped(&mut self, clock: &dyn Clock, tolerance: Duration) -> bool {
        let offset = wall_ns(clock.wall()) - ns(clock.boot_time());
        let synced = clock.synced();
        let stepped = match self.last {
            Some((o, s)) => (offset - o).abs() > ns(tolerance) || (synced && !s),
            None => false,
        };
        self.last = Some((offset, synced));
        stepped
    }
}

/// A clock for tests and laptop runs: set, advance and step by hand.
#[derive(Debug)]
pub struct FakeClock {
    wall: Cell<SystemTime>,
    synced: Cell<bool>,
    boot: Cell<Duration>,
}

impl FakeClock {
    pub fn new(wall: SystemTime, synced: bool) -> FakeClock {
        FakeClock {
            wall: Cell::new(wall),
            synced: Cell::new(synced),
            boot: Cell::new(Duration::from_secs(5)),
        }
    }

    /// Time passes: both clocks move.
    pub fn advance(&self, d: Duration) {
        self.wall.set(self.wall.get() + d);
        self.boot.set(self.boot.get() + d);
    }

    /// The wall clock jumps (NTP, a person, a stale fake-hwclock); the boot clock does not.
    pub fn step_forward(&self, d: Duration) {
        self.wall.set(self.wall.get() + d);
    }

    pub fn step_back(&self, d: Duration) {
        self.wall.set(self.wall.get() - d);
    }

    pub fn set_wall(&self, t: SystemTime) {
        self.wall.set(t);
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.set(synced);
    }

    pub fn set_boot_time(&self, d: Duration) {
        self.boot.set(d);
    }
}

impl Clock for FakeClock {
    fn wall(&self) -> SystemTime {
        self.wall.get()
    }
    fn synced(&self) -> bool {
        self.synced.get()
    }
    fn boot_time(&self) -> Duration {
        self.boot.get()
    }
}

fn ns(d: Duration) -> i128 {
    d.as_nanos() as i128
}

fn from_ns(v: i128) -> Duration {
    let v = v.max(0) as u128;
    let secs = u64::try_from(v / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (v % 1_000_000_000) as u32)
}

fn wall_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ns(d),
        Err(e) => -ns(e.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{Template, DEFAULT_TEMPLATE};

    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3_600);
    const DAY: Duration = Duration::from_secs(86_400);
    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    /// 2024-05-01 00:00:00 UTC.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_521_600)
    }

    struct Rec {
        seg: Segment,
        /// When the segment really ended (the simulation's truth, not any clock).
        true_end: SystemTime,
    }

    /// A writer and retention loop for one path, over a fake clock and the real naming code.
    /// Every plan checks that nothing was deleted by age before its true age passed
    /// `delete_after` and that the segment being written survives; `strict` also checks
    /// that nothing truly expired is kept.
    struct Sim {
        clock: FakeClock,
        truth: SystemTime,
        tmpl: Template,
        recs: Vec<Rec>,
        writing: Option<PathBuf>,
        next_seq: u64,
        new_run: bool,
        state: AgeState,
        policy: Policy,
        disk: Disk,
        deleted: Vec<(u64, Reason)>,
        strict: bool,
        check_early: bool,
    }

    impl Sim {
        fn new(synced: bool) -> Sim {
            Sim::with_template(DEFAULT_TEMPLATE, synced)
        }

        fn with_template(template: &str, synced: bool) -> Sim {
            Sim {
                clock: FakeClock::new(t0(), synced),
                truth: t0(),
                tmpl: Template::parse(template).unwrap(),
                recs: Vec::new(),
                writing: None,
                next_seq: 1,
                new_run: true,
                state: AgeState::new(),
                policy: Policy {
                    delete_after: DAY,
                    max_bytes: None,
                    min_free: 0,
                },
                disk: Disk {
                    total: 1 << 40,
                    free: 1 << 39,
                },
                deleted: Vec::new(),
                strict: true,
                check_early: true,
            }
        }

        fn start_segment(&mut self) {
            let path = self
                .tmpl
                .expand(
                    "cam",
                    self.clock.wall(),
                    self.next_seq,
                    self.clock.synced(),
                    self.new_run,
                )
                .unwrap();
            let name = self.tmpl.parse_name("cam", &path).unwrap();
            assert_eq!(name.sequence, self.next_seq);
            self.next_seq += 1;
            self.new_run = false;
            self.recs.push(Rec {
                seg: Segment {
                    path: path.clone(),
                    name,
                    duration: Duration::ZERO,
                    bytes: 0,
                },
                true_end: self.truth,
            });
            self.writing = Some(path);
        }

        /// Time passes; the open segment grows by one byte a second.
        fn run(&mut self, d: Duration) {
            self.clock.advance(d);
            self.truth += d;
            if let Some(w) = &self.writing {
                let rec = self.recs.iter_mut().find(|r| &r.seg.path == w).unwrap();
                rec.seg.duration += d;
                rec.seg.bytes += d.as_secs();
                rec.true_end = self.truth;
                self.disk.free -= d.as_secs();
            }
        }

        /// `n` segments of `len`, planning at the end of each; the last stays open.
        fn record(&mut self, n: usize, len: Duration) {
            for _ in 0..n {
                self.start_segment();
                self.run(len);
                self.plan();
            }
        }

        fn stop(&mut self) {
            self.writing = None;
            self.new_run = true;
        }

        /// Power off for `off`; the board boots with its wall clock at `wall`.
        fn reboot(&mut self, off: Duration, wall: SystemTime, synced: bool) {
            self.stop();
            self.truth += off;
            self.clock.set_wall(wall);
            self.clock.set_synced(synced);
            self.clock.set_boot_time(8 * SEC);
            self.state = AgeState::new();
        }

        /// vigint restarts (memory lost); the board and its clocks run on.
        fn restart(&mut self, gap: Duration) {
            self.stop();
            self.clock.advance(gap);
            self.truth += gap;
            self.state = AgeState::new();
        }

        fn true_age(&self, r: &Rec) -> Duration {
            self.truth.duration_since(r.true_end).unwrap()
        }

        fn plan(&mut self) -> Vec<(u64, Reason)> {
            let segs: Vec<Segment> = self.recs.iter().map(|r| r.seg.clone()).collect();
            let out = plan(
                &segs,
                self.writing.as_deref(),
                &self.policy,
                self.disk,
                &self.clock,
                &mut self.state,
            );
            let mut got = Vec::new();
            for (path, reason) in out {
                assert_ne!(
                    Some(&path),
                    self.writing.as_ref(),
                    "deleted the open segment"
                );
                let i = self.recs.iter().position(|r| r.seg.path == path).unwrap();
                let rec = self.recs.remove(i);
                if reason == Reason::Age && self.check_early {
                    assert!(
                        self.true_age(&rec) > self.policy.delete_after,
                        "{:?} deleted by age at true age {:?}",
                        rec.seg.path,
                        self.true_age(&rec)
                    );
                }
                self.disk.free += rec.seg.bytes;
                got.push((rec.seg.name.sequence, reason));
            }
            if self.strict && !self.policy.delete_after.is_zero() {
                assert_eq!(self.overdue(), Vec::<u64>::new(), "expired but kept");
            }
            self.deleted.extend(&got);
            got
        }

        fn seqs(&self) -> Vec<u64> {
            self.recs.iter().map(|r| r.seg.name.sequence).collect()
        }

        fn overdue(&self) -> Vec<u64> {
            self.recs
                .iter()
                .filter(|r| Some(&r.seg.path) != self.writing.as_ref())
                .filter(|r| self.true_age(r) > self.policy.delete_after)
                .map(|r| r.seg.name.sequence)
                .collect()
        }

        fn deleted_by_age(&self) -> Vec<u64> {
            self.deleted
                .iter()
                .filter(|(_, r)| *r == Reason::Age)
                .map(|(s, _)| *s)
                .collect()
        }
    }

    fn range(a: u64, b: u64) -> Vec<u64> {
        (a..=b).collect()
    }

    #[test]
    fn age_limit_deletes_exactly_the_expired() {
        let mut sim = Sim::new(true);
        sim.record(30, HOUR);
        // Segment k ended at k h; now is 30 h: ages 30-k; only those over 24 h go.
        assert_eq!(sim.seqs(), range(6, 30));
        assert_eq!(sim.deleted_by_age(), range(1, 5));
        assert_eq!(sim.deleted.len(), 5);
        sim.run(30 * MIN);
        assert_eq!(sim.plan(), vec![(6, Reason::Age)]);
        assert_eq!(sim.plan(), vec![]);
    }

    #[test]
    fn zero_delete_after_disables_the_age_rule() {
        let mut sim = Sim::new(true);
        sim.policy.delete_after = Duration::ZERO;
        sim.record(50, HOUR);
        assert_eq!(sim.seqs(), range(1, 50));
    }

    #[test]
    fn byte_limit_deletes_oldest_until_under() {
        let mut sim = Sim::new(true);
        sim.policy.max_bytes = Some(10 * 3_600);
        sim.record(15, HOUR);
        assert_eq!(sim.seqs(), range(6, 15));
        assert!(sim.deleted.iter().all(|(_, r)| *r == Reason::Bytes));
        // One byte over: exactly one more goes.
        sim.policy.max_bytes = Some(10 * 3_600 - 1);
        assert_eq!(sim.plan(), vec![(6, Reason::Bytes)]);
    }

    #[test]
    fn free_space_floor_deletes_oldest_until_met() {
        let mut sim = Sim::new(true);
        sim.record(6, HOUR);
        assert!(sim.deleted.is_empty());
        sim.disk.free = 1_000;
        sim.policy.min_free = 8_000;
        // 1 000 + 3 600 < 8 000 <= 1 000 + 7 200
        assert_eq!(
            sim.plan(),
            vec![(1, Reason::FreeSpace), (2, Reason::FreeSpace)]
        );
        assert_eq!(sim.disk.free, 8_200);
        assert_eq!(sim.plan(), vec![]);
        assert_eq!(default_min_free(32_000_000_000), 500_000_000);
        assert_eq!(default_min_free(1_000_000_000), 100_000_000);
    }

    #[test]
    fn rules_apply_in_order_and_count_what_the_others_freed() {
        let mut sim = Sim::new(true);
        sim.policy.delete_after = Duration::ZERO;
        sim.record(27, HOUR);
        sim.policy.delete_after = DAY;
        sim.policy.max_bytes = Some(20 * 3_600);
        sim.disk.free = 0;
        sim.policy.min_free = 8 * 3_600;
        let mut want = vec![(1, Reason::Age), (2, Reason::Age)];
        want.extend((3..=7).map(|s| (s, Reason::Bytes)));
        want.push((8, Reason::FreeSpace));
        assert_eq!(sim.plan(), want);
    }

    #[test]
    fn the_segment_being_written_is_never_deleted() {
        let mut sim = Sim::new(true);
        sim.policy = Policy {
            delete_after: SEC,
            max_bytes: Some(100),
            min_free: u64::MAX,
        };
        sim.record(3, HOUR);
        assert_eq!(
            sim.seqs(),
            vec![3],
            "alone it breaks every limit, and stays"
        );
        assert_eq!(sim.plan(), vec![]);

        // Even when it is not the newest, and even from a list in no particular order.
        let segs: Vec<Segment> = (1..=4)
            .rev()
            .map(|s| Segment {
                path: PathBuf::from(format!("cam/{s}.mp4")),
                name: SegmentName {
                    sequence: s,
                    start: None,
                    synced: false,
                    run_start: s == 1,
                },
                duration: HOUR,
                bytes: 10,
            })
            .collect();
        let policy = Policy {
            delete_after: Duration::ZERO,
            max_bytes: Some(0),
            min_free: 0,
        };
        let disk = Disk {
            total: 100,
            free: 0,
        };
        let got = plan(
            &segs,
            Some(Path::new("cam/2.mp4")),
            &policy,
            disk,
            &FakeClock::new(t0(), true),
            &mut AgeState::new(),
        );
        let paths: Vec<_> = got.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(paths, ["cam/1.mp4", "cam/3.mp4", "cam/4.mp4"]);
    }

    #[test]
    fn plus_one_year_step_while_recording_deletes_nothing_early() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.clock.step_forward(YEAR);
        sim.record(3, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(20, HOUR); // strict: what expires goes on time
        assert_eq!(sim.deleted_by_age(), range(1, 1));
    }

    #[test]
    fn plus_one_year_step_while_not_recording_deletes_nothing_early() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.stop();
        sim.clock.step_forward(YEAR);
        sim.run(HOUR);
        assert_eq!(sim.plan(), vec![]);
        sim.run(22 * HOUR); // seg 1 ended at 1 h, now 26 h
        assert_eq!(sim.plan(), vec![(1, Reason::Age)]);
        sim.run(HOUR);
        assert_eq!(sim.plan(), vec![(2, Reason::Age)]);
    }

    #[test]
    fn minus_one_year_step_while_recording_keeps_deleting_on_time() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.clock.step_back(YEAR);
        sim.record(30, HOUR); // strict at every plan
        assert_eq!(sim.deleted_by_age(), range(1, 8)); // now 33 h: ended before 9 h
                                                       // Older names now look newer; order is still by sequence.
        sim.policy.max_bytes = Some(sim.recs.iter().map(|r| r.seg.bytes).sum::<u64>() - 1);
        assert_eq!(sim.plan(), vec![(9, Reason::Bytes)]);
    }

    #[test]
    fn minus_one_year_step_while_not_recording_keeps_deleting_on_time() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.stop();
        sim.plan();
        sim.clock.step_back(YEAR);
        sim.run(23 * HOUR); // seg 1 ended at 1 h, now 26 h
        assert_eq!(sim.plan(), vec![(1, Reason::Age)]);
        sim.run(HOUR);
        assert_eq!(sim.plan(), vec![(2, Reason::Age)]);
    }

    #[test]
    fn plus_one_year_step_survives_a_reboot_with_the_clock_still_wrong() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.clock.step_forward(YEAR);
        sim.record(2, HOUR);
        let wall = sim.clock.wall() + 10 * MIN;
        sim.reboot(10 * MIN, wall, true);
        sim.record(2, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(20, HOUR); // strict: the 10 min off are credited, deletion is on time
        assert_eq!(sim.deleted_by_age(), range(1, 3)); // now 27 h 10 min
    }

    #[test]
    fn plus_one_year_step_survives_a_process_restart() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.clock.step_forward(YEAR);
        sim.record(2, HOUR);
        sim.restart(MIN);
        sim.record(2, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(20, HOUR); // strict
        assert_eq!(sim.deleted_by_age(), range(1, 3)); // now 27 h 1 min
    }

    #[test]
    fn reboot_with_a_clock_a_year_ahead_then_ntp() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let wall = sim.truth + 10 * MIN + YEAR;
        sim.reboot(10 * MIN, wall, false); // a wrong hardware clock, not synced
        sim.record(2, HOUR);
        assert!(sim.deleted.is_empty());
        sim.clock.set_wall(sim.truth);
        sim.clock.set_synced(true);
        sim.record(2, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(20, HOUR); // strict: on time once NTP placed the run
        assert_eq!(sim.deleted_by_age(), range(1, 3));
    }

    #[test]
    fn reboot_with_a_stale_clock_a_year_behind_never_synced() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let wall = sim.truth + 2 * HOUR - YEAR;
        sim.reboot(2 * HOUR, wall, false);
        sim.strict = false; // the 2 h off cannot be known: deleted late, by at most that
        sim.record(24, HOUR);
        // Seg 3 is really 26 h old, but media time proves only 24 h: late by the 2 h off.
        assert_eq!(sim.seqs()[0], 3);
        sim.record(1, HOUR);
        assert_eq!(sim.deleted_by_age(), range(1, 3), "not kept forever");
    }

    #[test]
    fn reboot_with_a_synced_clock_a_year_behind() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let wall = sim.truth + 2 * HOUR - YEAR;
        sim.reboot(2 * HOUR, wall, true);
        sim.strict = false;
        sim.record(25, HOUR);
        assert_eq!(sim.deleted_by_age(), range(1, 3), "not kept forever");
    }

    #[test]
    fn recording_before_sync_then_sync_arrives() {
        let mut sim = Sim::new(false);
        sim.clock.set_wall(UNIX_EPOCH + 7 * SEC); // no RTC: the board thinks it is 1970
        sim.record(3, 10 * MIN);
        for r in &sim.recs {
            let name = r.seg.path.to_str().unwrap();
            assert!(name.starts_with("cam/1970-01-01_00-"), "{name}");
            assert!(!r.seg.name.synced);
        }
        assert!(sim.recs[0]
            .seg
            .path
            .to_str()
            .unwrap()
            .ends_with("-start-unsynced.mp4"));
        sim.clock.set_wall(sim.truth);
        sim.clock.set_synced(true);
        sim.record(3, 10 * MIN);
        assert!(sim.deleted.is_empty(), "a 1970 name is not an age");
        assert!(sim.recs[3].seg.name.synced);
        sim.record(24, HOUR); // strict: each goes when really 24 h old
        assert_eq!(sim.deleted_by_age(), range(1, 5)); // 10 min each, now 25 h
    }

    #[test]
    fn switched_off_for_a_week_with_a_synced_clock() {
        let mut sim = Sim::new(true);
        sim.record(5, HOUR);
        let wall = sim.truth + 7 * DAY;
        sim.reboot(7 * DAY, wall, true);
        sim.record(1, 10 * MIN);
        assert_eq!(sim.seqs(), vec![6]);
        assert_eq!(sim.deleted_by_age(), range(1, 5));
    }

    #[test]
    fn switched_off_for_a_week_then_ntp_while_recording() {
        let mut sim = Sim::new(true);
        sim.record(5, HOUR);
        let shutdown = sim.clock.wall(); // fake-hwclock restores the shutdown time
        sim.reboot(7 * DAY, shutdown, false);
        sim.strict = false;
        sim.start_segment();
        sim.run(5 * MIN);
        assert_eq!(sim.plan(), vec![], "unsynced: the week cannot be known yet");
        sim.clock.set_wall(sim.truth);
        sim.clock.set_synced(true);
        sim.strict = true;
        let got = sim.plan();
        assert_eq!(
            got,
            range(1, 5)
                .into_iter()
                .map(|s| (s, Reason::Age))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn switched_off_for_a_week_then_ntp_not_recording() {
        let mut sim = Sim::new(true);
        sim.record(5, HOUR);
        let shutdown = sim.clock.wall();
        sim.reboot(7 * DAY, shutdown, false);
        sim.strict = false;
        assert_eq!(sim.plan(), vec![]);
        sim.run(5 * MIN);
        sim.clock.set_wall(sim.truth);
        sim.clock.set_synced(true);
        sim.strict = true;
        assert_eq!(sim.plan().len(), 5);
        assert!(sim.recs.is_empty());
    }

    #[test]
    fn switched_off_for_a_week_with_a_date_only_template() {
        let mut sim = Sim::with_template("%path/%Y-%m-%d.mp4", true);
        sim.record(5, HOUR);
        let wall = sim.truth + 7 * DAY;
        sim.reboot(7 * DAY, wall, true);
        sim.record(1, 10 * MIN);
        assert_eq!(
            sim.seqs(),
            vec![6],
            "a week minus the names' day of doubt is still > 24 h"
        );
    }

    #[test]
    fn process_restart_credits_the_gap_and_stays_on_time() {
        let mut sim = Sim::new(true);
        sim.record(10, HOUR);
        sim.restart(MIN);
        sim.record(20, HOUR); // strict and never early at every plan
        assert_eq!(sim.deleted_by_age(), range(1, 6));
    }

    #[test]
    fn a_step_during_a_pause_this_process_watched_is_ignored() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        sim.stop(); // recording switched off
        sim.plan();
        sim.clock.step_forward(YEAR);
        sim.run(2 * HOUR);
        sim.plan();
        sim.record(2, HOUR); // switched on again: a new run, named a year ahead
        assert!(sim.deleted.is_empty());
        // Once that run is no longer the one being written, only its names place it.
        sim.stop();
        sim.run(HOUR);
        sim.plan();
        sim.record(1, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(17, HOUR); // strict: the pauses counted by the boot clock
        assert_eq!(sim.deleted_by_age(), range(1, 1)); // ended at 1 h, now 26 h
    }

    #[test]
    fn cutting_at_a_step_keeps_it_harmless_after_a_reboot() {
        for cut in [true, false] {
            let mut sim = Sim::new(true);
            let mut watch = ClockWatch::default();
            sim.record(2, HOUR);
            assert!(!watch.stepped(&sim.clock, SEC));
            sim.start_segment();
            sim.run(30 * MIN);
            sim.clock.step_forward(YEAR);
            assert!(watch.stepped(&sim.clock, SEC));
            if cut {
                sim.start_segment();
            }
            sim.run(30 * MIN);
            sim.plan();
            let wall = sim.clock.wall() + MIN;
            sim.reboot(MIN, wall, true);
            sim.check_early = cut;
            sim.strict = false;
            sim.record(1, MIN);
            if cut {
                assert!(sim.deleted.is_empty());
            } else {
                // The documented limit: nothing in the files shows the step.
                assert_eq!(sim.deleted_by_age(), range(1, 3));
            }
        }
    }

    #[test]
    fn a_step_after_ntp_placed_the_open_run_changes_nothing() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let shutdown = sim.clock.wall();
        sim.reboot(10 * MIN, shutdown, false);
        sim.start_segment();
        sim.run(5 * MIN);
        sim.plan();
        sim.clock.set_wall(sim.truth);
        sim.clock.set_synced(true);
        sim.plan(); // NTP: the open run is placed by "now", the 10 min off credited
        sim.clock.step_forward(YEAR);
        sim.run(5 * MIN);
        assert_eq!(sim.plan(), vec![]);
        sim.run(21 * HOUR); // seg 1 ended at 1 h; now 24 h 20 min
        assert_eq!(sim.plan(), vec![]);
        sim.run(HOUR);
        assert_eq!(sim.plan(), vec![(1, Reason::Age)]);
    }

    #[test]
    fn coarse_names_never_credit_more_than_they_prove() {
        let mut sim = Sim::with_template("%path/%Y-%m-%d.mp4", true);
        sim.policy.delete_after = 12 * HOUR;
        sim.run(20 * HOUR); // start recording at 20:00
        sim.record(3, HOUR);
        let wall = sim.truth + 2 * HOUR; // back at 01:00 the next day
        sim.reboot(2 * HOUR, wall, true);
        sim.strict = false; // a gap inside the names' day of doubt cannot be credited
        sim.record(1, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(12, HOUR); // media time alone gets there (13 h proven, 15 h true)
        assert_eq!(sim.deleted_by_age(), range(1, 3));
    }

    #[test]
    fn a_run_whose_names_disagree_credits_the_least_gap() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let wall = sim.truth + 10 * MIN + YEAR;
        sim.reboot(10 * MIN, wall, true);
        // A wrong synced clock, corrected before any plan ran; the writer cut at the step.
        sim.start_segment();
        sim.run(MIN);
        sim.clock.set_wall(sim.truth);
        sim.start_segment();
        sim.run(HOUR);
        sim.restart(MIN); // vigint restarts: only the files remain
                          // Run 2's latest possible end is the wrong name's: the minute of the restart is not
                          // credited (late by 1 min), but the year is not credited either.
        sim.strict = false;
        sim.record(1, HOUR);
        assert!(sim.deleted.is_empty());
        sim.record(22, HOUR); // placed by the true names; now 27 h 12 min
        assert_eq!(sim.deleted_by_age(), range(1, 3));
    }

    #[test]
    fn limit_a_clock_synced_but_wrong_from_boot_is_believed() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let wall = sim.truth + 10 * MIN + YEAR;
        sim.reboot(10 * MIN, wall, true);
        sim.check_early = false;
        sim.record(1, MIN);
        assert_eq!(sim.deleted_by_age(), range(1, 3));
    }

    #[test]
    fn clock_watch_reports_steps_and_sync_not_slewing() {
        let c = FakeClock::new(t0(), false);
        let mut w = ClockWatch::default();
        assert!(!w.stepped(&c, SEC));
        c.advance(MIN);
        assert!(!w.stepped(&c, SEC));
        for _ in 0..10 {
            c.step_forward(Duration::from_millis(500)); // slewing adds up, a call at a time
            assert!(!w.stepped(&c, SEC));
        }
        c.step_forward(2 * SEC);
        assert!(w.stepped(&c, SEC));
        c.set_synced(true);
        assert!(w.stepped(&c, SEC));
        assert!(!w.stepped(&c, SEC));
        c.step_back(YEAR);
        assert!(w.stepped(&c, SEC));
    }

    #[test]
    fn state_reports_ages_for_the_api() {
        let mut sim = Sim::new(true);
        sim.record(3, HOUR);
        let boot = sim.clock.boot_time();
        assert_eq!(sim.state.age(1, boot), Some(2 * HOUR));
        assert_eq!(sim.state.age(3, boot), Some(Duration::ZERO));
        assert_eq!(sim.state.age(4, boot), None);
        assert_eq!(sim.state.age(1, boot + HOUR), Some(3 * HOUR));
    }
}
