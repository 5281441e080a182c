//! Segment file names: the `record_path` template, and what vigint adds to it so that
//! retention can order segments and judge their age without trusting the wall clock.
//!
//! Owns: template validation, expansion (start time + sequence + flags -> relative path) and
//! parsing back (relative path -> [`SegmentName`]). Does not own: any file I/O (the writer
//! creates, scans and measures files), nor the retention rule (`retention`).
//!
//! # The scheme
//!
//! The user's template (default `%path/%Y-%m-%d_%H-%M-%S-%f.mp4`) gives the directory and
//! the readable part. Vigint inserts a suffix before `.mp4`:
//!
//! ```text
//! cam/2024-05-01_12-00-00-000000_000000123.mp4                  continues #122
//! cam/2024-05-01_12-00-00-000000_000000124-start.mp4            first after a (re)start
//! cam/1970-01-01_00-00-07-000000_000000125-start-unsynced.mp4   wall clock not yet synced
//! ```
//!
//! - `_NNNNNNNNN`: a per-path sequence number, the only order retention uses (never the
//!   time fields: the wall clock can step either way). On start the writer continues at
//!   [`next_sequence`] (the largest found + 1), so order survives restarts, templates
//!   without seconds (or without any time field) and clocks that go backwards. Zero-padded
//!   to 9 digits so that `ls` sorts them too; parsing accepts any width up to `u64`.
//! - `-start`: this segment does not continue the previous one on the same media timeline
//!   (process start, recording re-enabled, a gap the writer did not bridge). Its absence
//!   means "the previous segment ended when this one began", which lets retention tell a
//!   real gap (device off) from a wall-clock step inside one recording. A missing marker
//!   can only make retention delete later, never earlier: that is why it marks the rare
//!   case and not the common one.
//! - `-unsynced`: the wall clock was not known to be synchronised when the segment started,
//!   so the time fields in its name are not believed. The API shows this flag.
//!
//! The index retention needs is therefore the directory listing itself: names (sequence,
//! flags, start), sizes and media durations; nothing else is stored.
//!
//! # Templates
//!
//! Fields: `%path`, `%Y` (4 digits), `%m`, `%d`, `%H`, `%M`, `%S` (2 digits), `%f`
//! (microseconds, 6 digits), `%%`. All numeric fields have a fixed width, so a name parses
//! back without ambiguity. Times are UTC: the device has no time-zone database to trust,
//! and local time would repeat an hour every autumn. Rules:
//!
//! - relative, `/`-separated, no empty, `.` or `..` components, no component starting with
//!   `.` (reserved for the writer's temporary files), no `\` or control characters: a
//!   name always stays inside the recordings directory;
//! - `%path` at least once and only as a whole component: each path's files live apart,
//!   and a file of path `cam` can never parse as one of path `cam2`;
//! - ends in `.mp4`;
//! - no time field is required: uniqueness and order come from the sequence number. Time
//!   fields are what people read, and what retention uses to credit a power-off gap (to
//!   the precision the template keeps: without `%S`, a gap is credited to the minute below).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};

/// The default `record_path`.
pub const DEFAULT_TEMPLATE: &str = "%path/%Y-%m-%d_%H-%M-%S-%f.mp4";

/// Longest path name config accepts (`config::valid_path_name`); used for length checks.
const MAX_PATH_NAME: usize = 64;
/// Longest suffix vigint appends: `_` + 20 digits + `-start-unsynced`.
const MAX_SUFFIX: usize = 1 + 20 + 6 + 9;
const SEQUENCE_WIDTH: usize = 9;
const START_MARK: &str = "-start";
const UNSYNCED_MARK: &str = "-unsynced";
const EXT: &str = ".mp4";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Micros,
}

impl Field {
    fn width(self) -> usize {
        match self {
            Field::Year => 4,
            Field::Micros => 6,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(String),
    Path,
    Time(Field),
}

/// A validated `record_path` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template with its final `.mp4` removed (vigint's suffix goes there).
    tokens: Vec<Token>,
    text: String,
}

/// When a segment started, as far as its name tells: somewhere in
/// `[earliest, earliest + precision)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallStart {
    pub earliest: SystemTime,
    /// 1 µs with `%f`, 1 s with `%S`, 1 min with `%M`, ... down to 1 day with `%Y%m%d` only.
    pub precision: Duration,
}

/// What a segment's file name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentName {
    /// Per-path order, increasing; the only order retention uses.
    pub sequence: u64,
    /// Start time from the template's fields; None when the template lacks a full date.
    /// Not to be believed unless `synced`.
    pub start: Option<WallStart>,
    /// The wall clock was synchronised when the segment started.
    pub synced: bool,
    /// The segment does not continue the previous one (see the module doc).
    pub run_start: bool,
}

/// Checks a `record_path` template (see the module doc for the rules).
pub fn validate_template(template: &str) -> Result<(), String> {
    Template::parse(template).map(|_| ())
}

/// The sequence number for the next segment of a path: the largest found + 1 (1 if none).
pub fn next_sequence<I: IntoIterator<Item = u64>>(found: I) -> u64 {
    found.into_iter().max().map_or(1, |m| m.saturating_add(1))
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Template {
    /// Parses and validates a template.
    pub fn parse(text: &str) -> Result<Template, String> {
        let bad = |why: &str| Err(format!("record_path \"{text}\": {why}"));
        if text.is_empty() {
            return bad("empty");
        }
        if text.starts_with('/') {
            return bad("must be relative to the recordings directory, not absolute");
        }
        if text.chars().any(|c| c == '\\' || c.is_control()) {
            return bad("may not contain '\\' or control characters");
        }
        let Some(stem) = text.strip_suffix(EXT) else {
            return bad("must end in .mp4");
        };

        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut chars = stem.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let tok = match chars.next() {
                Some('%') => {
                    lit.push('%');
                    continue;
                }
                Some('Y') => Token::Time(Field::Year),
                Some('m') => Token::Time(Field::Month),
                Some('d') => Token::Time(Field::Day),
                Some('H') => Token::Time(Field::Hour),
                Some('M') => Token::Time(Field::Minute),
                Some('S') => Token::Time(Field::Second),
                Some('f') => Token::Time(Field::Micros),
                Some('p') if chars.as_str().starts_with("ath") => {
                    chars.nth(2);
                    Token::Path
                }
                Some(other) => {
                    return bad(&format!(
                        "unknown field %{other} (use %path %Y %m %d %H %M %S %f or %%)"
                    ))
                }
                None => return bad("ends with a lone '%' (write %% for a percent sign)"),
            };
            if !lit.is_empty() {
                tokens.push(Token::Lit(std::mem::take(&mut lit)));
            }
            tokens.push(tok);
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit));
        }

        // Components, checked on tokens so that `%path` is judged as a whole.
        let mut components: Vec<Vec<Token>> = vec![Vec::new()];
        for tok in &tokens {
            let pieces: Vec<Token> = match tok {
                Token::Lit(s) => s.split('/').map(|p| Token::Lit(p.into())).collect(),
                other => vec![other.clone()],
            };
            for (i, piece) in pieces.into_iter().enumerate() {
                if i > 0 {
                    components.push(Vec::new());
                }
                if piece != Token::Lit(String::new()) {
                    if let Some(last) = components.last_mut() {
                        last.push(piece);
                    }
                }
            }
        }
        let last_index = components.len() - 1;
        let mut has_path = false;
        for (i, comp) in components.iter().enumerate() {
            if comp.is_empty() {
                return bad(if i == last_index {
                    "needs a file name before .mp4"
                } else {
                    "has an empty path component ('//')"
                });
            }
            if let Some(Token::Lit(first)) = comp.first() {
                if first.starts_with('.') {
                    return bad("components may not start with '.' (no '.', '..' or hidden names)");
                }
            }
            if comp.contains(&Token::Path) {
                if comp.len() != 1 {
                    return bad("%path must be a whole component, as in %path/...");
                }
                if i == last_index {
                    return bad("%path must be a directory, as in %path/...");
                }
                has_path = true;
            }
            let width: usize = comp
                .iter()
                .map(|t| match t {
                    Token::Lit(s) => s.len(),
                    Token::Path => MAX_PATH_NAME,
                    Token::Time(f) => f.width(),
                })
                .sum::<usize>()
                + if i == last_index {
                    MAX_SUFFIX + EXT.len()
                } else {
                    0
                };
            if width > 255 {
                return bad("a component would be longer than 255 bytes");
            }
        }
        if !has_path {
            return bad("must contain %path (each path keeps its recordings apart)");
        }
        Ok(Template {
            tokens,
            text: text.to_string(),
        })
    }

    /// The directory under the recordings root holding all of `path_name`'s segments: the
    /// leading components without time fields (`cam` for the default template). The writer
    /// scans it recursively and keeps what [`Template::parse_name`] accepts.
    pub fn scan_dir(&self, path_name: &str) -> PathBuf {
        let mut out = String::new();
        let mut current = String::new();
        for tok in &self.tokens {
            match tok {
                Token::Time(_) => return PathBuf::from(out),
                Token::Path => current.push_str(path_name),
                Token::Lit(s) => {
                    for (i, piece) in s.split('/').enumerate() {
                        if i > 0 {
                            if !out.is_empty() {
                                out.push('/');
                            }
                            out.push_str(&current);
                            current.clear();
                        }
                        current.push_str(piece);
                    }
                }
            }
        }
        PathBuf::from(out)
    }

    /// The file for a segment of `path_name`, relative to the recordings root.
    ///
    /// `path_name` must be a valid config path name (no `/`, not starting with `.`): it is
    /// checked again here because a bad one could leave the recordings directory. Times
    /// before 1970 are written as 1970, after 9999 as 9999-12-31.
    pub fn expand(
        &self,
        path_name: &str,
        start: SystemTime,
        sequence: u64,
        synced: bool,
        run_start: bool,
    ) -> Result<PathBuf, String> {
        if !valid_path_name(path_name) {
            return Err(format!(
                "path name \"{path_name}\" cannot be used in a file name"
            ));
        }
        let t = Civil::from_system_time(start);
        let mut out = String::new();
        for tok in &self.tokens {
            match tok {
                Token::Lit(s) => out.push_str(s),
                Token::Path => out.push_str(path_name),
                Token::Time(f) => {
                    let (v, w) = (t.get(*f), f.width());
                    out.push_str(&format!("{v:0w$}"));
                }
            }
        }
        out.push_str(&format!("_{sequence:0SEQUENCE_WIDTH$}"));
        if run_start {
            out.push_str(START_MARK);
        }
        if !synced {
            out.push_str(UNSYNCED_MARK);
        }
        out.push_str(EXT);
        Ok(PathBuf::from(out))
    }

    /// Reads a file name (relative to the recordings root) back; None when it is not a
    /// segment of `path_name` under this template (another path's file, a temporary file,
    /// something a person put there).
    pub fn parse_name(&self, path_name: &str, rel: &Path) -> Option<SegmentName> {
        let s = rel.to_str()?;
        let mut body = s.strip_suffix(EXT)?;
        let synced = match body.strip_suffix(UNSYNCED_MARK) {
            Some(b) => {
                body = b;
                false
            }
            None => true,
        };
        let run_start = match body.strip_suffix(START_MARK) {
            Some(b) => {
                body = b;
                true
            }
            None => false,
        };
        let (user, digits) = body.rsplit_once('_')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let sequence: u64 = digits.parse().ok()?;

        let mut rest = user;
        let mut values: [Option<u32>; 7] = [None; 7];
        for tok in &self.tokens {
            match tok {
                Token::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Token::Path => rest = rest.strip_prefix(path_name)?,
                Token::Time(f) => {
                    let w = f.width();
                    let field = rest.get(..w)?;
                    if !field.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let v: u32 = field.parse().ok()?;
                    let slot = &mut values[*f as usize];
                    if slot.is_some_and(|old| old != v) {
                        return None; // the same field twice with different values
                    }
                    *slot = Some(v);
                    rest = &rest[w..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let start = match Civil::from_fields(&values) {
            Ok(start) => start,
            Err(()) => return None, // impossible date: not one of ours
        };
        Some(SegmentName {
            sequence,
            start,
            synced,
            run_start,
        })
    }
}

/// Same rule as `config::valid_path_name`, repeated so that naming alone guarantees a name
/// stays inside the recordings directory.
fn valid_path_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PATH_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

/// 0001-01-01 .. 9999-12-31 23:59:59.999999 in seconds since 1970.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

impl Civil {
    fn from_system_time(t: SystemTime) -> Civil {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let (secs, micros) = if since.as_secs() > MAX_UNIX_SECS {
            (MAX_UNIX_SECS, 999_999)
        } else {
            (since.as_secs(), since.subsec_micros())
        };
        let days = (secs / 86_400) as i64;
        let sod = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year: year as u32,
            month,
            day,
            hour: (sod / 3_600) as u32,
            minute: (sod / 60 % 60) as u32,
            second: (sod % 60) as u32,
            micros,
        }
    }

    fn get(&self, f: Field) -> u32 {
        match f {
            Field::Year => self.year,
            Field::Month => self.month,
            Field::Day => self.day,
            Field::Hour => self.hour,
            Field::Minute => self.minute,
            Field::Second => self.second,
            Field::Micros => self.micros,
        }
    }

    /// Fields indexed by `Field as usize`. Precision stops at the first missing field below
    /// the date; Err for impossible values.
    fn from_fields(v: &[Option<u32>; 7]) -> Result<Option<WallStart>, ()> {
        let (Some(y), Some(mo), Some(d)) = (v[0], v[1], v[2]) else {
            return Ok(None);
        };
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || y < 1970 {
            return Err(());
        }
        let limits: [(u32, u64, Duration); 4] = [
            (24, 3_600_000_000, Duration::from_secs(3_600)),
            (60, 60_000_000, Duration::from_secs(60)),
            (60, 1_000_000, Duration::from_secs(1)),
            (1_000_000, 1, Duration::from_micros(1)),
        ];
        let days = days_from_civil(y, mo, d);
        let mut micros: u64 = days as u64 * 86_400_000_000;
        let mut precision = Duration::from_secs(86_400);
        for (i, (limit, unit, prec)) in limits.iter().enumerate() {
            let Some(x) = v[3 + i] else { break };
            if x >= *limit {
                return Err(());
            }
            micros += x as u64 * unit;
            precision = *prec;
        }
        Ok(Some(WallStart {
            earliest: UNIX_EPOCH + Duration::from_micros(micros),
            precision,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    /// 2024-05-01 12:34:56 UTC.
    const T: u64 = 1_714_566_896;

    #[test]
    fn valid_templates() {
        for t in [
            DEFAULT_TEMPLATE,
            "%path/%Y-%m-%d/%H-%M-%S.mp4",
            "rec/%path/%Y/%m/%d/%H%M%S%f.mp4",
            "%path/clip.mp4",
            "%path/100%%-%Y.mp4",
            "%path/%Y %m %d.mp4",
        ] {
            assert_eq!(validate_template(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn invalid_templates_say_why() {
        for (t, why) in [
            ("", "empty"),
            ("/var/rec/%path/%Y.mp4", "relative"),
            ("../%path/%Y.mp4", "may not start with '.'"),
            ("%path/../../etc/%Y.mp4", "may not start with '.'"),
            ("%path/./%Y.mp4", "may not start with '.'"),
            ("%path/.hidden%Y.mp4", "may not start with '.'"),
            ("%path//%Y.mp4", "empty path component"),
            ("%path/%Y/.mp4", "needs a file name before .mp4"),
            ("%path/.mp4", "needs a file name before .mp4"),
            ("%path/%x.mp4", "unknown field %x"),
            ("%path/%Y-%j.mp4", "unknown field %j"),
            ("%path/%Y%.mp4", "lone '%'"),
            ("%path/%.x.mp4", "unknown field %."),
            ("%path/%Y.mkv", "must end in .mp4"),
            ("%path/%Y", "must end in .mp4"),
            ("%Y/%m.mp4", "must contain %path"),
            ("cam-%path/%Y.mp4", "whole component"),
            ("%path%Y.mp4", "whole component"),
            ("x/%path.mp4", "must be a directory"),
            ("%path/a\\b.mp4", "'\\'"),
            ("%path/a\nb.mp4", "control"),
            ("%pat/%Y.mp4", "unknown field %p"),
        ] {
            let err = validate_template(t).expect_err(t);
            assert!(err.contains(why), "{t:?}: {err}");
        }
        let long = format!("%path/{}.mp4", "a".repeat(230));
        assert!(validate_template(&long).unwrap_err().contains("255"));
    }

    #[test]
    fn expands_the_default_template() {
        let t = Template::parse(DEFAULT_TEMPLATE).unwrap();
        let p = t.expand("cam", at(T, 123_456), 123, true, false).unwrap();
        assert_eq!(p, Path::new("cam/2024-05-01_12-34-56-123456_000000123.mp4"));
        let p = t.expand("cam", at(7, 0), 124, false, true).unwrap();
        assert_eq!(
            p,
            Path::new("cam/1970-01-01_00-00-07-000000_000000124-start-unsynced.mp4")
        );
        // Before 1970 (a very wrong clock) is written as the epoch, never panics.
        let p = t.expand("cam", UNIX_EPOCH - Duration::from_secs(5), 1, false, false);
        assert_eq!(
            p.unwrap(),
            Path::new("cam/1970-01-01_00-00-00-000000_000000001-unsynced.mp4")
        );
        assert!(t.expand("../x", at(T, 0), 1, true, false).is_err());
        assert!(t.expand("a/b", at(T, 0), 1, true, false).is_err());
    }

    #[test]
    fn parse_expand_round_trips() {
        let times = [
            at(0, 0),
            at(T, 123_456),
            at(951_782_400, 999_999), // 2000-02-29 (leap day)
            at(4_107_542_399, 1),     // 2100-02-28 23:59:59 (2100 is no leap year)
            at(MAX_UNIX_SECS, 999_999),
        ];
        for text in [
            DEFAULT_TEMPLATE,
            "rec/%path/%Y/%m/%d/%H%M%S%f.mp4",
            "%path/%Y-%m-%d/%H-%M-%S-%f_clip.mp4",
        ] {
            let t = Template::parse(text).unwrap();
            for (i, &when) in times.iter().enumerate() {
                for (synced, run_start) in
                    [(true, false), (false, true), (true, true), (false, false)]
                {
                    let seq = [0, 1, 999_999_999, 1_000_000_000, u64::MAX][i];
                    let p = t.expand("cam.1", when, seq, synced, run_start).unwrap();
                    let got = t.parse_name("cam.1", &p).unwrap_or_else(|| panic!("{p:?}"));
                    assert_eq!(
                        got,
                        SegmentName {
                            sequence: seq,
                            start: Some(WallStart {
                                earliest: when,
                                precision: Duration::from_micros(1)
                            }),
                            synced,
                            run_start
                        },
                        "{text} {p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn precision_follows_the_template() {
        for (text, precision) in [
            ("%path/%Y-%m-%d_%H-%M.mp4", Some(60)),
            ("%path/%Y-%m-%d.mp4", Some(86_400)),
            ("%path/%Y-%m-%d_%H-%S.mp4", Some(3_600)), // seconds without minutes: unused
            ("%path/%H-%M-%S.mp4", None),              // no date: no wall time at all
            ("%path/clip.mp4", None),
        ] {
            let t = Template::parse(text).unwrap();
            let p = t.expand("cam", at(T, 5), 9, true, false).unwrap();
            let got = t.parse_name("cam", &p).unwrap();
            assert_eq!(got.sequence, 9);
            match precision {
                None => assert_eq!(got.start, None, "{text}"),
                Some(secs) => {
                    let w = got.start.unwrap();
                    assert_eq!(w.precision, Duration::from_secs(secs), "{text}");
                    let truncated = T - T % secs;
                    assert_eq!(w.earliest, at(truncated, 0), "{text}");
                    assert!(w.earliest <= at(T, 5) && at(T, 5) < w.earliest + w.precision);
                }
            }
        }
    }

    #[test]
    fn suffix_is_read_from_the_end_even_when_the_template_looks_like_it() {
        let t = Template::parse("%path/x_%H-start-unsynced.mp4").unwrap();
        let p = t.expand("cam", at(T, 0), 42, true, false).unwrap();
        assert_eq!(p, Path::new("cam/x_12-start-unsynced_000000042.mp4"));
        let got = t.parse_name("cam", &p).unwrap();
        assert_eq!((got.sequence, got.synced, got.run_start), (42, true, false));
        let p = t.expand("cam", at(T, 0), 43, false, true).unwrap();
        let got = t.parse_name("cam", &p).unwrap();
        assert_eq!((got.sequence, got.synced, got.run_start), (43, false, true));
    }

    #[test]
    fn foreign_files_are_not_parsed() {
        let t = Template::parse(DEFAULT_TEMPLATE).unwrap();
        let ok = "cam/2024-05-01_12-34-56-123456_000000123.mp4";
        assert!(t.parse_name("cam", Path::new(ok)).is_some());
        for bad in [
            "cam2/2024-05-01_12-34-56-123456_000000123.mp4", // another path
            "cam/2024-05-01_12-34-56-123456.mp4",            // no sequence
            "cam/2024-05-01_12-34-56-123456_.mp4",
            "cam/2024-05-01_12-34-56-123456_12a.mp4",
            "cam/2024-05-01_12-34-56-123456_000000123.mp4.tmp",
            "cam/2024-13-01_12-34-56-123456_000000123.mp4", // month 13
            "cam/2023-02-29_12-34-56-123456_000000123.mp4", // not a leap year
            "cam/2024-05-01_24-34-56-123456_000000123.mp4",
            "cam/2024-05-01_12-34-56-12345_000000123.mp4", // short micros
            "cam/x/2024-05-01_12-34-56-123456_000000123.mp4",
            "cam/2024-05-01_12-34-56-123456_99999999999999999999999.mp4", // > u64
        ] {
            assert_eq!(t.parse_name("cam", Path::new(bad)), None, "{bad}");
        }
        let twice = Template::parse("%path/%Y/%Y-%m-%d.mp4").unwrap();
        assert!(twice
            .parse_name("cam", Path::new("cam/2024/2024-05-01_000000001.mp4"))
            .is_some());
        assert_eq!(
            twice.parse_name("cam", Path::new("cam/2023/2024-05-01_000000001.mp4")),
            None
        );
    }

    #[test]
    fn scan_dir_is_the_fixed_prefix() {
        let dir = |t: &str| Template::parse(t).unwrap().scan_dir("cam");
        assert_eq!(dir(DEFAULT_TEMPLATE), Path::new("cam"));
        assert_eq!(dir("rec/%path/%Y/%m/x.mp4"), Path::new("rec/cam"));
        assert_eq!(dir("%path/sub/clip.mp4"), Path::new("cam/sub"));
        assert_eq!(dir("%Y/%path/x.mp4"), Path::new(""));
    }

    #[test]
    fn next_sequence_continues_after_the_largest() {
        assert_eq!(next_sequence([]), 1);
        assert_eq!(next_sequence([3, 17, 5]), 18);
        assert_eq!(next_sequence([u64::MAX]), u64::MAX);
    }
}
