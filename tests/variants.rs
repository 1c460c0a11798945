//! Variants over real TCP: `?width=`, `?height=` and `?quality=` on stream
//! and snapshot URLs give frames of the asked size (decoded by zune-jpeg,
//! not the server's decoder), shared by every viewer of the same variant,
//! while plain viewers get the source's bytes untouched.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::{Hub, ServerOptions};
use std::time::Duration;

/// A 1280×720 source frame.
fn source() -> Vec<u8> {
    corpus("jpeg_200k.jpg")
}

/// A server with stream `cam`, fed tagged 1280×720 frames every 40 ms
/// until it stops, and at most `max_variants` variants a stream.
async fn server(max_variants: usize) -> TestServer {
    let srv = TestServer::start(
        &["cam", "pushed"],
        ServerOptions {
            http: HttpOptions {
                max_variants,
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    srv.hub("pushed").set_accepts_push(true);
    tokio::spawn(publish(srv.hub("cam"), srv.token.clone(), 40));
    srv
}

async fn publish(hub: Hub, stop: tokio_util::sync::CancellationToken, every_ms: u64) {
    let base = source();
    for n in 0u64.. {
        hub.publish_jpeg(tagged(&base, &n.to_string())).unwrap();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(every_ms)) => {}
        }
    }
}

async fn get(srv: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let res = reqwest::get(srv.url(path)).await.unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn each_parameter_gives_the_size_asked_for() {
    let srv = server(8).await;
    for (query, want) in [
        ("width=320", (320, 180)),
        ("height=90", (160, 90)),
        ("width=320&height=320", (320, 180)),
        ("width=1000&height=100", (178, 100)),
        ("width=640&quality=60", (640, 360)),
        ("width=321&fps=5", (321, 181)),
    ] {
        let mut viewer = RawClient::stream(srv.addr, &format!("/stream/cam?{query}")).await;
        let part = viewer.part().await;
        assert_eq!(decode(&part.jpeg), want, "/stream/cam?{query}");
        // The same variant as one JPEG.
        let (status, jpeg) = get(&srv, &format!("/snapshot/cam?{query}")).await;
        assert_eq!(status, 200, "/snapshot/cam?{query}");
        assert_eq!(decode(&jpeg), want, "/snapshot/cam?{query}");
    }
    // The mjpg-streamer URLs take them too.
    let mut viewer = RawClient::stream(srv.addr, "/?action=stream&width=320").await;
    assert_eq!(decode(&viewer.part().await.jpeg), (320, 180));
    let (status, jpeg) = get(&srv, "/?action=snapshot&height=180").await;
    assert_eq!((status, decode(&jpeg)), (200, (320, 180)));
}

#[tokio::test]
async fn plain_viewers_get_the_source_untouched_and_nothing_is_upscaled() {
    let srv = server(8).await;
    let base = source();
    let mut plain = RawClient::stream(srv.addr, "/stream/cam").await;
    let part = plain.part().await;
    let tag = part.tag().expect("a tagged source frame");
    assert_eq!(part.jpeg, tagged(&base, &tag), "the original changed");

    // Larger than the source, or the source's own size: the source's bytes.
    for query in ["width=5000", "width=1280&height=720", "height=16384"] {
        let mut viewer = RawClient::stream(srv.addr, &format!("/stream/cam?{query}")).await;
        let part = viewer.part().await;
        let tag = part.tag().expect("the source's own frame");
        assert_eq!(part.jpeg, tagged(&base, &tag), "?{query} re-encoded");
    }
    // A quality alone re-encodes at the same size.
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam?quality=30").await;
    let part = viewer.part().await;
    assert_eq!(decode(&part.jpeg), (1280, 720));
    assert!(
        part.jpeg.len() < base.len() / 2,
        "{} bytes",
        part.jpeg.len()
    );
}

#[tokio::test]
async fn bad_values_get_400_naming_the_parameter() {
    let srv = server(8).await;
    for (query, name) in [
        ("width=0", "width="),
        ("width=-5", "width="),
        ("width=abc", "width="),
        ("width=16385", "width="),
        ("height=0", "height="),
        ("height=1.5", "height="),
        ("quality=0", "quality="),
        ("quality=101", "quality="),
    ] {
        for route in ["/stream/cam", "/snapshot/cam"] {
            let (status, body) = get(&srv, &format!("{route}?{query}")).await;
            let body = String::from_utf8_lossy(&body);
            assert_eq!(status, 400, "{route}?{query}: {body}");
            assert!(body.starts_with(name), "{route}?{query}: {body}");
        }
    }
}

#[tokio::test]
async fn viewers_share_a_variant_and_the_limit_holds() {
    let srv = server(2).await;
    let mut a = RawClient::stream(srv.addr, "/stream/cam?width=320").await;
    let mut b = RawClient::stream(srv.addr, "/stream/cam?width=320").await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam?width=200").await;
    for v in [&mut a, &mut b, &mut c] {
        v.part().await;
    }
    // Two viewers of one variant: one variant, made once per frame.
    let variants = srv.hub("cam").variants();
    let names: Vec<&str> = variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(names, ["width=200", "width=320"]);
    let w320 = &variants[1];
    assert_eq!(w320.viewers, 2);
    assert!(w320.frames_made > 0 && w320.mean_ms > 0.0 && w320.p99_ms >= w320.mean_ms);
    // Frames made stay about those of the source, not twice them.
    let published = srv.hub("cam").stats().frames_published;
    assert!(
        w320.frames_made <= published,
        "{} made of {published}",
        w320.frames_made
    );

    // A third distinct variant is over the limit of 2.
    let (status, body) = get(&srv, "/stream/cam?width=100").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_variants"), "{body}");
    assert!(body.contains("width=320"), "{body}");
    let (status, _) = get(&srv, "/snapshot/cam?width=100").await;
    assert_eq!(status, 503);
    // The same variant again is not a new one.
    let (status, jpeg) = get(&srv, "/snapshot/cam?width=320").await;
    assert_eq!((status, decode(&jpeg)), (200, (320, 180)));

    // /status shows them; once nobody watches, they are forgotten.
    let status: serde_json::Value = reqwest::get(srv.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = &status["streams"][0]["variants"];
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{status}");
    assert_eq!(listed[1]["variant"], "width=320", "{status}");
    assert_eq!(listed[1]["viewers"], 2, "{status}");
    let metrics = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mjpeg_variants{stream=\"cam\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mjpeg_variant_clients{stream=\"cam\",variant=\"width=320\"} 2"),
        "{metrics}"
    );
    drop((a, b, c));
    let deadline = tokio::time::Instant::now() + mjpeg_server::hub::VARIANT_LINGER * 4;
    while !srv.hub("cam").variants().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "variants outlived their viewers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = get(&srv, "/snapshot/cam?width=100").await;
    assert_eq!(status, 200, "a variant slot was not freed");
}

#[tokio::test]
async fn a_variant_viewer_does_not_slow_the_original() {
    let srv = server(8).await;
    // A costly variant: a full-size re-encode of every frame.
    let mut heavy = RawClient::stream(srv.addr, "/stream/cam?quality=95").await;
    heavy.part().await;
    let mut plain = RawClient::stream(srv.addr, "/stream/cam").await;
    let first: u64 = plain.part().await.tag().unwrap().parse().unwrap();
    let mut last = first;
    let mut got = 0;
    for _ in 0..25 {
        let part = plain
            .part_within(Duration::from_secs(5))
            .await
            .expect("a frame");
        if let Some(tag) = part.tag() {
            last = tag.parse().unwrap();
            got += 1;
        }
    }
    // The plain viewer saw the source's frames, not one every variant.
    assert!(got >= 20, "{got} of 25 parts were source frames");
    assert!(
        last - first <= 40,
        "the plain viewer fell behind: {first}..{last}"
    );
    drop(heavy);
}

#[tokio::test]
async fn variants_of_a_pushed_and_of_a_relayed_stream() {
    let srv = server(8).await;
    let res = reqwest::Client::new()
        .put(srv.url("/stream/pushed"))
        .body(source())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, jpeg) = get(&srv, "/snapshot/pushed?width=320").await;
    assert_eq!((status, decode(&jpeg)), (200, (320, 180)));

    // A second server relays the first's stream; its viewer asks for a variant.
    let relay = TestServer::start(&["front"], ServerOptions::default()).await;
    let spec: SourceSpec = format!("relay:{}", srv.url("/stream/cam")).parse().unwrap();
    spec.spawn(
        relay.hub("front"),
        SourceOptions::default(),
        relay.token.clone(),
    );
    let mut viewer = RawClient::stream(relay.addr, "/stream/front?width=640").await;
    let part = viewer
        .part_within(Duration::from_secs(10))
        .await
        .expect("a relayed frame");
    assert_eq!(decode(&part.jpeg), (640, 360));
}

#[tokio::test]
async fn ffmpeg_reads_a_variant_stream() {
    if !tool_available("ffmpeg", "apt-get install ffmpeg") {
        return;
    }
    let srv = server(8).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frame.jpg");
    let url = srv.url("/stream/cam?width=320");
    let done = tokio::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "mpjpeg", "-i", &url])
        .args(["-frames:v", "1", "-c:v", "copy"])
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(decode(&std::fs::read(&out).unwrap()), (320, 180));
}

/// A flat grey 1280×720 frame: an overlay on it is easy to find.
fn grey() -> mjpeg_server::Frame {
    let rgb = vec![128u8; 1280 * 720 * 3];
    mjpeg_server::Frame::from_pixels(&rgb, 1280, 720, mjpeg_server::frame::Pixels::Rgb, 90).unwrap()
}

/// Pixels of a decoded frame that are not the grey of [`grey`] (beyond
/// JPEG noise), counted inside and outside the bottom-left band of
/// `band_w`×`band_h`.
fn changed_pixels(jpeg: &[u8], band_w: usize, band_h: usize) -> (usize, usize) {
    let mut d = zune_jpeg::JpegDecoder::new(jpeg);
    let rgb = d.decode().unwrap();
    let (w, h) = d.dimensions().unwrap();
    let (mut inside, mut outside) = (0, 0);
    for (i, px) in rgb.chunks(3).enumerate() {
        let (x, y) = (i % w, i / w);
        if px.iter().any(|&c| (i16::from(c) - 128).abs() > 24) {
            if x < band_w && y >= h - band_h {
                inside += 1;
            } else {
                outside += 1;
            }
        }
    }
    (inside, outside)
}

#[tokio::test]
async fn an_overlay_is_drawn_on_the_stream_and_its_variants() {
    use mjpeg_server::variant::{Clock, Overlay};
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    let hub = srv.hub("cam");
    hub.set_overlay(Some(
        Overlay::new("{stream} %Y-%m-%d %H:%M:%S", Clock::Utc).unwrap(),
    ));
    let frame = grey();
    let plain = frame.jpeg().clone();
    hub.publish(frame).unwrap();

    // Plain viewers get the overlaid frame, at the source's size.
    let (status, jpeg) = get(&srv, "/snapshot/cam").await;
    assert_eq!((status, decode(&jpeg)), (200, (1280, 720)));
    assert_ne!(jpeg, plain.to_vec());
    // Text "cam 2026-11-30 12:34:56": 23 glyphs of 20×40 at this size.
    let (inside, outside) = changed_pixels(&jpeg, 23 * 20 + 16, 40 + 16);
    assert!(inside > 2000, "{inside} pixels of the overlay band changed");
    assert_eq!(outside, 0, "pixels changed outside the overlay band");

    // A variant is drawn on too, with text sized to it.
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam?width=320").await;
    let part = viewer.part().await;
    assert_eq!(decode(&part.jpeg), (320, 180));
    let (inside, outside) = changed_pixels(&part.jpeg, 23 * 6 + 8, 10 + 8);
    assert!(
        inside > 100,
        "{inside} pixels of the variant's overlay band changed"
    );
    assert_eq!(outside, 0);
    let names: Vec<String> = hub.variants().into_iter().map(|v| v.variant).collect();
    assert!(
        names.contains(&"width=320&overlay".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_command_line_takes_an_overlay_and_refuses_a_bad_one() {
    let srv = ServerProcess::start(&[
        "--stream",
        "cam=demo#overlay={stream} %H:%M:%S#overlay-time=local",
    ]);
    // The demo's first frame may take a moment.
    let url = format!("http://{}/snapshot/cam", srv.addr);
    let mut res = reqwest::get(&url).await.unwrap();
    for _ in 0..50 {
        if res.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        res = reqwest::get(&url).await.unwrap();
    }
    assert_eq!(res.status(), 200);
    assert_eq!(decode(&res.bytes().await.unwrap()), (640, 360));
    let status: serde_json::Value = reqwest::get(format!("http://{}/status", srv.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["streams"][0]["variants"][0]["variant"], "overlay",
        "{status}"
    );
    drop(srv);

    let out = logged_server(&["--stream", "cam=demo#overlay=café"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("printable ASCII"), "{err}");
}

#[tokio::test]
async fn max_variants_zero_turns_variants_off() {
    let srv = server(0).await;
    let (status, body) = get(&srv, "/stream/cam?width=320").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("makes no variants"), "{body}");
    // The stream itself is still served, untouched.
    let mut plain = RawClient::stream(srv.addr, "/stream/cam").await;
    assert_eq!(decode(&plain.part().await.jpeg), (1280, 720));
}
