//! One path as RTSP serves it: every frame packetised once, shared by every client.
//!
//! Owns: the per-path packetiser task (encoded hub -> RTP hub), the path's SSRC, sequence and
//! timestamp origin, and the sender-report clock mapping. Clients read `RtpFrame`s from the
//! RTP hub and write slices of the one shared buffer.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::hub::{Hub, MediaPath, DEFAULT_HUB_CAPACITY};
use crate::media::CLOCK_RATE;
use crate::rtsp::rtp::{Packetizer, RtpFrame};
use crate::status::ClientCounter;

/// Where the RTP clock stood at an instant: for RTCP sender reports.
#[derive(Clone, Copy)]
struct ClockPoint {
    rtp_timestamp: u32,
    at: Instant,
    packets: u32,
    octets: u32,
}

pub struct RtpStream {
    pub media: Arc<MediaPath>,
    pub hub: Arc<Hub<RtpFrame>>,
    pub ssrc: u32,
    /// Readers allowed at once; 0 means no limit. Changes apply to new readers.
    pub max_readers: AtomicUsize,
    /// Playing clients by transport, for the status.
    pub clients: Arc<ClientCounter>,
    readers: AtomicUsize,
    /// Media time of the newest frame: how far behind a reader is.
    newest_dts: AtomicI64,
    /// Bytes written to this path's viewers.
    bytes_sent: AtomicU64,
    clock: Mutex<Option<ClockPoint>>,
    /// Bumped when the picture format changes (size, SPS): sessions end so that clients
    /// reconnect and get a new description.
    format: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
    format_task: tokio::task::JoinHandle<()>,
}

/// What an RTCP sender report needs, at the moment it is sent.
pub struct SenderInfo {
    pub ssrc: u32,
    pub wall: SystemTime,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Without randomness the values are merely predictable, which RTP tolerates.
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

impl RtpStream {
    /// Starts the packetiser task for `media` on the current tokio runtime.
    pub fn start(media: Arc<MediaPath>, max_packet_size: usize, max_readers: usize) -> Arc<Self> {
        let ssrc = random_u32();
        let keyframe = media.frames.keyframe_request().clone();
        let hub = Arc::new(Hub::new(DEFAULT_HUB_CAPACITY, keyframe));
        let packetizer = Packetizer::new(ssrc, random_u32() as u16, random_u32(), max_packet_size);
        Arc::new_cyclic(|weak: &std::sync::Weak<RtpStream>| {
            let weak = weak.clone();
            let mut reader = media.frames.subscribe();
            let task_hub = hub.clone();
            let task = tokio::spawn(async move {
                let mut packetizer = packetizer;
                while let Some(frame) = reader.next().await {
                    let rtp = packetizer.packetize(&frame);
                    if let Some(stream) = weak.upgrade() {
                        let point = ClockPoint {
                            rtp_timestamp: rtp.rtp_timestamp,
                            at: Instant::now(),
                            packets: packetizer.packets_sent(),
                            octets: packetizer.octets_sent(),
                        };
                        *stream.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(point);
                        stream.newest_dts.store(rtp.dts_90k, Ordering::Relaxed);
                    }
                    task_hub.publish(Arc::new(rtp));
                }
                task_hub.close();
            });
            let format = tokio::sync::watch::channel(0).0;
            let format_task = tokio::spawn(watch_format(media.clone(), format.clone()));
            RtpStream {
                media,
                hub,
                ssrc,
                max_readers: AtomicUsize::new(max_readers),
                clients: Arc::default(),
                readers: AtomicUsize::new(0),
                newest_dts: AtomicI64::new(0),
                bytes_sent: AtomicU64::new(0),
                clock: Mutex::new(None),
                format,
                task,
                format_task,
            }
        })
    }

    /// Counts a new reader unless the path's limit is reached.
    pub fn try_add_reader(self: &Arc<Self>) -> Option<ReaderSlot> {
        let mut cur = self.readers.load(Ordering::Relaxed);
        loop {
            let max = self.max_readers.load(Ordering::Relaxed);
            if max != 0 && cur >= max {
                return None;
            }
            match self
                .readers
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(ReaderSlot(self.clone())),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Counts bytes written to one viewer.
    pub fn count_sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// How far `frame` is behind the newest frame, in 90 kHz ticks.
    pub fn lag_of(&self, frame: &RtpFrame) -> i64 {
        self.newest_dts.load(Ordering::Relaxed) - frame.dts_90k
    }

    /// The RTP clock extrapolated to now, for a sender report; `None` before the first frame.
    pub fn sender_info(&self) -> Option<SenderInfo> {
        let point = (*self.clock.lock().unwrap_or_else(|e| e.into_inner()))?;
        let elapsed = point.at.elapsed();
        let ticks = (elapsed.as_secs_f64() * CLOCK_RATE as f64) as u64 as u32;
        Some(SenderInfo {
            ssrc: self.ssrc,
            wall: SystemTime::now(),
            rtp_timestamp: point.rtp_timestamp.wrapping_add(ticks),
            packets: point.packets,
            octets: point.octets,
        })
    }
}

impl RtpStream {
    /// Stops packetising; readers see the end of the stream.
    pub fn stop(&self) {
        self.task.abort();
        self.format_task.abort();
        self.hub.close();
    }

    /// Resolves when the picture format changes after this call.
    pub fn watch_format(&self) -> tokio::sync::watch::Receiver<u64> {
        self.format.subscribe()
    }
}

impl Drop for RtpStream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bumps `format` whenever the path's description changes from one picture format to
/// another (size or profile; not when it first appears or while the source is down).
async fn watch_format(media: Arc<MediaPath>, format: tokio::sync::watch::Sender<u64>) {
    let mut rx = media.watch_info();
    let mut last = rx.borrow_and_update().clone();
    while rx.changed().await.is_ok() {
        let now = rx.borrow_and_update().clone();
        if let (Some(old), Some(new)) = (&last, &now) {
            if !old.same_picture_format(new) {
                log::info!(
                    "path {}: picture format changed ({}x{} -> {}x{}); viewers must reconnect",
                    media.name,
                    old.width,
                    old.height,
                    new.width,
                    new.height
                );
                format.send_modify(|g| *g += 1);
            }
        }
        if now.is_some() {
            last = now;
        }
    }
}

/// A counted reader of a stream; the count drops with it.
pub struct ReaderSlot(Arc<RtpStream>);

impl ReaderSlot {
    pub fn stream(&self) -> &Arc<RtpStream> {
        &self.0
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::StreamInfo;
    use bytes::Bytes;

    fn info(w: u32) -> StreamInfo {
        StreamInfo {
            width: w,
            height: 240,
            fps: 15,
            sps: Bytes::from_static(&[0x67, 0x42, 0xC0, 0x1E]),
            pps: Bytes::from_static(&[0x68, 0xCE]),
        }
    }

    #[tokio::test]
    async fn only_a_real_format_change_bumps_the_generation() {
        let media = MediaPath::new("cam");
        let stream = RtpStream::start(media.clone(), 1400, 0);
        let mut rx = stream.watch_format();
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        media.set_info(info(320));
        settle().await;
        media.set_info(info(320));
        media.clear_info(); // source down
        settle().await;
        media.set_info(info(320)); // back with the same format
        settle().await;
        assert!(
            !rx.has_changed().unwrap_or(true),
            "no change for the same format"
        );
        media.set_info(info(640));
        settle().await;
        assert!(
            rx.has_changed().unwrap_or(false),
            "a new size must bump the generation"
        );
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
