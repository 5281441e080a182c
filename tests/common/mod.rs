//! Shared test harness: runs the real `vigint` binary on loopback and real clients against it.
#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod latency;
pub mod procs;
pub mod raw_rtsp;
pub mod retina_util;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../src/test_util/shared.rs"]
mod shared;
#[allow(unused_imports)] // each test crate uses its own share
pub use shared::{require, require_group, TempDir, XorShift};

/// A running `vigint` process; killed on drop. Its log is kept for assertions.
pub struct Server {
    child: Child,
    pub rtsp: SocketAddr,
    /// The HTTP API's address, when it started.
    pub http: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
    /// The `--config` file (the API saves changes there).
    pub config_path: PathBuf,
    launch: Launch,
    _dir: TempDir,
}

/// The paths part of a config: name -> JSON object.
pub fn pattern_path(width: u32, height: u32, fps: u32, kbps: u32) -> serde_json::Value {
    serde_json::json!({
        "source": format!("test-pattern:{width}x{height}@{fps}"),
        "bitrate_kbps": kbps,
        "idr_interval_s": 1
    })
}

/// A started process: the child, its RTSP and HTTP addresses, its log, when it started.
type Spawned = (
    Child,
    SocketAddr,
    Option<SocketAddr>,
    Arc<Mutex<Vec<String>>>,
    Instant,
);

/// Starts vigint on `cfg_path` and waits until RTSP serves.
fn spawn(cfg_path: &std::path::Path, launch: &Launch) -> Spawned {
    let started = Instant::now();
    let mut command = match launch.wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_vigint"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_vigint")),
    };
    let mut child = command
        .envs(launch.env.iter().cloned())
        .arg("--config")
        .arg(cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigint");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("VIGINT_TEST_LOG").is_some() {
                eprintln!("[vigint] {line}");
            }
            if let Some(rest) = line.split("rtsp: listening on ").nth(1) {
                if let Some(addr) = rest.split_whitespace().next() {
                    let _ = tx.send(addr.to_string());
                }
            }
            log2.lock().expect("log lock").push(line);
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "vigint did not start; log:\n{}",
                log.lock().expect("log").join("\n")
            );
        }
    };
    let rtsp: SocketAddr = addr.parse().expect("listen address");
    // The HTTP server starts (or fails to) before RTSP announces itself.
    let http = log
        .lock()
        .expect("log")
        .iter()
        .find_map(|l| l.split("http: listening on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    (child, rtsp, http, log, started)
}

/// How a test starts the process, beyond its config.
#[derive(Default, Clone)]
pub struct Launch {
    /// A command (and its arguments) that runs vigint, e.g. `unshare` with a mount script
    /// that ends in `exec "$@"`; vigint and its arguments follow it.
    pub wrapper: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// Runs vigint after `script` (POSIX sh, `$0` = `arg0`, ending in `exec "$@"`) in a
    /// private user and mount namespace: mounts the script makes are seen by vigint alone
    /// and vanish with it; no root needed where unprivileged user namespaces are allowed.
    pub fn in_mount_namespace(script: String, arg0: &str) -> Launch {
        let probe = run(
            Command::new("unshare").args([
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                "mount -t tmpfs -o size=1m probe /mnt && mount -o remount,ro /mnt",
            ]),
            Duration::from_secs(10),
        );
        assert!(
            probe.ok,
            "this test mounts a filesystem in its own user and mount namespace, which failed: {}\n\
             allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on \
             Ubuntu 24.04 kernel.apparmor_restrict_unprivileged_userns=0) or run the tests as root",
            probe.stderr
        );
        Launch {
            wrapper: vec![
                "unshare".into(),
                "--map-root-user".into(),
                "--mount".into(),
                "--".into(),
                "sh".into(),
                "-c".into(),
                script,
                arg0.into(),
            ],
            ..Launch::default()
        }
    }
}

impl Server {
    /// Starts vigint with `config` (a JSON object; `rtsp.listen` defaults to 127.0.0.1:0 and
    /// UDP to a free pair) and waits until it serves.
    pub fn start(config: serde_json::Value) -> Server {
        Server::start_with(config, Launch::default())
    }

    /// `start`, through `launch`'s wrapper and environment.
    pub fn start_with(mut config: serde_json::Value, launch: Launch) -> Server {
        let dir = TempDir::new("srv");
        let rtsp = config
            .as_object_mut()
            .expect("config object")
            .entry("rtsp")
            .or_insert_with(|| serde_json::json!({}));
        let rtsp = rtsp.as_object_mut().expect("rtsp object");
        rtsp.entry("listen").or_insert("127.0.0.1:0".into());
        rtsp.entry("udp_rtp_port").or_insert(0.into());
        // Never the default 0.0.0.0:8080: tests run in parallel.
        let http = config
            .as_object_mut()
            .expect("config object")
            .entry("http")
            .or_insert_with(|| serde_json::json!({}));
        http.as_object_mut()
            .expect("http object")
            .entry("listen")
            .or_insert("127.0.0.1:0".into());
        config
            .as_object_mut()
            .expect("config object")
            .entry("data_dir")
            .or_insert(dir.path().join("data").display().to_string().into());
        let cfg_path = dir.path().join("vigint.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&config).expect("json"))
            .expect("write config");
        let (child, rtsp, http, log, started) = spawn(&cfg_path, &launch);
        Server {
            child,
            rtsp,
            http,
            log,
            started,
            config_path: cfg_path,
            launch,
            _dir: dir,
        }
    }

    /// Stops the process cleanly and starts it again on the same config file and data
    /// directory (new ports: the file asks for port 0).
    pub fn restart(&mut self) {
        self.terminate();
        let (child, rtsp, http, log, started) = spawn(&self.config_path, &self.launch);
        self.child = child;
        self.rtsp = rtsp;
        self.http = http;
        self.log = log;
        self.started = started;
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.rtsp)
    }

    /// The URL of `path` through `host` (an IP address), for a server listening on a
    /// wildcard address such as `[::]`.
    pub fn url_via(&self, host: &str, path: &str) -> String {
        let ip: std::net::IpAddr = host.parse().expect("an IP address");
        format!("rtsp://{}/{path}", SocketAddr::new(ip, self.rtsp.port()))
    }

    pub fn url_with_user(&self, path: &str, user: &str, pass: &str) -> String {
        format!("rtsp://{user}:{pass}@{}/{path}", self.rtsp)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (a power cut, as far as files are concerned).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM (a clean stop) and waits up to 10 s for it to exit.
    pub fn terminate(&mut self) {
        // SAFETY: kill sends SIGTERM to our own child.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() {
            assert!(Instant::now() < deadline, "vigint did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Resident memory of the server in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    pub fn cpu_ticks(&self) -> u64 {
        procs::cpu_ticks_of(self.pid())
    }
}

pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Output of a finished command.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// ffmpeg pulling `from` over TCP and pushing its H.264 as it is (`-c copy`) to `to` over
/// `transport`: a publisher fed by another RTSP server. Standard input and output are
/// null; the caller picks what becomes of standard error, and spawns it.
pub fn ffmpeg_copy_command(from: &str, to: &str, transport: &str) -> Command {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
    ])
    .arg(from)
    .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", transport])
    .arg(to)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    cmd
}

/// Decoded luma frames of `url` for `seconds`, as a player sees them (ffmpeg decodes every
/// frame, none duplicated or dropped by ffmpeg itself). Returns the frames and ffmpeg's
/// error output, which must be empty for a clean stream.
pub fn ffmpeg_gray_frames(
    url: &str,
    transport: &str,
    seconds: u32,
    w: u32,
    h: u32,
) -> (Vec<Vec<u8>>, String) {
    let seconds_text = seconds.to_string();
    let (ok, frames, stderr) = ffmpeg_gray(
        &["-rtsp_transport", transport, "-i", url, "-t", &seconds_text],
        Duration::from_secs(seconds as u64 + 20),
        w,
        h,
    );
    assert!(ok, "ffmpeg failed: {stderr}");
    (frames, stderr)
}

/// The ffmpeg command that decodes `input` (options up to and including `-i`, and any after
/// it) to raw luma frames on its standard output, every frame as decoded.
pub fn ffmpeg_gray_command(input: &[&str]) -> Command {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error"])
        .args(input)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ]);
    cmd
}

/// Decodes the input that `input` names (ffmpeg options up to and including `-i`, and any
/// after it) to `w`x`h` luma frames, every frame as decoded (none dropped or duplicated by
/// ffmpeg). Returns whether ffmpeg succeeded in `limit`, the frames, and its error output.
pub fn ffmpeg_gray(
    input: &[&str],
    limit: Duration,
    w: u32,
    h: u32,
) -> (bool, Vec<Vec<u8>>, String) {
    let (ok, bytes, stderr) = run_bytes(&mut ffmpeg_gray_command(input), limit);
    let frame = (w * h) as usize;
    let frames = bytes.chunks_exact(frame).map(|c| c.to_vec()).collect();
    (ok, frames, stderr)
}

/// Runs a command; returns whether it succeeded in time, its raw stdout and its stderr.
pub fn run_bytes(cmd: &mut Command, limit: Duration) -> (bool, Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let mut stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {limit:?})"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

/// Runs a command with a hard time limit (kills it past the limit).
pub fn run(cmd: &mut Command, limit: Duration) -> Run {
    let (ok, stdout, stderr) = run_bytes(cmd, limit);
    Run {
        ok,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    }
}

/// Reads the burned-in codes of decoded gray frames; asserts every frame carries one.
pub fn codes_of(frames: &[Vec<u8>], w: u32, h: u32) -> Vec<vigint::source::pattern::FrameCode> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vigint::source::pattern::read_code(f, w as usize, w, h)
                .unwrap_or_else(|| panic!("frame {i} of {} has no readable code", frames.len()))
        })
        .collect()
}

/// Asserts frame numbers increase by exactly one: no gap, no repeat.
pub fn assert_gapless(codes: &[vigint::source::pattern::FrameCode], what: &str) {
    assert!(!codes.is_empty(), "{what}: no frames");
    for w in codes.windows(2) {
        assert_eq!(
            w[1].frame,
            w[0].frame + 1,
            "{what}: frame {} followed by {} (gap or repeat)",
            w[0].frame,
            w[1].frame
        );
    }
}

/// A raw RTSP exchange on a plain TCP socket: sends `request`, returns the response head and
/// body (by Content-Length).
pub fn raw_request(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).expect("write request");
    read_response(stream)
}

pub fn read_response(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = stream.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// The status code of a raw response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn header_of<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
