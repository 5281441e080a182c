//! Fan-out of one stream to many readers.
//!
//! Owns: the per-path `Hub` (publish never blocks, new readers start at a key frame, lagging
//! readers skip whole frames up to the next key frame and the skip is counted), the path's
//! key-frame policy (`KeyframeRequest`: requests coalesced and forced at most once per
//! `min_interval`; `fast_start` hands a new reader the group of pictures since the last key
//! frame), the group since the last key frame (`Hub::group`, also what snapshots decode)
//! and the `MediaPath` that pairs a hub of encoded frames with the stream description and
//! the latest raw picture (`LatestPicture`, for sources Vigint encodes itself), and the
//! tally of the path's live (browser) viewers (`ReaderTally`: the live view counts, the
//! status reads; it outlives each live stream, as a path's counters must).
//! Does not own: what readers do with frames (RTSP, recording) or where frames come from.
//!
//! A bounded ring (tokio `broadcast`) holds the last `capacity` items; a reader that falls
//! further behind is told so by the ring, and then waits for the next key frame, so that a
//! slow reader never receives part of a group of pictures and never slows the others.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::media::{EncodedFrame, LatestPicture, StreamInfo};

/// Anything a hub can carry: it must say whether a reader may start decoding at it.
pub trait HubItem: Send + Sync + 'static {
    fn is_key(&self) -> bool;
    /// Bytes it holds (bounds the group of pictures kept for fast starts).
    fn size(&self) -> usize;
}

impl HubItem for EncodedFrame {
    fn is_key(&self) -> bool {
        self.is_idr
    }
    fn size(&self) -> usize {
        self.data.len()
    }
}

/// How often a key frame may be forced for readers unless the path says otherwise.
pub const DEFAULT_FORCED_IDR_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The most a hub keeps of the group of pictures since its last key frame for fast starts;
/// a longer group is not kept (readers then wait for the next key frame).
pub const FAST_START_MAX_FRAMES: usize = 600;
pub const FAST_START_MAX_BYTES: usize = 8 << 20;

/// A path's key-frame policy, shared by its hubs. Readers that need a key frame ask
/// (`request`, coalesced); the encoder takes the request (`take`) at most once per
/// `min_interval` after the last key frame, forced or not: every forced IDR costs every
/// viewer and the recording its bits, and 50 viewers joining must not cost 50 of them. A
/// natural key frame answers every request pending. With `fast_start`, a new reader gets
/// the group of pictures since the last key frame at once instead of waiting for (or
/// forcing) the next one: for sources that cannot make one on request (publishers, relays,
/// files), at the price of starting up to one group behind live.
#[derive(Debug)]
pub struct KeyframeRequest {
    pending: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last key frame through a hub, plus 1; 0: none yet.
    last_key_ms: AtomicU64,
    min_interval_ms: AtomicU64,
    fast_start: AtomicBool,
    /// Requests granted (key frames forced).
    forced: AtomicU64,
}

impl Default for KeyframeRequest {
    fn default() -> Self {
        KeyframeRequest {
            pending: AtomicBool::new(false),
            epoch: Instant::now(),
            last_key_ms: AtomicU64::new(0),
            min_interval_ms: AtomicU64::new(DEFAULT_FORCED_IDR_MIN_INTERVAL.as_millis() as u64),
            fast_start: AtomicBool::new(false),
            forced: AtomicU64::new(0),
        }
    }
}

impl KeyframeRequest {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn request(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// True when the encoder should make the next frame a key frame: someone asked, and the
    /// last key frame is at least `min_interval` old. A request not yet due stays pending.
    pub fn take(&self) -> bool {
        self.take_at(self.now_ms())
    }

    fn take_at(&self, now_ms: u64) -> bool {
        if !self.pending.load(Ordering::Acquire) {
            return false;
        }
        let last = self.last_key_ms.load(Ordering::Acquire);
        let min = self.min_interval_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last - 1) < min {
            return false;
        }
        let granted = self.pending.swap(false, Ordering::AcqRel);
        if granted {
            self.forced.fetch_add(1, Ordering::Relaxed);
        }
        granted
    }

    /// A key frame went through a hub: it answers every request made so far.
    fn key_passed(&self) {
        self.key_passed_at(self.now_ms());
    }

    fn key_passed_at(&self, now_ms: u64) {
        self.last_key_ms.store(now_ms + 1, Ordering::Release);
        self.pending.store(false, Ordering::Release);
    }

    /// At most one forced key frame per `d` (zero: no limit).
    pub fn set_min_interval(&self, d: Duration) {
        self.min_interval_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn set_fast_start(&self, on: bool) {
        self.fast_start.store(on, Ordering::Relaxed);
    }

    pub fn fast_start(&self) -> bool {
        self.fast_start.load(Ordering::Relaxed)
    }

    /// Key frames forced for readers so far.
    pub fn forced(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }
}

struct HubState<T> {
    /// `None` once the hub is closed: readers then see the end of the stream.
    tx: Option<broadcast::Sender<Arc<T>>>,
    /// Everything since the most recent key frame (bounded): where a new reader starts
    /// when the path asks for fast starts (else only while the key frame is the latest
    /// item), and what a snapshot decodes.
    gop: Vec<Arc<T>>,
    gop_bytes: usize,
    /// The group outgrew its bounds: `gop` holds only its key frame (still a picture for
    /// snapshots, but no start for a reader).
    gop_cut: bool,
}

/// Fan-out of items to readers. `publish` never waits for a reader.
pub struct Hub<T> {
    state: Mutex<HubState<T>>,
    keyframe: Arc<KeyframeRequest>,
    published: AtomicU64,
    readers_dropped_frames: AtomicU64,
}

impl<T: HubItem> Hub<T> {
    /// `capacity` is how many items a reader may fall behind before it skips to a key frame.
    pub fn new(capacity: usize, keyframe: Arc<KeyframeRequest>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(2));
        Hub {
            state: Mutex::new(HubState {
                tx: Some(tx),
                gop: Vec::new(),
                gop_bytes: 0,
                gop_cut: false,
            }),
            keyframe,
            published: AtomicU64::new(0),
            readers_dropped_frames: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState<T>> {
        // A panic while holding this lock cannot leave the state inconsistent (two plain
        // field writes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands an item to every reader. Never blocks on readers.
    pub fn publish(&self, item: Arc<T>) {
        let mut st = self.lock();
        if item.is_key() {
            self.keyframe.key_passed();
            st.gop.clear();
            st.gop_bytes = 0;
            st.gop_cut = false;
            st.gop_bytes += item.size();
            st.gop.push(item.clone());
        } else if !st.gop.is_empty() && !st.gop_cut {
            // Kept only after a key frame, and only while the group is not too long; past
            // that only the key frame stays (one Arc: a snapshot can still show it).
            if st.gop.len() < FAST_START_MAX_FRAMES
                && st.gop_bytes + item.size() <= FAST_START_MAX_BYTES
            {
                st.gop_bytes += item.size();
                st.gop.push(item.clone());
            } else {
                st.gop.truncate(1);
                st.gop_bytes = st.gop.first().map_or(0, |k| k.size());
                st.gop_cut = true;
            }
        }
        if let Some(tx) = &st.tx {
            // An error only means there is no reader right now.
            let _ = tx.send(item);
        }
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// A new reader. It starts at the cached key frame when that is the latest item, or
    /// (fast start) with the group of pictures since the last key frame; else at the next
    /// key frame, which it asks the encoder for.
    pub fn subscribe(self: &Arc<Self>) -> HubReader<T> {
        let st = self.lock();
        // Under the lock: the backlog ends exactly where the ring picks up.
        let rx = st.tx.as_ref().map(|tx| tx.subscribe());
        // The whole group with fast start; else its key frame only while it is the latest.
        let start = !st.gop_cut && (st.gop.len() == 1 || self.keyframe.fast_start());
        let backlog: VecDeque<Arc<T>> = if start {
            st.gop.iter().cloned().collect()
        } else {
            VecDeque::new()
        };
        drop(st);
        if backlog.is_empty() {
            self.keyframe.request();
        }
        HubReader {
            hub: self.clone(),
            rx,
            backlog,
            from_backlog: false,
            sync: KeySync::Joining,
            dropped: 0,
        }
    }

    /// Ends the stream: readers receive `None` after the items already queued.
    pub fn close(&self) {
        let mut st = self.lock();
        st.tx = None;
        st.gop.clear();
        st.gop_bytes = 0;
        st.gop_cut = false;
    }

    /// Forgets the cached key frame and its group (the source restarted and they no longer
    /// decode with the new parameters).
    pub fn forget_key(&self) {
        let mut st = self.lock();
        st.gop.clear();
        st.gop_bytes = 0;
        st.gop_cut = false;
    }

    /// The group of pictures since the last key frame (the key frame first), or only that
    /// key frame when the group outgrew `FAST_START_MAX_FRAMES`/`_BYTES`; empty before the
    /// first key frame. Cheap: `Arc` clones under the lock.
    pub fn group(&self) -> Vec<Arc<T>> {
        self.lock().gop.clone()
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Frames dropped by all readers of this hub because they lagged.
    pub fn dropped_by_readers(&self) -> u64 {
        self.readers_dropped_frames.load(Ordering::Relaxed)
    }

    pub fn keyframe_request(&self) -> &Arc<KeyframeRequest> {
        &self.keyframe
    }
}

/// One reader's position in a hub. Yields whole frames starting at a key frame.
pub struct HubReader<T> {
    hub: Arc<Hub<T>>,
    rx: Option<broadcast::Receiver<Arc<T>>>,
    /// Where it starts: a key frame and (fast start) the rest of its group.
    backlog: VecDeque<Arc<T>>,
    /// The last item came from `backlog`: it is behind live on purpose.
    from_backlog: bool,
    sync: KeySync,
    dropped: u64,
}

/// Where a reader stands with respect to key frames.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeySync {
    /// Just joined: waits for its first key frame (not a loss).
    Joining,
    /// Lost frames: skips, and counts, everything up to the next key frame.
    Resyncing,
    /// Delivering every frame.
    Synced,
}

/// What one result from the ring means for the reader.
enum Step<T> {
    Deliver(Arc<T>),
    Skip,
    End,
}

/// What `HubReader::try_next` found.
pub enum TryNext<T> {
    Item(Arc<T>),
    Empty,
    Closed,
}

impl<T: HubItem> HubReader<T> {
    /// Frames this reader skipped because it lagged (or joined between key frames).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    fn count_drop(&mut self, n: u64) {
        self.dropped += n;
        self.hub
            .readers_dropped_frames
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Applies the key-frame rule to a received item: `Some` if the reader may have it.
    fn admit(&mut self, item: Arc<T>) -> Option<Arc<T>> {
        if self.sync != KeySync::Synced {
            if !item.is_key() {
                if self.sync == KeySync::Resyncing {
                    self.count_drop(1);
                }
                return None;
            }
            self.sync = KeySync::Synced;
        }
        Some(item)
    }

    fn lagged(&mut self, n: u64) {
        // Whole frames were lost: everything up to the next key frame is undecodable.
        self.count_drop(n);
        self.sync = KeySync::Resyncing;
        self.hub.keyframe.request();
    }

    /// The next item of the starting backlog, if any is left.
    fn take_first(&mut self) -> Option<Arc<T>> {
        let first = self.backlog.pop_front();
        self.from_backlog = first.is_some();
        if first.is_some() {
            self.sync = KeySync::Synced;
        }
        first
    }

    /// True when the last item came from the fast-start backlog (behind live on purpose, so
    /// not a reason to skip ahead).
    pub fn from_backlog(&self) -> bool {
        self.from_backlog
    }

    /// Applies the key-frame and lag rules to one result from the ring.
    fn on_recv(&mut self, res: Result<Arc<T>, broadcast::error::RecvError>) -> Step<T> {
        match res {
            Ok(item) => match self.admit(item) {
                Some(item) => Step::Deliver(item),
                None => Step::Skip,
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.lagged(n);
                Step::Skip
            }
            Err(broadcast::error::RecvError::Closed) => Step::End,
        }
    }

    /// The next frame, waiting for it. `None` when the hub is closed.
    pub async fn next(&mut self) -> Option<Arc<T>> {
        if let Some(first) = self.take_first() {
            return Some(first);
        }
        loop {
            let res = self.rx.as_mut()?.recv().await;
            match self.on_recv(res) {
                Step::Deliver(item) => return Some(item),
                Step::Skip => {}
                Step::End => return None,
            }
        }
    }

    /// The next frame from a plain thread (the recorder), waiting for it.
    pub fn blocking_next(&mut self) -> Option<Arc<T>> {
        if let Some(first) = self.take_first() {
            return Some(first);
        }
        loop {
            let res = self.rx.as_mut()?.blocking_recv();
            match self.on_recv(res) {
                Step::Deliver(item) => return Some(item),
                Step::Skip => {}
                Step::End => return None,
            }
        }
    }

    /// The next frame if one is queued, without waiting.
    pub fn try_next(&mut self) -> TryNext<T> {
        if let Some(first) = self.take_first() {
            return TryNext::Item(first);
        }
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return TryNext::Closed;
            };
            match rx.try_recv() {
                Ok(item) => {
                    if let Some(item) = self.admit(item) {
                        return TryNext::Item(item);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                Err(broadcast::error::TryRecvError::Empty) => return TryNext::Empty,
                Err(broadcast::error::TryRecvError::Closed) => return TryNext::Closed,
            }
        }
    }

    /// Gives up everything queued and waits for a fresh key frame (used after a reader
    /// could not deliver a frame in time, so the rest of its group of pictures is useless).
    pub fn resync(&mut self) {
        let mut skipped = self.backlog.len() as u64;
        self.backlog.clear();
        self.from_backlog = false;
        if let Some(rx) = self.rx.as_mut() {
            loop {
                match rx.try_recv() {
                    Ok(_) => skipped += 1,
                    Err(broadcast::error::TryRecvError::Lagged(n)) => skipped += n,
                    Err(_) => break,
                }
            }
        }
        self.count_drop(skipped);
        self.sync = KeySync::Resyncing;
        self.hub.keyframe.request();
    }
}

/// One served path: its encoded frames, the description readers need first, and how many
/// readers want it (an on-demand source runs only while someone does).
pub struct MediaPath {
    pub name: String,
    pub frames: Arc<Hub<EncodedFrame>>,
    /// The latest picture before encoding, for sources Vigint encodes itself (snapshots).
    pub picture: LatestPicture,
    info: watch::Sender<Option<Arc<StreamInfo>>>,
    demand: watch::Sender<usize>,
    /// How long a new reader waits for the source to describe itself (longer for sources
    /// that start on demand).
    start_wait_ms: AtomicU64,
    /// The path's live (browser) viewers: counted by `live`, read by `status`.
    pub live: ReaderTally,
}

/// How many readers of one kind watch a path now and the bytes sent to them so far.
#[derive(Debug, Default)]
pub struct ReaderTally {
    now: AtomicUsize,
    bytes_sent: AtomicU64,
}

impl ReaderTally {
    pub fn enter(&self) {
        self.now.fetch_add(1, Ordering::Relaxed);
    }

    pub fn leave(&self) {
        // Never below zero, even if a leave came without its enter.
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn count_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Readers watching now.
    pub fn readers(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }
}

/// A reader's interest in a path, from `MediaPath::want` until dropped.
pub struct Demand(Arc<MediaPath>);

impl Drop for Demand {
    fn drop(&mut self) {
        self.0.demand.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// How long a reader waits for a source to describe itself, unless the path says otherwise.
pub const DEFAULT_START_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many frames a reader may lag before skipping to the next key frame.
pub const DEFAULT_HUB_CAPACITY: usize = 128;

impl MediaPath {
    pub fn new(name: &str) -> Arc<Self> {
        let keyframe = Arc::new(KeyframeRequest::default());
        Arc::new(MediaPath {
            name: name.to_string(),
            frames: Arc::new(Hub::new(DEFAULT_HUB_CAPACITY, keyframe)),
            picture: LatestPicture::default(),
            info: watch::channel(None).0,
            demand: watch::channel(0).0,
            start_wait_ms: AtomicU64::new(DEFAULT_START_WAIT.as_millis() as u64),
            live: ReaderTally::default(),
        })
    }

    /// Declares a reader's interest (an RTSP viewer from DESCRIBE on, a recorder): an
    /// on-demand source starts while anyone wants the path.
    pub fn want(self: &Arc<Self>) -> Demand {
        self.demand.send_modify(|n| *n += 1);
        Demand(self.clone())
    }

    /// Watches how many readers want the path.
    pub fn demand(&self) -> watch::Receiver<usize> {
        self.demand.subscribe()
    }

    /// How long a new reader waits for the source to describe itself.
    pub fn start_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.start_wait_ms.load(Ordering::Relaxed))
    }

    pub fn set_start_wait(&self, d: std::time::Duration) {
        self.start_wait_ms.store(
            d.as_millis().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Sets the stream description (SPS/PPS, size); called by the source when it changes.
    pub fn set_info(&self, info: StreamInfo) {
        self.info.send_if_modified(|cur| {
            if cur.as_deref() == Some(&info) {
                false
            } else {
                *cur = Some(Arc::new(info));
                true
            }
        });
    }

    /// Clears the description while the source is down.
    pub fn clear_info(&self) {
        self.info.send_replace(None);
    }

    pub fn info(&self) -> Option<Arc<StreamInfo>> {
        self.info.borrow().clone()
    }

    /// Watches the description (readers wait here for the first SPS/PPS).
    pub fn watch_info(&self) -> watch::Receiver<Option<Arc<StreamInfo>>> {
        self.info.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Item {
        n: u32,
        key: bool,
    }
    impl HubItem for Item {
        fn is_key(&self) -> bool {
            self.key
        }
        fn size(&self) -> usize {
            1000
        }
    }

    fn hub(cap: usize) -> Arc<Hub<Item>> {
        Arc::new(Hub::new(cap, Arc::new(KeyframeRequest::default())))
    }

    fn item(n: u32, key: bool) -> Arc<Item> {
        Arc::new(Item { n, key })
    }

    fn drain(r: &mut HubReader<Item>) -> Vec<u32> {
        let mut out = vec![];
        while let TryNext::Item(i) = r.try_next() {
            out.push(i.n);
        }
        out
    }

    #[test]
    fn new_reader_starts_at_cached_key_frame() {
        let h = hub(8);
        h.publish(item(1, true));
        let mut r = h.subscribe();
        assert!(
            !h.keyframe.take(),
            "no request needed: the key frame is cached"
        );
        h.publish(item(2, false));
        assert_eq!(drain(&mut r), vec![1, 2]);
    }

    #[test]
    fn new_reader_between_key_frames_waits_and_requests_one() {
        let h = hub(8);
        h.keyframe.set_min_interval(Duration::ZERO);
        h.publish(item(1, true));
        h.publish(item(2, false));
        let mut r = h.subscribe();
        assert!(h.keyframe.take(), "a key frame must be requested");
        h.publish(item(3, false));
        h.publish(item(4, true));
        h.publish(item(5, false));
        assert_eq!(drain(&mut r), vec![4, 5]);
        assert_eq!(r.dropped_frames(), 0, "joining is not lagging");
    }

    #[test]
    fn lagging_reader_skips_to_next_key_frame_and_counts() {
        let h = hub(4);
        h.publish(item(0, true));
        let mut r = h.subscribe();
        assert_eq!(drain(&mut r), vec![0]);
        for n in 1..=10 {
            h.publish(item(n, n == 9));
        }
        h.publish(item(11, false));
        // Ring holds 8..=11; the reader lagged, so it resumes at key frame 9.
        assert_eq!(drain(&mut r), vec![9, 10, 11]);
        assert!(r.dropped_frames() >= 7, "dropped {}", r.dropped_frames());
        assert_eq!(h.dropped_by_readers(), r.dropped_frames());
    }

    #[test]
    fn publish_never_waits_for_a_stuck_reader() {
        let h = hub(4);
        let _stuck = h.subscribe();
        for n in 0..10_000 {
            h.publish(item(n, n % 30 == 0));
        }
        assert_eq!(h.published(), 10_000);
    }

    #[test]
    fn close_ends_readers() {
        let h = hub(4);
        h.publish(item(0, true));
        let mut r = h.subscribe();
        h.close();
        assert!(matches!(r.try_next(), TryNext::Item(_)));
        assert!(matches!(r.try_next(), TryNext::Closed));
    }

    #[test]
    fn resync_drops_queue_until_next_key() {
        let h = hub(16);
        h.publish(item(0, true));
        let mut r = h.subscribe();
        h.publish(item(1, false));
        h.publish(item(2, false));
        r.resync();
        h.publish(item(3, false));
        h.publish(item(4, true));
        assert_eq!(drain(&mut r), vec![4]);
        // The unread starting key frame, 1, 2 and 3.
        assert_eq!(r.dropped_frames(), 4);
    }

    #[test]
    fn forced_key_frames_are_rate_limited() {
        let k = KeyframeRequest::default();
        k.set_min_interval(Duration::from_secs(1));
        assert!(!k.take_at(0), "nobody asked");
        k.request();
        assert!(k.take_at(0), "no key frame yet: granted at once");
        k.key_passed_at(0);
        // 50 joiners in the next second: one request pending, granted once it is due.
        for t in [10, 200, 500, 999] {
            k.request();
            assert!(!k.take_at(t), "{t} ms after the last key frame");
        }
        assert!(k.take_at(1000));
        assert!(!k.take_at(1001), "taken once");
        k.key_passed_at(1000);
        assert_eq!(k.forced(), 2);
        // A natural key frame answers what is pending.
        k.request();
        k.key_passed_at(2500);
        assert!(!k.take_at(4000));
        // Zero: no limit.
        k.set_min_interval(Duration::ZERO);
        k.request();
        assert!(k.take_at(2500));
    }

    #[test]
    fn fast_start_hands_a_new_reader_the_group_since_the_key_frame() {
        let h = hub(8);
        h.keyframe.set_fast_start(true);
        h.publish(item(0, false)); // before any key frame: nothing to start from
        h.publish(item(1, true));
        h.publish(item(2, false));
        h.publish(item(3, false));
        let mut r = h.subscribe();
        assert!(!h.keyframe.take(), "no key frame asked for");
        h.publish(item(4, false));
        let mut got = Vec::new();
        while let TryNext::Item(i) = r.try_next() {
            got.push((i.n, r.from_backlog()));
        }
        assert_eq!(
            got,
            vec![(1, true), (2, true), (3, true), (4, false)],
            "the backlog, then live, nothing twice"
        );
        // A new key frame starts a new group.
        h.publish(item(5, true));
        let mut r2 = h.subscribe();
        assert_eq!(drain(&mut r2), vec![5]);
        // Without fast start only a key frame that is the latest item is kept.
        h.keyframe.set_fast_start(false);
        h.publish(item(6, false));
        let mut r3 = h.subscribe();
        h.publish(item(7, true));
        assert_eq!(drain(&mut r3), vec![7]);
    }

    #[test]
    fn fast_start_keeps_no_group_longer_than_its_bounds() {
        let h = hub(8);
        h.keyframe.set_fast_start(true);
        h.keyframe.set_min_interval(Duration::ZERO);
        h.publish(item(0, true));
        for n in 1..FAST_START_MAX_FRAMES as u32 + 5 {
            h.publish(item(n, false));
        }
        let mut r = h.subscribe();
        assert!(h.keyframe.take(), "too long a group: wait for a key frame");
        assert!(matches!(r.try_next(), TryNext::Empty));
        // A snapshot still has the key frame.
        let g = h.group();
        assert_eq!(g.iter().map(|i| i.n).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn the_group_is_kept_for_snapshots_without_fast_start() {
        let h = hub(8);
        assert!(h.group().is_empty(), "nothing before a key frame");
        h.publish(item(0, false));
        assert!(h.group().is_empty());
        h.publish(item(1, true));
        h.publish(item(2, false));
        h.publish(item(3, false));
        let g: Vec<u32> = h.group().iter().map(|i| i.n).collect();
        assert_eq!(g, vec![1, 2, 3]);
        // A new reader still does not start behind live without fast start.
        let mut r = h.subscribe();
        assert!(matches!(r.try_next(), TryNext::Empty));
        h.forget_key();
        assert!(h.group().is_empty());
    }
}
