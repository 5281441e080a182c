//! `ApiError`: every refusal of the JSON API as a type, and the one place where it becomes
//! an HTTP status, headers and the JSON error body `{"error":{"code","message","field"}}`.
//!
//! Owns: the error kinds, their status codes and extra headers (`Allow`, `Retry-After`,
//! `WWW-Authenticate`), and turning `ControlError` and `RecordingError` into them. Does not
//! own: deciding when to refuse (the handlers, `mod.rs`), MediaMTX's error shape
//! (`mediamtx::reshape_error` reshapes the answer), the transport's own refusals
//! (`server`).

use std::fmt;

use crate::control::{ControlError, RecordingError, SnapshotError};
use crate::http::message::Response;

/// Why a request was refused; `code` values are part of the API (docs/API.md).
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: the request cannot be done as sent; `field` names the config field or input.
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 401 `unauthorized`; `challenge` adds `WWW-Authenticate` (a browser login dialog).
    Unauthorized { message: String, challenge: bool },
    /// 403.
    Forbidden { code: &'static str, message: String },
    /// 404.
    NotFound { code: &'static str, message: String },
    /// 405 `method_not_allowed`, with the `Allow` header.
    MethodNotAllowed { method: String, allow: &'static str },
    /// 409.
    Conflict { code: &'static str, message: String },
    /// 413 `payload_too_large`.
    PayloadTooLarge { limit: usize },
    /// 415 `unsupported_media_type`.
    UnsupportedMediaType,
    /// 416 `range_not_satisfiable`, with `Content-Range: bytes */len`.
    RangeNotSatisfiable { len: u64 },
    /// 429 `too_many_attempts`, with `Retry-After`.
    TooManyAttempts { retry_after_s: u64 },
    /// 500; logged where it becomes an answer.
    Internal { code: &'static str, message: String },
    /// 503: not possible right now (a path not streaming, no picture yet, too many
    /// viewers); `retry_after_s` adds `Retry-After`.
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_s: Option<u64>,
    },
}

impl ApiError {
    /// 400 with a code and no field.
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 `invalid` naming the field at fault.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            code: "invalid",
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal {
            code: "internal",
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Invalid { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::RangeNotSatisfiable { .. } => 416,
            ApiError::TooManyAttempts { .. } => 429,
            ApiError::Internal { .. } => 500,
            ApiError::Unavailable { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Internal { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
        }
    }

    fn field_name(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The one place an API error becomes an answer.
    pub fn into_response(self) -> Response {
        if let ApiError::Internal { message, .. } = &self {
            log::error!("http: {message}");
        }
        let message = self.to_string();
        let mut r =
            Response::json_field_error(self.status(), self.code(), &message, self.field_name());
        match self {
            ApiError::MethodNotAllowed { allow, .. } => r.headers.push(("Allow", allow.into())),
            ApiError::TooManyAttempts { retry_after_s }
            | ApiError::Unavailable {
                retry_after_s: Some(retry_after_s),
                ..
            } => r.headers.push(("Retry-After", retry_after_s.to_string())),
            ApiError::RangeNotSatisfiable { len } => {
                r.headers.push(("Content-Range", format!("bytes */{len}")))
            }
            ApiError::Unauthorized {
                challenge: true, ..
            } => r.headers.push((
                "WWW-Authenticate",
                "Basic realm=\"vigint\", charset=\"UTF-8\"".into(),
            )),
            _ => {}
        }
        r
    }
}

/// The message of the JSON error body.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Invalid { message, .. }
            | ApiError::Unauthorized { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Internal { message, .. }
            | ApiError::Unavailable { message, .. } => f.write_str(message),
            ApiError::MethodNotAllowed { method, allow } => {
                write!(f, "{method} is not allowed here; allowed: {allow}")
            }
            ApiError::PayloadTooLarge { limit } => {
                write!(f, "request bodies are limited to {limit} bytes")
            }
            ApiError::UnsupportedMediaType => {
                f.write_str("send the body as Content-Type: application/json")
            }
            ApiError::RangeNotSatisfiable { len } => write!(f, "the recording has {len} bytes"),
            ApiError::TooManyAttempts { retry_after_s } => write!(
                f,
                "too many failed logins from this address; try again in {retry_after_s} s"
            ),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Invalid(c) => ApiError::Invalid {
                code: "invalid",
                message: c.reason,
                field: (!c.field.is_empty()).then_some(c.field),
            },
            ControlError::Conflict(code, message) => ApiError::Conflict { code, message },
            ControlError::NotFound(code, message) => ApiError::NotFound { code, message },
            ControlError::Save(message) => ApiError::Internal {
                code: "save_failed",
                message,
            },
        }
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> ApiError {
        let message = e.to_string();
        let unavailable = |code, retry_after_s| ApiError::Unavailable {
            code,
            message: message.clone(),
            retry_after_s,
        };
        match e {
            SnapshotError::UnknownPath(_) => ApiError::not_found("unknown_path", message),
            SnapshotError::NotStreaming(_) => unavailable("not_streaming", Some(5)),
            SnapshotError::NoPicture(_) => unavailable("no_picture", Some(1)),
            SnapshotError::Undecodable(_) => unavailable("undecodable", None),
            SnapshotError::Encode(_) => ApiError::Internal {
                code: "snapshot_failed",
                message,
            },
        }
    }
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> ApiError {
        match e {
            RecordingError::NotFound => ApiError::not_found("not_found", "no such recording"),
            RecordingError::Forbidden(message) => ApiError::Conflict {
                code: "recording",
                message,
            },
            RecordingError::Io(message) => ApiError::Internal {
                code: "io",
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("json")
    }

    #[test]
    fn every_kind_has_its_status_code_and_headers() {
        let r = ApiError::field("paths.cam.fps", "must be 1 to 60").into_response();
        assert_eq!(r.status, 400);
        assert_eq!(
            body(&r),
            serde_json::json!({"error": {"code": "invalid", "message": "must be 1 to 60",
                "field": "paths.cam.fps"}})
        );
        let r = ApiError::MethodNotAllowed {
            method: "PUT".into(),
            allow: "GET, HEAD",
        }
        .into_response();
        assert_eq!(
            (r.status, r.headers[1].clone()),
            (405, ("Allow", "GET, HEAD".into()))
        );
        assert_eq!(
            body(&r)["error"]["message"],
            "PUT is not allowed here; allowed: GET, HEAD"
        );
        let r = ApiError::TooManyAttempts { retry_after_s: 3 }.into_response();
        assert_eq!((r.status, r.headers[1].1.as_str()), (429, "3"));
        let r = ApiError::Unauthorized {
            message: "log in as admin".into(),
            challenge: false,
        }
        .into_response();
        assert_eq!((r.status, r.headers.len()), (401, 1));
        assert_eq!(ApiError::UnsupportedMediaType.into_response().status, 415);
        assert!(
            body(&ApiError::PayloadTooLarge { limit: 9 }.into_response())["error"]["field"]
                .is_null()
        );
    }

    #[test]
    fn control_and_recording_errors_map_in_one_place() {
        let e: ApiError = ControlError::Save("disk full".into()).into();
        assert_eq!((e.status(), e.code()), (500, "save_failed"));
        let e: ApiError = ControlError::NotFound("unknown_path", "no".into()).into();
        assert_eq!((e.status(), e.code()), (404, "unknown_path"));
        let e: ApiError = RecordingError::Forbidden("being written".into()).into();
        assert_eq!((e.status(), e.code()), (409, "recording"));
        let e: ApiError = RecordingError::Io("x".into()).into();
        assert_eq!((e.status(), e.code()), (500, "io"));
    }
}
