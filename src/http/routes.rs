//! Route decoding: method and request target to a `Route`, or the HTTP error that answers
//! it. Pure: no I/O, unit-tested.

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Page,
    Status,
    Paths,
    Path(String),
    AddPath(String),
    DeletePath(String),
    Cameras,
    GetConfig,
    PutConfig,
    PatchConfig,
    Session,
    Setup,
    SetAdminPassword,
    Healthz,
    Metrics,
}

/// Who may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the page shell, health, login state, first-run setup.
    Open,
    /// Anyone until an admin password is set, then the admin.
    Status,
    /// The admin; nobody before the first-run setup.
    Admin,
}

impl Route {
    pub fn access(&self) -> Access {
        match self {
            Route::Page | Route::Healthz | Route::Session | Route::Setup => Access::Open,
            Route::Status | Route::Paths | Route::Path(_) | Route::Metrics => Access::Status,
            _ => Access::Admin,
        }
    }
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

/// Decodes `method` and the request target `url` (query string ignored). HEAD is answered
/// wherever GET is.
pub fn decode(method: &str, url: &str) -> Result<Route, RouteError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let method = if method == "HEAD" { "GET" } else { method };
    let not_allowed = |allow| Err(RouteError::MethodNotAllowed { allow });
    let get_only = |route: Route| match method {
        "GET" => Ok(route),
        _ => not_allowed("GET, HEAD"),
    };
    match path {
        "/" => get_only(Route::Page),
        "/api/v1/status" => get_only(Route::Status),
        "/api/v1/paths" => get_only(Route::Paths),
        "/api/v1/cameras" => get_only(Route::Cameras),
        "/api/v1/session" => get_only(Route::Session),
        "/healthz" => get_only(Route::Healthz),
        "/metrics" => get_only(Route::Metrics),
        "/api/v1/config" => match method {
            "GET" => Ok(Route::GetConfig),
            "PUT" => Ok(Route::PutConfig),
            "PATCH" => Ok(Route::PatchConfig),
            _ => not_allowed("GET, HEAD, PUT, PATCH"),
        },
        "/api/v1/setup" => match method {
            "POST" => Ok(Route::Setup),
            _ => not_allowed("POST"),
        },
        "/api/v1/admin/password" => match method {
            "PUT" => Ok(Route::SetAdminPassword),
            _ => not_allowed("PUT"),
        },
        _ => match path.strip_prefix("/api/v1/paths/") {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                let name = name.to_string();
                match method {
                    "GET" => Ok(Route::Path(name)),
                    "POST" => Ok(Route::AddPath(name)),
                    "DELETE" => Ok(Route::DeletePath(name)),
                    _ => not_allowed("GET, HEAD, POST, DELETE"),
                }
            }
            _ => Err(RouteError::NotFound),
        },
    }
}

/// True for methods that change state (they must be same-origin).
pub fn changes_state(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_decode() {
        let cases = [
            ("GET", "/", Route::Page),
            ("GET", "/api/v1/status", Route::Status),
            ("HEAD", "/api/v1/status", Route::Status),
            ("GET", "/api/v1/paths", Route::Paths),
            ("GET", "/api/v1/paths/cam", Route::Path("cam".into())),
            ("POST", "/api/v1/paths/cam", Route::AddPath("cam".into())),
            (
                "DELETE",
                "/api/v1/paths/cam",
                Route::DeletePath("cam".into()),
            ),
            ("GET", "/api/v1/cameras", Route::Cameras),
            ("GET", "/api/v1/config", Route::GetConfig),
            ("PUT", "/api/v1/config", Route::PutConfig),
            ("PATCH", "/api/v1/config", Route::PatchConfig),
            ("GET", "/api/v1/session", Route::Session),
            ("POST", "/api/v1/setup", Route::Setup),
            ("PUT", "/api/v1/admin/password", Route::SetAdminPassword),
            ("GET", "/healthz", Route::Healthz),
            ("GET", "/metrics?x=1", Route::Metrics),
            (
                "GET",
                "/api/v1/paths/cam?pretty#top",
                Route::Path("cam".into()),
            ),
        ];
        for (method, url, route) in cases {
            assert_eq!(decode(method, url), Ok(route), "{method} {url}");
        }
    }

    #[test]
    fn unknown_targets_are_not_found_whatever_the_method() {
        for url in [
            "",
            "/api",
            "/api/v1",
            "/api/v1/status/",
            "/api/v1/paths/",
            "/api/v1/paths/a/b",
            "/api/v2/status",
            "/METRICS",
            "/index.html",
            "*",
            "http://host/api/v1/status",
        ] {
            assert_eq!(decode("GET", url), Err(RouteError::NotFound), "{url}");
            assert_eq!(decode("POST", url), Err(RouteError::NotFound), "{url}");
        }
    }

    #[test]
    fn other_methods_on_known_routes_are_not_allowed() {
        let na = |allow| Err(RouteError::MethodNotAllowed { allow });
        for method in ["PUT", "PATCH", "OPTIONS", "get"] {
            assert_eq!(
                decode(method, "/api/v1/paths/cam"),
                na("GET, HEAD, POST, DELETE"),
                "{method}"
            );
        }
        assert_eq!(decode("POST", "/api/v1/status"), na("GET, HEAD"));
        assert_eq!(decode("DELETE", "/"), na("GET, HEAD"));
        assert_eq!(
            decode("POST", "/api/v1/config"),
            na("GET, HEAD, PUT, PATCH")
        );
        assert_eq!(decode("GET", "/api/v1/setup"), na("POST"));
        assert_eq!(decode("GET", "/api/v1/admin/password"), na("PUT"));
    }

    #[test]
    fn only_reads_are_open_before_login() {
        assert_eq!(Route::Page.access(), Access::Open);
        assert_eq!(Route::Setup.access(), Access::Open);
        assert_eq!(Route::Status.access(), Access::Status);
        assert_eq!(Route::Metrics.access(), Access::Status);
        for r in [
            Route::GetConfig,
            Route::PatchConfig,
            Route::AddPath("x".into()),
            Route::Cameras,
            Route::SetAdminPassword,
        ] {
            assert_eq!(r.access(), Access::Admin, "{r:?}");
        }
        assert!(changes_state("PATCH") && !changes_state("GET"));
    }
}
