//! The status LED: what it shows for each `Health` and the drivers that show it.
//!
//! Owns: the patterns as data (`Pattern`, `Timing`), the pure choice `pattern(&Health)`
//! (the most severe condition wins), the `LedDriver` trait and its three drivers (`sysfs`:
//! the Linux LED class; `gpio`: a pin through rppal; `none`), and the thread "led" that
//! follows the status monitor. Does not own: reading the health (`health`) or the snapshot
//! (`status`).

pub mod blink;
pub mod gpio;
pub mod sysfs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{LedConfig, LedDriverKind};
use crate::health::{Health, HealthTracker};
use crate::status::{LedStatus, Monitor};

/// One part of a repeating pattern: the LED on or off for `ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub on: bool,
    pub ms: u32,
}

const fn on(ms: u32) -> Step {
    Step { on: true, ms }
}

const fn off(ms: u32) -> Step {
    Step { on: false, ms }
}

/// How the LED changes over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    Off,
    On,
    /// The steps, repeated forever from the first.
    Cycle(&'static [Step]),
}

impl Timing {
    /// `(on_ms, off_ms)` when this is a plain blink (what the kernel's `timer` trigger does).
    pub fn as_blink(&self) -> Option<(u32, u32)> {
        match self {
            Timing::Cycle([a, b]) if a.on && !b.on => Some((a.ms, b.ms)),
            _ => None,
        }
    }

    /// Whether the LED is on `elapsed` after the pattern started, and how long that lasts
    /// (`None`: forever).
    pub fn level_at(&self, elapsed: Duration) -> (bool, Option<Duration>) {
        let steps = match self {
            Timing::Off => return (false, None),
            Timing::On => return (true, None),
            Timing::Cycle(steps) => steps,
        };
        let period: u64 = steps.iter().map(|s| u64::from(s.ms)).sum();
        if period == 0 {
            return (false, None);
        }
        let period = Duration::from_millis(period);
        let mut t = Duration::from_nanos((elapsed.as_nanos() % period.as_nanos()) as u64);
        for s in steps.iter() {
            let len = Duration::from_millis(u64::from(s.ms));
            if t < len {
                return (s.on, Some(len - t));
            }
            t -= len;
        }
        // Unreachable: t < period = the sum of the steps.
        (false, Some(Duration::from_millis(1)))
    }
}

/// A named pattern (the name is what status and metrics show).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub name: &'static str,
    pub timing: Timing,
}

/// Shutdown has begun: dark (and dark it stays once stopped).
pub const STOPPING: Pattern = Pattern {
    name: "stopping",
    timing: Timing::Off,
};
/// A path does not deliver frames: fast blink.
pub const CAMERA_LOST: Pattern = Pattern {
    name: "camera_lost",
    timing: Timing::Cycle(&[on(100), off(100)]),
};
/// A recorder is paused (storage full) or failed a write: double blink.
pub const STORAGE_PROBLEM: Pattern = Pattern {
    name: "storage_problem",
    timing: Timing::Cycle(&[on(150), off(150), on(150), off(1050)]),
};
/// A path is recording and nothing is wrong: on, with a short dark wink every 2 s.
pub const RECORDING: Pattern = Pattern {
    name: "recording",
    timing: Timing::Cycle(&[on(1800), off(200)]),
};
/// A path has not served yet: slow blink.
pub const STARTING: Pattern = Pattern {
    name: "starting",
    timing: Timing::Cycle(&[on(1000), off(1000)]),
};
/// Streaming, not recording, the wall clock not synchronised: a short flash every 2 s.
pub const CLOCK_UNSYNCHRONIZED: Pattern = Pattern {
    name: "clock_unsynchronized",
    timing: Timing::Cycle(&[on(100), off(1900)]),
};
/// Every path streams, nothing to report: steady on.
pub const STREAMING: Pattern = Pattern {
    name: "streaming",
    timing: Timing::On,
};

/// Every pattern, most severe first: `pattern` shows the first whose condition holds.
pub const PRIORITY: [Pattern; 7] = [
    STOPPING,
    CAMERA_LOST,
    STORAGE_PROBLEM,
    RECORDING,
    STARTING,
    CLOCK_UNSYNCHRONIZED,
    STREAMING,
];

/// What the LED shows for `h`. The most severe condition wins, in `PRIORITY`'s order:
/// stopping, camera lost, storage problem, recording, starting, clock not synchronised,
/// streaming. Recording ranks above the two that are not faults (starting, clock) so that
/// a person in front of the camera can always tell they are recorded unless something is
/// broken; a Pi without network time would otherwise never show it.
pub fn pattern(h: &Health) -> Pattern {
    if h.stopping {
        STOPPING
    } else if h.camera_lost {
        CAMERA_LOST
    } else if h.storage_problem {
        STORAGE_PROBLEM
    } else if h.recording {
        RECORDING
    } else if h.starting {
        STARTING
    } else if h.clock_unsynchronized {
        CLOCK_UNSYNCHRONIZED
    } else {
        STREAMING
    }
}

/// Why an LED cannot be used.
#[derive(Debug)]
pub enum LedError {
    /// The GPIO could not be opened or claimed (not a Raspberry Pi, no permission, pin used).
    Gpio { pin: u8, reason: String },
    /// An LED class file could not be read or written.
    Sysfs {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// The LED class device is missing or unusable.
    SysfsLed { name: String, reason: String },
}

impl std::fmt::Display for LedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedError::Gpio { pin, reason } => write!(f, "GPIO {pin}: {reason}"),
            LedError::Sysfs { path, error } => write!(f, "{}: {error}", path.display()),
            LedError::SysfsLed { name, reason } => write!(f, "LED `{name}`: {reason}"),
        }
    }
}

impl std::error::Error for LedError {}

/// An LED that can show patterns.
pub trait LedDriver: Send {
    /// `gpio`, `sysfs` or `none`.
    fn driver(&self) -> &'static str;
    /// Shows `p` until the next call.
    fn show(&mut self, p: &Pattern) -> Result<(), LedError>;
    /// Turns the LED off and gives it back as it was found (the sysfs trigger restored).
    fn stop(&mut self) -> Result<(), LedError>;
}

/// No LED.
pub struct NoLed;

impl LedDriver for NoLed {
    fn driver(&self) -> &'static str {
        "none"
    }
    fn show(&mut self, _: &Pattern) -> Result<(), LedError> {
        Ok(())
    }
    fn stop(&mut self) -> Result<(), LedError> {
        Ok(())
    }
}

/// Where the kernel lists LED class devices.
pub const SYSFS_LEDS: &str = "/sys/class/leds";

/// Opens the configured LED.
pub fn open(cfg: &LedConfig) -> Result<Box<dyn LedDriver>, LedError> {
    // Validated: the driver's own field is set.
    match cfg.driver {
        LedDriverKind::None => Ok(Box::new(NoLed)),
        LedDriverKind::Gpio => {
            let pin = cfg.pin.unwrap_or(crate::config::DEFAULT_LED_PIN);
            Ok(Box::new(gpio::GpioLed::open(pin, cfg.active_low)?))
        }
        LedDriverKind::Sysfs => {
            let name = cfg
                .name
                .as_deref()
                .unwrap_or(crate::config::DEFAULT_LED_NAME);
            Ok(Box::new(sysfs::SysfsLed::open(&sysfs_root(), name)?))
        }
    }
}

/// `/sys/class/leds`; the tests point the real binary at a tree of plain files.
fn sysfs_root() -> std::path::PathBuf {
    std::env::var_os("VIGINT_SYSFS_LEDS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| SYSFS_LEDS.into())
}

/// The board profile's LED as a config (used when the config has no `led`): for `sysfs`
/// the first of the profile's names this kernel has (`ACT` on current Pi kernels, `led0`
/// on older ones), else the first; `None` for a profile without an LED.
pub fn from_board(d: &crate::board::LedDefaults) -> Option<LedConfig> {
    let root = sysfs_root();
    let (driver, name) = match d.driver.as_str() {
        "sysfs" => {
            let name = d
                .names
                .iter()
                .find(|n| root.join(n).join("brightness").exists())
                .or(d.names.first())?;
            (LedDriverKind::Sysfs, Some(name.clone()))
        }
        "gpio" => (LedDriverKind::Gpio, None),
        _ => return None,
    };
    Some(LedConfig {
        driver,
        pin: d.pin,
        active_low: d.active_low,
        name,
    })
}

/// How often the LED thread reads the status.
pub const LED_EVERY: Duration = Duration::from_millis(250);

/// The thread "led": reads the monitor a few times a second and shows the pattern when
/// it changes; dark once shutdown begins; off and restored when finished.
pub struct LedThread {
    stopping: Arc<AtomicBool>,
    finish: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LedThread {
    pub fn spawn(
        mut driver: Box<dyn LedDriver>,
        monitor: Arc<Monitor>,
    ) -> std::io::Result<LedThread> {
        let stopping = Arc::new(AtomicBool::new(false));
        let finish = Arc::new(AtomicBool::new(false));
        let (stopping2, finish2) = (stopping.clone(), finish.clone());
        let thread = std::thread::Builder::new()
            .name("led".into())
            .spawn(move || {
                let mut tracker = HealthTracker::default();
                let mut shown: Option<Pattern> = None;
                // Logged once per kind of failure, not 4 times a second.
                let mut failing = false;
                loop {
                    let done = finish2.load(Ordering::Acquire);
                    let h = tracker.observe(
                        &monitor.snapshot(),
                        Instant::now(),
                        stopping2.load(Ordering::Acquire) || done,
                    );
                    let p = pattern(&h);
                    if shown != Some(p) {
                        let result = driver.show(&p);
                        let error = match result {
                            Ok(()) => {
                                shown = Some(p);
                                failing = false;
                                None
                            }
                            Err(e) => {
                                if !failing {
                                    log::error!("led: cannot show `{}`: {e}", p.name);
                                }
                                failing = true;
                                Some(e.to_string())
                            }
                        };
                        monitor.set_led(LedStatus {
                            driver: driver.driver().to_string(),
                            pattern: error.is_none().then(|| p.name.to_string()),
                            error,
                        });
                    }
                    if done {
                        if let Err(e) = driver.stop() {
                            log::error!("led: cannot turn off and restore: {e}");
                        }
                        return;
                    }
                    std::thread::sleep(LED_EVERY);
                }
            })?;
        Ok(LedThread {
            stopping,
            finish,
            thread: Some(thread),
        })
    }

    /// Shutdown has begun: the LED goes dark.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Turns the LED off, restores it, and ends the thread.
    pub fn finish(mut self) {
        self.finish.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_led(names: &[&str]) -> crate::board::LedDefaults {
        crate::board::LedDefaults {
            driver: "sysfs".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            pin: None,
            active_low: false,
        }
    }

    #[test]
    fn a_board_profile_led_becomes_a_config() {
        let none = crate::board::LedDefaults {
            driver: "none".into(),
            names: Vec::new(),
            pin: None,
            active_low: false,
        };
        assert_eq!(from_board(&none), None);
        let gpio = crate::board::LedDefaults {
            driver: "gpio".into(),
            names: Vec::new(),
            pin: Some(27),
            active_low: true,
        };
        let c = from_board(&gpio).expect("gpio");
        assert_eq!(
            (c.driver, c.pin, c.active_low),
            (LedDriverKind::Gpio, Some(27), true)
        );
        // No such LEDs on this machine (or in its VIGINT_SYSFS_LEDS): the first name.
        let c = from_board(&board_led(&[
            "vigint-no-such-led-a",
            "vigint-no-such-led-b",
        ]))
        .expect("sysfs");
        assert_eq!(c.driver, LedDriverKind::Sysfs);
        assert_eq!(c.name.as_deref(), Some("vigint-no-such-led-a"));
        assert_eq!(from_board(&board_led(&[])), None);
    }

    /// Each condition alone, with the pattern it must show.
    fn alone() -> Vec<(Health, Pattern)> {
        let h = Health::default;
        vec![
            (
                Health {
                    stopping: true,
                    ..h()
                },
                STOPPING,
            ),
            (
                Health {
                    camera_lost: true,
                    ..h()
                },
                CAMERA_LOST,
            ),
            (
                Health {
                    storage_problem: true,
                    ..h()
                },
                STORAGE_PROBLEM,
            ),
            (
                Health {
                    recording: true,
                    ..h()
                },
                RECORDING,
            ),
            (
                Health {
                    starting: true,
                    ..h()
                },
                STARTING,
            ),
            (
                Health {
                    clock_unsynchronized: true,
                    ..h()
                },
                CLOCK_UNSYNCHRONIZED,
            ),
            (h(), STREAMING),
        ]
    }

    fn union(a: Health, b: Health) -> Health {
        Health {
            stopping: a.stopping || b.stopping,
            starting: a.starting || b.starting,
            camera_lost: a.camera_lost || b.camera_lost,
            storage_problem: a.storage_problem || b.storage_problem,
            recording: a.recording || b.recording,
            clock_unsynchronized: a.clock_unsynchronized || b.clock_unsynchronized,
        }
    }

    #[test]
    fn every_state_has_its_own_pattern() {
        let cases = alone();
        assert_eq!(cases.len(), PRIORITY.len());
        for (i, (h, p)) in cases.iter().enumerate() {
            assert_eq!(pattern(h), *p, "{h:?}");
            assert_eq!(PRIORITY[i], *p, "PRIORITY lists the patterns in order");
        }
        for (i, a) in PRIORITY.iter().enumerate() {
            for b in &PRIORITY[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.timing, b.timing, "{} and {} look alike", a.name, b.name);
            }
        }
        // The shapes: slow blink, fast blink, double blink, a steady healthy LED.
        assert_eq!(STARTING.timing.as_blink(), Some((1000, 1000)));
        assert_eq!(CAMERA_LOST.timing.as_blink(), Some((100, 100)));
        let Timing::Cycle(double) = STORAGE_PROBLEM.timing else {
            panic!("double blink is a cycle")
        };
        assert_eq!(double.iter().filter(|s| s.on).count(), 2);
        assert_eq!(STREAMING.timing, Timing::On);
        assert_eq!(STOPPING.timing, Timing::Off);
    }

    #[test]
    fn the_more_severe_of_every_pair_wins() {
        let cases = alone();
        for (i, (a, pa)) in cases.iter().enumerate() {
            for (b, pb) in &cases[i + 1..] {
                let both = union(*a, *b);
                assert_eq!(pattern(&both), *pa, "{} over {}", pa.name, pb.name);
            }
        }
    }

    #[test]
    fn levels_follow_the_steps_and_repeat() {
        let ms = Duration::from_millis;
        let t = STORAGE_PROBLEM.timing;
        assert_eq!(t.level_at(ms(0)), (true, Some(ms(150))));
        assert_eq!(t.level_at(ms(149)), (true, Some(ms(1))));
        assert_eq!(t.level_at(ms(150)), (false, Some(ms(150))));
        assert_eq!(t.level_at(ms(300)), (true, Some(ms(150))));
        assert_eq!(t.level_at(ms(450)), (false, Some(ms(1050))));
        assert_eq!(t.level_at(ms(1500)), (true, Some(ms(150))));
        assert_eq!(t.level_at(ms(1500 * 7 + 460)), (false, Some(ms(1040))));
        assert_eq!(Timing::On.level_at(ms(5)), (true, None));
        assert_eq!(Timing::Off.level_at(ms(5)), (false, None));
        assert_eq!(STORAGE_PROBLEM.timing.as_blink(), None);
        assert_eq!(Timing::On.as_blink(), None);
    }
}
