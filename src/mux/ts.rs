//! MPEG-2 transport stream (ISO/IEC 13818-1) for one H.264 track, frame by frame.
//!
//! Owns: the bytes of a live transport stream as players of the "RTSP stream viewer" API
//! expect it (mpegts.js, ffmpeg): PAT and PMT (program 1, the video on PID 0x100, which
//! also carries the PCR) before every key frame, so a viewer that starts at a key frame
//! has them first; one PES per access unit (PTS and DTS, an access unit delimiter first,
//! SPS/PPS in band at key frames); 188-byte packets with continuity counters and
//! adaptation-field stuffing; the PCR and the random-access flag on a key frame's first
//! packet. Pure: no I/O, no clock. Does not own: which frames are sent to whom (the live
//! view), the timeline's origin (the caller passes 90 kHz times from its own zero).
//!
//! Written here rather than taken from a crate: the Rust TS muxers found (mpeg-ts-core,
//! xmpegts) say "early development" or are not kept; this needs only a small subset.

use crate::h264;
use crate::media::{EncodedFrame, StreamInfo};

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0x0000;
const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x0100;
const PROGRAM: u16 = 1;
/// PMT stream_type for H.264 (ISO/IEC 13818-1 Table 2-34).
const STREAM_TYPE_H264: u8 = 0x1b;
/// PES stream_id of the first video stream.
const STREAM_ID_VIDEO: u8 = 0xe0;
/// Timestamps are 33 bits of 90 kHz.
const TS_MASK: u64 = (1 << 33) - 1;
/// An access unit delimiter, primary_pic_type 7 (any slice type): required before each
/// access unit in a transport stream (ISO/IEC 13818-1, 2.14.1).
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

/// Writes a transport stream, one frame at a time.
#[derive(Default)]
pub struct TsMuxer {
    pat_cc: u8,
    pmt_cc: u8,
    video_cc: u8,
    pes: Vec<u8>,
}

impl TsMuxer {
    pub fn new() -> TsMuxer {
        TsMuxer::default()
    }

    /// The packets of one access unit, appended to `out`. `pts`/`dts` are 90 kHz ticks
    /// (taken modulo 2^33); `info` supplies SPS/PPS for a key frame that lacks them in
    /// band. A key frame is preceded by PAT and PMT.
    pub fn push(
        &mut self,
        frame: &EncodedFrame,
        pts: u64,
        dts: u64,
        info: Option<&StreamInfo>,
        out: &mut Vec<u8>,
    ) {
        if frame.is_idr {
            self.tables(out);
        }
        let (pts, dts) = (pts & TS_MASK, dts & TS_MASK);
        self.pes.clear();
        pes_header(pts, dts, &mut self.pes);
        // The elementary stream: AUD, then (key frames) SPS and PPS unless in band, then
        // the frame's NAL units except AUDs of its own.
        self.pes.extend_from_slice(&AUD);
        if frame.is_idr {
            let has = |t: u8| frame.nal_units().any(|n| h264::nal_type(n) == Some(t));
            if let Some(info) = info {
                if !has(h264::NAL_SPS) {
                    self.pes.extend_from_slice(&[0, 0, 0, 1]);
                    self.pes.extend_from_slice(&info.sps);
                }
                if !has(h264::NAL_PPS) {
                    self.pes.extend_from_slice(&[0, 0, 0, 1]);
                    self.pes.extend_from_slice(&info.pps);
                }
            }
        }
        for nal in frame.nal_units() {
            if h264::nal_type(nal) != Some(h264::NAL_AUD) {
                self.pes.extend_from_slice(&[0, 0, 0, 1]);
                self.pes.extend_from_slice(nal);
            }
        }
        let first = frame.is_idr.then_some(KeyFields { pcr: dts });
        packetize(VIDEO_PID, &mut self.video_cc, &self.pes, first, out);
    }

    /// PAT and PMT, one packet each.
    fn tables(&mut self, out: &mut Vec<u8>) {
        // PAT: program 1's PMT is on PMT_PID.
        let mut pat = vec![0x00, 0xb0, 0, 0x00, 0x01, 0xc1, 0x00, 0x00];
        pat.extend_from_slice(&PROGRAM.to_be_bytes());
        pat.extend_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
        section(&mut pat);
        psi_packet(PAT_PID, &mut self.pat_cc, &pat, out);
        // PMT: the PCR and the one H.264 stream on VIDEO_PID.
        let mut pmt = vec![0x02, 0xb0, 0];
        pmt.extend_from_slice(&PROGRAM.to_be_bytes());
        pmt.extend_from_slice(&[0xc1, 0x00, 0x00]);
        pmt.extend_from_slice(&(0xe000 | VIDEO_PID).to_be_bytes()); // PCR_PID
        pmt.extend_from_slice(&[0xf0, 0x00]); // no program info
        pmt.push(STREAM_TYPE_H264);
        pmt.extend_from_slice(&(0xe000 | VIDEO_PID).to_be_bytes());
        pmt.extend_from_slice(&[0xf0, 0x00]); // no ES info
        section(&mut pmt);
        psi_packet(PMT_PID, &mut self.pmt_cc, &pmt, out);
    }
}

/// Fills in a PSI section's length (bytes after the length field, CRC included) and
/// appends its CRC.
fn section(s: &mut Vec<u8>) {
    let len = s.len() - 3 + 4;
    s[1] = 0xb0 | ((len >> 8) as u8 & 0x0f);
    s[2] = len as u8;
    let crc = crc32_mpeg2(s);
    s.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected, no final xor.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One packet holding a whole section: pointer field 0, the section, 0xFF to the end.
fn psi_packet(pid: u16, cc: &mut u8, section: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    header(pid, true, false, cc, out);
    out.push(0); // pointer_field
    out.extend_from_slice(section);
    out.resize(start + PACKET, 0xff);
}

fn header(pid: u16, unit_start: bool, adaptation: bool, cc: &mut u8, out: &mut Vec<u8>) {
    out.push(SYNC);
    out.push(if unit_start { 0x40 } else { 0 } | (pid >> 8) as u8 & 0x1f);
    out.push(pid as u8);
    // Payload always; an adaptation field when asked.
    out.push(if adaptation { 0x30 } else { 0x10 } | (*cc & 0x0f));
    *cc = (*cc + 1) & 0x0f;
}

/// A PES header with PTS and (when different) DTS; PES_packet_length 0 (unbounded, allowed
/// for video).
fn pes_header(pts: u64, dts: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 1, STREAM_ID_VIDEO, 0, 0]);
    out.push(0x84); // '10', not scrambled, data_alignment_indicator
    if pts == dts {
        out.extend_from_slice(&[0x80, 5]);
        timestamp(0x2, pts, out);
    } else {
        out.extend_from_slice(&[0xc0, 10]);
        timestamp(0x3, pts, out);
        timestamp(0x1, dts, out);
    }
}

/// A 33-bit timestamp in the PES header's 5-byte form with its 4-bit prefix.
fn timestamp(prefix: u8, t: u64, out: &mut Vec<u8>) {
    out.push(prefix << 4 | ((t >> 29) as u8 & 0x0e) | 1);
    out.push((t >> 22) as u8);
    out.push(((t >> 14) as u8 & 0xfe) | 1);
    out.push((t >> 7) as u8);
    out.push(((t << 1) as u8 & 0xfe) | 1);
}

/// What a key frame's first packet carries in its adaptation field.
#[derive(Clone, Copy)]
struct KeyFields {
    /// 90 kHz.
    pcr: u64,
}

/// Splits `pes` into packets of `pid`; the first carries `first`'s PCR and the
/// random-access flag; the last is filled out with adaptation-field stuffing.
fn packetize(pid: u16, cc: &mut u8, mut pes: &[u8], first: Option<KeyFields>, out: &mut Vec<u8>) {
    let mut unit_start = true;
    while !pes.is_empty() {
        // The adaptation field's body after its length byte: flags and PCR.
        let mut fields = [0u8; 7];
        let mut fields_len = 0;
        if let (true, Some(k)) = (unit_start, first) {
            let base = k.pcr & TS_MASK;
            fields[0] = 0x50; // random_access_indicator, PCR_flag
            fields[1] = (base >> 25) as u8;
            fields[2] = (base >> 17) as u8;
            fields[3] = (base >> 9) as u8;
            fields[4] = (base >> 1) as u8;
            fields[5] = ((base << 7) as u8 & 0x80) | 0x7e; // 6 reserved bits, extension 0
            fields[6] = 0;
            fields_len = 7;
        }
        let af_len = if fields_len > 0 { 1 + fields_len } else { 0 };
        let room = PACKET - 4 - af_len;
        let take = pes.len().min(room);
        let stuffing = room - take;
        // Stuffing also needs an adaptation field: its length byte, then (from 2 bytes
        // on) a flags byte, then 0xFF.
        let (af_total, flags_needed) = match (af_len, stuffing) {
            (0, 0) => (0, false),
            (0, s) => (s, s >= 2),
            (a, s) => (a + s, false),
        };
        let start = out.len();
        header(pid, unit_start, af_total > 0, cc, out);
        if af_total > 0 {
            out.push((af_total - 1) as u8);
            if fields_len > 0 {
                out.extend_from_slice(&fields[..fields_len]);
            } else if flags_needed {
                out.push(0x00);
            }
            out.resize(start + 4 + af_total, 0xff);
        }
        out.extend_from_slice(&pes[..take]);
        debug_assert_eq!(out.len() - start, PACKET);
        pes = &pes[take..];
        unit_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::SystemTime;

    #[test]
    fn crc_of_the_check_string() {
        // CRC-32/MPEG-2's check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn timestamps_round_trip_through_the_pes_form() {
        for t in [0u64, 1, 90_000, (1 << 32) + 12345, TS_MASK] {
            let mut b = Vec::new();
            timestamp(0x2, t, &mut b);
            let back = (u64::from(b[0] >> 1) & 0x07) << 30
                | u64::from(b[1]) << 22
                | u64::from(b[2] >> 1) << 15
                | u64::from(b[3]) << 7
                | u64::from(b[4] >> 1);
            assert_eq!(back, t);
            assert_eq!(b[0] >> 4, 0x2);
            assert!(b[0] & 1 == 1 && b[2] & 1 == 1 && b[4] & 1 == 1, "markers");
        }
    }

    fn frame(len: usize, idr: bool) -> EncodedFrame {
        let mut data = vec![0, 0, 0, 1, if idr { 0x65 } else { 0x41 }];
        data.resize(len, 0xab);
        EncodedFrame::from_annexb(Bytes::from(data), 0, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn every_size_fills_whole_packets_with_rising_continuity_counters() {
        let mut m = TsMuxer::new();
        let mut last_cc: Option<u8> = None;
        for len in (5..600).chain([183, 184, 185, 176, 177, 4000]) {
            for idr in [false, true] {
                let mut out = Vec::new();
                m.push(&frame(len, idr), 9000, 9000, None, &mut out);
                assert_eq!(out.len() % PACKET, 0, "len {len}");
                let mut payload = Vec::new();
                for p in out.chunks(PACKET) {
                    assert_eq!(p[0], SYNC);
                    let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
                    if pid != VIDEO_PID {
                        continue;
                    }
                    let cc = p[3] & 0x0f;
                    if let Some(l) = last_cc {
                        assert_eq!(cc, (l + 1) & 0x0f);
                    }
                    last_cc = Some(cc);
                    let body = match p[3] & 0x30 {
                        0x10 => &p[4..],
                        0x30 => &p[5 + usize::from(p[4])..],
                        other => panic!("adaptation control {other:#x}"),
                    };
                    payload.extend_from_slice(body);
                }
                // The PES carries exactly the header, the AUD and the frame.
                let header_len = 9 + 5;
                assert_eq!(payload.len(), header_len + AUD.len() + len, "len {len}");
                assert_eq!(&payload[header_len..header_len + AUD.len()], &AUD);
            }
        }
    }

    #[test]
    fn a_key_frame_starts_with_pat_pmt_and_carries_the_pcr() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        m.push(&frame(1000, true), 93_000, 90_000, None, &mut out);
        let pids: Vec<u16> = out
            .chunks(PACKET)
            .map(|p| u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]))
            .collect();
        assert_eq!(&pids[..3], &[PAT_PID, PMT_PID, VIDEO_PID]);
        let first = &out[2 * PACKET..3 * PACKET];
        assert_eq!(first[1] & 0x40, 0x40, "unit start");
        assert_eq!(first[5], 0x50, "random access, PCR");
        let pcr = u64::from(first[6]) << 25
            | u64::from(first[7]) << 17
            | u64::from(first[8]) << 9
            | u64::from(first[9]) << 1
            | u64::from(first[10] >> 7);
        assert_eq!(pcr, 90_000);
        // The section CRCs check: the CRC over a section including its CRC is 0.
        for p in out.chunks(PACKET).take(2) {
            let len = usize::from(p[6] & 0x0f) << 8 | usize::from(p[7]);
            assert_eq!(crc32_mpeg2(&p[5..5 + 3 + len]), 0);
        }
    }
}
