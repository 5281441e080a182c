//! Play links: short-lived capabilities that let a `<video>` element fetch one recording
//! without the admin's `Authorization` header (a media element cannot send one).
//!
//! Owns: the token format (`EXPIRY.MAC`, in the query as `?token=`), minting and checking,
//! the key (random per process, so links die with a restart) and building a segment's
//! percent-encoded URL. Does not own: which requests may use a token (`http::answer`: only
//! GET/HEAD of a segment) or the login (`login`).
//!
//! The MAC is BLAKE2b-256 keyed with the process key, over the admin password hash, the path,
//! the file and the expiry (length-prefixed: no two inputs share an encoding). The hash is
//! included so that changing the admin password revokes every link. Expiry is in seconds of
//! the monotonic clock since the key was made: a wall clock that steps (an appliance often
//! boots before NTP) can neither extend nor cut a link's life.

use std::time::{Duration, Instant};

use base64::Engine;
use blake2::digest::consts::U32;
use blake2::digest::Mac;
use blake2::Blake2bMac;

/// How long a play link works: long enough to watch a default (10 min) segment, with margin.
pub const LIFETIME: Duration = Duration::from_secs(3600);

/// The query parameter carrying the token.
pub const PARAM: &str = "token";

/// Longest token accepted (a u64 expiry, a dot and 43 base64 characters, with margin).
const MAX_TOKEN: usize = 80;

type Blake2bMac256 = Blake2bMac<U32>;

/// The per-process key and the monotonic origin of expiry times.
pub struct PlayKey {
    /// None when the system had no random numbers: a guessable key would make links
    /// forgeable, so then no link is made or accepted.
    key: Option<[u8; 32]>,
    epoch: Instant,
}

impl Default for PlayKey {
    fn default() -> Self {
        let mut key = [0u8; 32];
        let key = match getrandom::getrandom(&mut key) {
            Ok(()) => Some(key),
            Err(e) => {
                log::error!("http: no random numbers for play links ({e}); recordings play only with the login");
                None
            }
        };
        PlayKey {
            key,
            epoch: Instant::now(),
        }
    }
}

/// Why a token was refused (all answer 401; the reason is for tests and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not `EXPIRY.MAC`, or too long.
    Malformed,
    Expired,
    /// The MAC does not match: tampered, another file or path, another process, another
    /// admin password.
    Forged,
}

impl PlayKey {
    fn seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn mac(&self, admin_hash: &str, path: &str, file: &str, expiry: u64) -> Option<Blake2bMac256> {
        // BLAKE2b takes keys up to 64 bytes: a 32-byte one cannot fail.
        let mut m = <Blake2bMac256 as Mac>::new_from_slice(self.key.as_ref()?).ok()?;
        m.update(b"vigint play link v1");
        for part in [admin_hash.as_bytes(), path.as_bytes(), file.as_bytes()] {
            m.update(&(part.len() as u64).to_le_bytes());
            m.update(part);
        }
        m.update(&expiry.to_le_bytes());
        Some(m)
    }

    /// A token for GET/HEAD of `path`/`file`, valid for `LIFETIME` from `now`; None
    /// without a key.
    pub fn mint(&self, admin_hash: &str, path: &str, file: &str, now: Instant) -> Option<String> {
        let expiry = self.seconds(now) + LIFETIME.as_secs();
        let tag = self
            .mac(admin_hash, path, file, expiry)?
            .finalize()
            .into_bytes();
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag);
        Some(format!("{expiry}.{tag}"))
    }

    /// Checks `token` for `path`/`file` at `now`; the MAC is compared in constant time.
    pub fn check(
        &self,
        admin_hash: &str,
        path: &str,
        file: &str,
        token: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        if token.len() > MAX_TOKEN {
            return Err(Refused::Malformed);
        }
        let (expiry, tag) = token.split_once('.').ok_or(Refused::Malformed)?;
        if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refused::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| Refused::Malformed)?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Refused::Malformed)?;
        // Verify before looking at the time: an expiry in a forged token means nothing.
        self.mac(admin_hash, path, file, expiry)
            .ok_or(Refused::Forged)?
            .verify_slice(&tag)
            .map_err(|_| Refused::Forged)?;
        if self.seconds(now) >= expiry {
            return Err(Refused::Expired);
        }
        Ok(())
    }
}

/// The value of `token` in a request target's query, if there is one (the first wins). The
/// token's alphabet (digits, '.', base64url) needs no percent-decoding; anything encoded
/// fails the check.
pub fn token_in(target: &str) -> Option<&str> {
    super::routes::query_of(target)
        .split('&')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == PARAM => Some(v),
            None if kv == PARAM => Some(""),
            _ => None,
        })
}

/// Percent-encodes one path component: everything but RFC 3986's unreserved characters.
pub fn encode_component(c: &str) -> String {
    let mut out = String::with_capacity(c.len());
    for b in c.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/api/v1/recordings/{path}/{file}` with each component encoded (so that `routes`
/// decodes it back to exactly `path` and `file`), plus `?token=` when given.
pub fn segment_url(path: &str, file: &str, token: Option<&str>) -> String {
    let mut url = format!("/api/v1/recordings/{}", encode_component(path));
    for c in file.split('/') {
        url.push('/');
        url.push_str(&encode_component(c));
    }
    if let Some(t) = token {
        url.push('?');
        url.push_str(PARAM);
        url.push('=');
        url.push_str(t);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::{decode, Route};

    const HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c2FsdA$aGFzaA";

    #[test]
    fn round_trip_and_only_for_that_file() {
        let k = PlayKey::default();
        let now = Instant::now();
        let t = k.mint(HASH, "cam", "2026/a.mp4", now).unwrap();
        assert_eq!(k.check(HASH, "cam", "2026/a.mp4", &t, now), Ok(()));
        let later = now + LIFETIME - Duration::from_secs(2);
        assert_eq!(k.check(HASH, "cam", "2026/a.mp4", &t, later), Ok(()));
        // Another file, path, or a split that concatenates to the same bytes.
        assert_eq!(
            k.check(HASH, "cam", "2026/b.mp4", &t, now),
            Err(Refused::Forged)
        );
        assert_eq!(
            k.check(HASH, "side", "2026/a.mp4", &t, now),
            Err(Refused::Forged)
        );
        assert_eq!(
            k.check(HASH, "cam2026", "/a.mp4", &t, now),
            Err(Refused::Forged)
        );
        // A new admin password revokes it.
        assert_eq!(
            k.check("$argon2id$other", "cam", "2026/a.mp4", &t, now),
            Err(Refused::Forged)
        );
    }

    #[test]
    fn expired_tampered_and_another_process() {
        let k = PlayKey::default();
        let now = Instant::now();
        let t = k.mint(HASH, "cam", "a.mp4", now).unwrap();
        assert_eq!(
            k.check(
                HASH,
                "cam",
                "a.mp4",
                &t,
                now + LIFETIME + Duration::from_secs(1)
            ),
            Err(Refused::Expired)
        );
        // A later expiry with the old MAC.
        let (expiry, tag) = t.split_once('.').unwrap();
        let extended = format!("{}.{tag}", expiry.parse::<u64>().unwrap() + 3600);
        assert_eq!(
            k.check(HASH, "cam", "a.mp4", &extended, now),
            Err(Refused::Forged)
        );
        // Every single character changed in the MAC.
        for i in expiry.len() + 1..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(b).unwrap();
            assert!(k.check(HASH, "cam", "a.mp4", &bad, now).is_err(), "{bad}");
        }
        for bad in [
            "",
            ".",
            "123",
            "x.abc",
            "-1.abc",
            "1.%41",
            "1.a b",
            &"9".repeat(100),
        ] {
            assert_eq!(
                k.check(HASH, "cam", "a.mp4", bad, now),
                Err(Refused::Malformed),
                "{bad:?}"
            );
        }
        let truncated = &t[..t.len() - 4];
        assert!(k.check(HASH, "cam", "a.mp4", truncated, now).is_err());
        // A restart makes a new key: old links are forged there.
        let restarted = PlayKey::default();
        assert_eq!(
            restarted.check(HASH, "cam", "a.mp4", &t, now),
            Err(Refused::Forged)
        );
        // Without randomness no link is made and none passes.
        let off = PlayKey {
            key: None,
            epoch: now,
        };
        assert_eq!(off.mint(HASH, "cam", "a.mp4", now), None);
        assert_eq!(
            off.check(HASH, "cam", "a.mp4", &t, now),
            Err(Refused::Forged)
        );
    }

    #[test]
    fn tokens_in_queries() {
        assert_eq!(token_in("/a?token=1.x"), Some("1.x"));
        assert_eq!(token_in("/a?x=1&token=1.x&token=2.y#f"), Some("1.x"));
        assert_eq!(token_in("/a?token=1.x#frag"), Some("1.x"));
        assert_eq!(token_in("/a?token"), Some(""));
        assert_eq!(token_in("/a?tokens=1"), None);
        assert_eq!(token_in("/a"), None);
        assert_eq!(token_in("/a#token=1"), None);
    }

    #[test]
    fn segment_urls_decode_back_to_the_names() {
        for (path, file) in [
            ("cam", "2026-11-21_10-00-00-000000_000000001-start.mp4"),
            ("cam", "2026/11/21/a b+c%d é.mp4"),
            ("back door", "x?y#z&token=1.mp4"),
        ] {
            let url = segment_url(path, file, Some("1.abc"));
            assert_eq!(
                decode("GET", &url),
                Ok(Route::Segment {
                    path: path.into(),
                    file: file.into()
                }),
                "{url}"
            );
            assert_eq!(token_in(&url), Some("1.abc"), "{url}");
        }
        assert_eq!(
            segment_url("cam", "a.mp4", None),
            "/api/v1/recordings/cam/a.mp4"
        );
    }
}
