//! The HTTP login: checking a Basic `Authorization` header as the admin (user `admin`,
//! its Argon2id hash in the config) or as a viewer (an RTSP user of the config, any other
//! name), and the per-address limit on failed attempts, shared by both.
//!
//! Owns: a cache so that a page polling with the admin's credentials is not re-hashed every
//! request, the viewers' password comparison, and the rate limiter (pure, time passed in).
//! Does not own: hashing and the password rules (`auth::password`), where hashes and users
//! are stored (the config) or which routes need which login (`access`, `routes`).
//!
//! RTSP users' passwords are stored as the config gives them (RTSP Digest needs them, or
//! their MD5 `HA1`), so there is no slow hash to check a viewer against: the sent and the
//! stored password are compared as digests keyed with this process's secret (no early exit
//! on a matching prefix), and guessing is held back by the same per-address limit as the
//! admin's. The name `admin` is always the admin: an RTSP user of that name can play over
//! RTSP but never logs in here as a viewer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use blake2::{Blake2b512, Digest};

use super::access::Viewer;
use super::play::PlayKey;
use crate::auth::password::verify_password;
use crate::config::User;

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

/// The user name and password of a Basic `Authorization` header; `None` when the header is
/// not Basic or not decodable.
pub fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, value) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No admin password is set yet: first-run setup is pending (credentials unchecked).
    SetupRequired,
    /// No credentials were sent.
    Anonymous,
    /// The admin's login.
    Admin,
    /// An RTSP user's login (or a live link: `access::Viewer::of_link`).
    Viewer(Viewer),
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

    /// True when `password` is `user`'s: keyed digests compared, so the time taken says
    /// nothing about how much of a guess was right.
    fn viewer_password_matches(&self, user: &User, password: &str) -> bool {
        self.digest(&user.password) == self.digest(password)
    }

    /// Judges a request's `Authorization` header from `ip`: as the admin against
    /// `admin_hash`, or as one of `users` (asked for only when another name is sent).
    pub fn check(
        &self,
        admin_hash: Option<&str>,
        users: &dyn Fn() -> Vec<User>,
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
        let verdict = match basic_credentials(authorization) {
            None => None,
            Some((user, password)) if user != ADMIN_USER => users()
                .into_iter()
                .find(|u| u.name == user)
                .filter(|u| self.viewer_password_matches(u, &password))
                .map(|u| Verdict::Viewer(Viewer::new(&u.name, u.permissions))),
            Some((_, password)) => {
                let digest = self.digest(&password);
                let cached = {
                    let v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                    // The digest is keyed with a secret: comparing it leaks nothing useful.
                    v.as_ref().is_some_and(|(h, d)| h == hash && *d == digest)
                };
                let ok = if cached || self.cached_after_wait(hash, &digest) {
                    true
                } else if verify_password(hash, &password) {
                    *self.verified.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((hash.to_string(), digest));
                    true
                } else {
                    false
                };
                ok.then_some(Verdict::Admin)
            }
        };
        if let Some(v) = verdict {
            self.limiter.succeeded(ip);
            v
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

    fn no_users() -> Vec<User> {
        Vec::new()
    }

    #[test]
    fn basic_headers_decode() {
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(
            basic_credentials(&basic("admin", "pa:ss word")),
            pair("admin", "pa:ss word")
        );
        assert_eq!(basic_credentials(&basic("root", "x")), pair("root", "x"));
        assert_eq!(basic_credentials("Digest username=admin"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic"), None);
    }

    #[test]
    fn viewers_log_in_as_rtsp_users_and_share_the_limit() {
        use crate::auth::permissions::{Action, Permission};
        let hash = hash_password("admin password").expect("hash");
        let grants = Some(vec![Permission {
            action: Action::Read,
            path: Some("door".into()),
        }]);
        let users = || {
            vec![
                User {
                    name: "ann".into(),
                    password: "ann-secret".into(),
                    permissions: grants.clone(),
                },
                User {
                    name: "admin".into(),
                    password: "rtsp-admin".into(),
                    permissions: None,
                },
            ]
        };
        let login = Login::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            login.check(
                Some(&hash),
                &users,
                Some(&basic("ann", "ann-secret")),
                ip,
                t0
            ),
            Verdict::Viewer(Viewer::new("ann", grants.clone()))
        );
        // Before the first-run setup nobody is checked, viewers neither.
        assert_eq!(
            login.check(None, &users, Some(&basic("ann", "ann-secret")), ip, t0),
            Verdict::SetupRequired
        );
        // `admin` is the admin, even when an RTSP user has that name.
        assert_eq!(
            login.check(
                Some(&hash),
                &users,
                Some(&basic("admin", "rtsp-admin")),
                ip,
                t0
            ),
            Verdict::Wrong
        );
        // Wrong passwords and unknown names count toward the same limit as the admin's.
        assert_eq!(
            login.check(Some(&hash), &users, Some(&basic("ann", "nope")), ip, t0),
            Verdict::Wrong
        );
        assert_eq!(
            login.check(
                Some(&hash),
                &users,
                Some(&basic("bob", "ann-secret")),
                ip,
                t0
            ),
            Verdict::Wrong
        );
        assert_eq!(
            login.check(Some(&hash), &users, Some(&basic("ann", "")), ip, t0),
            Verdict::Wrong
        );
        assert_eq!(
            login.check(Some(&hash), &users, Some(&basic("ann", "x")), ip, t0),
            Verdict::Wait(FIRST_WAIT)
        );
        assert!(matches!(
            login.check(
                Some(&hash),
                &users,
                Some(&basic("ann", "ann-secret")),
                ip,
                t0
            ),
            Verdict::Wait(_)
        ));
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
            login.check(None, &no_users, Some(&good), ip, t0),
            Verdict::SetupRequired
        );
        assert_eq!(
            login.check(Some(&hash), &no_users, None, ip, t0),
            Verdict::Anonymous
        );
        assert_eq!(
            login.check(Some(&hash), &no_users, Some(&good), ip, t0),
            Verdict::Admin
        );
        // Cached: same answer, and a different hash is not fooled by the cache.
        assert_eq!(
            login.check(Some(&hash), &no_users, Some(&good), ip, t0),
            Verdict::Admin
        );
        let other_hash = hash_password("something else").expect("hash");
        assert_eq!(
            login.check(Some(&other_hash), &no_users, Some(&good), ip, t0),
            Verdict::Wrong
        );
        // Four more failures are free; the fifth in all starts the wait.
        for _ in 0..3 {
            assert_eq!(
                login.check(Some(&hash), &no_users, Some(&bad), ip, t0),
                Verdict::Wrong
            );
        }
        assert_eq!(
            login.check(Some(&hash), &no_users, Some(&bad), ip, t0),
            Verdict::Wait(FIRST_WAIT)
        );
        // While waiting even the right password is not checked; other addresses are fine.
        assert!(matches!(
            login.check(Some(&hash), &no_users, Some(&good), ip, t0),
            Verdict::Wait(_)
        ));
        assert_eq!(
            login.check(Some(&hash), &no_users, Some(&good), other, t0),
            Verdict::Admin
        );
        // After the wait, a right password clears the record.
        let t1 = t0 + FIRST_WAIT;
        assert_eq!(
            login.check(Some(&hash), &no_users, Some(&good), ip, t1),
            Verdict::Admin
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
