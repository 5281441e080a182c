//! Where encoded H.264 from outside enters a path: a publisher's, a relayed camera's, a
//! file's access units become the hub's frames.
//!
//! Owns: `Intake` (one session of one source: SPS/PPS tracking and putting them in front of
//! IDRs that lack them, the stream description, media time that continues after the
//! previous session's by the time that really passed, decode times for B-frames when the
//! source gives none) and `IntakeStats`, the state and counters status reads for such a
//! path. Does not own: where the access units come from (`publisher`, `relay`, `file`),
//! the hub (the supervisor creates it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::h264::{self, DtsEstimator, NAL_PPS, NAL_SPS};
use crate::hub::MediaPath;
use crate::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use crate::source::with_parameter_sets;
use crate::status::{SourceProbe, SourceSample, SourceState};

/// Frame rate assumed until the stream shows its own (the first few frames' decode times,
/// the fMP4 default duration).
pub const ASSUMED_FPS: u32 = 30;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters and state of a path fed by encoded H.264, readable from any thread.
#[derive(Debug, Default)]
pub struct IntakeStats {
    frames: AtomicU64,
    bytes: AtomicU64,
    idr_frames: AtomicU64,
    /// Access units that could not be used (an IDR without SPS/PPS, a bad SPS).
    bad_frames: AtomicU64,
    /// Sessions (publishers that came, connections to a camera) after the first.
    sessions: AtomicU64,
    streaming: AtomicBool,
    state: Mutex<Option<SourceState>>,
    last_error: Mutex<Option<String>>,
    /// `publisher 192.0.2.7:50000`, `rtsp relay over TCP`, `file, looped`.
    route: Mutex<String>,
}

impl IntakeStats {
    pub fn new(state: SourceState) -> Arc<IntakeStats> {
        let s = Arc::new(IntakeStats::default());
        s.set_state(state);
        s
    }

    pub fn set_state(&self, s: SourceState) {
        self.streaming
            .store(s == SourceState::Streaming, Ordering::Relaxed);
        *lock(&self.state) = Some(s);
    }

    /// Records the latest error (kept after recovery, as `last_error`).
    pub fn set_error(&self, e: impl Into<String>) {
        *lock(&self.last_error) = Some(e.into());
    }

    pub fn set_route(&self, route: impl Into<String>) {
        *lock(&self.route) = route.into();
    }

    /// A new session begins (counted in `restarts` from the second on).
    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn state(&self) -> SourceState {
        lock(&self.state).clone().unwrap_or_default()
    }
}

impl SourceProbe for IntakeStats {
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

/// Where a session left media time, so the next one continues after it.
#[derive(Clone, Copy, Debug)]
pub struct Resume {
    /// Presentation time just after its last frame.
    end: i64,
    at: Instant,
}

/// Why an access unit was not published (counted; the stream goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An IDR arrived before any SPS/PPS (neither out of band nor in band).
    NoParameterSets,
    /// The SPS cannot be read.
    BadSps(String),
}

/// One session of an encoded source into a path.
pub struct Intake {
    media: Arc<MediaPath>,
    stats: Arc<IntakeStats>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// Added to the session's own times: continues after the previous session.
    offset: Option<i64>,
    resume: Option<Resume>,
    dts: Option<DtsEstimator>,
    last_pts: Option<i64>,
    published: bool,
    fps: u32,
}

impl Intake {
    /// A session into `media`, continuing after `resume` (the previous session's end).
    pub fn new(media: Arc<MediaPath>, stats: Arc<IntakeStats>, resume: Option<Resume>) -> Intake {
        Intake {
            media,
            stats,
            sps: None,
            pps: None,
            offset: None,
            resume,
            dts: None,
            last_pts: None,
            published: false,
            fps: ASSUMED_FPS,
        }
    }

    pub fn stats(&self) -> &Arc<IntakeStats> {
        &self.stats
    }

    /// SPS and PPS known out of band (an SDP's `sprop-parameter-sets`, a file's `avcC`);
    /// in-band ones replace them.
    pub fn set_parameter_sets(&mut self, sps: Bytes, pps: Bytes) {
        self.sps = Some(sps);
        self.pps = Some(pps);
    }

    /// The frame rate, when the source knows it (an SDP, a file); else `ASSUMED_FPS`.
    pub fn set_fps(&mut self, fps: u32) {
        self.fps = fps.clamp(1, 240);
    }

    /// Where this session leaves media time (for the next session of the same path).
    pub fn resume_point(&self) -> Option<Resume> {
        self.last_pts
            .map(|end| Resume {
                end: end + i64::from(CLOCK_RATE) / i64::from(self.fps.max(1)),
                at: Instant::now(),
            })
            .or(self.resume)
    }

    /// Publishes one whole access unit (Annex-B). `pts`: its presentation time in 90 kHz
    /// ticks from the session's own origin; `dts`: its decode time when the source knows it
    /// (a file), else it is estimated (RTP carries none).
    pub fn publish(&mut self, pts: i64, dts: Option<i64>, data: Bytes) -> Result<(), Refused> {
        let wall = SystemTime::now();
        for r in h264::split_annexb(&data) {
            let nal = data.slice(r);
            match h264::nal_type(&nal) {
                Some(NAL_SPS) => self.sps = Some(nal),
                Some(NAL_PPS) => self.pps = Some(nal),
                _ => {}
            }
        }
        let is_idr = h264::split_annexb(&data)
            .into_iter()
            .any(|r| h264::nal_type(&data[r]) == Some(h264::NAL_IDR));
        let (sps, pps) = match (&self.sps, &self.pps) {
            (Some(s), Some(p)) => (s.clone(), p.clone()),
            _ if is_idr => {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .set_error("an IDR came before any SPS/PPS (none out of band either)");
                return Err(Refused::NoParameterSets);
            }
            // Nothing decodes before the first IDR anyway.
            _ => return Ok(()),
        };
        if is_idr {
            let parsed = match h264::parse_sps(&sps) {
                Ok(p) => p,
                Err(e) => {
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    self.stats.set_error(format!("the SPS cannot be read: {e}"));
                    return Err(Refused::BadSps(e.to_string()));
                }
            };
            if self.dts.is_none() {
                let reorder = parsed.reorder_frames().unwrap_or(0);
                let step = i64::from(CLOCK_RATE) / i64::from(self.fps.max(1));
                self.dts = Some(DtsEstimator::new(reorder, step));
            }
            self.media.set_info(StreamInfo {
                width: parsed.width,
                height: parsed.height,
                fps: self.fps,
                sps: sps.clone(),
                pps: pps.clone(),
            });
        }
        let Some(estimator) = self.dts.as_mut() else {
            // Frames before the first IDR: nothing could decode them.
            return Ok(());
        };
        // The first published frame fixes the session's place in the path's media time.
        let offset = *self.offset.get_or_insert_with(|| match self.resume {
            Some(r) => {
                let gap = (r.at.elapsed().as_micros() as i64) * i64::from(CLOCK_RATE) / 1_000_000;
                let min = i64::from(CLOCK_RATE) / i64::from(self.fps.max(1));
                r.end + gap.max(min) - dts.unwrap_or(pts).min(pts)
            }
            None => -dts.unwrap_or(pts).min(pts),
        });
        let pts = pts + offset;
        let dts = match dts {
            Some(d) => d + offset,
            None => estimator.next(pts),
        };
        let frame = EncodedFrame::from_annexb(data, pts, wall).with_dts(dts);
        let frame = with_parameter_sets(frame, &sps, &pps);
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        if frame.is_idr {
            self.stats.idr_frames.fetch_add(1, Ordering::Relaxed);
        }
        self.last_pts = Some(self.last_pts.map_or(pts, |l| l.max(pts)));
        if !self.published {
            self.published = true;
            self.stats.set_state(SourceState::Streaming);
        }
        self.media.frames.publish(Arc::new(frame));
        Ok(())
    }

    /// True once a frame went out.
    pub fn published(&self) -> bool {
        self.published
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hub::TryNext;

    pub(crate) const SPS: [u8; 25] = [
        0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x24, 0x80,
    ];
    pub(crate) const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    pub(crate) fn au(idr: bool, with_sets: bool) -> Bytes {
        let mut v = Vec::new();
        if with_sets {
            for n in [&SPS[..], &PPS[..]] {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(n);
            }
        }
        v.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }, 0x88, 0x84]);
        Bytes::from(v)
    }

    fn drain(r: &mut crate::hub::HubReader<EncodedFrame>) -> Vec<Arc<EncodedFrame>> {
        let mut out = Vec::new();
        while let TryNext::Item(f) = r.try_next() {
            out.push(f);
        }
        out
    }

    #[test]
    fn frames_get_sets_a_description_and_time_that_continues_across_sessions() {
        let media = MediaPath::new("door");
        let stats = IntakeStats::new(SourceState::Starting);
        let mut reader = media.frames.subscribe();
        let mut i = Intake::new(media.clone(), stats.clone(), None);
        assert_eq!(
            i.publish(0, None, au(true, false)),
            Err(Refused::NoParameterSets)
        );
        i.set_parameter_sets(Bytes::from_static(&SPS), Bytes::from_static(&PPS));
        i.publish(9000, None, au(true, false)).unwrap();
        i.publish(12_000, None, au(false, false)).unwrap();
        let frames = drain(&mut reader);
        assert_eq!(
            frames.iter().map(|f| f.pts_90k).collect::<Vec<_>>(),
            [0, 3000],
            "the first frame is the path's origin"
        );
        let types: Vec<u8> = frames[0].nal_units().filter_map(h264::nal_type).collect();
        assert_eq!(
            types,
            [NAL_SPS, NAL_PPS, h264::NAL_IDR],
            "sets put in front"
        );
        assert_eq!(media.info().map(|i| (i.width, i.height)), Some((1280, 720)));
        assert_eq!(stats.state(), SourceState::Streaming);
        // The next session continues after the last frame, whatever its own times.
        let mut next = Intake::new(media.clone(), stats.clone(), i.resume_point());
        next.publish(777_000, None, au(true, true)).unwrap();
        let f = drain(&mut reader);
        assert!(f[0].pts_90k >= 6000, "{}", f[0].pts_90k);
    }

    #[test]
    fn known_decode_times_are_kept() {
        let media = MediaPath::new("file");
        let mut reader = media.frames.subscribe();
        let mut i = Intake::new(media, IntakeStats::new(SourceState::Starting), None);
        i.publish(6000, Some(0), au(true, true)).unwrap();
        i.publish(15_000, Some(3000), au(false, false)).unwrap();
        let f = drain(&mut reader);
        assert_eq!((f[0].pts_90k, f[0].dts_90k), (6000, 0));
        assert_eq!((f[1].pts_90k, f[1].dts_90k), (15_000, 3000));
    }
}
