//! The RTSP listener: accepts connections, caps their number, and holds what every
//! connection shares (paths, authentication, the UDP socket pair, settings, counters).
//!
//! Owns: the accept loop and the registry of served paths. Per-connection work is `conn`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::auth::permissions::{self, Action, Permission, Verdict};
use crate::config::{AuthMethod, RtspConfig, User};
use crate::hub::MediaPath;
use crate::rtsp::auth::{Authenticator, Credentials};
use crate::rtsp::conn;
use crate::rtsp::reply::{Reply, StatusCode};
use crate::rtsp::stream::RtpStream;
use crate::rtsp::udp::UdpPair;
use crate::source::publisher::PublisherSlot;

/// Counters for status and metrics.
#[derive(Default)]
pub struct ServerStats {
    pub connections: AtomicUsize,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub auth_failures: AtomicU64,
}

pub struct ServerContext {
    paths: RwLock<HashMap<String, Arc<RtpStream>>>,
    /// The publisher slots of the paths whose source is `publisher`.
    publishers: RwLock<HashMap<String, Arc<PublisherSlot>>>,
    auth: RwLock<Arc<Authenticator>>,
    /// Each user's permissions (`None`: read everything, publish nothing).
    permissions: RwLock<HashMap<String, Option<Vec<Permission>>>>,
    pub udp: Option<Arc<UdpPair>>,
    /// Changed live by `apply_settings` (new values apply to new connections and sessions).
    settings: RwLock<RtspConfig>,
    local_port: u16,
    pub stats: ServerStats,
}

pub const REALM: &str = "vigint";

fn permissions_of(users: &[User]) -> HashMap<String, Option<Vec<Permission>>> {
    users
        .iter()
        .map(|u| (u.name.clone(), u.permissions.clone()))
        .collect()
}

fn authenticator(users: &[User], methods: &[AuthMethod]) -> Authenticator {
    let creds = users
        .iter()
        .map(|u| Credentials {
            name: u.name.clone(),
            password: u.password.clone(),
        })
        .collect();
    Authenticator::new(creds, REALM).with_schemes(
        methods.contains(&AuthMethod::Digest),
        methods.contains(&AuthMethod::Basic),
    )
}

impl ServerContext {
    /// What every connection shares; `udp` is `None` when UDP is off (or in handler tests,
    /// which need no sockets).
    pub fn new(
        cfg: &RtspConfig,
        users: &[User],
        udp: Option<Arc<UdpPair>>,
        local_port: u16,
    ) -> Arc<ServerContext> {
        Arc::new(ServerContext {
            paths: RwLock::new(HashMap::new()),
            publishers: RwLock::new(HashMap::new()),
            auth: RwLock::new(Arc::new(authenticator(users, &cfg.auth_methods))),
            permissions: RwLock::new(permissions_of(users)),
            udp,
            settings: RwLock::new(cfg.clone()),
            local_port,
            stats: ServerStats::default(),
        })
    }

    pub fn path(&self, name: &str) -> Option<Arc<RtpStream>> {
        self.paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
    pub fn auth(&self) -> Arc<Authenticator> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.settings().session_timeout_s)
    }
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.settings().stall_timeout_s)
    }
    /// How far behind the newest frame a client may fall, in 90 kHz ticks.
    pub fn max_lag_ticks(&self) -> i64 {
        self.settings().max_lag_ms as i64 * crate::media::CLOCK_RATE as i64 / 1000
    }
    /// The TCP port RTSP listens on.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
}

/// A bound RTSP server; `run` serves it.
pub struct RtspServer {
    ctx: Arc<ServerContext>,
    listener: TcpListener,
}

impl RtspServer {
    /// Binds the TCP listener and the UDP pair. A UDP pair that cannot be bound disables UDP
    /// (logged) rather than the whole server.
    pub async fn bind(cfg: &RtspConfig, users: &[User]) -> io::Result<RtspServer> {
        let listener = TcpListener::bind(cfg.listen).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for RTSP on {}: {e}", cfg.listen),
            )
        })?;
        let ip = cfg.listen.ip();
        let local_port = listener.local_addr()?.port();
        let udp = match UdpPair::bind(ip, cfg.udp_rtp_port).await {
            Ok(p) => Some(p),
            Err(e) => {
                log::error!(
                    "rtsp: cannot bind UDP ports {}-{} on {ip}: {e}; clients must use TCP",
                    cfg.udp_rtp_port,
                    cfg.udp_rtp_port.saturating_add(1)
                );
                None
            }
        };
        let ctx = ServerContext::new(cfg, users, udp, local_port);
        Ok(RtspServer { ctx, listener })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn context(&self) -> &Arc<ServerContext> {
        &self.ctx
    }

    /// Serves until `shutdown` resolves; then stops accepting.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => self.accepted(stream, peer),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        log::error!("rtsp: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    fn accepted(&self, stream: TcpStream, peer: SocketAddr) {
        let stats = &self.ctx.stats;
        stats.connections_total.fetch_add(1, Ordering::Relaxed);
        let open = stats.connections.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionGuard(self.ctx.clone());
        let max_connections = self.ctx.settings().max_connections;
        if open >= max_connections {
            stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
            log::warn!("rtsp: {peer} refused: {max_connections} connections already open");
            tokio::spawn(async move {
                refuse(stream).await;
                drop(guard);
            });
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            conn::serve(ctx, stream, peer).await;
            drop(guard);
        });
    }
}

/// Answers the first request of a connection over the limit with 503, then closes it.
async fn refuse(mut stream: TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    let read = async {
        loop {
            let n = stream.read(&mut buf[len..]).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            len += n;
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            if text.contains("\r\n\r\n") || len == buf.len() {
                return Some(text);
            }
        }
    };
    let Ok(Some(text)) = tokio::time::timeout(Duration::from_secs(2), read).await else {
        return;
    };
    let cseq = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("cseq")
                .then(|| value.trim().to_string())
        })
        .filter(|c| c.len() < 16);
    let reply = Reply::new(StatusCode::ServiceUnavailable).header("Retry-After", "10");
    use tokio::io::AsyncWriteExt;
    let _ = stream.write_all(&reply.to_bytes(cseq.as_deref())).await;
}

struct ConnectionGuard(Arc<ServerContext>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.stats.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ServerContext {
    /// Starts serving `media` as RTSP path `media.name`, replacing an older one of that name.
    pub fn add_path(&self, media: Arc<MediaPath>, max_readers: usize) {
        let max_packet_size = self.settings().max_packet_size;
        let stream = RtpStream::start(media.clone(), max_packet_size, max_readers);
        self.paths
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(media.name.clone(), stream);
    }

    /// Stops serving a path; its readers see the end of the stream.
    pub fn remove_path(&self, name: &str) -> bool {
        let removed = self
            .paths
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(stream) => {
                stream.stop();
                true
            }
            None => false,
        }
    }

    /// Changes a path's reader limit; readers already playing stay. False if not served.
    pub fn set_max_readers(&self, name: &str, max_readers: usize) -> bool {
        match self.path(name) {
            Some(stream) => {
                stream.max_readers.store(max_readers, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn path_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Replaces the user list; sessions already authenticated continue.
    pub fn set_users(&self, users: &[User]) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(authenticator(users, &self.settings().auth_methods));
        *self.permissions.write().unwrap_or_else(|e| e.into_inner()) = permissions_of(users);
    }

    /// May `user` (`None`: anonymous) do `action` on `path`?
    pub fn authorize(&self, user: Option<&str>, action: Action, path: &str) -> Verdict {
        let perms = self.permissions.read().unwrap_or_else(|e| e.into_inner());
        let of_user = user.map(|u| perms.get(u).and_then(|p| p.as_deref()));
        permissions::allowed(!perms.is_empty(), of_user, action, path)
    }

    /// Makes `slot` the publisher slot of its path (a `publisher` path).
    pub fn set_publisher(&self, slot: Arc<PublisherSlot>) {
        self.publishers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot.path_name().to_string(), slot);
    }

    /// The path stops taking publishers (removed, or its source changed); the current one
    /// is told to leave.
    pub fn remove_publisher(&self, name: &str) {
        let slot = self
            .publishers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(slot) = slot {
            slot.close();
        }
    }

    /// The publisher slot of a `publisher` path.
    pub fn publisher(&self, name: &str) -> Option<Arc<PublisherSlot>> {
        self.publishers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn settings(&self) -> std::sync::RwLockReadGuard<'_, RtspConfig> {
        self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies new RTSP settings and users without a restart: limits and timeouts for new
    /// connections and sessions, the authentication schemes at once. Returns the fields that
    /// only a restart applies (the listening sockets, and the packet size of running paths).
    pub fn apply_settings(&self, next: &RtspConfig, users: &[User]) -> Vec<&'static str> {
        let mut restart = Vec::new();
        let auth_changed = {
            let mut cur = self.settings.write().unwrap_or_else(|e| e.into_inner());
            if cur.listen != next.listen {
                restart.push("rtsp.listen");
            }
            if cur.udp_rtp_port != next.udp_rtp_port {
                restart.push("rtsp.udp_rtp_port");
            }
            if cur.max_packet_size != next.max_packet_size {
                restart.push("rtsp.max_packet_size");
            }
            let auth_changed = cur.auth_methods != next.auth_methods;
            // Sockets and running packetisers keep what they were started with.
            *cur = RtspConfig {
                listen: cur.listen,
                udp_rtp_port: cur.udp_rtp_port,
                max_packet_size: cur.max_packet_size,
                ..next.clone()
            };
            auth_changed
        };
        if auth_changed {
            self.set_users(users);
        }
        restart
    }
}

impl crate::status::ClientProbe for ServerContext {
    fn readers(&self, path: &str) -> Option<crate::status::ReaderSample> {
        let stream = self.path(path)?;
        Some(crate::status::ReaderSample {
            clients: stream.clients.get(),
            readers: stream.clients.readers(),
            frames_dropped: stream.hub.dropped_by_readers(),
            bytes_sent: stream.bytes_sent(),
        })
    }
    fn server(&self) -> crate::status::ServerSample {
        let s = &self.stats;
        crate::status::ServerSample {
            port: self.local_port,
            connections: s.connections.load(Ordering::Relaxed),
            connections_total: s.connections_total.load(Ordering::Relaxed),
            connections_rejected: s.connections_rejected.load(Ordering::Relaxed),
            auth_failures: s.auth_failures.load(Ordering::Relaxed),
        }
    }
}
/// Addresses a person can paste into a player: the listen address, or every interface's
/// address when listening on all of them.
pub fn reachable_urls(listen: SocketAddr, path: &str) -> Vec<String> {
    let ips: Vec<IpAddr> = if listen.ip().is_unspecified() {
        let mut ips = local_ipv4s();
        if ips.is_empty() {
            ips.push(IpAddr::from([127, 0, 0, 1]));
        }
        ips
    } else {
        vec![listen.ip()]
    };
    ips.into_iter()
        .map(|ip| format!("rtsp://{}/{path}", SocketAddr::new(ip, listen.port())))
        .collect()
}

/// Non-loopback IPv4 addresses of this machine's interfaces.
fn local_ipv4s() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below; we only read entries it gave us.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && (*addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    out.push(IpAddr::V4(ip));
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}
