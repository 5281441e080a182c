//! One path as RTSP serves it: every frame packetised once, shared by every client.
//!
//! Owns: the per-path packetiser task (encoded hub -> RTP hub), the path's SSRC, sequence and
//! timestamp origin, and the sender-report clock mapping. Clients read `RtpFrame`s from the
//! RTP hub and write slices of the one shared buffer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::hub::{Hub, MediaPath, DEFAULT_HUB_CAPACITY};
use crate::media::CLOCK_RATE;
use crate::rtsp::rtp::{Packetizer, RtpFrame};

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
    /// Readers allowed at once; 0 means no limit.
    pub max_readers: usize,
    readers: AtomicUsize,
    clock: Mutex<Option<ClockPoint>>,
    task: tokio::task::JoinHandle<()>,
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
                    }
                    task_hub.publish(Arc::new(rtp));
                }
                task_hub.close();
            });
            RtpStream {
                media,
                hub,
                ssrc,
                max_readers,
                readers: AtomicUsize::new(0),
                clock: Mutex::new(None),
                task,
            }
        })
    }

    /// Counts a new reader unless the path's limit is reached.
    pub fn try_add_reader(self: &Arc<Self>) -> Option<ReaderSlot> {
        let mut cur = self.readers.load(Ordering::Relaxed);
        loop {
            if self.max_readers != 0 && cur >= self.max_readers {
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

    pub fn reader_count(&self) -> usize {
        self.readers.load(Ordering::Relaxed)
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
        self.hub.close();
    }
}

impl Drop for RtpStream {
    fn drop(&mut self) {
        self.stop();
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
