//! MediaMTX's control API (`/v3/...`, and the same under `/v1/` for older guides), so that
//! scripts and dashboards written against MediaMTX work here.
//!
//! Owns: the routes under `/v3/` and `/v1/` (`decode`), MediaMTX's JSON shapes (paths,
//! path configurations, the global configuration, `itemCount`/`pageCount` pagination,
//! `{"status":"ok"}` and `{"status":"error","error":...}`), and the translation between
//! MediaMTX's camelCase path settings and Vigint's config (`Field`). Does not own: who may
//! call (the same admin login as `/api/v1`, checked by `http`), validating, saving and
//! applying a change (`control` and `config`: a change here is the same atomic, live,
//! saved change as `PATCH /api/v1/config`, so unlike MediaMTX it survives a restart).
//!
//! Only settings Vigint has are shown and accepted; a MediaMTX setting it does not have
//! is refused by name rather than silently ignored.

use serde_json::{json, Map, Value};

use super::routes::{Access, RouteError};
use super::{HttpContext, Request, Response};
use crate::config::{self, Config, PathConfig, SourceSpec};
use crate::control::ControlError;
use crate::status::PathStatus;

/// One call of the MediaMTX API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Info,
    PathsList,
    PathsGet(String),
    GlobalGet,
    PathDefaultsGet,
    ConfPathsList,
    ConfPathsGet(String),
    ConfPathsAdd(String),
    ConfPathsPatch(String),
    ConfPathsReplace(String),
    ConfPathsDelete(String),
}

impl Call {
    pub fn access(&self) -> Access {
        match self {
            Call::Info | Call::PathsList | Call::PathsGet(_) => Access::Status,
            _ => Access::Admin,
        }
    }
}

/// True for targets this module answers (and whose errors take MediaMTX's shape).
pub fn is_mediamtx(target: &str) -> bool {
    target.starts_with("/v3/") || target.starts_with("/v1/")
}

/// The call `method` and `path` (query removed) name; `None` outside `/v3/` and `/v1/`.
pub fn decode(method: &str, path: &str) -> Option<Result<Call, RouteError>> {
    let (v1, rest) = match (path.strip_prefix("/v3/"), path.strip_prefix("/v1/")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return None,
    };
    let not_allowed = |allow| Err(RouteError::MethodNotAllowed { allow });
    let get = |call: Call| match method {
        "GET" => Ok(call),
        _ => not_allowed("GET, HEAD"),
    };
    let fixed = match rest {
        "info" => Some(get(Call::Info)),
        "paths/list" => Some(get(Call::PathsList)),
        "config/global/get" => Some(get(Call::GlobalGet)),
        "config/get" if v1 => Some(get(Call::GlobalGet)),
        "config/pathdefaults/get" => Some(get(Call::PathDefaultsGet)),
        "config/paths/list" => Some(get(Call::ConfPathsList)),
        _ => None,
    };
    if let Some(call) = fixed {
        return Some(call);
    }
    let target = match (
        rest.strip_prefix("paths/get/"),
        rest.strip_prefix("config/paths/"),
    ) {
        (Some(name), _) => Some(("get-path", name)),
        (_, Some(verb_name)) => verb_name.split_once('/'),
        _ => None,
    };
    let Some((verb, name)) = target else {
        return Some(Err(RouteError::NotFound));
    };
    // Names are checked by the config (`valid_path_name`); an empty one names nothing.
    let name = match super::routes::percent_decode(name) {
        Some(n) if !n.is_empty() => n,
        Some(_) => return Some(Err(RouteError::BadTarget("invalid name"))),
        None => return Some(Err(RouteError::BadTarget("bad percent-encoding"))),
    };
    let call = match (verb, method) {
        ("get-path", "GET") => Call::PathsGet(name),
        ("get-path", _) => return Some(not_allowed("GET, HEAD")),
        ("get", "GET") => Call::ConfPathsGet(name),
        ("get", _) => return Some(not_allowed("GET, HEAD")),
        ("add", "POST") => Call::ConfPathsAdd(name),
        ("add", _) => return Some(not_allowed("POST")),
        ("patch", "PATCH") => Call::ConfPathsPatch(name),
        ("edit", "POST") if v1 => Call::ConfPathsPatch(name),
        ("patch", _) => return Some(not_allowed("PATCH")),
        ("replace", "POST") => Call::ConfPathsReplace(name),
        ("replace", _) => return Some(not_allowed("POST")),
        ("delete", "DELETE") => Call::ConfPathsDelete(name),
        ("remove", "POST") if v1 => Call::ConfPathsDelete(name),
        ("edit" | "remove", _) if v1 => return Some(not_allowed("POST")),
        ("delete", _) => return Some(not_allowed("DELETE")),
        _ => return Some(Err(RouteError::NotFound)),
    };
    Some(Ok(call))
}

fn reply(status: u16, body: &Value) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    Response::new(
        status,
        vec![("Content-Type", "application/json; charset=utf-8".into())],
        (text + "\n").into_bytes(),
    )
}

fn ok() -> Response {
    reply(200, &json!({"status": "ok"}))
}

fn fail(status: u16, message: &str) -> Response {
    reply(status, &json!({"status": "error", "error": message}))
}

/// Gives an error answered by the common code (login, 404, 405, 413, 415, ...) MediaMTX's
/// shape, `{"status":"error","error":"<message>"}`, keeping its status and headers.
pub fn reshape_error(mut r: Response) -> Response {
    if r.status < 400 {
        return r;
    }
    let message = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
    if let Some(message) = message {
        r.body = fail(r.status, &message).body;
    }
    r
}

/// Answers one call.
pub fn answer(ctx: &HttpContext, req: &Request, call: Call) -> Response {
    match call {
        Call::Info => reply(
            200,
            &json!({"version": crate::status::VERSION, "started": started_at(ctx)}),
        ),
        Call::PathsList => {
            let cfg = ctx.control.config();
            let items: Vec<Value> = ctx
                .monitor
                .snapshot()
                .paths
                .iter()
                .map(|p| path_item(p, cfg.paths.get(&p.name)))
                .collect();
            list(req, items)
        }
        Call::PathsGet(name) => match ctx.monitor.path(&name) {
            Some(p) => reply(200, &path_item(&p, ctx.control.config().paths.get(&name))),
            None => fail(404, "path not found"),
        },
        Call::GlobalGet => reply(200, &global(&ctx.control.config())),
        Call::PathDefaultsGet => {
            let cfg = ctx.control.config();
            let defaults = PathConfig {
                source: "publisher".into(),
                ..PathConfig::default()
            };
            reply(200, &path_conf(&cfg, "", &defaults))
        }
        Call::ConfPathsList => {
            let cfg = ctx.control.config();
            let items = cfg
                .paths
                .iter()
                .map(|(name, p)| path_conf(&cfg, name, p))
                .collect();
            list(req, items)
        }
        Call::ConfPathsGet(name) => {
            let cfg = ctx.control.config();
            match cfg.paths.get(&name) {
                Some(p) => reply(200, &path_conf(&cfg, &name, p)),
                None => fail(404, "path configuration not found"),
            }
        }
        Call::ConfPathsAdd(name) => change(ctx, req, &name, Edit::Add),
        Call::ConfPathsPatch(name) => change(ctx, req, &name, Edit::Patch),
        Call::ConfPathsReplace(name) => change(ctx, req, &name, Edit::Replace),
        Call::ConfPathsDelete(name) => {
            let result = ctx.control.update(&mut |cur| {
                let mut next = cur.clone();
                match next.paths.remove(&name) {
                    Some(_) => Ok(next),
                    None => Err(not_found()),
                }
            });
            done(result)
        }
    }
}

fn started_at(ctx: &HttpContext) -> String {
    let up = std::time::Duration::from_secs(ctx.monitor.snapshot().uptime_s);
    let started = std::time::SystemTime::now()
        .checked_sub(up)
        .unwrap_or(std::time::UNIX_EPOCH);
    crate::calendar::utc_timestamp(started)
}

fn not_found() -> ControlError {
    ControlError::NotFound("unknown_path", "path configuration not found".into())
}

fn done(result: Result<(Config, crate::control::Applied), ControlError>) -> Response {
    match result {
        Ok(_) => ok(),
        Err(ControlError::Invalid(e)) => fail(400, &mediamtx_error(&e)),
        Err(ControlError::NotFound(_, m)) => fail(404, &m),
        Err(ControlError::Conflict(_, m)) => fail(400, &m),
        Err(ControlError::Save(m)) => {
            log::error!("http: {m}");
            fail(500, &m)
        }
    }
}

/// A config error with Vigint's field path (`paths.cam.recording.record_path`) told in
/// MediaMTX's name for it (`recordPath`) where there is one.
fn mediamtx_error(e: &config::ConfigError) -> String {
    let ours = e.field.splitn(3, '.').nth(2).unwrap_or_default();
    // The position is in a document built here, not in what the client sent.
    let reason = match e.reason.rsplit_once(" at line ") {
        Some((reason, _)) => reason,
        None => &e.reason,
    };
    match FIELDS.iter().find(|f| f.ours.join(".") == ours) {
        Some(f) => format!("{}: {reason}", f.theirs),
        None if e.field.is_empty() => reason.to_string(),
        None => format!("{}: {reason}", e.field),
    }
}

/// MediaMTX's pagination: `itemsPerPage` (default 100, not 0) and `page` (from 0).
fn list(req: &Request, mut items: Vec<Value>) -> Response {
    let item_count = items.len();
    let number = |key: &str| -> Result<Option<usize>, String> {
        match query_param(&req.target, key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .map(|n| Some(n as usize))
                .map_err(|_| format!("invalid {key}: `{v}`")),
        }
    };
    let per_page = match number("itemsPerPage") {
        Ok(Some(0)) => return fail(400, "invalid items per page"),
        Ok(n) => n.unwrap_or(100),
        Err(e) => return fail(400, &e),
    };
    let page = match number("page") {
        Ok(n) => n.unwrap_or(0),
        Err(e) => return fail(400, &e),
    };
    let page_count = item_count.div_ceil(per_page);
    let start = page.saturating_mul(per_page).min(item_count);
    let end = start.saturating_add(per_page).min(item_count);
    items = items.drain(start..end).collect();
    reply(
        200,
        &json!({"itemCount": item_count, "pageCount": page_count, "items": items}),
    )
}

/// The value of `key` in the target's query string (not percent-decoded: numbers only).
fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    super::routes::query_of(target)
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A served path as MediaMTX's `/v3/paths/get` shows it.
fn path_item(p: &PathStatus, conf: Option<&PathConfig>) -> Value {
    let streaming = p.state == crate::status::SourceState::Streaming;
    let since = if streaming {
        p.streaming_since.clone()
    } else {
        None
    };
    let source = conf.and_then(|c| source_of(c, p));
    let tracks: Vec<Value> = p.codec.iter().map(|c| json!(c.name)).collect();
    let tracks2: Vec<Value> = p
        .codec
        .iter()
        .map(|c| {
            let (width, height) = p
                .resolution
                .map_or((0, 0), |r| (r.width as i64, r.height as i64));
            json!({
                "codec": c.name,
                "codecProps": {"width": width, "height": height, "profile": c.profile, "level": c.level},
            })
        })
        .collect();
    let readers: Vec<Value> = p
        .readers
        .iter()
        .map(|r| json!({"type": "rtspSession", "id": r.id}))
        .collect();
    json!({
        "name": p.name,
        "confName": p.name,
        "ready": streaming,
        "readyTime": since,
        "available": streaming,
        "availableTime": since,
        "online": streaming,
        "onlineTime": since,
        "source": source,
        "tracks": tracks,
        "tracks2": tracks2,
        "readers": readers,
        "inboundBytes": p.bytes,
        "outboundBytes": p.bytes_sent,
        "inboundFramesInError": p.frames_dropped.bad,
        "bytesReceived": p.bytes,
        "bytesSent": p.bytes_sent,
    })
}

/// MediaMTX's `source` object: what feeds the path. MediaMTX has no names for a V4L2
/// camera, the test pattern or a file; those get names of the same style.
fn source_of(conf: &PathConfig, p: &PathStatus) -> Option<Value> {
    let kind = match conf.source_spec().ok()? {
        // Present only while someone publishes, as in MediaMTX.
        SourceSpec::Publisher if matches!(p.state, crate::status::SourceState::Idle(_)) => {
            return None
        }
        SourceSpec::Publisher => "rtspSession",
        SourceSpec::Relay(_) => "rtspSource",
        SourceSpec::File(_) => "fileSource",
        SourceSpec::TestPattern { .. } => "testPatternSource",
        SourceSpec::Auto if p.route.starts_with("test pattern") => "testPatternSource",
        SourceSpec::Auto | SourceSpec::Device(_) => "v4l2Source",
    };
    Some(json!({"type": kind, "id": ""}))
}

/// The global configuration in MediaMTX's names, for what Vigint has.
fn global(cfg: &Config) -> Value {
    let rtsp = &cfg.rtsp;
    let users: Vec<Value> = if cfg.users.is_empty() {
        // Without users anyone may read and nobody may publish.
        vec![
            json!({"user": "any", "pass": "", "ips": [], "permissions": [{"action": "read", "path": ""}]}),
        ]
    } else {
        cfg.users
            .iter()
            .map(|u| {
                let permissions: Vec<Value> = match &u.permissions {
                    None => vec![json!({"action": "read", "path": ""})],
                    Some(list) => list
                        .iter()
                        .map(|p| json!({"action": p.action.as_str(), "path": p.path.clone().unwrap_or_default()}))
                        .collect(),
                };
                // The password is never shown (MediaMTX shows it redacted too).
                json!({"user": u.name, "pass": config::PASSWORD_MASK, "ips": [], "permissions": permissions})
            })
            .collect()
    };
    let methods: Vec<&str> = rtsp
        .auth_methods
        .iter()
        .map(|m| match m {
            config::AuthMethod::Basic => "basic",
            config::AuthMethod::Digest => "digest",
        })
        .collect();
    json!({
        "logLevel": cfg.log_level,
        "readTimeout": format!("{}s", rtsp.session_timeout_s),
        "writeTimeout": format!("{}s", rtsp.stall_timeout_s),
        "udpMaxPayloadSize": rtsp.max_packet_size.saturating_sub(12),
        "authMethod": "internal",
        "authInternalUsers": users,
        "api": true,
        "apiAddress": cfg.http.listen.to_string(),
        "metrics": true,
        "metricsAddress": cfg.http.listen.to_string(),
        "playback": false,
        "rtsp": true,
        "rtspTransports": ["udp", "tcp"],
        "rtspEncryption": "no",
        "rtspAddress": rtsp.listen.to_string(),
        "rtpAddress": format!(":{}", rtsp.udp_rtp_port),
        "rtcpAddress": format!(":{}", rtsp.udp_rtp_port.saturating_add(1)),
        "rtspAuthMethods": methods,
        "rtmp": false,
        "hls": false,
        "webrtc": false,
        "srt": false,
    })
}

/// One MediaMTX path setting and where it lives in Vigint's path config.
struct Field {
    theirs: &'static str,
    ours: &'static [&'static str],
    conv: Conv,
}

/// How a value crosses between the two.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conv {
    /// The same JSON value (booleans, numbers, duration strings, the source).
    Same,
    /// `automatic` is our `auto`; MediaMTX's `multicast` has no counterpart.
    Transport,
    /// MediaMTX's path has no `.mp4` (it adds the format's extension) and is written
    /// relative to its working directory (`./recordings/...`); ours is relative to the
    /// recordings directory and ends in `.mp4`.
    RecordPath,
    /// bit/s there, kbit/s here.
    Bitrate,
    /// Frames between IDRs there, seconds here.
    IdrPeriod,
}

const FIELDS: &[Field] = &[
    Field {
        theirs: "source",
        ours: &["source"],
        conv: Conv::Same,
    },
    Field {
        theirs: "sourceOnDemand",
        ours: &["source_on_demand"],
        conv: Conv::Same,
    },
    Field {
        theirs: "sourceOnDemandStartTimeout",
        ours: &["source_on_demand_start_timeout"],
        conv: Conv::Same,
    },
    Field {
        theirs: "sourceOnDemandCloseAfter",
        ours: &["source_on_demand_close_after"],
        conv: Conv::Same,
    },
    Field {
        theirs: "maxReaders",
        ours: &["max_readers"],
        conv: Conv::Same,
    },
    Field {
        theirs: "overridePublisher",
        ours: &["override_publisher"],
        conv: Conv::Same,
    },
    Field {
        theirs: "rtspTransport",
        ours: &["rtsp_transport"],
        conv: Conv::Transport,
    },
    Field {
        theirs: "record",
        ours: &["recording", "record"],
        conv: Conv::Same,
    },
    Field {
        theirs: "recordPath",
        ours: &["recording", "record_path"],
        conv: Conv::RecordPath,
    },
    Field {
        theirs: "recordPartDuration",
        ours: &["recording", "part_duration"],
        conv: Conv::Same,
    },
    Field {
        theirs: "recordSegmentDuration",
        ours: &["recording", "segment_duration"],
        conv: Conv::Same,
    },
    Field {
        theirs: "recordDeleteAfter",
        ours: &["recording", "delete_after"],
        conv: Conv::Same,
    },
    Field {
        theirs: "rpiCameraWidth",
        ours: &["width"],
        conv: Conv::Same,
    },
    Field {
        theirs: "rpiCameraHeight",
        ours: &["height"],
        conv: Conv::Same,
    },
    Field {
        theirs: "rpiCameraFPS",
        ours: &["fps"],
        conv: Conv::Same,
    },
    Field {
        theirs: "rpiCameraBitrate",
        ours: &["bitrate_kbps"],
        conv: Conv::Bitrate,
    },
    Field {
        theirs: "rpiCameraIDRPeriod",
        ours: &["idr_interval_s"],
        conv: Conv::IdrPeriod,
    },
];

/// The directory MediaMTX's default `recordPath` starts with.
const MEDIAMTX_RECORDINGS: &str = "./recordings/";

/// A path configuration as MediaMTX's `/v3/config/paths/get` shows it: the settings the
/// path records and streams with (its own, or the defaults), the camera password masked.
fn path_conf(cfg: &Config, name: &str, p: &PathConfig) -> Value {
    let recording = p.recording.over(&cfg.recording);
    let (width, height, fps) = p.geometry();
    let ours = json!({
        "source": config::masked_source(&p.source),
        "source_on_demand": p.source_on_demand,
        "source_on_demand_start_timeout": p.source_on_demand_start_timeout,
        "source_on_demand_close_after": p.source_on_demand_close_after,
        "max_readers": p.max_readers,
        "override_publisher": p.override_publisher,
        "rtsp_transport": p.rtsp_transport.as_str(),
        "recording": {
            "record": recording.record,
            "record_path": recording.record_path,
            "part_duration": recording.part_duration,
            "segment_duration": recording.segment_duration,
            "delete_after": recording.delete_after,
        },
        "width": width,
        "height": height,
        "fps": fps,
        "bitrate_kbps": p.bitrate(),
        "idr_interval_s": p.idr_interval_s,
    });
    let mut out = Map::new();
    out.insert("name".into(), name.into());
    for f in FIELDS {
        let mut v = &ours;
        for key in f.ours {
            v = &v[key];
        }
        let shown = match f.conv {
            Conv::Same => v.clone(),
            Conv::Transport => match v.as_str() {
                Some("auto") => "automatic".into(),
                _ => v.clone(),
            },
            Conv::RecordPath => {
                let t = v.as_str().unwrap_or_default();
                t.strip_suffix(".mp4").unwrap_or(t).into()
            }
            Conv::Bitrate => json!(u64::from(p.bitrate()) * 1000),
            Conv::IdrPeriod => json!(p.idr_interval_frames()),
        };
        out.insert(f.theirs.into(), shown);
        if f.theirs == "recordPath" {
            out.insert("recordFormat".into(), "fmp4".into());
        }
    }
    Value::Object(out)
}

/// What a change does to the path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Edit {
    /// A new path: exists already -> 400.
    Add,
    /// The sent settings over the path's own.
    Patch,
    /// The sent settings only; the rest back to defaults.
    Replace,
}

/// A body in MediaMTX's names -> a merge patch of Vigint's path config. `fps` is the
/// path's rate for `rpiCameraIDRPeriod` when the body does not set `rpiCameraFPS`.
fn translate(name: &str, body: &Map<String, Value>, fps: u32) -> Result<Value, String> {
    let mut out = json!({});
    let fps = match body.get("rpiCameraFPS") {
        Some(Value::Number(n)) => n.as_f64().map_or(fps, |f| f.round() as u32),
        _ => fps,
    };
    for (key, value) in body {
        if key == "name" {
            if value.as_str().is_some_and(|n| n != name) {
                return Err(format!(
                    "name `{value}` is not the path in the URL (`{name}`)"
                ));
            }
            continue;
        }
        if key == "recordFormat" {
            match value.as_str() {
                Some("fmp4") | None => continue,
                Some(other) => {
                    return Err(format!(
                        "recordFormat `{other}`: Vigint records fragmented MP4 (fmp4) only"
                    ))
                }
            }
        }
        let Some(f) = FIELDS.iter().find(|f| f.theirs == key) else {
            return Err(format!(
                "`{key}` is a setting Vigint does not have (it takes: name, recordFormat, {})",
                FIELDS
                    .iter()
                    .map(|f| f.theirs)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let ours = if value.is_null() {
            Value::Null
        } else {
            convert_in(f, value, fps)?
        };
        let mut slot = &mut out;
        for (i, k) in f.ours.iter().enumerate() {
            if i + 1 == f.ours.len() {
                slot[*k] = ours.clone();
            } else {
                if !slot[*k].is_object() {
                    slot[*k] = json!({});
                }
                slot = &mut slot[*k];
            }
        }
    }
    Ok(out)
}

fn convert_in(f: &Field, v: &Value, fps: u32) -> Result<Value, String> {
    let bad = |what: &str| format!("{}: expected {what}, got {v}", f.theirs);
    Ok(match f.conv {
        Conv::Same => v.clone(),
        Conv::Transport => match v.as_str() {
            Some("automatic") => "auto".into(),
            Some("multicast") => {
                return Err(
                    "rtspTransport multicast: Vigint pulls over tcp, udp or automatic".to_string(),
                )
            }
            _ => v.clone(),
        },
        Conv::RecordPath => {
            let t = v.as_str().ok_or_else(|| bad("a string"))?;
            let t = t.strip_prefix(MEDIAMTX_RECORDINGS).unwrap_or(t);
            if t.starts_with('/') || t.starts_with("./") || t.starts_with("../") {
                return Err(format!(
                    "recordPath `{t}`: recordings stay in Vigint's recordings directory; write the path inside it, e.g. %path/%Y-%m-%d_%H-%M-%S-%f"
                ));
            }
            if t.ends_with(".mp4") {
                t.into()
            } else {
                format!("{t}.mp4").into()
            }
        }
        Conv::Bitrate => {
            let bits = v.as_u64().ok_or_else(|| bad("bits per second"))?;
            json!(bits.div_ceil(1000))
        }
        Conv::IdrPeriod => {
            let frames = v.as_u64().ok_or_else(|| bad("a number of frames"))?;
            json!(frames as f64 / f64::from(fps.max(1)))
        }
    })
}

/// Adds, patches or replaces the path `name` with the request's body.
fn change(ctx: &HttpContext, req: &Request, name: &str, edit: Edit) -> Response {
    let body: Map<String, Value> = if req.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return fail(400, "the body must be a JSON object"),
            Err(e) => return fail(400, &format!("invalid JSON: {e}")),
        }
    };
    // The rate the path runs at, defaults filled, for rpiCameraIDRPeriod.
    let fps = ctx
        .control
        .config()
        .paths
        .get(name)
        .map_or(config::VideoDefaults::BUILT_IN.fps, |p| p.geometry().2);
    let mut patch = match translate(name, &body, fps) {
        Ok(p) => p,
        Err(e) => return fail(400, &e),
    };
    // MediaMTX's default source is `publisher` (ours is the camera, `auto`).
    if edit != Edit::Patch && patch.get("source").is_none_or(Value::is_null) {
        patch["source"] = "publisher".into();
    }
    let result = ctx.control.update(&mut |cur| {
        let exists = cur.paths.contains_key(name);
        match edit {
            Edit::Add if exists => {
                return Err(ControlError::Conflict(
                    "path_exists",
                    "path already exists".into(),
                ))
            }
            Edit::Patch | Edit::Replace if !exists => return Err(not_found()),
            _ => {}
        }
        let mut doc = config::to_public_json(cur);
        let slot = &mut doc["paths"][name];
        if edit == Edit::Patch {
            config::merge_patch::apply(slot, &patch);
        } else {
            *slot = json!({});
            config::merge_patch::apply(slot, &patch);
        }
        Ok(config::from_public_json(doc, cur)?)
    });
    done(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_decode_in_both_versions() {
        let d = |m: &str, p: &str| decode(m, p).unwrap();
        assert_eq!(d("GET", "/v3/paths/list"), Ok(Call::PathsList));
        assert_eq!(d("GET", "/v1/paths/list"), Ok(Call::PathsList));
        assert_eq!(
            d("GET", "/v3/paths/get/cam"),
            Ok(Call::PathsGet("cam".into()))
        );
        assert_eq!(d("GET", "/v3/config/global/get"), Ok(Call::GlobalGet));
        assert_eq!(d("GET", "/v1/config/get"), Ok(Call::GlobalGet));
        assert_eq!(
            d("POST", "/v3/config/paths/add/cam"),
            Ok(Call::ConfPathsAdd("cam".into()))
        );
        assert_eq!(
            d("PATCH", "/v3/config/paths/patch/cam"),
            Ok(Call::ConfPathsPatch("cam".into()))
        );
        assert_eq!(
            d("POST", "/v1/config/paths/edit/cam"),
            Ok(Call::ConfPathsPatch("cam".into()))
        );
        assert_eq!(
            d("POST", "/v3/config/paths/replace/cam"),
            Ok(Call::ConfPathsReplace("cam".into()))
        );
        assert_eq!(
            d("DELETE", "/v3/config/paths/delete/cam"),
            Ok(Call::ConfPathsDelete("cam".into()))
        );
        assert_eq!(
            d("POST", "/v1/config/paths/remove/cam"),
            Ok(Call::ConfPathsDelete("cam".into()))
        );
        assert_eq!(
            d("GET", "/v3/config/paths/add/cam"),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            d("GET", "/v3/config/paths/add/"),
            Err(RouteError::BadTarget("invalid name"))
        );
        assert_eq!(d("GET", "/v3/nothing"), Err(RouteError::NotFound));
        // v3 has no v1 verbs.
        assert_eq!(
            d("POST", "/v3/config/paths/edit/cam"),
            Err(RouteError::NotFound)
        );
        assert!(decode("GET", "/api/v1/paths").is_none());
        assert_eq!(Call::PathsList.access(), Access::Status);
        assert_eq!(Call::ConfPathsGet("x".into()).access(), Access::Admin);
    }

    #[test]
    fn settings_translate_both_ways() {
        let body = json!({
            "name": "cam",
            "source": "rtsp://u:p@192.0.2.1/s",
            "sourceOnDemand": true,
            "rtspTransport": "automatic",
            "record": true,
            "recordPath": "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
            "recordFormat": "fmp4",
            "recordDeleteAfter": "1d",
            "rpiCameraBitrate": 2_000_000,
            "rpiCameraIDRPeriod": 60,
            "rpiCameraFPS": 30,
        });
        let patch = translate("cam", body.as_object().unwrap(), 15).unwrap();
        assert_eq!(
            patch,
            json!({
                "source": "rtsp://u:p@192.0.2.1/s",
                "source_on_demand": true,
                "rtsp_transport": "auto",
                "recording": {
                    "record": true,
                    "record_path": "%path/%Y-%m-%d_%H-%M-%S-%f.mp4",
                    "delete_after": "1d",
                },
                "bitrate_kbps": 2000,
                "idr_interval_s": 2.0,
                "fps": 30,
            })
        );
        let mut cfg = Config::default();
        let mut doc = json!({});
        config::merge_patch::apply(&mut doc, &patch);
        cfg.paths.insert(
            "cam".into(),
            serde_json::from_value(doc).expect("a valid path"),
        );
        let shown = path_conf(&cfg, "cam", &cfg.paths["cam"]);
        assert_eq!(shown["source"], "rtsp://u:***@192.0.2.1/s");
        assert_eq!(shown["rtspTransport"], "automatic");
        assert_eq!(shown["recordPath"], "%path/%Y-%m-%d_%H-%M-%S-%f");
        assert_eq!(shown["recordDeleteAfter"], "24h");
        assert_eq!(shown["rpiCameraBitrate"], 2_000_000);
        assert_eq!(shown["rpiCameraIDRPeriod"], 60);
        assert_eq!(shown["recordFormat"], "fmp4");
        assert_eq!(shown["name"], "cam");
        assert!(shown.get("sourceOnDemandStartTimeout").is_some());
    }

    #[test]
    fn settings_vigint_lacks_are_refused_by_name() {
        let t = |v: Value| translate("cam", v.as_object().unwrap(), 30);
        assert!(t(json!({"runOnReady": "x"}))
            .unwrap_err()
            .contains("runOnReady"));
        assert!(t(json!({"name": "other"})).unwrap_err().contains("other"));
        assert!(t(json!({"recordFormat": "mpegts"})).is_err());
        assert!(t(json!({"rtspTransport": "multicast"})).is_err());
        assert!(t(json!({"recordPath": "/var/rec/%path"})).is_err());
        assert!(t(json!({"recordPath": "../%path"})).is_err());
        assert!(t(json!({"rpiCameraBitrate": "fast"})).is_err());
        // null: back to the default (a merge patch removes the key).
        assert_eq!(
            t(json!({"record": null})).unwrap(),
            json!({"recording": {"record": null}})
        );
    }

    #[test]
    fn lists_paginate_like_mediamtx() {
        let r = |target: &str| {
            let req = Request {
                method: "GET".into(),
                target: target.into(),
                headers: Vec::new(),
                body: Vec::new(),
                peer: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            };
            let a = list(&req, (0..5).map(|i| json!(i)).collect());
            (a.status, serde_json::from_slice::<Value>(&a.body).unwrap())
        };
        assert_eq!(
            r("/v3/paths/list").1,
            json!({"itemCount": 5, "pageCount": 1, "items": [0, 1, 2, 3, 4]})
        );
        assert_eq!(
            r("/v3/paths/list?itemsPerPage=2&page=2").1,
            json!({"itemCount": 5, "pageCount": 3, "items": [4]})
        );
        assert_eq!(
            r("/v3/paths/list?itemsPerPage=2&page=9").1["items"],
            json!([])
        );
        assert_eq!(r("/v3/paths/list?itemsPerPage=0").0, 400);
        let (status, body) = r("/v3/paths/list?page=x");
        assert_eq!(status, 400);
        assert_eq!(body["status"], "error");
    }

    #[test]
    fn common_errors_take_mediamtx_shape() {
        let r = reshape_error(
            crate::http::ApiError::Unauthorized {
                message: "log in as admin".into(),
                challenge: true,
            }
            .into_response(),
        );
        assert_eq!(r.status, 401);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, json!({"status": "error", "error": "log in as admin"}));
        let e = config::ConfigError::new("paths.cam.recording.record_path", "must end in .mp4");
        assert_eq!(mediamtx_error(&e), "recordPath: must end in .mp4");
    }
}
