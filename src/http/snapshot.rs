//! `GET /api/v1/paths/{name}/snapshot.jpg[?width=N]`: a path's latest picture as a JPEG.
//!
//! Owns: reading `width` from the query (pure, refused with 400 `bad_width` when it is not
//! a whole number from `MIN_WIDTH` to `MAX_WIDTH`), the `image/jpeg` answer with the
//! picture's size and age in headers (`control::SnapshotError` becomes an answer in
//! `error::ApiError`). Who may ask is `routes::Access`; making the picture is the
//! supervisor's (`Control::snapshot`, with the `snapshot` module's cache).

use super::error::ApiError;
use super::message::Response;
use crate::control::Control;

/// The narrowest snapshot one may ask for.
pub const MIN_WIDTH: u32 = 16;
/// The widest `width` accepted (wider than any picture: answered at the picture's width).
pub const MAX_WIDTH: u32 = 7680;

/// `width` from a request target's query: `Ok(None)` when absent.
pub fn width_of(target: &str) -> Result<Option<u32>, String> {
    let mut width = None;
    for pair in super::routes::query_of(target).split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "width" {
            continue;
        }
        if width.is_some() {
            return Err("give width once".into());
        }
        let n =
            (!value.is_empty() && value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u32>().ok())
                .flatten()
                .filter(|n| (MIN_WIDTH..=MAX_WIDTH).contains(n));
        match n {
            Some(n) => width = Some(n),
            None => {
                return Err(format!(
                    "width must be a whole number of pixels from {MIN_WIDTH} to {MAX_WIDTH}, not `{value}`"
                ))
            }
        }
    }
    Ok(width)
}

/// Answers the snapshot route for `path` (errors become answers in `ApiError`, from
/// `SnapshotError`).
pub fn answer(control: &dyn Control, path: &str, target: &str) -> Result<Response, ApiError> {
    let width = width_of(target).map_err(|why| ApiError::bad("bad_width", why))?;
    let jpeg = control.snapshot(path, width)?;
    Ok(Response::new(
        200,
        vec![
            ("Content-Type", "image/jpeg".into()),
            ("X-Picture-Size", format!("{}x{}", jpeg.width, jpeg.height)),
            ("X-Picture-Age-Ms", jpeg.age_ms.to_string()),
        ],
        jpeg.bytes.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SnapshotError;

    #[test]
    fn widths_are_whole_numbers_in_range() {
        let p = "/api/v1/paths/cam/snapshot.jpg";
        assert_eq!(width_of(p), Ok(None));
        assert_eq!(width_of(&format!("{p}?")), Ok(None));
        assert_eq!(width_of(&format!("{p}?width=320")), Ok(Some(320)));
        assert_eq!(width_of(&format!("{p}?x=1&width=16#f")), Ok(Some(16)));
        assert_eq!(width_of(&format!("{p}?width=7680")), Ok(Some(7680)));
        for bad in [
            "width=",
            "width",
            "width=0",
            "width=15",
            "width=-320",
            "width=+320",
            "width=3.5",
            "width=abc",
            "width=7681",
            "width=99999999999",
            "width=320&width=640",
            "width=0x10",
            "width=%33%32%30",
            "width= 320",
        ] {
            let e = width_of(&format!("{p}?{bad}")).expect_err(bad);
            assert!(e.contains("width"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_have_their_codes() {
        let code = |e: SnapshotError| {
            let r = ApiError::from(e).into_response();
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v["error"]["code"].as_str().unwrap().to_string())
        };
        assert_eq!(
            code(SnapshotError::UnknownPath("x".into())),
            (404, "unknown_path".into())
        );
        assert_eq!(
            code(SnapshotError::NotStreaming("starting".into())),
            (503, "not_streaming".into())
        );
        assert_eq!(
            code(SnapshotError::NoPicture("none".into())),
            (503, "no_picture".into())
        );
        assert_eq!(
            code(SnapshotError::Undecodable("bad".into())),
            (503, "undecodable".into())
        );
    }
}
