//! RTCP for a sender (RFC 3550 section 6): building Sender Reports, reading clients' reports.
//!
//! Owns: the byte layout of the compound SR + SDES CNAME packet we send, NTP timestamps, and
//! parsing of Receiver (and Sender) Report blocks that clients send back. Does not own: when
//! reports are sent, sockets, or what is done with reception statistics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: u8 = 2;
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const SDES_CNAME: u8 = 1;
/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const REPORT_BLOCK_LEN: usize = 24;

/// Why a client's RTCP packet was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer than 4 bytes where a packet header was expected, at this offset.
    Truncated { offset: usize },
    /// The version field is not 2.
    BadVersion { offset: usize, version: u8 },
    /// The length field runs past the end of the buffer.
    BadLength { offset: usize, length_words: u16 },
    /// An SR or RR announces more report blocks than its length holds.
    ReportCount { offset: usize, count: u8 },
    /// The padding count is zero or larger than the packet.
    BadPadding { offset: usize },
}

impl std::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtcpError::Truncated { offset } => write!(f, "RTCP truncated at byte {offset}"),
            RtcpError::BadVersion { offset, version } => {
                write!(f, "RTCP version {version} at byte {offset}, expected 2")
            }
            RtcpError::BadLength {
                offset,
                length_words,
            } => write!(
                f,
                "RTCP packet at byte {offset} claims {length_words} words past the buffer"
            ),
            RtcpError::ReportCount { offset, count } => write!(
                f,
                "RTCP report at byte {offset} claims {count} blocks that do not fit"
            ),
            RtcpError::BadPadding { offset } => {
                write!(f, "RTCP packet at byte {offset} has invalid padding")
            }
        }
    }
}

impl std::error::Error for RtcpError {}

/// One reception report block (RFC 3550 6.4.1): how a receiver sees source `ssrc`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceptionReport {
    /// The source this block reports on (ours, when it is about our stream).
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
}

/// 64-bit NTP timestamp (seconds since 1900 in the high word, binary fraction in the low
/// word) of a wall-clock time. Times before 1900 or after 2036's wrap are taken modulo 2^32
/// seconds, as NTP does.
pub fn ntp_timestamp(wall: SystemTime) -> u64 {
    let (secs, nanos) = match wall.duration_since(UNIX_EPOCH) {
        Ok(d) => (NTP_UNIX_OFFSET.wrapping_add(d.as_secs()), d.subsec_nanos()),
        Err(e) => {
            // Before 1970 (a board without RTC before time sync): count back from 1970.
            let d = e.duration();
            let mut secs = NTP_UNIX_OFFSET.wrapping_sub(d.as_secs());
            let mut nanos = 0;
            if d.subsec_nanos() > 0 {
                secs = secs.wrapping_sub(1);
                nanos = 1_000_000_000 - d.subsec_nanos();
            }
            (secs, nanos)
        }
    };
    let frac = (u64::from(nanos) << 32) / 1_000_000_000;
    ((secs & 0xFFFF_FFFF) << 32) | frac
}

/// Inverse of [`ntp_timestamp`] for times after 1970 within the current NTP era.
pub fn ntp_to_system_time(ntp: u64) -> SystemTime {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let nanos = ((ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32;
    UNIX_EPOCH + Duration::new(secs, nanos as u32)
}

fn push_header(out: &mut Vec<u8>, count: u8, pt: u8, length_words: u16) {
    out.push((VERSION << 6) | (count & 0x1F));
    out.push(pt);
    out.extend_from_slice(&length_words.to_be_bytes());
}

/// RTCP BYE (RFC 3550 6.6) for one SSRC: the stream ends for this receiver.
pub fn bye(ssrc: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = (VERSION << 6) | 1;
    b[1] = PT_BYE;
    b[2..4].copy_from_slice(&1u16.to_be_bytes());
    b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    b
}

/// RTCP Sender Report (RFC 3550 6.4.1) + SDES CNAME compound packet.
///
/// `wall` and `rtp_timestamp` must describe the same instant (the RTP timestamp the stream
/// would have at `wall`), so receivers can map RTP time to wall time. `packet_count` and
/// `octet_count` are the sender's totals (payload octets, RTP headers excluded). A CNAME
/// longer than 255 bytes is cut at a character boundary.
pub fn sender_report(
    ssrc: u32,
    wall: SystemTime,
    rtp_timestamp: u32,
    packet_count: u32,
    octet_count: u32,
    cname: &str,
) -> Vec<u8> {
    let mut cname_len = cname.len().min(255);
    while !cname.is_char_boundary(cname_len) {
        cname_len -= 1;
    }
    let cname = &cname.as_bytes()[..cname_len];
    // SDES chunk: SSRC, CNAME item (type, length, text), END item, padded to 32 bits.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let mut out = Vec::with_capacity(28 + 4 + chunk_len);

    push_header(&mut out, 0, PT_SR, 6);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp_timestamp(wall).to_be_bytes());
    out.extend_from_slice(&rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&packet_count.to_be_bytes());
    out.extend_from_slice(&octet_count.to_be_bytes());

    push_header(&mut out, 1, PT_SDES, (chunk_len / 4) as u16);
    let chunk_start = out.len();
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    // At least one zero byte: the END item, then padding to the chunk's 32-bit boundary.
    out.resize(chunk_start + chunk_len, 0);
    out
}

/// Parses a compound RTCP packet from a client and returns every reception report block of
/// its RR and SR packets, in order. Each block's `ssrc` names the source it is about: callers
/// keep the blocks whose `ssrc` is their stream's. Other packet types (SDES, BYE, APP,
/// feedback) are skipped. Returns an error on malformed input; never panics.
pub fn parse_receiver_reports(buf: &[u8]) -> Result<Vec<ReceptionReport>, RtcpError> {
    let mut reports = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let header = buf
            .get(offset..offset + 4)
            .ok_or(RtcpError::Truncated { offset })?;
        let version = header[0] >> 6;
        if version != VERSION {
            return Err(RtcpError::BadVersion { offset, version });
        }
        let padding = header[0] & 0x20 != 0;
        let count = header[0] & 0x1F;
        let pt = header[1];
        let length_words = u16::from_be_bytes([header[2], header[3]]);
        let len = (usize::from(length_words) + 1) * 4;
        let packet = buf.get(offset..offset + len).ok_or(RtcpError::BadLength {
            offset,
            length_words,
        })?;
        let mut body_end = len;
        if padding {
            // The last octet counts the padding octets, itself included.
            let pad = usize::from(packet[len - 1]);
            if pad == 0 || pad > len - 4 {
                return Err(RtcpError::BadPadding { offset });
            }
            body_end = len - pad;
        }
        let blocks_start = match pt {
            PT_SR => Some(4 + 4 + 20),
            PT_RR => Some(4 + 4),
            _ => None,
        };
        if let Some(start) = blocks_start {
            let blocks_end = start + usize::from(count) * REPORT_BLOCK_LEN;
            if blocks_end > body_end {
                return Err(RtcpError::ReportCount { offset, count });
            }
            for block in packet[start..blocks_end].chunks_exact(REPORT_BLOCK_LEN) {
                reports.push(parse_block(block));
            }
        }
        offset += len;
    }
    Ok(reports)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One 24-byte report block.
fn parse_block(b: &[u8]) -> ReceptionReport {
    // 24-bit two's complement: shift into the top of an i32 and back to sign-extend.
    let lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
    ReceptionReport {
        ssrc: be32(&b[0..4]),
        fraction_lost: b[4],
        cumulative_lost: lost,
        highest_seq: be32(&b[8..12]),
        jitter: be32(&b[12..16]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_timestamps() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        assert_eq!(
            ntp_timestamp(t),
            ((NTP_UNIX_OFFSET + 1_700_000_000) << 32) | 0x8000_0000
        );
        // A quarter second before 1970.
        let t = UNIX_EPOCH - Duration::from_millis(250);
        assert_eq!(
            ntp_timestamp(t),
            ((NTP_UNIX_OFFSET - 1) << 32) | 0xC000_0000
        );
        // Round trip within a nanosecond or two of fraction rounding.
        let t = UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
        let back = ntp_to_system_time(ntp_timestamp(t));
        let diff = t.duration_since(back).unwrap_or_default();
        assert!(diff < Duration::from_nanos(2), "{diff:?}");
        // After the 2036 NTP era wrap the seconds are taken modulo 2^32.
        let t = UNIX_EPOCH + Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET + 5);
        assert_eq!(ntp_timestamp(t) >> 32, 5);
    }

    #[test]
    fn sender_report_layout() {
        let wall = UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
        let sr = sender_report(0x0102_0304, wall, 0xAABB_CCDD, 1000, 123_456, "vigint@cam");
        let ntp = ((NTP_UNIX_OFFSET + 1_700_000_000) << 32) | 0x4000_0000;
        let mut expected = vec![0x80, 200, 0, 6, 1, 2, 3, 4];
        expected.extend_from_slice(&ntp.to_be_bytes());
        expected.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
        expected.extend_from_slice(&1000u32.to_be_bytes());
        expected.extend_from_slice(&123_456u32.to_be_bytes());
        // SDES: 4 (ssrc) + 2 + 10 (cname) + 1 (end) = 17 -> 20 bytes = 5 words.
        expected.extend_from_slice(&[0x81, 202, 0, 5, 1, 2, 3, 4, 1, 10]);
        expected.extend_from_slice(b"vigint@cam");
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(sr, expected);
        assert_eq!(sr.len() % 4, 0);
        // Our own parser sees an SR without report blocks and skips the SDES.
        assert_eq!(parse_receiver_reports(&sr), Ok(vec![]));
    }

    #[test]
    fn retina_reads_our_sender_report() {
        let wall = UNIX_EPOCH + Duration::new(1_700_000_000, 1);
        let sr = sender_report(0xCAFE, wall, 90_000, 10, 20, "cam");
        let (first, rest) = retina::rtcp::PacketRef::parse(&sr).unwrap();
        let first = first.as_sender_report().unwrap().unwrap();
        assert_eq!(first.ssrc(), 0xCAFE);
        assert_eq!(first.rtp_timestamp(), 90_000);
        assert_eq!(first.ntp_timestamp().0, ntp_timestamp(wall));
        let (sdes, rest) = retina::rtcp::PacketRef::parse(rest).unwrap();
        assert_eq!(sdes.payload_type(), PT_SDES);
        assert!(rest.is_empty());
    }

    #[test]
    fn sdes_padding_always_has_an_end_item() {
        for n in 0..300 {
            let cname = "x".repeat(n);
            let sr = sender_report(1, UNIX_EPOCH, 0, 0, 0, &cname);
            assert_eq!(sr.len() % 4, 0);
            let sdes = &sr[28..];
            let words = u16::from_be_bytes([sdes[2], sdes[3]]) as usize;
            assert_eq!(sdes.len(), 4 + words * 4);
            let item_len = sdes[9] as usize;
            assert_eq!(item_len, n.min(255));
            // END item right after the text, zero up to the end.
            assert!(sdes[10 + item_len..].iter().all(|&b| b == 0));
            assert!(sdes.len() > 10 + item_len);
        }
        // Multi-byte characters are not split.
        let sr = sender_report(1, UNIX_EPOCH, 0, 0, 0, &"é".repeat(200));
        assert_eq!(sr[28 + 9], 254);
    }

    /// An RR as GStreamer and ffmpeg send it: RR with one block + SDES CNAME.
    fn receiver_report(lost: [u8; 3]) -> Vec<u8> {
        let mut rr = vec![0x81, 201, 0, 7, 0xDE, 0xAD, 0xBE, 0xEF];
        rr.extend_from_slice(&[0x01, 0x02, 0x03, 0x04]); // about ssrc 0x01020304
        rr.push(64); // 25 % lost
        rr.extend_from_slice(&lost);
        rr.extend_from_slice(&0x0001_0005u32.to_be_bytes()); // 1 cycle, seq 5
        rr.extend_from_slice(&77u32.to_be_bytes()); // jitter
        rr.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]); // LSR
        rr.extend_from_slice(&[0, 0, 0, 9]); // DLSR
        rr.extend_from_slice(&[0x81, 202, 0, 3, 0xDE, 0xAD, 0xBE, 0xEF, 1, 3, b'a', b'b']);
        rr.extend_from_slice(&[b'c', 0, 0, 0]);
        rr
    }

    #[test]
    fn parses_receiver_report_blocks() {
        let rr = receiver_report([0, 0, 12]);
        assert_eq!(
            parse_receiver_reports(&rr),
            Ok(vec![ReceptionReport {
                ssrc: 0x0102_0304,
                fraction_lost: 64,
                cumulative_lost: 12,
                highest_seq: 0x0001_0005,
                jitter: 77,
            }])
        );
        let rr = receiver_report([0xFF, 0xFF, 0xFE]);
        assert_eq!(parse_receiver_reports(&rr).unwrap()[0].cumulative_lost, -2);
        let rr = receiver_report([0x7F, 0xFF, 0xFF]);
        assert_eq!(
            parse_receiver_reports(&rr).unwrap()[0].cumulative_lost,
            0x7F_FFFF
        );
    }

    #[test]
    fn parses_blocks_in_sender_reports_and_empty_rr() {
        // A client that also sends (SR) with two blocks, then an empty RR.
        let mut sr = vec![0x82, 200, 0, 18, 0, 0, 0, 9];
        sr.extend_from_slice(&[0; 20]);
        for ssrc in [5u32, 6] {
            sr.extend_from_slice(&ssrc.to_be_bytes());
            sr.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        sr.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 9]);
        let got = parse_receiver_reports(&sr).unwrap();
        assert_eq!(got.iter().map(|r| r.ssrc).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(got[0].cumulative_lost, 1);
        assert_eq!(got[0].highest_seq, 2);
        assert_eq!(got[0].jitter, 3);
    }

    #[test]
    fn rejects_malformed_packets() {
        let rr = receiver_report([0, 0, 1]);
        assert_eq!(
            parse_receiver_reports(&rr[..3]),
            Err(RtcpError::Truncated { offset: 0 })
        );
        let mut bad = rr.clone();
        bad[0] = 0x41;
        assert_eq!(
            parse_receiver_reports(&bad),
            Err(RtcpError::BadVersion {
                offset: 0,
                version: 1
            })
        );
        assert_eq!(
            parse_receiver_reports(&rr[..rr.len() - 1]),
            Err(RtcpError::BadLength {
                offset: 32,
                length_words: 3
            })
        );
        // Claims 2 blocks in a packet sized for one.
        let mut bad = rr.clone();
        bad[0] = 0x82;
        assert_eq!(
            parse_receiver_reports(&bad),
            Err(RtcpError::ReportCount {
                offset: 0,
                count: 2
            })
        );
        // Padding that eats into the report block.
        let mut bad = rr[..32].to_vec();
        bad[0] |= 0x20;
        bad[31] = 8;
        assert_eq!(
            parse_receiver_reports(&bad),
            Err(RtcpError::ReportCount {
                offset: 0,
                count: 1
            })
        );
        bad[31] = 0;
        assert_eq!(
            parse_receiver_reports(&bad),
            Err(RtcpError::BadPadding { offset: 0 })
        );
        assert_eq!(parse_receiver_reports(&[]), Ok(vec![]));
    }

    #[test]
    fn padded_rr_is_accepted() {
        let mut rr = vec![0xA1, 201, 0, 8, 0, 0, 0, 1];
        rr.extend_from_slice(&[0, 0, 0, 7]);
        rr.extend_from_slice(&[0; 20]);
        rr.extend_from_slice(&[0, 0, 0, 4]); // 4 octets of padding
        assert_eq!(parse_receiver_reports(&rr).unwrap()[0].ssrc, 7);
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let valid = receiver_report([0, 1, 2]);
        for n in 0..=valid.len() {
            let _ = parse_receiver_reports(&valid[..n]);
        }
        let mut rng = crate::test_util::XorShift(0xDEAD_BEEF_CAFE_F00D);
        let mut rand = move || rng.next_u64();
        for _ in 0..20_000 {
            let len = (rand() % 120) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
            // Bias towards plausible headers so the parser gets past the first checks.
            if len > 4 && rand() % 2 == 0 {
                buf[0] = 0x80 | (buf[0] & 0x3F);
                buf[1] = [200, 201, 202, 203][(rand() % 4) as usize];
                buf[2] = 0;
                buf[3] %= (len / 4) as u8 + 1;
            }
            let _ = parse_receiver_reports(&buf);
            // Mutating one byte of a valid packet.
            let mut m = valid.clone();
            let i = (rand() as usize) % m.len();
            m[i] = rand() as u8;
            let _ = parse_receiver_reports(&m);
        }
    }

    #[test]
    fn bye_layout() {
        assert_eq!(bye(0x0102_0304), [0x81, 203, 0, 1, 1, 2, 3, 4]);
    }
}
