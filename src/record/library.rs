//! Safe access to recorded segments by name, for the recordings API: resolve a path name
//! and a segment name under the recordings root, open a segment for reading, delete one.
//! A segment's name is relative to its path's directory, which the naming template gives
//! (`Template::scan_dir`: `cam` by default, `rec/cam` for `rec/%path/...`).
//!
//! Owns: the rule that no name can reach outside the recordings directory. Names are
//! refused when absolute, empty, `.`/`..`, or holding NUL or a backslash; every component
//! under the root is looked at with `symlink_metadata` and a symlink anywhere refuses the
//! name; the file is opened with `O_NOFOLLOW`; and the canonical result must lie under the
//! canonical root. Refused names answer `NotFound`: nothing is said about what exists.
//! Does not own listing, naming or retention (the recorder does).
//!
//! A race remains in theory (a directory swapped for a symlink between the checks and the
//! open): only the recorder writes under the root, and it makes no symlinks.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::control::RecordingError;
use crate::naming::Template;

/// Whether `c` may be one component of a name.
fn valid_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0', '/'])
}

fn io(what: &str, p: &Path, e: std::io::Error) -> RecordingError {
    if e.kind() == std::io::ErrorKind::NotFound {
        RecordingError::NotFound
    } else {
        RecordingError::Io(format!("cannot {what} {}: {e}", p.display()))
    }
}

/// The file `file` of path `path` (one component) under `root`, when it exists, is reached
/// without symlinks and stays under `root`. `file` is relative to the path's directory
/// under the root, `template.scan_dir(path)` (`path` itself for the default template), with
/// '/' separating the template's subdirectories.
pub fn resolve(
    root: &Path,
    template: &Template,
    path: &str,
    file: &str,
) -> Result<PathBuf, RecordingError> {
    if !valid_component(path) {
        return Err(RecordingError::NotFound);
    }
    // The template was validated by config; its directory is checked like a name anyway.
    let dir = template.scan_dir(path);
    let mut parts = Vec::new();
    for c in dir.components() {
        match c.as_os_str().to_str() {
            Some(c) if valid_component(c) => parts.push(c),
            _ => return Err(RecordingError::NotFound),
        }
    }
    for c in file.split('/') {
        if !valid_component(c) {
            return Err(RecordingError::NotFound);
        }
        parts.push(c);
    }
    let mut cur = root.to_path_buf();
    let last = parts.len() - 1;
    for (i, c) in parts.into_iter().enumerate() {
        cur.push(c);
        let meta = std::fs::symlink_metadata(&cur).map_err(|e| io("look at", &cur, e))?;
        if meta.file_type().is_symlink() {
            return Err(RecordingError::NotFound);
        }
        // Every component but the file itself must be a directory.
        if i < last && !meta.is_dir() {
            return Err(RecordingError::NotFound);
        }
    }
    let base = root
        .canonicalize()
        .map_err(|e| io("resolve the recordings directory", root, e))?;
    let real = cur.canonicalize().map_err(|e| io("resolve", &cur, e))?;
    if real.starts_with(&base) && real != base {
        Ok(real)
    } else {
        Err(RecordingError::NotFound)
    }
}

/// A resolved `.mp4` segment that is a regular file.
fn segment(
    root: &Path,
    template: &Template,
    path: &str,
    file: &str,
) -> Result<PathBuf, RecordingError> {
    if !file.ends_with(".mp4") {
        return Err(RecordingError::NotFound);
    }
    let p = resolve(root, template, path, file)?;
    let meta = std::fs::symlink_metadata(&p).map_err(|e| io("look at", &p, e))?;
    if !meta.file_type().is_file() {
        return Err(RecordingError::NotFound);
    }
    Ok(p)
}

/// Opens a segment for reading: the file and its length now.
pub fn open_segment(
    root: &Path,
    template: &Template,
    path: &str,
    file: &str,
) -> Result<(File, u64), RecordingError> {
    let p = segment(root, template, path, file)?;
    // O_NONBLOCK: a FIFO slipped in after the checks must not hang the open.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => RecordingError::NotFound,
            _ => io("open", &p, e),
        })?;
    let meta = f.metadata().map_err(|e| io("look at", &p, e))?;
    if !meta.is_file() {
        return Err(RecordingError::NotFound);
    }
    Ok((f, meta.len()))
}

/// Deletes a segment, unless it is `writing` (the one being written): `Forbidden`. The
/// directory is fsynced so that the removal survives a power cut.
pub fn delete_segment(
    root: &Path,
    template: &Template,
    path: &str,
    file: &str,
    writing: Option<&Path>,
) -> Result<(), RecordingError> {
    let p = segment(root, template, path, file)?;
    if let Some(w) = writing {
        let same = match (std::fs::metadata(&p), std::fs::metadata(w)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => w.canonicalize().is_ok_and(|w| w == p),
        };
        if same {
            return Err(RecordingError::Forbidden(format!(
                "{path}/{file} is being recorded"
            )));
        }
    }
    std::fs::remove_file(&p).map_err(|e| io("delete", &p, e))?;
    if let Some(dir) = p.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", dir, e))?;
    }
    log::info!("record: deleted {}", p.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn default() -> Template {
        Template::parse(crate::naming::DEFAULT_TEMPLATE).unwrap()
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// root/cam/a.mp4, root/cam/2026/11/b.mp4, root/cam/notes.txt, outside/secret.mp4 and
    /// outside/dir/x.mp4, with symlinks root/cam/link.mp4 → secret, root/cam/out → outside/dir,
    /// root/alias → root/cam.
    fn fixture(tag: &str) -> (Dir, PathBuf, PathBuf) {
        let d = std::env::temp_dir().join(format!(
            "vigint-library-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        let root = d.join("root");
        let out = d.join("outside");
        std::fs::create_dir_all(root.join("cam/2026/11")).unwrap();
        std::fs::create_dir_all(out.join("dir")).unwrap();
        std::fs::write(root.join("cam/a.mp4"), b"aaaa").unwrap();
        std::fs::write(root.join("cam/2026/11/b.mp4"), b"bb").unwrap();
        std::fs::write(root.join("cam/notes.txt"), b"n").unwrap();
        std::fs::write(out.join("secret.mp4"), b"secret").unwrap();
        std::fs::write(out.join("dir/x.mp4"), b"x").unwrap();
        symlink(out.join("secret.mp4"), root.join("cam/link.mp4")).unwrap();
        symlink(out.join("dir"), root.join("cam/out")).unwrap();
        symlink(root.join("cam"), root.join("alias")).unwrap();
        (Dir(d), root, out)
    }

    #[test]
    fn resolves_files_and_subdirectories() {
        let (_d, root, _) = fixture("ok");
        let base = root.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, &default(), "cam", "a.mp4"),
            Ok(base.join("cam/a.mp4"))
        );
        assert_eq!(
            resolve(&root, &default(), "cam", "2026/11/b.mp4"),
            Ok(base.join("cam/2026/11/b.mp4"))
        );
        let (mut f, len) = open_segment(&root, &default(), "cam", "2026/11/b.mp4").unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), len), ("bb", 2));
        assert_eq!(
            resolve(&root, &default(), "cam", "none.mp4"),
            Err(RecordingError::NotFound)
        );
        assert_eq!(
            resolve(&root, &default(), "nope", "a.mp4"),
            Err(RecordingError::NotFound)
        );
        // Not an .mp4, or a directory: not a segment.
        assert_eq!(
            open_segment(&root, &default(), "cam", "notes.txt").map(|_| ()),
            Err(RecordingError::NotFound)
        );
        std::fs::create_dir(root.join("cam/d.mp4")).unwrap();
        assert_eq!(
            open_segment(&root, &default(), "cam", "d.mp4").map(|_| ()),
            Err(RecordingError::NotFound)
        );
        // A file used as a directory.
        assert_eq!(
            resolve(&root, &default(), "cam", "a.mp4/x.mp4"),
            Err(RecordingError::NotFound)
        );
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        let (_d, root, out) = fixture("escape");
        let outside = out.join("secret.mp4");
        let bad = [
            ("cam", "../../outside/secret.mp4"),
            ("cam", "2026/../a.mp4"),
            ("cam", "./a.mp4"),
            ("cam", "2026//11/b.mp4"),
            ("cam", ""),
            ("cam", "a.mp4/"),
            ("cam", "/etc/passwd"),
            ("cam", outside.to_str().unwrap()),
            ("cam", "a.mp4\0"),
            ("cam", "2026\\11\\b.mp4"),
            ("cam", "..\\..\\outside\\secret.mp4"),
            // Still encoded: a literal name that does not exist.
            ("cam", "%2e%2e/%2e%2e/outside/secret.mp4"),
            ("cam", "..%2F..%2Foutside%2Fsecret.mp4"),
            ("..", "outside/secret.mp4"),
            (".", "cam/a.mp4"),
            ("", "cam/a.mp4"),
            ("/", "a.mp4"),
            ("cam/2026", "11/b.mp4"),
            // Symlinks: to a file outside, to a directory outside, to a directory inside.
            ("cam", "link.mp4"),
            ("cam", "out/x.mp4"),
            ("alias", "a.mp4"),
        ];
        for (path, file) in bad {
            assert_eq!(
                resolve(&root, &default(), path, file),
                Err(RecordingError::NotFound),
                "{path:?} {file:?}"
            );
            assert!(
                open_segment(&root, &default(), path, file).is_err(),
                "{path:?} {file:?}"
            );
            assert!(
                delete_segment(&root, &default(), path, file, None).is_err(),
                "{path:?} {file:?}"
            );
        }
        assert!(out.join("secret.mp4").exists() && out.join("dir/x.mp4").exists());
        assert!(root.join("cam/link.mp4").symlink_metadata().is_ok());
        // The root itself may be reached through a symlink (a mount point link).
        let via = root.parent().unwrap().join("via");
        symlink(&root, &via).unwrap();
        assert!(open_segment(&via, &default(), "cam", "a.mp4").is_ok());
    }

    #[test]
    fn delete_refuses_the_segment_being_written() {
        let (_d, root, _) = fixture("delete");
        let writing = root.join("cam/2026/11/b.mp4");
        assert_eq!(
            delete_segment(&root, &default(), "cam", "2026/11/b.mp4", Some(&writing))
                .map_err(|e| matches!(e, RecordingError::Forbidden(_))),
            Err(true)
        );
        assert!(writing.exists());
        assert_eq!(
            delete_segment(&root, &default(), "cam", "a.mp4", Some(&writing)),
            Ok(())
        );
        assert!(!root.join("cam/a.mp4").exists());
        assert_eq!(
            delete_segment(&root, &default(), "cam", "a.mp4", None),
            Err(RecordingError::NotFound)
        );
        assert_eq!(
            delete_segment(&root, &default(), "cam", "2026/11/b.mp4", None),
            Ok(())
        );
    }

    #[test]
    fn a_prefixed_template_resolves_under_its_directory() {
        let (_d, root, out) = fixture("prefixed");
        let t = Template::parse("rec/%path/%Y/%m/%d/%H%M%S%f.mp4").unwrap();
        let day = root.join("rec/cam/2024/05/01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("c.mp4"), b"ccc").unwrap();
        symlink(out.join("secret.mp4"), day.join("link.mp4")).unwrap();
        let base = root.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, &t, "cam", "2024/05/01/c.mp4"),
            Ok(base.join("rec/cam/2024/05/01/c.mp4"))
        );
        let (mut f, len) = open_segment(&root, &t, "cam", "2024/05/01/c.mp4").unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), len), ("ccc", 3));
        let bad = [
            ("cam", "a.mp4"), // root/cam/a.mp4: not under rec/cam
            ("cam", "../../cam/a.mp4"),
            ("cam", "../../../outside/secret.mp4"),
            ("cam", "2024/../2024/05/01/c.mp4"),
            ("cam", "rec/cam/2024/05/01/c.mp4"),
            ("cam", "2024/05/01/link.mp4"),
            ("..", "cam/2024/05/01/c.mp4"),
            ("rec", "cam/2024/05/01/c.mp4"),
        ];
        for (path, file) in bad {
            assert_eq!(
                resolve(&root, &t, path, file),
                Err(RecordingError::NotFound),
                "{path:?} {file:?}"
            );
            assert!(open_segment(&root, &t, path, file).is_err(), "{file:?}");
            assert!(
                delete_segment(&root, &t, path, file, None).is_err(),
                "{file:?}"
            );
        }
        assert!(out.join("secret.mp4").exists() && root.join("cam/a.mp4").exists());
        assert_eq!(
            delete_segment(&root, &t, "cam", "2024/05/01/c.mp4", None),
            Ok(())
        );
        assert!(!day.join("c.mp4").exists());
    }

    #[test]
    fn a_template_without_a_fixed_directory_resolves_from_the_root() {
        let (_d, root, _) = fixture("rootdir");
        let t = Template::parse("%Y/%path/x.mp4").unwrap();
        let base = root.canonicalize().unwrap();
        assert_eq!(
            resolve(&root, &t, "cam", "cam/a.mp4"),
            Ok(base.join("cam/a.mp4"))
        );
        for file in [
            "",
            "..",
            "../outside/secret.mp4",
            "alias/a.mp4",
            "cam/link.mp4",
        ] {
            assert_eq!(
                resolve(&root, &t, "cam", file),
                Err(RecordingError::NotFound),
                "{file:?}"
            );
        }
    }
}
