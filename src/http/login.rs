//! The admin login: checking a Basic `Authorization` header, and the per-address limit on
//! failed attempts.
//!
//! Owns: a cache so that a page polling with the same credentials is not re-hashed every
//! request, and the rate limiter (pure, time passed in). Does not own: hashing and the
//! password rules (`auth::password`), where the hash is stored (the config) or which routes
//! need a login (`http`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use blake2::{Blake2b512, Digest};

use super::play::PlayKey;
use crate::auth::password::verify_password;

/// The one admin account's user name in Basic credentials.
pub const ADMIN_USER: &str = "admin";
/// Failed attempts allowed before an address must wait.
pub const FREE_ATTEMPTS: u32 = 5;
/// The first wait; it doubles with every further failure up to `MAX_WAIT`.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses tracked at most (the oldest are forgotten first): bounded memory under attack.
const MAX_TRACKED: usize = 4096;

/// The password of a Basic `Authorization` header for `ADMIN_USER`; `None` when the header
/// is not Basic, not decodable or names another user.
pub fn basic_password(authorization: &str) -> Option<String> {
    let (scheme, value) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == ADMIN_USER).then(|| password.to_string())
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No admin password is set yet: first-run setup is pending.
    SetupRequired,
    /// No credentials were sent.
    Anonymous,
    LoggedIn,
    /// Wrong credentials (counted against the address).
    Wrong,
    /// Too many failures from this address: try again after this long (nothing was checked).
    Wait(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed login attempts per client address.
#[derive(Default)]
pub struct RateLimiter {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl RateLimiter {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `ip` must still wait before its next attempt, if at all.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = *self.map().get(&ip)?;
        let since = now.saturating_duration_since(f.last);
        if since >= FORGET_AFTER || f.count < FREE_ATTEMPTS {
            return None;
        }
        let doublings = (f.count - FREE_ATTEMPTS).min(16);
        let wait = (FIRST_WAIT * 2u32.pow(doublings)).min(MAX_WAIT);
        wait.checked_sub(since).filter(|w| !w.is_zero())
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip) {
                    map.remove(&oldest);
                }
            }
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.map().remove(&ip);
    }
}

/// Checks credentials against the stored hash, with the rate limit and a cache.
pub struct Login {
    limiter: RateLimiter,
    /// Random per process: cached digests are worthless outside it.
    key: [u8; 32],
    /// The hash last verified against, and the keyed digest of the password that matched.
    verified: Mutex<Option<(String, Vec<u8>)>>,
    /// The key of play links (`play`): kept here because the login outlives an HTTP server
    /// move (`http.listen`), and links should too.
    play: PlayKey,
}

impl Default for Login {
    fn default() -> Self {
        let mut key = [0u8; 32];
        // Without randomness the key is zero: the cache then only saves time, as before.
        let _ = getrandom::getrandom(&mut key);
        Login {
            limiter: RateLimiter::default(),
            key,
            verified: Mutex::new(None),
            play: PlayKey::default(),
        }
    }
}

impl Login {
    /// Mints and checks play links for the recordings.
    pub fn play(&self) -> &PlayKey {
        &self.play
    }

    fn digest(&self, password: &str) -> Vec<u8> {
        let mut h = Blake2b512::new();
        h.update(self.key);
        h.update(password.as_bytes());
        h.finalize().to_vec()
    }

    /// True when another thread verified these credentials while this one waited for the
    /// hashing lock (five pages logging in at once cost one Argon2 run).
    fn cached_after_wait(&self, hash: &str, digest: &[u8]) -> bool {
        crate::auth::password::when_no_hash_runs(|| {
            let v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            v.as_ref().is_some_and(|(h, d)| h == hash && d == digest)
        })
    }

    /// Judges a request's `Authorization` header from `ip` against `admin_hash`.
    pub fn check(
        &self,
        admin_hash: Option<&str>,
        authorization: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Verdict {
        let Some(hash) = admin_hash else {
            return Verdict::SetupRequired;
        };
        let Some(authorization) = authorization else {
            return Verdict::Anonymous;
        };
        if let Some(wait) = self.limiter.wait(ip, now) {
            return Verdict::Wait(wait);
        }
        let ok = match basic_password(authorization) {
            None => false,
            Some(password) => {
                let digest = self.digest(&password);
                let cached = {
                    let v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                    // The digest is keyed with a secret: comparing it leaks nothing useful.
                    v.as_ref().is_some_and(|(h, d)| h == hash && *d == digest)
                };
                if cached || self.cached_after_wait(hash, &digest) {
                    true
                } else if verify_password(hash, &password) {
                    *self.verified.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((hash.to_string(), digest));
                    true
                } else {
                    false
                }
            }
        };
        if ok {
            self.limiter.succeeded(ip);
            Verdict::LoggedIn
        } else {
            self.limiter.failed(ip, now);
            match self.limiter.wait(ip, now) {
                Some(wait) => Verdict::Wait(wait),
                None => Verdict::Wrong,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::hash_password;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn basic_headers_decode_for_admin_only() {
        assert_eq!(
            basic_password(&basic("admin", "pa:ss word")).as_deref(),
            Some("pa:ss word")
        );
        assert_eq!(basic_password(&basic("root", "x")), None);
        assert_eq!(basic_password("Digest username=admin"), None);
        assert_eq!(basic_password("Basic !!!"), None);
        assert_eq!(basic_password("Basic"), None);
    }

    #[test]
    fn login_verifies_caches_and_limits() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(
            hash,
            hash_password("correct horse").expect("hash"),
            "salted"
        );
        let login = Login::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        let good = basic("admin", "correct horse");
        let bad = basic("admin", "wrong");
        assert_eq!(
            login.check(None, Some(&good), ip, t0),
            Verdict::SetupRequired
        );
        assert_eq!(login.check(Some(&hash), None, ip, t0), Verdict::Anonymous);
        assert_eq!(
            login.check(Some(&hash), Some(&good), ip, t0),
            Verdict::LoggedIn
        );
        // Cached: same answer, and a different hash is not fooled by the cache.
        assert_eq!(
            login.check(Some(&hash), Some(&good), ip, t0),
            Verdict::LoggedIn
        );
        let other_hash = hash_password("something else").expect("hash");
        assert_eq!(
            login.check(Some(&other_hash), Some(&good), ip, t0),
            Verdict::Wrong
        );
        // Four more failures are free; the fifth in all starts the wait.
        for _ in 0..3 {
            assert_eq!(login.check(Some(&hash), Some(&bad), ip, t0), Verdict::Wrong);
        }
        assert_eq!(
            login.check(Some(&hash), Some(&bad), ip, t0),
            Verdict::Wait(FIRST_WAIT)
        );
        // While waiting even the right password is not checked; other addresses are fine.
        assert!(matches!(
            login.check(Some(&hash), Some(&good), ip, t0),
            Verdict::Wait(_)
        ));
        assert_eq!(
            login.check(Some(&hash), Some(&good), other, t0),
            Verdict::LoggedIn
        );
        // After the wait, a right password clears the record.
        let t1 = t0 + FIRST_WAIT;
        assert_eq!(
            login.check(Some(&hash), Some(&good), ip, t1),
            Verdict::LoggedIn
        );
        assert_eq!(login.limiter.wait(ip, t1), None);
    }

    #[test]
    fn waits_double_up_to_the_cap_and_failures_are_forgotten() {
        let l = RateLimiter::default();
        let ip: IpAddr = "::1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            l.failed(ip, t0);
        }
        assert_eq!(l.wait(ip, t0), None);
        l.failed(ip, t0);
        assert_eq!(l.wait(ip, t0), Some(Duration::from_secs(1)));
        l.failed(ip, t0);
        assert_eq!(l.wait(ip, t0), Some(Duration::from_secs(2)));
        assert_eq!(
            l.wait(ip, t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        for _ in 0..20 {
            l.failed(ip, t0);
        }
        assert_eq!(l.wait(ip, t0), Some(MAX_WAIT));
        assert_eq!(l.wait(ip, t0 + MAX_WAIT), None);
        // Long after, the next failure starts from zero again.
        let later = t0 + FORGET_AFTER;
        l.failed(ip, later);
        assert_eq!(l.wait(ip, later), None);
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            l.failed(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(l.map().len() <= MAX_TRACKED);
    }
}
