//! Human units in the configuration: durations (`"24h"`, `"1h30m"`, `"500ms"`) and sizes
//! (`"500MB"`, `"1.5GB"`, `"100MiB"`, `"123"`), plus serde newtypes that accept either such a
//! string or a plain number (seconds, bytes) and write the human string back.
//!
//! Owns: parsing and formatting of these units, exactly (integer arithmetic, no float
//! rounding except for percentages). Does not own: which fields use them or their defaults
//! (that is `config`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Duration units, longest spelling first so that `ms` is not read as `m` + junk.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
];

/// Parses `"24h"`, `"10m"`, `"1s"`, `"500ms"`, `"1h30m"`, `"1.5h"`, `"7d"`; a bare number
/// (`"90"`) is seconds. Units: d, h, m, s, ms, us (µs), ns; parts may be separated by spaces.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: String| format!("invalid duration \"{text}\": {why}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty (examples: 24h, 10m, 1h30m, 500ms)".into()));
    }
    if s.starts_with('-') {
        return Err(bad("durations cannot be negative".into()));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (num, after) = split_number(rest);
        if num.is_empty() {
            return Err(bad(format!("expected a number at \"{rest}\"")));
        }
        let (whole, frac) = parse_decimal(num).map_err(bad)?;
        let after_trim = after.trim_start();
        let unit_end = after_trim
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after_trim.len());
        let unit = &after_trim[..unit_end];
        let scale = if unit.is_empty() {
            if total == 0 && after_trim.is_empty() {
                NANOS_PER_SEC // a bare number: seconds
            } else {
                return Err(bad(format!("missing unit after \"{num}\"")));
            }
        } else {
            DURATION_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, ns)| *ns)
                .ok_or_else(|| {
                    bad(format!(
                        "unknown unit \"{unit}\" (use d, h, m, s, ms, us or ns)"
                    ))
                })?
        };
        let part = scaled(whole, frac, scale).ok_or_else(|| bad("too large".into()))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| bad("too large".into()))?;
        rest = after_trim[unit_end..].trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| bad("too large".into()))?;
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// Writes a duration the way [`parse_duration`] reads it, largest units first and exact:
/// `24h`, `1h30m`, `1s500ms`, `0s`. Days are written as hours (`168h`), as people write them.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut ns = d.as_nanos();
    let mut out = String::new();
    for (name, scale) in [
        ("h", 3_600 * NANOS_PER_SEC),
        ("m", 60 * NANOS_PER_SEC),
        ("s", NANOS_PER_SEC),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        let n = ns / scale;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
            ns %= scale;
        }
    }
    out
}

/// Size units (case-insensitive): SI powers of 1000 and IEC powers of 1024.
const SIZE_UNITS: &[(&str, u128)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
];

/// Parses `"500MB"`, `"1.5GB"`, `"100MiB"`, `"123"` (bytes). SI units (kB, MB, GB, TB) are
/// powers of 1000, IEC units (KiB, MiB, GiB, TiB) powers of 1024; case does not matter and
/// `b` means bytes (nobody sizes a disk in bits). A fraction of a byte is rounded down.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: String| format!("invalid size \"{text}\": {why}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty (examples: 500MB, 1.5GB, 100MiB, 123)".into()));
    }
    if s.starts_with('-') {
        return Err(bad("sizes cannot be negative".into()));
    }
    let (num, unit) = split_number(s);
    if num.is_empty() {
        return Err(bad("expected a number first".into()));
    }
    let (whole, frac) = parse_decimal(num).map_err(bad)?;
    let unit = unit.trim().to_ascii_lowercase();
    let scale = SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, b)| *b)
        .ok_or_else(|| {
            bad(format!(
                "unknown unit \"{unit}\" (use B, kB, MB, GB, TB or KiB, MiB, GiB, TiB)"
            ))
        })?;
    let bytes = scaled(whole, frac, scale).ok_or_else(|| bad("too large".into()))?;
    u64::try_from(bytes).map_err(|_| bad("too large".into()))
}

/// Writes a size exactly, in the unit giving the smallest number (`500MB`, `100MiB`, `123B`).
pub fn format_size(bytes: u64) -> String {
    let mut best = (bytes, "B");
    for (name, scale) in [
        ("kB", 1_000u64),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
    ] {
        if bytes != 0 && bytes.is_multiple_of(scale) && bytes / scale < best.0 {
            best = (bytes / scale, name);
        }
    }
    format!("{}{}", best.0, best.1)
}

/// Splits `"1.5GB"` into `("1.5", "GB")`.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// `"1.25"` -> (1, "25"): whole part and fraction digits, kept exact.
fn parse_decimal(num: &str) -> Result<(u128, &str), String> {
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(format!("\"{num}\" is not a number"));
    }
    if frac.len() > 18 {
        return Err(format!("\"{num}\" has too many decimals"));
    }
    let whole = if whole.is_empty() {
        0
    } else {
        whole
            .parse::<u128>()
            .map_err(|_| format!("\"{num}\" is too large"))?
    };
    Ok((whole, frac))
}

/// (whole + 0.frac) * scale, rounded down; None on overflow.
fn scaled(whole: u128, frac: &str, scale: u128) -> Option<u128> {
    let mut v = whole.checked_mul(scale)?;
    if !frac.is_empty() {
        let digits: u128 = frac.parse().ok()?;
        let denom = 10u128.checked_pow(frac.len() as u32)?;
        v = v.checked_add(digits.checked_mul(scale)? / denom)?;
    }
    Some(v)
}

/// A duration in the config: reads `"24h"` or a number of seconds (`86400`, `0.5`), writes
/// `"24h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"24h\", \"10m\", \"500ms\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_duration(v).map(Seconds).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(|s| Seconds(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("invalid duration {v}: cannot be negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(v).map(Seconds).map_err(|_| {
                    E::custom(format!(
                        "invalid duration {v}: not a number of seconds >= 0"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in the config: reads `"500MB"`, `"100MiB"` or a number of bytes, writes the
/// exact human string (`"500MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"500MB\", \"100MiB\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_size(v).map(Bytes).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("invalid size {v}: cannot be negative")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size that may be relative to the filesystem: `"500MB"`, `123`, or `"10%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Bytes(u64),
    /// Percent of the filesystem's total size, 0 to 100.
    Percent(f64),
}

impl Amount {
    /// Bytes for a filesystem of `total_bytes` (percentages rounded down).
    pub fn resolve(&self, total_bytes: u64) -> u64 {
        match *self {
            Amount::Bytes(b) => b,
            // The cast saturates; p is checked to be within 0..=100 when parsed.
            Amount::Percent(p) => (total_bytes as f64 * p / 100.0) as u64,
        }
    }

    /// Parses `"10%"`, `"12.5%"` or a size as [`parse_size`] reads it.
    pub fn parse(text: &str) -> Result<Amount, String> {
        match text.trim().strip_suffix('%') {
            Some(p) => {
                let v: f64 = p.trim().parse().map_err(|_| {
                    format!("invalid percentage \"{text}\": expected a number before '%'")
                })?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(format!(
                        "invalid percentage \"{text}\": must be from 0% to 100%"
                    ));
                }
                Ok(Amount::Percent(v))
            }
            None => parse_size(text).map(Amount::Bytes),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(b) => f.write_str(&format_size(*b)),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a size such as \"500MB\", a percentage such as \"10%\", or a number of bytes",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                u64::try_from(v)
                    .map(Amount::Bytes)
                    .map_err(|_| E::custom(format!("invalid size {v}: cannot be negative")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("24h"), Ok(secs(86_400)));
        assert_eq!(parse_duration("10m"), Ok(secs(600)));
        assert_eq!(parse_duration("1s"), Ok(secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5_400)));
        assert_eq!(parse_duration("1h 30m 15s"), Ok(secs(5_415)));
        assert_eq!(parse_duration("1.5h"), Ok(secs(5_400)));
        assert_eq!(parse_duration("7d"), Ok(secs(7 * 86_400)));
        assert_eq!(parse_duration(" 90 "), Ok(secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn durations_refuse_with_reasons() {
        for (text, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("10x", "unknown unit \"x\""),
            ("-5s", "negative"),
            ("h", "expected a number"),
            ("1h30", "missing unit after \"30\""),
            ("1..5s", "not a number"),
            ("99999999999999999999999h", "too large"),
            ("5 mins", "unknown unit \"mins\""),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains(&format!("\"{text}\"")), "{text}: {err}");
        }
    }

    #[test]
    fn durations_format_back_exactly() {
        for (d, text) in [
            (secs(86_400), "24h"),
            (secs(5_400), "1h30m"),
            (Duration::from_millis(1_500), "1s500ms"),
            (Duration::ZERO, "0s"),
            (secs(7 * 86_400), "168h"),
            (Duration::new(3, 7), "3s7ns"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("100MiB"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("123B"), Ok(123));
        assert_eq!(parse_size("2 kb"), Ok(2_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1_536));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(
            parse_size("0.1KiB"),
            Ok(102),
            "fraction of a byte rounded down"
        );
    }

    #[test]
    fn sizes_refuse_with_reasons() {
        for (text, why) in [
            ("", "empty"),
            ("MB", "expected a number"),
            ("5XB", "unknown unit \"xb\""),
            ("-1MB", "negative"),
            ("1.2.3MB", "not a number"),
            ("99999999999TB", "too large"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_format_back_exactly() {
        for (b, text) in [
            (500_000_000, "500MB"),
            (100 << 20, "100MiB"),
            (123, "123B"),
            (0, "0B"),
            (1_500_000_000, "1500MB"),
            (1 << 30, "1GiB"),
        ] {
            assert_eq!(format_size(b), text);
            assert_eq!(parse_size(text), Ok(b));
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Cfg {
        delete_after: Seconds,
        max_bytes: Option<Bytes>,
        min_free: Amount,
    }

    #[test]
    fn serde_accepts_strings_and_numbers_and_writes_strings() {
        let c: Cfg = serde_json::from_str(
            r#"{"delete_after": "1h30m", "max_bytes": "1.5GB", "min_free": "10%"}"#,
        )
        .unwrap();
        assert_eq!(c.delete_after, Seconds(secs(5_400)));
        assert_eq!(c.max_bytes, Some(Bytes(1_500_000_000)));
        assert_eq!(c.min_free, Amount::Percent(10.0));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"delete_after": "1h30m", "max_bytes": "1500MB", "min_free": "10%"})
        );

        let c: Cfg = serde_json::from_str(
            r#"{"delete_after": 86400, "max_bytes": null, "min_free": 500000000}"#,
        )
        .unwrap();
        assert_eq!(c.delete_after, Seconds(secs(86_400)));
        assert_eq!(c.max_bytes, None);
        assert_eq!(c.min_free, Amount::Bytes(500_000_000));
        assert_eq!(
            serde_json::to_value(&c).unwrap()["delete_after"],
            serde_json::json!("24h")
        );

        let c: Cfg =
            serde_json::from_str(r#"{"delete_after": 0.5, "max_bytes": 7, "min_free": "1GiB"}"#)
                .unwrap();
        assert_eq!(c.delete_after, Seconds(Duration::from_millis(500)));
        assert_eq!(c.min_free, Amount::Bytes(1 << 30));
    }

    #[test]
    fn serde_errors_say_what_is_wrong() {
        for (doc, why) in [
            (
                r#"{"delete_after": "soon", "max_bytes": 1, "min_free": 1}"#,
                "invalid duration \"soon\"",
            ),
            (
                r#"{"delete_after": -5, "max_bytes": 1, "min_free": 1}"#,
                "cannot be negative",
            ),
            (
                r#"{"delete_after": 1, "max_bytes": "lots", "min_free": 1}"#,
                "invalid size \"lots\"",
            ),
            (
                r#"{"delete_after": 1, "max_bytes": 1, "min_free": "150%"}"#,
                "from 0% to 100%",
            ),
            (
                r#"{"delete_after": true, "max_bytes": 1, "min_free": 1}"#,
                "a duration such as",
            ),
        ] {
            let err = serde_json::from_str::<Cfg>(doc).unwrap_err().to_string();
            assert!(err.contains(why), "{doc}: {err}");
        }
    }

    #[test]
    fn amounts_resolve_against_the_filesystem() {
        assert_eq!(Amount::Percent(10.0).resolve(32_000_000_000), 3_200_000_000);
        assert_eq!(Amount::Percent(12.5).resolve(1_000), 125);
        assert_eq!(Amount::Percent(0.0).resolve(1_000), 0);
        assert_eq!(Amount::Bytes(500).resolve(1_000), 500);
        assert_eq!(Amount::parse(" 10 %"), Ok(Amount::Percent(10.0)));
        assert_eq!(Amount::parse("500MB"), Ok(Amount::Bytes(500_000_000)));
        assert!(Amount::parse("x%")
            .unwrap_err()
            .contains("expected a number"));
        assert!(Amount::parse("-1%")
            .unwrap_err()
            .contains("from 0% to 100%"));
    }
}
