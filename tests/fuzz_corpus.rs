//! Replays the fuzz targets' committed inputs on stable, in `cargo test`: every file of
//! `fuzz/corpus/<target>/` (the seeds: what ffmpeg, GStreamer, live555 and vigint itself
//! send, and hand-made edge cases) and of `fuzz/regressions/<target>/` (each input that
//! once crashed, hung or broke an invariant) goes through the same harness the fuzzer runs
//! (`vigint::fuzzing`). A missing or empty corpus fails: nothing is skipped silently. A
//! target without regressions has no directory there (git keeps no empty directories).
//! `scripts/fuzz.sh` runs the fuzzer itself (nightly); docs/RTSP.md, "Fuzzing".
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every target needs a corpus)", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        if kind == "regressions" && !dir.exists() {
            println!("{target}: no regressions kept");
            continue;
        }
        let started = Instant::now();
        let files = files(&dir);
        assert!(
            kind == "regressions" || !files.is_empty(),
            "{} is empty: every target needs at least one seed",
            dir.display()
        );
        for f in &files {
            let data = std::fs::read(f).unwrap();
            // The file's name in the failure: that is the reproducer.
            let run = std::panic::catch_unwind(|| harness(&data));
            assert!(run.is_ok(), "{target}: {} fails", f.display());
        }
        println!(
            "{target}: {} files of {} in {:?}",
            files.len(),
            dir.display(),
            started.elapsed()
        );
    }
}

#[test]
fn sdp_inputs() {
    replay("sdp", vigint::fuzzing::sdp);
}

#[test]
fn depacketize_inputs() {
    replay("depacketize", vigint::fuzzing::depacketize);
}

#[test]
fn rtsp_request_inputs() {
    replay("rtsp_request", vigint::fuzzing::rtsp_request);
}
