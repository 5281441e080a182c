//! The writer of one RTSP connection, and the sender of a UDP session's media.
//!
//! Owns: the task that puts responses and interleaved media on the socket in order, one
//! whole frame at a time (one write of the shared buffer on channel 0, a vectored write with
//! the client's own headers on others); the UDP sender (one `sendmmsg` batch per frame);
//! RTCP sender reports for both; skipping a lagging reader to the next key frame; dropping
//! a client that cannot take one frame within the stall timeout; the per-client send buffer.
//! Does not own: what is answered (the handlers) or which frames exist (the hub).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::hub::HubReader;
use crate::rtsp::rtcp;
use crate::rtsp::rtp::{self, RtpFrame};
use crate::rtsp::stream::RtpStream;
use crate::rtsp::udp::{self, Destination};

/// How often a playing client gets an RTCP sender report.
const SR_INTERVAL: Duration = Duration::from_secs(5);

/// What the request handler tells the writer.
pub(super) enum WriterMsg {
    /// Bytes to write; `sent` fires once they are on the socket.
    Bytes(Vec<u8>, Option<oneshot::Sender<()>>),
    Play(Box<TcpPlay>),
    Stop,
}

/// A playing TCP-interleaved session, owned by the writer.
pub(super) struct TcpPlay {
    pub(super) reader: HubReader<RtpFrame>,
    pub(super) first: Option<Arc<RtpFrame>>,
    pub(super) rtp_channel: u8,
    pub(super) rtcp_channel: u8,
    pub(super) stream: Arc<RtpStream>,
    pub(super) max_lag: i64,
    /// Interleaved headers for channels other than 0, reused frame after frame.
    pub(super) headers: Vec<[u8; 4]>,
}

impl TcpPlay {
    async fn next(&mut self) -> Option<Arc<RtpFrame>> {
        match self.first.take() {
            Some(f) => Some(f),
            None => next_live(&mut self.reader, &self.stream, self.max_lag).await,
        }
    }
}

/// The reader's next frame, unless it is more than `max_lag` ticks behind the newest one:
/// then the rest of that group of pictures is dropped and the reader resumes at the next
/// key frame, so a slow client's video stays live instead of drifting behind.
pub(super) async fn next_live(
    reader: &mut HubReader<RtpFrame>,
    stream: &RtpStream,
    max_lag: i64,
) -> Option<Arc<RtpFrame>> {
    loop {
        let frame = reader.next().await?;
        let lag = stream.lag_of(&frame);
        // A fast start's backlog is behind live on purpose.
        if lag <= max_lag || reader.from_backlog() {
            return Some(frame);
        }
        log::debug!(
            "rtsp: a reader of {} is {} ms behind; skipping to the next key frame",
            stream.media.name,
            lag * 1000 / crate::media::CLOCK_RATE as i64
        );
        reader.resync();
    }
}

/// A playing UDP session, owned by its sender task.
pub(super) struct UdpPlay {
    pub(super) pair: Arc<udp::UdpPair>,
    pub(super) stream: Arc<RtpStream>,
    pub(super) reader: HubReader<RtpFrame>,
    pub(super) first: Option<Arc<RtpFrame>>,
    pub(super) dest: Destination,
    pub(super) rtcp_dest: SocketAddr,
    pub(super) max_lag: i64,
}

/// Sends a UDP session's media: one `sendmmsg` batch per frame, a sender report now and then.
pub(super) async fn udp_sender(play: UdpPlay, peer: SocketAddr) {
    let UdpPlay {
        pair,
        stream,
        mut reader,
        mut first,
        dest,
        rtcp_dest,
        max_lag,
    } = play;
    let mut next_sr = Instant::now();
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => match next_live(&mut reader, &stream, max_lag).await {
                Some(f) => f,
                None => return,
            },
        };
        if Instant::now() >= next_sr {
            next_sr = Instant::now() + SR_INTERVAL;
            if let Some(sr) = sender_report(&stream) {
                let _ = pair.rtcp.send_to(&sr, rtcp_dest).await;
            }
        }
        if let Err(e) = udp::send_frame(&pair.rtp, &frame, &dest).await {
            log::warn!("rtsp: {peer} UDP send failed: {e}; stopping its media");
            return;
        }
        // UDP carries no interleaving headers.
        stream.count_sent(frame.buf.len() - frame.packet_count() * rtp::INTERLEAVED_HEADER_LEN);
    }
}

fn sender_report(stream: &RtpStream) -> Option<Vec<u8>> {
    let i = stream.sender_info()?;
    Some(rtcp::sender_report(
        i.ssrc,
        i.wall,
        i.rtp_timestamp,
        i.packets,
        i.octets,
        "vigint",
    ))
}

/// The writer: responses and media, in order, one whole frame at a time.
pub(super) async fn writer_task(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<WriterMsg>,
    stall: Duration,
    peer: SocketAddr,
) {
    let mut play: Option<Box<TcpPlay>> = None;
    let mut next_sr = Instant::now();
    loop {
        let next_frame = async {
            match play.as_mut() {
                Some(p) => p.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                None => return,
                Some(WriterMsg::Bytes(b, done)) => {
                    match tokio::time::timeout(stall, wr.write_all(&b)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Some(WriterMsg::Play(p)) => {
                    play = Some(p);
                    next_sr = Instant::now();
                }
                Some(WriterMsg::Stop) => play = None,
            },
            frame = next_frame => {
                let Some(frame) = frame else {
                    // The path went away.
                    play = None;
                    continue;
                };
                let Some(p) = play.as_mut() else { continue };
                if Instant::now() >= next_sr {
                    next_sr = Instant::now() + SR_INTERVAL;
                    if let Some(sr) = sender_report(&p.stream) {
                        let mut b = Vec::with_capacity(sr.len() + 4);
                        b.extend_from_slice(&[b'$', p.rtcp_channel]);
                        b.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                        b.extend_from_slice(&sr);
                        if !matches!(tokio::time::timeout(stall, wr.write_all(&b)).await, Ok(Ok(()))) {
                            return;
                        }
                    }
                }
                match tokio::time::timeout(stall, write_frame(&mut wr, &frame, p)).await {
                    Ok(Ok(())) => p.stream.count_sent(frame.buf.len()),
                    Ok(Err(_)) => return,
                    Err(_) => {
                        log::warn!(
                            "rtsp: {peer} stopped reading: a frame could not be written in {} s; disconnecting",
                            stall.as_secs()
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Writes one frame: the shared buffer as is on channel 0, else with this client's headers.
async fn write_frame(
    wr: &mut OwnedWriteHalf,
    frame: &RtpFrame,
    p: &mut TcpPlay,
) -> std::io::Result<()> {
    if p.rtp_channel == 0 {
        return wr.write_all(&frame.buf).await;
    }
    let n = frame.packet_count();
    p.headers.clear();
    for i in 0..n {
        let len = frame.packet(i).len() as u16;
        let l = len.to_be_bytes();
        p.headers.push([b'$', p.rtp_channel, l[0], l[1]]);
    }
    let mut slices = Vec::with_capacity(2 * n);
    for i in 0..n {
        slices.push(IoSlice::new(&p.headers[i]));
        slices.push(IoSlice::new(frame.packet(i)));
    }
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let written = wr.write_vectored(bufs).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, written);
    }
    Ok(())
}

/// Kernel send buffer per client. Linux would grow it to megabytes; on a small board with
/// many clients that memory matters, and a client that stops reading should stall (and be
/// noticed) after about a second of video, not after tens of seconds.
const SEND_BUFFER: libc::c_int = 256 * 1024;

pub(super) fn limit_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a valid socket fd with a c_int value of the stated size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &SEND_BUFFER as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::debug!(
            "rtsp: cannot limit the send buffer: {}",
            std::io::Error::last_os_error()
        );
    }
}
