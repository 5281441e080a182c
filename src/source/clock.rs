//! Media time and frame loss from a camera's own buffer metadata (pure).
//!
//! Owns: `FrameClock`, turning the kernel's capture timestamps into monotonic 90 kHz media
//! time starting at 0, and `SequenceTracker`, counting frames the driver dropped from gaps in
//! its buffer sequence numbers. Does not own: reading the metadata (`v4l2.rs`).

use std::time::Duration;

use crate::media::CLOCK_RATE;

/// Kernel timestamps to 90 kHz media time: the first frame is 0, every later frame is later
/// than the one before (by at least one tick), even if the driver's clock stumbles.
#[derive(Debug, Clone)]
pub struct FrameClock {
    /// Nominal ticks per frame, used when a timestamp is missing or goes backwards.
    period: i64,
    first: Option<Duration>,
    last: Option<i64>,
}

impl FrameClock {
    pub fn new(period_90k: i64) -> Self {
        FrameClock {
            period: period_90k.max(1),
            first: None,
            last: None,
        }
    }

    /// Media time of a frame captured at `ts` (the buffer's timestamp). A zero timestamp
    /// (driver without timestamps) or one not after the previous frame continues one nominal
    /// period after the previous frame.
    pub fn pts(&mut self, ts: Duration) -> i64 {
        let pts = match (self.first, self.last) {
            (None, _) | (_, None) => {
                self.first = Some(ts);
                0
            }
            (Some(first), Some(last)) => {
                let t = if ts.is_zero() || ts < first {
                    None
                } else {
                    Some(((ts - first).as_nanos() * CLOCK_RATE as u128 / 1_000_000_000) as i64)
                };
                match t {
                    Some(t) if t > last => t,
                    _ => last + self.period,
                }
            }
        };
        self.last = Some(pts);
        pts
    }
}

/// Counts frames the driver skipped, from its 32-bit buffer sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    last: Option<u32>,
    dropped: u64,
}

/// A jump this large is a counter reset (e.g. the driver restarted streaming), not loss.
const MAX_PLAUSIBLE_GAP: u32 = 1 << 20;

impl SequenceTracker {
    /// Notes a buffer's sequence number; returns how many frames were missing before it.
    pub fn observe(&mut self, seq: u32) -> u32 {
        let gap = match self.last {
            Some(last) => {
                let step = seq.wrapping_sub(last);
                if step == 0 || step > MAX_PLAUSIBLE_GAP {
                    0
                } else {
                    step - 1
                }
            }
            None => 0,
        };
        self.last = Some(seq);
        self.dropped += gap as u64;
        gap
    }

    /// Frames missing so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn pts_from_kernel_timestamps() {
        let mut c = FrameClock::new(3000);
        // Boot-relative monotonic timestamps: the first frame is 0, then real spacing.
        assert_eq!(c.pts(ms(5_000_000)), 0);
        assert_eq!(c.pts(ms(5_000_040)), 3600);
        assert_eq!(c.pts(ms(5_000_080)), 7200);
        // A frame lost by the driver shows as a longer step, not a squeezed timeline.
        assert_eq!(c.pts(ms(5_000_160)), 14_400);
    }

    #[test]
    fn pts_stays_monotonic() {
        let mut c = FrameClock::new(3000);
        assert_eq!(c.pts(ms(1000)), 0);
        assert_eq!(c.pts(ms(1033)), 2970);
        // Backwards, equal, zero and before-first timestamps continue one period on.
        assert_eq!(c.pts(ms(1020)), 5970);
        assert_eq!(c.pts(ms(1000)), 8970);
        assert_eq!(c.pts(Duration::ZERO), 11_970);
        assert_eq!(c.pts(ms(999)), 14_970);
        // Back on track once the clock is ahead again.
        assert_eq!(c.pts(ms(2000)), 90_000);
    }

    #[test]
    fn driver_without_timestamps_gets_nominal_spacing() {
        let mut c = FrameClock::new(3600);
        let v: Vec<i64> = (0..4).map(|_| c.pts(Duration::ZERO)).collect();
        assert_eq!(v, [0, 3600, 7200, 10_800]);
    }

    #[test]
    fn sequence_gaps_are_counted() {
        let mut s = SequenceTracker::default();
        assert_eq!(s.observe(10), 0);
        assert_eq!(s.observe(11), 0);
        assert_eq!(s.observe(14), 2);
        assert_eq!(s.observe(15), 0);
        assert_eq!(s.dropped(), 2);
        // Wrap-around of the 32-bit counter.
        let mut s = SequenceTracker::default();
        s.observe(u32::MAX - 1);
        assert_eq!(s.observe(1), 2);
        // A repeated number or a reset is not loss.
        assert_eq!(s.observe(1), 0);
        assert_eq!(s.observe(0), 0);
        assert_eq!(s.dropped(), 2);
    }
}
