//! First boot from the SD card: a `vigint.json` on the boot partition, merged into the
//! config once, then removed.
//!
//! Owns: finding and reading the file (only a regular file, at most 64 KiB), turning it into
//! a merge patch of the config file's document (RFC 7396, as `PATCH /api/v1/config`), the
//! admin's plain password (`admin.password`, hashed with Argon2id, never saved or logged),
//! validation of the whole result before anything is written, the atomic save, removing the
//! file, and the report status shows. All or nothing: an invalid file changes nothing and is
//! kept. Does not own: the config's schema or checks (`config`), hashing (`auth::password`),
//! Wi-Fi (the OS's job: Raspberry Pi Imager writes its own files for that).

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, ConfigError};

/// Where Raspberry Pi OS mounts the boot partition (FAT, writable from any computer).
pub const DEFAULT_PATH: &str = "/boot/firmware/vigint.json";

/// Larger files are refused unread: a config is a few hundred bytes.
pub const MAX_BYTES: u64 = 64 * 1024;

/// What happened to the first-boot file, for status and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstBootReport {
    pub file: String,
    pub applied: bool,
    /// Top-level config keys the file set (`admin`, `paths`, ...), when applied.
    pub keys: Vec<String>,
    /// Why it was not applied, or what went wrong after (removal); never a secret.
    pub error: Option<String>,
    /// The config field the error is about (`paths.cam.fps`), when there is one.
    pub field: Option<String>,
    /// False while the file is still on the card.
    pub removed: bool,
}

impl FirstBootReport {
    fn failed(file: &Path, field: &str, reason: impl Into<String>) -> FirstBootReport {
        let reason = reason.into();
        FirstBootReport {
            file: file.display().to_string(),
            applied: false,
            keys: Vec::new(),
            error: Some(if field.is_empty() {
                reason
            } else {
                format!("{field}: {reason}")
            }),
            field: (!field.is_empty()).then(|| field.to_string()),
            removed: false,
        }
    }

    /// One log line (the caller logs it once the logger runs).
    pub fn log(&self) {
        match (&self.error, self.applied) {
            (None, _) => log::info!(
                "first boot: applied {} ({}) to the config and removed it",
                self.file,
                self.keys.join(", ")
            ),
            (Some(e), true) => log::error!(
                "first boot: applied {} ({}), but {e}",
                self.file,
                self.keys.join(", ")
            ),
            (Some(e), false) => log::error!(
                "first boot: {} NOT applied, kept as it is: {e}; vigint runs with its config unchanged",
                self.file
            ),
        }
    }
}

/// What a valid first-boot file does to the config file's document.
#[derive(Debug)]
pub struct Plan {
    /// The merged document, valid, without the admin hash yet.
    pub doc: Value,
    /// The admin's new password, to hash; never shown.
    pub password: Option<String>,
    pub keys: Vec<String>,
}

/// Keys people may expect here but that vigint does not handle, with what to do instead.
fn not_ours(key: &str) -> Option<&'static str> {
    match key {
        "wifi" | "wlan" | "wpa" | "ssid" | "country" | "hostname" => Some(
            "vigint does not set up the network or the system; use Raspberry Pi Imager's settings (or the OS's own first-boot files) for that",
        ),
        _ => None,
    }
}

/// Pure: checks `patch` against the config file's current document (`{}` when there is no
/// file yet) and returns the merged document. Nothing is written.
pub fn plan(current: &Value, patch: Value) -> Result<Plan, ConfigError> {
    let err = |field: &str, reason: &str| ConfigError {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let Value::Object(mut patch) = patch else {
        return Err(err(
            "",
            "the file must hold a JSON object, like the config file",
        ));
    };
    if let Some(key) = patch
        .keys()
        .find_map(|k| not_ours(k).map(|why| (k.clone(), why)))
    {
        return Err(err(&key.0, key.1));
    }
    let mut password = None;
    if let Some(Value::Object(admin)) = patch.get_mut("admin") {
        if let Some(p) = admin.remove("password") {
            let Value::String(p) = p else {
                return Err(err("admin.password", "must be a string (value not shown)"));
            };
            if admin.contains_key("password_hash") {
                return Err(err("admin", "give password or password_hash, not both"));
            }
            crate::auth::password::check_new_password(&p).map_err(|r| err("admin.password", &r))?;
            password = Some(p);
        }
    }
    let keys: Vec<String> = patch.keys().cloned().collect();
    let mut doc = current.clone();
    let patch = Value::Object(patch);
    crate::config::merge_patch::apply(&mut doc, &patch);
    Config::from_json(&doc.to_string())?;
    Ok(Plan {
        doc,
        password,
        keys,
    })
}

/// Applies `first_boot` to the config file `config` if it exists. `None` when there is no
/// first-boot file (nothing to say). Never fails the start: problems are in the report.
pub fn apply(first_boot: &Path, config: &Path) -> Option<FirstBootReport> {
    let meta = match std::fs::metadata(first_boot) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(FirstBootReport::failed(
                first_boot,
                "",
                format!("cannot read it: {e}"),
            ))
        }
    };
    let failed =
        |field: &str, reason: String| Some(FirstBootReport::failed(first_boot, field, reason));
    if meta.is_dir() {
        return failed("", "is a directory, not a file".into());
    }
    // Never open a FIFO or a device: reading could block the start forever.
    if !meta.is_file() {
        return failed("", "is not a regular file".into());
    }
    if meta.len() > MAX_BYTES {
        return failed("", format!("is {} bytes; at most {MAX_BYTES}", meta.len()));
    }
    let raw = match std::fs::read(first_boot) {
        Ok(r) => r,
        Err(e) => return failed("", format!("cannot read it: {e}")),
    };
    if !raw.is_empty() && raw.iter().all(|&b| b == 0) {
        return failed(
            "",
            "holds only zero bytes (an earlier removal was cut short?); delete it".into(),
        );
    }
    let patch: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        // serde_json's messages give a position, never the text around it.
        Err(e) => return failed("", format!("not valid JSON: {e}")),
    };
    let current = match std::fs::read(config) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return failed(
                    "",
                    format!(
                        "the config file {} is not valid JSON: {e}",
                        config.display()
                    ),
                )
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Default::default()),
        Err(e) => {
            return failed(
                "",
                format!("cannot read the config file {}: {e}", config.display()),
            )
        }
    };
    let mut plan = match plan(&current, patch) {
        Ok(p) => p,
        Err(e) => return failed(&e.field, e.reason),
    };
    // A file that could not be removed afterwards is not applied at all: its secrets would
    // stay on the card, and it would be applied again at every start, undoing later changes.
    let handle = match open_for_removal(first_boot) {
        Ok(f) => f,
        Err(e) => {
            return failed(
                "",
                format!(
                    "cannot be removed after use ({e}), so it is not applied: let vigint write to its directory (under systemd: ReadWritePaths=)"
                ),
            )
        }
    };
    if let Some(password) = plan.password.take() {
        let hash = match crate::auth::password::hash_password(&password) {
            Ok(h) => h,
            Err(e) => return failed("admin.password", e),
        };
        let admin = &mut plan.doc["admin"];
        if !admin.is_object() {
            *admin = Value::Object(Default::default());
        }
        admin["password_hash"] = Value::String(hash);
    }
    let mut text = match serde_json::to_string_pretty(&plan.doc) {
        Ok(t) => t,
        Err(e) => return failed("", format!("cannot write the config: {e}")),
    };
    text.push('\n');
    // Checked once more with the hash in it, so what is saved is exactly what loads.
    if let Err(e) = Config::from_json(&text) {
        return failed(&e.field, e.reason);
    }
    if let Err(e) = crate::config::write_atomic(config, text.as_bytes()) {
        return failed(
            "",
            format!("cannot save the config file {}: {e}", config.display()),
        );
    }
    let mut report = FirstBootReport {
        file: first_boot.display().to_string(),
        applied: true,
        keys: plan.keys,
        error: None,
        field: None,
        removed: false,
    };
    match remove(handle, first_boot, raw.len()) {
        Ok(()) => report.removed = true,
        Err(e) => {
            report.error = Some(format!(
                "cannot remove it ({e}): its secrets stay on the card and it is applied again at every start until it is deleted"
            ))
        }
    }
    Some(report)
}

/// Overwrites the file's bytes with zeros, syncs, unlinks it and syncs the directory.
/// Why overwrite: FAT only marks a deleted file's clusters free, so undelete tools would
/// find the plain password; vfat rewrites a file's data in place, so the zeros land on the
/// same clusters. (The SD card's flash translation may keep old pages below the block
/// layer; no file operation reaches those.) A rename would keep the secrets.
fn remove(mut f: std::fs::File, path: &Path, len: usize) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&vec![0u8; len])?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    // Without it, a power cut right after could bring the file back.
    std::fs::File::open(parent(path))?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Opens the file for its overwrite and checks that its directory lets this process unlink
/// it (a read-only mount, or a FAT partition mounted for root only, does not).
fn open_for_removal(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let dir = std::ffi::CString::new(parent(path).as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: faccessat only reads the NUL-terminated path.
    let r = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            dir.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    const PASSWORD: &str = "first boot secret 42";

    use crate::test_util::TempDir as Dir;

    #[test]
    fn a_plan_merges_like_a_patch_and_takes_the_password_out() {
        let current = json!({"log_level": "debug", "paths": {"cam": {"fps": 10}, "old": {"source": "test-pattern"}}});
        let p = plan(
            &current,
            json!({"admin": {"password": PASSWORD}, "paths": {"cam": {"bitrate_kbps": 800}, "old": null}}),
        )
        .unwrap();
        assert_eq!(p.password.as_deref(), Some(PASSWORD));
        assert_eq!(p.keys, ["admin", "paths"]);
        assert_eq!(
            p.doc,
            json!({"log_level": "debug", "admin": {}, "paths": {"cam": {"fps": 10, "bitrate_kbps": 800}}})
        );
        assert!(!p.doc.to_string().contains(PASSWORD));
    }

    #[test]
    fn a_bad_plan_names_its_field_and_never_the_password() {
        let cases = [
            (json!({"paths": {"cam": {"fps": 0}}}), "paths.cam.fps"),
            (json!({"paths": {"cam": {"fsp": 30}}}), "paths.cam.fsp"),
            (json!({"admin": {"password": "short"}}), "admin.password"),
            (json!({"admin": {"password": 12345678}}), "admin.password"),
            (
                json!({"admin": {"password": PASSWORD, "password_hash": "$argon2id$x"}}),
                "admin",
            ),
            (json!({"admin": {"pasword": PASSWORD}}), "admin.pasword"),
            (json!({"wifi": {"ssid": "home", "psk": "pw"}}), "wifi"),
            (json!({"board": "pi9"}), "board"),
            (json!(["paths"]), ""),
        ];
        for (patch, field) in cases {
            let text = patch.to_string();
            let e = plan(&json!({}), patch).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(!e.to_string().contains(PASSWORD), "{e}");
            assert!(!e.to_string().contains("12345678"), "{e}");
        }
    }

    fn run(
        dir: &Dir,
        file: &str,
        config: Option<&str>,
    ) -> (Option<FirstBootReport>, PathBuf, PathBuf) {
        let fb = dir.0.join("vigint.json");
        std::fs::write(&fb, file).unwrap();
        let cfg = dir.0.join("etc").join("config.json");
        if let Some(c) = config {
            std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
            std::fs::write(&cfg, c).unwrap();
        }
        (apply(&fb, &cfg), fb, cfg)
    }

    #[test]
    fn a_valid_file_is_merged_hashed_saved_and_removed() {
        let dir = Dir::new("valid");
        let file = json!({"admin": {"password": PASSWORD}, "paths": {"cam": {"source": "test-pattern", "fps": 12}}, "log_level": "debug"});
        let (report, fb, cfg) = run(
            &dir,
            &file.to_string(),
            Some(r#"{"paths": {"cam": {"width": 640, "height": 480}}}"#),
        );
        let report = report.expect("a report");
        assert_eq!(report.error, None);
        assert!(report.applied && report.removed);
        assert_eq!(report.keys, ["admin", "log_level", "paths"]);
        assert!(!fb.exists(), "the secrets left the boot partition");
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(!text.contains(PASSWORD), "{text}");
        // Only what the two documents set: unset fields stay unset (board defaults live on).
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["paths"]["cam"],
            json!({"width": 640, "height": 480, "source": "test-pattern", "fps": 12})
        );
        let c = Config::load(&cfg).expect("the saved config loads");
        assert_eq!(c.log_level, "debug");
        let hash = c.admin.password_hash.expect("hashed");
        assert!(hash.starts_with("$argon2id$"));
        use base64::Engine;
        let basic = |pw: &str| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("admin:{pw}"));
            format!("Basic {b}")
        };
        let login = crate::http::login::Login::default();
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let now = std::time::Instant::now();
        use crate::http::login::Verdict;
        assert_eq!(
            login.check(Some(&hash), &Vec::new, Some(&basic(PASSWORD)), ip, now),
            Verdict::Admin
        );
        assert_eq!(
            login.check(Some(&hash), &Vec::new, Some(&basic("wrong one!")), ip, now),
            Verdict::Wrong
        );
        assert!(!dir.0.join("etc/.config.json.tmp").exists());
    }

    #[test]
    fn no_config_file_yet_means_merging_into_an_empty_one() {
        let dir = Dir::new("fresh");
        let (report, fb, cfg) = run(&dir, r#"{"log_level": "warn"}"#, None);
        assert!(report.expect("report").applied);
        assert!(!fb.exists());
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            "{\n  \"log_level\": \"warn\"\n}\n"
        );
    }

    #[test]
    fn an_invalid_file_changes_nothing_and_is_kept() {
        let before = "{ \"log_level\": \"info\" }\n";
        for (file, field, what) in [
            (
                r#"{"paths": {"cam": {"fps": 0}}}"#,
                Some("paths.cam.fps"),
                "must be from 1 to 120",
            ),
            (
                r#"{"admin": {"password": "x"}, "log_level": "debug"}"#,
                Some("admin.password"),
                "at least 8",
            ),
            // The example the image puts on the boot partition, renamed but not edited.
            (
                include_str!("../image/files/vigint.json.example"),
                Some("admin.password"),
                "placeholder",
            ),
            (r#"{"log_level": "debug",}"#, None, "not valid JSON"),
            ("", None, "not valid JSON"),
            ("\0\0\0\0", None, "zero bytes"),
        ] {
            let dir = Dir::new("invalid");
            let (report, fb, cfg) = run(&dir, file, Some(before));
            let r = report.expect("report");
            assert!(!r.applied && !r.removed, "{file}");
            assert_eq!(r.field.as_deref(), field, "{file}");
            let e = r.error.expect("error");
            assert!(e.contains(what), "{file}: {e}");
            assert!(fb.exists(), "kept");
            assert_eq!(
                std::fs::read_to_string(&fb).unwrap(),
                file,
                "kept as it was"
            );
            assert_eq!(
                std::fs::read_to_string(&cfg).unwrap(),
                before,
                "config untouched"
            );
        }
    }

    #[test]
    fn absent_means_nothing_at_all() {
        let dir = Dir::new("absent");
        let cfg = dir.0.join("config.json");
        assert_eq!(apply(&dir.0.join("vigint.json"), &cfg), None);
        assert!(!cfg.exists());
    }

    #[test]
    fn what_is_not_a_readable_file_is_a_clear_error() {
        let dir = Dir::new("odd");
        let cfg = dir.0.join("config.json");
        let d = dir.0.join("a-dir.json");
        std::fs::create_dir(&d).unwrap();
        let e = apply(&d, &cfg).expect("report").error.expect("error");
        assert!(e.contains("is a directory"), "{e}");
        // A regular file where a directory should be: ENOTDIR, not "absent".
        let plain = dir.0.join("plain");
        std::fs::write(&plain, "x").unwrap();
        let e = apply(&plain.join("vigint.json"), &cfg)
            .expect("report")
            .error
            .expect("error");
        assert!(e.starts_with("cannot read it: "), "{e}");
        // A symlink loop: ELOOP.
        let l = dir.0.join("loop.json");
        std::os::unix::fs::symlink(&l, &l).unwrap();
        let e = apply(&l, &cfg).expect("report").error.expect("error");
        assert!(e.starts_with("cannot read it: "), "{e}");
        // A FIFO would block a read forever: refused unopened.
        let fifo = dir.0.join("fifo.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = apply(&fifo, &cfg).expect("report").error.expect("error");
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.0.join("big.json");
        std::fs::write(&big, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        let e = apply(&big, &cfg).expect("report").error.expect("error");
        assert!(e.contains("at most"), "{e}");
        assert!(!cfg.exists(), "nothing written");
    }

    #[test]
    fn a_broken_config_file_is_reported_and_left_alone() {
        let dir = Dir::new("broken");
        let (report, fb, cfg) = run(&dir, r#"{"log_level": "debug"}"#, Some("{ nope"));
        let e = report.expect("report").error.expect("error");
        assert!(
            e.contains("config file") && e.contains("not valid JSON"),
            "{e}"
        );
        assert!(fb.exists());
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{ nope");
    }
}
