//! Real MJPEG clients read the stream: ffmpeg (which OpenCV reads through)
//! must get every frame byte for byte, with no parser complaints.

mod common;

use common::*;
use mjpeg_server::ServerOptions;
use std::time::Duration;

#[tokio::test]
async fn ffmpeg_reads_every_frame_intact() {
    if !tool_available("ffmpeg", "apt-get install ffmpeg") {
        return;
    }
    let ffmpeg = "ffmpeg";
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    let hub = srv.hub("cam");
    let frames: Vec<Vec<u8>> = ["jpeg_50k.jpg", "exif_thumbnail.jpg", "restart_markers.jpg"]
        .iter()
        .map(|n| tagged(&corpus(n), n))
        .collect();
    hub.publish_jpeg(frames[0].clone()).unwrap();
    let publisher = {
        let hub = hub.clone();
        let frames = frames.clone();
        tokio::spawn(async move {
            for i in 1.. {
                tokio::time::sleep(Duration::from_millis(50)).await;
                hub.publish_jpeg(frames[i % frames.len()].clone()).unwrap();
            }
        })
    };
    // Copy the JPEGs out as they came: byte-identical frames prove the
    // demuxer found every part boundary where the server put it.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(ffmpeg)
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(srv.url("/stream/cam"))
            .args(["-frames:v", "12", "-c:v", "copy", "-f", "mjpeg", "-"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg did not finish")
    .unwrap();
    publisher.abort();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.trim().is_empty(), "ffmpeg complained: {stderr}");

    let mut rest = &out.stdout[..];
    let mut got = 0;
    while !rest.is_empty() {
        let len = mjpeg_server::jpeg::scan(rest)
            .expect("ffmpeg output is not whole JPEGs")
            .len;
        let frame = &rest[..len];
        assert!(
            frames.iter().any(|f| f == frame),
            "frame {got} differs from every frame sent"
        );
        decode(frame);
        rest = &rest[len..];
        got += 1;
    }
    assert_eq!(got, 12);
}
