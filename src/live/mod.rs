//! Live view in the browser: each path's frames as fragmented MP4 (or an MPEG-2 transport
//! stream for the stream-viewer API), muxed once and shared.
//!
//! Owns: the per-path live muxer task (`LiveStream`: the path's hub of encoded frames → a
//! hub of `LiveFragment`s, one `moof`+`mdat` per frame, muxed ONCE for every viewer, as
//! RTSP packetises once), the init segment and codec string of each stream description
//! (`fragment::FragmentMuxer`), and what one viewer is sent, in order (`LiveViewer`): a
//! codec message, the init segment, then fragments from a key frame; a new codec message
//! and init segment when the description changes; a viewer that falls more than
//! `MAX_LAG` behind live drops whole frames to the next key frame; each viewer and the
//! bytes sent to it are counted in the path's `hub::ReaderTally`. A stream has one
//! `Format`; a path watched in both has two. Does not own: the fMP4 boxes (`mux::fmp4`,
//! shared with the recorder) or TS packets (`mux::ts`), the WebSocket, sockets, timeouts or
//! authentication (the HTTP side), who may watch (`auth`).

pub mod fragment;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::hub::{Demand, Hub, HubItem, HubReader, MediaPath, DEFAULT_HUB_CAPACITY};
use crate::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use crate::mux::ts::TsMuxer;

pub use fragment::{FragmentMuxer, InitSegment, LiveFragment};

/// The container a live stream is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Fragmented MP4 for Media Source Extensions: a codec message, an init segment, then
    /// one `moof`+`mdat` per frame.
    Fmp4,
    /// MPEG-2 transport stream (mpegts.js): PAT/PMT before each key frame, a PES per frame.
    MpegTs,
}

/// How far (in media time) a viewer may fall behind the newest frame before it gives up
/// the rest of its group of pictures and waits for the next key frame: a live picture is
/// worth more than a complete one.
pub const MAX_LAG: Duration = Duration::from_millis(1500);

impl HubItem for LiveFragment {
    fn is_key(&self) -> bool {
        self.is_key
    }
    fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// One path as the live view serves it: the muxer task and its hub of fragments.
pub struct LiveStream {
    hub: Arc<Hub<LiveFragment>>,
    /// Decode time of the newest fragment: how far behind a viewer is.
    newest_dts: Arc<AtomicI64>,
    viewers: AtomicUsize,
    /// The path: its tally of live viewers and bytes (which outlives this stream).
    media: Arc<MediaPath>,
    task: tokio::task::JoinHandle<()>,
    /// While the live view runs, an on-demand source runs for it.
    _demand: Demand,
}

impl LiveStream {
    /// Starts the muxer task for `media` on the current tokio runtime, wanting the path
    /// (an on-demand source starts) until the stream is dropped. Its hub shares the
    /// path's key-frame policy, so a viewer joining asks the source for a key frame (rate
    /// limited) or starts with the group so far (fast start).
    pub fn start(media: Arc<MediaPath>, format: Format) -> Arc<LiveStream> {
        let keyframe = media.frames.keyframe_request().clone();
        let hub = Arc::new(Hub::new(DEFAULT_HUB_CAPACITY, keyframe));
        let newest_dts = Arc::new(AtomicI64::new(i64::MIN));
        let demand = media.want();
        let task = tokio::spawn(mux_task(
            media.clone(),
            format,
            hub.clone(),
            newest_dts.clone(),
        ));
        Arc::new(LiveStream {
            hub,
            newest_dts,
            viewers: AtomicUsize::new(0),
            media,
            task,
            _demand: demand,
        })
    }

    /// A new viewer: it starts at a key frame.
    pub fn viewer(self: &Arc<Self>) -> LiveViewer {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        self.media.live.enter();
        LiveViewer {
            stream: self.clone(),
            reader: self.hub.subscribe(),
            init_sent: None,
            pending: VecDeque::new(),
            resyncs: 0,
        }
    }

    /// Viewers watching now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Bytes handed to this path's viewers (counted by the transport as it sends) go to
    /// the path's tally.
    pub fn count_sent(&self, n: usize) {
        self.media.live.count_sent(n);
    }

    /// Frames muxed so far.
    pub fn fragments(&self) -> u64 {
        self.hub.published()
    }

    /// Frames viewers skipped because they fell behind (or joined between key frames).
    pub fn dropped_by_viewers(&self) -> u64 {
        self.hub.dropped_by_readers()
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.task.abort();
        self.hub.close();
    }
}

/// Reads the path's frames and publishes each as one fragment. Ends when the path's hub
/// closes; the fragment hub closes with it, which ends every viewer.
async fn mux_task(
    media: Arc<MediaPath>,
    format: Format,
    hub: Arc<Hub<LiveFragment>>,
    newest: Arc<AtomicI64>,
) {
    let mut reader = media.frames.subscribe();
    let mut muxer = match format {
        Format::Fmp4 => Muxer::Fmp4(FragmentMuxer::new()),
        Format::MpegTs => Muxer::Ts(TsFramer::default()),
    };
    while let Some(frame) = reader.next().await {
        let info = media.info();
        let Some(fragment) = muxer.push(&frame, info.as_deref()) else {
            continue; // No description yet: nothing a player could decode.
        };
        newest.store(fragment.dts_90k, Ordering::Relaxed);
        hub.publish(Arc::new(fragment));
    }
    hub.close();
}

enum Muxer {
    Fmp4(FragmentMuxer),
    Ts(TsFramer),
}

impl Muxer {
    fn push(&mut self, frame: &EncodedFrame, info: Option<&StreamInfo>) -> Option<LiveFragment> {
        match self {
            Muxer::Fmp4(m) => m.push(frame, info),
            Muxer::Ts(m) => m.push(frame, info),
        }
    }
}

/// A path's frames as transport stream packets, from its first key frame on (a player
/// needs PAT/PMT and a key frame first; both come together).
#[derive(Default)]
struct TsFramer {
    muxer: TsMuxer,
    /// Media time of the first frame: the stream's zero, plus `TS_START`.
    origin: Option<i64>,
}

/// Where the transport stream's clock starts (as ffmpeg's, 1.4 s): room for presentation
/// times a little before the first decode time, never a negative timestamp.
const TS_START: i64 = 126_000;

impl TsFramer {
    fn push(&mut self, frame: &EncodedFrame, info: Option<&StreamInfo>) -> Option<LiveFragment> {
        if self.origin.is_none() && !frame.is_idr {
            return None;
        }
        let origin = *self.origin.get_or_insert(frame.dts_90k);
        let at = |t: i64| u64::try_from(t - origin + TS_START).unwrap_or(0);
        let mut out = Vec::with_capacity(frame.data.len() + frame.data.len() / 20 + 2 * 188);
        self.muxer
            .push(frame, at(frame.pts_90k), at(frame.dts_90k), info, &mut out);
        Some(LiveFragment {
            bytes: Bytes::from(out),
            is_key: frame.is_idr,
            dts_90k: frame.dts_90k,
            init: None,
        })
    }
}

/// What a viewer is sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveMessage {
    /// JSON text, before the init segment: what the player must set up
    /// (`{"type":"codec","mime":"video/mp4; codecs=\"avc1.64001f\"",...}`).
    Codec(String),
    /// The `ftyp`+`moov` a player needs before any fragment.
    Init(Bytes),
    /// One frame's `moof`+`mdat`.
    Fragment(Bytes),
}

/// One viewer's place in a path's live stream.
pub struct LiveViewer {
    stream: Arc<LiveStream>,
    reader: HubReader<LiveFragment>,
    /// The description whose init segment this viewer has (its generation).
    init_sent: Option<u64>,
    /// Messages due before the next read: an init segment and its first fragment.
    pending: VecDeque<LiveMessage>,
    resyncs: u64,
}

impl LiveViewer {
    /// The next message for this viewer; `None` when the path's stream ended.
    pub async fn next(&mut self) -> Option<LiveMessage> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            let f = self.reader.next().await?;
            let behind = self.stream.newest_dts.load(Ordering::Relaxed) - f.dts_90k;
            if !f.is_key && !self.reader.from_backlog() && behind > max_lag_ticks() {
                // Behind by more than MAX_LAG: the rest of this group only delays the
                // picture. Skip to the next key frame.
                self.reader.resync();
                self.resyncs += 1;
                continue;
            }
            return Some(self.deliver(f));
        }
    }

    /// `f`, preceded by its description's codec message and init segment when this viewer
    /// does not have them yet (fMP4; a transport stream carries its own).
    fn deliver(&mut self, f: Arc<LiveFragment>) -> LiveMessage {
        let Some(init) = &f.init else {
            return LiveMessage::Fragment(f.bytes.clone());
        };
        if self.init_sent == Some(init.generation) {
            return LiveMessage::Fragment(f.bytes.clone());
        }
        self.init_sent = Some(init.generation);
        self.pending
            .push_back(LiveMessage::Init(init.bytes.clone()));
        self.pending
            .push_back(LiveMessage::Fragment(f.bytes.clone()));
        LiveMessage::Codec(init.codec_message())
    }

    /// Frames this viewer skipped (fell behind, or joined between key frames).
    pub fn dropped_frames(&self) -> u64 {
        self.reader.dropped_frames()
    }

    /// Times this viewer fell more than `MAX_LAG` behind and skipped to a key frame.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Counts bytes sent to this viewer in its path's total.
    pub fn count_sent(&self, n: usize) {
        self.stream.count_sent(n);
    }
}

impl Drop for LiveViewer {
    fn drop(&mut self) {
        self.stream.viewers.fetch_sub(1, Ordering::Relaxed);
        self.stream.media.live.leave();
    }
}

fn max_lag_ticks() -> i64 {
    MAX_LAG.as_millis() as i64 * i64::from(CLOCK_RATE) / 1000
}
