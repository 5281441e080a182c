//! Snapshots: a path's latest picture as a JPEG, made only when someone asks, cached.
//!
//! Owns: finding a path's latest picture (the raw picture the encoder last took, for
//! sources Vigint encodes itself: `MediaPath::picture`; else the group of pictures since the
//! last key frame, `Hub::group`, decoded with `encode::H264Decoder`), scaling it
//! (`scale.rs`, pure), writing the JPEG (`jpeg.rs`, the only file naming jpeg-encoder) and
//! the cache (`Cache`: one answer per path and width for up to `FRESH_FOR`; askers who come
//! while one is being made wait for it instead of making their own).
//! Does not own: which paths exist or whether a source streams (the supervisor checks that
//! before asking), HTTP (`http` reaches this through `control::Control::snapshot`), nor the
//! hot path: per frame the pipeline only swaps a buffer into `MediaPath::picture`.

pub mod jpeg;
pub mod scale;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::control::{Jpeg, SnapshotError};
use crate::encode::H264Decoder;
use crate::hub::MediaPath;
use scale::Picture;

/// How long one answer is served to every asker of the same path and width: the cache
/// never serves a picture taken longer ago than this.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// A raw picture older than this is not the path's latest (its source moved to H.264 that
/// arrives encoded, or stopped): the group of pictures is used instead.
const RAW_STALE: Duration = Duration::from_secs(2);

/// The most time spent decoding the frames after a key frame: past it the picture decoded
/// so far is used (a long group on a slow board).
const DECODE_BUDGET: Duration = Duration::from_millis(300);

/// How many (path, width) answers are kept at most; more askers are answered uncached.
const MAX_KEYS: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write under these locks is a plain assignment: a poisoned lock is consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum SlotState<V> {
    Empty,
    /// Someone is making the value; others wait on the slot's condition variable.
    Making,
    /// The value and when its making started.
    Ready(V, Instant),
}

struct Slot<V> {
    state: Mutex<SlotState<V>>,
    done: Condvar,
}

impl<V> Slot<V> {
    fn reusable(&self, now: Instant, fresh_for: Duration) -> bool {
        match &*lock(&self.state) {
            SlotState::Making => true,
            SlotState::Ready(_, at) => now.duration_since(*at) < fresh_for,
            SlotState::Empty => false,
        }
    }
}

/// Puts a slot back to `Empty` (and wakes its waiters) if its maker never finished, e.g.
/// it panicked: nobody waits forever.
struct MakingGuard<'a, V> {
    slot: &'a Slot<V>,
    finished: bool,
}

impl<V> Drop for MakingGuard<'_, V> {
    fn drop(&mut self) {
        if !self.finished {
            *lock(&self.slot.state) = SlotState::Empty;
            self.slot.done.notify_all();
        }
    }
}

/// A cache of values made on demand and kept for `fresh_for`; concurrent askers of one key
/// share one making. Never holds its map lock while a value is made.
pub struct Cache<K, V> {
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
    fresh_for: Duration,
    max_keys: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    pub fn new(fresh_for: Duration, max_keys: usize) -> Self {
        Cache {
            slots: Mutex::new(HashMap::new()),
            fresh_for,
            max_keys,
        }
    }

    /// The value for `key`: a fresh one from the cache, the one being made (waiting for
    /// it), or a new one from `make`.
    pub fn get_or_make(&self, key: &K, make: impl FnOnce() -> V) -> V {
        let slot = {
            let mut slots = lock(&self.slots);
            if !slots.contains_key(key) && slots.len() >= self.max_keys {
                let now = Instant::now();
                slots.retain(|_, s| s.reusable(now, self.fresh_for));
                if slots.len() >= self.max_keys {
                    drop(slots);
                    return make();
                }
            }
            slots
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        state: Mutex::new(SlotState::Empty),
                        done: Condvar::new(),
                    })
                })
                .clone()
        };
        let mut state = lock(&slot.state);
        loop {
            match &*state {
                SlotState::Ready(v, at) if at.elapsed() < self.fresh_for => return v.clone(),
                SlotState::Making => {
                    state = slot.done.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                _ => break,
            }
        }
        *state = SlotState::Making;
        drop(state);
        let mut guard = MakingGuard {
            slot: &slot,
            finished: false,
        };
        let started = Instant::now();
        let v = make();
        *lock(&slot.state) = SlotState::Ready(v.clone(), started);
        guard.finished = true;
        slot.done.notify_all();
        v
    }

    /// Keys held (fresh, stale or being made).
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One made snapshot, shared by the askers of its second.
#[derive(Clone)]
struct Made {
    jpeg: Arc<Vec<u8>>,
    width: u32,
    height: u32,
    /// When the picture was taken (handed over by the encoder, or arrived encoded).
    taken: Instant,
}

/// The snapshots of every path: the cache and its counters.
pub struct Snapshots {
    cache: Cache<(String, Option<u32>), Result<Made, SnapshotError>>,
    made: AtomicU64,
    served: AtomicU64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            cache: Cache::new(FRESH_FOR, MAX_KEYS),
            made: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }
}

impl Snapshots {
    /// `media`'s latest picture as a JPEG `width` wide (see `scale::target_size`), from the
    /// cache when one was made for this path and width less than `FRESH_FOR` ago.
    pub fn take(&self, media: &MediaPath, width: Option<u32>) -> Result<Jpeg, SnapshotError> {
        let key = (media.name.clone(), width);
        let made = self.cache.get_or_make(&key, || {
            self.made.fetch_add(1, Ordering::Relaxed);
            let t0 = Instant::now();
            let made = make(media, width);
            if let Ok(m) = &made {
                log::debug!(
                    "path {}: snapshot {}x{} ({} bytes) made in {} ms",
                    media.name,
                    m.width,
                    m.height,
                    m.jpeg.len(),
                    t0.elapsed().as_millis()
                );
            }
            made
        })?;
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(Jpeg {
            bytes: made.jpeg,
            width: made.width,
            height: made.height,
            age_ms: made.taken.elapsed().as_millis() as u64,
        })
    }

    /// Snapshots made (decoded or converted, and encoded) so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Snapshots answered so far (made or from the cache).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// Makes one snapshot of `media` now.
fn make(media: &MediaPath, width: Option<u32>) -> Result<Made, SnapshotError> {
    if let Some((pic, at)) = media.picture.latest() {
        if at.elapsed() < RAW_STALE {
            let view = Picture::from_packed(pic.width, pic.height, &pic.data).ok_or_else(|| {
                SnapshotError::Encode(format!(
                    "the latest picture ({}x{}, {} bytes) is not a whole 4:2:0 picture",
                    pic.width,
                    pic.height,
                    pic.data.len()
                ))
            })?;
            return encode(&view, width, at);
        }
    }
    let group = media.frames.group();
    let Some(last) = group.last() else {
        return Err(SnapshotError::NoPicture(
            "no key frame has arrived yet; try again in a moment".into(),
        ));
    };
    // The picture's age, from when its frame arrived (wall time is all frames carry).
    let age = SystemTime::now()
        .duration_since(last.wall)
        .unwrap_or_default();
    let taken = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let units: Vec<&[u8]> = group.iter().map(|f| &f.data[..]).collect();
    let mut decoder = H264Decoder::new().map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
    let pic = decoder
        .decode_latest(&units, Instant::now() + DECODE_BUDGET)
        .map_err(|e| SnapshotError::Undecodable(format!("the key frame cannot be decoded: {e}")))?
        .ok_or_else(|| {
            SnapshotError::Undecodable("the decoder gave no picture for the key frame".into())
        })?;
    let view = Picture::from_packed(pic.width, pic.height, &pic.data)
        .ok_or_else(|| SnapshotError::Undecodable("the decoded picture is empty".into()))?;
    encode(&view, width, taken)
}

/// Scales (when asked smaller) and encodes.
fn encode(pic: &Picture<'_>, width: Option<u32>, taken: Instant) -> Result<Made, SnapshotError> {
    let (w, h) = scale::target_size(pic.width, pic.height, width);
    let scaled;
    let pic = if (w, h) == (pic.width, pic.height) {
        *pic
    } else {
        scaled = scale::scale_down(pic, w, h);
        Picture::from_packed(w, h, &scaled)
            .ok_or_else(|| SnapshotError::Encode("scaling gave a short picture".into()))?
    };
    let jpeg = jpeg::encode(&pic).map_err(SnapshotError::Encode)?;
    Ok(Made {
        jpeg: Arc::new(jpeg),
        width: w,
        height: h,
        taken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{EncodedFrame, RawFrame};
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_askers_share_one_making_and_it_expires() {
        let cache: Arc<Cache<&'static str, u32>> =
            Arc::new(Cache::new(Duration::from_millis(300), 8));
        let makes = Arc::new(AtomicUsize::new(0));
        let askers: Vec<_> = (0..8)
            .map(|_| {
                let (cache, makes) = (cache.clone(), makes.clone());
                std::thread::spawn(move || {
                    cache.get_or_make(&"cam", || {
                        std::thread::sleep(Duration::from_millis(100));
                        makes.fetch_add(1, Ordering::SeqCst) as u32 + 1
                    })
                })
            })
            .collect();
        let got: Vec<u32> = askers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(makes.load(Ordering::SeqCst), 1, "one making for all");
        assert!(got.iter().all(|&v| v == 1), "{got:?}");
        // Another key is made on its own.
        assert_eq!(cache.get_or_make(&"door", || 7), 7);
        // Fresh: served; after `fresh_for`: made again.
        assert_eq!(cache.get_or_make(&"cam", || 99), 1);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(cache.get_or_make(&"cam", || 2), 2);
    }

    #[test]
    fn a_maker_that_panics_leaves_no_one_waiting() {
        let cache: Arc<Cache<u8, u8>> = Arc::new(Cache::new(Duration::from_secs(10), 8));
        let c = cache.clone();
        let failed = std::thread::spawn(move || {
            c.get_or_make(&1, || panic!("maker failed"));
        })
        .join();
        assert!(failed.is_err());
        assert_eq!(cache.get_or_make(&1, || 5), 5, "made anew, no hang");
    }

    #[test]
    fn too_many_keys_are_answered_uncached() {
        let cache: Cache<u32, u32> = Cache::new(Duration::from_secs(10), 2);
        assert_eq!(cache.get_or_make(&1, || 1), 1);
        assert_eq!(cache.get_or_make(&2, || 2), 2);
        assert_eq!(cache.get_or_make(&3, || 3), 3);
        assert_eq!(
            cache.get_or_make(&3, || 4),
            4,
            "not kept: the cache is full"
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get_or_make(&1, || 9), 1);
    }

    /// An I420 test pattern picture `n` at `w` x `h`.
    fn pattern(w: u32, h: u32, n: u64) -> RawFrame {
        use crate::source::pattern::{FrameCode, TestPattern};
        let p = TestPattern::new(w, h, 25).expect("pattern");
        let mut data = Vec::new();
        let code = FrameCode {
            frame: n as u32,
            capture_ms: 1_700_000_000_000,
        };
        p.draw(n, code, &mut data);
        RawFrame {
            format: crate::media::PixelFormat::I420,
            width: w,
            height: h,
            data,
            pts_90k: 0,
            wall: SystemTime::now(),
            sequence: n,
        }
    }

    /// Luma of a decoded JPEG (from its RGB), limited range again, for the code reader.
    fn luma_of(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut dec = jpeg_decoder::Decoder::new(jpeg);
        let rgb = dec.decode().expect("JPEG decodes");
        let info = dec.info().expect("info");
        let y = rgb
            .chunks_exact(3)
            .map(|p| {
                let full = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                (16.0 + full * 219.0 / 255.0).round() as u8
            })
            .collect();
        (info.width as u32, info.height as u32, y)
    }

    #[test]
    fn a_raw_picture_becomes_a_jpeg_with_its_frame_code_and_scales() {
        let media = MediaPath::new("cam");
        assert!(matches!(
            Snapshots::default().take(&media, None),
            Err(SnapshotError::NoPicture(_))
        ));
        let mut f = pattern(640, 480, 1234);
        let mut data = std::mem::take(&mut f.data);
        media.picture.swap_in(&mut data, &f);
        let snaps = Snapshots::default();
        let full = snaps.take(&media, None).expect("snapshot");
        let (w, h, y) = luma_of(&full.bytes);
        assert_eq!((w, h, full.width, full.height), (640, 480, 640, 480));
        let code = crate::source::pattern::read_code(&y, 640, 640, 480).expect("frame code");
        assert_eq!(code.frame, 1234);
        let small = snaps.take(&media, Some(320)).expect("snapshot");
        assert_eq!((small.width, small.height), (320, 240));
        assert_eq!(luma_of(&small.bytes).0, 320);
        // Cached: the same bytes for the second asker, one making per width.
        let again = snaps.take(&media, None).expect("snapshot");
        assert!(Arc::ptr_eq(&again.bytes, &full.bytes));
        assert_eq!((snaps.made(), snaps.served()), (2, 3));
    }

    /// What one snapshot costs (printed; README's figures come from here): a raw picture to
    /// JPEG, and a group of 1 and 25 frames decoded then encoded.
    #[test]
    fn snapshot_cost() {
        use crate::encode::{Encoder, EncoderSettings, OpenH264Encoder};
        for (w, h, kbps) in [(640u32, 480u32, 1000u32), (1280, 720, 2000)] {
            let raw = pattern(w, h, 7);
            let pic = Picture::from_packed(w, h, &raw.data).expect("picture");
            let reps = 10;
            let t = Instant::now();
            for _ in 0..reps {
                encode(&pic, None, Instant::now()).expect("jpeg");
            }
            let jpeg_ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
            let t = Instant::now();
            for _ in 0..reps {
                encode(&pic, Some(320), Instant::now()).expect("jpeg");
            }
            let small_ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
            let mut enc = OpenH264Encoder::new(&EncoderSettings {
                width: w,
                height: h,
                fps: 25,
                bitrate_kbps: kbps,
                idr_interval_frames: 1000,
            })
            .expect("encoder");
            let aus: Vec<EncodedFrame> = (0..25)
                .map(|n| {
                    let f = pattern(w, h, n);
                    enc.encode(&f, false).expect("encode").expect("output")
                })
                .collect();
            let mut line = format!(
                "snapshot {w}x{h}: raw picture -> JPEG {jpeg_ms:.1} ms (to 320 wide {small_ms:.1} ms)"
            );
            for n in [1usize, 25] {
                let media = MediaPath::new("cost");
                for au in &aus[..n] {
                    media.frames.publish(Arc::new(au.clone()));
                }
                let t = Instant::now();
                for _ in 0..reps {
                    make(&media, None).expect("snapshot");
                }
                let ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
                line.push_str(&format!("; decode {n} frame(s) + JPEG {ms:.1} ms"));
            }
            println!("{line}");
        }
    }

    #[test]
    fn h264_groups_are_decoded_to_their_latest_picture() {
        use crate::encode::{Encoder, EncoderSettings, OpenH264Encoder};
        let (w, h) = (320, 240);
        let mut enc = OpenH264Encoder::new(&EncoderSettings {
            width: w,
            height: h,
            fps: 25,
            bitrate_kbps: 800,
            idr_interval_frames: 100,
        })
        .expect("encoder");
        let media = MediaPath::new("door");
        for n in 0..12 {
            let f = pattern(w, h, n);
            let au = enc.encode(&f, false).expect("encode").expect("output");
            media.frames.publish(Arc::new(au));
        }
        assert_eq!(media.frames.group().len(), 12, "the whole group is kept");
        let snap = Snapshots::default().take(&media, None).expect("snapshot");
        let (sw, sh, y) = luma_of(&snap.bytes);
        assert_eq!((sw, sh), (w, h));
        let code = crate::source::pattern::read_code(&y, w as usize, w, h).expect("code");
        assert_eq!(code.frame, 11, "the latest picture, not the key frame");
        // Garbage where a key frame should be: a clear error, not a panic.
        let bad = MediaPath::new("bad");
        let junk = EncodedFrame::from_annexb(
            bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xff, 0xff, 0x00, 0x13]),
            0,
            SystemTime::now(),
        );
        bad.frames.publish(Arc::new(junk));
        match Snapshots::default().take(&bad, None) {
            Err(SnapshotError::Undecodable(_)) => {}
            other => panic!("{:?}", other.map(|j| (j.width, j.height))),
        }
    }
}
