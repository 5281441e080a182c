//! RTP over unicast UDP: the server's RTP/RTCP socket pair, shared by every session, and
//! the per-frame `sendmmsg` batch.
//!
//! Owns: binding the pair, sending one frame's packets to one client in as few system calls
//! as possible, routing incoming RTCP (receiver reports, publishers' sender reports) to the
//! session that sent it, and a publisher's incoming RTP to its record session (by the
//! address it announced in SETUP; anything else sent to the RTP port is dropped).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::rtsp::rtp::RtpFrame;

/// Packets per `sendmmsg` call; the headers live on the stack, so no allocation per frame.
const BATCH: usize = 64;

/// Liveness of a UDP session: last time we heard from the client.
pub struct Liveness {
    last: Mutex<Instant>,
}

impl Liveness {
    pub fn new() -> Arc<Self> {
        Arc::new(Liveness {
            last: Mutex::new(Instant::now()),
        })
    }
    pub fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
    pub fn idle_for(&self) -> std::time::Duration {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// Which peers a socket can send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// An IPv4 socket: IPv4 peers only.
    V4,
    /// An IPv6 socket that also serves IPv4 through v4-mapped addresses (`[::]` with
    /// `IPV6_V6ONLY` off, Linux's default).
    DualStack,
    /// An IPv6 socket for IPv6 peers only (a specific IPv6 address, or `IPV6_V6ONLY`).
    V6Only,
}

impl Reach {
    /// The address to send a peer's media to, in the form this socket sends to and
    /// receives from (so RTCP from the peer is recognised), or `None` when it cannot
    /// reach the peer. A dual-stack RTSP listener reports IPv4 peers as `::ffff:a.b.c.d`.
    pub fn address_for(self, peer: IpAddr) -> Option<IpAddr> {
        let mapped_v4 = match peer {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        match (self, mapped_v4) {
            (Reach::V4, Some(v4)) => Some(IpAddr::V4(v4)),
            (Reach::V4, None) => None,
            (Reach::DualStack, Some(v4)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            (Reach::DualStack | Reach::V6Only, None) => Some(peer),
            (Reach::V6Only, Some(_)) => None,
        }
    }

    fn of(sock: &UdpSocket) -> io::Result<Reach> {
        if sock.local_addr()?.is_ipv4() {
            return Ok(Reach::V4);
        }
        let mut v6only: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt on a valid socket fd into a c_int of the stated size.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &mut v6only as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let unspecified = sock.local_addr()?.ip().is_unspecified();
        Ok(if v6only == 0 && unspecified {
            Reach::DualStack
        } else {
            Reach::V6Only
        })
    }
}

/// The server's RTP and RTCP sockets.
pub struct UdpPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    /// Which clients the pair can send to (both sockets are bound alike).
    pub reach: Reach,
    /// Client RTCP address -> that session's liveness, refreshed by its receiver reports.
    clients: Mutex<HashMap<SocketAddr, Arc<Liveness>>>,
    /// Publisher RTP address -> its record session's queue.
    publishers: Mutex<HashMap<SocketAddr, tokio::sync::mpsc::Sender<bytes::Bytes>>>,
}

/// Inbound packets a record session may have waiting; more are dropped (and then show as
/// lost packets, which drop to the next key frame).
pub const PUBLISHER_QUEUE: usize = 1024;

impl UdpPair {
    /// Binds RTP on `rtp_port` and RTCP on the next port of `ip`. With port 0, finds a free
    /// even/odd pair.
    pub async fn bind(ip: IpAddr, rtp_port: u16) -> io::Result<Arc<Self>> {
        let (rtp, rtcp) = if rtp_port != 0 {
            let rtp = UdpSocket::bind(SocketAddr::new(ip, rtp_port)).await?;
            let rtcp = UdpSocket::bind(SocketAddr::new(ip, rtp_port + 1)).await?;
            (rtp, rtcp)
        } else {
            let mut found = None;
            for _ in 0..100 {
                let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
                let port = rtp.local_addr()?.port();
                if port % 2 != 0 || port == u16::MAX {
                    continue;
                }
                if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                    found = Some((rtp, rtcp));
                    break;
                }
            }
            found.ok_or_else(|| io::Error::other("no free even/odd UDP port pair"))?
        };
        let reach = Reach::of(&rtp)?;
        let pair = Arc::new(UdpPair {
            reach,
            rtp: Arc::new(rtp),
            rtcp: Arc::new(rtcp),
            clients: Mutex::new(HashMap::new()),
            publishers: Mutex::new(HashMap::new()),
        });
        tokio::spawn(receive_rtp(Arc::downgrade(&pair), pair.rtp.clone()));
        tokio::spawn(receive_rtcp(Arc::downgrade(&pair), pair.rtcp.clone()));
        Ok(pair)
    }

    pub fn ports(&self) -> (u16, u16) {
        let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
        (port(&self.rtp), port(&self.rtcp))
    }

    pub fn register(&self, client_rtcp: SocketAddr, live: Arc<Liveness>) {
        self.lock().insert(client_rtcp, live);
    }

    pub fn unregister(&self, client_rtcp: SocketAddr) {
        self.lock().remove(&client_rtcp);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Liveness>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RTP from `from` (a publisher's announced RTP address, in this socket's form) goes to
    /// `queue`.
    pub fn route_publisher(
        &self,
        from: SocketAddr,
        queue: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) {
        self.publishers_lock().insert(from, queue);
    }

    pub fn unroute_publisher(&self, from: SocketAddr) {
        self.publishers_lock().remove(&from);
    }

    fn publishers_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, tokio::sync::mpsc::Sender<bytes::Bytes>>>
    {
        self.publishers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads what is sent to the RTP port: a publisher's packets go to its record session, the
/// rest (NAT keep-alive punches from players) is dropped, so the receive buffer never fills.
async fn receive_rtp(pair: std::sync::Weak<UdpPair>, sock: Arc<UdpSocket>) {
    // As large as a datagram can be: a shorter buffer would cut packets silently.
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(pair) = pair.upgrade() else { return };
        let queue = pair.publishers_lock().get(&from).cloned();
        if let Some(q) = queue {
            // A full queue drops the packet: the depacketiser sees the gap.
            let _ = q.try_send(bytes::Bytes::copy_from_slice(&buf[..n]));
        }
    }
}

async fn receive_rtcp(pair: std::sync::Weak<UdpPair>, sock: Arc<UdpSocket>) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(pair) = pair.upgrade() else { return };
        let live = pair.lock().get(&from).cloned();
        if let Some(live) = live {
            if crate::rtsp::rtcp::parse_receiver_reports(&buf[..n]).is_ok() {
                live.touch();
            }
        }
    }
}

/// A `sockaddr` for `sendmmsg`, built once per session.
pub struct Destination {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Destination {
    pub fn new(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in fits in sockaddr_storage, which is aligned for it.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_in6 fits in sockaddr_storage, which is aligned for it.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Destination {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Sends packets `from..` of `frame` in `sendmmsg` batches; returns how many were sent
/// before the socket would block.
fn send_batch(fd: i32, frame: &RtpFrame, from: usize, dest: &Destination) -> io::Result<usize> {
    let total = frame.packet_count();
    let mut sent = from;
    while sent < total {
        let n = (total - sent).min(BATCH);
        // SAFETY: iovec is plain old data; zero is a valid value.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: mmsghdr is plain old data; zero is a valid value.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let pkt = frame.packet(sent + i);
            iovs[i] = libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            };
            msgs[i].msg_hdr.msg_name = &dest.storage as *const _ as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = dest.len;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in msgs points into `iovs`, `dest` or the frame's buffer,
        // all alive for the duration of the call; n <= BATCH.
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock && sent > from {
                return Ok(sent - from);
            }
            return Err(e);
        }
        sent += r as usize;
    }
    Ok(sent - from)
}

/// Sends every packet of `frame` to `dest`, waiting when the socket buffer is full.
pub async fn send_frame(sock: &UdpSocket, frame: &RtpFrame, dest: &Destination) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let mut done = 0;
    while done < frame.packet_count() {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || send_batch(fd, frame, done, dest)) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // The client's port is closed (ICMP unreachable reported on the shared socket):
            // not this frame's fault; the session's liveness decides when it ends.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn reach_maps_peers_to_the_sockets_family() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(Reach::V4.address_for(v4), Some(v4));
        assert_eq!(Reach::V4.address_for(mapped), Some(v4));
        assert_eq!(Reach::V4.address_for(v6), None);
        assert_eq!(Reach::DualStack.address_for(v4), Some(mapped));
        assert_eq!(Reach::DualStack.address_for(mapped), Some(mapped));
        assert_eq!(Reach::DualStack.address_for(v6), Some(v6));
        assert_eq!(Reach::V6Only.address_for(v6), Some(v6));
        assert_eq!(Reach::V6Only.address_for(mapped), None);
        assert_eq!(Reach::V6Only.address_for(v4), None);
    }

    #[tokio::test]
    async fn reach_of_bound_sockets() {
        let any4 = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        assert_eq!(Reach::of(&any4).unwrap(), Reach::V4);
        // IPv6 on loopback is part of what vigint serves: its absence is a failure here.
        let any6 = UdpSocket::bind("[::]:0").await.expect("IPv6 socket");
        {
            let expect = if std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
                .is_ok_and(|v| v.trim() == "1")
            {
                Reach::V6Only
            } else {
                Reach::DualStack
            };
            assert_eq!(Reach::of(&any6).unwrap(), expect);
        }
        let lo6 = UdpSocket::bind("[::1]:0").await.expect("::1 socket");
        assert_eq!(Reach::of(&lo6).unwrap(), Reach::V6Only);
    }
}
