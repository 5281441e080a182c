//! Live viewers for the HTTP side: each path's `LiveStream`, started with its first viewer
//! and ended with its last, and the live-viewer limits (in all, per client address).
//!
//! Owns: the registry of running live streams (one per served path and format; a path restarted by a
//! config change gets a new one, the old one ends with its viewers), counting viewers
//! against `http.max_live_viewers` and `http.max_live_viewers_per_client`, the
//! `control::Feed` a viewer is handed, and the admin's unsaved relays of a URL
//! (`UrlRelays`: one pull per URL, alive while anyone watches it, never in the config).
//! Does not own: muxing or lag (`live`), pulling (`source::relay`), sockets, WebSockets
//! and who may watch (`http`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::lock;
use crate::config::{masked_source, RtspTransport, SourceSpec};
use crate::control::{Feed, FeedError, FeedMessage, FeedNext};
use crate::hub::MediaPath;
use crate::live::{Format, LiveMessage, LiveStream, LiveViewer};
use crate::source::relay::{Relay, RelaySettings};

/// Unsaved relays running at once at most: each is an upstream session and a muxer.
pub(super) const MAX_URL_RELAYS: usize = 4;

/// The live-viewer limits; 0 means no limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub total: usize,
    pub per_client: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// A path's live stream in one format: the media it muxes (to notice a restarted path) and
/// the stream, alive while anyone watches.
type Running = (Weak<MediaPath>, Weak<LiveStream>);

/// The running live streams and who watches them.
#[derive(Default)]
pub(super) struct LiveRegistry {
    /// Per path and format.
    streams: Mutex<HashMap<(String, Format), Running>>,
    counts: Arc<Mutex<Counts>>,
}

impl LiveRegistry {
    /// A new viewer of `media` from `peer`, within `limits`. Call inside the runtime: a
    /// path's first viewer starts its muxer task.
    pub(super) fn viewer(
        &self,
        media: &Arc<MediaPath>,
        format: Format,
        peer: IpAddr,
        limits: Limits,
    ) -> Result<Box<dyn Feed>, FeedError> {
        let key = (media.name.clone(), format);
        let slot = Slot::take(&self.counts, peer, limits)?;
        let stream = {
            let mut streams = lock(&self.streams);
            streams.retain(|_, (_, s)| s.strong_count() > 0);
            let running = streams.get(&key).and_then(|(m, s)| {
                let same_media = m.upgrade().is_some_and(|m| Arc::ptr_eq(&m, media));
                same_media.then(|| s.upgrade()).flatten()
            });
            match running {
                Some(s) => s,
                None => {
                    let s = LiveStream::start(media.clone(), format);
                    streams.insert(key, (Arc::downgrade(media), Arc::downgrade(&s)));
                    s
                }
            }
        };
        Ok(Box::new(CountedFeed {
            viewer: stream.viewer(),
            _slot: slot,
        }))
    }

    /// Live viewers watching now, in all.
    #[cfg(test)]
    fn viewers(&self) -> usize {
        lock(&self.counts).total
    }
}

/// The admin's relays of a URL given to the stream-viewer socket (`?url=rtsp://...`):
/// pulled like a relay path (retina, TCP, reconnecting with backoff) into a media path of
/// their own that no config names, started by the first viewer of the URL and stopped
/// when its last viewer leaves.
#[derive(Default)]
pub(super) struct UrlRelays {
    /// Per URL (as given, credentials included: the key never leaves this map).
    running: Mutex<HashMap<String, Weak<UrlRelay>>>,
    /// Numbers the media paths' names (`url-relay-N`), which logs show.
    next: AtomicU64,
}

/// One unsaved relay: its media and the pull, stopped when the last viewer drops it.
pub(super) struct UrlRelay {
    pub media: Arc<MediaPath>,
    _pull: Relay,
}

impl UrlRelays {
    /// The running relay of `url`, or a new one. Call inside the runtime.
    pub(super) fn relay(
        &self,
        url: &str,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Arc<UrlRelay>, FeedError> {
        match SourceSpec::parse(url) {
            Ok(SourceSpec::Relay(_)) => {}
            Ok(_) => {
                return Err(FeedError::BadSource(format!(
                    "`{}`: url= takes an rtsp:// or rtsps:// URL",
                    masked_source(url)
                )))
            }
            Err(why) => return Err(FeedError::BadSource(why)),
        }
        let mut running = lock(&self.running);
        running.retain(|_, r| r.strong_count() > 0);
        if let Some(r) = running.get(url).and_then(Weak::upgrade) {
            return Ok(r);
        }
        if running.len() >= MAX_URL_RELAYS {
            return Err(FeedError::Limit(format!(
                "{} unsaved relays already; add the camera as a path (POST /api/streams/)",
                running.len()
            )));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let media = MediaPath::new(&format!("url-relay-{n}"));
        log::info!(
            "path url-relay-{n}: unsaved relay of {} for the stream viewer",
            masked_source(url)
        );
        let settings = RelaySettings {
            url: url.to_string(),
            transport: RtspTransport::Tcp,
            on_demand: None,
        };
        let relay = Arc::new(UrlRelay {
            _pull: Relay::start(media.clone(), settings, runtime),
            media,
        });
        running.insert(url.to_string(), Arc::downgrade(&relay));
        Ok(relay)
    }
}

/// A viewer of an unsaved relay: the feed, then the relay it keeps running (dropped in
/// this order: the viewer leaves before the last one stops the pull).
pub(super) struct RelayFeed {
    pub feed: Box<dyn Feed>,
    pub _relay: Arc<UrlRelay>,
}

impl Feed for RelayFeed {
    fn next(&mut self) -> FeedNext<'_> {
        self.feed.next()
    }

    fn count_sent(&self, bytes: usize) {
        self.feed.count_sent(bytes);
    }
}

/// One viewer's place in the counts, given back when the viewer leaves.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Mutex<Counts>>, peer: IpAddr, limits: Limits) -> Result<Slot, FeedError> {
        let mut c = lock(counts);
        if limits.total != 0 && c.total >= limits.total {
            return Err(FeedError::Limit(format!(
                "{} live viewers already (http.max_live_viewers)",
                c.total
            )));
        }
        let mine = c.per_client.get(&peer).copied().unwrap_or(0);
        if limits.per_client != 0 && mine >= limits.per_client {
            return Err(FeedError::Limit(format!(
                "{mine} live viewers from this address already \
                 (http.max_live_viewers_per_client)"
            )));
        }
        c.total += 1;
        *c.per_client.entry(peer).or_insert(0) += 1;
        Ok(Slot {
            counts: counts.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_client.remove(&self.peer);
            }
        }
    }
}

/// A live viewer as `http` sees it.
struct CountedFeed {
    viewer: LiveViewer,
    _slot: Slot,
}

impl Feed for CountedFeed {
    fn next(&mut self) -> FeedNext<'_> {
        Box::pin(async move {
            self.viewer.next().await.map(|m| match m {
                LiveMessage::Codec(text) => FeedMessage::Text(text),
                LiveMessage::Init(b) | LiveMessage::Fragment(b) => FeedMessage::Binary(b),
            })
        })
    }

    fn count_sent(&self, bytes: usize) {
        self.viewer.count_sent(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_in_all_and_per_client_and_slots_come_back() {
        let reg = LiveRegistry::default();
        let media = MediaPath::new("cam");
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let limits = Limits {
            total: 3,
            per_client: 2,
        };
        let v1 = reg.viewer(&media, Format::Fmp4, a, limits).unwrap();
        let v2 = reg.viewer(&media, Format::Fmp4, a, limits).unwrap();
        let Err(FeedError::Limit(why)) = reg.viewer(&media, Format::Fmp4, a, limits) else {
            panic!("a third from one address");
        };
        assert!(why.contains("max_live_viewers_per_client"), "{why}");
        let v3 = reg.viewer(&media, Format::Fmp4, b, limits).unwrap();
        let Err(FeedError::Limit(why)) = reg.viewer(&media, Format::Fmp4, b, limits) else {
            panic!("a fourth in all");
        };
        assert!(why.contains("(http.max_live_viewers)"), "{why}");
        assert_eq!(reg.viewers(), 3);
        drop(v1);
        assert_eq!(reg.viewers(), 2);
        let _v4 = reg.viewer(&media, Format::Fmp4, a, limits).unwrap();
        drop((v2, v3));
        // 0: no limit.
        let none = Limits {
            total: 0,
            per_client: 0,
        };
        let many: Vec<_> = (0..10)
            .map(|_| reg.viewer(&media, Format::Fmp4, a, none).unwrap())
            .collect();
        assert_eq!(reg.viewers(), 11);
        drop(many);
        assert_eq!(reg.viewers(), 1);
    }

    #[tokio::test]
    async fn one_stream_per_path_while_watched_and_a_new_one_for_a_restarted_path() {
        let reg = LiveRegistry::default();
        let limits = Limits {
            total: 0,
            per_client: 0,
        };
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let media = MediaPath::new("cam");
        let key = ("cam".to_string(), Format::Fmp4);
        let _v1 = reg.viewer(&media, Format::Fmp4, peer, limits).unwrap();
        let first = lock(&reg.streams)[&key].1.clone();
        let _v2 = reg.viewer(&media, Format::Fmp4, peer, limits).unwrap();
        assert!(Weak::ptr_eq(&first, &lock(&reg.streams)[&key].1));
        assert_eq!(first.upgrade().unwrap().viewers(), 2);
        // The path restarted with new media: a new stream for new viewers.
        let restarted = MediaPath::new("cam");
        let _v3 = reg.viewer(&restarted, Format::Fmp4, peer, limits).unwrap();
        assert!(!Weak::ptr_eq(&first, &lock(&reg.streams)[&key].1));
        // Another format: another stream of the same path.
        let _ts = reg
            .viewer(&restarted, Format::MpegTs, peer, limits)
            .unwrap();
        assert_eq!(
            lock(&reg.streams).len(),
            2,
            "the restarted path replaced the first"
        );
        // The last viewer of a stream gone: the stream ends (its muxer task with it).
        drop((_v1, _v2));
        assert_eq!(first.strong_count(), 0);
    }
}
