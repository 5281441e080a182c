//! systemd integration: readiness, a status line, and a watchdog that proves the appliance
//! still works rather than merely runs.
//!
//! Owns: the sd_notify(3) datagram (`NotifySocket`, from `NOTIFY_SOCKET`: a path or an
//! abstract `@name`), the watchdog interval (`WATCHDOG_USEC`, `WATCHDOG_PID`), the status
//! line (`status_line`, from `PathStatus::health`), the `Watchdog` that decides which
//! messages go out when (time passed in, so tests fake it), and the thread "watchdog"
//! that drives it (`Systemd::spawn`). Does not own: any counter or state (it reads
//! `status::Monitor`), the unit file (`board/vigint.service`), the logger's journald format.
//!
//! Inert without `NOTIFY_SOCKET`: vigint runs the same without systemd.
//!
//! Why not the `sd-notify` crate: 0.5 connects `NOTIFY_SOCKET` as a file path only, so an
//! abstract `@name` socket (what the sd_notify protocol also allows, used by containers and
//! test harnesses) fails; the protocol is one datagram, and std's
//! `SocketAddrExt::from_abstract_name` covers abstract names without `unsafe`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::status::{Monitor, PathHealth, RecorderState, Status};

/// A path may show `starting` this long before the keep-alives stop (a camera whose open
/// hangs). Opening a camera takes well under a second; an encoder's first frame as long.
pub const START_GRACE: Duration = Duration::from_secs(30);
/// The status sampler and the async runtime must have shown life within this.
pub const PROOF_STALE: Duration = Duration::from_secs(3);
/// Longest pause between two looks at the status.
const TICK_MAX: Duration = Duration::from_millis(500);
/// The STATUS= line is cut here: `systemctl status` shows one line.
const STATUS_MAX: usize = 200;

/// Where notifications go: systemd's socket, or a fake in tests.
pub trait Notifier: Send + Sync {
    fn send(&self, message: &str) -> io::Result<()>;
}

/// The socket systemd named in `NOTIFY_SOCKET`.
pub struct NotifySocket {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// As given, for log lines.
    name: String,
}

impl NotifySocket {
    /// `None` when `NOTIFY_SOCKET` is not set (not run by systemd, or `Type=simple`).
    pub fn from_env() -> Option<io::Result<NotifySocket>> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        Some(NotifySocket::new(&value))
    }

    /// A socket sending to `value`, as `NOTIFY_SOCKET` spells it.
    pub fn new(value: &OsStr) -> io::Result<NotifySocket> {
        let addr = notify_address(value)?;
        Ok(NotifySocket {
            // Unbound and unconnected: each send resolves the path again, so a socket that
            // systemd recreated (daemon-reexec) is still reached.
            sock: UnixDatagram::unbound()?,
            addr,
            name: value.to_string_lossy().into_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Notifier for NotifySocket {
    fn send(&self, message: &str) -> io::Result<()> {
        let sent = self.sock.send_to_addr(message.as_bytes(), &self.addr)?;
        if sent != message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification cut short",
            ));
        }
        Ok(())
    }
}

/// The address `NOTIFY_SOCKET` names: an absolute path, or `@name` in the abstract namespace.
pub fn notify_address(value: &OsStr) -> io::Result<SocketAddr> {
    let bytes = value.as_bytes();
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET `{}`: {why}", value.to_string_lossy()),
        )
    };
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(value)),
        Some(b'@') if bytes.len() > 1 => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..])
        }
        Some(_) if bytes.starts_with(b"vsock:") => {
            Err(invalid("vsock addresses are not supported"))
        }
        _ => Err(invalid("not an absolute path or @abstract name")),
    }
}

/// The watchdog interval systemd expects keep-alives within (`WatchdogSec=`), from the values
/// of `WATCHDOG_USEC` and `WATCHDOG_PID` (a PID meant for another process disables it).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(me) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// The line `systemctl status` shows, e.g. `2 paths streaming, recording cam, 1 viewer` or
/// `1 of 2 paths streaming (door: camera lost: no such device), recording cam`.
pub fn status_line(status: &Status, ready: bool) -> String {
    let n = status.paths.len();
    let mut parts = Vec::new();
    if n == 0 {
        parts.push("no paths configured".to_string());
    } else {
        let serving = status
            .paths
            .iter()
            .filter(|p| p.health() == PathHealth::Serving)
            .count();
        let mut head = if serving == n {
            format!("{n} path{} streaming", if n == 1 { "" } else { "s" })
        } else {
            format!("{serving} of {n} paths streaming")
        };
        let troubles: Vec<String> = status
            .paths
            .iter()
            .filter_map(|p| match p.health() {
                PathHealth::Serving => None,
                PathHealth::Starting => Some(format!("{}: starting", p.name)),
                PathHealth::Reported(why) | PathHealth::Stalled(why) | PathHealth::Idle(why) => {
                    Some(format!("{}: {why}", p.name))
                }
            })
            .collect();
        if !troubles.is_empty() {
            head.push_str(&format!(" ({})", troubles.join("; ")));
        }
        parts.push(head);
    }
    let recording: Vec<&str> = status
        .paths
        .iter()
        .filter(|p| {
            p.recording
                .as_ref()
                .is_some_and(|r| r.state == RecorderState::Recording)
        })
        .map(|p| p.name.as_str())
        .collect();
    if !recording.is_empty() {
        parts.push(format!("recording {}", recording.join(", ")));
    }
    let viewers: usize = status
        .paths
        .iter()
        .map(|p| p.clients.tcp + p.clients.udp + p.live_viewers)
        .sum();
    if viewers > 0 {
        parts.push(format!(
            "{viewers} viewer{}",
            if viewers == 1 { "" } else { "s" }
        ));
    }
    let mut line = parts.join(", ");
    if !ready {
        line.insert_str(0, "starting: ");
    }
    if line.len() > STATUS_MAX {
        let mut cut = STATUS_MAX - 3;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Signs of life from the loops a status snapshot does not cover by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proofs {
    /// How often the status sampler went over the counters (`Monitor::sweeps`).
    pub sweeps: u64,
    /// Tasks the async runtime (RTSP) ran for the watchdog.
    pub runtime_beats: u64,
}

/// What one look at the status decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// The datagram to send (`READY=1`, `STATUS=...`, `WATCHDOG=1` lines); empty: nothing.
    pub message: String,
    /// Why keep-alives are withheld now (`None` while they go out or none are due).
    pub withheld: Option<String>,
}

/// A counter that must keep moving, and when it last did.
#[derive(Clone, Copy, Debug)]
struct Progress {
    value: u64,
    moved: Instant,
}

impl Progress {
    fn update(slot: &mut Option<Progress>, value: u64, now: Instant) -> Duration {
        match slot {
            Some(p) if p.value == value => now.saturating_duration_since(p.moved),
            _ => {
                *slot = Some(Progress { value, moved: now });
                Duration::ZERO
            }
        }
    }
}

/// Decides, look after look, what systemd is told. Pure: the caller passes the time, the
/// snapshot and the proofs, and sends the message.
#[derive(Debug)]
pub struct Watchdog {
    /// `WatchdogSec`; `None`: no keep-alives wanted.
    interval: Option<Duration>,
    ready_sent: bool,
    last_status: String,
    last_keepalive: Option<Instant>,
    starting_since: BTreeMap<String, Instant>,
    sweeps: Option<Progress>,
    beats: Option<Progress>,
}

impl Watchdog {
    pub fn new(interval: Option<Duration>) -> Watchdog {
        Watchdog {
            interval,
            ready_sent: false,
            last_status: String::new(),
            last_keepalive: None,
            starting_since: BTreeMap::new(),
            sweeps: None,
            beats: None,
        }
    }

    /// How often to look: often enough to keep-alive at half the interval.
    pub fn period(&self) -> Duration {
        self.interval.map_or(TICK_MAX, |i| (i / 4).min(TICK_MAX))
    }

    /// Why a keep-alive must not go out now, if it must not.
    fn withhold(&mut self, now: Instant, status: &Status, proofs: Proofs) -> Option<String> {
        let mut why = Vec::new();
        let still = Progress::update(&mut self.sweeps, proofs.sweeps, now);
        if still > PROOF_STALE {
            why.push(format!(
                "the status sampler has not run for {} s",
                still.as_secs()
            ));
        }
        let still = Progress::update(&mut self.beats, proofs.runtime_beats, now);
        if still > PROOF_STALE {
            why.push(format!(
                "the network runtime has not run a task for {} s",
                still.as_secs()
            ));
        }
        for p in &status.paths {
            match p.health() {
                PathHealth::Stalled(reason) => why.push(format!("path {}: {reason}", p.name)),
                PathHealth::Starting => {
                    let since = *self.starting_since.entry(p.name.clone()).or_insert(now);
                    let waited = now.saturating_duration_since(since);
                    if waited > START_GRACE {
                        why.push(format!(
                            "path {}: still starting after {} s",
                            p.name,
                            waited.as_secs()
                        ));
                    }
                }
                PathHealth::Serving | PathHealth::Reported(_) | PathHealth::Idle(_) => {
                    self.starting_since.remove(&p.name);
                }
            }
        }
        self.starting_since
            .retain(|name, _| status.paths.iter().any(|p| &p.name == name));
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// One look at `status` at `now`.
    pub fn tick(&mut self, now: Instant, status: &Status, proofs: Proofs) -> Tick {
        let mut lines = Vec::new();
        let ready = status
            .paths
            .iter()
            .all(|p| p.health() != PathHealth::Starting);
        if ready && !self.ready_sent {
            self.ready_sent = true;
            lines.push("READY=1".to_string());
        }
        let line = status_line(status, self.ready_sent);
        if line != self.last_status {
            lines.push(format!("STATUS={line}"));
            self.last_status = line;
        }
        let withheld = self.withhold(now, status, proofs);
        if let Some(interval) = self.interval {
            let due = self
                .last_keepalive
                .is_none_or(|t| now.saturating_duration_since(t) >= interval / 2);
            if due && withheld.is_none() {
                lines.push("WATCHDOG=1".to_string());
                self.last_keepalive = Some(now);
            }
        }
        Tick {
            message: lines.join("\n"),
            withheld: self.interval.and(withheld),
        }
    }
}

/// vigint's side of systemd: inert when not run by systemd.
pub struct Systemd {
    notifier: Option<Arc<dyn Notifier>>,
    interval: Option<Duration>,
    /// Set by `stopping`; held while sending, so nothing follows STOPPING=1.
    stopping: Arc<Mutex<bool>>,
}

fn lock(m: &Mutex<bool>) -> std::sync::MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`; a bad socket is logged and ignored.
    pub fn from_env() -> Systemd {
        let notifier: Option<Arc<dyn Notifier>> = match NotifySocket::from_env() {
            None => None,
            Some(Ok(s)) => {
                log::info!("systemd: notifying {}", s.name());
                Some(Arc::new(s))
            }
            Some(Err(e)) => {
                log::error!("systemd: {e}; not notifying systemd");
                None
            }
        };
        let env = |k: &str| std::env::var(k).ok();
        let interval = watchdog_interval(
            env("WATCHDOG_USEC").as_deref(),
            env("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Systemd::with(notifier, interval)
    }

    pub fn with(notifier: Option<Arc<dyn Notifier>>, interval: Option<Duration>) -> Systemd {
        Systemd {
            notifier,
            interval,
            stopping: Arc::new(Mutex::new(false)),
        }
    }

    /// Starts the thread "watchdog": READY when every path serves or reported its error,
    /// STATUS on change, WATCHDOG at half the interval while the appliance works. It runs
    /// on its own thread but sends only what a fresh snapshot from `monitor`, a moving
    /// sampler and a responsive `runtime` justify, so a stuck loop silences it.
    pub fn spawn(
        &self,
        monitor: Arc<Monitor>,
        runtime: tokio::runtime::Handle,
    ) -> Option<JoinHandle<()>> {
        let notifier = self.notifier.clone()?;
        let stopping = self.stopping.clone();
        let mut watchdog = Watchdog::new(self.interval);
        if let Some(i) = self.interval {
            log::info!(
                "systemd: watchdog {} ms, keep-alives every {} ms while frames flow",
                i.as_millis(),
                (i / 2).as_millis()
            );
        }
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let beats = Arc::new(AtomicU64::new(0));
                let mut withheld: Option<String> = None;
                let mut send_failed = false;
                while !*lock(&stopping) {
                    let b = beats.clone();
                    runtime.spawn(async move {
                        b.fetch_add(1, Ordering::Relaxed);
                    });
                    let proofs = Proofs {
                        sweeps: monitor.sweeps(),
                        runtime_beats: beats.load(Ordering::Relaxed),
                    };
                    let tick = watchdog.tick(Instant::now(), &monitor.snapshot(), proofs);
                    if tick.withheld != withheld {
                        match &tick.withheld {
                            Some(why) => log::error!(
                                "watchdog: withholding keep-alives, systemd will restart vigint: {why}"
                            ),
                            None => log::info!("watchdog: keep-alives resumed"),
                        }
                        withheld = tick.withheld.clone();
                    }
                    let stopped = lock(&stopping);
                    if !tick.message.is_empty() && !*stopped {
                        match notifier.send(&tick.message) {
                            Ok(()) => send_failed = false,
                            Err(e) if !send_failed => {
                                log::warn!("systemd: cannot notify: {e}");
                                send_failed = true;
                            }
                            Err(_) => {}
                        }
                    }
                    drop(stopped);
                    std::thread::sleep(watchdog.period());
                }
            });
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!("systemd: cannot start the watchdog thread: {e}");
                None
            }
        }
    }

    /// Tells systemd the appliance is stopping, and stops the watchdog thread's messages.
    pub fn stopping(&self) {
        let mut stopping = lock(&self.stopping);
        *stopping = true;
        if let Some(n) = &self.notifier {
            if let Err(e) = n.send("STOPPING=1\nSTATUS=stopping") {
                log::warn!("systemd: cannot notify: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::test_path as path;

    fn status(paths: Vec<PathStatus>) -> Status {
        crate::status::tests::test_status(paths, true)
    }
    use crate::status::{Clients, PathStatus, RecorderSample};

    const STREAMING: (&str, Option<&str>) = ("streaming", None);
    const STALLED: (&str, Option<&str>) = ("streaming", Some("no frames for more than 3 s"));
    const LOST: (&str, Option<&str>) = (
        "camera lost: /dev/video99: no such device",
        Some("camera lost: /dev/video99: no such device"),
    );

    fn one(state: (&str, Option<&str>)) -> Status {
        status(vec![path("cam", state.0, state.1)])
    }

    fn proofs(n: u64) -> Proofs {
        Proofs {
            sweeps: n,
            runtime_beats: n,
        }
    }

    #[test]
    fn notify_addresses_are_paths_or_abstract_names() {
        use std::os::linux::net::SocketAddrExt;
        let a = notify_address(OsStr::new("/run/systemd/notify")).expect("path");
        assert_eq!(
            a.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let a = notify_address(OsStr::new("@vigint/test")).expect("abstract");
        assert_eq!(a.as_abstract_name(), Some(&b"vigint/test"[..]));
        for bad in ["", "@", "relative/sock", "vsock:2:1234"] {
            let e = notify_address(OsStr::new(bad)).expect_err(bad);
            assert!(e.to_string().contains("NOTIFY_SOCKET"), "{e}");
        }
    }

    #[test]
    fn notifications_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("vigint-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind");
        let sock = NotifySocket::new(OsStr::new(&format!("@{name}"))).expect("socket");
        sock.send("READY=1\nSTATUS=ok").expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }

    #[test]
    fn watchdog_interval_follows_systemds_variables() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), Some(s(30)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("7"), 7), Some(s(2)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn status_lines_read_well() {
        let mut cam = path("cam", "streaming", None);
        cam.recording = Some(RecorderSample {
            state: "recording".into(),
            ..Default::default()
        });
        cam.clients = Clients { tcp: 1, udp: 0 };
        let door = path("door", LOST.0, LOST.1);
        let yard = path("yard", "streaming", None);
        assert_eq!(
            status_line(&status(vec![cam.clone(), yard]), true),
            "2 paths streaming, recording cam, 1 viewer"
        );
        assert_eq!(
            status_line(&status(vec![cam, door]), true),
            "1 of 2 paths streaming (door: camera lost: /dev/video99: no such device), recording cam, 1 viewer"
        );
        assert_eq!(
            status_line(&one(("starting", Some("starting"))), false),
            "starting: 0 of 1 paths streaming (cam: starting)"
        );
        assert_eq!(status_line(&status(vec![]), true), "no paths configured");
        let long = path("cam", &"x".repeat(500), Some("x"));
        let line = status_line(&status(vec![long]), true);
        assert_eq!(line.len(), STATUS_MAX);
        assert!(line.ends_with("..."));
    }

    #[test]
    fn ready_once_when_every_path_serves_or_reported_its_error() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(None);
        let starting = status(vec![
            path("cam", "streaming", None),
            path("door", "starting", Some("starting")),
        ]);
        let tick = w.tick(t0, &starting, proofs(1));
        assert!(!tick.message.contains("READY=1"), "{tick:?}");
        assert!(tick.message.contains("STATUS=starting: "), "{tick:?}");
        let up = status(vec![
            path("cam", "streaming", None),
            path("door", LOST.0, LOST.1),
        ]);
        let tick = w.tick(t0, &up, proofs(2));
        assert!(
            tick.message.starts_with("READY=1\nSTATUS=1 of 2"),
            "{tick:?}"
        );
        // Nothing changed: nothing to say (no watchdog configured).
        assert_eq!(w.tick(t0, &up, proofs(3)), Tick::default());
    }

    #[test]
    fn keepalives_at_half_the_interval_while_frames_flow_or_failures_show() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        for state in [STREAMING, LOST] {
            let mut w = Watchdog::new(Some(ms(2000)));
            assert_eq!(w.period(), ms(500));
            let mut sent = Vec::new();
            for i in 0..20u64 {
                let now = t0 + ms(500 * i);
                let tick = w.tick(now, &one(state), proofs(i));
                assert_eq!(tick.withheld, None);
                if tick.message.contains("WATCHDOG=1") {
                    sent.push(500 * i);
                }
            }
            assert_eq!(sent, (0..10).map(|k| 1000 * k).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_stalled_path_silences_the_watchdog_until_frames_flow_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watchdog::new(Some(s(2)));
        assert!(w
            .tick(t0, &one(STREAMING), proofs(0))
            .message
            .contains("WATCHDOG=1"));
        let tick = w.tick(t0 + s(1), &one(STALLED), proofs(1));
        assert!(!tick.message.contains("WATCHDOG"), "{tick:?}");
        assert_eq!(
            tick.withheld.as_deref(),
            Some("path cam: no frames for more than 3 s")
        );
        assert!(tick
            .message
            .contains("STATUS=0 of 1 paths streaming (cam: no frames"));
        let tick = w.tick(t0 + s(2), &one(STREAMING), proofs(2));
        assert!(tick.message.contains("WATCHDOG=1"), "{tick:?}");
        assert_eq!(tick.withheld, None);
    }

    #[test]
    fn a_stuck_sampler_or_runtime_silences_the_watchdog() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for frozen in [
            |i| Proofs {
                sweeps: 1,
                runtime_beats: i,
            },
            |i| Proofs {
                sweeps: i,
                runtime_beats: 1,
            },
        ] {
            let mut w = Watchdog::new(Some(s(2)));
            let mut last = None;
            for i in 1..=5u64 {
                let tick = w.tick(t0 + s(i), &one(STREAMING), frozen(i));
                last = Some((i, tick));
            }
            let (_, tick) = last.expect("ticks");
            assert!(!tick.message.contains("WATCHDOG"), "{tick:?}");
            let why = tick.withheld.expect("withheld");
            assert!(why.contains("has not run"), "{why}");
        }
    }

    #[test]
    fn a_path_starting_for_too_long_silences_the_watchdog() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watchdog::new(Some(s(10)));
        let starting = one(("starting", Some("starting")));
        let tick = w.tick(t0, &starting, proofs(0));
        assert!(
            tick.message.contains("WATCHDOG=1"),
            "within the grace: {tick:?}"
        );
        assert!(!tick.message.contains("READY"), "{tick:?}");
        let later = t0 + START_GRACE + s(1);
        let tick = w.tick(later, &starting, proofs(1));
        assert!(
            tick.withheld
                .as_deref()
                .is_some_and(|w| w.contains("still starting")),
            "{tick:?}"
        );
    }
}
