//! The live view's fMP4 (`vigint::live`), without a socket: frames of a real H.264 file
//! with B-frames go through a path's hub and the live muxer; what a viewer is sent (codec
//! message, init segment, one fragment per frame) is written to a file that ffmpeg must
//! decode without an error into exactly the frames of the original. Two viewers get the
//! same bytes (muxed once); a viewer that falls behind skips to a key frame and is live
//! again while another gets every frame.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use vigint::hub::MediaPath;
use vigint::live::{Format, LiveMessage, LiveStream, LiveViewer};
use vigint::media::{EncodedFrame, StreamInfo, CLOCK_RATE};
use vigint::mux::mp4read;

/// A 2 s, 25 fps, 320x240 H.264 clip with B-frames and a key frame each second.
fn make_clip(path: &Path) {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args([
            "-t", "2", "-c:v", "libx264", "-bf", "2", "-g", "25", "-pix_fmt", "yuv420p",
        ]);
    let r = run(cmd.arg(path), Duration::from_secs(60));
    assert!(r.ok, "ffmpeg: {}", r.stderr);
}

/// The clip's frames as a source publishes them (Annex-B, 90 kHz times) and its description.
fn frames_of(path: &Path) -> (Vec<EncodedFrame>, StreamInfo) {
    let f = std::fs::File::open(path).unwrap();
    let track = mp4read::read_index(&f).unwrap();
    let to_90k = |t: i64| t * i64::from(CLOCK_RATE) / i64::from(track.timescale);
    let frames = track
        .samples
        .iter()
        .map(|s| {
            let data = mp4read::read_sample(&f, s, track.length_size).unwrap();
            let dts = to_90k(s.dts as i64);
            EncodedFrame::from_annexb(
                Bytes::from(data),
                dts + to_90k(s.cts_offset),
                SystemTime::now(),
            )
            .with_dts(dts)
        })
        .collect();
    let info = StreamInfo {
        width: 320,
        height: 240,
        fps: 25,
        sps: Bytes::from(track.sps.clone()),
        pps: Bytes::from(track.pps.clone()),
    };
    (frames, info)
}

/// A path fed by nothing yet, its description that of a fresh clip (`make_clip`) in a
/// scratch directory named `what`, and a live stream of it in `format`: the directory
/// (kept while the test runs), the clip, its frames, the path and the stream.
fn clip_path(
    what: &str,
    format: Format,
) -> (
    TempDir,
    PathBuf,
    Vec<EncodedFrame>,
    Arc<MediaPath>,
    Arc<LiveStream>,
) {
    let dir = TempDir::new(what);
    let clip = dir.file("clip.mp4");
    make_clip(&clip);
    let (frames, info) = frames_of(&clip);
    let media = MediaPath::new("clip");
    media.set_info(info);
    let live = LiveStream::start(media.clone(), format);
    (dir, clip, frames, media, live)
}

/// Publishes `frames` into `media`, each once the live muxer has taken the one before.
async fn publish(media: &MediaPath, live: &LiveStream, frames: &[EncodedFrame]) {
    for f in frames {
        let muxed_before = live.fragments();
        media.frames.publish(Arc::new(f.clone()));
        for _ in 0..2000 {
            if live.fragments() > muxed_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Everything a viewer is sent until `fragments` fragments have come.
async fn collect(mut viewer: LiveViewer, fragments: usize) -> Vec<LiveMessage> {
    let mut out = Vec::new();
    let mut seen = 0;
    while seen < fragments {
        let m = tokio::time::timeout(Duration::from_secs(10), viewer.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream goes on");
        if matches!(m, LiveMessage::Fragment(_)) {
            seen += 1;
        }
        out.push(m);
    }
    out
}

/// ffmpeg's per-frame checksums of the decoded pictures of `path` (and its error output).
fn framemd5(path: &Path) -> (Vec<String>, String) {
    let r = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-f", "framemd5", "-"]),
        Duration::from_secs(60),
    );
    assert!(r.ok, "ffmpeg: {}", r.stderr);
    let sums = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_string()))
        .collect();
    (sums, r.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_every_frame_of_a_b_frame_stream_as_decodable_fmp4() {
    let (dir, clip, frames, media, live) = clip_path("live-mux", Format::Fmp4);
    assert_eq!(frames.len(), 50);
    assert!(
        frames.iter().any(|f| f.pts_90k != f.dts_90k),
        "the clip has B-frames"
    );

    let (a, b) = (live.viewer(), live.viewer());
    assert_eq!(live.viewers(), 2);
    let (ta, tb) = (
        tokio::spawn(collect(a, frames.len())),
        tokio::spawn(collect(b, frames.len())),
    );
    publish(&media, &live, &frames).await;
    let (a, b) = (ta.await.unwrap(), tb.await.unwrap());

    // Codec message, init segment, then one fragment per frame.
    let LiveMessage::Codec(codec) = &a[0] else {
        panic!("first: {:?}", a[0]);
    };
    let codec: serde_json::Value = serde_json::from_str(codec).unwrap();
    assert_eq!(codec["type"], "codec");
    assert_eq!(
        (codec["width"].as_u64(), codec["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(
        codec["mime"]
            .as_str()
            .unwrap()
            .starts_with("video/mp4; codecs=\"avc1.64"),
        "{codec}"
    );
    assert!(matches!(a[1], LiveMessage::Init(_)));
    assert_eq!(a.len(), 2 + frames.len());

    // Muxed once: both viewers hold the very same buffers.
    for (x, y) in a.iter().zip(&b).skip(1) {
        match (x, y) {
            (LiveMessage::Init(x), LiveMessage::Init(y))
            | (LiveMessage::Fragment(x), LiveMessage::Fragment(y)) => {
                assert_eq!(x.as_ptr(), y.as_ptr(), "one buffer shared by every viewer")
            }
            other => panic!("viewers differ: {other:?}"),
        }
    }

    // What the browser appends, as a file: ffmpeg decodes it cleanly to the clip's frames.
    let out = dir.file("live.mp4");
    let mut bytes = Vec::new();
    for m in &a[1..] {
        if let LiveMessage::Init(d) | LiveMessage::Fragment(d) = m {
            bytes.extend_from_slice(d);
        }
    }
    std::fs::write(&out, &bytes).unwrap();
    let (original, _) = framemd5(&clip);
    let (ours, errors) = framemd5(&out);
    assert!(errors.is_empty(), "ffmpeg reported: {errors}");
    assert_eq!(original.len(), 50);
    let first_difference = ours.iter().zip(&original).position(|(a, b)| a != b);
    assert!(
        ours.len() == original.len() && first_difference.is_none(),
        "every frame, in order, exactly as the clip's: {} frames decoded of {}, first \
         different picture at {first_difference:?}",
        ours.len(),
        original.len()
    );
    let probe = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height,has_b_frames",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&out),
        Duration::from_secs(30),
    );
    assert_eq!(probe.stdout.trim(), "h264,320,240,2", "{}", probe.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_stream_viewer_gets_every_frame_decodable() {
    let (dir, clip, frames, media, live) = clip_path("live-ts", Format::MpegTs);
    let viewer = tokio::spawn(collect(live.viewer(), frames.len()));
    publish(&media, &live, &frames).await;
    let messages = viewer.await.unwrap();
    // Binary only: the transport stream carries its own tables and parameter sets.
    let mut ts = Vec::new();
    for m in &messages {
        let LiveMessage::Fragment(d) = m else {
            panic!("a transport stream viewer got {m:?}");
        };
        assert_eq!(d.len() % 188, 0);
        ts.extend_from_slice(d);
    }
    let out = dir.file("live.ts");
    std::fs::write(&out, &ts).unwrap();
    let (original, _) = framemd5(&clip);
    let (ours, errors) = framemd5(&out);
    assert!(errors.is_empty(), "ffmpeg reported: {errors}");
    assert_eq!(ours.len(), original.len(), "every frame decoded");
    assert_eq!(ours, original, "the clip's pictures, in order");
    let probe = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
            ])
            .args(["-show_entries", "format=format_name", "-of", "csv=p=0"])
            .arg(&out),
        Duration::from_secs(30),
    );
    assert!(probe.stderr.is_empty(), "ffprobe: {}", probe.stderr);
    // (ffprobe lists the stream twice: in its program and on its own.)
    let mut lines: Vec<&str> = probe.stdout.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    lines.dedup();
    assert_eq!(lines, ["h264,320,240", "mpegts"], "{}", probe.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_falls_behind_skips_to_a_key_frame_and_the_others_do_not_wait() {
    let (_dir, _clip, frames, media, live) = clip_path("live-lag", Format::Fmp4);
    let fast = tokio::spawn(collect(live.viewer(), frames.len()));
    let mut slow = live.viewer();

    // The slow viewer reads its first key frame, then nothing while the second's group
    // and most of the next second are published (2 s of media time in all).
    publish(&media, &live, &frames[..1]).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(slow.next().await.unwrap());
    }
    assert!(matches!(first[2], LiveMessage::Fragment(_)));
    publish(&media, &live, &frames[1..]).await;
    let fast = fast.await.unwrap();
    assert_eq!(
        fast.iter()
            .filter(|m| matches!(m, LiveMessage::Fragment(_)))
            .count(),
        frames.len(),
        "the other viewer got every frame"
    );

    // Now the slow viewer reads on: it is over MAX_LAG behind, so it gives up the stale
    // rest of the clip and waits for the next key frame.
    let stale = tokio::time::timeout(Duration::from_millis(500), slow.next()).await;
    assert!(stale.is_err(), "nothing stale delivered: {stale:?}");
    assert_eq!(slow.resyncs(), 1, "fell behind and skipped");
    assert!(slow.dropped_frames() >= 40, "{}", slow.dropped_frames());

    // The path goes on (the clip again, 2 s later, as a looped file plays): the slow
    // viewer's next fragment is the new key frame, live.
    let looped: Vec<EncodedFrame> = frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.pts_90k += 2 * 90_000;
            f.dts_90k += 2 * 90_000;
            f
        })
        .collect();
    let reader = tokio::spawn(async move {
        let m = tokio::time::timeout(Duration::from_secs(10), slow.next()).await;
        (m, slow)
    });
    publish(&media, &live, &looped[..5]).await;
    let (m, slow) = reader.await.unwrap();
    let Ok(Some(LiveMessage::Fragment(bytes))) = m else {
        panic!("a fragment after the skip: {m:?}");
    };
    let moof = vigint::mux::fmp4::parse_box_header(&bytes)
        .unwrap()
        .unwrap();
    let init = match &first[1] {
        LiveMessage::Init(d) => {
            let ftyp = vigint::mux::fmp4::parse_box_header(d).unwrap().unwrap();
            vigint::mux::fmp4::parse_moov(&d[ftyp.size.unwrap() as usize..]).unwrap()
        }
        other => panic!("{other:?}"),
    };
    let fragment =
        vigint::mux::fmp4::parse_moof(&bytes[..moof.size.unwrap() as usize], &init).unwrap();
    assert_eq!(
        fragment.base_decode_time,
        Some(looped[0].dts_90k as u64),
        "the next key frame (the live timeline starts at the path's first frame, 0 here)"
    );
    println!(
        "slow viewer: {} resync, {} frames dropped",
        slow.resyncs(),
        slow.dropped_frames()
    );
}
