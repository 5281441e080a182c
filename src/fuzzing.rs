//! Fuzz harnesses for what network peers send: a publisher's SDP, a publisher's RTP, and
//! the bytes of an RTSP connection. Written once, called by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and by the corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Owns: turning arbitrary bytes into what a peer could send (RTP packets behind 2-byte
//! lengths; a connection's bytes in chunks of an input-chosen size) and walking them
//! through the same steps the server takes, checking on the way the invariants a bug
//! would break (a panic here is a finding). Each function is quick and allocates in
//! proportion to its input. Does not own: the parsers themselves (`rtsp::framing`,
//! `rtsp::record`, `rtsp::depacketize`, `rtsp::transport`, `rtsp::auth`, `rtcp`, `h264`,
//! the publisher's `Intake`), nor how long or how the fuzzer runs (`scripts/fuzz.sh`).
//! Not part of the server: nothing calls it outside fuzzing and tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use bytes::Bytes;
use rtsp_types::headers::{AUTHORIZATION, CSEQ, SESSION, TRANSPORT};
use rtsp_types::{Message, Method, Request};

use crate::auth::permissions::{self, Action, Permission};
use crate::h264;
use crate::hub::{MediaPath, TryNext};
use crate::mux::fmp4;
use crate::rtsp::auth::{Authenticator, Credentials};
use crate::rtsp::depacketize::{Depacketizer, MAX_ACCESS_UNIT, MAX_NALS};
use crate::rtsp::framing::{frame, Framed, MAX_REQUEST};
use crate::rtsp::play::{clean_url, path_of};
use crate::rtsp::record::{read_sdp, track_of, Track, TrackKind};
use crate::rtsp::reply::{Reply, StatusCode};
use crate::rtsp::rtp::{Packetizer, DEFAULT_MAX_PACKET_SIZE, MIN_PACKET_SIZE};
use crate::rtsp::{rtcp, sdp, transport};
use crate::source::publisher::PublisherSlot;

/// The ANNOUNCE URL the SDP target reads against (relative controls resolve here).
const BASE: &str = "rtsp://127.0.0.1:8554/cam";
/// The RTP payload type the depacketiser target's publisher announced (ffmpeg's, GStreamer's).
const PAYLOAD_TYPE: u8 = 96;

/// A publisher's ANNOUNCE body: read as `record` reads it, then what the server does with
/// the result (the parameter sets' SPS read as the publisher's intake reads it, every
/// announced control found again as SETUP finds it).
pub fn sdp(data: &[u8]) {
    let announced = match read_sdp(data, BASE) {
        Ok(a) => a,
        Err((status, why)) => {
            assert!(
                status == StatusCode::BadRequest || status == StatusCode::UnsupportedMediaType,
                "{status:?}"
            );
            assert!(!why.is_empty());
            return;
        }
    };
    check_announced(&announced.tracks);
    if let Some((sps, pps)) = &announced.sps_pps {
        assert_eq!(h264::nal_type(sps), Some(h264::NAL_SPS));
        assert_eq!(h264::nal_type(pps), Some(h264::NAL_PPS));
        if let Ok(info) = h264::parse_sps(sps) {
            assert!(info.width > 0 && info.height > 0);
            let mut dts = h264::DtsEstimator::new(info.reorder_frames().unwrap_or(0), 3000);
            assert!(dts.next(0) < dts.next(3000));
        }
    }
}

/// What an accepted SDP promises the record session: exactly one H.264 track, and SETUP of
/// each announced control finds a track with that control.
fn check_announced(tracks: &[Track]) {
    let h264_tracks = tracks
        .iter()
        .filter(|t| matches!(t.kind, TrackKind::H264 { .. }))
        .count();
    assert_eq!(h264_tracks, 1);
    for (i, t) in tracks.iter().enumerate() {
        assert!(!t.control.is_empty());
        let found = track_of(tracks, &t.control);
        assert!(found.is_some_and(|f| f <= i), "{t:?} -> {found:?}");
    }
}

/// The records of `data`: each a 2-byte big-endian length and that many bytes (the last
/// one takes what is left).
fn records(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = match data {
            [] => return None,
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            [_] => (0, &[][..]),
        };
        let (record, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some(record)
    })
}

/// A publisher's RTP packets through what `record` does with the video track's packets:
/// rtp-types, the depacketiser, and each access unit into the path as the publisher's
/// `Publishing` puts it there; then what the path's readers build from what the publisher
/// controls: the viewers' SDP (read back as a publisher's would be), their RTP (`Viewer`)
/// and the recorder's init segment. `data`: a flag byte, then records (see `records`).
/// With the flag's bit 0 set, the first two records are the SDP's `sprop-parameter-sets`
/// (SPS, PPS; taken when their NAL types say so, as `record` takes them); bit 1 makes the
/// viewers' packets the smallest we allow; every other record is one RTP packet.
pub fn depacketize(data: &[u8]) {
    let media = MediaPath::new("fuzz");
    let slot = PublisherSlot::new(media.clone(), false);
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
    let Ok(mut publishing) = slot.claim(peer) else {
        unreachable!("a new slot is free");
    };
    let mut reader = media.frames.subscribe();
    let mut depacketizer = Depacketizer::new();
    let mut units = Vec::new();
    let mut last_dts = None;
    let mut info_seen = None;
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut viewer = Viewer::new(if flags & 2 != 0 {
        MIN_PACKET_SIZE
    } else {
        DEFAULT_MAX_PACKET_SIZE
    });
    let mut packets = records(data);
    if flags & 1 != 0 {
        let (sps, pps) = (
            packets.next().unwrap_or_default(),
            packets.next().unwrap_or_default(),
        );
        if h264::nal_type(sps) == Some(h264::NAL_SPS) && h264::nal_type(pps) == Some(h264::NAL_PPS)
        {
            publishing.set_parameter_sets(Bytes::copy_from_slice(sps), Bytes::copy_from_slice(pps));
        }
    }
    for packet in packets {
        let Ok(p) = rtp_types::RtpPacket::parse(packet) else {
            depacketizer.count_malformed();
            continue;
        };
        if p.payload_type() != PAYLOAD_TYPE {
            continue;
        }
        depacketizer.push(
            p.sequence_number(),
            p.timestamp(),
            p.marker_bit(),
            p.payload(),
            &mut units,
        );
        for au in units.drain(..) {
            assert!(!au.data.is_empty() && au.data.len() <= MAX_ACCESS_UNIT);
            assert!(au.data.starts_with(&[0, 0, 0, 1]));
            // A refused unit is counted in the path's status; the stream goes on.
            let _ = publishing.publish(au.timestamp, au.data, au.is_idr);
        }
        while let TryNext::Item(f) = reader.try_next() {
            assert!(last_dts.is_none_or(|l| f.dts_90k > l), "decode times rise");
            last_dts = Some(f.dts_90k);
            viewer.watch(&f);
        }
        let info = media.info();
        if info.as_ref().map(|i| (i.sps.clone(), i.pps.clone())) != info_seen {
            info_seen = info.as_ref().map(|i| (i.sps.clone(), i.pps.clone()));
            if let Some(info) = info {
                check_stream_info(&info);
            }
        }
    }
}

/// What a viewer gets of a published path: each frame packetised as `rtsp::stream` does
/// (our packetiser, with frames whose NAL units the publisher chose), the packets parsed
/// and depacketised again as a strict player would. While every frame holds only NAL units
/// RFC 6184 lets a packet carry (types 1 to 23, forbidden bit clear, within the caps), the
/// player must get each frame exactly (AUDs aside, which we do not send).
struct Viewer {
    packetizer: Packetizer,
    depacketizer: Depacketizer,
    in_sync: bool,
}

impl Viewer {
    fn new(max_packet_size: usize) -> Viewer {
        Viewer {
            packetizer: Packetizer::new(0x5eed, 65_500, 0xffff_0000, max_packet_size),
            depacketizer: Depacketizer::new(),
            in_sync: true,
        }
    }

    fn watch(&mut self, frame: &crate::media::EncodedFrame) {
        let sent: Vec<&[u8]> = frame
            .nal_units()
            .filter(|n| h264::nal_type(n) != Some(h264::NAL_AUD))
            .collect();
        let expected: Vec<u8> = sent
            .iter()
            .flat_map(|n| [0, 0, 0, 1].iter().chain(n.iter()).copied())
            .collect();
        let carriable = sent.len() <= MAX_NALS
            && expected.len() <= MAX_ACCESS_UNIT
            && sent
                .iter()
                .all(|n| n[0] & 0x80 == 0 && (1..=23).contains(&(n[0] & 0x1f)));
        self.in_sync &= carriable;
        let rtp = self.packetizer.packetize(frame);
        let mut out = Vec::new();
        for packet in rtp.rtp_packets() {
            assert!(packet.len() <= self.packetizer.max_packet_size());
            let Ok(p) = rtp_types::RtpPacket::parse(packet) else {
                panic!("our packetiser wrote a packet rtp-types does not read");
            };
            self.depacketizer.push(
                p.sequence_number(),
                p.timestamp(),
                p.marker_bit(),
                p.payload(),
                &mut out,
            );
        }
        if self.in_sync && !sent.is_empty() {
            assert_eq!(out.len(), 1, "one frame, one access unit");
            assert_eq!(
                out[0].data, expected,
                "the viewer gets the frame as published"
            );
        }
    }
}

/// The viewers' SDP made from a publisher's parameter sets reads back to the same sets
/// (when it is no bigger than an SDP we take from a publisher, 16 KiB), and the recorder's
/// init segment can be made from them.
fn check_stream_info(info: &crate::media::StreamInfo) {
    let text = sdp::describe(info, "cam", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
    if text.len() <= 16 * 1024 {
        match read_sdp(text.as_bytes(), BASE) {
            Ok(a) => {
                check_announced(&a.tracks);
                assert_eq!(a.sps_pps, Some((info.sps.clone(), info.pps.clone())));
            }
            Err(e) => panic!("our own SDP does not read back: {e:?}\n{text}"),
        }
    }
    let init = fmp4::init_segment(info);
    assert!(!init.is_empty());
}

/// The user the request target's authenticator knows (Digest and Basic).
fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        Authenticator::new(
            vec![Credentials {
                name: "admin".into(),
                password: "secret".into(),
            }],
            "vigint",
        )
    })
}

/// How a connection's bytes came in: what the server decided at each step.
#[derive(Debug, PartialEq)]
struct Framing {
    messages: Vec<Message<Vec<u8>>>,
    /// How the connection ended, if it did (`None`: still waiting for more bytes).
    end: Option<&'static str>,
}

/// Frames `stream` as `conn` does when its bytes arrive in reads of the sizes `chunks`
/// gives (the rest in one read when they run out).
fn framing(stream: &[u8], chunks: impl IntoIterator<Item = usize>) -> Framing {
    let mut chunks = chunks.into_iter();
    let mut buf = Vec::new();
    let mut messages = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = chunks.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let end = match frame(&buf) {
                Framed::Message { message, consumed } => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    buf.drain(..consumed);
                    messages.push(message);
                    continue;
                }
                Framed::Incomplete => {
                    assert!(buf.len() <= MAX_REQUEST + 4 + usize::from(u16::MAX));
                    break;
                }
                Framed::BodyTooLarge { cseq } => {
                    let answer = Reply::new(StatusCode::RequestMessageBodyTooLarge)
                        .to_bytes(cseq.as_deref());
                    check_answer(&answer, cseq.as_deref());
                    "413"
                }
                Framed::TooLong => "400 too long",
                Framed::Malformed => "400 malformed",
            };
            return Framing {
                messages,
                end: Some(end),
            };
        }
    }
    Framing {
        messages,
        end: None,
    }
}

/// Read sizes from a small generator seeded by `seed`: a mix of tiny reads (1 to 8 bytes,
/// to split heads, lengths and line ends) and larger ones (up to 512).
fn chunk_sizes(seed: u8) -> impl Iterator<Item = usize> {
    let mut x = u32::from(seed) | 0x100;
    std::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        Some(if x & 0x10 != 0 {
            1 + (x >> 8) as usize % 8
        } else {
            1 + (x >> 8) as usize % 512
        })
    })
}

/// A connection's bytes (after a first byte that picks the read sizes): framed as `conn`
/// frames them, which must not depend on how the bytes were split into reads; then every
/// message through the parsers it reaches (`conn`'s CSeq and authentication, the URL and
/// path, permissions, `Session`, `Transport`, an ANNOUNCE's SDP and SETUP's track, RTCP
/// and RTP on interleaved channels).
pub fn rtsp_request(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = framing(stream, []);
    if stream.len() <= MAX_REQUEST {
        let chunked = framing(stream, chunk_sizes(seed));
        assert_eq!(whole, chunked, "framing depends on how the bytes were read");
    }
    let mut tracks: Vec<Track> = Vec::new();
    for message in &whole.messages {
        match message {
            Message::Request(req) => request(req, &mut tracks),
            Message::Data(d) => {
                let _ = rtcp::parse_receiver_reports(d.as_slice());
                let _ = rtp_types::RtpPacket::parse(d.as_slice());
            }
            Message::Response(_) => {}
        }
    }
}

/// One request through what `conn`, `play` and `record` read from it.
fn request(req: &Request<Vec<u8>>, tracks: &mut Vec<Track>) {
    // conn::answer: the CSeq our answer repeats.
    let cseq = req
        .header(&CSEQ)
        .map(|v| v.as_str().trim().to_string())
        .filter(|c| !c.is_empty() && c.len() < 16);
    let answer = Reply::new(StatusCode::Ok).to_bytes(cseq.as_deref());
    check_answer(&answer, cseq.as_deref());
    // conn::check_auth.
    let method: &str = req.method().into();
    let uri = req.request_uri().map(|u| u.as_str()).unwrap_or("*");
    let authorization = req.header(&AUTHORIZATION).map(|v| v.as_str());
    let _ = authenticator().check(method, uri, authorization);
    // The path, and the URL we echo and log: never with credentials.
    let path = path_of(req).map(|(p, _)| p).unwrap_or_default();
    let url = clean_url(req);
    if let Ok(u) = url::Url::parse(&url) {
        assert!(u.username().is_empty() && u.password().is_none(), "{url}");
    }
    let grants = [Permission {
        action: Action::Publish,
        path: Some("cam".into()),
    }];
    for action in [Action::Read, Action::Publish] {
        let _ = permissions::allowed(true, Some(Some(&grants[..])), action, &path);
    }
    // play::session_check, record::session_id_matches.
    if let Some(v) = req.header(&SESSION) {
        let _ = v.as_str().split(';').next().unwrap_or("").trim();
    }
    if let Some(t) = req.header(&TRANSPORT) {
        if let Ok(chosen) = transport::choose(t.as_str()) {
            let ours = transport::answer(&chosen, Some((8000, 8001)), 0x1234_5678);
            assert_eq!(transport::choose(&ours), Ok(chosen), "{ours}");
        }
        if let Ok(chosen) = transport::choose_for(t.as_str(), transport::Mode::Record) {
            let ours = transport::answer_record(&chosen, Some((8000, 8001)));
            assert_eq!(
                transport::choose_for(&ours, transport::Mode::Record),
                Ok(chosen),
                "{ours}"
            );
        }
    }
    match req.method() {
        Method::Announce => {
            if let Ok(a) = read_sdp(req.body(), &url) {
                check_announced(&a.tracks);
                *tracks = a.tracks;
            }
        }
        Method::Setup => {
            let _ = track_of(tracks, &url);
        }
        _ => {}
    }
}

/// An answer we write frames as exactly one response, with the request's CSeq.
fn check_answer(answer: &[u8], cseq: Option<&str>) {
    match frame(answer) {
        Framed::Message {
            message: Message::Response(r),
            consumed,
        } => {
            assert_eq!(consumed, answer.len());
            assert_eq!(r.header(&CSEQ).map(|v| v.as_str()), cseq);
        }
        other => panic!("our answer does not frame: {other:?}"),
    }
}
