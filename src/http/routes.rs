//! Route decoding: method and request target to a `Route`, or the HTTP error that answers
//! it. Pure: no I/O, unit-tested.

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Status,
    Paths,
    Path(String),
    Cameras,
    Healthz,
    Metrics,
}

/// Why a request has no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The resource exists but not for this method; `allow` is the `Allow` header.
    MethodNotAllowed {
        allow: &'static str,
    },
}

/// Decodes `method` and the request target `url` (query string ignored).
pub fn decode(method: &str, url: &str) -> Result<Route, RouteError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let route = match path {
        "/api/v1/status" => Route::Status,
        "/api/v1/paths" => Route::Paths,
        "/api/v1/cameras" => Route::Cameras,
        "/healthz" => Route::Healthz,
        "/metrics" => Route::Metrics,
        _ => match path.strip_prefix("/api/v1/paths/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Route::Path(name.to_string()),
            _ => return Err(RouteError::NotFound),
        },
    };
    if method == "GET" {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed { allow: "GET" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_decode() {
        assert_eq!(decode("GET", "/api/v1/status"), Ok(Route::Status));
        assert_eq!(decode("GET", "/api/v1/paths"), Ok(Route::Paths));
        assert_eq!(
            decode("GET", "/api/v1/paths/cam"),
            Ok(Route::Path("cam".into()))
        );
        assert_eq!(decode("GET", "/api/v1/cameras"), Ok(Route::Cameras));
        assert_eq!(decode("GET", "/healthz"), Ok(Route::Healthz));
        assert_eq!(decode("GET", "/metrics?x=1"), Ok(Route::Metrics));
        assert_eq!(
            decode("GET", "/api/v1/paths/cam?pretty#top"),
            Ok(Route::Path("cam".into()))
        );
    }

    #[test]
    fn unknown_targets_are_not_found_whatever_the_method() {
        for url in [
            "",
            "/",
            "/api",
            "/api/v1",
            "/api/v1/status/",
            "/api/v1/paths/",
            "/api/v1/paths/a/b",
            "/api/v2/status",
            "/METRICS",
            "*",
            "http://host/api/v1/status",
        ] {
            assert_eq!(decode("GET", url), Err(RouteError::NotFound), "{url}");
            assert_eq!(decode("POST", url), Err(RouteError::NotFound), "{url}");
        }
    }

    #[test]
    fn other_methods_on_known_routes_are_not_allowed() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"] {
            assert_eq!(
                decode(method, "/api/v1/paths/cam"),
                Err(RouteError::MethodNotAllowed { allow: "GET" }),
                "{method}"
            );
        }
    }
}
