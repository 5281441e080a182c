//! A path fed by an RTSP publisher (`"source": "publisher"`).
//!
//! Owns: the path's publisher slot (one publisher at a time: a second is refused as `path
//! busy`, or replaces the first where the path sets `override_publisher`), the media time
//! of what it publishes (continuing after the previous publisher's, so viewers who stayed
//! connected see time go on), decode times for B-frames (`h264::DtsEstimator`, with the
//! reorder depth the SPS gives), the stream description (SPS/PPS from the SDP or in band,
//! put in front of IDRs that lack them), and the path's state and counters for status.
//! Does not own: RTSP or RTP (`rtsp::record` hands it whole access units), the path's hub
//! (the supervisor creates it and keeps it when publishers come and go).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::h264::{self, DtsEstimator, NAL_PPS, NAL_SPS};
use crate::hub::MediaPath;
use crate::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use crate::source::with_parameter_sets;
use crate::status::{SourceProbe, SourceSample, SourceState};

/// What status shows while nobody publishes.
pub const WAITING: &str = "waiting for a publisher";
/// Frame rate assumed until the stream shows its own (only for the first few frames'
/// decode times and the fMP4 default duration).
const ASSUMED_FPS: u32 = 30;

/// Counters and state of a publisher path, readable from any thread.
#[derive(Debug, Default)]
pub struct PublisherStats {
    frames: AtomicU64,
    bytes: AtomicU64,
    idr_frames: AtomicU64,
    /// Access units that could not be used (an IDR without SPS/PPS, a bad SPS).
    bad_frames: AtomicU64,
    /// Publishers that came (the first, and each one after).
    sessions: AtomicU64,
    streaming: AtomicBool,
    state: Mutex<Option<SourceState>>,
    last_error: Mutex<Option<String>>,
    /// `publisher 192.0.2.7:50000` while one publishes.
    route: Mutex<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PublisherStats {
    fn set_state(&self, s: SourceState) {
        self.streaming
            .store(s == SourceState::Streaming, Ordering::Relaxed);
        *lock(&self.state) = Some(s);
    }

    /// Records why a publisher's frames were refused (shown in status as `last_error`).
    pub fn set_error(&self, e: impl Into<String>) {
        *lock(&self.last_error) = Some(e.into());
    }

    pub fn state(&self) -> SourceState {
        lock(&self.state)
            .clone()
            .unwrap_or(SourceState::Idle(WAITING.to_string()))
    }
}

impl SourceProbe for PublisherStats {
    fn sample(&self) -> SourceSample {
        SourceSample {
            state: self.state(),
            streaming: self.streaming.load(Ordering::Relaxed),
            route: lock(&self.route).clone(),
            last_error: lock(&self.last_error).clone(),
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            idr_frames: self.idr_frames.load(Ordering::Relaxed),
            bad_frames: self.bad_frames.load(Ordering::Relaxed),
            restarts: self.sessions.load(Ordering::Relaxed).saturating_sub(1),
            ..SourceSample::default()
        }
    }
}

/// Who publishes now.
struct Current {
    id: u64,
    peer: SocketAddr,
    kick: Arc<Notify>,
}

/// Where the last publisher left media time, so the next one continues after it.
#[derive(Clone, Copy)]
struct Resume {
    /// Presentation time just after its last frame.
    end: i64,
    at: Instant,
}

struct SlotState {
    current: Option<Current>,
    next_id: u64,
    resume: Option<Resume>,
}

/// The publisher slot of one path.
pub struct PublisherSlot {
    media: Arc<MediaPath>,
    stats: Arc<PublisherStats>,
    state: Mutex<SlotState>,
    override_publisher: AtomicBool,
}

/// Why a publisher was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// Someone else publishes and the path does not let a newcomer take over.
    Busy { by: SocketAddr },
    /// The path is being removed.
    Closed,
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::Busy { by } => write!(f, "path busy: {by} is publishing"),
            ClaimError::Closed => f.write_str("the path is being removed"),
        }
    }
}

impl PublisherSlot {
    pub fn new(media: Arc<MediaPath>, override_publisher: bool) -> Arc<PublisherSlot> {
        let stats = Arc::new(PublisherStats::default());
        stats.set_state(SourceState::Idle(WAITING.to_string()));
        Arc::new(PublisherSlot {
            media,
            stats,
            state: Mutex::new(SlotState {
                current: None,
                next_id: 1,
                resume: None,
            }),
            override_publisher: AtomicBool::new(override_publisher),
        })
    }

    pub fn stats(&self) -> &Arc<PublisherStats> {
        &self.stats
    }

    pub fn path_name(&self) -> &str {
        &self.media.name
    }

    /// A config change of `override_publisher` applies to the next publisher that comes.
    pub fn set_override(&self, on: bool) {
        self.override_publisher.store(on, Ordering::Relaxed);
    }

    /// Lets `peer` publish, or says why not.
    pub fn claim(self: &Arc<Self>, peer: SocketAddr) -> Result<Publishing, ClaimError> {
        let mut st = lock(&self.state);
        if st.next_id == 0 {
            return Err(ClaimError::Closed);
        }
        if let Some(cur) = &st.current {
            if !self.override_publisher.load(Ordering::Relaxed) {
                return Err(ClaimError::Busy { by: cur.peer });
            }
            log::info!(
                "path {}: {peer} replaces publisher {} (override_publisher)",
                self.media.name,
                cur.peer
            );
            cur.kick.notify_one();
        }
        let id = st.next_id;
        st.next_id += 1;
        let kick = Arc::new(Notify::new());
        st.current = Some(Current {
            id,
            peer,
            kick: kick.clone(),
        });
        let resume = st.resume;
        drop(st);
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        *lock(&self.stats.route) = format!("publisher {peer}");
        self.stats.set_state(SourceState::Starting);
        Ok(Publishing {
            slot: self.clone(),
            id,
            peer,
            kick,
            sps: None,
            pps: None,
            clock: None,
            resume,
            dts: None,
            last_pts: None,
            published: false,
            fps: ASSUMED_FPS,
        })
    }

    /// The path is going away: the publisher (if any) is told to leave, nobody new comes.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.next_id = 0;
        if let Some(cur) = st.current.take() {
            cur.kick.notify_one();
        }
    }
}

/// The RTP clock of one publisher, unwrapped: B-frames step it back and forth.
struct RtpClock {
    first: i64,
    last_raw: u32,
    last: i64,
}

impl RtpClock {
    fn unwrap(&mut self, ts: u32) -> i64 {
        self.last += i64::from(ts.wrapping_sub(self.last_raw) as i32);
        self.last_raw = ts;
        self.last - self.first
    }
}

/// One publisher's claim on a path; the slot is free again when it is dropped.
pub struct Publishing {
    slot: Arc<PublisherSlot>,
    id: u64,
    peer: SocketAddr,
    kick: Arc<Notify>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    clock: Option<RtpClock>,
    resume: Option<Resume>,
    dts: Option<DtsEstimator>,
    /// The latest presentation time published (for the next publisher's resume point).
    last_pts: Option<i64>,
    published: bool,
    fps: u32,
}

/// Why an access unit was not published (counted; the stream goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An IDR arrived before any SPS/PPS (neither in the SDP nor in band).
    NoParameterSets,
    /// The SPS cannot be read.
    BadSps(String),
}

impl Publishing {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// SPS and PPS from the SDP (`sprop-parameter-sets`); in-band ones replace them.
    pub fn set_parameter_sets(&mut self, sps: Bytes, pps: Bytes) {
        self.sps = Some(sps);
        self.pps = Some(pps);
    }

    /// Resolves when another publisher took the path over, or the path is being removed.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// Publishes one whole access unit (Annex-B) whose RTP timestamp is `timestamp`.
    pub fn publish(&mut self, timestamp: u32, data: Vec<u8>, is_idr: bool) -> Result<(), Refused> {
        let wall = SystemTime::now();
        let data = Bytes::from(data);
        for r in h264::split_annexb(&data) {
            let nal = data.slice(r);
            match h264::nal_type(&nal) {
                Some(NAL_SPS) => self.sps = Some(nal),
                Some(NAL_PPS) => self.pps = Some(nal),
                _ => {}
            }
        }
        let stats = self.slot.stats.clone();
        let (sps, pps) = match (&self.sps, &self.pps) {
            (Some(s), Some(p)) => (s.clone(), p.clone()),
            _ if is_idr => {
                stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                stats.set_error("an IDR came before any SPS/PPS (none in the SDP either)");
                return Err(Refused::NoParameterSets);
            }
            // Nothing decodes before the first IDR anyway.
            _ => return Ok(()),
        };
        let clock = self.clock.get_or_insert(RtpClock {
            first: i64::from(timestamp),
            last_raw: timestamp,
            last: i64::from(timestamp),
        });
        let offset = match self.resume {
            // Continue after the previous publisher, by the time that really passed.
            Some(r) => {
                let gap = (r.at.elapsed().as_micros() as i64) * i64::from(CLOCK_RATE) / 1_000_000;
                r.end + gap.max(i64::from(CLOCK_RATE) / i64::from(self.fps.max(1)))
            }
            None => 0,
        };
        let pts = clock.unwrap(timestamp) + offset;
        if is_idr {
            let parsed = match h264::parse_sps(&sps) {
                Ok(p) => p,
                Err(e) => {
                    stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    stats.set_error(format!("the publisher's SPS cannot be read: {e}"));
                    return Err(Refused::BadSps(e.to_string()));
                }
            };
            if self.dts.is_none() {
                let reorder = parsed.reorder_frames().unwrap_or(0);
                let step = i64::from(CLOCK_RATE) / i64::from(self.fps.max(1));
                self.dts = Some(DtsEstimator::new(reorder, step));
            }
            self.slot.media.set_info(StreamInfo {
                width: parsed.width,
                height: parsed.height,
                fps: self.fps,
                sps: sps.clone(),
                pps: pps.clone(),
            });
        }
        let Some(dts_estimator) = self.dts.as_mut() else {
            // Frames before the first IDR: nothing could decode them.
            return Ok(());
        };
        let dts = dts_estimator.next(pts);
        let frame = EncodedFrame::from_annexb(data, pts, wall).with_dts(dts);
        let frame = with_parameter_sets(frame, &sps, &pps);
        stats.frames.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        if frame.is_idr {
            stats.idr_frames.fetch_add(1, Ordering::Relaxed);
        }
        self.last_pts = Some(self.last_pts.map_or(pts, |l| l.max(pts)));
        if !self.published {
            self.published = true;
            stats.set_state(SourceState::Streaming);
            log::info!("path {}: {} publishing", self.slot.media.name, self.peer);
        }
        self.slot.media.frames.publish(Arc::new(frame));
        Ok(())
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        let mut st = lock(&self.slot.state);
        if let Some(end) = self.last_pts {
            st.resume = Some(Resume {
                end: end + i64::from(CLOCK_RATE) / i64::from(self.fps.max(1)),
                at: Instant::now(),
            });
        }
        let mine = st.current.as_ref().is_some_and(|c| c.id == self.id);
        if mine {
            st.current = None;
            drop(st);
            self.slot
                .stats
                .set_state(SourceState::Idle(WAITING.to_string()));
            lock(&self.slot.stats.route).clear();
            log::info!(
                "path {}: publisher {} left; {WAITING}",
                self.slot.media.name,
                self.peer
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::TryNext;

    const SPS: [u8; 25] = [
        0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x24, 0x80,
    ];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    fn au(idr: bool, with_sets: bool) -> Vec<u8> {
        let mut v = Vec::new();
        if with_sets {
            for n in [&SPS[..], &PPS[..]] {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(n);
            }
        }
        v.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }, 0x88, 0x84]);
        v
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn drain(r: &mut crate::hub::HubReader<EncodedFrame>) -> Vec<Arc<EncodedFrame>> {
        let mut out = Vec::new();
        while let TryNext::Item(f) = r.try_next() {
            out.push(f);
        }
        out
    }

    #[test]
    fn one_publisher_at_a_time_unless_the_path_lets_a_newcomer_take_over() {
        let slot = PublisherSlot::new(MediaPath::new("door"), false);
        let first = slot.claim(peer(1)).unwrap();
        assert_eq!(
            slot.claim(peer(2)).err(),
            Some(ClaimError::Busy { by: peer(1) })
        );
        slot.set_override(true);
        let second = slot.claim(peer(2)).unwrap();
        // The first one was told to leave; its leaving does not free the second's slot.
        drop(first);
        assert_eq!(
            slot.claim(peer(3)).map(|p| p.peer()).ok(),
            Some(peer(3)),
            "override: the third replaces the second"
        );
        drop(second);
        slot.close();
        assert_eq!(slot.claim(peer(4)).err(), Some(ClaimError::Closed));
    }

    #[test]
    fn frames_get_media_time_sets_and_the_description() {
        let media = MediaPath::new("door");
        let slot = PublisherSlot::new(media.clone(), false);
        let mut reader = media.frames.subscribe();
        let mut p = slot.claim(peer(1)).unwrap();
        assert_eq!(slot.stats().state(), SourceState::Starting);
        // Before any SPS/PPS: an IDR is refused, a P frame silently ignored.
        assert_eq!(
            p.publish(1000, au(true, false), true),
            Err(Refused::NoParameterSets)
        );
        p.set_parameter_sets(Bytes::from_static(&SPS), Bytes::from_static(&PPS));
        p.publish(4_294_965_000, au(true, false), true).unwrap();
        p.publish(704, au(false, false), false).unwrap(); // the RTP clock wrapped
        let frames = drain(&mut reader);
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].pts_90k, frames[1].pts_90k), (0, 3000));
        let types: Vec<u8> = frames[0].nal_units().filter_map(h264::nal_type).collect();
        assert_eq!(
            types,
            [NAL_SPS, NAL_PPS, h264::NAL_IDR],
            "sets put in front"
        );
        assert_eq!(media.info().map(|i| (i.width, i.height)), Some((1280, 720)));
        assert_eq!(slot.stats().state(), SourceState::Streaming);
        drop(p);
        assert_eq!(slot.stats().state(), SourceState::Idle(WAITING.into()));
        // The next publisher continues media time after the last frame.
        let mut p = slot.claim(peer(2)).unwrap();
        p.publish(500, au(true, true), true).unwrap();
        let next = drain(&mut reader);
        assert!(next[0].pts_90k >= 6000, "{}", next[0].pts_90k);
        assert_eq!(slot.stats().sample().restarts, 1);
    }
}
