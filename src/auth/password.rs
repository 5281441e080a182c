//! Passwords: the rules a new one must meet, and Argon2id hashing.
//!
//! Owns: the password policy (length, no control characters, no example placeholder) for
//! the admin and the RTSP users alike, and Argon2id hashing and verification (the only file
//! naming `argon2`), one run at a time. Does not own: where hashes are stored (the config),
//! nor checking a request's credentials (`http::login`, `rtsp::auth`).

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Marks the passwords in shipped examples (docs/CONFIG.md, the image's
/// `vigint.json.example`): a copy used unedited must not set a password everyone knows.
pub const PLACEHOLDER_MARK: &str = "CHANGE-ME";

/// Refuses an example's placeholder (a password containing `CHANGE-ME`, any case), for the
/// admin password and the RTSP users' alike.
pub fn refuse_placeholder(password: &str) -> Result<(), String> {
    if password.to_ascii_uppercase().contains(PLACEHOLDER_MARK) {
        return Err(format!(
            "is the example's placeholder ({PLACEHOLDER_MARK}): choose your own"
        ));
    }
    Ok(())
}

/// Checks a new admin password; the reason is shown to the person choosing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    refuse_placeholder(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Argon2id cost: 7 MiB and 5 passes, one of OWASP's equivalent settings; the low-memory
/// one, for boards with 512 MB. Stored hashes carry their own cost, so this can change.
fn argon2() -> Argon2<'static> {
    match argon2::Params::new(7 * 1024, 5, 1, None) {
        Ok(params) => Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
        Err(_) => Argon2::default(),
    }
}

/// One Argon2 run at a time: each needs its memory, and a burst of logins (five pages
/// opening at once, or an attacker) must cost no more than one.
static HASHING: Mutex<()> = Mutex::new(());

/// Runs `f` as the only hashing job, then hands the freed memory back to the system (glibc
/// would otherwise keep the 7 MiB in the arena of whichever thread ran it).
fn exclusive<T>(f: impl FnOnce() -> T) -> T {
    let _one = HASHING.lock().unwrap_or_else(|e| e.into_inner());
    let out = f();
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
    out
}

/// Runs `f` once no hashing job runs (and none starts while it does): a caller that waited
/// can then find what the job it waited for verified.
pub fn when_no_hash_runs<T>(f: impl FnOnce() -> T) -> T {
    let _one = HASHING.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Hashes a password as an Argon2id PHC string with a random salt (about 30 ms on a laptop,
/// a few hundred on a Pi Zero 2 W).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no random numbers: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    exclusive(|| {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("cannot hash: {e}"))
    })
}

/// True when `password` matches the Argon2id PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    // The hash's own parameters are used, whatever `argon2()` says today.
    exclusive(|| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password("with\nnewline").is_err());
        assert!(check_new_password(&"x".repeat(2000)).is_err());
        // The examples' placeholder, in any case, is never a password.
        assert!(check_new_password("CHANGE-ME to a long passphrase").is_err());
        assert!(check_new_password("my change-me password").is_err());
    }
}
