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
    Recordings,
    /// One segment (GET, HEAD): `path` one component, `file` relative with '/' between its
    /// components, each percent-decoded once and checked by `segment_name`.
    Segment {
        path: String,
        file: String,
    },
    DeleteSegment {
        path: String,
        file: String,
    },
    /// MediaMTX's API (`/v3/...`, `/v1/...`).
    Mediamtx(super::mediamtx::Call),
    /// A path's latest picture as a JPEG (GET, HEAD; `?width=` read by `snapshot`).
    Snapshot(String),
    /// A path's live fMP4 over a WebSocket (GET with an upgrade).
    Live(String),
    /// Links with a token for a path's live view, stream-viewer socket and snapshot: what
    /// a page uses where it cannot send the login (a WebSocket, an `<img>`).
    LiveLinks(String),
    /// The stream-viewer API's WebSocket (`/ws/stream?id=...`): login or token checked in
    /// its own protocol, so that a refusal is its `AUTH` error.
    StreamViewer,
    /// The stream-viewer API's REST side: streams are relay paths.
    StreamList,
    AddStream,
    Stream(String),
    DeleteStream(String),
    StreamsHealth,
}

/// Who may ask (the rule is `access::admit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the page shell, health, login state, first-run setup (and the stream-viewer
    /// socket, which says its refusals in its own protocol).
    Open,
    /// Anyone until an admin password is set, then the admin.
    Status,
    /// Anyone until an admin password is set, then the admin or a viewer: watching
    /// (`Route::read_path`, which the viewer must be allowed to read) and the lists, which
    /// show a viewer only the paths it may read.
    Viewer,
    /// The admin; nobody before the first-run setup.
    Admin,
}

impl Route {
    /// Who may ask. Anything not listed is the admin's, so a new route is closed to
    /// viewers until someone decides otherwise.
    pub fn access(&self) -> Access {
        match self {
            Route::Page | Route::Healthz | Route::Session | Route::Setup => Access::Open,
            Route::StreamViewer => Access::Open,
            Route::Status
            | Route::Paths
            | Route::Path(_)
            | Route::Snapshot(_)
            | Route::Live(_)
            | Route::LiveLinks(_)
            | Route::StreamList
            | Route::Stream(_)
            | Route::StreamsHealth => Access::Viewer,
            // Every path's numbers and the process's: a scraper's, logged in as the admin.
            Route::Metrics => Access::Status,
            // MediaMTX gives its API its own permission (`api`), not `read`: the admin's.
            Route::Mediamtx(call) => call.access(),
            _ => Access::Admin,
        }
    }

    /// The one path this route reads, which a viewer must be allowed to read.
    pub fn read_path(&self) -> Option<&str> {
        match self {
            Route::Path(p)
            | Route::Snapshot(p)
            | Route::Live(p)
            | Route::LiveLinks(p)
            | Route::Stream(p) => Some(p),
            _ => None,
        }
    }
}

/// One request of every route (method, target), for tests that must cover them all (a
/// unit test below fails when a route has none; `tests/http_viewer.rs` asks each as a
/// viewer).
pub const EXAMPLES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/paths"),
    ("GET", "/api/v1/paths/cam"),
    ("POST", "/api/v1/paths/cam"),
    ("DELETE", "/api/v1/paths/cam"),
    ("GET", "/api/v1/cameras"),
    ("GET", "/api/v1/config"),
    ("PUT", "/api/v1/config"),
    ("PATCH", "/api/v1/config"),
    ("GET", "/api/v1/session"),
    ("POST", "/api/v1/setup"),
    ("PUT", "/api/v1/admin/password"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/recordings"),
    ("GET", "/api/v1/recordings/cam/a.mp4"),
    ("DELETE", "/api/v1/recordings/cam/a.mp4"),
    ("GET", "/v3/info"),
    ("GET", "/v3/paths/list"),
    ("GET", "/v3/paths/get/cam"),
    ("GET", "/v3/config/global/get"),
    ("GET", "/v3/config/pathdefaults/get"),
    ("GET", "/v3/config/paths/list"),
    ("GET", "/v3/config/paths/get/cam"),
    ("POST", "/v3/config/paths/add/cam"),
    ("PATCH", "/v3/config/paths/patch/cam"),
    ("POST", "/v3/config/paths/replace/cam"),
    ("DELETE", "/v3/config/paths/delete/cam"),
    ("GET", "/api/v1/paths/cam/snapshot.jpg"),
    ("GET", "/api/v1/paths/cam/live"),
    ("GET", "/api/v1/paths/cam/live-links"),
    ("GET", "/ws/stream?id=cam"),
    ("GET", "/api/streams/"),
    ("POST", "/api/streams/"),
    ("GET", "/api/streams/cam/"),
    ("DELETE", "/api/streams/cam/"),
    ("GET", "/api/health/"),
];

/// Why a request has no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The resource exists but not for this method; `allow` is the `Allow` header.
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The target cannot name anything (bad percent-encoding, `..`): 400.
    BadTarget(&'static str),
}

/// The query of a request target, without a fragment (empty when none).
pub fn query_of(target: &str) -> &str {
    target
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or_default())
}

/// Percent-decodes one path component (once; '+' stays '+'). `None` for a bad escape or
/// bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a decoded component may name a recording's directory or file.
fn segment_name(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}

/// `{path}/{file...}` after `/api/v1/recordings/`: split on '/' first, then each component
/// decoded once, so that `%2F` can never become a separator.
fn segment_target(rest: &str) -> Result<(String, String), RouteError> {
    let mut parts = Vec::new();
    for raw in rest.split('/') {
        let c = percent_decode(raw).ok_or(RouteError::BadTarget("bad percent-encoding"))?;
        if !segment_name(&c) {
            return Err(RouteError::BadTarget("not a recording's name"));
        }
        parts.push(c);
    }
    if parts.len() < 2 {
        return Err(RouteError::NotFound);
    }
    let path = parts.remove(0);
    Ok((path, parts.join("/")))
}

/// Decodes `method` and the request target `url` (query string ignored). HEAD is answered
/// wherever GET is.
pub fn decode(method: &str, url: &str) -> Result<Route, RouteError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let method = if method == "HEAD" { "GET" } else { method };
    if let Some(call) = super::mediamtx::decode(method, path) {
        return call.map(Route::Mediamtx);
    }
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
        "/api/v1/recordings" => get_only(Route::Recordings),
        "/metrics" => get_only(Route::Metrics),
        "/ws/stream" | "/ws/stream/" => get_only(Route::StreamViewer),
        "/api/health" | "/api/health/" => get_only(Route::StreamsHealth),
        "/api/streams" | "/api/streams/" => match method {
            "GET" => Ok(Route::StreamList),
            "POST" => Ok(Route::AddStream),
            _ => not_allowed("GET, HEAD, POST"),
        },
        _ if path.starts_with("/api/streams/") => {
            let id = path["/api/streams/".len()..].trim_end_matches('/');
            if id.is_empty() || id.contains('/') {
                return Err(RouteError::NotFound);
            }
            let id = percent_decode(id).ok_or(RouteError::BadTarget("bad percent-encoding"))?;
            match method {
                "GET" => Ok(Route::Stream(id)),
                "DELETE" => Ok(Route::DeleteStream(id)),
                _ => not_allowed("GET, HEAD, DELETE"),
            }
        }
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
        _ if path.starts_with("/api/v1/recordings/") => {
            let rest = &path["/api/v1/recordings/".len()..];
            let (path, file) = segment_target(rest)?;
            match method {
                "GET" => Ok(Route::Segment { path, file }),
                "DELETE" => Ok(Route::DeleteSegment { path, file }),
                _ => not_allowed("GET, HEAD, DELETE"),
            }
        }
        _ => match path.strip_prefix("/api/v1/paths/") {
            Some(rest) if rest.ends_with("/snapshot.jpg") => {
                match rest.strip_suffix("/snapshot.jpg") {
                    Some(name) if !name.is_empty() && !name.contains('/') => {
                        get_only(Route::Snapshot(name.to_string()))
                    }
                    _ => Err(RouteError::NotFound),
                }
            }
            Some(rest) if rest.ends_with("/live") || rest.ends_with("/live-links") => {
                let (name, links) = match rest.strip_suffix("/live-links") {
                    Some(name) => (name, true),
                    None => (rest.strip_suffix("/live").unwrap_or_default(), false),
                };
                if name.is_empty() || name.contains('/') {
                    return Err(RouteError::NotFound);
                }
                let name = name.to_string();
                get_only(if links {
                    Route::LiveLinks(name)
                } else {
                    Route::Live(name)
                })
            }
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
            (
                "GET",
                "/api/v1/paths/cam/snapshot.jpg",
                Route::Snapshot("cam".into()),
            ),
            (
                "HEAD",
                "/api/v1/paths/door/snapshot.jpg?width=320",
                Route::Snapshot("door".into()),
            ),
            (
                "GET",
                "/api/v1/paths/cam/live?token=1.x",
                Route::Live("cam".into()),
            ),
            (
                "GET",
                "/api/v1/paths/cam/live-links",
                Route::LiveLinks("cam".into()),
            ),
            ("GET", "/ws/stream?id=cam", Route::StreamViewer),
            ("GET", "/api/streams/", Route::StreamList),
            ("POST", "/api/streams", Route::AddStream),
            ("GET", "/api/streams/door/", Route::Stream("door".into())),
            (
                "DELETE",
                "/api/streams/door",
                Route::DeleteStream("door".into()),
            ),
            ("GET", "/api/health/", Route::StreamsHealth),
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
            "/api/v1/paths//snapshot.jpg",
            "/api/v1/paths//live",
            "/api/v1/paths/a/b/live",
            "/api/v1/paths/a/b/snapshot.jpg",
            "/api/v1/paths/cam/snapshot.png",
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
        assert_eq!(
            decode("DELETE", "/api/v1/paths/cam/snapshot.jpg"),
            na("GET, HEAD")
        );
        assert_eq!(decode("DELETE", "/"), na("GET, HEAD"));
        assert_eq!(
            decode("POST", "/api/v1/config"),
            na("GET, HEAD, PUT, PATCH")
        );
        assert_eq!(decode("GET", "/api/v1/setup"), na("POST"));
        assert_eq!(decode("GET", "/api/v1/admin/password"), na("PUT"));
    }

    #[test]
    fn recording_targets_decode_once_per_component() {
        let seg = |path: &str, file: &str| Route::Segment {
            path: path.into(),
            file: file.into(),
        };
        assert_eq!(decode("GET", "/api/v1/recordings?x"), Ok(Route::Recordings));
        assert_eq!(
            decode("GET", "/api/v1/recordings/cam/a.mp4?t=1"),
            Ok(seg("cam", "a.mp4"))
        );
        assert_eq!(
            decode("HEAD", "/api/v1/recordings/cam/2026/11/21/a%20b.mp4"),
            Ok(seg("cam", "2026/11/21/a b.mp4"))
        );
        assert_eq!(
            decode("GET", "/api/v1/recordings/c%61m/%2541.mp4"),
            Ok(seg("cam", "%41.mp4")),
            "decoded once only"
        );
        assert_eq!(
            decode("DELETE", "/api/v1/recordings/cam/a+b.mp4"),
            Ok(Route::DeleteSegment {
                path: "cam".into(),
                file: "a+b.mp4".into()
            })
        );
        assert_eq!(
            decode("PUT", "/api/v1/recordings/cam/a.mp4"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, HEAD, DELETE"
            })
        );
        assert_eq!(
            decode("DELETE", "/api/v1/recordings"),
            Err(RouteError::MethodNotAllowed { allow: "GET, HEAD" })
        );
        assert_eq!(
            decode("GET", "/api/v1/recordings/cam"),
            Err(RouteError::NotFound)
        );
        for bad in [
            "/api/v1/recordings/",
            "/api/v1/recordings/cam/",
            "/api/v1/recordings/cam//a.mp4",
            "/api/v1/recordings/cam/../x.mp4",
            "/api/v1/recordings/../../etc/passwd",
            "/api/v1/recordings/cam/./a.mp4",
            "/api/v1/recordings/cam/%2e%2e/%2E%2E/x.mp4",
            "/api/v1/recordings/cam/..%2F..%2Fx.mp4",
            "/api/v1/recordings/cam%2F..%2F../a.mp4",
            "/api/v1/recordings/cam/%2Fetc%2Fpasswd",
            "/api/v1/recordings/cam/a.mp4%00",
            "/api/v1/recordings/cam/..%5C..%5Cx.mp4",
            "/api/v1/recordings/cam/a\\b.mp4",
            "/api/v1/recordings/cam/%zz.mp4",
            "/api/v1/recordings/cam/%2.mp4",
            "/api/v1/recordings/cam/%ff.mp4",
        ] {
            assert!(
                matches!(decode("GET", bad), Err(RouteError::BadTarget(_))),
                "{bad}: {:?}",
                decode("GET", bad)
            );
            assert!(matches!(
                decode("DELETE", bad),
                Err(RouteError::BadTarget(_))
            ));
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc%2f"), Some("a b/c/".into()));
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), Some("été".into()));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode("%C3"), None, "not UTF-8");
        assert_eq!(percent_decode("%00"), Some("\0".into()));
        assert_eq!(percent_decode(""), Some(String::new()));
        assert_eq!(percent_decode("%25%32%46"), Some("%2F".into()));
    }

    /// A number per kind of route: the match has no wildcard, so a new `Route` (or MediaMTX
    /// `Call`) does not compile until it is counted here, and then
    /// `every_route_has_an_example` fails until `EXAMPLES` has one.
    fn kind(r: &Route) -> usize {
        use super::super::mediamtx::Call;
        match r {
            Route::Page => 0,
            Route::Status => 1,
            Route::Paths => 2,
            Route::Path(_) => 3,
            Route::AddPath(_) => 4,
            Route::DeletePath(_) => 5,
            Route::Cameras => 6,
            Route::GetConfig => 7,
            Route::PutConfig => 8,
            Route::PatchConfig => 9,
            Route::Session => 10,
            Route::Setup => 11,
            Route::SetAdminPassword => 12,
            Route::Healthz => 13,
            Route::Metrics => 14,
            Route::Recordings => 15,
            Route::Segment { .. } => 16,
            Route::DeleteSegment { .. } => 17,
            Route::Mediamtx(call) => match call {
                Call::Info => 18,
                Call::PathsList => 19,
                Call::PathsGet(_) => 20,
                Call::GlobalGet => 21,
                Call::PathDefaultsGet => 22,
                Call::ConfPathsList => 23,
                Call::ConfPathsGet(_) => 24,
                Call::ConfPathsAdd(_) => 25,
                Call::ConfPathsPatch(_) => 26,
                Call::ConfPathsReplace(_) => 27,
                Call::ConfPathsDelete(_) => 28,
            },
            Route::Snapshot(_) => 29,
            Route::Live(_) => 30,
            Route::LiveLinks(_) => 31,
            Route::StreamViewer => 32,
            Route::StreamList => 33,
            Route::AddStream => 34,
            Route::Stream(_) => 35,
            Route::DeleteStream(_) => 36,
            Route::StreamsHealth => 37,
        }
    }
    const KINDS: usize = 38;

    #[test]
    fn every_route_has_an_example() {
        let mut seen = [false; KINDS];
        for (method, target) in EXAMPLES {
            let r = decode(method, target).unwrap_or_else(|e| panic!("{method} {target}: {e:?}"));
            assert!(
                !seen[kind(&r)],
                "{method} {target}: a second example of {r:?}"
            );
            seen[kind(&r)] = true;
        }
        let missing: Vec<usize> = (0..KINDS).filter(|k| !seen[*k]).collect();
        assert!(missing.is_empty(), "routes without an example: {missing:?}");
    }

    #[test]
    fn viewers_get_only_watching_and_their_lists() {
        let viewer: Vec<String> = EXAMPLES
            .iter()
            .filter(|(m, t)| decode(m, t).unwrap().access() == Access::Viewer)
            .map(|(m, t)| format!("{m} {t}"))
            .collect();
        assert_eq!(
            viewer,
            [
                "GET /api/v1/status",
                "GET /api/v1/paths",
                "GET /api/v1/paths/cam",
                "GET /api/v1/paths/cam/snapshot.jpg",
                "GET /api/v1/paths/cam/live",
                "GET /api/v1/paths/cam/live-links",
                "GET /api/streams/",
                "GET /api/streams/cam/",
                "GET /api/health/",
            ]
        );
        // Nothing that changes anything is a viewer's or open, but the first-run setup.
        for (m, t) in EXAMPLES {
            let r = decode(m, t).unwrap();
            if changes_state(m) && r != Route::Setup {
                assert_eq!(r.access(), Access::Admin, "{m} {t}");
            }
            // Every route that reads one path names it, for the viewer's check.
            if r.access() == Access::Viewer && t.contains("cam") {
                assert_eq!(r.read_path(), Some("cam"), "{m} {t}");
            }
        }
    }

    #[test]
    fn only_reads_are_open_before_login() {
        assert_eq!(Route::Page.access(), Access::Open);
        assert_eq!(Route::Setup.access(), Access::Open);
        assert_eq!(Route::Status.access(), Access::Viewer);
        assert_eq!(Route::Metrics.access(), Access::Status);
        assert_eq!(Route::Snapshot("cam".into()).access(), Access::Viewer);
        for r in [
            Route::GetConfig,
            Route::PatchConfig,
            Route::AddPath("x".into()),
            Route::Cameras,
            Route::SetAdminPassword,
            Route::Recordings,
            Route::Segment {
                path: "cam".into(),
                file: "a.mp4".into(),
            },
            Route::DeleteSegment {
                path: "cam".into(),
                file: "a.mp4".into(),
            },
        ] {
            assert_eq!(r.access(), Access::Admin, "{r:?}");
        }
        assert!(changes_state("PATCH") && !changes_state("GET"));
    }
}
