//! Software blinking: a thread that drives an on/off `Line` through a pattern's timing.
//!
//! Owns: the `Line` trait (one LED that is on or off: a GPIO pin, an LED class
//! `brightness` file) and the thread "led-blink" that follows `Timing::level_at`. Does not
//! own: which pattern to show (`led::pattern`) or what a level means on the wire (active
//! low is the GPIO driver's business).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Timing;

/// One LED that is on or off.
pub trait Line: Send {
    fn set(&mut self, on: bool) -> std::io::Result<()>;
}

struct Wanted {
    timing: Timing,
    /// Bumped by every `show`, so the thread restarts the pattern from its first step.
    generation: u64,
    stop: bool,
}

/// A thread blinking one `Line`; the line is off when `stop` returns.
pub struct SoftBlink {
    shared: Arc<(Mutex<Wanted>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(m: &Mutex<Wanted>) -> std::sync::MutexGuard<'_, Wanted> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SoftBlink {
    /// Starts the thread with the line off.
    pub fn start(mut line: Box<dyn Line>) -> std::io::Result<SoftBlink> {
        let shared = Arc::new((
            Mutex::new(Wanted {
                timing: Timing::Off,
                generation: 0,
                stop: false,
            }),
            Condvar::new(),
        ));
        let me = shared.clone();
        let thread = std::thread::Builder::new()
            .name("led-blink".into())
            .spawn(move || {
                let (m, cv) = &*me;
                let mut level: Option<bool> = None;
                let mut failed = false;
                let mut set = |line: &mut Box<dyn Line>, on: bool, level: &mut Option<bool>| {
                    if *level == Some(on) {
                        return;
                    }
                    match line.set(on) {
                        Ok(()) => {
                            *level = Some(on);
                            failed = false;
                        }
                        Err(e) => {
                            if !failed {
                                log::error!("led: cannot switch the LED: {e}");
                            }
                            failed = true;
                        }
                    }
                };
                let mut w = lock(m);
                let mut generation = w.generation;
                let mut started = Instant::now();
                loop {
                    if w.stop {
                        drop(w);
                        level = None;
                        set(&mut line, false, &mut level);
                        return;
                    }
                    if w.generation != generation {
                        generation = w.generation;
                        started = Instant::now();
                    }
                    let (on, lasts) = w.timing.level_at(started.elapsed());
                    drop(w);
                    set(&mut line, on, &mut level);
                    w = lock(m);
                    // Woken early by `show` or `stop`; a spurious wake just recomputes.
                    w = match lasts {
                        Some(d) => cv.wait_timeout(w, d).unwrap_or_else(|e| e.into_inner()).0,
                        None if w.generation == generation && !w.stop => {
                            cv.wait(w).unwrap_or_else(|e| e.into_inner())
                        }
                        None => w,
                    };
                }
            })?;
        Ok(SoftBlink {
            shared,
            thread: Some(thread),
        })
    }

    /// Shows `timing` from its first step.
    pub fn show(&self, timing: Timing) {
        let (m, cv) = &*self.shared;
        let mut w = lock(m);
        w.timing = timing;
        w.generation += 1;
        cv.notify_all();
    }

    /// Turns the line off and ends the thread.
    pub fn stop(&mut self) {
        {
            let (m, cv) = &*self.shared;
            lock(m).stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SoftBlink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `Line` that records every level it is set to and when (the tests' LED).
#[derive(Clone, Default)]
pub struct FakeLine {
    pub levels: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl FakeLine {
    pub fn levels(&self) -> Vec<bool> {
        self.levels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|&(_, l)| l)
            .collect()
    }

    /// Waits until at least `n` levels were set (at most `limit`).
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<bool> {
        let until = Instant::now() + limit;
        while self.levels().len() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.levels()
    }
}

impl Line for FakeLine {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        self.levels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Instant::now(), on));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::led::{CAMERA_LOST, STREAMING};

    #[test]
    fn blinks_alternate_and_stop_turns_the_line_off() {
        let line = FakeLine::default();
        let mut b = SoftBlink::start(Box::new(line.clone())).expect("thread");
        assert_eq!(line.wait_for(1, Duration::from_secs(5)), [false]);
        b.show(CAMERA_LOST.timing);
        let levels = line.wait_for(7, Duration::from_secs(10));
        assert!(levels.len() >= 7, "{levels:?}");
        // Only changes are written: off, then on, off, on, ...
        for (i, l) in levels.iter().enumerate() {
            assert_eq!(*l, i % 2 == 1, "{levels:?}");
        }
        b.stop();
        let levels = line.levels();
        assert_eq!(levels.last(), Some(&false), "off after stop: {levels:?}");
    }

    #[test]
    fn a_steady_pattern_writes_once() {
        let line = FakeLine::default();
        let mut b = SoftBlink::start(Box::new(line.clone())).expect("thread");
        assert_eq!(line.wait_for(1, Duration::from_secs(5)), [false]);
        b.show(STREAMING.timing);
        let levels = line.wait_for(2, Duration::from_secs(5));
        assert_eq!(levels, [false, true]);
        // Shown again: the pattern restarts, but the level does not change.
        b.show(STREAMING.timing);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(line.levels(), [false, true]);
        b.stop();
        assert_eq!(line.levels(), [false, true, false]);
    }
}
