//! A source that comes back with another picture size: viewers are disconnected cleanly so
//! they reconnect, and the next DESCRIBE describes the new size. In-process: the library's
//! RTSP server and pipeline, played by retina.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use retina::client::{
    PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, ParametersRef};
use vigint::config::RtspConfig;
use vigint::encode::EncoderSettings;
use vigint::hub::MediaPath;
use vigint::rtsp::server::RtspServer;
use vigint::source::pattern::TestPattern;
use vigint::source::pipeline::Pipeline;
use vigint::source::{CaptureError, FrameSource};

fn pattern_pipeline(media: Arc<MediaPath>, w: u32, h: u32) -> Pipeline {
    let factory = Box::new(move || -> Result<Box<dyn FrameSource>, CaptureError> {
        Ok(Box::new(TestPattern::new(w, h, 15)?))
    });
    let settings = EncoderSettings {
        width: w,
        height: h,
        fps: 15,
        bitrate_kbps: 300,
        idr_interval_frames: 15,
    };
    Pipeline::spawn(media, factory, settings).expect("pipeline")
}

async fn play(url: &str) -> (retina::client::Demuxed, (u32, u32)) {
    let url = url::Url::parse(url).expect("url");
    let mut s = Session::describe(url, SessionOptions::default())
        .await
        .expect("describe");
    let size = match s.streams()[0].parameters() {
        Some(ParametersRef::Video(v)) => v.pixel_dimensions(),
        _ => panic!("no video parameters in the SDP"),
    };
    s.setup(
        0,
        SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
    )
    .await
    .expect("setup");
    let d = s
        .play(PlayOptions::default())
        .await
        .expect("play")
        .demuxed()
        .expect("demux");
    (d, size)
}

/// The next video frame, skipping RTCP and other items; panics on error or timeout.
async fn next_video(d: &mut retina::client::Demuxed) {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), d.next())
            .await
            .expect("a frame in time");
        match item {
            Some(Ok(CodecItem::VideoFrame(_))) => return,
            Some(Ok(_)) => {}
            other => panic!("stream failed: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_reconnect_when_the_picture_size_changes() {
    let cfg = RtspConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        udp_rtp_port: 0,
        ..RtspConfig::default()
    };
    let server = RtspServer::bind(&cfg, &[]).await.expect("bind");
    let url = format!("rtsp://{}/cam", server.local_addr().expect("addr"));
    let ctx = server.context().clone();
    let media = MediaPath::new("cam");
    ctx.add_path(media.clone(), 0);
    tokio::spawn(server.run(std::future::pending()));

    let first = pattern_pipeline(media.clone(), 320, 240);
    let (mut viewer, size) = play(&url).await;
    assert_eq!(size, (320, 240));
    for _ in 0..10 {
        next_video(&mut viewer).await;
    }

    // The camera comes back at another size.
    tokio::task::spawn_blocking(move || first.stop())
        .await
        .expect("stop");
    let second = pattern_pipeline(media.clone(), 640, 480);

    // The old viewer's stream ends (connection closed) instead of carrying undecodable frames.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match viewer.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the viewer was not disconnected after the format change"
    );

    // A new viewer gets the new description and frames.
    let (mut viewer, size) = play(&url).await;
    assert_eq!(size, (640, 480));
    next_video(&mut viewer).await;
    tokio::task::spawn_blocking(move || second.stop())
        .await
        .expect("stop");
}
