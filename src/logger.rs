//! The one small logger: one line per event to stderr.
//!
//! When stderr is journald's stream (`JOURNAL_STREAM` names stderr's device and inode, as
//! systemd sets it), journald adds timestamps, so each line starts with a `<N>` syslog
//! priority (sd-daemon(3)) that journald turns into the entry's level (`journalctl -p
//! warning` works); on a terminal or in a file each line starts with a UTC timestamp.

use std::io::Write;
use std::time::SystemTime;

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `2026-11-21T17:59:50.123Z INFO  message`
    Timestamped,
    /// `<6>INFO  message`: journald reads the priority and adds the time itself.
    Journal,
}

struct StderrLogger {
    style: Style,
}

/// The syslog priority journald files a line under.
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// One log line, newline included.
pub fn format_line(style: Style, now: SystemTime, level: log::Level, text: &str) -> String {
    match style {
        Style::Timestamped => format!("{} {level:<5} {text}\n", utc_timestamp(now)),
        Style::Journal => format!("<{}>{level:<5} {text}\n", syslog_priority(level)),
    }
}

/// True when `journal_stream` (`JOURNAL_STREAM`: `DEVICE:INODE`) names the file with this
/// device and inode. A child of a service inherits the variable with stderr redirected
/// elsewhere: then the variable must not count (systemd.exec(5)).
pub fn journal_stream_matches(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Whether stderr is journald's stream.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => journal_stream_matches(&var.to_string_lossy(), m.dev(), m.ino()),
        Err(_) => false,
    }
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
        let line = format_line(
            self.style,
            SystemTime::now(),
            record.level(),
            &record.args().to_string(),
        );
        // One write per line keeps lines from interleaving between threads.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger; `level` is error|warn|info|debug|trace (validated by config).
pub fn init(level: &str) {
    let level = level.parse().unwrap_or(log::LevelFilter::Info);
    let style = if stderr_is_journal() {
        Style::Journal
    } else {
        Style::Timestamped
    };
    if log::set_boxed_logger(Box::new(StderrLogger { style })).is_ok() {
        log::set_max_level(level);
    }
}

/// Changes the level while running (a config change).
pub fn set_level(level: &str) {
    log::set_max_level(level.parse().unwrap_or(log::LevelFilter::Info));
}

pub use crate::calendar::utc_timestamp;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_283_990_123);
        assert_eq!(utc_timestamp(t), "2026-11-21T17:59:50.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_283_990_123);
        assert_eq!(
            format_line(Style::Journal, t, log::Level::Warn, "camera lost"),
            "<4>WARN  camera lost\n"
        );
        assert_eq!(
            format_line(Style::Journal, t, log::Level::Error, "x"),
            "<3>ERROR x\n"
        );
        assert_eq!(
            format_line(Style::Timestamped, t, log::Level::Info, "up"),
            "2026-11-21T17:59:50.123Z INFO  up\n"
        );
        assert_eq!(syslog_priority(log::Level::Info), 6);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 12346), "another file");
        assert!(!journal_stream_matches("8", 8, 12345));
        assert!(!journal_stream_matches("", 0, 0));
    }
}
