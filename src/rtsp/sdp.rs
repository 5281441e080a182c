//! Session description (RFC 4566 SDP, RFC 6184 section 8) for DESCRIBE responses.
//!
//! Owns: the text of the SDP for one H.264 video track and the track's control URL suffix.
//! Does not own: Content-Base, the RTSP response, or which address the server listens on.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::media::StreamInfo;

/// Control attribute of the video track; SETUP requests name `<base>/trackID=0`.
pub const TRACK_CONTROL: &str = "trackID=0";

/// The address type and address as SDP writes them; IPv4-mapped IPv6 addresses (what a
/// dual-stack listener reports for IPv4 peers) are written as plain IPv4.
fn sdp_addr(ip: IpAddr) -> (&'static str, IpAddr) {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ("IP4", IpAddr::V4(v4)),
            None => ("IP6", ip),
        },
        IpAddr::V4(_) => ("IP4", ip),
    }
}

/// A session name safe for one SDP line: control characters (CR, LF) are dropped so a path
/// name cannot inject lines; an empty name becomes "-" since s= must not be empty.
fn session_name(path_name: &str) -> String {
    let name: String = path_name.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    if name.is_empty() {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

/// SDP for DESCRIBE of one H.264 video track. `session_id` goes in o= (as both session id
/// and version); `server_ip` in o= (IP4 or IP6). The connection line is the wildcard address
/// of the same family: the real destination comes from SETUP. Lines end with CRLF.
pub fn describe(info: &StreamInfo, path_name: &str, server_ip: IpAddr, session_id: u64) -> String {
    let (addr_type, addr) = sdp_addr(server_ip);
    let any = if addr_type == "IP4" { "0.0.0.0" } else { "::" };
    let [p0, p1, p2] = info.profile_level_id();
    let mut fmtp = format!("packetization-mode=1;profile-level-id={p0:02X}{p1:02X}{p2:02X}");
    if !info.sps.is_empty() && !info.pps.is_empty() {
        // Out-of-band parameter sets let clients decode before the first in-band SPS/PPS.
        let _ = write!(
            fmtp,
            ";sprop-parameter-sets={},{}",
            STANDARD.encode(&info.sps),
            STANDARD.encode(&info.pps)
        );
    }
    let mut sdp = String::with_capacity(256 + fmtp.len());
    let mut line = |l: std::fmt::Arguments<'_>| {
        let _ = sdp.write_fmt(l);
        sdp.push_str("\r\n");
    };
    line(format_args!("v=0"));
    line(format_args!(
        "o=- {session_id} {session_id} IN {addr_type} {addr}"
    ));
    line(format_args!("s={}", session_name(path_name)));
    line(format_args!("c=IN {addr_type} {any}"));
    line(format_args!("t=0 0"));
    line(format_args!("a=control:*"));
    line(format_args!(
        "m=video 0 RTP/AVP {}",
        super::rtp::PAYLOAD_TYPE
    ));
    line(format_args!(
        "a=rtpmap:{} H264/{}",
        super::rtp::PAYLOAD_TYPE,
        crate::media::CLOCK_RATE
    ));
    line(format_args!("a=fmtp:{} {fmtp}", super::rtp::PAYLOAD_TYPE));
    line(format_args!("a=control:{TRACK_CONTROL}"));
    if info.fps > 0 {
        line(format_args!("a=framerate:{}", info.fps));
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn info() -> StreamInfo {
        StreamInfo {
            width: 1280,
            height: 720,
            fps: 30,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
        }
    }

    #[test]
    fn every_line_for_ipv4() {
        let sdp = describe(
            &info(),
            "cam",
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
            1234,
        );
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.replace("\r\n", "").contains('\n'), "CRLF only");
        let lines: Vec<&str> = sdp.trim_end_matches("\r\n").split("\r\n").collect();
        assert_eq!(
            lines,
            vec![
                "v=0",
                "o=- 1234 1234 IN IP4 192.168.1.20",
                "s=cam",
                "c=IN IP4 0.0.0.0",
                "t=0 0",
                "a=control:*",
                "m=video 0 RTP/AVP 96",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;\
                 sprop-parameter-sets=Z0LAH9kAUAU=,aM48gA==",
                "a=control:trackID=0",
                "a=framerate:30",
            ]
        );
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let sdp = describe(&info(), "cam", IpAddr::V6(Ipv6Addr::LOCALHOST), u64::MAX);
        assert!(sdp.contains("\r\no=- 18446744073709551615 18446744073709551615 IN IP6 ::1\r\n"));
        assert!(sdp.contains("\r\nc=IN IP6 ::\r\n"));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 5).to_ipv6_mapped());
        let sdp = describe(&info(), "cam", mapped, 1);
        assert!(sdp.contains("\r\no=- 1 1 IN IP4 10.0.0.5\r\n"));
        assert!(sdp.contains("\r\nc=IN IP4 0.0.0.0\r\n"));
    }

    #[test]
    fn lowercase_profile_bytes_become_uppercase_hex() {
        let mut i = info();
        i.sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x28, 0xac]);
        let sdp = describe(&i, "cam", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        assert!(sdp.contains(";profile-level-id=640028;"));
    }

    #[test]
    fn missing_parameter_sets_and_fps() {
        let mut i = info();
        i.sps = Bytes::new();
        i.fps = 0;
        let sdp = describe(&i, "cam", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        // Without an SPS the fallback profile (constrained baseline 3.1) is announced and
        // no sprop-parameter-sets: clients take the parameter sets from the stream.
        assert!(sdp.contains("\r\na=fmtp:96 packetization-mode=1;profile-level-id=42C01F\r\n"));
        assert!(!sdp.contains("framerate"));
    }

    #[test]
    fn session_name_cannot_inject_lines() {
        let sdp = describe(
            &info(),
            "a\r\nm=audio 0 RTP/AVP 0",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            1,
        );
        assert!(sdp.contains("\r\ns=am=audio 0 RTP/AVP 0\r\n"));
        assert_eq!(
            sdp.matches("m=").count(),
            2,
            "only m=video (and the s= text)"
        );
        assert_eq!(sdp.matches("\r\nm=").count(), 1);
        let sdp = describe(&info(), " \n", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        assert!(sdp.contains("\r\ns=-\r\n"));
    }

    #[test]
    fn parameter_sets_decode_back() {
        let sdp = describe(&info(), "cam", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        let sprop = sdp
            .split("sprop-parameter-sets=")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        let sets: Vec<Vec<u8>> = sprop
            .split(',')
            .map(|s| STANDARD.decode(s).unwrap())
            .collect();
        assert_eq!(sets, vec![info().sps.to_vec(), info().pps.to_vec()]);
    }
}
