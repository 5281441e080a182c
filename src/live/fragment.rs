//! One frame → one fMP4 fragment, for players that start anywhere and want each frame now.
//!
//! Owns: the live view's timeline (decode times from the path's first frame, so `tfdt`
//! starts near zero; a frame's duration is the last decode-time step, as the next frame is
//! not known yet: a player places each fragment by its `tfdt`, so a wrong guess never
//! accumulates), its fragment sequence, and the init segment of each stream description
//! (from the SPS/PPS a key frame carries in band, else from the path's description).
//! Pure: no I/O, no clock. Does not own: the boxes (`mux::fmp4`, shared with the recorder)
//! or who receives the bytes (`LiveViewer`).

use std::sync::Arc;

use bytes::Bytes;

use crate::h264;
use crate::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use crate::mux::fmp4;

/// What a player needs before fragments of one stream description.
#[derive(Debug)]
pub struct InitSegment {
    /// `ftyp` + `moov`.
    pub bytes: Bytes,
    /// RFC 6381 codec, e.g. `avc1.64001f`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Counts descriptions: a viewer holding another generation needs this one first.
    pub generation: u64,
    sps: Bytes,
    pps: Bytes,
}

impl InitSegment {
    /// The JSON text message that announces this description to a browser, before the
    /// init segment: the MIME type for `MediaSource.isTypeSupported`/`addSourceBuffer`.
    pub fn codec_message(&self) -> String {
        serde_json::json!({
            "type": "codec",
            "codec": self.codec,
            "mime": format!("video/mp4; codecs=\"{}\"", self.codec),
            "width": self.width,
            "height": self.height,
        })
        .to_string()
    }
}

/// One frame, muxed.
#[derive(Debug)]
pub struct LiveFragment {
    /// `moof` + `mdat`.
    pub bytes: Bytes,
    pub is_key: bool,
    /// The frame's decode time (the path's media time): how far behind a viewer is.
    pub dts_90k: i64,
    /// The description this fragment decodes with (fMP4); `None` for a transport stream,
    /// which carries its own tables and parameter sets.
    pub init: Option<Arc<InitSegment>>,
}

/// Turns a path's frames into fragments, in decode order.
#[derive(Default)]
pub struct FragmentMuxer {
    /// Media time of the first frame: the live timeline's zero.
    origin: Option<i64>,
    last_dts: Option<i64>,
    /// The last decode-time step, the guess for the next frame's duration.
    last_duration: Option<u32>,
    sequence: u32,
    init: Option<Arc<InitSegment>>,
    generations: u64,
    scratch: Vec<u8>,
}

impl FragmentMuxer {
    pub fn new() -> FragmentMuxer {
        FragmentMuxer::default()
    }

    /// The fragment of `frame`, or `None` while no description is known (a player could
    /// not decode it). `info` is the path's description, used when the key frame does not
    /// carry its SPS/PPS in band.
    pub fn push(
        &mut self,
        frame: &EncodedFrame,
        info: Option<&StreamInfo>,
    ) -> Option<LiveFragment> {
        if frame.is_idr {
            self.update_init(frame, info);
        }
        let init = self.init.clone()?;

        let origin = *self.origin.get_or_insert(frame.dts_90k);
        let duration = match self.last_dts {
            Some(prev) if frame.dts_90k > prev => {
                let step = u32::try_from(frame.dts_90k - prev).unwrap_or(u32::MAX);
                self.last_duration = Some(step);
                step
            }
            _ => self.last_duration.unwrap_or_else(|| default_duration(info)),
        };
        self.last_dts = Some(frame.dts_90k);

        self.scratch.clear();
        fmp4::append_avcc(frame, &mut self.scratch);
        let sample = fmp4::Sample {
            data: &self.scratch,
            duration,
            composition_offset: (frame.pts_90k - frame.dts_90k)
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
            is_sync: frame.is_idr,
        };
        // Decode times only rise within a path; a step back (should one come) is clamped
        // to the timeline's start rather than wrapped.
        let base = u64::try_from(frame.dts_90k - origin).unwrap_or(0);
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = fmp4::fragment(self.sequence, base, &[sample]);
        Some(LiveFragment {
            bytes: Bytes::from(bytes),
            is_key: frame.is_idr,
            dts_90k: frame.dts_90k,
            init: Some(init),
        })
    }

    /// At a key frame: a new init segment when its parameter sets differ from the current
    /// one's (in band first; the path's description otherwise).
    fn update_init(&mut self, frame: &EncodedFrame, info: Option<&StreamInfo>) {
        let mut sps = None;
        let mut pps = None;
        for nal in frame.nal_units() {
            match h264::nal_type(nal) {
                Some(h264::NAL_SPS) if sps.is_none() => sps = Some(Bytes::copy_from_slice(nal)),
                Some(h264::NAL_PPS) if pps.is_none() => pps = Some(Bytes::copy_from_slice(nal)),
                _ => {}
            }
        }
        let (sps, pps) = match (sps, pps, info) {
            (Some(sps), Some(pps), _) => (sps, pps),
            (_, _, Some(info)) => (info.sps.clone(), info.pps.clone()),
            _ => return,
        };
        if let Some(cur) = &self.init {
            if cur.sps == sps && cur.pps == pps {
                return;
            }
        }
        let Ok(parsed) = h264::parse_sps(&sps) else {
            return; // Keeps the current description: a broken SPS decodes nothing better.
        };
        let described = StreamInfo {
            width: parsed.width,
            height: parsed.height,
            fps: info.map_or(0, |i| i.fps),
            sps: sps.clone(),
            pps: pps.clone(),
        };
        self.generations += 1;
        self.init = Some(Arc::new(InitSegment {
            bytes: Bytes::from(fmp4::init_segment(&described)),
            codec: {
                let [profile, constraints, level] = described.profile_level_id();
                format!("avc1.{profile:02x}{constraints:02x}{level:02x}")
            },
            width: parsed.width,
            height: parsed.height,
            generation: self.generations,
            sps,
            pps,
        }));
    }
}

/// A frame's duration before two frames have been seen: from the frame rate, else 30 fps.
fn default_duration(info: Option<&StreamInfo>) -> u32 {
    let fps = info.map_or(0, |i| i.fps);
    CLOCK_RATE / if fps == 0 { 30 } else { fps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    // 640x480 baseline SPS and a PPS, as openh264 writes them.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f, 0x08, 0x84, 0x6a,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn frame(dts: i64, pts: i64, idr: bool, sps: &[u8]) -> EncodedFrame {
        let mut data = Vec::new();
        if idr {
            for nal in [sps, PPS] {
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(nal);
            }
            data.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
        } else {
            data.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x00]);
        }
        EncodedFrame::from_annexb(Bytes::from(data), pts, SystemTime::UNIX_EPOCH).with_dts(dts)
    }

    #[test]
    fn nothing_before_a_description_then_one_init_per_description() {
        let mut m = FragmentMuxer::new();
        assert!(m.push(&frame(0, 0, false, SPS), None).is_none());
        let a = m.push(&frame(3000, 3000, true, SPS), None).unwrap();
        let b = m.push(&frame(6000, 6000, false, SPS), None).unwrap();
        assert!(a.is_key && !b.is_key);
        assert_eq!(
            a.init.as_ref().unwrap().generation,
            b.init.as_ref().unwrap().generation
        );
        assert_eq!(a.init.as_ref().unwrap().codec, "avc1.42c01e");
        assert_eq!(
            (
                a.init.as_ref().unwrap().width,
                a.init.as_ref().unwrap().height
            ),
            (640, 480)
        );
        // The same parameter sets at the next key frame: the same init segment.
        let c = m.push(&frame(9000, 9000, true, SPS), None).unwrap();
        assert!(Arc::ptr_eq(
            a.init.as_ref().unwrap(),
            c.init.as_ref().unwrap()
        ));
        // New parameter sets: a new generation.
        let mut other = SPS.to_vec();
        other[3] = 0x1f; // level 3.1
        let d = m.push(&frame(12000, 12000, true, &other), None).unwrap();
        assert_eq!(
            d.init.as_ref().unwrap().generation,
            a.init.as_ref().unwrap().generation + 1
        );
        assert_eq!(d.init.as_ref().unwrap().codec, "avc1.42c01f");
        let msg: serde_json::Value =
            serde_json::from_str(&d.init.as_ref().unwrap().codec_message()).unwrap();
        assert_eq!(msg["mime"], "video/mp4; codecs=\"avc1.42c01f\"");
    }

    #[test]
    fn timeline_starts_at_zero_and_durations_follow_decode_steps() {
        let init = FragmentMuxer::new()
            .push(&frame(90_000, 90_000, true, SPS), None)
            .unwrap()
            .init
            .unwrap();
        let ftyp = fmp4::parse_box_header(&init.bytes).unwrap().unwrap();
        assert_eq!(ftyp.kind, fmp4::FTYP);
        let track = fmp4::parse_moov(&init.bytes[ftyp.size.unwrap() as usize..]).unwrap();
        let mut m = FragmentMuxer::new();
        let mut infos = Vec::new();
        // B-frames: presentation order differs from decode order.
        for (dts, pts, idr) in [
            (90_000, 93_000, true),
            (93_000, 99_000, false),
            (96_000, 96_000, false),
            (102_000, 105_000, false),
        ] {
            let f = m.push(&frame(dts, pts, idr, SPS), None).unwrap();
            let moof = fmp4::parse_box_header(&f.bytes).unwrap().unwrap();
            assert_eq!(moof.kind, fmp4::MOOF);
            let moof_len = moof.size.unwrap() as usize;
            let info = fmp4::parse_moof(&f.bytes[..moof_len], &track).unwrap();
            // The mdat follows, holding exactly the samples.
            assert_eq!(info.data_end as usize, f.bytes.len());
            infos.push(info);
        }
        let starts: Vec<Option<u64>> = infos.iter().map(|i| i.base_decode_time).collect();
        assert_eq!(starts, [Some(0), Some(3000), Some(6000), Some(12_000)]);
        // The first frame's duration is the frame-rate guess; then each is the last step.
        let durations: Vec<u64> = infos.iter().map(|i| i.duration_90k).collect();
        assert_eq!(durations, [3000, 3000, 3000, 6000]);
    }
}
