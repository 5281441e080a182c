//! Helper processes for tests and benchmarks: free ports, children killed on drop, and
//! GStreamer's rtsp-server (tests/relay/gst_camera.py) as an independent camera or relay.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{require, require_group};

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for it to print "ready".
pub fn start_ready(mut cmd: Command, what: &str) -> Proc {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("{what} did not start");
    }
    Proc(child)
}

/// GStreamer's rtsp-server (tests/relay/gst_camera.py) on 127.0.0.1:`port` serving /cam,
/// with `args` (`--user`, `--size`, `--relay URL`, ...).
pub fn gst_rtsp_server(port: u16, args: &[&str]) -> Proc {
    require("gst-launch-1.0");
    require_group("python3", "test");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/relay/gst_camera.py");
    let probe = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0')",
        ])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "GStreamer's RTSP server for Python is missing: run `scripts/install-deps.sh test` (or: sudo apt-get install -y gir1.2-gst-rtsp-server-1.0 python3-gi)"
    );
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).arg(port.to_string()).args(args);
    start_ready(cmd, "GStreamer's rtsp-server")
}

/// CPU time (user + system) of process `pid` so far, in clock ticks (1/100 s).
pub fn cpu_ticks_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; after ") " they are at 11 and 12.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The CPU of process `pid` over the next `window` in % of one core (clock ticks are
/// 1/100 s), and its resident memory (KiB) at the end: a server's load while clients play.
pub async fn cpu_and_rss_over(pid: u32, window: Duration) -> (f64, u64) {
    let c0 = cpu_ticks_of(pid);
    let t0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let cpu = (cpu_ticks_of(pid) - c0) as f64 / t0.elapsed().as_secs_f64();
    (cpu, super::proc_status_kib(pid, "VmRSS"))
}
