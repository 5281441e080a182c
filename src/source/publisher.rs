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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::hub::MediaPath;
use crate::source::intake::{Intake, IntakeStats, Refused, Resume};
use crate::status::SourceState;

/// What status shows while nobody publishes.
pub const WAITING: &str = "waiting for a publisher";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who publishes now.
struct Current {
    id: u64,
    peer: SocketAddr,
    kick: Arc<Notify>,
}

struct SlotState {
    current: Option<Current>,
    /// 0 once the slot is closed.
    next_id: u64,
    resume: Option<Resume>,
}

/// The publisher slot of one path.
pub struct PublisherSlot {
    media: Arc<MediaPath>,
    stats: Arc<IntakeStats>,
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
        Arc::new(PublisherSlot {
            media,
            stats: IntakeStats::new(SourceState::Idle(WAITING.to_string())),
            state: Mutex::new(SlotState {
                current: None,
                next_id: 1,
                resume: None,
            }),
            override_publisher: AtomicBool::new(override_publisher),
        })
    }

    pub fn stats(&self) -> &Arc<IntakeStats> {
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
        self.stats.session_started();
        self.stats.set_route(format!("publisher {peer}"));
        self.stats.set_state(SourceState::Starting);
        Ok(Publishing {
            slot: self.clone(),
            id,
            peer,
            kick,
            clock: None,
            intake: Intake::new(self.media.clone(), self.stats.clone(), resume),
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
    clock: Option<RtpClock>,
    intake: Intake,
}

impl Publishing {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// SPS and PPS from the SDP (`sprop-parameter-sets`); in-band ones replace them.
    pub fn set_parameter_sets(&mut self, sps: Bytes, pps: Bytes) {
        self.intake.set_parameter_sets(sps, pps);
    }

    /// Resolves when another publisher took the path over, or the path is being removed.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// Publishes one whole access unit (Annex-B) whose RTP timestamp is `timestamp`.
    pub fn publish(&mut self, timestamp: u32, data: Vec<u8>, _is_idr: bool) -> Result<(), Refused> {
        let clock = self.clock.get_or_insert(RtpClock {
            first: i64::from(timestamp),
            last_raw: timestamp,
            last: i64::from(timestamp),
        });
        let pts = clock.unwrap(timestamp);
        let was = self.intake.published();
        let r = self.intake.publish(pts, None, Bytes::from(data));
        if !was && self.intake.published() {
            log::info!("path {}: {} publishing", self.slot.media.name, self.peer);
        }
        r
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        let mut st = lock(&self.slot.state);
        if let Some(r) = self.intake.resume_point() {
            st.resume = Some(r);
        }
        let mine = st.current.as_ref().is_some_and(|c| c.id == self.id);
        if mine {
            st.current = None;
            drop(st);
            let stats = self.slot.stats();
            stats.set_state(SourceState::Idle(WAITING.to_string()));
            stats.set_route(String::new());
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

    use crate::source::intake::tests::au;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
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
    fn rtp_time_unwraps_and_the_slot_says_who_publishes() {
        let media = MediaPath::new("door");
        let slot = PublisherSlot::new(media.clone(), false);
        let mut reader = media.frames.subscribe();
        let mut p = slot.claim(peer(1)).unwrap();
        assert_eq!(slot.stats().state(), SourceState::Starting);
        p.publish(4_294_965_000, au(true, true).to_vec(), true)
            .unwrap();
        p.publish(704, au(false, false).to_vec(), false).unwrap(); // the RTP clock wrapped
        let mut pts = Vec::new();
        while let TryNext::Item(f) = reader.try_next() {
            pts.push(f.pts_90k);
        }
        assert_eq!(pts, [0, 3000]);
        assert_eq!(slot.stats().state(), SourceState::Streaming);
        drop(p);
        assert_eq!(slot.stats().state(), SourceState::Idle(WAITING.into()));
        let p = slot.claim(peer(2)).unwrap();
        drop(p);
        use crate::status::SourceProbe;
        assert_eq!(slot.stats().sample().restarts, 1);
    }
}
