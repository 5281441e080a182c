//! The GPIO LED driver: an LED on a Raspberry Pi GPIO pin, blinked in software.
//!
//! Owns: opening the pin through rppal (the only file naming rppal), turning rppal's errors
//! into ones an operator can act on, and active-low wiring (`Pin` levels vs LED on/off).
//! Does not own: the timing (`blink::SoftBlink`) or which pattern to show.

use super::blink::{Line, SoftBlink};
use super::{LedDriver, LedError, Pattern};

/// One output pin: a level, high or low.
pub trait Pin: Send {
    fn write(&mut self, high: bool);
}

struct RppalPin(rppal::gpio::OutputPin);

impl Pin for RppalPin {
    fn write(&mut self, high: bool) {
        if high {
            self.0.set_high();
        } else {
            self.0.set_low();
        }
    }
}

/// The LED on a pin: on is high, or low when the LED is wired active low.
struct LedLine {
    pin: Box<dyn Pin>,
    active_low: bool,
}

impl Line for LedLine {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        self.pin.write(on != self.active_low);
        Ok(())
    }
}

/// What an operator can do about rppal's error.
fn explain(e: rppal::gpio::Error) -> String {
    use rppal::gpio::Error;
    match e {
        Error::UnknownModel => {
            "cannot use the GPIO: this machine is not a Raspberry Pi that rppal \
             knows (the `gpio` LED driver needs one; use `sysfs` with the board's LED name, or \
             `none`)"
                .to_string()
        }
        Error::PermissionDenied(path) => format!(
            "cannot use the GPIO: permission denied on {path} (run vigint as a member of the \
             `gpio` group)"
        ),
        Error::PinUsed(_) => "the pin is already in use".to_string(),
        Error::PinNotAvailable(_) => "this board has no such GPIO pin (BCM numbering)".to_string(),
        other => format!("cannot use the GPIO: {other}"),
    }
}

/// An LED on a GPIO pin.
pub struct GpioLed {
    blink: SoftBlink,
}

impl GpioLed {
    /// Claims BCM pin `pin` as an output, LED off. Fails (never panics) on a machine that
    /// is not a Raspberry Pi.
    pub fn open(pin: u8, active_low: bool) -> Result<GpioLed, LedError> {
        let err = |e| LedError::Gpio {
            pin,
            reason: explain(e),
        };
        let gpio = rppal::gpio::Gpio::new().map_err(err)?;
        let p = gpio.get(pin).map_err(err)?;
        // Dark from the first instant; rppal puts the pin back as it was when dropped.
        let out = if active_low {
            p.into_output_high()
        } else {
            p.into_output_low()
        };
        GpioLed::with_pin(pin, Box::new(RppalPin(out)), active_low)
    }

    /// An LED on any `Pin` (the tests' fake).
    pub fn with_pin(pin: u8, p: Box<dyn Pin>, active_low: bool) -> Result<GpioLed, LedError> {
        let blink = SoftBlink::start(Box::new(LedLine { pin: p, active_low })).map_err(|e| {
            LedError::Gpio {
                pin,
                reason: format!("cannot start the blink thread: {e}"),
            }
        })?;
        Ok(GpioLed { blink })
    }
}

impl LedDriver for GpioLed {
    fn driver(&self) -> &'static str {
        "gpio"
    }
    fn show(&mut self, p: &Pattern) -> Result<(), LedError> {
        self.blink.show(p.timing);
        Ok(())
    }
    fn stop(&mut self) -> Result<(), LedError> {
        self.blink.stop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::led::{CAMERA_LOST, RECORDING, STREAMING};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A pin that records its levels over time.
    #[derive(Clone, Default)]
    struct FakePin(Arc<Mutex<Vec<(Instant, bool)>>>);

    impl FakePin {
        fn levels(&self) -> Vec<(Instant, bool)> {
            self.0.lock().unwrap().clone()
        }
        fn wait_for(&self, n: usize) -> Vec<(Instant, bool)> {
            let until = Instant::now() + Duration::from_secs(10);
            while self.levels().len() < n && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.levels()
        }
    }

    impl Pin for FakePin {
        fn write(&mut self, high: bool) {
            self.0.lock().unwrap().push((Instant::now(), high));
        }
    }

    fn highs(levels: &[(Instant, bool)]) -> Vec<bool> {
        levels.iter().map(|&(_, l)| l).collect()
    }

    #[test]
    fn active_high_drives_the_pin_high_for_on() {
        let pin = FakePin::default();
        let mut led = GpioLed::with_pin(17, Box::new(pin.clone()), false).unwrap();
        assert_eq!(led.driver(), "gpio");
        assert_eq!(highs(&pin.wait_for(1)), [false], "starts dark");
        led.show(&STREAMING).unwrap();
        assert_eq!(highs(&pin.wait_for(2)), [false, true]);
        led.stop().unwrap();
        assert_eq!(
            highs(&pin.levels()),
            [false, true, false],
            "dark after stop"
        );
    }

    #[test]
    fn active_low_inverts_every_level_and_blinks_in_time_order() {
        let pin = FakePin::default();
        let mut led = GpioLed::with_pin(4, Box::new(pin.clone()), true).unwrap();
        assert_eq!(highs(&pin.wait_for(1)), [true], "dark is high");
        led.show(&CAMERA_LOST).unwrap();
        let levels = pin.wait_for(6);
        // high (dark), low (on), high, low, ...
        for (i, &(_, high)) in levels.iter().enumerate() {
            assert_eq!(high, i % 2 == 0, "{:?}", highs(&levels));
        }
        assert!(levels.windows(2).all(|w| w[0].0 <= w[1].0));
        // The recording pattern starts lit (low): the first level it writes after the change.
        led.show(&RECORDING).unwrap();
        led.stop().unwrap();
        let all = highs(&pin.levels());
        assert_eq!(all.last(), Some(&true), "dark (high) after stop: {all:?}");
    }

    #[test]
    fn on_a_machine_that_is_not_a_pi_opening_fails_clearly() {
        // This test runs on the x86 build machines (and the aarch64 emulator), never on a Pi.
        if crate::status::board_model().is_some_and(|m| m.contains("Raspberry Pi")) {
            panic!("this test expects a machine that is not a Raspberry Pi");
        }
        let e = match GpioLed::open(17, false) {
            Ok(_) => panic!("a GPIO opened on a machine that is not a Pi"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("GPIO 17: "), "{e}");
        assert!(e.contains("not a Raspberry Pi"), "{e}");
    }
}
