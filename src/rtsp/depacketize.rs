//! RFC 6184 H.264 depacketiser for what publishers send: single NAL unit packets, STAP-A
//! and FU-A (packetization-mode 0 and 1) gathered into access units.
//!
//! Owns: turning one RTP stream's payloads (with sequence number, timestamp and marker)
//! into whole Annex-B access units, and refusing to pass on anything broken: a lost,
//! late or malformed packet damages the access unit it belongs to, which is dropped, and
//! everything after it is dropped up to the next access unit with an IDR (a decoder could
//! not use it). Sizes are capped (`MAX_ACCESS_UNIT`, `MAX_NALS`). Pure: no I/O, no clock.
//! Does not own: RTP header parsing (the record session, with rtp-types), timestamps in
//! media time, SPS/PPS bookkeeping.

use crate::h264::{nal_type, NAL_IDR};

/// The largest access unit accepted (a 4K intra picture at a very high bitrate is a few
/// MiB); a bigger one is dropped, so a publisher cannot make us buffer without bound.
pub const MAX_ACCESS_UNIT: usize = 8 * 1024 * 1024;
/// NAL units per access unit at most.
pub const MAX_NALS: usize = 1024;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One complete access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The RTP timestamp shared by its packets.
    pub timestamp: u32,
    /// Annex-B: each NAL unit after a 4-byte start code.
    pub data: Vec<u8>,
    pub is_idr: bool,
}

/// Why packets or access units were dropped (counted, never fatal).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Packets missing from the sequence (then everything up to the next IDR is dropped).
    pub lost_packets: u64,
    /// Packets that came after a later one (too late to use).
    pub late_packets: u64,
    /// Packets whose payload is not valid H.264 RTP (or a mode we do not take).
    pub malformed_packets: u64,
    /// Access units dropped: damaged, too big, or waiting for the next IDR.
    pub dropped_units: u64,
}

/// Gathers one stream's packets into access units.
#[derive(Debug, Default)]
pub struct Depacketizer {
    data: Vec<u8>,
    nals: usize,
    timestamp: Option<u32>,
    /// An FU-A fragment is open (its start came, its end not yet).
    in_fu: bool,
    is_idr: bool,
    /// The unit being gathered lost something: it is dropped when it ends.
    damaged: bool,
    /// After a loss: units are dropped until one with an IDR.
    need_idr: bool,
    expected_seq: Option<u16>,
    drops: Drops,
}

impl Depacketizer {
    pub fn new() -> Depacketizer {
        Depacketizer {
            // Nothing decodes before the first IDR.
            need_idr: true,
            ..Depacketizer::default()
        }
    }

    pub fn drops(&self) -> Drops {
        self.drops
    }

    /// A packet that is not RTP at all (counted with the malformed ones; it damages the
    /// unit being gathered, as a lost packet would).
    pub fn count_malformed(&mut self) {
        self.drops.malformed_packets += 1;
        self.damaged = true;
    }

    /// Takes one packet's payload; complete access units go to `out` (a timestamp change
    /// ends the previous unit even when its marker was lost).
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut Vec<AccessUnit>,
    ) {
        if let Some(expected) = self.expected_seq {
            let ahead = seq.wrapping_sub(expected) as i16;
            if ahead < 0 {
                self.drops.late_packets += 1;
                return;
            }
            if ahead > 0 {
                self.drops.lost_packets += ahead as u64;
                self.damaged = true;
            }
        }
        self.expected_seq = Some(seq.wrapping_add(1));
        if self.timestamp.is_some_and(|t| t != timestamp) {
            self.finish(out);
        }
        self.timestamp = Some(timestamp);
        if self.take(payload).is_err() {
            self.drops.malformed_packets += 1;
            self.damaged = true;
        }
        if marker {
            self.finish(out);
        }
    }

    /// Adds a packet's NAL units to the unit being gathered.
    fn take(&mut self, payload: &[u8]) -> Result<(), ()> {
        let (&header, rest) = payload.split_first().ok_or(())?;
        if header & 0x80 != 0 {
            return Err(()); // forbidden_zero_bit
        }
        match header & 0x1F {
            1..=23 => {
                self.end_fu()?;
                self.add_nal(&[header], rest)
            }
            STAP_A => {
                self.end_fu()?;
                let mut rest = rest;
                if rest.is_empty() {
                    return Err(());
                }
                while !rest.is_empty() {
                    if rest.len() < 2 {
                        return Err(());
                    }
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let nal = rest.get(2..2 + len).ok_or(())?;
                    let (&h, body) = nal.split_first().ok_or(())?;
                    if h & 0x80 != 0 || !(1..=23).contains(&(h & 0x1F)) {
                        return Err(());
                    }
                    self.add_nal(&[h], body)?;
                    rest = &rest[2 + len..];
                }
                Ok(())
            }
            FU_A => {
                let (&fu, body) = rest.split_first().ok_or(())?;
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                let nal_header = (header & 0xE0) | (fu & 0x1F);
                if start && end || !(1..=23).contains(&(fu & 0x1F)) {
                    return Err(());
                }
                if start {
                    self.end_fu()?;
                    self.add_nal(&[nal_header], body)?;
                    self.in_fu = true;
                } else {
                    if !self.in_fu {
                        // A fragment whose start we never saw.
                        return Err(());
                    }
                    self.extend(body)?;
                }
                if end {
                    self.in_fu = false;
                }
                Ok(())
            }
            // STAP-B, MTAP, FU-B: interleaved mode, which we do not announce; 0, 30, 31:
            // undefined.
            _ => Err(()),
        }
    }

    /// An unfinished FU-A followed by another NAL unit: its end was lost.
    fn end_fu(&mut self) -> Result<(), ()> {
        if self.in_fu {
            self.in_fu = false;
            return Err(());
        }
        Ok(())
    }

    fn add_nal(&mut self, header: &[u8], body: &[u8]) -> Result<(), ()> {
        if self.nals >= MAX_NALS {
            return Err(());
        }
        self.nals += 1;
        if nal_type(header) == Some(NAL_IDR) {
            self.is_idr = true;
        }
        self.extend(&[0, 0, 0, 1])?;
        self.extend(header)?;
        self.extend(body)
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if self.data.len() + bytes.len() > MAX_ACCESS_UNIT {
            return Err(());
        }
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the unit being gathered: passed on when whole and decodable, else dropped.
    fn finish(&mut self, out: &mut Vec<AccessUnit>) {
        let Some(timestamp) = self.timestamp.take() else {
            return;
        };
        if self.in_fu {
            self.damaged = true;
        }
        let data = std::mem::take(&mut self.data);
        let is_idr = std::mem::take(&mut self.is_idr);
        let damaged = std::mem::take(&mut self.damaged);
        self.nals = 0;
        self.in_fu = false;
        if damaged {
            self.need_idr = true;
            self.drops.dropped_units += 1;
            return;
        }
        if data.is_empty() {
            return;
        }
        if self.need_idr && !is_idr {
            self.drops.dropped_units += 1;
            return;
        }
        self.need_idr = false;
        out.push(AccessUnit {
            timestamp,
            data,
            is_idr,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::EncodedFrame;
    use crate::rtsp::rtp::{Packetizer, RTP_HEADER_LEN};
    use crate::test_util::XorShift;
    use bytes::Bytes;
    use std::time::SystemTime;

    /// (seq, timestamp, marker, payload) of each packet our own packetiser makes.
    fn packets(frames: &[Vec<u8>], max: usize) -> Vec<(u16, u32, bool, Vec<u8>)> {
        let mut p = Packetizer::new(0x1234, 65_530, 0, max);
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let frame = EncodedFrame::from_annexb(
                Bytes::from(f.clone()),
                i as i64 * 3000,
                SystemTime::UNIX_EPOCH,
            );
            let rtp = p.packetize(&frame);
            for pkt in rtp.rtp_packets() {
                let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
                out.push((seq, ts, pkt[1] & 0x80 != 0, pkt[RTP_HEADER_LEN..].to_vec()));
            }
        }
        out
    }

    fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [0, 0, 0, 1].into_iter().chain(n.iter().copied()))
            .collect()
    }

    /// A frame: an IDR (with SPS and PPS) or a P slice, with `size` bytes of payload.
    fn frame(rng: &mut XorShift, idr: bool, size: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..size).map(|_| (rng.next_u64() as u8) | 1).collect();
        let mut nals = Vec::new();
        if idr {
            nals.push(vec![0x67, 0x42, 0xC0, 0x1F]);
            nals.push(vec![0x68, 0xCE, 0x3C, 0x80]);
        }
        let mut slice = vec![if idr { 0x65 } else { 0x41 }];
        slice.extend(body);
        nals.push(slice);
        annexb(&nals)
    }

    fn run(pkts: &[(u16, u32, bool, Vec<u8>)]) -> (Vec<AccessUnit>, Drops) {
        let mut d = Depacketizer::new();
        let mut out = Vec::new();
        for (seq, ts, m, p) in pkts {
            d.push(*seq, *ts, *m, p, &mut out);
        }
        (out, d.drops())
    }

    #[test]
    fn our_packetiser_round_trips_single_stap_and_fu() {
        let mut rng = XorShift(7);
        let frames: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(&mut rng, i % 10 == 0, [10, 900, 5000, 30][i % 4]))
            .collect();
        for max in [200, 1400] {
            let (out, drops) = run(&packets(&frames, max));
            assert_eq!(drops, Drops::default());
            assert_eq!(out.len(), frames.len());
            for (i, (au, f)) in out.iter().zip(&frames).enumerate() {
                assert_eq!(&au.data, f, "frame {i}");
                assert_eq!(au.is_idr, i % 10 == 0);
                assert_eq!(au.timestamp, i as u32 * 3000);
            }
        }
    }

    #[test]
    fn a_lost_packet_drops_to_the_next_idr() {
        let mut rng = XorShift(9);
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| frame(&mut rng, i % 10 == 0, 3000))
            .collect();
        let mut pkts = packets(&frames, 1400);
        // A middle fragment of frame 3 is lost.
        let victim = pkts.iter().position(|p| p.1 == 3 * 3000).unwrap() + 1;
        pkts.remove(victim);
        let (out, drops) = run(&pkts);
        let stamps: Vec<u32> = out.iter().map(|a| a.timestamp / 3000).collect();
        assert_eq!(stamps, [0, 1, 2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
        assert_eq!(drops.lost_packets, 1);
        assert_eq!(drops.dropped_units, 7);
    }

    #[test]
    fn reordered_packets_count_as_late_and_never_make_a_broken_frame() {
        let mut rng = XorShift(11);
        let frames: Vec<Vec<u8>> = (0..12).map(|i| frame(&mut rng, i % 6 == 0, 4000)).collect();
        let mut pkts = packets(&frames, 1400);
        let i = pkts.iter().position(|p| p.1 == 2 * 3000).unwrap();
        pkts.swap(i, i + 1);
        let (out, drops) = run(&pkts);
        let stamps: Vec<u32> = out.iter().map(|a| a.timestamp / 3000).collect();
        assert_eq!(stamps, [0, 1, 6, 7, 8, 9, 10, 11]);
        assert_eq!((drops.lost_packets, drops.late_packets), (1, 1));
        for au in &out {
            assert!(frames.contains(&au.data));
        }
    }

    #[test]
    fn a_missing_marker_ends_the_unit_at_the_next_timestamp() {
        let mut rng = XorShift(13);
        let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(&mut rng, i == 0, 50)).collect();
        let mut pkts = packets(&frames, 1400);
        for p in &mut pkts {
            p.2 = false;
        }
        let (out, _) = run(&pkts);
        // The last one waits for a marker or the next timestamp.
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data, frames[1]);
    }

    #[test]
    fn nothing_before_the_first_idr() {
        let mut rng = XorShift(17);
        let frames: Vec<Vec<u8>> = (0..4).map(|i| frame(&mut rng, i == 2, 50)).collect();
        let (out, drops) = run(&packets(&frames, 1400));
        assert_eq!(out.len(), 2);
        assert!(out[0].is_idr);
        assert_eq!(drops.dropped_units, 2);
    }

    #[test]
    fn malformed_payloads_are_counted_and_never_panic() {
        let mut d = Depacketizer::new();
        let mut out = Vec::new();
        let bad: [&[u8]; 9] = [
            &[],
            &[0x80, 1],        // forbidden bit
            &[24],             // empty STAP-A
            &[24, 0, 9, 0x65], // STAP-A length past the end
            &[24, 0, 1, 0x98], // STAP-A holding an aggregate
            &[28],             // FU-A without its header
            &[28, 0x45, 1],    // FU-A end without a start
            &[28, 0xC5, 1],    // start and end at once
            &[25, 0, 0],       // STAP-B
        ];
        for (i, p) in bad.iter().enumerate() {
            d.push(i as u16, 0, false, p, &mut out);
        }
        assert_eq!(d.drops().malformed_packets, bad.len() as u64);
        let mut rng = XorShift(19);
        for seq in 0..20_000u32 {
            let len = rng.below(40);
            let p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            d.push(seq as u16 + 100, seq / 7, rng.below(3) == 0, &p, &mut out);
        }
        for au in &out {
            assert!(au.data.len() <= MAX_ACCESS_UNIT);
            assert!(au.data.starts_with(&[0, 0, 0, 1]));
        }
    }

    #[test]
    fn an_access_unit_over_the_cap_is_dropped() {
        let mut d = Depacketizer::new();
        let mut out = Vec::new();
        let mut seq = 0u16;
        let chunk = vec![0x55u8; 60_000];
        let mut start = vec![28, 0x85];
        start.extend_from_slice(&chunk);
        d.push(seq, 1, false, &start, &mut out);
        for _ in 0..(MAX_ACCESS_UNIT / chunk.len() + 1) {
            seq += 1;
            let mut mid = vec![28, 0x05];
            mid.extend_from_slice(&chunk);
            d.push(seq, 1, false, &mid, &mut out);
        }
        d.push(seq + 1, 1, true, &[28, 0x45, 1], &mut out);
        assert!(out.is_empty());
        assert_eq!(d.drops().dropped_units, 1);
    }
}
