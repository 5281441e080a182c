//! What a segment file holds, and cutting a crashed one back to its last complete fragment.
//!
//! Owns: walking a segment's top-level boxes (headers and seeks; only the small `moov` and
//! `moof` boxes are read whole and parsed by `fmp4`) and truncating it. Does not own: which
//! files to look at, nor moving unplayable ones aside (the recorder decides).
//!
//! A segment is `ftyp`, `moov`, then `moof`+`mdat` pairs, written in that order and nothing
//! else. After a power cut the tail can be anything: a partial box header, a `moof` without
//! its `mdat`, an `mdat` shorter than its header says, or stale blocks the file system
//! attached. Everything from the first box that is not the next complete, valid part of that
//! sequence is cut, so a repaired file always plays (unless not even the init was written).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::mux::fmp4::{self, BoxHeader, TrackInfo, FTYP, MAX_HEADER_LEN, MDAT, MOOF, MOOV};

/// Larger `moov`/`moof` boxes are damage, not ours: ours are a few hundred bytes (a moof
/// holds 12 bytes per sample, about 30 KB for 10 s at 240 fps).
const MAX_MOOV_LEN: u64 = 1 << 20;
const MAX_MOOF_LEN: u64 = 4 << 20;

/// What a segment file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// A complete `ftyp` + `moov` describing an H.264 track starts the file.
    pub has_init: bool,
    /// Complete `moof`+`mdat` pairs after the init.
    pub fragments: u32,
    /// `tfdt` of the first complete fragment, in 90 kHz ticks.
    pub first_decode_time: Option<u64>,
    /// Sum of the complete fragments' sample durations.
    pub duration_90k: u64,
    /// End of the last complete `moof`+`mdat` pair (or of the init; 0 without one).
    pub complete_len: u64,
    pub file_len: u64,
}

/// What `repair` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repaired {
    /// Nothing after the last complete fragment: the file is left as it was.
    Intact,
    /// The file was cut from `from` bytes back to `to` and synced.
    Truncated { from: u64, to: u64 },
    /// No complete init segment: nothing in the file can be played; it is left as it is
    /// (the caller moves it aside). Says why.
    Unplayable(String),
}

/// A summary, and why the walk stopped before the end of the file (if it did).
struct Walk {
    summary: Summary,
    stop: Option<String>,
}

/// Reads the box header at `pos` (`Ok(None)`: fewer header bytes than it needs).
fn header_at(
    file: &mut File,
    pos: u64,
    file_len: u64,
) -> io::Result<Result<Option<BoxHeader>, String>> {
    let n = (file_len - pos).min(MAX_HEADER_LEN as u64) as usize;
    let mut buf = [0u8; MAX_HEADER_LEN];
    file.seek(SeekFrom::Start(pos))?;
    file.read_exact(&mut buf[..n])?;
    Ok(fmp4::parse_box_header(&buf[..n]))
}

/// Reads the box starting at `pos` whole.
fn read_box(file: &mut File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(pos))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// The complete box of type `kind` at `pos`, no longer than `max`, or why there is none.
fn expect_box(
    file: &mut File,
    pos: u64,
    file_len: u64,
    kind: [u8; 4],
    max: u64,
) -> io::Result<Result<BoxHeader, String>> {
    let name = fmp4::kind_name(kind);
    let header = match header_at(file, pos, file_len)? {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Ok(Err(format!(
                "partial box header at {pos} where {name} belongs"
            )))
        }
        Err(e) => return Ok(Err(format!("{e} at {pos} where {name} belongs"))),
    };
    if header.kind != kind {
        return Ok(Err(format!(
            "{} at {pos} where {name} belongs",
            fmp4::kind_name(header.kind)
        )));
    }
    let Some(size) = header.size else {
        return Ok(Err(format!(
            "{name} at {pos} has no size (runs to the end)"
        )));
    };
    if size > max {
        return Ok(Err(format!("{name} at {pos} claims {size} bytes")));
    }
    if size > file_len - pos {
        return Ok(Err(format!(
            "{name} at {pos} needs {size} bytes, {} are left",
            file_len - pos
        )));
    }
    Ok(Ok(header))
}

fn walk(path: &Path) -> io::Result<Walk> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut summary = Summary {
        has_init: false,
        fragments: 0,
        first_decode_time: None,
        duration_90k: 0,
        complete_len: 0,
        file_len,
    };
    let stop = |summary: Summary, why: String| {
        Ok(Walk {
            summary,
            stop: Some(why),
        })
    };

    // The init: ftyp, then a moov describing the track.
    let ftyp = match expect_box(&mut file, 0, file_len, FTYP, MAX_MOOV_LEN)? {
        Ok(h) => h,
        Err(why) => return stop(summary, why),
    };
    let mut pos = ftyp.size.unwrap_or(0);
    let moov = match expect_box(&mut file, pos, file_len, MOOV, MAX_MOOV_LEN)? {
        Ok(h) => h,
        Err(why) => return stop(summary, why),
    };
    let moov_len = moov.size.unwrap_or(0);
    let track: TrackInfo = match fmp4::parse_moov(&read_box(&mut file, pos, moov_len)?) {
        Ok(t) => t,
        Err(why) => return stop(summary, format!("{why} (at {pos})")),
    };
    pos += moov_len;
    summary.has_init = true;
    summary.complete_len = pos;

    // Fragments: each a valid moof, then an mdat holding every byte the moof points at.
    while pos < file_len {
        let moof = match expect_box(&mut file, pos, file_len, MOOF, MAX_MOOF_LEN)? {
            Ok(h) => h,
            Err(why) => return stop(summary, why),
        };
        let moof_len = moof.size.unwrap_or(0);
        let frag = match fmp4::parse_moof(&read_box(&mut file, pos, moof_len)?, &track) {
            Ok(f) => f,
            Err(why) => return stop(summary, format!("{why} (at {pos})")),
        };
        let mdat_pos = pos + moof_len;
        let mdat = match expect_box(&mut file, mdat_pos, file_len, MDAT, u64::MAX)? {
            Ok(h) => h,
            Err(why) => return stop(summary, why),
        };
        let mdat_end = mdat_pos + mdat.size.unwrap_or(0);
        let data = moof_len + mdat.header_len..=mdat_end - pos;
        if frag.samples > 0 && !(data.contains(&frag.data_start) && data.contains(&frag.data_end)) {
            return stop(summary, format!("moof at {pos} points outside its mdat"));
        }
        summary.fragments += 1;
        if summary.first_decode_time.is_none() {
            summary.first_decode_time = frag.base_decode_time;
        }
        summary.duration_90k = summary.duration_90k.saturating_add(frag.duration_90k);
        summary.complete_len = mdat_end;
        pos = mdat_end;
    }
    Ok(Walk {
        summary,
        stop: None,
    })
}

/// What a segment file holds: walks the top-level boxes only (reads headers and seeks; the
/// small `moov` and `moof` boxes are read and parsed for the track and sample durations).
/// Damage is not an error: the summary ends at the last complete fragment.
pub fn summarize(path: &Path) -> io::Result<Summary> {
    Ok(walk(path)?.summary)
}

/// Cuts a file back to its last complete fragment (`set_len`, then fsync of the file); a
/// file whose init is incomplete is `Unplayable` and left as it is. A file with a complete
/// init and no complete fragment is cut back to the init (it plays as an empty video).
pub fn repair(path: &Path) -> io::Result<Repaired> {
    let Walk { summary, stop } = walk(path)?;
    if !summary.has_init {
        let why = stop.unwrap_or_else(|| "no init segment".to_string());
        return Ok(Repaired::Unplayable(format!(
            "no complete init segment (ftyp+moov) in {} bytes: {why}",
            summary.file_len
        )));
    }
    if summary.complete_len == summary.file_len {
        return Ok(Repaired::Intact);
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(summary.complete_len)?;
    file.sync_all()?;
    Ok(Repaired::Truncated {
        from: summary.file_len,
        to: summary.complete_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::tests::{
        assert_evenly_spaced, assert_plays, concat_pts, encoded, require, segment, segment_with,
        TempDir, TICKS,
    };
    use crate::mux::fmp4::TIMESCALE;
    use std::process::Command;

    /// A good segment: 90 frames in 3 fragments of 1 s, and the end offsets of the ftyp,
    /// the init, each moof and each fragment.
    struct Good {
        bytes: Vec<u8>,
        ftyp_end: u64,
        init_end: u64,
        moof_ends: Vec<u64>,
        frag_ends: Vec<u64>,
    }

    fn good() -> Good {
        let (bytes, ends) = segment(&encoded().1[..90], 30);
        let size_at = |pos: u64| {
            fmp4::parse_box_header(&bytes[pos as usize..])
                .unwrap()
                .unwrap()
                .size
                .unwrap()
        };
        Good {
            ftyp_end: size_at(0),
            init_end: ends[0],
            moof_ends: ends[..3].iter().map(|&e| e + size_at(e)).collect(),
            frag_ends: ends[1..].to_vec(),
            bytes,
        }
    }

    /// What a damaged file must repair to: `None` for unplayable, else the number of
    /// complete fragments left.
    fn check_case(dir: &TempDir, name: &str, bytes: &[u8], expect: Option<usize>, g: &Good) {
        let path = dir.file(&format!("{}.mp4", name.replace(' ', "-")));
        std::fs::write(&path, bytes).unwrap();
        let len = bytes.len() as u64;
        let before = summarize(&path).unwrap();
        assert_eq!(before.file_len, len, "{name}");
        let result = repair(&path).unwrap();
        let Some(kept) = expect else {
            assert!(
                matches!(result, Repaired::Unplayable(_)),
                "{name}: {result:?}"
            );
            assert!(!before.has_init, "{name}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{name}: left as it is"
            );
            return;
        };
        let to = if kept == 0 {
            g.init_end
        } else {
            g.frag_ends[kept - 1]
        };
        if to == len {
            assert_eq!(result, Repaired::Intact, "{name}");
        } else {
            assert_eq!(result, Repaired::Truncated { from: len, to }, "{name}");
        }
        let after = summarize(&path).unwrap();
        let expected = Summary {
            has_init: true,
            fragments: kept as u32,
            first_decode_time: (kept > 0).then_some(0),
            duration_90k: kept as u64 * 30 * TICKS,
            complete_len: to,
            file_len: to,
        };
        assert_eq!(after, expected, "{name}");
        // summarize() before the repair saw the same complete part.
        assert_eq!(
            Summary {
                file_len: to,
                ..before
            },
            expected,
            "{name}"
        );
        assert_eq!(repair(&path).unwrap(), Repaired::Intact, "{name}: again");
        if kept > 0 {
            assert_plays(&path, kept as u64 * 30);
        } else {
            // The init alone: ffprobe reads it silently (there is nothing to decode).
            require("ffprobe");
            let out = Command::new("ffprobe")
                .args(["-v", "error", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.stderr.is_empty(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn truncated_anywhere_repairs_to_the_last_complete_fragment() {
        let g = good();
        let dir = TempDir::new("truncate");
        let b = &g.bytes;
        let (init, m, f) = (g.init_end, &g.moof_ends, &g.frag_ends);
        let cases: Vec<(&str, u64, Option<usize>)> = vec![
            ("empty", 0, None),
            ("inside the ftyp header", 5, None),
            ("inside the ftyp", g.ftyp_end - 1, None),
            ("at the end of the ftyp", g.ftyp_end, None),
            ("inside the moov header", g.ftyp_end + 4, None),
            ("inside the moov", g.ftyp_end + 100, None),
            ("one byte short of the init", init - 1, None),
            ("exactly the init", init, Some(0)),
            ("inside the first moof header", init + 3, Some(0)),
            ("inside the first moof", init + 30, Some(0)),
            ("one byte short of the first moof", m[0] - 1, Some(0)),
            ("a moof without its mdat", m[0], Some(0)),
            ("inside the first mdat header", m[0] + 4, Some(0)),
            ("an mdat header without data", m[0] + 8, Some(0)),
            ("inside the first mdat", (m[0] + f[0]) / 2, Some(0)),
            ("one byte short of fragment 1", f[0] - 1, Some(0)),
            ("exactly fragment 1", f[0], Some(1)),
            ("one byte into fragment 2", f[0] + 1, Some(1)),
            ("inside the second moof", f[0] + 100, Some(1)),
            ("at the second mdat", m[1], Some(1)),
            ("inside the second mdat", m[1] + 1000, Some(1)),
            ("exactly fragment 2", f[1], Some(2)),
            ("inside the third mdat", f[2] - 7, Some(2)),
            ("the whole file", f[2], Some(3)),
        ];
        for (name, at, expect) in cases {
            check_case(&dir, name, &b[..at as usize], expect, &g);
        }
    }

    #[test]
    fn trailing_garbage_is_cut() {
        let g = good();
        let dir = TempDir::new("garbage");
        let whole = &g.bytes;
        let first_moof = &whole[g.init_end as usize..g.moof_ends[0] as usize];
        let mut mdat_too_short = first_moof.to_vec();
        mdat_too_short.extend_from_slice(&[0, 0, 0x10, 0, b'm', b'd', b'a', b't', 1, 2, 3]);
        let mut mdat_too_small_for_moof = first_moof.to_vec();
        mdat_too_small_for_moof
            .extend_from_slice(&[0, 0, 0, 12, b'm', b'd', b'a', b't', 1, 2, 3, 4]);
        let mut stale = vec![0u8; 4096];
        let mut rng = crate::test_util::XorShift(0x2545_f491_4f6c_dd1d);
        for v in stale.iter_mut() {
            *v = rng.next_u64() as u8;
        }
        let tails: Vec<(&str, Vec<u8>)> = vec![
            ("zeros", vec![0; 7]),
            ("zero-filled blocks", vec![0; 8192]),
            ("random bytes", stale),
            (
                "a box running past the end",
                b"\0\0\x10\0moof\0\0\0\0\0\0\0\0".to_vec(),
            ),
            (
                "a complete box of another kind",
                b"\0\0\0\x10free\0\0\0\0\0\0\0\0".to_vec(),
            ),
            ("a box with an impossible size", b"\0\0\0\x04moof".to_vec()),
            (
                "a box running to the end (size 0)",
                b"\0\0\0\0mdat\x01\x02".to_vec(),
            ),
            ("a moof alone", first_moof.to_vec()),
            ("a moof and a short mdat", mdat_too_short),
            ("a moof pointing past its mdat", mdat_too_small_for_moof),
            ("a second init", whole[..g.init_end as usize].to_vec()),
        ];
        for (name, tail) in tails {
            let mut bytes = whole.clone();
            bytes.extend_from_slice(&tail);
            check_case(&dir, name, &bytes, Some(3), &g);
        }
        // A damaged moov: the init is not complete, nothing plays.
        let mut bad_moov = whole.clone();
        let trak = bad_moov.windows(4).position(|w| w == b"trak").unwrap();
        bad_moov[trak..trak + 4].copy_from_slice(b"xxxx");
        check_case(&dir, "a damaged moov", &bad_moov, None, &g);
    }

    /// Random truncations and byte flips (half of them in the boxes' headers and tables):
    /// never a panic, and whatever is not unplayable repairs to a file that summarizes as
    /// complete and stays intact on the next repair.
    #[test]
    fn fuzzed_files_never_panic_and_repair_consistently() {
        let g = good();
        let dir = TempDir::new("fuzz");
        let path = dir.file("fuzz.mp4");
        let mut rng = crate::test_util::XorShift(0xdead_beef_cafe_f00d);
        let mut next = move || rng.next_u64();
        // Where the structure is: the init and each moof (plus the mdat header after it).
        let mut structure: Vec<std::ops::Range<u64>> = Vec::new();
        structure.push(0..g.init_end);
        for (i, &m) in g.moof_ends.iter().enumerate() {
            let start = if i == 0 {
                g.init_end
            } else {
                g.frag_ends[i - 1]
            };
            structure.push(start..m + 8);
        }
        let mut outcomes = [0u32; 3];
        for round in 0..400 {
            let mut bytes = g.bytes.clone();
            let len = bytes.len() as u64;
            if round % 3 != 1 {
                for _ in 0..1 + next() % 4 {
                    let at = if next() % 2 == 0 {
                        let r = &structure[(next() % structure.len() as u64) as usize];
                        r.start + next() % (r.end - r.start)
                    } else {
                        next() % len
                    };
                    bytes[at as usize] ^= 1 << (next() % 8);
                }
            }
            if round % 3 != 0 {
                bytes.truncate((next() % (len + 1)) as usize);
            }
            std::fs::write(&path, &bytes).unwrap();
            let s = summarize(&path).unwrap();
            assert!(
                s.complete_len <= s.file_len && s.fragments <= 3,
                "round {round}: {s:?}"
            );
            match repair(&path).unwrap() {
                Repaired::Unplayable(why) => {
                    assert!(!s.has_init, "round {round}: {why}");
                    assert_eq!(std::fs::read(&path).unwrap(), bytes, "round {round}");
                    outcomes[0] += 1;
                }
                r => {
                    let after = summarize(&path).unwrap();
                    assert_eq!(after.file_len, s.complete_len, "round {round}: {r:?}");
                    assert_eq!(
                        after,
                        Summary {
                            file_len: s.complete_len,
                            ..s
                        },
                        "round {round}"
                    );
                    assert_eq!(repair(&path).unwrap(), Repaired::Intact, "round {round}");
                    outcomes[if r == Repaired::Intact { 1 } else { 2 }] += 1;
                }
            }
        }
        // The mutations reached every outcome.
        assert!(outcomes.iter().all(|&n| n > 10), "{outcomes:?}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = TempDir::new("missing");
        assert!(summarize(&dir.file("nope.mp4")).is_err());
        assert!(repair(&dir.file("nope.mp4")).is_err());
    }

    /// More than two segments: ffmpeg's concat demuxer moves each file by the previous
    /// files' durations, and ffmpeg 5.1 takes a fragmented file's end time (tfdt included)
    /// as its duration. Continuing tfdt therefore needs the segments' real durations in the
    /// list (from `repair::summarize`); tfdt from zero in each segment needs nothing.
    #[test]
    fn three_segments_concatenate_without_a_gap() {
        let (_, frames) = encoded();
        let dir = TempDir::new("concat3");
        let parts = [0..60, 60..90, 90..150];
        let mut continuing = String::new();
        let mut from_zero = String::new();
        for (i, r) in parts.iter().enumerate() {
            let path = dir.file(&format!("media-time-{i}.mp4"));
            std::fs::write(&path, segment(&frames[r.clone()], 30).0).unwrap();
            let summary = summarize(&path).unwrap();
            assert_eq!(summary.first_decode_time, Some(r.start as u64 * TICKS));
            assert_eq!(summary.duration_90k, r.len() as u64 * TICKS);
            continuing += &format!(
                "file '{}'\nduration {}\n",
                path.display(),
                summary.duration_90k as f64 / f64::from(TIMESCALE)
            );
            let path = dir.file(&format!("from-zero-{i}.mp4"));
            std::fs::write(&path, segment_with(&frames[r.clone()], 30, true).0).unwrap();
            assert_plays(&path, r.len() as u64);
            from_zero += &format!("file '{}'\n", path.display());
        }
        for (name, text) in [("continuing.txt", continuing), ("from-zero.txt", from_zero)] {
            let pts = concat_pts(&dir, name, &text);
            assert_eq!(pts.len(), 150, "{name}");
            assert_eq!(pts[0], 0.0, "{name}");
            assert_evenly_spaced(&pts, name);
        }
    }
}
