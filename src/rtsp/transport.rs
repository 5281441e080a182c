//! The RTSP `Transport` header (RFC 2326 12.39): which of the client's offers we accept.
//!
//! Owns: parsing the client's list and formatting our answer. Pure.
//! Written here rather than taken from rtsp-types: its parser asserts on some malformed
//! quoted values, and a client must never be able to panic the server.

/// A transport we can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTP and RTCP interleaved on the RTSP connection, on these channels.
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// Unicast UDP to the client's ports (on the address of its RTSP connection).
    Udp { rtp_port: u16, rtcp_port: u16 },
}

/// Which way media goes: to the client (PLAY, the default) or from it (RECORD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Play,
    Record,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Play => "PLAY",
            Mode::Record => "RECORD",
        }
    }
}

/// Why no offer could be accepted (answered with 461 Unsupported Transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// Picks the first offer in the client's list that we support for playing.
pub fn choose(header: &str) -> Result<Transport, Unsupported> {
    choose_for(header, Mode::Play)
}

/// Picks the first offer in the client's list that we support in `mode` (an offer without
/// `mode` means PLAY).
pub fn choose_for(header: &str, mode: Mode) -> Result<Transport, Unsupported> {
    let mut reasons = Vec::new();
    for offer in header.split(',') {
        match parse_offer(offer.trim(), mode) {
            Ok(t) => return Ok(t),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(Unsupported(reasons.join("; ")))
}

fn parse_offer(offer: &str, wanted: Mode) -> Result<Transport, String> {
    let mut parts = offer.split(';').map(str::trim);
    let spec = parts.next().unwrap_or_default();
    let tcp = match spec.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return Err(format!("`{spec}` is not RTP/AVP over UDP or TCP")),
    };
    let mut interleaved = None;
    let mut client_port = None;
    let mut mode = Mode::Play;
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("multicast", _) => return Err("multicast is not offered".into()),
            ("mode", Some(v)) => {
                let v = v.trim_matches('"');
                mode = if v.eq_ignore_ascii_case("play") {
                    Mode::Play
                } else if v.eq_ignore_ascii_case("record") || v.eq_ignore_ascii_case("receive") {
                    // `receive`: live555's word for the same (RTSPClient, DSS).
                    Mode::Record
                } else {
                    return Err(format!("mode={v} is not supported (only PLAY and RECORD)"));
                };
            }
            ("interleaved", Some(v)) => interleaved = Some(pair::<u8>(v, "interleaved")?),
            ("client_port", Some(v)) => client_port = Some(pair::<u16>(v, "client_port")?),
            // unicast, ttl, ssrc, destination (ignored: media only goes to the requester,
            // so the server cannot be used to flood a third party), and extensions.
            _ => {}
        }
    }
    if mode != wanted {
        return Err(format!(
            "mode={} where {} was asked for",
            mode.as_str(),
            wanted.as_str()
        ));
    }
    if tcp {
        let (rtp, rtcp) = interleaved.unwrap_or((0, Some(1)));
        let rtcp = rtcp.unwrap_or(rtp.wrapping_add(1));
        if rtp == rtcp {
            return Err("interleaved channels must differ".into());
        }
        Ok(Transport::Tcp {
            rtp_channel: rtp,
            rtcp_channel: rtcp,
        })
    } else {
        let (rtp, rtcp) = client_port.ok_or("UDP needs client_port")?;
        let rtcp = rtcp.unwrap_or(rtp.wrapping_add(1));
        if rtp == 0 || rtcp == 0 {
            return Err("client_port 0 is not a port".into());
        }
        Ok(Transport::Udp {
            rtp_port: rtp,
            rtcp_port: rtcp,
        })
    }
}

fn pair<T: std::str::FromStr>(v: &str, name: &str) -> Result<(T, Option<T>), String> {
    let bad = || format!("{name}={v} is not N or N-M");
    match v.split_once('-') {
        Some((a, b)) => Ok((
            a.trim().parse().map_err(|_| bad())?,
            Some(b.trim().parse().map_err(|_| bad())?),
        )),
        None => Ok((v.trim().parse().map_err(|_| bad())?, None)),
    }
}

/// Our answer to a player: the chosen transport, with our UDP ports and the stream's SSRC.
pub fn answer(t: &Transport, server_ports: Option<(u16, u16)>, ssrc: u32) -> String {
    match *t {
        Transport::Tcp {
            rtp_channel,
            rtcp_channel,
        } => format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X};mode=\"PLAY\""),
        Transport::Udp { rtp_port, rtcp_port } => {
            let (srtp, srtcp) = server_ports.unwrap_or((0, 0));
            format!("RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={srtp}-{srtcp};ssrc={ssrc:08X};mode=\"PLAY\"")
        }
    }
}

/// Our answer to a publisher: the chosen transport, with our UDP ports (no SSRC: it is the
/// publisher's to choose).
pub fn answer_record(t: &Transport, server_ports: Option<(u16, u16)>) -> String {
    match *t {
        Transport::Tcp {
            rtp_channel,
            rtcp_channel,
        } => format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};mode=record"),
        Transport::Udp {
            rtp_port,
            rtcp_port,
        } => {
            let (srtp, srtcp) = server_ports.unwrap_or((0, 0));
            format!("RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={srtp}-{srtcp};mode=record")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_and_gstreamer_offers() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap(),
            Transport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            }
        );
        assert_eq!(
            choose("RTP/AVP/UDP;unicast;client_port=5000-5001").unwrap(),
            Transport::Udp {
                rtp_port: 5000,
                rtcp_port: 5001
            }
        );
        // GStreamer lists several; the first supported one wins.
        assert_eq!(
            choose("RTP/AVP;multicast;port=5000-5001,RTP/AVP;unicast;client_port=6000-6001;mode=\"PLAY\"").unwrap(),
            Transport::Udp {
                rtp_port: 6000,
                rtcp_port: 6001
            }
        );
    }

    #[test]
    fn unsupported_offers() {
        assert!(choose("RTP/AVP;multicast").is_err());
        assert!(choose("RTP/SAVP;unicast;client_port=1-2").is_err());
        assert!(choose("RTP/AVP;unicast").is_err(), "UDP without ports");
        assert!(choose("RTP/AVP/TCP;interleaved=0-1;mode=RECORD").is_err());
        assert!(choose_for("RTP/AVP/TCP;interleaved=0-1", Mode::Record).is_err());
        assert!(choose("RTP/AVP/TCP;interleaved=300-301").is_err());
        assert!(choose("RTP/AVP/TCP;interleaved=2-2").is_err());
        assert!(choose("").is_err());
        assert!(choose("RTP/AVP;unicast;client_port=0-1").is_err());
        assert!(choose("RTP/AVP;dest_addr=\"\\").is_err());
    }

    #[test]
    fn publishers_offers() {
        // ffmpeg (-f rtsp), GStreamer rtspclientsink, live555.
        for (offer, want) in [
            (
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
                Transport::Tcp {
                    rtp_channel: 0,
                    rtcp_channel: 1,
                },
            ),
            (
                "RTP/AVP/UDP;unicast;client_port=5002-5003;mode=record",
                Transport::Udp {
                    rtp_port: 5002,
                    rtcp_port: 5003,
                },
            ),
            (
                "RTP/AVP;unicast;client_port=7000-7001;mode=\"RECORD\"",
                Transport::Udp {
                    rtp_port: 7000,
                    rtcp_port: 7001,
                },
            ),
            (
                "RTP/AVP/TCP;unicast;mode=receive;interleaved=2-3",
                Transport::Tcp {
                    rtp_channel: 2,
                    rtcp_channel: 3,
                },
            ),
        ] {
            assert_eq!(choose_for(offer, Mode::Record), Ok(want), "{offer}");
        }
        assert_eq!(
            answer_record(
                &Transport::Udp {
                    rtp_port: 5002,
                    rtcp_port: 5003
                },
                Some((8000, 8001))
            ),
            "RTP/AVP;unicast;client_port=5002-5003;server_port=8000-8001;mode=record"
        );
    }

    #[test]
    fn tcp_default_channels_and_odd_channels() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast").unwrap(),
            Transport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            }
        );
        assert_eq!(
            choose("RTP/AVP/TCP;interleaved=4").unwrap(),
            Transport::Tcp {
                rtp_channel: 4,
                rtcp_channel: 5
            }
        );
    }

    #[test]
    fn answers() {
        let t = Transport::Udp {
            rtp_port: 5000,
            rtcp_port: 5001,
        };
        assert_eq!(
            answer(&t, Some((8000, 8001)), 0xABCD),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=0000ABCD;mode=\"PLAY\""
        );
    }
}
