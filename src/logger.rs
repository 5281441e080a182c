//! The one small logger: one line per event to stderr.
//!
//! Under systemd (JOURNAL_STREAM set) journald adds timestamps, so lines carry only the
//! level; on a terminal or in a file each line starts with a UTC timestamp.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

struct StderrLogger {
    timestamps: bool,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // The global maximum, so that `set_level` changes it at run time.
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.timestamps {
            format!(
                "{} {:<5} {}\n",
                utc_timestamp(SystemTime::now()),
                record.level(),
                record.args()
            )
        } else {
            format!("{:<5} {}\n", record.level(), record.args())
        };
        // One write per line keeps lines from interleaving between threads.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger; `level` is error|warn|info|debug|trace (validated by config).
pub fn init(level: &str) {
    let level = level.parse().unwrap_or(log::LevelFilter::Info);
    let timestamps = std::env::var_os("JOURNAL_STREAM").is_none();
    if log::set_boxed_logger(Box::new(StderrLogger { timestamps })).is_ok() {
        log::set_max_level(level);
    }
}

/// Changes the level while running (a config change).
pub fn set_level(level: &str) {
    log::set_max_level(level.parse().unwrap_or(log::LevelFilter::Info));
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date crate (civil-from-days, H. Hinnant).
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_283_990_123);
        assert_eq!(utc_timestamp(t), "2026-11-21T17:59:50.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
