//! Fragmented MP4 (ISO/IEC 14496-12, H.264 per ISO/IEC 14496-15) boxes for recordings.
//!
//! Owns: the bytes of a segment. An init segment (`ftyp` + `moov` with `mvex`, no samples)
//! comes first; each fragment (`moof` + `mdat`) then carries its own sample table, so a file
//! cut after any complete fragment plays. Also reads back what `repair` needs (box headers,
//! the `moov`'s track, a `moof`'s durations and data range). The only file naming `mp4_atom`.
//! Does not own: files, fsync, when to cut fragments or segments (the recorder thread).
//!
//! One video track (id 1), timescale 90 kHz = media time, so sample durations are exact
//! differences of `pts_90k` and `tfdt` can carry media time across segments. SPS/PPS live
//! only in `avcC`: a segment must start at an IDR and end when the stream's SPS/PPS change.

use mp4_atom::{
    Avc1, Avcc, Decode, Dinf, Dref, Encode, Ftyp, Hdlr, Header, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mvex, Mvhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd,
};

use crate::h264::{self, NAL_AUD, NAL_PPS, NAL_SPS};
use crate::media::{EncodedFrame, StreamInfo};

/// Media time is 90 kHz (`crate::media::CLOCK_RATE`); the track uses it unchanged.
pub const TIMESCALE: u32 = crate::media::CLOCK_RATE;

/// The one track of a recording.
const TRACK_ID: u32 = 1;

/// `sample_flags` (14496-12 8.8.3.1) of a sync sample: sample_depends_on = 2 (an IDR).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// A non-sync sample: sample_depends_on = 1 and sample_is_non_sync_sample.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// Box types `repair` walks at the top level.
pub const FTYP: [u8; 4] = *b"ftyp";
pub const MOOV: [u8; 4] = *b"moov";
pub const MOOF: [u8; 4] = *b"moof";
pub const MDAT: [u8; 4] = *b"mdat";

/// One access unit of a fragment.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// AVCC: 4-byte big-endian length before each NAL unit (see `append_avcc`).
    pub data: &'a [u8],
    /// Ticks of `TIMESCALE` until the next sample in decode order.
    pub duration: u32,
    /// Presentation minus decode time (B-frames), in ticks; 0 when the stream does not
    /// reorder.
    pub composition_offset: i32,
    /// True for an IDR (a point a player can start decoding from).
    pub is_sync: bool,
}

/// Appends `atom` to `out`. Every box built here has small sizes and in-range fields, and
/// mp4-atom's encoder only fails on out-of-range values (or a box over 4 GiB).
fn put(atom: &impl Encode, out: &mut Vec<u8>) {
    atom.encode(out)
        .expect("invariant: the boxes built in fmp4.rs always encode");
}

/// The init segment: `ftyp` + `moov` (one H.264 track described by `info`, no samples,
/// `mvex`/`trex` announcing fragments). A player needs it before any fragment.
pub fn init_segment(info: &StreamInfo) -> Vec<u8> {
    let width = u16::try_from(info.width).unwrap_or(u16::MAX);
    let height = u16::try_from(info.height).unwrap_or(u16::MAX);
    let [profile, compatibility, level] = info.profile_level_id();

    let ftyp = Ftyp {
        major_brand: b"isom".into(),
        minor_version: 0x200,
        // iso6: tfdt and default-base-is-moof; avc1: H.264 in avcC; mp41 for older players.
        compatible_brands: vec![
            b"isom".into(),
            b"iso6".into(),
            b"avc1".into(),
            b"mp41".into(),
        ],
    };

    let avc1 = Avc1 {
        visual: Visual {
            // 1-based index into dref; mp4-atom's default (0) points nowhere.
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: profile,
            profile_compatibility: compatibility,
            avc_level_indication: level,
            length_size: 4,
            sequence_parameter_sets: vec![info.sps.to_vec()],
            picture_parameter_sets: vec![info.pps.to_vec()],
            ext: None,
        },
        ..Default::default()
    };

    let trak = mp4_atom::Trak {
        tkhd: Tkhd {
            track_id: TRACK_ID,
            enabled: true,
            in_movie: true,
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: TIMESCALE,
                language: "und".to_string(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "VideoHandler".to_string(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: Dinf {
                    // An empty location means "in this file" (self-contained flag).
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![avc1.into()],
                    },
                    stts: Stts::default(),
                    stsc: Stsc::default(),
                    stsz: Stsz::default(),
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    };

    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            duration: 0,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                default_sample_duration: TIMESCALE / info.fps.max(1),
                default_sample_size: 0,
                default_sample_flags: NON_SYNC_FLAGS,
            }],
        }),
        trak: vec![trak],
        ..Default::default()
    };

    let mut out = Vec::with_capacity(1024);
    put(&ftyp, &mut out);
    put(&moov, &mut out);
    out
}

/// One fragment: `moof` (`mfhd` with `sequence`; `traf` with `tfhd` default-base-is-moof,
/// `tfdt` = `base_decode_time` in 64 bits, `trun` with the data offset and each sample's
/// size, duration and flags) followed by an `mdat` holding the samples in order.
pub fn fragment(sequence: u32, base_decode_time: u64, samples: &[Sample<'_>]) -> Vec<u8> {
    // Composition offsets only when some sample needs one (version 1: signed).
    let reordered = samples.iter().any(|s| s.composition_offset != 0);
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(
                u32::try_from(s.data.len())
                    .expect("invariant: an H.264 access unit is far below 4 GiB"),
            ),
            flags: Some(if s.is_sync {
                SYNC_FLAGS
            } else {
                NON_SYNC_FLAGS
            }),
            cts: reordered.then_some(i64::from(s.composition_offset)),
        })
        .collect();
    let data_len: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        }],
    };
    let mdat_header = Header {
        kind: MDAT.into(),
        size: Some(data_len),
    };
    let mut head = Vec::new();
    put(&mdat_header, &mut head);

    // The data offset counts from the moof's first byte (default-base-is-moof) to the first
    // sample; the moof's length does not depend on the offset's value, so encode, measure,
    // and encode again with the real offset.
    let mut out = Vec::with_capacity(1024 + data_len);
    put(&moof, &mut out);
    let offset = i32::try_from(out.len() + head.len())
        .expect("invariant: a moof of one traf is far below 2 GiB");
    moof.traf[0].trun[0].data_offset = Some(offset);
    out.clear();
    put(&moof, &mut out);
    out.extend_from_slice(&head);
    for s in samples {
        out.extend_from_slice(s.data);
    }
    out
}

/// Appends `frame`'s NAL units to `out` as AVCC (4-byte big-endian length, then the NAL
/// unit), leaving out SPS, PPS and access unit delimiters: the first two are in `avcC`, and
/// a sample is already one access unit.
pub fn append_avcc(frame: &EncodedFrame, out: &mut Vec<u8>) {
    for nal in frame.nal_units() {
        match h264::nal_type(nal) {
            None | Some(NAL_SPS | NAL_PPS | NAL_AUD) => continue,
            Some(_) => {}
        }
        // An Annex-B NAL unit is bounded by the frame's buffer, itself far below 4 GiB.
        let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
}

/// A box header read from the start of a file region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    /// 8, or 16 with a 64-bit size.
    pub header_len: u64,
    /// Whole box, header included; `None` for a box that runs to the end of the file.
    pub size: Option<u64>,
}

/// The longest box header (32-bit size 1, type, 64-bit size).
pub const MAX_HEADER_LEN: usize = 16;

/// Reads a box header from the start of `bytes`. `Ok(None)`: too few bytes for a whole
/// header. `Err`: the size field is impossible (smaller than the header).
pub fn parse_box_header(bytes: &[u8]) -> Result<Option<BoxHeader>, String> {
    let mut buf = bytes;
    let header = match <Header as mp4_atom::DecodeMaybe>::decode_maybe(&mut buf) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("bad box header: {e}")),
    };
    let header_len = (bytes.len() - buf.len()) as u64;
    Ok(Some(BoxHeader {
        kind: header.kind.into(),
        header_len,
        size: header.size.map(|body| body as u64 + header_len),
    }))
}

/// What `repair` needs from an init segment's `moov`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    pub timescale: u32,
    /// From `trex`: the duration of samples whose `trun` and `tfhd` give none.
    pub default_sample_duration: u32,
    /// From `trex`: likewise for sizes.
    pub default_sample_size: u32,
}

/// Parses a whole `moov` box (header included): the first track must be an H.264 video
/// track with a timescale, and `mvex` must announce fragments for it.
pub fn parse_moov(bytes: &[u8]) -> Result<TrackInfo, String> {
    let moov = Moov::decode(&mut &bytes[..]).map_err(|e| format!("moov: {e}"))?;
    let trak = moov.trak.first().ok_or("moov has no track")?;
    let track_id = trak.tkhd.track_id;
    let mdia = &trak.mdia;
    if mdia.hdlr.handler != b"vide".into() {
        return Err(format!("track {track_id} is not video"));
    }
    if !matches!(
        mdia.minf.stbl.stsd.codecs.first(),
        Some(mp4_atom::Codec::Avc1(_))
    ) {
        return Err(format!("track {track_id} is not H.264 (avc1)"));
    }
    let timescale = mdia.mdhd.timescale;
    if timescale == 0 {
        return Err(format!("track {track_id} has timescale 0"));
    }
    let trex = moov
        .mvex
        .as_ref()
        .and_then(|m| m.trex.iter().find(|t| t.track_id == track_id))
        .ok_or_else(|| format!("moov has no mvex/trex for track {track_id}: not fragmented"))?;
    Ok(TrackInfo {
        track_id,
        timescale,
        default_sample_duration: trex.default_sample_duration,
        default_sample_size: trex.default_sample_size,
    })
}

/// What a `moof` says about its fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    pub sequence: u32,
    /// `tfdt`, in 90 kHz ticks.
    pub base_decode_time: Option<u64>,
    pub samples: u64,
    /// Sum of the sample durations, in 90 kHz ticks.
    pub duration_90k: u64,
    /// Where the sample data starts and ends, counted from the moof's first byte.
    pub data_start: u64,
    pub data_end: u64,
}

/// Converts `ticks` of `timescale` to 90 kHz (exact for our own 90 kHz files).
fn to_90k(ticks: u64, timescale: u32) -> u64 {
    if timescale == TIMESCALE {
        return ticks;
    }
    let v = u128::from(ticks) * u128::from(TIMESCALE) / u128::from(timescale.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Parses a whole `moof` box (header included) of `track`: its sample count, durations and
/// the byte range its samples occupy relative to the moof. Runs of samples with the
/// defaults of `tfhd`/`trex` are counted without iterating (a damaged count can say 4e9).
pub fn parse_moof(bytes: &[u8], track: &TrackInfo) -> Result<FragmentInfo, String> {
    let moof = Moof::decode(&mut &bytes[..]).map_err(|e| format!("moof: {e}"))?;
    let mut info = FragmentInfo {
        sequence: moof.mfhd.sequence_number,
        base_decode_time: None,
        samples: 0,
        duration_90k: 0,
        data_start: u64::MAX,
        data_end: 0,
    };
    let mut duration = 0u64;
    let mut found = false;
    for (i, traf) in moof.traf.iter().enumerate() {
        if traf.tfhd.track_id != track.track_id {
            continue;
        }
        found = true;
        if traf.tfhd.base_data_offset.is_some() || !(traf.tfhd.default_base_is_moof || i == 0) {
            return Err("traf data not based on the moof (unsupported)".to_string());
        }
        if let Some(tfdt) = &traf.tfdt {
            info.base_decode_time
                .get_or_insert(to_90k(tfdt.base_media_decode_time, track.timescale));
        }
        let default_duration = traf
            .tfhd
            .default_sample_duration
            .unwrap_or(track.default_sample_duration);
        let default_size = traf
            .tfhd
            .default_sample_size
            .unwrap_or(track.default_sample_size);
        for trun in &traf.trun {
            let offset = trun.data_offset.ok_or("trun without data offset")?;
            let start = u64::try_from(offset).map_err(|_| "negative trun data offset")?;
            let (count, trun_duration, trun_size) = match &trun.samples {
                TrunSamples::Inherited { count, .. } => {
                    let n = u64::from(*count);
                    (
                        n,
                        n.saturating_mul(u64::from(default_duration)),
                        n.saturating_mul(u64::from(default_size)),
                    )
                }
                TrunSamples::Explicit(entries) => {
                    entries.iter().fold((0u64, 0u64, 0u64), |acc, e| {
                        (
                            acc.0 + 1,
                            acc.1
                                .saturating_add(u64::from(e.duration.unwrap_or(default_duration))),
                            acc.2
                                .saturating_add(u64::from(e.size.unwrap_or(default_size))),
                        )
                    })
                }
            };
            info.samples = info.samples.saturating_add(count);
            duration = duration.saturating_add(trun_duration);
            info.data_start = info.data_start.min(start);
            info.data_end = info.data_end.max(start.saturating_add(trun_size));
        }
    }
    if !found {
        return Err(format!("moof has no traf for track {}", track.track_id));
    }
    if info.data_start == u64::MAX {
        // No trun at all: an empty fragment whose data range is empty.
        info.data_start = 0;
    }
    info.duration_90k = to_90k(duration, track.timescale);
    Ok(info)
}

/// A box type as text for messages ("moof", or hex when not printable).
pub fn kind_name(kind: [u8; 4]) -> String {
    if kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        kind.iter().map(|&b| b as char).collect()
    } else {
        format!("0x{:08x}", u32::from_be_bytes(kind))
    }
}

/// mp4-atom's own name for a box type, for tests comparing with its constants.
#[cfg(test)]
fn atom_kind<T: mp4_atom::Atom>() -> [u8; 4] {
    T::KIND.into()
}

/// Shared with `repair`'s tests: real H.264 from the project's encoder, segment files, and
/// the ffprobe/ffmpeg checks.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub(crate) use crate::test_util::{require, TempDir};
    use bytes::Bytes;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime};

    pub(crate) const FPS: u32 = 30;
    /// Ticks per frame at `FPS`.
    pub(crate) const TICKS: u64 = (TIMESCALE / FPS) as u64;

    /// 150 frames of the test pattern, 320x240@30, an IDR every 30 frames, pts n * 3000.
    pub(crate) fn encoded() -> &'static (StreamInfo, Vec<EncodedFrame>) {
        static ENCODED: OnceLock<(StreamInfo, Vec<EncodedFrame>)> = OnceLock::new();
        ENCODED.get_or_init(|| {
            use crate::encode::{Encoder, EncoderSettings, OpenH264Encoder};
            use crate::media::{PixelFormat, RawFrame};
            use crate::source::pattern::{FrameCode, TestPattern};
            let settings = EncoderSettings {
                width: 320,
                height: 240,
                fps: FPS,
                bitrate_kbps: 300,
                idr_interval_frames: 30,
            };
            let pattern = TestPattern::new(320, 240, FPS).unwrap();
            let mut encoder = OpenH264Encoder::new(&settings).unwrap();
            let mut frames = Vec::new();
            for n in 0..150u64 {
                let mut data = Vec::new();
                let code = FrameCode {
                    frame: n as u32,
                    capture_ms: 1_700_000_000_000 + n * 33,
                };
                pattern.draw(n, code, &mut data);
                let raw = RawFrame {
                    format: PixelFormat::I420,
                    width: 320,
                    height: 240,
                    data,
                    pts_90k: crate::media::frame_pts_90k(n, FPS),
                    wall: SystemTime::UNIX_EPOCH + Duration::from_millis(code.capture_ms),
                    sequence: n,
                };
                frames.push(encoder.encode(&raw, false).unwrap().unwrap());
            }
            let info = crate::media::stream_info_from_idr(&frames[0], FPS).unwrap();
            for (n, f) in frames.iter().enumerate() {
                assert_eq!(f.is_idr, n % 30 == 0, "frame {n}");
            }
            (info, frames)
        })
    }

    /// Writes a segment of `frames` (the first an IDR) in fragments of `per_fragment`
    /// frames. `tfdt` is media time (`pts_90k`, continuing across segments), or with
    /// `from_zero` media time since the segment's first frame. Durations are pts
    /// differences; the last frame of the stream lasts one nominal frame. Returns the file's
    /// bytes and the end offset of the init and of each fragment.
    pub(crate) fn segment_with(
        frames: &[EncodedFrame],
        per_fragment: usize,
        from_zero: bool,
    ) -> (Vec<u8>, Vec<u64>) {
        let origin = if from_zero { frames[0].pts_90k } else { 0 };
        let (info, all) = encoded();
        assert!(frames[0].is_idr);
        let mut file = init_segment(info);
        let mut ends = vec![file.len() as u64];
        for (i, chunk) in frames.chunks(per_fragment).enumerate() {
            let mut data = Vec::new();
            let mut spans = Vec::new();
            for f in chunk {
                let start = data.len();
                append_avcc(f, &mut data);
                let next = all.iter().find(|n| n.pts_90k > f.pts_90k);
                let duration = next.map_or(TICKS as i64, |n| n.pts_90k - f.pts_90k);
                spans.push((start..data.len(), duration as u32, f.is_idr));
            }
            let samples: Vec<Sample<'_>> = spans
                .iter()
                .map(|(r, duration, is_sync)| Sample {
                    data: &data[r.clone()],
                    duration: *duration,
                    composition_offset: 0,
                    is_sync: *is_sync,
                })
                .collect();
            let base = (chunk[0].pts_90k - origin) as u64;
            file.extend(fragment(i as u32 + 1, base, &samples));
            ends.push(file.len() as u64);
        }
        (file, ends)
    }

    /// A segment with `tfdt` from media time.
    pub(crate) fn segment(frames: &[EncodedFrame], per_fragment: usize) -> (Vec<u8>, Vec<u64>) {
        segment_with(frames, per_fragment, false)
    }

    /// A segment lasting `duration_90k` ticks: the init, then fragments of one sample each
    /// (at most an hour), each sample a fake IDR of `payload` bytes (AVCC, at least 5).
    /// For tests that need real files of a chosen media time and size, not a picture.
    pub(crate) fn segment_lasting(duration_90k: u64, payload: usize) -> Vec<u8> {
        const HOUR: u64 = 3_600 * TIMESCALE as u64;
        let nal = payload.max(5) - 4;
        let mut data = (nal as u32).to_be_bytes().to_vec();
        data.push(0x65); // an IDR slice
        data.resize(payload.max(5), 0);
        let mut file = init_segment(&info());
        let (mut base, mut seq) = (0u64, 1u32);
        while base < duration_90k {
            let d = (duration_90k - base).min(HOUR);
            let sample = Sample {
                data: &data,
                duration: d as u32,
                composition_offset: 0,
                is_sync: true,
            };
            file.extend(fragment(seq, base, &[sample]));
            base += d;
            seq += 1;
        }
        file
    }

    /// Runs an installed tool (failing with the install line when it is missing) and
    /// returns its trimmed output and error output.
    fn run(tool: &str, args: &[&str]) -> (String, String) {
        require(tool);
        let out = Command::new(tool).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        (text(&out.stdout), text(&out.stderr))
    }

    /// What ffprobe and ffmpeg make of a file.
    #[derive(Debug, PartialEq)]
    pub(crate) struct Probe {
        pub codec: String,
        pub width: u32,
        pub height: u32,
        pub frames: u64,
        pub duration_s: f64,
    }

    /// Checks that ffprobe reads `path` silently and ffmpeg decodes every frame without an
    /// error, and returns what ffprobe counted.
    pub(crate) fn check_playable(path: &Path) -> Probe {
        let p = path.to_str().unwrap();
        let (out, err) = run("ffprobe", &["-v", "error", p]);
        assert!(out.is_empty() && err.is_empty(), "ffprobe {p}: {out}{err}");
        let (out, err) = run(
            "ffmpeg",
            &["-nostdin", "-v", "error", "-i", p, "-f", "null", "-"],
        );
        assert!(
            out.is_empty() && err.is_empty(),
            "ffmpeg decode {p}: {out}{err}"
        );
        let (out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames:format=duration",
                "-of",
                "default=nw=1",
                p,
            ],
        );
        assert!(err.is_empty(), "ffprobe {p}: {err}");
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in ffprobe output: {out}"))
                .to_string()
        };
        Probe {
            codec: field("codec_name"),
            width: field("width").parse().unwrap(),
            height: field("height").parse().unwrap(),
            frames: field("nb_read_frames").parse().unwrap(),
            duration_s: field("duration").parse().unwrap_or(f64::NAN),
        }
    }

    /// Asserts `path` plays `frames` frames of 320x240 H.264 lasting frames/30 s (within
    /// one frame).
    pub(crate) fn assert_plays(path: &Path, frames: u64) {
        let p = check_playable(path);
        assert_eq!(
            (p.codec.as_str(), p.width, p.height, p.frames),
            ("h264", 320, 240, frames),
            "{}",
            path.display()
        );
        let expected = frames as f64 / FPS as f64;
        assert!(
            (p.duration_s - expected).abs() <= 1.0 / FPS as f64 + 1e-6,
            "{}: duration {} s, expected {expected} s",
            path.display(),
            p.duration_s
        );
    }

    #[test]
    fn real_h264_segment_plays_every_frame() {
        let (_, frames) = encoded();
        let dir = TempDir::new("plays");
        // Fragments of 1 s (each starting at an IDR) and of 0.8 s (most starting at a
        // P frame): both must play every frame.
        for per_fragment in [30, 24] {
            let (bytes, ends) = segment(&frames[..90], per_fragment);
            assert_eq!(ends.len(), 1 + 90usize.div_ceil(per_fragment));
            let path = dir.file(&format!("seg-{per_fragment}.mp4"));
            std::fs::write(&path, &bytes).unwrap();
            assert_plays(&path, 90);
        }
    }

    /// pts (in seconds) of every video packet ffprobe reads from `args`' input.
    fn packet_pts(args: &[&str]) -> Vec<f64> {
        let mut all = vec!["-v", "error", "-select_streams", "v:0"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
        let (out, err) = run("ffprobe", &all);
        assert!(err.is_empty(), "ffprobe {args:?}: {err}");
        out.lines()
            .map(|l| l.trim_end_matches(',').parse().unwrap())
            .collect()
    }

    /// Writes `text` as an ffmpeg concat list in `dir` and checks that ffmpeg decodes it
    /// without an error; returns the packets' pts (seconds).
    pub(crate) fn concat_pts(dir: &TempDir, name: &str, text: &str) -> Vec<f64> {
        let list = dir.file(name);
        std::fs::write(&list, text).unwrap();
        let l = list.to_str().unwrap();
        let (out, err) = run(
            "ffmpeg",
            &[
                "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", l, "-f", "null", "-",
            ],
        );
        assert!(
            out.is_empty() && err.is_empty(),
            "ffmpeg concat {name}: {out}{err}"
        );
        packet_pts(&["-f", "concat", "-safe", "0", "-i", l])
    }

    /// Every packet one frame after the one before: no gap, no overlap.
    pub(crate) fn assert_evenly_spaced(pts: &[f64], what: &str) {
        for (i, w) in pts.windows(2).enumerate() {
            assert!(
                (w[1] - w[0] - 1.0 / FPS as f64).abs() < 1e-3,
                "{what}: packet {i} at {} s, packet {} at {} s",
                w[0],
                i + 1,
                w[1]
            );
        }
    }

    #[test]
    fn consecutive_segments_concatenate_without_a_gap() {
        let (_, frames) = encoded();
        let dir = TempDir::new("concat");
        let (a, _) = segment(&frames[..90], 30);
        let (b, _) = segment(&frames[90..], 30);
        let (pa, pb) = (dir.file("a.mp4"), dir.file("b.mp4"));
        std::fs::write(&pa, a).unwrap();
        std::fs::write(&pb, b).unwrap();
        assert_plays(&pa, 90);
        // The second segment's timeline continues where the first ends: tfdt 3 s. (Its
        // ffprobe format duration is not checked: ffmpeg 5.1 reports a fragmented track's
        // end time as its duration, 5 s here.)
        let p = check_playable(&pb);
        assert_eq!(
            (p.codec.as_str(), p.width, p.height, p.frames),
            ("h264", 320, 240, 60)
        );
        let b_pts = packet_pts(&[pb.to_str().unwrap()]);
        assert_eq!(b_pts.len(), 60);
        assert_eq!(b_pts[0], 3.0);
        assert_evenly_spaced(&b_pts, "segment 2");

        let pts = concat_pts(
            &dir,
            "list.txt",
            &format!("file '{}'\nfile '{}'\n", pa.display(), pb.display()),
        );
        assert_eq!(pts.len(), 150);
        // Frame 90, the first of segment 2, sits exactly at the end of segment 1.
        assert!(
            (pts[90] - 3.0).abs() < 1e-3,
            "segment 2 starts at {}",
            pts[90]
        );
        assert_evenly_spaced(&pts, "a + b");
    }

    fn info() -> StreamInfo {
        StreamInfo {
            width: 320,
            height: 240,
            fps: 30,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x0d, 0x8c, 0x8d, 0x40]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
        }
    }

    /// The top-level boxes of `bytes` (type, size); they must fill it exactly.
    fn boxes(mut bytes: &[u8]) -> Vec<([u8; 4], usize)> {
        let mut out = Vec::new();
        while let Some(h) = parse_box_header(bytes).unwrap() {
            let size = h.size.unwrap() as usize;
            out.push((h.kind, size));
            bytes = &bytes[size..];
        }
        assert!(bytes.is_empty(), "{} bytes left over", bytes.len());
        out
    }

    #[test]
    fn box_kinds_match_mp4_atom() {
        assert_eq!(atom_kind::<Ftyp>(), FTYP);
        assert_eq!(atom_kind::<Moov>(), MOOV);
        assert_eq!(atom_kind::<Moof>(), MOOF);
        assert_eq!(atom_kind::<mp4_atom::Mdat>(), MDAT);
    }

    #[test]
    fn init_segment_is_ftyp_then_moov_and_reads_back() {
        let init = init_segment(&info());
        let b = boxes(&init);
        assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![FTYP, MOOV]);
        let moov = &init[b[0].1..];
        let track = parse_moov(moov).unwrap();
        assert_eq!(
            track,
            TrackInfo {
                track_id: 1,
                timescale: 90_000,
                default_sample_duration: 3000,
                default_sample_size: 0
            }
        );
        // avcC carries the SPS and PPS bytes as given, with the profile from the SPS.
        let needle = [&[0x00, 0x07][..], &info().sps[..]].concat();
        assert!(init.windows(needle.len()).any(|w| w == needle));
        let avcc = init.windows(4).position(|w| w == b"avcC").unwrap();
        assert_eq!(&init[avcc + 4..avcc + 9], &[1, 0x42, 0xc0, 0x0d, 0xff]);
        // No samples in the init.
        for empty in [b"stts", b"stsc", b"stco"] {
            let at = init.windows(4).position(|w| w == empty).unwrap();
            assert_eq!(&init[at + 8..at + 12], &[0, 0, 0, 0], "{empty:?}");
        }
    }

    #[test]
    fn strange_stream_info_still_encodes() {
        for (w, sps) in [
            (0u32, &[][..]),
            (70_000, &[0x67][..]),
            (320, &[0x67; 300][..]),
        ] {
            let i = StreamInfo {
                width: w,
                height: w,
                fps: 0,
                sps: Bytes::copy_from_slice(sps),
                pps: Bytes::new(),
            };
            let init = init_segment(&i);
            assert_eq!(boxes(&init).len(), 2);
        }
    }

    #[test]
    fn fragment_offsets_sizes_and_flags() {
        let a = [0, 0, 0, 2, 0x65, 1];
        let b = [0, 0, 0, 3, 0x41, 2, 3];
        let samples = [
            Sample {
                data: &a,
                duration: 3000,
                composition_offset: 0,
                is_sync: true,
            },
            Sample {
                data: &b,
                duration: 3003,
                composition_offset: 0,
                is_sync: false,
            },
        ];
        let base = u64::from(u32::MAX) + 5;
        let frag = fragment(7, base, &samples);
        let bx = boxes(&frag);
        assert_eq!(bx.iter().map(|x| x.0).collect::<Vec<_>>(), vec![MOOF, MDAT]);
        let moof_len = bx[0].1;
        let track = TrackInfo {
            track_id: 1,
            timescale: TIMESCALE,
            default_sample_duration: 0,
            default_sample_size: 0,
        };
        let f = parse_moof(&frag[..moof_len], &track).unwrap();
        assert_eq!(
            f,
            FragmentInfo {
                sequence: 7,
                base_decode_time: Some(base),
                samples: 2,
                duration_90k: 6003,
                data_start: moof_len as u64 + 8,
                data_end: frag.len() as u64,
            }
        );
        assert_eq!(&frag[moof_len + 8..], &[&a[..], &b[..]].concat()[..]);
        // tfdt version 1 (64-bit) and both flag words are in the trun.
        let tfdt = frag.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(frag[tfdt + 4], 1);
        let flags = |v: u32| frag.windows(4).any(|w| w == v.to_be_bytes());
        assert!(flags(SYNC_FLAGS) && flags(NON_SYNC_FLAGS));
        let tfhd = frag.windows(4).position(|w| w == b"tfhd").unwrap();
        assert_eq!(
            &frag[tfhd + 4..tfhd + 8],
            &[0, 0x02, 0, 0],
            "default-base-is-moof"
        );
    }

    #[test]
    fn avcc_leaves_out_parameter_sets_and_delimiters() {
        let annexb: &[u8] = &[
            0, 0, 0, 1, 0x09, 0xf0, // AUD
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, // SPS
            0, 0, 1, 0x68, 0xce, // PPS
            0, 0, 1, 0x06, 0x05, 0x01, // SEI
            0, 0, 0, 1, 0x65, 0x88, 0x80, // IDR slice
        ];
        let frame = EncodedFrame::from_annexb(Bytes::from_static(annexb), 0, SystemTime::now());
        let mut out = vec![9];
        append_avcc(&frame, &mut out);
        assert_eq!(
            out,
            vec![9, 0, 0, 0, 3, 0x06, 0x05, 0x01, 0, 0, 0, 3, 0x65, 0x88, 0x80]
        );
    }

    #[test]
    fn headers_and_garbage_never_panic() {
        assert_eq!(parse_box_header(&[0, 0, 0, 8, b'f']).unwrap(), None);
        assert!(parse_box_header(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']).is_err());
        assert_eq!(
            parse_box_header(&[0, 0, 0, 0, b'm', b'd', b'a', b't']).unwrap(),
            Some(BoxHeader {
                kind: MDAT,
                header_len: 8,
                size: None
            })
        );
        let large = [0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            parse_box_header(&large).unwrap(),
            Some(BoxHeader {
                kind: MDAT,
                header_len: 16,
                size: Some(1 << 32)
            })
        );
        assert_eq!(parse_box_header(&large[..12]).unwrap(), None);
        let track = TrackInfo {
            track_id: 1,
            timescale: TIMESCALE,
            default_sample_duration: 3000,
            default_sample_size: 10,
        };
        let a = [0u8; 40];
        let samples = [Sample {
            data: &a,
            duration: 3000,
            composition_offset: 0,
            is_sync: true,
        }; 3];
        let frag = fragment(1, 0, &samples);
        let moof_len = parse_box_header(&frag).unwrap().unwrap().size.unwrap() as usize;
        let init = init_segment(&info());
        let moov = &init[parse_box_header(&init).unwrap().unwrap().size.unwrap() as usize..];
        let mut rng = crate::test_util::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for round in 0..3000 {
            let src = if round % 2 == 0 {
                &frag[..moof_len]
            } else {
                moov
            };
            let mut buf = src.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % buf.len() as u64) as usize;
                buf[at] ^= 1 << (next() % 8);
            }
            buf.truncate(buf.len() - (next() % 3 == 0) as usize * (next() % 20) as usize);
            let _ = parse_moof(&buf, &track);
            let _ = parse_moov(&buf);
            let _ = parse_box_header(&buf);
        }
    }

    #[test]
    fn kind_names() {
        assert_eq!(kind_name(MOOF), "moof");
        assert_eq!(kind_name([0, 1, 2, 3]), "0x00010203");
    }
}
