//! The recordings routes: list, download (with a single byte range, so that a browser's
//! `<video>` can seek) and delete, through `control::Recordings`.
//!
//! Owns: `Range` parsing and the answers (200/206/416, JSON errors), the list's shape (each
//! segment with its `play_url`, made by the caller). Names arrive decoded
//! and checked by `routes`; the implementation checks them again against the disk.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::error::ApiError;
use super::{json, Response};
use crate::control::{Recordings, SegmentEntry};
use crate::http::message::FileBody;
use crate::http::routes::Route;
use crate::http::{play, HttpContext, Request};

const MP4: &str = "video/mp4";

/// A `Range` header against a body of `len` bytes: `Ok(Some((first, last)))` (inclusive)
/// for one satisfiable range, `Ok(None)` to answer the whole body (200), `Err(())` when
/// unsatisfiable (416).
///
/// Takes `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes). Several ranges are
/// answered with the whole body (allowed by RFC 9110 14.2; browsers ask for one). A header
/// that is not valid, or in another unit, is ignored (RFC 9110 14.2): the whole body.
/// Numbers too large for u64 saturate: a first position past the end is unsatisfiable, a
/// last position or suffix past the end means "to the end" or "everything".
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let header = header.trim();
    let Some(unit) = header.get(..6) else {
        return Ok(None);
    };
    if !unit.eq_ignore_ascii_case("bytes=") {
        return Ok(None);
    }
    let spec = header[6..].trim();
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // All digits: only too many of them can fail.
        Some(s.parse::<u64>().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        let Some(n) = number(last) else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(());
        }
        return Ok(Some((len - n.min(len), len - 1)));
    }
    let Some(a) = number(first) else {
        return Ok(None);
    };
    let b = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(b) if b >= a => b,
            _ => return Ok(None),
        }
    };
    if a >= len {
        return Err(());
    }
    Ok(Some((a, b.min(len - 1))))
}

/// A segment as listed: the entry and its play link.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    segment: &'a SegmentEntry,
    play_url: Option<String>,
}

#[derive(Serialize)]
struct ListedPath<'a> {
    path: &'a str,
    segments: Vec<Listed<'a>>,
}

/// `GET /api/v1/recordings`: `[{"path", "segments": [...]}]`, each segment with the
/// `play_url` that `play_url(path, file)` makes (null when it makes none).
pub fn list(
    rec: &dyn Recordings,
    play_url: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Response, ApiError> {
    let all = rec.list();
    let listed: Vec<ListedPath> = all
        .iter()
        .map(|p| ListedPath {
            path: &p.path,
            segments: p
                .segments
                .iter()
                .map(|s| Listed {
                    segment: s,
                    play_url: play_url(&p.path, &s.file),
                })
                .collect(),
        })
        .collect();
    Ok(json(200, &listed))
}

/// `GET` or `HEAD /api/v1/recordings/{path}/{file}`, with `range` the `Range` header.
pub fn download(
    rec: &dyn Recordings,
    path: &str,
    file: &str,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let (f, len) = rec.open(path, file)?;
    let range = match range.map(|r| parse_range(r, len)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(r))) => Some(r),
        Some(Err(())) => return Err(ApiError::RangeNotSatisfiable { len }),
    };
    let (status, offset, n) = match range {
        Some((first, last)) => (206, first, last - first + 1),
        None => (200, 0, len),
    };
    let mut headers = vec![
        ("Content-Type", MP4.to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    if let Some((first, last)) = range {
        headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
    }
    let mut r = Response::new(status, headers, Vec::new());
    r.file = Some(FileBody {
        file: Arc::new(f),
        offset,
        len: n,
    });
    Ok(r)
}

/// `DELETE /api/v1/recordings/{path}/{file}`: 200 `{}`.
pub fn delete(rec: &dyn Recordings, path: &str, file: &str) -> Result<Response, ApiError> {
    rec.delete(path, file)?;
    Ok(json(200, &serde_json::json!({})))
}

/// The recordings routes, for the logged-in admin; 404 `recording_off` when recording is
/// off. `admin_hash` keys the play links the list hands out.
pub fn answer(
    ctx: &HttpContext,
    req: &Request,
    route: Route,
    admin_hash: Option<&str>,
) -> Result<Response, ApiError> {
    let rec = recordings_on(ctx)?;
    match route {
        Route::Segment { path, file } => download(rec, &path, &file, req.header("Range")),
        Route::DeleteSegment { path, file } => delete(rec, &path, &file),
        _ => {
            // Only the admin gets here (Access::Admin), so the hash is set.
            let hash = admin_hash.unwrap_or_default();
            let now = Instant::now();
            list(rec, &|path: &str, file: &str| {
                let token = ctx.login.play().mint(hash, path, file, now)?;
                Some(play::segment_url(path, file, Some(&token)))
            })
        }
    }
}

fn recordings_on(ctx: &HttpContext) -> Result<&dyn Recordings, ApiError> {
    ctx.recordings
        .as_deref()
        .ok_or_else(|| ApiError::not_found("recording_off", "recording is not enabled"))
}

/// GET or HEAD of a segment with a play link (`?token=`) instead of a login. A bad, expired
/// or revoked link is 401 like a missing login, without `WWW-Authenticate` (a `<video>`
/// must not open a login dialog) and without counting as a failed password: guessing a
/// 256-bit MAC is hopeless, so there is nothing for the limiter to slow down, while an open
/// tab's stale links would otherwise lock its admin out.
pub fn play_segment(
    ctx: &HttpContext,
    req: &Request,
    admin_hash: Option<&str>,
    path: &str,
    file: &str,
    token: &str,
) -> Result<Response, ApiError> {
    let valid = admin_hash.is_some_and(|hash| {
        ctx.login
            .play()
            .check(hash, path, file, token, Instant::now())
            .is_ok()
    });
    if !valid {
        return Err(ApiError::Unauthorized {
            message: "this play link is not valid or has expired; reload the recordings list"
                .into(),
            challenge: false,
        });
    }
    download(recordings_on(ctx)?, path, file, req.header("Range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{PathRecordings, RecordingError, SegmentEntry};
    use crate::http::{answer, tests::MemoryControl, HttpContext, Request};
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::sync::Mutex;

    #[test]
    fn ranges_of_every_form() {
        let r = |h: &str| parse_range(h, 1000);
        assert_eq!(r("bytes=0-"), Ok(Some((0, 999))));
        assert_eq!(r("bytes=100-199"), Ok(Some((100, 199))));
        assert_eq!(r("bytes=999-999"), Ok(Some((999, 999))));
        assert_eq!(r("bytes=900-5000"), Ok(Some((900, 999))));
        assert_eq!(r("bytes=-100"), Ok(Some((900, 999))));
        assert_eq!(r("bytes=-5000"), Ok(Some((0, 999))));
        assert_eq!(r("Bytes = 5 - 9 "), Ok(None), "space before '='");
        assert_eq!(r("BYTES=5- 9"), Ok(Some((5, 9))));
        // Unsatisfiable.
        assert_eq!(r("bytes=1000-"), Err(()));
        assert_eq!(r("bytes=1000-2000"), Err(()));
        assert_eq!(r("bytes=-0"), Err(()));
        assert_eq!(parse_range("bytes=0-", 0), Err(()));
        assert_eq!(parse_range("bytes=-1", 0), Err(()));
        // Overflow saturates.
        assert_eq!(r("bytes=99999999999999999999999-"), Err(()));
        assert_eq!(r("bytes=10-99999999999999999999999"), Ok(Some((10, 999))));
        assert_eq!(r("bytes=-99999999999999999999999"), Ok(Some((0, 999))));
        let big = u64::MAX;
        assert_eq!(
            parse_range("bytes=18446744073709551614-", big),
            Ok(Some((big - 1, big - 1)))
        );
        // Several ranges: the whole file.
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        // Invalid or another unit: ignored.
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5",
            "bytes=9-5",
            "bytes=+1-2",
            "bytes=0x1-",
            "bytes=--1",
            "bytes=1--2",
            "items=0-1",
            "bytes 0-1",
            "é",
            "bytes=é-",
        ] {
            assert_eq!(r(bad), Ok(None), "{bad:?}");
        }
    }

    /// A naive `Recordings` over a temp dir: it joins names without checking, so that any
    /// name the `http` side let through would be served. Remembers every name it was given.
    struct Fake {
        root: PathBuf,
        writing: String,
        seen: Mutex<Vec<(String, String)>>,
    }

    impl Recordings for Fake {
        fn list(&self) -> Vec<PathRecordings> {
            vec![PathRecordings {
                path: "cam".into(),
                segments: vec![SegmentEntry {
                    file: "2026/a.mp4".into(),
                    start: Some("2026-11-21T10:00:00Z".into()),
                    clock_trusted: true,
                    duration_s: 600.0,
                    bytes: 1000,
                    recording: false,
                }],
            }]
        }
        fn open(&self, path: &str, file: &str) -> Result<(std::fs::File, u64), RecordingError> {
            self.seen.lock().unwrap().push((path.into(), file.into()));
            let f = std::fs::File::open(self.root.join(path).join(file))
                .map_err(|_| RecordingError::NotFound)?;
            let len = f
                .metadata()
                .map_err(|e| RecordingError::Io(e.to_string()))?
                .len();
            Ok((f, len))
        }
        fn delete(&self, path: &str, file: &str) -> Result<(), RecordingError> {
            self.seen.lock().unwrap().push((path.into(), file.into()));
            if format!("{path}/{file}") == self.writing {
                return Err(RecordingError::Forbidden("being recorded".into()));
            }
            std::fs::remove_file(self.root.join(path).join(file))
                .map_err(|_| RecordingError::NotFound)
        }
    }

    struct Setup {
        ctx: HttpContext,
        fake: Arc<Fake>,
        root: PathBuf,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.root.parent().unwrap());
        }
    }

    const AUTH: &str = "Basic YWRtaW46bG9uZyBlbm91Z2g="; // admin:long enough

    fn setup(tag: &str) -> Setup {
        let d = std::env::temp_dir().join(format!("vigint-recapi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let root = d.join("root");
        std::fs::create_dir_all(root.join("cam/2026")).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("cam/2026/a.mp4"), &data).unwrap();
        std::fs::write(root.join("cam/b.mp4"), b"bbbb").unwrap();
        std::fs::write(d.join("secret.mp4"), b"secret").unwrap();
        let fake = Arc::new(Fake {
            root: root.clone(),
            writing: "cam/b.mp4".into(),
            seen: Mutex::default(),
        });
        let mut config = crate::config::Config::default();
        config.admin.password_hash =
            Some(crate::auth::password::hash_password("long enough").unwrap());
        let ctx = HttpContext {
            monitor: crate::status::tests::fake_monitor(),
            cameras: Arc::new(|| serde_json::json!([])),
            control: Arc::new(MemoryControl(Mutex::new(config))),
            login: Arc::default(),
            recordings: Some(fake.clone()),
            live: None,
        };
        Setup { ctx, fake, root }
    }

    fn send(c: &HttpContext, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let mut h: Vec<(String, String)> = vec![("Authorization".into(), AUTH.into())];
        h.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        answer(
            c,
            &Request {
                method: method.into(),
                target: target.into(),
                headers: h,
                body: vec![],
                peer: "127.0.0.1:5000".parse().unwrap(),
            },
        )
    }

    fn header<'a>(a: &'a Response, name: &str) -> Option<&'a str> {
        a.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bytes a file body would send.
    fn file_bytes(a: &Response) -> Vec<u8> {
        let f = a.file.as_ref().expect("a file body");
        let mut buf = vec![0; f.len as usize];
        f.file.read_exact_at(&mut buf, f.offset).unwrap();
        buf
    }

    fn code(a: &Response) -> String {
        let v: serde_json::Value = serde_json::from_slice(&a.body).expect("json");
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn lists_and_downloads_with_ranges() {
        let s = setup("get");
        let c = &s.ctx;
        let a = send(c, "GET", "/api/v1/recordings", &[]);
        assert_eq!(a.status, 200);
        let mut v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let play_url = v[0]["segments"][0]["play_url"].take();
        assert!(
            play_url
                .as_str()
                .is_some_and(|u| u.starts_with("/api/v1/recordings/cam/2026/a.mp4?token=")),
            "{play_url}"
        );
        assert_eq!(
            v,
            serde_json::json!([{"path": "cam", "segments": [{"file": "2026/a.mp4",
                "start": "2026-11-21T10:00:00Z", "clock_trusted": true, "duration_s": 600.0,
                "bytes": 1000, "recording": false, "play_url": null}]}])
        );
        let data = std::fs::read(s.root.join("cam/2026/a.mp4")).unwrap();
        let a = send(c, "GET", "/api/v1/recordings/cam/2026/a.mp4", &[]);
        assert_eq!(a.status, 200);
        assert_eq!(header(&a, "Content-Type"), Some("video/mp4"));
        assert_eq!(header(&a, "Accept-Ranges"), Some("bytes"));
        assert_eq!(header(&a, "Content-Range"), None);
        assert_eq!(file_bytes(&a), data);
        // A browser's first request, then a seek.
        let a = send(
            c,
            "GET",
            "/api/v1/recordings/cam/2026/a.mp4",
            &[("Range", "bytes=0-")],
        );
        assert_eq!(a.status, 206);
        assert_eq!(header(&a, "Content-Range"), Some("bytes 0-999/1000"));
        assert_eq!(file_bytes(&a), data);
        let a = send(
            c,
            "GET",
            "/api/v1/recordings/cam/2026/a.mp4",
            &[("Range", "bytes=100-199")],
        );
        assert_eq!(a.status, 206);
        assert_eq!(header(&a, "Content-Range"), Some("bytes 100-199/1000"));
        assert_eq!(file_bytes(&a), &data[100..200]);
        let a = send(
            c,
            "GET",
            "/api/v1/recordings/cam/2026/a.mp4",
            &[("Range", "bytes=-10")],
        );
        assert_eq!(file_bytes(&a), &data[990..]);
        // HEAD answers as GET; the transport drops the body.
        let a = send(
            c,
            "HEAD",
            "/api/v1/recordings/cam/2026/a.mp4",
            &[("Range", "bytes=100-199")],
        );
        assert_eq!(a.status, 206);
        assert_eq!(a.file.as_ref().map(|f| f.len), Some(100));
        // Unsatisfiable.
        let a = send(
            c,
            "GET",
            "/api/v1/recordings/cam/2026/a.mp4",
            &[("Range", "bytes=1000-")],
        );
        assert_eq!(a.status, 416);
        assert_eq!(header(&a, "Content-Range"), Some("bytes */1000"));
        assert!(a.file.is_none());
        // Encoded names decode once.
        let a = send(c, "GET", "/api/v1/recordings/c%61m/2026/%61.mp4", &[]);
        assert_eq!(a.status, 200);
        let a = send(c, "GET", "/api/v1/recordings/cam/2026/none.mp4", &[]);
        assert_eq!((a.status, code(&a).as_str()), (404, "not_found"));
    }

    #[test]
    fn traversal_never_reaches_the_disk() {
        let s = setup("escape");
        let c = &s.ctx;
        for target in [
            "/api/v1/recordings/cam/../../secret.mp4",
            "/api/v1/recordings/cam/%2e%2e/%2e%2e/secret.mp4",
            "/api/v1/recordings/cam/%2E%2E%2F%2E%2E%2Fsecret.mp4",
            "/api/v1/recordings/..%2F/secret.mp4",
            "/api/v1/recordings/cam/..%5C..%5Csecret.mp4",
            "/api/v1/recordings/cam/%2F..%2F..%2Fsecret.mp4",
            "/api/v1/recordings/cam/secret.mp4%00.mp4",
            "/api/v1/recordings/cam//b.mp4",
            "/api/v1/recordings/cam/./b.mp4",
            "/api/v1/recordings/%2e/cam/b.mp4",
            "/api/v1/recordings/cam/%zz",
        ] {
            for method in ["GET", "HEAD", "DELETE"] {
                let a = send(c, method, target, &[]);
                assert!(
                    a.status == 400 || a.status == 404,
                    "{method} {target}: {}",
                    a.status
                );
                assert!(a.file.is_none());
            }
        }
        assert!(s.fake.seen.lock().unwrap().is_empty());
        assert!(s.root.join("../secret.mp4").exists());
    }

    #[test]
    fn delete_and_the_segment_being_written() {
        let s = setup("delete");
        let c = &s.ctx;
        let a = send(c, "DELETE", "/api/v1/recordings/cam/b.mp4", &[]);
        assert_eq!((a.status, code(&a).as_str()), (409, "recording"));
        assert!(s.root.join("cam/b.mp4").exists());
        let a = send(c, "DELETE", "/api/v1/recordings/cam/2026/a.mp4", &[]);
        assert_eq!(a.status, 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&a.body).unwrap(),
            serde_json::json!({})
        );
        assert!(!s.root.join("cam/2026/a.mp4").exists());
        let a = send(c, "DELETE", "/api/v1/recordings/cam/2026/a.mp4", &[]);
        assert_eq!(a.status, 404);
        // Deleting is a change: same-origin only.
        let a = send(
            c,
            "DELETE",
            "/api/v1/recordings/cam/b.mp4",
            &[("Sec-Fetch-Site", "cross-site")],
        );
        assert_eq!(a.status, 403);
    }

    #[test]
    fn admin_only_and_off_when_not_recording() {
        let s = setup("auth");
        for (method, target) in [
            ("GET", "/api/v1/recordings"),
            ("GET", "/api/v1/recordings/cam/b.mp4"),
            ("HEAD", "/api/v1/recordings/cam/b.mp4"),
            ("DELETE", "/api/v1/recordings/cam/b.mp4"),
        ] {
            let a = answer(
                &s.ctx,
                &Request {
                    method: method.into(),
                    target: target.into(),
                    headers: vec![],
                    body: vec![],
                    peer: "127.0.0.1:5000".parse().unwrap(),
                },
            );
            assert_eq!(a.status, 401, "{method} {target}");
            assert!(a.file.is_none());
        }
        assert!(s.fake.seen.lock().unwrap().is_empty());
        assert!(s.root.join("cam/b.mp4").exists());
        let off = HttpContext {
            recordings: None,
            live: None,
            monitor: s.ctx.monitor.clone(),
            cameras: s.ctx.cameras.clone(),
            control: s.ctx.control.clone(),
            login: Arc::default(),
        };
        for target in ["/api/v1/recordings", "/api/v1/recordings/cam/b.mp4"] {
            let a = send(&off, "GET", target, &[]);
            assert_eq!((a.status, code(&a).as_str()), (404, "recording_off"));
        }
    }

    /// A request without a login (as a `<video>` element sends it).
    fn anonymous(
        c: &HttpContext,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        answer(
            c,
            &Request {
                method: method.into(),
                target: target.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: vec![],
                peer: "127.0.0.1:5000".parse().unwrap(),
            },
        )
    }

    /// The play URL the list gives for `file` of cam.
    fn play_url(c: &HttpContext, file: &str) -> String {
        let a = send(c, "GET", "/api/v1/recordings", &[]);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        v[0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["file"] == file)
            .and_then(|s| s["play_url"].as_str())
            .expect("a play_url")
            .to_string()
    }

    #[test]
    fn play_links_serve_their_file_without_a_login() {
        let s = setup("play");
        let c = &s.ctx;
        let url = play_url(c, "2026/a.mp4");
        let data = std::fs::read(s.root.join("cam/2026/a.mp4")).unwrap();
        let a = anonymous(c, "GET", &url, &[("Range", "bytes=100-199")]);
        assert_eq!(a.status, 206);
        assert_eq!(header(&a, "Content-Range"), Some("bytes 100-199/1000"));
        assert_eq!(file_bytes(&a), &data[100..200]);
        let a = anonymous(c, "HEAD", &url, &[]);
        assert_eq!(
            (a.status, a.file.as_ref().map(|f| f.len)),
            (200, Some(1000))
        );
        // Not for another file, nor with a changed path, nor with the token moved.
        let token = url.split_once('?').unwrap().1;
        for other in [
            format!("/api/v1/recordings/cam/b.mp4?{token}"),
            format!("/api/v1/recordings/cam/2026/a.mp4x?{token}"),
            format!("/api/v1/recordings/cam/2026/a.mp4?{token}x"),
            format!(
                "/api/v1/recordings/cam/2026/a.mp4?{}",
                token.replace("token=", "token=1")
            ),
            "/api/v1/recordings/cam/2026/a.mp4?token=".to_string(),
        ] {
            let a = anonymous(c, "GET", &other, &[]);
            assert_eq!(
                (a.status, code(&a).as_str()),
                (401, "unauthorized"),
                "{other}"
            );
            assert!(a.file.is_none());
            // JSON like every error, and no login dialog for a <video>.
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("play link"));
            assert!(v["error"]["field"].is_null());
            assert_eq!(header(&a, "WWW-Authenticate"), None);
        }
        // A link is not a login: the list and other routes still need one.
        let listing = format!("/api/v1/recordings?{token}");
        assert_eq!(anonymous(c, "GET", &listing, &[]).status, 401);
        assert_eq!(
            anonymous(c, "GET", &format!("/api/v1/config?{token}"), &[]).status,
            401
        );
        // A changed admin password revokes every link.
        c.control
            .update(&mut |cur| {
                let mut next = cur.clone();
                next.admin.password_hash =
                    Some(crate::auth::password::hash_password("another password").unwrap());
                Ok(next)
            })
            .unwrap();
        assert_eq!(anonymous(c, "GET", &url, &[]).status, 401);
        assert!(s
            .fake
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|(_, f)| f == "2026/a.mp4"));
    }

    #[test]
    fn a_play_link_cannot_delete() {
        let s = setup("play-delete");
        let c = &s.ctx;
        let url = play_url(c, "2026/a.mp4");
        let a = anonymous(c, "DELETE", &url, &[]);
        assert_eq!((a.status, code(&a).as_str()), (401, "unauthorized"));
        assert!(s.root.join("cam/2026/a.mp4").exists());
        assert!(s.fake.seen.lock().unwrap().is_empty());
        // Nor change anything else.
        let token = url.split_once('?').unwrap().1;
        let a = anonymous(c, "PATCH", &format!("/api/v1/config?{token}"), &[]);
        assert_eq!(a.status, 401);
    }

    #[test]
    fn bad_play_links_never_lock_the_admin_out() {
        let s = setup("play-limit");
        let c = &s.ctx;
        let url = play_url(c, "2026/a.mp4");
        let forged = format!("{}A", &url[..url.len() - 1]);
        let forged = if forged == url {
            format!("{}B", &url[..url.len() - 1])
        } else {
            forged
        };
        for _ in 0..3 * crate::http::login::FREE_ATTEMPTS {
            assert_eq!(anonymous(c, "GET", &forged, &[]).status, 401);
        }
        // The login still works from the same address, with no wait.
        assert_eq!(send(c, "GET", "/api/v1/recordings", &[]).status, 200);
        // And a valid link works while the address is made to wait after wrong passwords.
        // Wrong passwords until the wait is at least 4 s (Argon2 is slow in a debug build: a
        // shorter wait may pass while the checks below run).
        let wrong = "Basic YWRtaW46d3Jvbmc="; // admin:wrong
        let limited = (0..100).any(|_| {
            let a = anonymous(c, "GET", "/api/v1/recordings", &[("Authorization", wrong)]);
            let wait: u64 = header(&a, "Retry-After")
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            if a.status == 429 && wait < 4 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            a.status == 429 && wait >= 4
        });
        assert!(limited, "wrong passwords were never rate-limited");
        assert_eq!(anonymous(c, "GET", &url, &[]).status, 200);
        assert_eq!(send(c, "GET", "/api/v1/recordings", &[]).status, 429);
    }

    #[test]
    fn play_links_die_with_the_process() {
        let s = setup("play-restart");
        let url = play_url(&s.ctx, "2026/a.mp4");
        // A new process: a new login (and key), the same config and files.
        let restarted = HttpContext {
            recordings: Some(s.fake.clone()),
            live: None,
            monitor: s.ctx.monitor.clone(),
            cameras: s.ctx.cameras.clone(),
            control: s.ctx.control.clone(),
            login: Arc::default(),
        };
        assert_eq!(anonymous(&restarted, "GET", &url, &[]).status, 401);
        assert_eq!(anonymous(&s.ctx, "GET", &url, &[]).status, 200);
    }
}
