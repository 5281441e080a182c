//! Reading an MP4 file's H.264 video track: the index a file source plays from.
//!
//! Owns: finding the first H.264 (`avc1`/`avc3`) video track of a plain or fragmented MP4
//! and listing its samples in decode order (file offset, size, decode time, composition
//! offset, key frame) with the track's SPS/PPS; and turning a sample's length-prefixed NAL
//! units into Annex-B. Everything in a file is untrusted: box sizes, counts and offsets are
//! checked and capped. With `fmp4.rs`, the only files naming mp4-atom. Does not own:
//! pacing, looping or publishing (`source::file`).

use std::fs::File;
use std::os::unix::fs::FileExt;

use mp4_atom::{Codec, Decode, Moof, Moov, StszSamples, TrunSamples};

use super::fmp4::parse_box_header;

/// A `moov` or `moof` larger than this is refused (a real one is a few MiB at most).
const MAX_BOX: u64 = 64 * 1024 * 1024;
/// Samples at most (about 9 hours at 30 fps).
const MAX_SAMPLES: usize = 1_000_000;
/// A sample larger than this is refused.
pub const MAX_SAMPLE: u32 = 16 * 1024 * 1024;

/// One video sample, in decode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Sample {
    pub offset: u64,
    pub size: u32,
    /// Decode time in track ticks, from the first sample.
    pub dts: u64,
    /// Presentation minus decode time, in track ticks.
    pub cts_offset: i64,
    pub duration: u32,
    pub sync: bool,
}

/// The H.264 video track of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Track {
    pub timescale: u32,
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: u8,
    pub samples: Vec<Mp4Sample>,
}

impl Mp4Track {
    /// Decode-time length of the whole track, in track ticks.
    pub fn duration(&self) -> u64 {
        self.samples
            .last()
            .map_or(0, |s| s.dts + u64::from(s.duration))
    }
}

/// Reads the whole box at `offset` (header included) of `len` bytes.
fn read_box(f: &File, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    if len > MAX_BOX {
        return Err(format!("{what} is {len} bytes, over {MAX_BOX}"));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| format!("{what} at {offset}: {e}"))?;
    Ok(buf)
}

/// Indexes the first H.264 video track of `f`.
pub fn read_index(f: &File) -> Result<Mp4Track, String> {
    let file_len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut offset = 0u64;
    let mut moov: Option<(Moov, u64)> = None;
    let mut moofs: Vec<(u64, u64)> = Vec::new();
    while offset < file_len {
        let mut head = [0u8; 16];
        let n = f
            .read_at(&mut head, offset)
            .map_err(|e| format!("reading at {offset}: {e}"))?;
        let Some(h) = parse_box_header(&head[..n])? else {
            break;
        };
        let size = h.size.unwrap_or(file_len - offset);
        if size < h.header_len || offset.saturating_add(size) > file_len {
            // A torn last box (a recording cut by a power loss): what came before stands.
            break;
        }
        match &h.kind {
            b"moov" => {
                let bytes = read_box(f, offset, size, "moov")?;
                let m = Moov::decode(&mut &bytes[..]).map_err(|e| format!("moov: {e}"))?;
                moov = Some((m, offset));
            }
            b"moof" => moofs.push((offset, size)),
            _ => {}
        }
        offset += size;
    }
    let (moov, _) = moov.ok_or("no moov box: not an MP4 file")?;
    let trak = moov
        .trak
        .iter()
        .find(|t| {
            t.mdia.hdlr.handler == b"vide".into()
                && matches!(
                    t.mdia.minf.stbl.stsd.codecs.first(),
                    Some(Codec::Avc1(_)) | Some(Codec::Avc3(_))
                )
        })
        .ok_or("no H.264 video track")?;
    let avcc = match trak.mdia.minf.stbl.stsd.codecs.first() {
        Some(Codec::Avc1(a)) => &a.avcc,
        Some(Codec::Avc3(a)) => &a.avcc,
        _ => return Err("no H.264 video track".into()),
    };
    let sps = avcc
        .sequence_parameter_sets
        .first()
        .cloned()
        .ok_or("the avcC has no SPS")?;
    let pps = avcc
        .picture_parameter_sets
        .first()
        .cloned()
        .ok_or("the avcC has no PPS")?;
    let length_size = avcc.length_size;
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(format!("NAL length size {length_size}"));
    }
    let timescale = trak.mdia.mdhd.timescale;
    if timescale == 0 {
        return Err("timescale 0".into());
    }
    let stbl = &trak.mdia.minf.stbl;
    let mut samples = plain_samples(stbl)?;
    if samples.is_empty() {
        let track_id = trak.tkhd.track_id;
        let trex = moov
            .mvex
            .as_ref()
            .and_then(|m| m.trex.iter().find(|t| t.track_id == track_id));
        samples = fragment_samples(f, &moofs, track_id, trex)?;
    }
    if samples.is_empty() {
        return Err("the video track has no samples".into());
    }
    if samples
        .iter()
        .any(|s| s.offset.saturating_add(u64::from(s.size)) > file_len)
    {
        return Err("a sample lies past the end of the file".into());
    }
    Ok(Mp4Track {
        timescale,
        sps,
        pps,
        length_size,
        samples,
    })
}

/// The samples of a plain MP4's sample tables (empty for a fragmented file's `moov`).
fn plain_samples(stbl: &mp4_atom::Stbl) -> Result<Vec<Mp4Sample>, String> {
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => {
            if *count as usize > MAX_SAMPLES {
                return Err("too many samples".into());
            }
            vec![*size; *count as usize]
        }
        StszSamples::Different { sizes } => sizes.clone(),
    };
    let n = sizes.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > MAX_SAMPLES {
        return Err("too many samples".into());
    }
    // Chunk offsets, then each sample's offset through stsc's runs.
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(c), _) => c.entries.iter().map(|o| u64::from(*o)).collect(),
        (None, Some(c)) => c.entries.clone(),
        (None, None) => return Err("no chunk offsets".into()),
    };
    let mut offsets = Vec::with_capacity(n);
    let runs = &stbl.stsc.entries;
    for (ri, run) in runs.iter().enumerate() {
        let first = run.first_chunk.max(1) as usize;
        let last = runs.get(ri + 1).map_or(chunks.len(), |next| {
            (next.first_chunk.max(1) as usize).saturating_sub(1)
        });
        for chunk in first..=last.min(chunks.len()) {
            let mut at = chunks[chunk - 1];
            for _ in 0..run.samples_per_chunk {
                if offsets.len() == n {
                    break;
                }
                offsets.push(at);
                at = at.saturating_add(u64::from(sizes[offsets.len() - 1]));
            }
        }
    }
    if offsets.len() != n {
        return Err(format!("{} sample offsets for {n} samples", offsets.len()));
    }
    let mut durations = Vec::with_capacity(n);
    for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            if durations.len() == n {
                break;
            }
            durations.push(e.sample_delta);
        }
    }
    let last = durations.last().copied().unwrap_or(1);
    durations.resize(n, last);
    let mut cts = Vec::with_capacity(n);
    if let Some(ctts) = &stbl.ctts {
        for e in &ctts.entries {
            for _ in 0..e.sample_count {
                if cts.len() == n {
                    break;
                }
                cts.push(e.sample_offset);
            }
        }
    }
    cts.resize(n, 0);
    let sync: Option<std::collections::HashSet<u32>> = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().collect());
    let mut dts = 0u64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(Mp4Sample {
            offset: offsets[i],
            size: sizes[i],
            dts,
            cts_offset: cts[i],
            duration: durations[i],
            sync: sync.as_ref().is_none_or(|s| s.contains(&(i as u32 + 1))),
        });
        dts = dts.saturating_add(u64::from(durations[i]));
    }
    Ok(out)
}

/// `sample_is_non_sync_sample` in sample flags (ISO/IEC 14496-12 8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// The samples of a fragmented file's `moof`s for `track_id`.
fn fragment_samples(
    f: &File,
    moofs: &[(u64, u64)],
    track_id: u32,
    trex: Option<&mp4_atom::Trex>,
) -> Result<Vec<Mp4Sample>, String> {
    let mut out = Vec::new();
    let mut dts = 0u64;
    for &(at, size) in moofs {
        let bytes = read_box(f, at, size, "moof")?;
        let moof = Moof::decode(&mut &bytes[..]).map_err(|e| format!("moof at {at}: {e}"))?;
        for traf in moof.traf.iter().filter(|t| t.tfhd.track_id == track_id) {
            if let Some(tfdt) = &traf.tfdt {
                dts = tfdt.base_media_decode_time;
            }
            let base = traf.tfhd.base_data_offset.unwrap_or(at);
            let default_duration = traf
                .tfhd
                .default_sample_duration
                .or(trex.map(|t| t.default_sample_duration))
                .unwrap_or(0);
            let default_size = traf
                .tfhd
                .default_sample_size
                .or(trex.map(|t| t.default_sample_size))
                .unwrap_or(0);
            let default_flags = traf
                .tfhd
                .default_sample_flags
                .or(trex.map(|t| t.default_sample_flags))
                .unwrap_or(0);
            for trun in &traf.trun {
                let mut offset = base
                    .checked_add_signed(i64::from(trun.data_offset.unwrap_or(0)))
                    .ok_or("a trun's data offset points before the file")?;
                let entries: Vec<(u32, u32, u32, i64)> = match &trun.samples {
                    TrunSamples::Inherited { count, first_flags } => {
                        if *count as usize > MAX_SAMPLES {
                            return Err("too many samples".into());
                        }
                        (0..*count)
                            .map(|i| {
                                let flags = if i == 0 {
                                    first_flags.unwrap_or(default_flags)
                                } else {
                                    default_flags
                                };
                                (default_duration, default_size, flags, 0)
                            })
                            .collect()
                    }
                    TrunSamples::Explicit(es) => es
                        .iter()
                        .map(|e| {
                            (
                                e.duration.unwrap_or(default_duration),
                                e.size.unwrap_or(default_size),
                                e.flags.unwrap_or(default_flags),
                                e.cts.unwrap_or(0),
                            )
                        })
                        .collect(),
                };
                for (duration, size, flags, cts) in entries {
                    if out.len() >= MAX_SAMPLES {
                        return Err("too many samples".into());
                    }
                    out.push(Mp4Sample {
                        offset,
                        size,
                        dts,
                        cts_offset: cts,
                        duration,
                        sync: flags & NON_SYNC == 0,
                    });
                    offset = offset.saturating_add(u64::from(size));
                    dts = dts.saturating_add(u64::from(duration));
                }
            }
        }
    }
    Ok(out)
}

/// Reads one sample and turns its length-prefixed NAL units into Annex-B.
pub fn read_sample(f: &File, s: &Mp4Sample, length_size: u8) -> Result<Vec<u8>, String> {
    if s.size > MAX_SAMPLE {
        return Err(format!("a sample of {} bytes", s.size));
    }
    let mut raw = vec![0u8; s.size as usize];
    f.read_exact_at(&mut raw, s.offset)
        .map_err(|e| format!("sample at {}: {e}", s.offset))?;
    let ls = usize::from(length_size);
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut rest = &raw[..];
    while !rest.is_empty() {
        if rest.len() < ls {
            return Err("a sample ends inside a NAL length".into());
        }
        let len = rest[..ls]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let nal = rest
            .get(ls..ls + len)
            .ok_or("a NAL unit runs past its sample")?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        rest = &rest[ls + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::tests::{encoded, segment, TempDir};
    use crate::test_util::XorShift;

    #[test]
    fn our_own_fragmented_segments_read_back_sample_by_sample() {
        let (info, frames) = encoded();
        let dir = TempDir::new("mp4read");
        let path = dir.file("seg.mp4");
        std::fs::write(&path, segment(&frames[..60], 30).0).unwrap();
        let f = File::open(&path).unwrap();
        let track = read_index(&f).unwrap();
        assert_eq!(track.samples.len(), 60);
        assert_eq!(
            (track.sps.as_slice(), track.pps.as_slice()),
            (&info.sps[..], &info.pps[..])
        );
        assert!(track.samples[0].sync);
        for (s, frame) in track.samples.iter().zip(frames) {
            let annexb = read_sample(&f, s, track.length_size).unwrap();
            let nals: Vec<&[u8]> = crate::h264::split_annexb(&annexb)
                .into_iter()
                .map(|r| &annexb[r])
                .collect();
            let want: Vec<&[u8]> = frame
                .nal_units()
                .filter(|n| !matches!(crate::h264::nal_type(n), Some(7..=9)))
                .collect();
            assert_eq!(nals, want);
        }
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let (_, frames) = encoded();
        let good = segment(&frames[..30], 10).0;
        let dir = TempDir::new("mp4read-bad");
        let path = dir.file("bad.mp4");
        let mut rng = XorShift(0xF11E);
        for round in 0..400 {
            let mut bytes = good.clone();
            match round % 3 {
                0 => bytes.truncate(rng.below(bytes.len())),
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next_u64() as u8;
                    }
                }
                _ => bytes = (0..rng.below(4096)).map(|_| rng.next_u64() as u8).collect(),
            }
            std::fs::write(&path, &bytes).unwrap();
            let f = File::open(&path).unwrap();
            if let Ok(track) = read_index(&f) {
                for s in &track.samples {
                    let _ = read_sample(&f, s, track.length_size);
                }
            }
        }
    }
}
