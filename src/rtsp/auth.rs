//! Server-side RTSP authentication: Basic (RFC 7617) and Digest MD5 (RFC 2617 / RFC 7616).
//!
//! Owns: the user table (kept as MD5 `HA1` hashes, never plain passwords), parsing of the
//! Authorization header, verification of Basic and Digest credentials, stateless nonces and
//! the WWW-Authenticate challenges of a 401. Does not own: sending the 401, sessions, or
//! where the users come from (config).
//!
//! Challenge choice (interop): the Digest challenge carries no `qop`. GStreamer's
//! gstrtspconnection (1.22, and current sources) always answers Digest in RFC 2069 form (no
//! qop, nc or cnonce) whatever the server offers, so offering `qop="auth"` would either lock
//! GStreamer out (strict RFC 2617) or be a downgrade we accept anyway. ffmpeg (httpauth.c)
//! and retina (the http-auth crate) answer a no-qop challenge in RFC 2069 form too. With the
//! Digest and Basic challenges both offered, all three picked Digest against a probe server.
//! Responses with `qop=auth` are still accepted, as RFC 7616 clients may send them.
//!
//! Nonces are stateless: a timestamp (seconds since this authenticator was made, on the
//! monotonic clock so wall-clock jumps on boards without RTC do not matter) and a counter,
//! keyed with a random per-process secret. A nonce older than [`NONCE_LIFETIME`] gets a 401
//! with `stale=TRUE`, and clients retry with the fresh nonce without asking for a password.
//! Nonce counts are not tracked, so a captured response can be replayed within the nonce
//! lifetime (as with any RFC 2069 Digest).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};

/// How long a nonce is accepted before a client must take a fresh one (`stale=TRUE`).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Authorization headers longer than this are refused without parsing.
const MAX_HEADER_LEN: usize = 4096;
/// Hex digits of the timestamp and of the counter in a nonce.
const NONCE_TS_HEX: usize = 12;
const NONCE_CTR_HEX: usize = 8;
const NONCE_LEN: usize = NONCE_TS_HEX + NONCE_CTR_HEX + 32;

/// A user allowed to watch. `Debug` does not print the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The outcome of checking a request's Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// No users are configured: everyone may watch.
    Open,
    /// Valid credentials of this user.
    Allowed { user: String },
    /// Users are configured and the request has no (or a blank) Authorization header.
    Missing,
    /// Credentials were given and refused. `reason` is for logs, never for the client.
    /// `stale` means the Digest was right but its nonce expired: answer 401 with
    /// `challenges(true)` and the client retries without asking for a password.
    Rejected {
        user: Option<String>,
        reason: &'static str,
        stale: bool,
    },
}

struct User {
    name: String,
    /// MD5(name:realm:password) in lowercase hex: all Digest needs, and Basic compares it.
    ha1: String,
}

/// Checks Authorization headers against a fixed user table.
pub struct Authenticator {
    users: Vec<User>,
    realm: String,
    secret: [u8; 32],
    started: Instant,
    counter: AtomicU64,
    offer_digest: bool,
    offer_basic: bool,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("users", &names)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex MD5 of the concatenated parts.
fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xF), 16).unwrap_or('0'));
    }
    out
}

/// Compares without an early exit on the first differing byte, so response timing does not
/// reveal how much of a guess was right. Lengths are not secret (fixed-size hex digests).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// request-digest from HA1 (RFC 2617 3.2.2.1): with `qop` = (nc, cnonce, qop) the RFC 2617
/// form, without it the RFC 2069 form.
fn response_from_ha1(
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha2 = md5_hex(&[method.as_bytes(), b":", uri.as_bytes()]);
    match qop {
        Some((nc, cnonce, qop)) => md5_hex(&[
            ha1.as_bytes(),
            b":",
            nonce.as_bytes(),
            b":",
            nc.as_bytes(),
            b":",
            cnonce.as_bytes(),
            b":",
            qop.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        None => md5_hex(&[ha1.as_bytes(), b":", nonce.as_bytes(), b":", ha2.as_bytes()]),
    }
}

/// The Digest `response` a client computes, in lowercase hex. `qop` is
/// `Some((nc, cnonce, qop))` for RFC 2617 `qop=auth`, `None` for the RFC 2069 form.
pub fn digest_response(
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    response_from_ha1(&ha1(username, realm, password), method, uri, nonce, qop)
}

/// Quotes a value for a header parameter (quoted-string with backslash escapes).
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses `name=value, name="quoted \" value", ...` (RFC 7235 auth-param list). Names are
/// lowercased; the first occurrence of a name wins. Errors on syntax it cannot make sense of.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars
            .next_if(|&(_, c)| c == ',' || c.is_whitespace())
            .is_some()
        {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = start;
        while let Some((i, c)) = chars.next_if(|&(_, c)| c != '=' && c != ',' && !c.is_whitespace())
        {
            end = i + c.len_utf8();
        }
        let name = &s[start..end];
        if name.is_empty() {
            return Err("parameter without a name");
        }
        while chars.next_if(|&(_, c)| c == ' ' || c == '\t').is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            return Err("parameter without a value");
        }
        while chars.next_if(|&(_, c)| c == ' ' || c == '\t').is_some() {}
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err("unterminated quoted string");
            }
        } else {
            while let Some((_, c)) = chars.next_if(|&(_, c)| c != ',' && !c.is_whitespace()) {
                value.push(c);
            }
        }
        let name = name.to_ascii_lowercase();
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `username*=UTF-8''percent%20encoded` (RFC 7616 3.4.4, RFC 5987), as http-auth sends
/// usernames that cannot be a quoted string.
fn extended_username(v: &str) -> Option<String> {
    let prefix = v.get(..7)?;
    if !prefix.eq_ignore_ascii_case("UTF-8''") {
        return None;
    }
    let mut bytes = Vec::with_capacity(v.len());
    let mut rest = v.get(7..)?.bytes();
    while let Some(b) = rest.next() {
        if b == b'%' {
            let hi = char::from(rest.next()?).to_digit(16)?;
            let lo = char::from(rest.next()?).to_digit(16)?;
            bytes.push((hi * 16 + lo) as u8);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// What a request URI or a Digest `uri` points at: the authority of an absolute URI
/// (without user info), and the path split into the path name and the rest (a track's
/// control, `*`), with the query and trailing slashes dropped. `None` for `*` and for
/// anything that is neither an absolute URI nor an absolute path.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    authority: Option<&'a str>,
    name: &'a str,
    rest: &'a str,
}

impl<'a> Target<'a> {
    fn parse(uri: &'a str) -> Option<Target<'a>> {
        let (authority, path) = match uri.find("://") {
            Some(i) => {
                let after = &uri[i + 3..];
                let end = after.find(['/', '?']).unwrap_or(after.len());
                let authority = &after[..end];
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                (Some(host), &after[end..])
            }
            None if uri.starts_with('/') => (None, uri),
            None => return None,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let (name, rest) = path.split_once('/').unwrap_or((path, ""));
        Some(Target {
            authority,
            name,
            rest: rest.trim_end_matches('/'),
        })
    }
}

/// Whether the Digest `uri` names the same presentation as the request URI, so the digest
/// (computed over the `uri` the client sent) may stand for this request. Accepted: the
/// request URI itself (also with or without a trailing slash, and as an absolute path
/// against an absolute URI, RFC 7616 3.4.6); and for a request inside a path, that path's
/// base URL with or without the trailing slash, or its aggregate control (`*`). live555
/// (VLC, many NVRs) computes every digest after DESCRIBE over the `Content-Base`, also for
/// SETUP of `base/trackID=0`. Never another path, another track or another host.
fn same_presentation(digest_uri: &str, request_uri: &str) -> bool {
    let norm = |u: &str| u.trim_end_matches('/').to_owned();
    if norm(digest_uri) == norm(request_uri) {
        return true;
    }
    let (Some(d), Some(r)) = (Target::parse(digest_uri), Target::parse(request_uri)) else {
        return false;
    };
    if let (Some(da), Some(ra)) = (d.authority, r.authority) {
        if !da.eq_ignore_ascii_case(ra) {
            return false;
        }
    }
    d.name == r.name
        && (d.rest == r.rest || (!r.name.is_empty() && (d.rest.is_empty() || d.rest == "*")))
}

/// A secret no client can guess. getrandom does not fail on supported systems; should it,
/// time, process id and an address still make nonces unpredictable enough to not be
/// forged blind, and the failure is logged.
fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut secret) {
        log::warn!("auth: no OS randomness ({e}); nonce secret derived from time");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let local = 0u8;
        let seed = format!(
            "{:?}{}{:p}{:?}",
            now,
            std::process::id(),
            &local,
            Instant::now()
        );
        let a = md5_hex(&[seed.as_bytes(), b"a"]);
        let b = md5_hex(&[seed.as_bytes(), b"b"]);
        for (i, c) in a.bytes().chain(b.bytes()).enumerate() {
            secret[i % 32] ^= c;
        }
    }
    secret
}

impl Authenticator {
    /// `users` empty means open access. `realm` is shown to users by some clients and is
    /// part of every Digest hash; control characters are dropped from it.
    pub fn new(users: Vec<Credentials>, realm: &str) -> Self {
        let realm: String = realm.chars().filter(|c| !c.is_control()).collect();
        let mut table: Vec<User> = Vec::with_capacity(users.len());
        for c in users {
            // The first entry for a name wins, like a config file read top to bottom.
            if table.iter().any(|u| u.name == c.name) {
                continue;
            }
            table.push(User {
                ha1: ha1(&c.name, &realm, &c.password),
                name: c.name,
            });
        }
        Authenticator {
            users: table,
            realm,
            secret: random_secret(),
            started: Instant::now(),
            counter: AtomicU64::new(0),
            offer_digest: true,
            offer_basic: true,
        }
    }

    /// Restricts the schemes offered in challenges and accepted in answers.
    pub fn with_schemes(mut self, digest: bool, basic: bool) -> Self {
        self.offer_digest = digest;
        self.offer_basic = basic;
        self
    }

    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn nonce_mac(&self, ts_ctr: &str) -> String {
        md5_hex(&[&self.secret, b":", ts_ctr.as_bytes(), b":", &self.secret])
    }

    /// A fresh nonce: timestamp, counter (unique per challenge) and their keyed MD5.
    fn make_nonce(&self, now_secs: u64) -> String {
        let ctr = self.counter.fetch_add(1, Ordering::Relaxed) as u32;
        let ts_ctr = format!(
            "{:0tw$x}{:0cw$x}",
            now_secs & 0xFFFF_FFFF_FFFF,
            ctr,
            tw = NONCE_TS_HEX,
            cw = NONCE_CTR_HEX
        );
        let mac = self.nonce_mac(&ts_ctr);
        ts_ctr + &mac
    }

    /// The issue time of a nonce we made, or `None` for anything else.
    fn nonce_issued_at(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (ts_ctr, mac) = nonce.split_at(NONCE_TS_HEX + NONCE_CTR_HEX);
        if !ct_eq(self.nonce_mac(ts_ctr).as_bytes(), mac.as_bytes()) {
            return None;
        }
        u64::from_str_radix(&ts_ctr[..NONCE_TS_HEX], 16).ok()
    }

    /// The two WWW-Authenticate header values for a 401, Digest first: a Digest challenge
    /// (realm, fresh nonce, algorithm=MD5, no qop — see the module doc; `stale=TRUE` when
    /// asked) and a Basic challenge. Send each as its own WWW-Authenticate header.
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        self.challenges_at(stale, self.now_secs())
    }

    fn challenges_at(&self, stale: bool, now_secs: u64) -> Vec<String> {
        let realm = quote(&self.realm);
        // `stale` right after the nonce: live555 (VLC) reads a challenge with a fixed
        // pattern and only sees `stale` there; elsewhere it gives up instead of retrying.
        let digest = format!(
            "Digest realm={realm}, nonce=\"{}\", {}algorithm=MD5",
            self.make_nonce(now_secs),
            if stale { "stale=TRUE, " } else { "" }
        );
        let mut out = Vec::with_capacity(2);
        if self.offer_digest {
            out.push(digest);
        }
        if self.offer_basic {
            out.push(format!("Basic realm={realm}"));
        }
        out
    }

    /// Checks one request. `authorization` is the raw Authorization header value; `method`
    /// e.g. "DESCRIBE"; `request_uri` the request line URI.
    pub fn check(
        &self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
    ) -> AuthResult {
        self.check_at(method, request_uri, authorization, self.now_secs())
    }

    fn check_at(
        &self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        now_secs: u64,
    ) -> AuthResult {
        if self.is_open() {
            return AuthResult::Open;
        }
        let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
            return AuthResult::Missing;
        };
        if header.len() > MAX_HEADER_LEN {
            return rejected(None, "authorization header too long");
        }
        let (scheme, rest) = header
            .split_once(|c: char| c.is_whitespace())
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("Basic") && self.offer_basic {
            self.check_basic(rest.trim())
        } else if scheme.eq_ignore_ascii_case("Digest") && self.offer_digest {
            self.check_digest(method, request_uri, rest, now_secs)
        } else {
            rejected(None, "unsupported authorization scheme")
        }
    }

    fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    fn check_basic(&self, token: &str) -> AuthResult {
        let Ok(decoded) = STANDARD.decode(token) else {
            return rejected(None, "malformed basic credentials");
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return rejected(None, "malformed basic credentials");
        };
        let Some((name, password)) = decoded.split_once(':') else {
            return rejected(None, "malformed basic credentials");
        };
        let given = ha1(name, &self.realm, password);
        match self.user(name) {
            Some(u) if ct_eq(u.ha1.as_bytes(), given.as_bytes()) => AuthResult::Allowed {
                user: name.to_owned(),
            },
            Some(_) => rejected(Some(name), "wrong password"),
            None => rejected(Some(name), "unknown user"),
        }
    }

    fn check_digest(&self, method: &str, request_uri: &str, rest: &str, now: u64) -> AuthResult {
        let params = match parse_params(rest) {
            Ok(p) => p,
            Err(reason) => return rejected(None, reason),
        };
        let name = match param(&params, "username") {
            Some(n) => n.to_owned(),
            None => match param(&params, "username*").and_then(extended_username) {
                Some(n) => n,
                None => return rejected(None, "digest without username"),
            },
        };
        let user = Some(name.as_str());
        let (Some(realm), Some(nonce), Some(uri), Some(response)) = (
            param(&params, "realm"),
            param(&params, "nonce"),
            param(&params, "uri"),
            param(&params, "response"),
        ) else {
            return rejected(user, "digest missing realm, nonce, uri or response");
        };
        if let Some(alg) = param(&params, "algorithm") {
            if !alg.eq_ignore_ascii_case("MD5") {
                return rejected(user, "unsupported digest algorithm");
            }
        }
        if realm != self.realm {
            return rejected(user, "wrong realm");
        }
        let qop = match param(&params, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (param(&params, "nc"), param(&params, "cnonce")) {
                    (Some(nc), Some(cnonce)) => Some((nc, cnonce, q)),
                    _ => return rejected(user, "qop=auth without nc or cnonce"),
                }
            }
            Some(_) => return rejected(user, "unsupported qop"),
        };
        if !same_presentation(uri, request_uri) {
            return rejected(user, "digest uri does not match the request");
        }
        let Some(u) = self.user(&name) else {
            // Same work as for a known user, so timing does not tell which names exist.
            let _ = response_from_ha1(&self.nonce_mac(&name), method, uri, nonce, qop);
            return rejected(user, "unknown user");
        };
        let expected = response_from_ha1(&u.ha1, method, uri, nonce, qop);
        let given = response.to_ascii_lowercase();
        let correct = ct_eq(expected.as_bytes(), given.as_bytes());
        match self.nonce_issued_at(nonce) {
            Some(_) if !correct => rejected(user, "wrong password"),
            // Not a nonce of ours (forged, or from before a restart): wrong digest is a
            // plain failure; a right one proves the password, so just ask for a fresh nonce.
            None if !correct => rejected(user, "invalid nonce"),
            None => AuthResult::Rejected {
                user: Some(name),
                reason: "unknown nonce",
                stale: true,
            },
            Some(issued) if issued > now || now - issued > NONCE_LIFETIME.as_secs() => {
                AuthResult::Rejected {
                    user: Some(name),
                    reason: "stale nonce",
                    stale: true,
                }
            }
            Some(_) => AuthResult::Allowed { user: name },
        }
    }
}

fn rejected(user: Option<&str>, reason: &'static str) -> AuthResult {
    AuthResult::Rejected {
        user: user.map(str::to_owned),
        reason,
        stale: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "vigint";
    const URI: &str = "rtsp://127.0.0.1:8554/cam";

    fn auth() -> Authenticator {
        Authenticator::new(
            vec![
                Credentials {
                    name: "alice".into(),
                    password: "s3cr3t pass".into(),
                },
                Credentials {
                    name: "bob".into(),
                    password: "hunter2".into(),
                },
            ],
            REALM,
        )
    }

    /// The nonce of a Digest challenge.
    fn nonce_of(challenge: &str) -> String {
        let params = parse_params(challenge.strip_prefix("Digest ").unwrap()).unwrap();
        param(&params, "nonce").unwrap().to_owned()
    }

    // The Authorization headers below copy, field for field, what the real clients sent to
    // a probe server answering 401 with `challenges()` (ffmpeg 5.1, GStreamer 1.22 rtspsrc,
    // retina 0.4.21 / http-auth 0.1.10); only the nonce and response differ.

    /// GStreamer's gstrtspconnection: always the RFC 2069 form, even when qop is offered.
    fn gstreamer_header(
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nonce: &str,
    ) -> String {
        let response = digest_response(user, REALM, password, method, uri, nonce, None);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\""
        )
    }

    /// ffmpeg's httpauth.c answering our no-qop challenge (it quotes the algorithm).
    fn ffmpeg_header(user: &str, password: &str, method: &str, uri: &str, nonce: &str) -> String {
        let response = digest_response(user, REALM, password, method, uri, nonce, None);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=\"MD5\""
        )
    }

    /// ffmpeg's httpauth.c answering a challenge that offers qop="auth".
    fn ffmpeg_qop_header(
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nonce: &str,
    ) -> String {
        let qop = Some(("00000001", "b2ce83d3e3ac9b7d", "auth"));
        let response = digest_response(user, REALM, password, method, uri, nonce, qop);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=\"MD5\", qop=\"auth\", \
             cnonce=\"b2ce83d3e3ac9b7d\", nc=00000001"
        )
    }

    /// The http-auth crate (retina) answering our no-qop challenge.
    fn http_auth_header(
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nonce: &str,
    ) -> String {
        let response = digest_response(user, REALM, password, method, uri, nonce, None);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", uri=\"{uri}\", nonce=\"{nonce}\", \
             response=\"{response}\""
        )
    }

    /// The http-auth crate (retina) answering a challenge that offers qop="auth".
    fn http_auth_qop_header(
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nonce: &str,
    ) -> String {
        let cnonce = "b33fb34e1d4b3943f00d5f3d423c9ef3";
        let qop = Some(("00000001", cnonce, "auth"));
        let response = digest_response(user, REALM, password, method, uri, nonce, qop);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", uri=\"{uri}\", nonce=\"{nonce}\", \
             algorithm=MD5, nc=00000001, cnonce=\"{cnonce}\", qop=auth, response=\"{response}\""
        )
    }

    fn allowed(user: &str) -> AuthResult {
        AuthResult::Allowed { user: user.into() }
    }

    fn rej(user: Option<&str>, reason: &'static str, stale: bool) -> AuthResult {
        AuthResult::Rejected {
            user: user.map(str::to_owned),
            reason,
            stale,
        }
    }

    #[test]
    fn rfc_2617_section_3_5_vector() {
        assert_eq!(
            digest_response(
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life",
                "GET",
                "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                Some(("00000001", "0a4f113b", "auth")),
            ),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc_2069_vectors_computed_with_python_hashlib() {
        // python3: md5(md5("alice:vigint:s3cr3t pass") + ":0123456789abcdef:"
        //              + md5("DESCRIBE:rtsp://127.0.0.1:8554/cam"))
        assert_eq!(
            digest_response(
                "alice",
                "vigint",
                "s3cr3t pass",
                "DESCRIBE",
                URI,
                "0123456789abcdef",
                None
            ),
            "36feeb79af40b50178886ed7a47e42e0"
        );
        assert_eq!(
            digest_response(
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life",
                "GET",
                "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                None,
            ),
            "670fd8c2df070c60b045671b8b24ff02"
        );
    }

    #[test]
    fn open_and_missing() {
        let open = Authenticator::new(vec![], REALM);
        assert!(open.is_open());
        assert_eq!(open.check("DESCRIBE", URI, None), AuthResult::Open);
        assert_eq!(
            open.check("DESCRIBE", URI, Some("Basic garbage")),
            AuthResult::Open
        );
        let a = auth();
        assert!(!a.is_open());
        assert_eq!(a.check("DESCRIBE", URI, None), AuthResult::Missing);
        assert_eq!(a.check("DESCRIBE", URI, Some("  ")), AuthResult::Missing);
    }

    #[test]
    fn challenges_offer_digest_first_then_basic() {
        let a = Authenticator::new(vec![], "cam \"1\"");
        let c = a.challenges(false);
        assert_eq!(c.len(), 2);
        let nonce = nonce_of(&c[0]);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(
            c[0],
            format!("Digest realm=\"cam \\\"1\\\"\", nonce=\"{nonce}\", algorithm=MD5")
        );
        assert_eq!(c[1], "Basic realm=\"cam \\\"1\\\"\"");
        let stale = a.challenges(true);
        assert_eq!(
            stale[0],
            format!(
                "Digest realm=\"cam \\\"1\\\"\", nonce=\"{}\", stale=TRUE, algorithm=MD5",
                nonce_of(&stale[0])
            )
        );
        assert_ne!(
            nonce_of(&stale[0]),
            nonce,
            "every challenge has a fresh nonce"
        );
        // The quoted realm parses back to the realm the hashes use.
        let params = parse_params(c[0].strip_prefix("Digest ").unwrap()).unwrap();
        assert_eq!(param(&params, "realm"), Some(a.realm()));
    }

    #[test]
    fn digest_as_gstreamer_ffmpeg_and_retina_send_it() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        for (method, uri) in [
            ("DESCRIBE", URI),
            ("SETUP", "rtsp://127.0.0.1:8554/cam/trackID=0"),
        ] {
            let h = gstreamer_header("alice", "s3cr3t pass", method, uri, &nonce);
            assert_eq!(a.check(method, uri, Some(&h)), allowed("alice"));
            let h = ffmpeg_header("bob", "hunter2", method, uri, &nonce);
            assert_eq!(a.check(method, uri, Some(&h)), allowed("bob"));
            let h = http_auth_header("alice", "s3cr3t pass", method, uri, &nonce);
            assert_eq!(a.check(method, uri, Some(&h)), allowed("alice"));
            // qop=auth answers (clients that insist on RFC 2617/7616) are accepted too.
            let h = ffmpeg_qop_header("bob", "hunter2", method, uri, &nonce);
            assert_eq!(a.check(method, uri, Some(&h)), allowed("bob"));
            let h = http_auth_qop_header("alice", "s3cr3t pass", method, uri, &nonce);
            assert_eq!(a.check(method, uri, Some(&h)), allowed("alice"));
        }
        // Upper-case hex in the response and a lower-case scheme are fine.
        let h = gstreamer_header("alice", "s3cr3t pass", "PLAY", URI, &nonce)
            .replace("Digest", "digest");
        let upper = {
            let r = digest_response("alice", REALM, "s3cr3t pass", "PLAY", URI, &nonce, None);
            h.replace(&r, &r.to_ascii_uppercase())
        };
        assert_eq!(a.check("PLAY", URI, Some(&upper)), allowed("alice"));
    }

    #[test]
    fn digest_failures() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        let h = gstreamer_header("alice", "wrong", "DESCRIBE", URI, &nonce);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("alice"), "wrong password", false)
        );
        let h = gstreamer_header("mallory", "x", "DESCRIBE", URI, &nonce);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("mallory"), "unknown user", false)
        );
        // Right password, but the digest was made for another method.
        let h = gstreamer_header("alice", "s3cr3t pass", "DESCRIBE", URI, &nonce);
        assert_eq!(
            a.check("PLAY", URI, Some(&h)),
            rej(Some("alice"), "wrong password", false)
        );
        // A digest for another path is not accepted for this one.
        let other = "rtsp://127.0.0.1:8554/other";
        let h = gstreamer_header("alice", "s3cr3t pass", "DESCRIBE", other, &nonce);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(
                Some("alice"),
                "digest uri does not match the request",
                false
            )
        );
        let h = gstreamer_header("alice", "s3cr3t pass", "DESCRIBE", URI, &nonce)
            .replace("realm=\"vigint\"", "realm=\"other\"");
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("alice"), "wrong realm", false)
        );
        let h = format!("{h}, algorithm=SHA-256").replace("realm=\"other\"", "realm=\"vigint\"");
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("alice"), "unsupported digest algorithm", false)
        );
        let h = ffmpeg_qop_header("bob", "hunter2", "DESCRIBE", URI, &nonce)
            .replace("qop=\"auth\"", "qop=auth-int");
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("bob"), "unsupported qop", false)
        );
        let h = ffmpeg_qop_header("bob", "hunter2", "DESCRIBE", URI, &nonce)
            .replace(", nc=00000001", "");
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("bob"), "qop=auth without nc or cnonce", false)
        );
        assert_eq!(
            a.check("DESCRIBE", URI, Some("Negotiate abc")),
            rej(None, "unsupported authorization scheme", false)
        );
        let long = format!("Digest username=\"{}\"", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&long)),
            rej(None, "authorization header too long", false)
        );
    }

    #[test]
    fn digest_uri_tolerates_trailing_slash_and_path_form() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        for (digest_uri, request_uri) in [
            ("rtsp://127.0.0.1:8554/cam", "rtsp://127.0.0.1:8554/cam/"),
            ("rtsp://127.0.0.1:8554/cam/", "rtsp://127.0.0.1:8554/cam"),
            ("/cam", "rtsp://127.0.0.1:8554/cam"),
            ("rtsp://127.0.0.1:8554/cam", "/cam"),
            ("rtsp://127.0.0.1:8554", "rtsp://127.0.0.1:8554/"),
        ] {
            let h = gstreamer_header("alice", "s3cr3t pass", "OPTIONS", digest_uri, &nonce);
            assert_eq!(
                a.check("OPTIONS", request_uri, Some(&h)),
                allowed("alice"),
                "{digest_uri} vs {request_uri}"
            );
        }
        assert!(!same_presentation("/camera", "rtsp://h/cam"));
        assert!(!same_presentation("rtsp://h/cam", "rtsp://h/cam2"));
    }

    #[test]
    fn digest_uri_may_be_the_base_url_of_the_same_path_only() {
        let req = "rtsp://127.0.0.1:8554/cam/trackID=0";
        // live555: SETUP of the track, digest over the Content-Base; aggregate forms.
        for d in [
            "rtsp://127.0.0.1:8554/cam/",
            "rtsp://127.0.0.1:8554/cam",
            "rtsp://127.0.0.1:8554/cam/*",
            "/cam/",
            "rtsp://viewer@127.0.0.1:8554/cam/",
            "RTSP://127.0.0.1:8554/cam/trackID=0",
        ] {
            assert!(same_presentation(d, req), "{d} for {req}");
        }
        for d in [
            "rtsp://127.0.0.1:8554/cam2/",
            "rtsp://127.0.0.1:8554/ca",
            "rtsp://127.0.0.1:8554/",
            "rtsp://127.0.0.1:8554",
            "rtsp://127.0.0.1:9999/cam/",
            "rtsp://10.0.0.1:8554/cam/",
            "rtsp://127.0.0.1:8554/cam/trackID=1",
            "rtsp://127.0.0.1:8554/other/cam/",
            "*",
            "cam/",
        ] {
            assert!(!same_presentation(d, req), "{d} for {req}");
        }
        // A request for the base or the aggregate URL: the base in any form, not a track.
        assert!(same_presentation("rtsp://h/cam/", "rtsp://h/cam"));
        assert!(!same_presentation(
            "rtsp://h/cam/trackID=0",
            "rtsp://h/cam/"
        ));
        // A request outside any path accepts only itself.
        assert!(!same_presentation("rtsp://h/cam/", "rtsp://h/"));
        assert!(!same_presentation("rtsp://h/cam/", "*"));
    }

    #[test]
    fn live555_setup_digest_over_the_base_url() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        let base = "rtsp://127.0.0.1:18565/cam/";
        let track = "rtsp://127.0.0.1:18565/cam/trackID=0";
        let h = gstreamer_header("alice", "s3cr3t pass", "SETUP", base, &nonce);
        assert_eq!(a.check("SETUP", track, Some(&h)), allowed("alice"));
        // The response computed over another uri than the one sent: wrong.
        let forged = gstreamer_header("alice", "s3cr3t pass", "SETUP", track, &nonce)
            .replace(&format!("uri=\"{track}\""), &format!("uri=\"{base}\""));
        assert_eq!(
            a.check("SETUP", track, Some(&forged)),
            rej(Some("alice"), "wrong password", false)
        );
        // A digest for another path never opens this one.
        let other = gstreamer_header(
            "alice",
            "s3cr3t pass",
            "SETUP",
            "rtsp://127.0.0.1:18565/cam2/",
            &nonce,
        );
        assert_eq!(
            a.check("SETUP", track, Some(&other)),
            rej(
                Some("alice"),
                "digest uri does not match the request",
                false
            )
        );
    }

    #[test]
    fn stale_nonce() {
        let a = auth();
        let nonce = nonce_of(&a.challenges_at(false, 1000)[0]);
        let h = gstreamer_header("alice", "s3cr3t pass", "DESCRIBE", URI, &nonce);
        let lifetime = NONCE_LIFETIME.as_secs();
        assert_eq!(
            a.check_at("DESCRIBE", URI, Some(&h), 1000 + lifetime),
            allowed("alice")
        );
        assert_eq!(
            a.check_at("DESCRIBE", URI, Some(&h), 1000 + lifetime + 1),
            rej(Some("alice"), "stale nonce", true)
        );
        // Expired and wrong: a plain failure, the client must not silently retry.
        let wrong = gstreamer_header("alice", "nope", "DESCRIBE", URI, &nonce);
        assert_eq!(
            a.check_at("DESCRIBE", URI, Some(&wrong), 1000 + lifetime + 1),
            rej(Some("alice"), "wrong password", false)
        );
    }

    #[test]
    fn forged_nonces() {
        let a = auth();
        let real = nonce_of(&a.challenges(false)[0]);
        // Wrong MAC (last digit changed), wrong length, not hex, empty.
        let last = if real.ends_with('0') { "1" } else { "0" };
        let tampered = format!("{}{last}", &real[..real.len() - 1]);
        // Moving the timestamp forward without the secret breaks the MAC.
        let younger = format!("ffffffffffff{}", &real[NONCE_TS_HEX..]);
        for nonce in [
            tampered.as_str(),
            younger.as_str(),
            "0123456789abcdef",
            &"g".repeat(NONCE_LEN),
            "",
        ] {
            let wrong = gstreamer_header("alice", "nope", "DESCRIBE", URI, nonce);
            assert_eq!(
                a.check("DESCRIBE", URI, Some(&wrong)),
                rej(Some("alice"), "invalid nonce", false),
                "{nonce}"
            );
            // Knowing the password with a nonce we did not issue: just ask for a fresh one.
            let right = gstreamer_header("alice", "s3cr3t pass", "DESCRIBE", URI, nonce);
            assert_eq!(
                a.check("DESCRIBE", URI, Some(&right)),
                rej(Some("alice"), "unknown nonce", true),
                "{nonce}"
            );
        }
        // A nonce from another instance (another secret) is not ours either.
        let other = nonce_of(&auth().challenges(false)[0]);
        let h = gstreamer_header("alice", "nope", "DESCRIBE", URI, &other);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h)),
            rej(Some("alice"), "invalid nonce", false)
        );
    }

    #[test]
    fn basic() {
        let a = auth();
        let b64 = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&b64("alice:s3cr3t pass"))),
            allowed("alice")
        );
        // Passwords may contain colons: only the first one separates.
        let c = Authenticator::new(
            vec![Credentials {
                name: "x".into(),
                password: "a:b:c".into(),
            }],
            REALM,
        );
        assert_eq!(c.check("PLAY", URI, Some(&b64("x:a:b:c"))), allowed("x"));
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&b64("alice:wrong"))),
            rej(Some("alice"), "wrong password", false)
        );
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&b64("carol:s3cr3t pass"))),
            rej(Some("carol"), "unknown user", false)
        );
        let malformed = rej(None, "malformed basic credentials", false);
        assert_eq!(
            a.check("DESCRIBE", URI, Some("Basic !!!notbase64")),
            malformed
        );
        assert_eq!(a.check("DESCRIBE", URI, Some(&b64("no colon"))), malformed);
        assert_eq!(a.check("DESCRIBE", URI, Some("Basic")), malformed);
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x']));
        assert_eq!(a.check("DESCRIBE", URI, Some(&not_utf8)), malformed);
        // Scheme names are case-insensitive.
        let upper = b64("bob:hunter2").replace("Basic", "BASIC");
        assert_eq!(a.check("DESCRIBE", URI, Some(&upper)), allowed("bob"));
    }

    #[test]
    fn duplicate_user_names_keep_the_first() {
        let a = Authenticator::new(
            vec![
                Credentials {
                    name: "u".into(),
                    password: "first".into(),
                },
                Credentials {
                    name: "u".into(),
                    password: "second".into(),
                },
            ],
            REALM,
        );
        let b64 = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(a.check("PLAY", URI, Some(&b64("u:first"))), allowed("u"));
        assert!(matches!(
            a.check("PLAY", URI, Some(&b64("u:second"))),
            AuthResult::Rejected { .. }
        ));
    }

    #[test]
    fn debug_does_not_leak_passwords() {
        let c = Credentials {
            name: "alice".into(),
            password: "s3cr3t pass".into(),
        };
        let shown = format!("{c:?} {c:#?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let a = auth();
        let shown = format!("{a:?}");
        assert!(shown.contains("alice") && shown.contains("bob"));
        assert!(!shown.contains("s3cr3t") && !shown.contains("hunter2"));
        assert!(
            !shown.contains(&a.users[0].ha1),
            "no password hashes either"
        );
    }

    #[test]
    fn parses_quoted_params_with_commas_and_escapes() {
        let p = parse_params(
            r#"username="a, \"b\"", realm = "r\\m",nonce=abc ,  uri="rtsp://h/p?x=1,y=2", qop=auth,,"#,
        )
        .unwrap();
        assert_eq!(param(&p, "username"), Some(r#"a, "b""#));
        assert_eq!(param(&p, "realm"), Some(r"r\m"));
        assert_eq!(param(&p, "nonce"), Some("abc"));
        assert_eq!(param(&p, "uri"), Some("rtsp://h/p?x=1,y=2"));
        assert_eq!(param(&p, "qop"), Some("auth"));
        // Names are case-insensitive; the first occurrence wins.
        let p = parse_params(r#"UserName="x", username="y""#).unwrap();
        assert_eq!(param(&p, "username"), Some("x"));
        assert_eq!(parse_params(""), Ok(vec![]));
        assert_eq!(
            parse_params(r#"username="open"#),
            Err("unterminated quoted string")
        );
        assert_eq!(
            parse_params(r#"username="ends with backslash\"#),
            Err("unterminated quoted string")
        );
        assert_eq!(parse_params("username"), Err("parameter without a value"));
        assert_eq!(parse_params("=x"), Err("parameter without a name"));
        assert_eq!(parse_params("a=1 b"), Err("parameter without a value"));
    }

    #[test]
    fn a_username_with_a_quote_and_a_comma_authenticates() {
        let a = Authenticator::new(
            vec![Credentials {
                name: "o\"neil, jr".into(),
                password: "p".into(),
            }],
            REALM,
        );
        let nonce = nonce_of(&a.challenges(false)[0]);
        let response = digest_response("o\"neil, jr", REALM, "p", "PLAY", URI, &nonce, None);
        let h = format!(
            "Digest username={}, realm=\"vigint\", nonce=\"{nonce}\", uri=\"{URI}\", \
             response=\"{response}\"",
            quote("o\"neil, jr")
        );
        assert_eq!(a.check("PLAY", URI, Some(&h)), allowed("o\"neil, jr"));
        // The RFC 7616 extended form http-auth uses for names it cannot quote.
        let a = Authenticator::new(
            vec![Credentials {
                name: "jösé".into(),
                password: "p".into(),
            }],
            REALM,
        );
        let nonce = nonce_of(&a.challenges(false)[0]);
        let response = digest_response("jösé", REALM, "p", "PLAY", URI, &nonce, None);
        let h = format!(
            "Digest username*=UTF-8''j%C3%B6s%c3%a9, realm=\"vigint\", nonce=\"{nonce}\", \
             uri=\"{URI}\", response=\"{response}\""
        );
        assert_eq!(a.check("PLAY", URI, Some(&h)), allowed("jösé"));
        assert_eq!(extended_username("UTF-8''%zz"), None);
        assert_eq!(extended_username("UTF-8''%c3"), None);
        assert_eq!(extended_username("latin1''x"), None);
        assert_eq!(extended_username("UTF"), None);
    }

    #[test]
    fn missing_digest_fields_are_rejected() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        let full = gstreamer_header("alice", "s3cr3t pass", "PLAY", URI, &nonce);
        assert_eq!(a.check("PLAY", URI, Some(&full)), allowed("alice"));
        for field in ["realm", "nonce", "uri", "response"] {
            let params = parse_params(full.strip_prefix("Digest ").unwrap()).unwrap();
            let kept: Vec<String> = params
                .iter()
                .filter(|(n, _)| n != field)
                .map(|(n, v)| format!("{n}={}", quote(v)))
                .collect();
            let h = format!("Digest {}", kept.join(", "));
            assert_eq!(
                a.check("PLAY", URI, Some(&h)),
                rej(
                    Some("alice"),
                    "digest missing realm, nonce, uri or response",
                    false
                ),
                "{field}"
            );
        }
        assert_eq!(
            a.check("PLAY", URI, Some("Digest realm=\"vigint\"")),
            rej(None, "digest without username", false)
        );
        assert_eq!(
            a.check("PLAY", URI, Some("Digest")),
            rej(None, "digest without username", false)
        );
        assert_eq!(
            a.check("PLAY", URI, Some("Digest username=\"x")),
            rej(None, "unterminated quoted string", false)
        );
    }

    #[test]
    fn random_headers_never_panic() {
        let a = auth();
        let nonce = nonce_of(&a.challenges(false)[0]);
        let seed = ffmpeg_qop_header("bob", "hunter2", "PLAY", URI, &nonce);
        let alphabet: Vec<char> = "Digest Basic=\",\\ \t\r\nauthqopé€0123456789abcdef=:/"
            .chars()
            .collect();
        let mut rng = crate::test_util::XorShift(0x0123_4567_89AB_CDEF);
        let mut rand = move || rng.next_u64();
        for _ in 0..20_000 {
            let len = (rand() % 80) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(rand() as usize) % alphabet.len()])
                .collect();
            let _ = a.check("PLAY", URI, Some(&s));
            let _ = a.check("PLAY", URI, Some(&format!("Digest {s}")));
            // Truncations and single-character changes of a valid header.
            let chars: Vec<char> = seed.chars().collect();
            let cut = (rand() as usize) % (chars.len() + 1);
            let truncated: String = chars[..cut].iter().collect();
            let _ = a.check("PLAY", URI, Some(&truncated));
            let mut mutated = chars.clone();
            let i = (rand() as usize) % mutated.len();
            mutated[i] = alphabet[(rand() as usize) % alphabet.len()];
            let mutated: String = mutated.into_iter().collect();
            let _ = a.check("PLAY", URI, Some(&mutated));
        }
    }
}
