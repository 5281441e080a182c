//! A real kernel V4L2 driver in an emulated board: Debian's own Linux kernel with the `vivid`
//! virtual camera driver boots in QEMU (TCG), the project's binary runs inside and serves two
//! vivid devices as two paths, and the host plays them over RTSP (forwarded to 127.0.0.1).
//!
//! For x86_64 (the binary cargo builds for this test) and aarch64 (the `dist` binary that
//! `scripts/build-arm.sh --dist` builds: the one users put on a Pi, and the SD-card image's).
//! The guest is made by `tests/vivid/` (kernel from apt into a cache, initramfs, QEMU command
//! line); the host drives it over a virtio serial port that runs shell commands in the guest
//! (`tests/vivid/init`).
//!
//! Checks, on each architecture: frames decode at the configured size from vivid's YUYV output
//! (`pixel_format` YUYV) and, after a restart with NV12, from its NV12 output; `disconnect`,
//! `inject_fatal_streaming_error` and `percentage_of_dropped_buffers` (vivid's controls) each
//! leave a stream that comes back by itself, with vigint's dropped-frame counter moving; the
//! second device plays on its own path throughout. Prints the figures: boot to first frame,
//! fault to frames again.
//!
//! Both tests are `#[ignore]`d in a plain `cargo test`: each boots a virtual machine and takes
//! about 40 s (plus, once, the kernel download, cached). `scripts/test-all.sh` (CI) runs them
//! after the aarch64 `dist` build:
//!   cargo test --release --test vivid -- --ignored --nocapture
//! Set VIGINT_VIVID_AARCH64_BIN to test an aarch64 binary built elsewhere (e.g. with cross);
//! VIGINT_TEST_LOG=1 echoes the guest's console.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{require_group, run, TempDir};

/// Camera modes TCG sustains in real time on both architectures with both paths playing
/// (measured: aarch64 TCG encodes both test patterns at the full 15 fps with about 60 % of
/// its two virtual CPUs busy). Both are sizes vivid's webcam input offers (it has no 320x240).
const CAM: (u32, u32, u32) = (640, 480, 15);
const CAM2: (u32, u32, u32) = (320, 180, 15);

/// One guest at a time: two TCG machines (or a build next to one) on a small CI host would
/// distort each other's timing, and the figures.
static ONE_GUEST: Mutex<()> = Mutex::new(());

/// What tests/vivid/init says when vigint ends without being asked to.
const VIGINT_ENDED: &str = "] vigint exited unexpectedly";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// The guest

/// A console line and when the host read it.
type Line = (Instant, String);

struct Guest {
    arch: &'static str,
    child: Child,
    port: u16,
    console: Arc<Mutex<Vec<Line>>>,
    ctl: Option<(BufReader<UnixStream>, UnixStream)>,
    /// When boot.sh handed over to QEMU.
    booted: Instant,
    dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Guest {
    /// Boots `vigint` (built for `arch`) with `config` in a vivid guest; returns once QEMU runs.
    fn boot(arch: &'static str, vigint: &Path, config: &serde_json::Value) -> Guest {
        let qemu = match arch {
            "x86_64" => "qemu-system-x86_64",
            _ => "qemu-system-aarch64",
        };
        for tool in [qemu, "busybox", "cpio", "v4l2-ctl", "readelf"] {
            require_group(tool, "vivid");
        }
        let dir = TempDir::new(&format!("vivid-{arch}"));
        let cfg = dir.path().join("vigint.json");
        std::fs::write(&cfg, serde_json::to_vec_pretty(config).expect("json")).expect("config");
        let port = free_port();
        let mut child = Command::new(manifest_dir().join("tests/vivid/boot.sh"))
            .arg(arch)
            .arg(vigint)
            .arg("--port")
            .arg(port.to_string())
            .arg("--config")
            .arg(&cfg)
            .arg("--work")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tests/vivid/boot.sh");
        let console = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<Instant>();
        // stderr: the scripts' own messages, ending with "vivid: booting" just before QEMU.
        let stderr = child.stderr.take().expect("stderr");
        let log = console.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let now = Instant::now();
                if line.starts_with("vivid: booting") {
                    let _ = tx.send(now);
                }
                eprintln!("[{arch} boot] {line}");
                log.lock().expect("console").push((now, line));
            }
        });
        // stdout: the serial console.
        let stdout = child.stdout.take().expect("stdout");
        let log = console.clone();
        std::thread::spawn(move || {
            let echo = std::env::var_os("VIGINT_TEST_LOG").is_some();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = line.trim_end_matches('\r').to_string();
                if echo {
                    eprintln!("[{arch}] {line}");
                }
                log.lock().expect("console").push((Instant::now(), line));
            }
        });
        // Preparing the kernel the first time downloads it: allow for that.
        let booted = match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(t) => t,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let text = lines_text(&console.lock().expect("console"));
                panic!("{arch}: tests/vivid/boot.sh did not start QEMU:\n{text}");
            }
        };
        Guest {
            arch,
            child,
            port,
            console,
            ctl: None,
            booted,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// Number of console lines so far: a mark to search after.
    fn mark(&self) -> usize {
        self.console.lock().expect("console").len()
    }

    /// The first console line after `mark` containing `needle`, waiting up to `limit`.
    /// Gives up early when the guest or vigint in it ends.
    fn wait_line(&mut self, mark: usize, needle: &str, limit: Duration) -> Option<Line> {
        let deadline = Instant::now() + limit;
        loop {
            let (found, vigint_ended) = {
                let lines = &self.console.lock().expect("console")[mark..];
                (
                    lines.iter().find(|(_, l)| l.contains(needle)).cloned(),
                    lines.iter().any(|(_, l)| l.contains(VIGINT_ENDED)),
                )
            };
            if found.is_some() {
                return found;
            }
            if Instant::now() > deadline || !self.alive() || vigint_ended {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like `wait_line`, failing the test with the console when the line does not come.
    fn expect_line(&mut self, mark: usize, needle: &str, limit: Duration) -> Line {
        if let Some(l) = self.wait_line(mark, needle, limit) {
            return l;
        }
        let why = if !self.alive() {
            " (the guest stopped)"
        } else if self.wait_line(mark, VIGINT_ENDED, Duration::ZERO).is_some() {
            " (vigint exited)"
        } else {
            ""
        };
        panic!(
            "{}: no console line with `{needle}` within {limit:?}{why}",
            self.arch
        );
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs a shell command in the guest; returns its exit status and output.
    fn sh(&mut self, cmd: &str) -> (i32, String) {
        assert!(!cmd.contains('\n'), "one line per command");
        if self.ctl.is_none() {
            self.expect_line(0, "vivid-init: ", Duration::from_secs(60));
            self.expect_line(0, "ready: control on", Duration::from_secs(60));
            let sock = UnixStream::connect(self.dir.path().join("ctl.sock"))
                .expect("connect to the guest's control socket");
            sock.set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            let reader = BufReader::new(sock.try_clone().expect("clone"));
            self.ctl = Some((reader, sock));
        }
        let (reader, writer) = self.ctl.as_mut().expect("control channel");
        writer
            .write_all(format!("{cmd}\n").as_bytes())
            .expect("write to the guest");
        let mut out = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => panic!("{}: control channel closed during `{cmd}`", self.arch),
                Ok(_) => {}
                Err(e) => panic!("{}: no answer to `{cmd}`: {e}", self.arch),
            }
            if let Some(rc) = line.trim_end().strip_prefix("@@rc=") {
                return (rc.parse().unwrap_or(-1), out);
            }
            out.push_str(&line);
        }
    }

    /// Runs a command that must succeed; returns its output.
    fn sh_ok(&mut self, cmd: &str) -> String {
        let (rc, out) = self.sh(cmd);
        assert_eq!(rc, 0, "{}: `{cmd}` failed:\n{out}", self.arch);
        out
    }

    /// The latest "path NAME: camera dropped N frames in all" count (0 before any).
    fn dropped(&self, path: &str) -> u64 {
        let needle = format!("path {path}: camera dropped ");
        self.console
            .lock()
            .expect("console")
            .iter()
            .rev()
            .find_map(|(_, l)| {
                let rest = &l[l.find(&needle)? + needle.len()..];
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// Restarts vigint in the guest with `config`.
    fn restart_vigint(&mut self, config: &serde_json::Value) {
        use base64::Engine;
        let json = serde_json::to_vec(config).expect("json");
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        self.sh_ok(&format!(
            "echo {b64} | base64 -d >/tmp/vigint.json && vigint_start /tmp/vigint.json"
        ));
    }
}

fn lines_text(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let lines = self.console.lock().map(|l| l.clone()).unwrap_or_default();
            let from = lines.len().saturating_sub(150);
            eprintln!(
                "---- {} guest console (last {} lines) ----\n{}\n---- end of console ----",
                self.arch,
                lines.len() - from,
                lines_text(&lines[from..])
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Host-side players

/// What ffprobe saw: size and decoded frames.
#[derive(Debug)]
struct Probe {
    width: u32,
    height: u32,
    frames: u32,
}

/// Decodes `secs` of `url` with ffprobe over TCP.
fn ffprobe(url: &str, secs: u32) -> Result<Probe, String> {
    require_group("ffprobe", "test");
    let r = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-read_intervals",
            &format!("%+{secs}"),
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=nw=1",
            url,
        ]),
        Duration::from_secs(secs as u64 + 30),
    );
    let field = |k: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim().to_string())
    };
    let num = |k: &str| field(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    if !r.ok || field("codec_name").as_deref() != Some("h264") {
        return Err(format!("ffprobe failed: {}{}", r.stdout, r.stderr));
    }
    Ok(Probe {
        width: num("width"),
        height: num("height"),
        frames: num("nb_read_frames"),
    })
}

/// Asserts ffprobe decodes frames of `url` at `w`x`h` (retrying for up to 30 s while the
/// path comes up); returns the probe.
fn assert_plays(g: &Guest, path: &str, (w, h, fps): (u32, u32, u32), what: &str) -> Probe {
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = loop {
        match ffprobe(&g.url(path), 3) {
            Ok(p) if p.frames > 0 => break p,
            other if Instant::now() > deadline => {
                panic!("{}: {what}: {path} does not play: {other:?}", g.arch)
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(
        (probe.width, probe.height),
        (w, h),
        "{}: {what}: {path} decodes at the wrong size",
        g.arch
    );
    // 3 s at `fps`: at least a third of that even on a busy TCG host.
    assert!(
        probe.frames >= fps,
        "{}: {what}: only {} frames of {path} in 3 s",
        g.arch,
        probe.frames
    );
    eprintln!(
        "[{}] {what}: {path} plays {}x{}, {} frames in 3 s",
        g.arch, probe.width, probe.height, probe.frames
    );
    probe
}

/// A retina session that keeps playing a path (reconnecting whenever the stream ends or
/// stalls) and notes when each frame arrives.
struct Watcher {
    frames: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(url: String) -> Watcher {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(watch(url, f, s));
        });
        Watcher {
            frames,
            stop,
            thread: Some(thread),
        }
    }

    /// The first frame that arrived after `t`, waiting up to `limit` for one.
    fn first_after(&self, t: Instant, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(f) = self.frames.lock().expect("frames").iter().find(|f| **f > t) {
                return Some(*f);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn watch(url: String, frames: Arc<Mutex<Vec<Instant>>>, stop: Arc<AtomicBool>) {
    use futures::StreamExt;
    use retina::client::{
        PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    };
    use retina::codec::CodecItem;
    let url = url::Url::parse(&url).expect("url");
    while !stop.load(Ordering::Relaxed) {
        let open = async {
            let mut s = Session::describe(url.clone(), SessionOptions::default())
                .await
                .ok()?;
            s.setup(
                0,
                SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
            )
            .await
            .ok()?;
            s.play(PlayOptions::default()).await.ok()?.demuxed().ok()
        };
        if let Ok(Some(mut demuxed)) = tokio::time::timeout(Duration::from_secs(10), open).await {
            let mut idle = 0;
            while !stop.load(Ordering::Relaxed) && idle < 5 {
                match tokio::time::timeout(Duration::from_secs(1), demuxed.next()).await {
                    Ok(Some(Ok(CodecItem::VideoFrame(_)))) => {
                        idle = 0;
                        frames.lock().expect("frames").push(Instant::now());
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_))) | Ok(None) => break,
                    Err(_) => idle += 1,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The scenario

fn path_cfg(dev: &str, (w, h, fps): (u32, u32, u32), kbps: u32) -> serde_json::Value {
    serde_json::json!({
        "source": dev, "width": w, "height": h, "fps": fps,
        "bitrate_kbps": kbps, "idr_interval_s": 1
    })
}

/// `cam` asks for `pixel_format` (vigint would pick YU12, which needs no conversion);
/// `cam2` lets vigint choose.
fn guest_config(pixel_format: &str) -> serde_json::Value {
    let mut cam = path_cfg("/dev/video0", CAM, 1000);
    cam["pixel_format"] = pixel_format.into();
    serde_json::json!({
        "rtsp": { "listen": "0.0.0.0:8554" },
        "data_dir": "/tmp/vigint",
        "paths": { "cam": cam, "cam2": path_cfg("/dev/video1", CAM2, 400) }
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The device's current format as `v4l2-ctl --get-fmt-video` reports it: ("YUYV", 640, 480).
/// `cam` opened /dev/video0 in `fourcc` at the configured size (log line after `mark`),
/// plays from the host, and the device really is in that format.
fn assert_cam_streams(g: &mut Guest, arch: &str, mark: usize, fourcc: &str, limit: Duration) {
    g.expect_line(
        mark,
        &format!(
            "path cam: camera /dev/video0 opened: {fourcc} {}x{}",
            CAM.0, CAM.1
        ),
        limit,
    );
    assert_plays(g, "cam", CAM, fourcc);
    assert_eq!(
        device_format(g, "/dev/video0"),
        (fourcc.to_string(), CAM.0, CAM.1),
        "{arch}: /dev/video0 format while streaming {fourcc}"
    );
}

fn device_format(g: &mut Guest, dev: &str) -> (String, u32, u32) {
    let out = g.sh_ok(&format!("v4l2-ctl -d {dev} --get-fmt-video"));
    let fourcc = out
        .lines()
        .find_map(|l| l.split_once("Pixel Format")?.1.split('\'').nth(1))
        .unwrap_or("")
        .to_string();
    let (w, h) = out
        .lines()
        .find_map(|l| {
            let v = l
                .split_once("Width/Height")?
                .1
                .trim_start_matches([' ', ':']);
            let (w, h) = v.trim().split_once('/')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((0, 0));
    (fourcc, w, h)
}

/// Injects a vivid fault on /dev/video0 and shows path `cam` comes back by itself.
/// Returns (host: injection to the first frame after vigint says the camera is back,
/// vigint's own "back after N ms").
fn fault_recovers(g: &mut Guest, watcher: &Watcher, control: &str) -> (Duration, u64) {
    let mark = g.mark();
    let t0 = Instant::now();
    g.sh_ok(&format!("v4l2-ctl -d /dev/video0 -c {control}=1"));
    let lost = g.expect_line(mark, "path cam: camera lost", Duration::from_secs(20));
    eprintln!("[{}] {control}: {}", g.arch, lost.1);
    let (t_back, back) = g.expect_line(
        mark,
        "path cam: camera back after ",
        Duration::from_secs(30),
    );
    let back_ms: u64 = back
        .split("camera back after ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable line: {back}"));
    let first = watcher
        .first_after(t_back, Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "{}: {control}: no frame reached the host after `{back}`",
                g.arch
            )
        });
    assert_plays(g, "cam", CAM, &format!("after {control}"));
    (first - t0, back_ms)
}

fn scenario(arch: &'static str, vigint: &Path) {
    let t_start = Instant::now();
    eprintln!("[{arch}] guest with {}", vigint.display());
    let mut g = Guest::boot(arch, vigint, &guest_config("YUYV"));
    // The player starts when vigint listens: a client knocking earlier loses seconds to TCP
    // retransmissions towards a guest without an address yet, which is no one's boot time.
    let (listening, _) = g.expect_line(0, "rtsp: listening on", Duration::from_secs(120));
    let watcher = Watcher::start(g.url("cam"));

    // The board: vivid made two capture devices with the fault controls.
    let devices = g.sh_ok("v4l2-ctl --list-devices");
    assert!(
        devices.contains("/dev/video0") && devices.contains("/dev/video1"),
        "{arch}: vivid devices:\n{devices}"
    );
    let controls = g.sh_ok("v4l2-ctl -d /dev/video0 -L");
    for (name, id) in [
        ("disconnect", "0x00f0f041"),
        ("inject_fatal_streaming_error", "0x00f0f046"),
        ("percentage_of_dropped_buffers", "0x00f0f040"),
    ] {
        assert!(
            controls
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} {id}"))),
            "{arch}: vivid control {name} ({id}) missing:\n{controls}"
        );
    }

    // Boot to the first frame at the host.
    let first = watcher
        .first_after(g.booted, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{arch}: no frame on `cam` within 60 s of boot"));
    let boot_to_frame = first - g.booted;
    eprintln!(
        "[{arch}] FIGURE boot to first RTSP frame at the host: {} ms (QEMU start to vigint listening: {} ms)",
        ms(boot_to_frame),
        ms(listening - g.booted)
    );

    // YUYV on cam, the second device on cam2.
    assert_cam_streams(&mut g, arch, 0, "YUYV", Duration::from_secs(10));
    g.expect_line(
        0,
        "path cam2: camera /dev/video1 opened: ",
        Duration::from_secs(10),
    );
    assert_plays(&g, "cam2", CAM2, "second device");

    // `--list-cameras --json` names both vivid nodes with their formats and sizes.
    let listed = g.sh_ok("vigint --list-cameras --json 2>/dev/null");
    let cameras: serde_json::Value = serde_json::from_str(listed.trim())
        .unwrap_or_else(|e| panic!("{arch}: --list-cameras --json is not JSON ({e}): {listed}"));
    let cameras = cameras.as_array().cloned().unwrap_or_default();
    assert_eq!(cameras.len(), 2, "{arch}: --list-cameras: {listed}");
    for (cam, node) in cameras.iter().zip(["/dev/video0", "/dev/video1"]) {
        assert_eq!(cam["path"], node, "{arch}: {cam}");
        assert_eq!(cam["driver"], "vivid", "{arch}: {cam}");
        let formats = cam["formats"].to_string();
        for needle in ["YUYV", "NV12", "640", "480"] {
            assert!(
                formats.contains(needle),
                "{arch}: {node} lists no {needle}: {formats}"
            );
        }
    }
    let table = g.sh_ok("vigint --list-cameras 2>/dev/null");
    assert!(
        table.contains("/dev/video0") && table.contains("vivid"),
        "{arch}: --list-cameras table: {table}"
    );

    // Faults, one after another; the stream must come back by itself after each.
    let mut figures = Vec::new();
    for control in ["disconnect", "inject_fatal_streaming_error"] {
        let before = g.dropped("cam");
        let (host, vigint_ms) = fault_recovers(&mut g, &watcher, control);
        // The frames the outage swallowed are counted (logged within 5 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        while g.dropped("cam") <= before {
            assert!(
                Instant::now() < deadline && g.alive(),
                "{arch}: the dropped-frame counter stayed at {before} after {control}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "[{arch}] FIGURE {control} to frames at the host again: {} ms (vigint: camera back after {vigint_ms} ms); dropped frames {before} -> {}",
            ms(host),
            g.dropped("cam")
        );
        figures.push((control, host, vigint_ms));
    }
    let before = g.dropped("cam");
    g.sh_ok("v4l2-ctl -d /dev/video0 -c percentage_of_dropped_buffers=50");
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.dropped("cam") <= before {
        assert!(
            Instant::now() < deadline && g.alive(),
            "{arch}: the dropped-frame counter stayed at {before} with percentage_of_dropped_buffers=50"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = ffprobe(&g.url("cam"), 3).unwrap_or_else(|e| {
        panic!("{arch}: cam does not play while vivid drops half the buffers: {e}")
    });
    g.sh_ok("v4l2-ctl -d /dev/video0 -c percentage_of_dropped_buffers=0");
    let after = assert_plays(&g, "cam", CAM, "after percentage_of_dropped_buffers");
    eprintln!(
        "[{arch}] percentage_of_dropped_buffers=50: dropped frames {before} -> {}, {} frames in 3 s while dropping, {} after",
        g.dropped("cam"),
        during.frames,
        after.frames
    );
    // The faults were on /dev/video0 only: cam2 never noticed.
    assert!(
        g.wait_line(0, "path cam2: camera lost", Duration::ZERO)
            .is_none(),
        "{arch}: cam2 lost its camera during faults on /dev/video0"
    );
    assert_plays(&g, "cam2", CAM2, "second device after the faults");

    // NV12: vigint restarted with that pixel format for cam.
    let mark = g.mark();
    g.restart_vigint(&guest_config("NV12"));
    assert_cam_streams(&mut g, arch, mark, "NV12", Duration::from_secs(30));
    assert_plays(&g, "cam2", CAM2, "second device next to NV12");

    assert!(g.alive(), "{arch}: the guest stopped");
    // Resident memory as the guest's own kernel counts it (not inflated by emulation).
    let rss = g.sh_ok("grep VmRSS /proc/$(pidof vigint)/status");
    eprintln!("[{arch}] ==== figures");
    eprintln!(
        "[{arch}]   vigint {} with cam {}x{}@{} and cam2 {}x{}@{} encoding, one RTSP viewer",
        rss.split_whitespace().collect::<Vec<_>>().join(" "),
        CAM.0,
        CAM.1,
        CAM.2,
        CAM2.0,
        CAM2.1,
        CAM2.2
    );
    eprintln!(
        "[{arch}]   boot to first RTSP frame: {} ms",
        ms(boot_to_frame)
    );
    for (control, host, vigint_ms) in figures {
        eprintln!(
            "[{arch}]   {control} to frames again: {} ms at the host, {vigint_ms} ms in vigint",
            ms(host)
        );
    }
    eprintln!(
        "[{arch}]   whole scenario: {} s",
        t_start.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------------------
// The two architectures

/// The integration tests' vigint must be optimised: TCG cannot encode in real time otherwise.
fn assert_release() {
    if cfg!(debug_assertions) {
        panic!("the vivid tests need an optimised vigint: cargo test --release --test vivid -- --ignored");
    }
}

#[test]
#[ignore = "boots a virtual machine (about 40 s): scripts/test-all.sh runs it, or cargo test --release --test vivid -- --ignored"]
fn vivid_x86_64() {
    assert_release();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    scenario("x86_64", Path::new(env!("CARGO_BIN_EXE_vigint")));
}

/// The aarch64 binary: VIGINT_VIVID_AARCH64_BIN, else what `scripts/build-arm.sh --dist`
/// builds (it is a no-op when that build is current, as in scripts/test-all.sh after it).
fn aarch64_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGINT_VIVID_AARCH64_BIN") {
        return PathBuf::from(p);
    }
    let root = manifest_dir();
    let r = run(
        Command::new(root.join("scripts/build-arm.sh"))
            .arg("--dist")
            .current_dir(&root),
        Duration::from_secs(1800),
    );
    assert!(
        r.ok,
        "scripts/build-arm.sh --dist failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    // Its report line: "build-arm: PATH: ELF 64-bit LSB pie executable, ARM aarch64, ..."
    let bin = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("build-arm: ")?.split_once(": ELF"))
        .map(|(p, _)| root.join(p))
        .unwrap_or_else(|| panic!("no binary in build-arm.sh's output:\n{}", r.stdout));
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

#[test]
#[ignore = "boots a virtual machine (about 40 s) after the aarch64 build: scripts/test-all.sh runs it, or cargo test --release --test vivid -- --ignored"]
fn vivid_aarch64() {
    assert_release();
    // Held while building too: a compiler next to a TCG guest would slow it down.
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    scenario("aarch64", &aarch64_binary());
}
