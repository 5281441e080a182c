//! RFC 6184 H.264 RTP packetiser: each access unit is packetised once into one shared buffer.
//!
//! Owns: the RTP stream state of one path (SSRC, sequence numbers, timestamp offset, sender
//! counters for RTCP) and the packet layout of a frame: single NAL unit packets, STAP-A
//! aggregation of consecutive small NAL units, FU-A fragmentation of large ones, the marker
//! bit on the last packet of an access unit. Does not own: sockets, per-client channels or
//! RTCP (see `rtcp`).
//!
//! Every packet in `RtpFrame::buf` is preceded by a 4-byte RTSP interleaved header (RFC 2326
//! 10.12) for channel 0, so a TCP client on channel 0 writes the whole buffer in one call and
//! UDP clients send the RTP slices. The buffer is allocated once per frame, at its exact size.

use std::time::SystemTime;

use bytes::Bytes;
use rtp_types::RtpPacketBuilder;

use crate::h264::{nal_type, NAL_AUD};
use crate::media::EncodedFrame;

/// Dynamic payload type announced in the SDP (`a=rtpmap:96 H264/90000`).
pub const PAYLOAD_TYPE: u8 = 96;
/// '$', channel, 16-bit big-endian length.
pub const INTERLEAVED_HEADER_LEN: usize = 4;
/// Fixed RTP header: no CSRCs, no extension.
pub const RTP_HEADER_LEN: usize = 12;
/// Smallest accepted `max_packet_size`; below this FU-A overhead dominates.
pub const MIN_PACKET_SIZE: usize = 100;
/// Largest `max_packet_size`: the interleaved length field and `PacketRange::len` are 16-bit.
pub const MAX_PACKET_SIZE: usize = u16::MAX as usize;
/// The configurable "MTU" default: fits Ethernet with IP/UDP headers and some tunnel overhead.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1400;

const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;
/// STAP-A aggregates at most this many NAL units, so that the RTP builder keeps its payload
/// chunks (STAP header + length and data per NAL) inline, without allocating.
const MAX_STAP_NALS: usize = 7;

/// Where one packet lies in `RtpFrame::buf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRange {
    /// Offset of the packet's '$' interleaved header.
    pub start: u32,
    /// RTP packet length, excluding the 4-byte interleaved header.
    pub len: u16,
}

/// One packetised access unit.
///
/// `buf` holds, for every RTP packet, a 4-byte RTSP interleaved header ('$', channel 0,
/// big-endian u16 length) immediately followed by the RTP packet. TCP clients on channel 0
/// write `buf` as is (one write); others patch the channel via their own headers (see
/// [`interleaved_header`]); UDP clients send the RTP packet slices.
#[derive(Clone, Debug)]
pub struct RtpFrame {
    pub buf: Bytes,
    pub packets: Vec<PacketRange>,
    pub rtp_timestamp: u32,
    /// Sequence number of `packets[0]`; packet `i` has `first_seq.wrapping_add(i)`.
    pub first_seq: u16,
    pub is_idr: bool,
    /// Decode time (rises frame by frame): how far behind a reader is.
    pub dts_90k: i64,
    pub wall: SystemTime,
    /// Sum of RTP payload sizes (RTP headers excluded), as RTCP's sender octet count wants.
    pub payload_bytes: usize,
}

impl RtpFrame {
    /// RTP bytes of packet `i` (no interleaved header). Panics if `i >= packet_count()`.
    pub fn packet(&self, i: usize) -> &[u8] {
        let p = self.packets[i];
        let start = p.start as usize + INTERLEAVED_HEADER_LEN;
        &self.buf[start..start + p.len as usize]
    }

    /// Interleaved header (channel 0) followed by the RTP bytes of packet `i`.
    /// Panics if `i >= packet_count()`.
    pub fn interleaved(&self, i: usize) -> &[u8] {
        let p = self.packets[i];
        let start = p.start as usize;
        &self.buf[start..start + INTERLEAVED_HEADER_LEN + p.len as usize]
    }

    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// Sequence number of packet `i`.
    pub fn seq(&self, i: usize) -> u16 {
        self.first_seq.wrapping_add(i as u16)
    }

    /// The RTP packets in order, without interleaved headers.
    pub fn rtp_packets(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.packets.len()).map(move |i| self.packet(i))
    }
}

impl crate::hub::HubItem for RtpFrame {
    fn is_key(&self) -> bool {
        self.is_idr
    }
    fn size(&self) -> usize {
        self.buf.len()
    }
}

/// The RTSP interleaved header for an RTP packet of `len` bytes on `channel`, for clients
/// whose channel is not 0 (they write this, then `RtpFrame::packet(i)`).
pub fn interleaved_header(channel: u8, len: u16) -> [u8; INTERLEAVED_HEADER_LEN] {
    let l = len.to_be_bytes();
    [b'$', channel, l[0], l[1]]
}

/// One RTP packet of a frame, as planned before writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planned {
    /// Single NAL unit packet: `frame.nals[idx]`.
    Single { idx: usize },
    /// STAP-A of `count` consecutive sendable NAL units starting at `frame.nals[first]`
    /// (AUD and empty NAL units in between are skipped, not counted).
    StapA { first: usize, count: usize },
    /// One FU-A fragment: bytes `offset..offset + len` of NAL `idx`, offset >= 1 (the NAL
    /// header byte travels in the FU indicator and header).
    FuA {
        idx: usize,
        offset: usize,
        len: usize,
    },
}

/// Walks a frame's NAL units and yields the packets, so that sizing and writing share one
/// layout decision. Allocation-free.
struct Planner<'a> {
    frame: &'a EncodedFrame,
    max_payload: usize,
    /// Next NAL index to consider.
    next: usize,
    /// FU-A in progress: (nal index, next offset).
    fu: Option<(usize, usize)>,
}

impl<'a> Planner<'a> {
    fn new(frame: &'a EncodedFrame, max_payload: usize) -> Self {
        Planner {
            frame,
            max_payload,
            next: 0,
            fu: None,
        }
    }

    /// NAL unit `idx` if it is sent at all: access unit delimiters are dropped (RFC 6184
    /// leaves them optional and the marker bit already delimits access units), empty ranges
    /// and ranges outside `data` are ignored.
    fn nal(&self, idx: usize) -> Option<&'a [u8]> {
        let nal = self.frame.data.get(self.frame.nals.get(idx)?.clone())?;
        match nal_type(nal) {
            None | Some(NAL_AUD) => None,
            Some(_) => Some(nal),
        }
    }

    /// Index of the first sendable NAL unit at or after `idx`.
    fn sendable_from(&self, mut idx: usize) -> Option<usize> {
        while idx < self.frame.nals.len() {
            if self.nal(idx).is_some() {
                return Some(idx);
            }
            idx += 1;
        }
        None
    }
}

impl Iterator for Planner<'_> {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        if let Some((idx, offset)) = self.fu {
            let nal_len = self.nal(idx).map_or(0, <[u8]>::len);
            let len = nal_len.saturating_sub(offset).min(self.max_payload - 2);
            self.fu = (offset + len < nal_len).then_some((idx, offset + len));
            if len > 0 {
                return Some(Planned::FuA { idx, offset, len });
            }
        }
        let idx = self.sendable_from(self.next)?;
        let nal = self.nal(idx)?;
        self.next = idx + 1;
        if nal.len() > self.max_payload {
            // FU-A: 2 bytes of FU indicator + header replace the 1-byte NAL header.
            let len = (nal.len() - 1).min(self.max_payload - 2);
            self.fu = (1 + len < nal.len()).then_some((idx, 1 + len));
            return Some(Planned::FuA {
                idx,
                offset: 1,
                len,
            });
        }
        // Aggregate following NAL units while they fit: STAP-A header + 2-byte sizes.
        let mut size = 1 + 2 + nal.len();
        let mut count = 1;
        let mut cursor = self.next;
        while count < MAX_STAP_NALS {
            let Some(j) = self.sendable_from(cursor) else {
                break;
            };
            let Some(next_nal) = self.nal(j) else { break };
            if size + 2 + next_nal.len() > self.max_payload {
                break;
            }
            size += 2 + next_nal.len();
            count += 1;
            cursor = j + 1;
        }
        if count == 1 {
            Some(Planned::Single { idx })
        } else {
            self.next = cursor;
            Some(Planned::StapA { first: idx, count })
        }
    }
}

/// The RTP stream of one path. Packetises each frame once; all clients share the result.
#[derive(Debug)]
pub struct Packetizer {
    ssrc: u32,
    next_seq: u16,
    timestamp_offset: u32,
    max_packet_size: usize,
    packets_sent: u32,
    octets_sent: u32,
}

impl Packetizer {
    /// `max_packet_size` = max RTP packet size in bytes including the 12-byte RTP header
    /// (the configurable "MTU", default [`DEFAULT_MAX_PACKET_SIZE`]). Values outside
    /// [`MIN_PACKET_SIZE`]..=[`MAX_PACKET_SIZE`] are clamped into that range; the config
    /// layer is expected to reject them first with a proper message.
    pub fn new(ssrc: u32, initial_seq: u16, timestamp_offset: u32, max_packet_size: usize) -> Self {
        Packetizer {
            ssrc,
            next_seq: initial_seq,
            timestamp_offset,
            max_packet_size: max_packet_size.clamp(MIN_PACKET_SIZE, MAX_PACKET_SIZE),
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry (RTP-Info `seq=` for a client joining now).
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Packets produced so far (wrapping), for the RTCP sender report.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets produced so far (wrapping), for the RTCP sender report.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    pub fn timestamp_offset(&self) -> u32 {
        self.timestamp_offset
    }

    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// RTP timestamp of media time `pts_90k` (wrapping, as RTP timestamps do).
    pub fn rtp_timestamp(&self, pts_90k: i64) -> u32 {
        self.timestamp_offset.wrapping_add(pts_90k as u32)
    }

    fn max_payload(&self) -> usize {
        self.max_packet_size - RTP_HEADER_LEN
    }

    /// RTP payload size of a planned packet.
    fn payload_len(planner: &Planner<'_>, p: Planned) -> usize {
        match p {
            Planned::Single { idx } => planner.nal(idx).map_or(0, <[u8]>::len),
            Planned::StapA { first, count } => {
                let mut size = 1;
                let mut idx = first;
                for _ in 0..count {
                    let Some(j) = planner.sendable_from(idx) else {
                        break;
                    };
                    size += 2 + planner.nal(j).map_or(0, <[u8]>::len);
                    idx = j + 1;
                }
                size
            }
            Planned::FuA { len, .. } => 2 + len,
        }
    }

    /// (packet count, buffer bytes) a frame will need: computed exactly before writing so
    /// the buffer is allocated once.
    fn plan_size(&self, frame: &EncodedFrame) -> (usize, usize) {
        let planner = Planner::new(frame, self.max_payload());
        let mut count = 0;
        let mut bytes = 0;
        for p in Planner::new(frame, self.max_payload()) {
            count += 1;
            bytes += INTERLEAVED_HEADER_LEN + RTP_HEADER_LEN + Self::payload_len(&planner, p);
        }
        (count, bytes)
    }

    /// Packetises one access unit. The RTP timestamp is `timestamp_offset + pts_90k`
    /// (wrapping); sequence numbers continue from the previous frame. A frame with no
    /// sendable NAL unit yields no packets and does not advance the sequence number.
    pub fn packetize(&mut self, frame: &EncodedFrame) -> RtpFrame {
        let (count, total) = self.plan_size(frame);
        let mut buf = Vec::with_capacity(total);
        let mut packets = Vec::with_capacity(count);
        let rtp_timestamp = self.rtp_timestamp(frame.pts_90k);
        let first_seq = self.next_seq;
        let planner = Planner::new(frame, self.max_payload());
        let mut payload_bytes = 0;
        for (i, p) in Planner::new(frame, self.max_payload()).enumerate() {
            let payload_len = Self::payload_len(&planner, p);
            let rtp_len = RTP_HEADER_LEN + payload_len;
            let start = buf.len();
            // Lengths fit: max_packet_size <= u16::MAX and the plan never exceeds it.
            buf.extend_from_slice(&interleaved_header(0, rtp_len as u16));
            let header = Header {
                seq: self.next_seq,
                timestamp: rtp_timestamp,
                ssrc: self.ssrc,
                marker: i + 1 == count,
            };
            write_packet(&header, &planner, p, &mut buf);
            debug_assert_eq!(buf.len() - start, INTERLEAVED_HEADER_LEN + rtp_len);
            packets.push(PacketRange {
                start: start as u32,
                len: rtp_len as u16,
            });
            payload_bytes += payload_len;
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        debug_assert_eq!(buf.len(), total);
        debug_assert_eq!(buf.capacity(), total);
        self.packets_sent = self.packets_sent.wrapping_add(packets.len() as u32);
        self.octets_sent = self.octets_sent.wrapping_add(payload_bytes as u32);
        RtpFrame {
            buf: Bytes::from(buf),
            packets,
            rtp_timestamp,
            first_seq,
            is_idr: frame.is_idr,
            dts_90k: frame.dts_90k,
            wall: frame.wall,
            payload_bytes,
        }
    }
}

/// Fields of the fixed RTP header that vary per packet.
struct Header {
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
}

/// Appends one RTP packet (header by rtp-types, payload chunks from the frame) to `buf`.
/// The builder keeps up to 16 payload chunks inline, so this does not allocate; `buf` was
/// reserved at its final size.
fn write_packet(h: &Header, planner: &Planner<'_>, p: Planned, buf: &mut Vec<u8>) {
    fn builder<'b>(h: &Header) -> RtpPacketBuilder<&'b [u8], &'b [u8]> {
        RtpPacketBuilder::new()
            .payload_type(PAYLOAD_TYPE)
            .sequence_number(h.seq)
            .timestamp(h.timestamp)
            .ssrc(h.ssrc)
            .marker_bit(h.marker)
    }
    // Outlives the builder temporaries of the match arms.
    let fu: [u8; 2];
    let written = match p {
        Planned::Single { idx } => {
            let nal = planner.nal(idx).unwrap_or_default();
            builder(h).payload(nal).write_into_vec(buf)
        }
        Planned::StapA { first, count } => {
            // The aggregated NAL units and their 16-bit sizes, on the stack.
            let mut nals: [&[u8]; MAX_STAP_NALS] = [&[]; MAX_STAP_NALS];
            let mut sizes = [[0u8; 2]; MAX_STAP_NALS];
            let mut n = 0;
            let mut idx = first;
            while n < count.min(MAX_STAP_NALS) {
                let Some(j) = planner.sendable_from(idx) else {
                    break;
                };
                let nal = planner.nal(j).unwrap_or_default();
                nals[n] = nal;
                sizes[n] = (nal.len() as u16).to_be_bytes();
                n += 1;
                idx = j + 1;
            }
            // F is the OR of the aggregated F bits, NRI their maximum (RFC 6184 5.7.1).
            let (f, nri) = nals[..n].iter().fold((0, 0), |(f, nri), nal| {
                let b = nal.first().copied().unwrap_or(0);
                (f | (b & 0x80), nri.max(b & 0x60))
            });
            let header = [f | nri | NAL_STAP_A];
            let mut b = builder(h).payload(&header[..]);
            for (size, nal) in sizes.iter().zip(nals.iter()).take(n) {
                b = b.payload(&size[..]).payload(nal);
            }
            b.write_into_vec(buf)
        }
        Planned::FuA { idx, offset, len } => {
            let nal = planner.nal(idx).unwrap_or_default();
            let nal_header = nal.first().copied().unwrap_or(0);
            let end = offset + len >= nal.len();
            // FU indicator: F and NRI of the NAL, type 28. FU header: S, E, R=0, NAL type.
            fu = [
                (nal_header & 0xE0) | NAL_FU_A,
                (u8::from(offset == 1) << 7) | (u8::from(end) << 6) | (nal_header & 0x1F),
            ];
            let chunk = nal.get(offset..offset + len).unwrap_or_default();
            builder(h)
                .payload(&fu[..])
                .payload(chunk)
                .write_into_vec(buf)
        }
    };
    written.expect("invariant: payload type 96 without CSRCs or padding always writes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_types::RtpPacket;
    use std::time::{Duration, UNIX_EPOCH};

    /// Builds a frame whose NAL ranges are exactly `nals` (4-byte start codes in between).
    fn frame(nals: &[&[u8]], pts_90k: i64) -> EncodedFrame {
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for nal in nals {
            data.extend_from_slice(&[0, 0, 0, 1]);
            ranges.push(data.len()..data.len() + nal.len());
            data.extend_from_slice(nal);
        }
        let is_idr = nals
            .iter()
            .any(|n| nal_type(n) == Some(crate::h264::NAL_IDR));
        EncodedFrame {
            pts_90k,
            dts_90k: pts_90k,
            wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            is_idr,
            data: Bytes::from(data),
            nals: ranges,
        }
    }

    /// A NAL unit of `len` bytes with header byte `header` and a recognisable body.
    fn nal(header: u8, len: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![header];
        v.extend((1..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        v
    }

    /// Strict RFC 6184 depacketiser for the tests: returns the NAL units of one access unit
    /// and checks headers, sequence continuity, one timestamp, FU-A S/E discipline and that
    /// only the last packet has the marker bit.
    fn depacketize(packets: &[&[u8]], ssrc: u32) -> Result<Vec<Vec<u8>>, String> {
        let mut nals = Vec::new();
        let mut fu: Option<Vec<u8>> = None;
        let mut prev: Option<(u16, u32)> = None;
        for (i, raw) in packets.iter().enumerate() {
            let p = RtpPacket::parse(raw).map_err(|e| format!("packet {i}: {e:?}"))?;
            if p.version() != 2 || p.payload_type() != PAYLOAD_TYPE || p.ssrc() != ssrc {
                return Err(format!("packet {i}: bad header"));
            }
            if p.n_csrcs() != 0 || p.extension().is_some() || p.padding().is_some() {
                return Err(format!("packet {i}: unexpected header fields"));
            }
            if let Some((seq, ts)) = prev {
                if p.sequence_number() != seq.wrapping_add(1) {
                    return Err(format!("packet {i}: sequence gap"));
                }
                if p.timestamp() != ts {
                    return Err(format!("packet {i}: timestamp changed"));
                }
            }
            prev = Some((p.sequence_number(), p.timestamp()));
            if p.marker_bit() != (i + 1 == packets.len()) {
                return Err(format!("packet {i}: marker bit wrong"));
            }
            let payload = p.payload();
            let first = *payload.first().ok_or("empty payload")?;
            match first & 0x1F {
                1..=23 => {
                    if fu.is_some() {
                        return Err(format!("packet {i}: single NAL inside FU-A"));
                    }
                    nals.push(payload.to_vec());
                }
                NAL_STAP_A => {
                    if fu.is_some() {
                        return Err(format!("packet {i}: STAP-A inside FU-A"));
                    }
                    let mut rest = &payload[1..];
                    let mut n = 0;
                    while !rest.is_empty() {
                        if rest.len() < 2 {
                            return Err(format!("packet {i}: STAP-A truncated size"));
                        }
                        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                        if len == 0 || rest.len() < 2 + len {
                            return Err(format!("packet {i}: STAP-A bad size"));
                        }
                        nals.push(rest[2..2 + len].to_vec());
                        rest = &rest[2 + len..];
                        n += 1;
                    }
                    if n < 2 {
                        return Err(format!("packet {i}: STAP-A with {n} NAL"));
                    }
                }
                NAL_FU_A => {
                    let h = *payload.get(1).ok_or("FU-A without header")?;
                    let (s, e) = (h & 0x80 != 0, h & 0x40 != 0);
                    if h & 0x20 != 0 || payload.len() < 3 {
                        return Err(format!("packet {i}: bad FU header"));
                    }
                    match (&mut fu, s) {
                        (None, true) => {
                            fu = Some(vec![(first & 0xE0) | (h & 0x1F)]);
                        }
                        (Some(_), false) => {}
                        _ => return Err(format!("packet {i}: FU-A start bit out of place")),
                    }
                    let buf = fu.as_mut().ok_or("no FU")?;
                    if buf[0] != (first & 0xE0) | (h & 0x1F) {
                        return Err(format!("packet {i}: FU-A header changed"));
                    }
                    buf.extend_from_slice(&payload[2..]);
                    if e {
                        nals.push(fu.take().ok_or("no FU")?);
                    }
                }
                t => return Err(format!("packet {i}: unexpected NAL type {t}")),
            }
        }
        if fu.is_some() {
            return Err("FU-A not ended".into());
        }
        Ok(nals)
    }

    fn rtp_packets(f: &RtpFrame) -> Vec<&[u8]> {
        f.rtp_packets().collect()
    }

    fn check_layout(p: &Packetizer, f: &EncodedFrame, out: &RtpFrame) {
        // Exact preallocation: the plan agrees with what was written.
        assert_eq!(p.plan_size(f).1, out.buf.len());
        // The buffer is exactly the interleaved packets back to back.
        let mut offset = 0;
        for i in 0..out.packet_count() {
            let il = out.interleaved(i);
            assert_eq!(out.packets[i].start as usize, offset);
            assert_eq!(il[0], b'$');
            assert_eq!(il[1], 0);
            assert_eq!(u16::from_be_bytes([il[2], il[3]]) as usize, il.len() - 4);
            assert_eq!(&il[4..], out.packet(i));
            assert!(out.packet(i).len() <= p.max_packet_size());
            assert_eq!(
                RtpPacket::parse(out.packet(i)).unwrap().sequence_number(),
                out.seq(i)
            );
            offset += il.len();
        }
        assert_eq!(offset, out.buf.len());
        let payload: usize = out.rtp_packets().map(|p| p.len() - RTP_HEADER_LEN).sum();
        assert_eq!(payload, out.payload_bytes);
    }

    fn sendable(nals: &[&[u8]]) -> Vec<Vec<u8>> {
        nals.iter()
            .filter(|n| !n.is_empty() && nal_type(n) != Some(NAL_AUD))
            .map(|n| n.to_vec())
            .collect()
    }

    #[test]
    fn single_nal_unit_packet() {
        let mut p = Packetizer::new(0x1234_5678, 100, 1000, 1400);
        let slice = nal(0x41, 500, 1);
        let f = frame(&[&slice], 3000);
        let out = p.packetize(&f);
        assert_eq!(out.packet_count(), 1);
        let pkt = out.packet(0);
        assert_eq!(pkt.len(), 12 + 500);
        assert_eq!(
            &pkt[..12],
            &[
                0x80,
                0x80 | 96,
                0,
                100,
                0,
                0,
                0x0F,
                0xA0,
                0x12,
                0x34,
                0x56,
                0x78
            ]
        );
        assert_eq!(&pkt[12..], &slice[..]);
        assert_eq!(out.rtp_timestamp, 4000);
        assert_eq!(out.first_seq, 100);
        assert_eq!(p.next_seq(), 101);
        assert!(!out.is_idr);
        assert_eq!(out.dts_90k, 3000);
        assert_eq!(out.wall, f.wall);
        check_layout(&p, &f, &out);
    }

    #[test]
    fn fu_a_boundaries() {
        let max = 200;
        let max_payload = max - RTP_HEADER_LEN;
        // Exactly the max payload: one single NAL unit packet of exactly max bytes.
        let mut p = Packetizer::new(1, 0, 0, max);
        let exact = nal(0x65, max_payload, 7);
        let f = frame(&[&exact], 0);
        let out = p.packetize(&f);
        assert_eq!(out.packet_count(), 1);
        assert_eq!(out.packet(0).len(), max);
        assert_eq!(depacketize(&rtp_packets(&out), 1).unwrap(), vec![exact]);

        // One byte over: two FU-A fragments; the first is full, S on the first, E on the last.
        let over = nal(0x65, max_payload + 1, 9);
        let f = frame(&[&over], 0);
        let out = p.packetize(&f);
        assert_eq!(out.packet_count(), 2);
        let (a, b) = (out.packet(0), out.packet(1));
        assert_eq!(a.len(), max);
        assert_eq!(a[12], 0x60 | 28, "FU indicator keeps F=0 and NRI=3");
        assert_eq!(a[13], 0x80 | 5, "S bit and IDR type");
        assert_eq!(b[12], 0x60 | 28);
        assert_eq!(b[13], 0x40 | 5, "E bit and IDR type");
        assert_eq!(a.len() - 14 + b.len() - 14, over.len() - 1);
        assert_eq!(depacketize(&rtp_packets(&out), 1).unwrap(), vec![over]);
        check_layout(&p, &f, &out);

        // Huge NAL: many fragments, reassembled byte for byte; only middle ones lack S and E.
        let huge = nal(0x25, 100_000, 3);
        let f = frame(&[&huge], 0);
        let out = p.packetize(&f);
        let expected = (huge.len() - 1).div_ceil(max_payload - 2);
        assert_eq!(out.packet_count(), expected);
        for i in 0..out.packet_count() {
            let h = out.packet(i)[13];
            assert_eq!(h & 0x80 != 0, i == 0);
            assert_eq!(h & 0x40 != 0, i + 1 == out.packet_count());
            assert_eq!(out.packet(i)[12], 0x20 | 28, "NRI=1 copied");
        }
        assert_eq!(depacketize(&rtp_packets(&out), 1).unwrap(), vec![huge]);
        check_layout(&p, &f, &out);
    }

    #[test]
    fn stap_a_aggregates_parameter_sets_before_a_large_idr() {
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let sei = [0x06, 0x05, 0x01, 0xAA, 0x80];
        let idr = nal(0x65, 3000, 5);
        let mut p = Packetizer::new(7, 0, 0, 1400);
        let f = frame(&[&sps, &pps, &sei, &idr], 0);
        let out = p.packetize(&f);
        let stap = out.packet(0);
        let mut expected = vec![0x60 | 24, 0, 6];
        expected.extend_from_slice(&sps);
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&pps);
        expected.extend_from_slice(&[0, 5]);
        expected.extend_from_slice(&sei);
        assert_eq!(
            &stap[12..],
            &expected[..],
            "STAP-A: NRI max(3,3,0), sizes, NALs"
        );
        assert_eq!(stap[1] & 0x80, 0, "no marker on the STAP-A");
        assert_eq!(out.packet(1)[12] & 0x1F, 28, "the IDR is fragmented");
        assert!(out.is_idr);
        assert_eq!(
            depacketize(&rtp_packets(&out), 7).unwrap(),
            sendable(&[&sps, &pps, &sei, &idr])
        );
        check_layout(&p, &f, &out);
    }

    #[test]
    fn stap_a_header_ors_f_and_takes_max_nri_and_respects_limits() {
        let a = [0x06, 1]; // NRI 0
        let b = [0x80 | 0x20 | 1, 2]; // F set, NRI 1
        let mut p = Packetizer::new(7, 0, 0, 1400);
        let out = p.packetize(&frame(&[&a, &b], 0));
        assert_eq!(out.packet_count(), 1);
        assert_eq!(out.packet(0)[12], 0x80 | 0x20 | 24);

        // More small NAL units than one STAP-A takes: split into several aggregates.
        let smalls: Vec<Vec<u8>> = (0..MAX_STAP_NALS * 2 + 1)
            .map(|i| nal(0x41, 10, i as u8))
            .collect();
        let refs: Vec<&[u8]> = smalls.iter().map(|v| &v[..]).collect();
        let f = frame(&refs, 0);
        let out = p.packetize(&f);
        assert_eq!(out.packet_count(), 3);
        assert_eq!(
            out.packet(2)[12] & 0x1F,
            1,
            "the odd one out is a single NAL packet"
        );
        assert_eq!(depacketize(&rtp_packets(&out), 7).unwrap(), sendable(&refs));
        check_layout(&p, &f, &out);

        // Two NAL units that fit alone but not together are not aggregated.
        let max = 100;
        let mut p = Packetizer::new(7, 0, 0, max);
        let x = nal(0x41, 44, 1);
        let y = nal(0x41, 42, 2);
        // 1 + 2 + 44 + 2 + 42 = 91 > 88
        let out = p.packetize(&frame(&[&x, &y], 0));
        assert_eq!(out.packet_count(), 2);
        // 1 + 2 + 44 + 2 + 39 = 88: fits exactly.
        let z = nal(0x41, 39, 3);
        let out = p.packetize(&frame(&[&x, &z], 0));
        assert_eq!(out.packet_count(), 1);
        assert_eq!(out.packet(0).len(), max);
    }

    #[test]
    fn marker_bit_only_on_last_packet() {
        let mut p = Packetizer::new(1, 0, 0, 300);
        let big = nal(0x65, 1000, 1);
        let small = nal(0x41, 50, 2);
        let out = p.packetize(&frame(&[&big, &small, &big], 0));
        assert!(out.packet_count() > 3);
        for i in 0..out.packet_count() {
            let m = out.packet(i)[1] & 0x80 != 0;
            assert_eq!(m, i + 1 == out.packet_count(), "packet {i}");
        }
    }

    #[test]
    fn sequence_numbers_continue_across_frames_and_wrap() {
        let mut p = Packetizer::new(1, 65534, 0, 200);
        let f = frame(&[&nal(0x65, 500, 1)], 0);
        let a = p.packetize(&f);
        assert_eq!(a.packet_count(), 3);
        assert_eq!(a.first_seq, 65534);
        assert_eq!((a.seq(0), a.seq(1), a.seq(2)), (65534, 65535, 0));
        let seqs: Vec<u16> = a
            .rtp_packets()
            .map(|p| RtpPacket::parse(p).unwrap().sequence_number())
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0]);
        let b = p.packetize(&f);
        assert_eq!(b.first_seq, 1);
        assert_eq!(p.next_seq(), 4);
        assert_eq!(p.packets_sent(), 6);
    }

    #[test]
    fn timestamp_offset_wraps() {
        let mut p = Packetizer::new(1, 0, 0xFFFF_FF00, 1400);
        let out = p.packetize(&frame(&[&nal(0x41, 10, 0)], 0x200));
        assert_eq!(out.rtp_timestamp, 0x100);
        assert_eq!(RtpPacket::parse(out.packet(0)).unwrap().timestamp(), 0x100);
        // 90 kHz media time past 2^32 wraps as RTP timestamps do.
        let out = p.packetize(&frame(&[&nal(0x41, 10, 0)], (1i64 << 32) + 0x300));
        assert_eq!(out.rtp_timestamp, 0x200);
        assert_eq!(p.rtp_timestamp(-0x100), 0xFFFF_FE00);
    }

    #[test]
    fn access_unit_delimiters_and_empty_nals_are_dropped() {
        let aud = [0x09, 0xF0];
        let slice = nal(0x41, 40, 1);
        let mut p = Packetizer::new(1, 0, 0, 1400);
        let f = frame(&[&aud, &slice, &[], &aud], 0);
        let out = p.packetize(&f);
        assert_eq!(out.packet_count(), 1);
        assert_eq!(
            &out.packet(0)[12..],
            &slice[..],
            "single NAL, no STAP-A with the AUD"
        );
        check_layout(&p, &f, &out);

        // A frame of only AUDs produces nothing and leaves the sequence number alone.
        let out = p.packetize(&frame(&[&aud], 0));
        assert_eq!(out.packet_count(), 0);
        assert!(out.buf.is_empty());
        assert_eq!(p.next_seq(), 1);
    }

    #[test]
    fn counters_for_rtcp() {
        let mut p = Packetizer::new(1, 0, 0, 200);
        let a = p.packetize(&frame(&[&nal(0x65, 1000, 1)], 0));
        let b = p.packetize(&frame(&[&nal(0x41, 100, 1), &nal(0x41, 10, 2)], 0));
        assert_eq!(
            p.packets_sent() as usize,
            a.packet_count() + b.packet_count()
        );
        assert_eq!(p.octets_sent() as usize, a.payload_bytes + b.payload_bytes);
        assert_eq!(b.payload_bytes, 1 + 2 + 100 + 2 + 10);
        assert_eq!(p.ssrc(), 1);
    }

    #[test]
    fn max_packet_size_is_clamped() {
        assert_eq!(
            Packetizer::new(1, 0, 0, 10).max_packet_size(),
            MIN_PACKET_SIZE
        );
        assert_eq!(
            Packetizer::new(1, 0, 0, 1 << 20).max_packet_size(),
            MAX_PACKET_SIZE
        );
        // The largest size still produces correct interleaved lengths.
        let mut p = Packetizer::new(1, 0, 0, MAX_PACKET_SIZE);
        let f = frame(&[&nal(0x65, 200_000, 1)], 0);
        let out = p.packetize(&f);
        assert_eq!(out.packet(0).len(), MAX_PACKET_SIZE);
        check_layout(&p, &f, &out);
        assert_eq!(
            depacketize(&rtp_packets(&out), 1).unwrap(),
            vec![nal(0x65, 200_000, 1)]
        );
    }

    #[test]
    fn interleaved_header_for_other_channels() {
        assert_eq!(interleaved_header(2, 0x1234), [b'$', 2, 0x12, 0x34]);
    }

    #[test]
    fn random_frames_round_trip() {
        let mut rng = crate::test_util::XorShift(0x9E37_79B9_7F4A_7C15);
        let mut rand = move || rng.next_u64();
        for round in 0..300 {
            let max = MIN_PACKET_SIZE + (rand() % 1500) as usize;
            let mut p = Packetizer::new(0xABCD, rand() as u16, rand() as u32, max);
            let count = 1 + (rand() % 12) as usize;
            let nals: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = match rand() % 4 {
                        0 => 1 + (rand() % 8) as usize,
                        1 => 1 + (rand() % 200) as usize,
                        2 => max - RTP_HEADER_LEN + (rand() % 3) as usize,
                        _ => 1 + (rand() % 20_000) as usize,
                    };
                    let types = [1u8, 5, 6, 7, 8, 9, 12];
                    let t = types[(rand() % types.len() as u64) as usize];
                    let header = ((rand() as u8) & 0x60) | t;
                    nal(header, len, rand() as u8)
                })
                .collect();
            let refs: Vec<&[u8]> = nals.iter().map(|v| &v[..]).collect();
            let f = frame(&refs, rand() as i64 >> 20);
            let seq_before = p.next_seq();
            let out = p.packetize(&f);
            check_layout(&p, &f, &out);
            assert_eq!(out.first_seq, seq_before);
            assert_eq!(
                p.next_seq(),
                seq_before.wrapping_add(out.packet_count() as u16)
            );
            let expected = sendable(&refs);
            if expected.is_empty() {
                assert_eq!(out.packet_count(), 0);
                continue;
            }
            let got = depacketize(&rtp_packets(&out), 0xABCD)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(got, expected, "round {round}");
        }
    }
}

/// Counts heap allocations made by the current thread, to hold the packetiser to its
/// allocation budget. Installed for the lib's test binary only.
#[cfg(test)]
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: every call is forwarded to the system allocator with the caller's arguments;
    // counting touches only a thread-local cell.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract for `alloc`, passed on unchanged.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` through this allocator with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: `ptr` came from `System` through this allocator with this layout.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn allocations() -> usize {
        COUNT.with(Cell::get)
    }

    #[test]
    fn packetize_allocates_the_buffer_and_the_packet_list_only() {
        use super::*;
        use std::time::UNIX_EPOCH;
        let mut data = vec![
            0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c,
        ];
        data.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        data.extend((0..50_000).map(|i| (i % 251) as u8 + 1));
        for _ in 0..5 {
            data.extend_from_slice(&[0, 0, 0, 1, 0x41, 1, 2, 3]);
        }
        let frame = EncodedFrame::from_annexb(Bytes::from(data), 0, UNIX_EPOCH);
        let mut p = Packetizer::new(1, 0, 0, 1400);
        let before = allocations();
        let out = p.packetize(&frame);
        let used = allocations() - before;
        assert!(out.packet_count() > 30);
        assert_eq!(used, 2, "one buffer, one packet list, nothing per packet");
    }
}
