//! The Linux LED class driver: `/sys/class/leds/NAME` (e.g. the Pi's `ACT` LED).
//!
//! Owns: saving the LED's trigger at start and restoring it at stop, and rendering a
//! pattern the cheapest way the kernel offers: `none` + `brightness` for steady levels, the
//! `timer` trigger (`delay_on`/`delay_off`) for a plain blink, the `pattern` trigger for
//! other cycles, software blinking of `brightness` when neither trigger is built. The files
//! are reached through `LedFs` (`FakeLedTree` emulates the kernel's for tests). Does not own:
//! which pattern to show.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::blink::{Line, SoftBlink};
use super::{LedDriver, LedError, Pattern, Timing};

/// The attribute files of one LED class device, by name (`trigger`, `brightness`, ...).
pub trait LedFs: Send + Sync {
    fn read(&self, file: &str) -> std::io::Result<String>;
    /// One write of `value`; never creates a file (a missing attribute is an error).
    fn write(&self, file: &str, value: &str) -> std::io::Result<()>;
    /// For messages.
    fn path(&self, file: &str) -> PathBuf;
}

/// A real LED class directory.
pub struct Dir(pub PathBuf);

impl LedFs for Dir {
    fn read(&self, file: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.0.join(file))
    }
    fn write(&self, file: &str, value: &str) -> std::io::Result<()> {
        // sysfs takes one value per write(2); no create: the kernel makes the files.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.0.join(file))?;
        f.write_all(value.as_bytes())
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

/// The triggers a `trigger` file lists, and the current one (in brackets).
pub fn parse_triggers(text: &str) -> (Vec<String>, Option<String>) {
    let mut current = None;
    let all = text
        .split_whitespace()
        .map(
            |t| match t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(name) => {
                    current = Some(name.to_string());
                    name.to_string()
                }
                None => t.to_string(),
            },
        )
        .collect();
    (all, current)
}

/// Triggers vigint sets itself: found at start, they were left by an earlier run that did
/// not stop cleanly, so they are not "restored".
const OURS: [&str; 2] = ["timer", "pattern"];

/// An LED class device.
pub struct SysfsLed {
    fs: Arc<dyn LedFs>,
    name: String,
    triggers: Vec<String>,
    /// The trigger found at start, restored at stop (`none` when it was one of ours).
    saved_trigger: String,
    max_brightness: u32,
    soft: Option<SoftBlink>,
    /// The trigger attributes proved unwritable: blink by `brightness` from now on.
    soft_only: bool,
}

/// Software blinking writes `brightness`.
struct BrightnessLine {
    fs: Arc<dyn LedFs>,
    max: u32,
}

impl Line for BrightnessLine {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        let v = if on { self.max } else { 0 };
        self.fs.write("brightness", &v.to_string())
    }
}

impl SysfsLed {
    /// Opens `root/name` (root: `/sys/class/leds`).
    pub fn open(root: &Path, name: &str) -> Result<SysfsLed, LedError> {
        let dir = root.join(name);
        if !dir.join("brightness").exists() {
            let mut found: Vec<String> = std::fs::read_dir(root)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            let there = if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            };
            return Err(LedError::SysfsLed {
                name: name.to_string(),
                reason: format!("no such LED in {} (there: {there})", root.display()),
            });
        }
        SysfsLed::with_fs(name, Arc::new(Dir(dir)))
    }

    /// Reads the LED's state through `fs` and saves its trigger.
    pub fn with_fs(name: &str, fs: Arc<dyn LedFs>) -> Result<SysfsLed, LedError> {
        let read = |file: &str| {
            fs.read(file).map_err(|error| LedError::Sysfs {
                path: fs.path(file),
                error,
            })
        };
        let (triggers, current) = parse_triggers(&read("trigger")?);
        let max_text = read("max_brightness")?;
        let max_brightness = match max_text.trim().parse::<u32>() {
            Ok(m) if m > 0 => m,
            _ => {
                return Err(LedError::SysfsLed {
                    name: name.to_string(),
                    reason: format!(
                        "max_brightness `{}` is not a positive number",
                        max_text.trim()
                    ),
                })
            }
        };
        let current = current.unwrap_or_else(|| "none".to_string());
        let saved_trigger = if OURS.contains(&current.as_str()) {
            log::warn!(
                "led: {name} has trigger `{current}`, left by an earlier run; it will be left off at stop"
            );
            "none".to_string()
        } else {
            current
        };
        Ok(SysfsLed {
            fs,
            name: name.to_string(),
            triggers,
            saved_trigger,
            max_brightness,
            soft: None,
            soft_only: false,
        })
    }

    /// The trigger restored at stop.
    pub fn saved_trigger(&self) -> &str {
        &self.saved_trigger
    }

    fn write(&self, file: &str, value: &str) -> Result<(), LedError> {
        self.fs.write(file, value).map_err(|error| LedError::Sysfs {
            path: self.fs.path(file),
            error,
        })
    }

    fn has(&self, trigger: &str) -> bool {
        self.triggers.iter().any(|t| t == trigger)
    }

    fn steady(&self, on: bool) -> Result<(), LedError> {
        self.write("trigger", "none")?;
        let v = if on { self.max_brightness } else { 0 };
        self.write("brightness", &v.to_string())
    }

    /// Shows a cycle with the kernel's `timer` or `pattern` trigger; false when neither
    /// fits (not built into this kernel).
    fn kernel_cycle(&self, p: &Pattern, steps: &[super::Step]) -> Result<bool, LedError> {
        if let (Some((on, off)), true) = (p.timing.as_blink(), self.has("timer")) {
            self.write("trigger", "timer")?;
            self.write("delay_on", &on.to_string())?;
            self.write("delay_off", &off.to_string())?;
            Ok(true)
        } else if self.has("pattern") {
            self.write("trigger", "pattern")?;
            self.write("pattern", &pattern_text(steps, self.max_brightness))?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn stop_soft(&mut self) {
        if let Some(mut s) = self.soft.take() {
            s.stop();
        }
    }
}

/// The `pattern` trigger's text for step changes: each level held for its time, then a
/// zero-time move to the next (the kernel would otherwise fade between levels).
pub fn pattern_text(steps: &[super::Step], max: u32) -> String {
    steps
        .iter()
        .map(|s| {
            let b = if s.on { max } else { 0 };
            format!("{b} {} {b} 0", s.ms)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl LedDriver for SysfsLed {
    fn driver(&self) -> &'static str {
        "sysfs"
    }

    fn show(&mut self, p: &Pattern) -> Result<(), LedError> {
        self.stop_soft();
        match p.timing {
            Timing::Off => self.steady(false),
            Timing::On => self.steady(true),
            Timing::Cycle(steps) => {
                if !self.soft_only {
                    match self.kernel_cycle(p, steps) {
                        Ok(true) => return Ok(()),
                        Ok(false) => {}
                        // The kernel makes `delay_on`/`delay_off`/`pattern` root-only each
                        // time it sets the trigger, out of reach of udev rules: as the
                        // service user only `trigger` and `brightness` are writable.
                        Err(LedError::Sysfs { path, error })
                            if error.kind() == std::io::ErrorKind::PermissionDenied =>
                        {
                            log::info!(
                                "led: {} is not writable ({error}); blinking by `brightness` instead",
                                path.display()
                            );
                            self.soft_only = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
                {
                    self.steady(false)?;
                    let line = BrightnessLine {
                        fs: self.fs.clone(),
                        max: self.max_brightness,
                    };
                    let soft =
                        SoftBlink::start(Box::new(line)).map_err(|e| LedError::SysfsLed {
                            name: self.name.clone(),
                            reason: format!("cannot start the blink thread: {e}"),
                        })?;
                    soft.show(p.timing);
                    self.soft = Some(soft);
                    Ok(())
                }
            }
        }
    }

    fn stop(&mut self) -> Result<(), LedError> {
        self.stop_soft();
        self.steady(false)?;
        if self.saved_trigger != "none" {
            self.write("trigger", &self.saved_trigger.clone())?;
        }
        Ok(())
    }
}

/// A fake LED class directory in a real (temporary) directory that reacts to writes as the
/// kernel does: `trigger` lists the triggers with the current one in brackets, the `timer`
/// trigger brings `delay_on`/`delay_off` (and `pattern` its `pattern`/`repeat`) and takes
/// them away when replaced, `brightness 0` removes the trigger, attributes that do not
/// exist cannot be written. Every write is recorded.
pub struct FakeLedTree {
    dir: PathBuf,
    triggers: Vec<String>,
    max: u32,
    writes: Mutex<Vec<(String, String)>>,
    /// Writes to the triggers' own attributes fail as they do for a non-root user.
    deny_trigger_attributes: std::sync::atomic::AtomicBool,
}

impl FakeLedTree {
    /// From now on `delay_on`, `delay_off` and `pattern` refuse writes (EACCES), as the
    /// kernel's root-only files do for the service user.
    pub fn deny_trigger_attributes(&self) {
        self.deny_trigger_attributes
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Creates `root/name` with `triggers` available, `current` set, `brightness` 0.
    pub fn create(
        root: &Path,
        name: &str,
        triggers: &[&str],
        current: &str,
        max: u32,
    ) -> std::io::Result<Arc<FakeLedTree>> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let tree = FakeLedTree {
            dir,
            triggers: triggers.iter().map(|t| t.to_string()).collect(),
            max,
            writes: Mutex::new(Vec::new()),
            deny_trigger_attributes: std::sync::atomic::AtomicBool::new(false),
        };
        std::fs::write(tree.dir.join("max_brightness"), format!("{max}\n"))?;
        std::fs::write(tree.dir.join("brightness"), "0\n")?;
        tree.set_trigger(current)?;
        Ok(Arc::new(tree))
    }

    /// Every `(file, value)` written, in order.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A file's content (trimmed), `None` when it does not exist.
    pub fn file(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn trigger_files(trigger: &str) -> &'static [(&'static str, &'static str)] {
        match trigger {
            "timer" => &[("delay_on", "500"), ("delay_off", "500")],
            "pattern" => &[("pattern", ""), ("repeat", "-1")],
            _ => &[],
        }
    }

    fn set_trigger(&self, next: &str) -> std::io::Result<()> {
        let (_, current) =
            parse_triggers(&std::fs::read_to_string(self.dir.join("trigger")).unwrap_or_default());
        let current = current.unwrap_or_else(|| "none".into());
        for (f, _) in Self::trigger_files(&current) {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        let list: Vec<String> = std::iter::once("none".to_string())
            .chain(self.triggers.iter().cloned())
            .map(|t| if t == next { format!("[{t}]") } else { t })
            .collect();
        std::fs::write(self.dir.join("trigger"), format!("{}\n", list.join(" ")))?;
        for (f, v) in Self::trigger_files(next) {
            std::fs::write(self.dir.join(f), format!("{v}\n"))?;
        }
        Ok(())
    }
}

impl LedFs for FakeLedTree {
    fn read(&self, file: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join(file))
    }

    fn write(&self, file: &str, value: &str) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind};
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((file.to_string(), value.to_string()));
        let invalid = || Error::new(ErrorKind::InvalidInput, format!("{file}: `{value}`"));
        let path = self.dir.join(file);
        if !path.exists() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{file}: no such attribute"),
            ));
        }
        match file {
            "trigger" => {
                let t = value.trim();
                if t != "none" && !self.triggers.iter().any(|x| x == t) {
                    return Err(invalid());
                }
                self.set_trigger(t)
            }
            "brightness" => {
                let v: u32 = value.trim().parse().map_err(|_| invalid())?;
                if v == 0 {
                    self.set_trigger("none")?;
                }
                std::fs::write(path, format!("{}\n", v.min(self.max)))
            }
            "max_brightness" => Err(Error::new(ErrorKind::PermissionDenied, "read-only")),
            "delay_on" | "delay_off" | "pattern"
                if self
                    .deny_trigger_attributes
                    .load(std::sync::atomic::Ordering::Relaxed) =>
            {
                Err(Error::new(ErrorKind::PermissionDenied, "root only"))
            }
            _ => std::fs::write(path, format!("{}\n", value.trim())),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::led::{CAMERA_LOST, RECORDING, STARTING, STORAGE_PROBLEM, STREAMING};

    use crate::test_util::TempDir as Tmp;

    const PI_TRIGGERS: [&str; 7] = [
        "kbd-scrolllock",
        "timer",
        "oneshot",
        "heartbeat",
        "pattern",
        "default-on",
        "mmc0",
    ];

    fn w(file: &str, value: &str) -> (String, String) {
        (file.to_string(), value.to_string())
    }

    #[test]
    fn triggers_parse_with_the_current_one_in_brackets() {
        let (all, cur) = parse_triggers("none kbd-numlock [mmc0] timer\n");
        assert_eq!(all, ["none", "kbd-numlock", "mmc0", "timer"]);
        assert_eq!(cur.as_deref(), Some("mmc0"));
        assert_eq!(parse_triggers("none timer").1, None);
    }

    #[test]
    fn patterns_use_the_kernels_triggers_and_stop_restores_the_saved_one() {
        let tmp = Tmp::new("kernel");
        let tree = FakeLedTree::create(&tmp.0, "ACT", &PI_TRIGGERS, "mmc0", 255).unwrap();
        let mut led = SysfsLed::with_fs("ACT", tree.clone()).unwrap();
        assert_eq!(led.saved_trigger(), "mmc0");
        assert_eq!(led.driver(), "sysfs");
        assert!(tree.writes().is_empty(), "opening only reads");

        led.show(&STARTING).unwrap();
        assert_eq!(
            tree.writes(),
            [
                w("trigger", "timer"),
                w("delay_on", "1000"),
                w("delay_off", "1000")
            ]
        );
        assert_eq!(tree.file("delay_off").as_deref(), Some("1000"));
        assert!(tree.file("trigger").unwrap().contains("[timer]"));

        led.show(&STREAMING).unwrap();
        assert_eq!(
            tree.writes()[3..],
            [w("trigger", "none"), w("brightness", "255")]
        );
        assert_eq!(tree.file("delay_on"), None, "timer's files leave with it");
        assert_eq!(tree.file("brightness").as_deref(), Some("255"));

        led.show(&STORAGE_PROBLEM).unwrap();
        assert_eq!(
            tree.writes()[5..],
            [
                w("trigger", "pattern"),
                w(
                    "pattern",
                    "255 150 255 0 0 150 0 0 255 150 255 0 0 1050 0 0"
                )
            ]
        );

        led.show(&CAMERA_LOST).unwrap();
        led.show(&RECORDING).unwrap();
        assert_eq!(
            tree.writes()[7..],
            [
                w("trigger", "timer"),
                w("delay_on", "100"),
                w("delay_off", "100"),
                w("trigger", "timer"),
                w("delay_on", "1800"),
                w("delay_off", "200"),
            ]
        );

        led.stop().unwrap();
        assert_eq!(
            tree.writes()[13..],
            [
                w("trigger", "none"),
                w("brightness", "0"),
                w("trigger", "mmc0")
            ]
        );
        assert!(tree.file("trigger").unwrap().contains("[mmc0]"));
        assert_eq!(tree.file("brightness").as_deref(), Some("0"));
    }

    #[test]
    fn a_led_that_had_no_trigger_stays_off_and_one_left_blinking_is_not_restored() {
        let tmp = Tmp::new("none");
        let tree = FakeLedTree::create(&tmp.0, "led0", &PI_TRIGGERS, "none", 1).unwrap();
        let mut led = SysfsLed::with_fs("led0", tree.clone()).unwrap();
        led.show(&STREAMING).unwrap();
        led.stop().unwrap();
        assert_eq!(
            tree.writes(),
            [
                w("trigger", "none"),
                w("brightness", "1"),
                w("trigger", "none"),
                w("brightness", "0")
            ]
        );
        // An earlier run died with its timer set: at stop the LED is left dark.
        let tree = FakeLedTree::create(&tmp.0, "led1", &PI_TRIGGERS, "timer", 1).unwrap();
        let mut led = SysfsLed::with_fs("led1", tree.clone()).unwrap();
        assert_eq!(led.saved_trigger(), "none");
        led.stop().unwrap();
        assert_eq!(tree.writes(), [w("trigger", "none"), w("brightness", "0")]);
        assert!(tree.file("trigger").unwrap().contains("[none]"));
    }

    #[test]
    fn without_timer_or_pattern_triggers_it_blinks_brightness_itself() {
        let tmp = Tmp::new("soft");
        let tree = FakeLedTree::create(&tmp.0, "plain", &["mmc0"], "mmc0", 7).unwrap();
        let mut led = SysfsLed::with_fs("plain", tree.clone()).unwrap();
        led.show(&CAMERA_LOST).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tree.writes().len() < 6 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        led.stop().unwrap();
        let writes = tree.writes();
        assert_eq!(writes[..2], [w("trigger", "none"), w("brightness", "0")]);
        let blinks: Vec<&str> = writes[2..]
            .iter()
            .take_while(|(f, _)| f == "brightness")
            .map(|(_, v)| v.as_str())
            .collect();
        // The blink thread ends with `0` whatever it showed last.
        let (last, blinks) = blinks.split_last().expect("blinks");
        assert_eq!(*last, "0", "{writes:?}");
        assert!(blinks.len() >= 4, "{writes:?}");
        assert!(blinks.iter().all(|v| *v == "7" || *v == "0"), "{writes:?}");
        assert!(
            blinks.windows(2).all(|p| p[0] != p[1]),
            "alternates: {writes:?}"
        );
        // Stop: the blink thread's last `0`, then off and mmc0 back.
        assert_eq!(
            writes[writes.len() - 3..],
            [
                w("trigger", "none"),
                w("brightness", "0"),
                w("trigger", "mmc0")
            ]
        );
    }

    #[test]
    fn as_a_normal_user_it_falls_back_to_blinking_brightness_and_stays_there() {
        let tmp = Tmp::new("denied");
        let tree = FakeLedTree::create(&tmp.0, "ACT", &PI_TRIGGERS, "mmc0", 255).unwrap();
        tree.deny_trigger_attributes();
        let mut led = SysfsLed::with_fs("ACT", tree.clone()).unwrap();
        led.show(&CAMERA_LOST).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let toggles = |t: &FakeLedTree| {
            t.writes()
                .iter()
                .filter(|(f, v)| f == "brightness" && v == "255")
                .count()
        };
        while toggles(&tree) < 3 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(toggles(&tree) >= 3, "{:?}", tree.writes());
        // Tried once: the next cycle goes straight to software blinking.
        led.show(&STORAGE_PROBLEM).unwrap();
        led.stop().unwrap();
        let writes = tree.writes();
        let tried: Vec<_> = writes
            .iter()
            .filter(|(f, _)| ["delay_on", "delay_off", "pattern"].contains(&f.as_str()))
            .collect();
        assert_eq!(tried, [&w("delay_on", "100")], "{writes:?}");
        assert!(!writes.contains(&w("trigger", "pattern")), "{writes:?}");
        assert_eq!(
            tree.file("trigger")
                .as_deref()
                .map(|t| t.contains("[mmc0]")),
            Some(true)
        );
    }

    #[test]
    fn a_missing_led_names_the_ones_there_and_the_real_files_are_never_created() {
        let tmp = Tmp::new("missing");
        FakeLedTree::create(&tmp.0, "ACT", &PI_TRIGGERS, "mmc0", 255).unwrap();
        FakeLedTree::create(&tmp.0, "PWR", &PI_TRIGGERS, "none", 255).unwrap();
        let e = SysfsLed::open(&tmp.0, "led9")
            .err()
            .expect("no led9")
            .to_string();
        assert!(e.contains("led9") && e.contains("there: ACT, PWR"), "{e}");
        // The real driver on the plain files: writes land as written, a missing attribute
        // (no timer trigger active in a plain directory) is an error, not a new file.
        let mut led = SysfsLed::open(&tmp.0, "ACT").unwrap();
        led.show(&STREAMING).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.0.join("ACT/brightness")).unwrap(),
            "255"
        );
        let e = led
            .show(&STARTING)
            .expect_err("delay_on missing")
            .to_string();
        assert!(e.contains("ACT/delay_on"), "{e}");
        assert!(!tmp.0.join("ACT/delay_on").exists());
    }
}
