//! Bytes written over time, for status: the current write rate and the bytes written in the
//! last 24 hours.
//!
//! Owns: two rings of time buckets on the monotonic clock (one-second buckets for the rate,
//! one-hour buckets for the day), so a wall-clock step cannot distort either. Updated by the
//! recorder's writer once per write (a few times a second), read by status.

use std::time::{Duration, Instant};

/// Counts per time bucket over the last `N` buckets of `width`.
#[derive(Debug)]
struct Ring<const N: usize> {
    width: Duration,
    counts: [u64; N],
    /// Index (buckets since `epoch`) of the newest bucket written.
    newest: u64,
}

impl<const N: usize> Ring<N> {
    fn new(width: Duration) -> Self {
        Ring {
            width,
            counts: [0; N],
            newest: 0,
        }
    }

    fn index(&self, epoch: Instant, now: Instant) -> u64 {
        (now.saturating_duration_since(epoch).as_nanos() / self.width.as_nanos().max(1)) as u64
    }

    /// Moves to bucket `index`, clearing the buckets skipped on the way.
    fn advance(&mut self, index: u64) {
        if index <= self.newest {
            return;
        }
        let skipped = (index - self.newest).min(N as u64);
        for i in 0..skipped {
            self.counts[((index - i) % N as u64) as usize] = 0;
        }
        self.newest = index;
    }

    fn add(&mut self, epoch: Instant, now: Instant, n: u64) {
        let index = self.index(epoch, now);
        self.advance(index);
        self.counts[(index % N as u64) as usize] += n;
    }

    /// Sum of the `k` buckets before the current one (whole buckets only).
    fn sum_before(&mut self, epoch: Instant, now: Instant, k: usize) -> u64 {
        let index = self.index(epoch, now);
        self.advance(index);
        (1..=k.min(N - 1) as u64)
            .filter(|back| *back <= index)
            .map(|back| self.counts[((index - back) % N as u64) as usize])
            .sum()
    }

    /// Sum of every bucket kept (the current one included).
    fn sum_all(&mut self, epoch: Instant, now: Instant) -> u64 {
        let index = self.index(epoch, now);
        self.advance(index);
        self.counts.iter().sum()
    }
}

/// Seconds the write rate is averaged over.
const RATE_SECONDS: usize = 10;

/// Bytes written, by time.
#[derive(Debug)]
pub struct WriteMeter {
    epoch: Instant,
    seconds: Ring<{ RATE_SECONDS + 2 }>,
    /// 24 whole hours and the current one: a day's bytes never under-count.
    hours: Ring<25>,
}

impl WriteMeter {
    pub fn new(epoch: Instant) -> WriteMeter {
        WriteMeter {
            epoch,
            seconds: Ring::new(Duration::from_secs(1)),
            hours: Ring::new(Duration::from_secs(3600)),
        }
    }

    pub fn add(&mut self, now: Instant, bytes: u64) {
        self.seconds.add(self.epoch, now, bytes);
        self.hours.add(self.epoch, now, bytes);
    }

    /// Bytes per second over the last whole seconds (up to 10; fewer just after start).
    pub fn rate(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_secs() as usize;
        let k = elapsed.min(RATE_SECONDS);
        if k == 0 {
            return 0.0;
        }
        self.seconds.sum_before(self.epoch, now, k) as f64 / k as f64
    }

    /// Bytes written in the last 24 hours, counted in whole hours: up to an hour more
    /// than 24 h may be included, never less.
    pub fn last_day(&mut self, now: Instant) -> u64 {
        self.hours.sum_all(self.epoch, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn the_rate_averages_the_last_whole_seconds() {
        let t0 = Instant::now();
        let mut m = WriteMeter::new(t0);
        assert_eq!(m.rate(t0), 0.0);
        for s in 0..20u32 {
            m.add(t0 + S * s + S / 2, 1000);
        }
        // At 20.5 s: seconds 10..19 were whole, 1000 bytes each.
        assert_eq!(m.rate(t0 + S * 20 + S / 2), 1000.0);
        // Three seconds after at the start: their average.
        let mut m = WriteMeter::new(t0);
        m.add(t0, 3000);
        m.add(t0 + S, 3000);
        assert_eq!(m.rate(t0 + S * 3), 2000.0);
    }

    #[test]
    fn the_rate_falls_to_zero_when_writing_stops() {
        let t0 = Instant::now();
        let mut m = WriteMeter::new(t0);
        for s in 0..30u32 {
            m.add(t0 + S * s, 500);
        }
        assert_eq!(m.rate(t0 + S * 35), 500.0 * 5.0 / 10.0);
        assert_eq!(m.rate(t0 + S * 41), 0.0);
        // Long after: old buckets do not come back when the ring wraps.
        assert_eq!(m.rate(t0 + S * 1000), 0.0);
        m.add(t0 + S * 1000, 10);
        assert_eq!(m.rate(t0 + S * 1001), 1.0);
    }

    #[test]
    fn a_day_counts_the_last_24_hours_and_forgets_older_ones() {
        let t0 = Instant::now();
        let mut m = WriteMeter::new(t0);
        for h in 0..30u32 {
            m.add(t0 + H * h + H / 2, 100);
        }
        // At 29.5 h: hours 5..=29 are kept (24 whole hours and the current one).
        assert_eq!(m.last_day(t0 + H * 29 + H / 2), 2500);
        // At 40 h: hours 16..=40 are kept, of which 16..=29 were written.
        assert_eq!(m.last_day(t0 + H * 40), 100 * 14);
        assert_eq!(m.last_day(t0 + H * 100), 0);
    }
}
