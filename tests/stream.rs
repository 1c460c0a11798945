//! End-to-end behaviour of stream, snapshot, index and status over real TCP.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn opts(resend_after: Option<Duration>) -> ServerOptions {
    ServerOptions {
        http: HttpOptions {
            resend_after,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn the_wire_format_is_byte_exact() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let hub = srv.hub("cam");
    hub.publish_jpeg(tagged(&corpus("jpeg_50k.jpg"), "first"))
        .unwrap();

    let mut c = RawClient::request(srv.addr, "GET", "/stream/cam").await;
    let head = c.head().await;
    assert_eq!(head.status_line, "HTTP/1.0 200 OK");
    assert_eq!(
        head.get("content-type"),
        Some("multipart/x-mixed-replace; boundary=mjpegserverboundary")
    );
    assert_eq!(
        head.get("cache-control"),
        Some("no-store, no-cache, must-revalidate, max-age=0")
    );
    assert_eq!(head.get("pragma"), Some("no-cache"));
    assert_eq!(head.get("expires"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert_eq!(head.get("connection"), Some("close"));
    assert_eq!(head.get("x-accel-buffering"), Some("no"));
    assert_eq!(head.get("transfer-encoding"), None, "no chunked encoding");
    assert_eq!(head.get("content-length"), None);
    c.preamble().await;

    // The frame that was current on arrival comes at once.
    let first = c.part().await;
    assert_eq!(first.tag().as_deref(), Some("first"));
    assert_eq!(
        first
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["Content-Type", "Content-Length", "X-Timestamp"]
    );
    assert_eq!(first.get("Content-Type"), Some("image/jpeg"));
    assert!((now() - first.timestamp()).abs() < 10.0);
    // X-Timestamp has microseconds.
    assert_eq!(
        first
            .get("X-Timestamp")
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .len(),
        6
    );

    // Every trap of the corpus that is a valid JPEG goes through intact.
    for name in [
        "exif_thumbnail.jpg",
        "progressive.jpg",
        "restart_markers.jpg",
        "jpeg_200k.jpg",
        "jpeg_1m.jpg",
        "jpeg_5k.jpg",
    ] {
        let sent = tagged(&corpus(name), name);
        hub.publish_jpeg(sent.clone()).unwrap();
        let part = c.part().await;
        assert_eq!(part.tag().as_deref(), Some(name));
        assert_eq!(part.jpeg, sent, "{name} arrived changed");
        assert_eq!(
            part.get("Content-Length"),
            Some(sent.len().to_string().as_str())
        );
        let (w, h) = decode(&part.jpeg);
        assert!(w > 0 && h > 0);
    }
}

#[tokio::test]
async fn bad_frames_are_refused_and_the_stream_keeps_the_last_good_one() {
    let srv = TestServer::start(&["cam"], opts(Some(Duration::from_millis(200)))).await;
    let hub = srv.hub("cam");
    hub.publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "good"))
        .unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    assert_eq!(c.part().await.tag().as_deref(), Some("good"));
    for bad in [
        "truncated.jpg",
        "empty.jpg",
        "garbage.jpg",
        "image.png",
        "image.gif",
    ] {
        let err = hub.publish_jpeg(corpus(bad)).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
    // The idle re-send shows the last good frame is still the one served.
    assert_eq!(c.part().await.tag().as_deref(), Some("good"));
    let stats = hub.stats();
    assert_eq!((stats.frames_published, stats.frames_rejected), (1, 5));
}

#[tokio::test]
async fn every_url_family_reaches_the_right_stream() {
    let srv = TestServer::start(&["a", "b"], opts(None)).await;
    srv.hub("a")
        .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "A"))
        .unwrap();
    srv.hub("b")
        .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "B"))
        .unwrap();

    for (path, want) in [
        ("/stream", "A"),
        ("/stream/a", "A"),
        ("/stream/b", "B"),
        ("/?action=stream", "A"),
        ("/?action=stream_0", "A"),
        ("/?action=stream_1", "B"),
        ("/stream/b?fps=5", "B"),
    ] {
        let mut c = RawClient::stream(srv.addr, path).await;
        assert_eq!(c.part().await.tag().as_deref(), Some(want), "{path}");
    }

    let http = reqwest::Client::new();
    for (path, want) in [
        ("/snapshot", "A"),
        ("/snapshot/a", "A"),
        ("/snapshot/b", "B"),
        ("/?action=snapshot", "A"),
        ("/?action=snapshot_1", "B"),
    ] {
        let res = http.get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert!(res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store"));
        let ts: f64 = res.headers()["x-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((now() - ts).abs() < 10.0);
        let body = res.bytes().await.unwrap();
        assert_eq!(tag_of(&body).as_deref(), Some(want), "{path}");
        decode(&body);
    }
}

#[tokio::test]
async fn index_and_status() {
    let srv = TestServer::start(&["cam", "graphs"], opts(None)).await;
    srv.hub("cam").publish_jpeg(corpus("jpeg_50k.jpg")).unwrap();
    let http = reqwest::Client::new();

    let res = http.get(srv.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    for n in ["cam", "graphs"] {
        assert!(
            html.contains(&format!(r#"<mjpeg-stream src="/stream/{n}""#)),
            "{html}"
        );
        assert!(html.contains(&format!(r#"href="/snapshot/{n}""#)), "{html}");
    }

    let _viewer = RawClient::stream(srv.addr, "/stream/cam").await;
    srv.wait_clients("cam", 1).await;
    let res = http.get(srv.url("/status")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let status: serde_json::Value = res.json().await.unwrap();
    let cam = &status["streams"][0];
    assert_eq!(cam["name"], "cam");
    assert_eq!(cam["frames_published"], 1);
    assert_eq!(cam["clients"], 1);
    assert_eq!(cam["width"], 640);
    assert!(cam["newest_frame_age_ms"].as_u64().unwrap() < 60_000);
    assert!(cam["fps_in"].is_number());
    let graphs = &status["streams"][1];
    assert_eq!(graphs["name"], "graphs");
    assert_eq!(graphs["frames_published"], 0);
    assert!(graphs["newest_frame_age_ms"].is_null());
}

#[tokio::test]
async fn head_gives_the_headers_of_get_and_no_body() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    srv.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    // `/status` describes the moment it is asked: the GET and the HEAD of
    // it see the same state (so the same Content-Length) only if nothing
    // changes in between. So the frame's age is past 100 ms, where its
    // digits stay the same for most of a second, and the viewers of the
    // stream GETs before it have left.
    tokio::time::sleep(Duration::from_millis(150)).await;
    for path in [
        "/",
        "/stream",
        "/stream/cam",
        "/?action=stream",
        "/snapshot/cam",
        "/?action=snapshot",
        "/status",
    ] {
        srv.wait_clients("cam", 0).await;
        let mut get = RawClient::request(srv.addr, "GET", path).await;
        let get_head = get.head().await;
        let mut head = RawClient::request(srv.addr, "HEAD", path).await;
        let head_head = head.head().await;
        assert_eq!(head_head.status, 200, "HEAD {path}");
        let names = |h: &Head| {
            let mut v: Vec<(String, String)> = h
                .headers
                .iter()
                .filter(|(n, _)| n != "date" && n != "x-timestamp")
                .cloned()
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&head_head), names(&get_head), "HEAD {path}");
        if path.contains("stream") {
            // Nothing after the head: the server closes the connection.
            assert_eq!(head.rest().await, b"", "HEAD {path} sent a body");
        }
    }
    // A HEAD does not count as a viewer.
    assert_eq!(srv.hub("cam").stats().clients, 0);
}

#[tokio::test]
async fn wrong_methods_unknown_paths_and_bad_parameters() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let http = reqwest::Client::new();
    for (method, path, want) in [
        ("POST", "/stream", 405),
        ("PUT", "/snapshot/cam", 405),
        ("DELETE", "/", 405),
        ("POST", "/status", 405),
        ("GET", "/nope", 404),
        ("GET", "/stream/nope", 404),
        ("GET", "/snapshot/nope", 404),
        ("GET", "/?action=stream_7", 404),
        ("GET", "/?action=snapshot_x", 404),
        ("GET", "/?action=dance", 404),
        ("GET", "/stream/cam?fps=abc", 400),
        ("GET", "/stream/cam?fps=0", 400),
        ("GET", "/stream/cam?fps=-3", 400),
        // 1/fps would overflow a timer, or round to no interval at all.
        ("GET", "/stream/cam?fps=1e-300", 400),
        ("GET", "/stream/cam?fps=2.4e51", 400),
        ("GET", "/stream/cam?fps=inf", 400),
        ("GET", "/stream/bad%20name", 404),
    ] {
        let res = http
            .request(method.parse().unwrap(), srv.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), want, "{method} {path}");
        if want != 405 {
            let text = res.text().await.unwrap();
            assert!(!text.is_empty(), "{method} {path}: empty error body");
        }
    }
    let res = http.get(srv.url("/stream/nope")).send().await.unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("no stream named \"nope\"; streams: cam"));
}

#[tokio::test]
async fn snapshot_before_any_frame_is_503_with_retry_after() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let res = reqwest::get(srv.url("/snapshot/cam")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    // And a snapshot never waits for the next frame: with a frame present and
    // nothing published afterwards, it answers.
    srv.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(srv.url("/snapshot/cam")),
    )
    .await
    .expect("snapshot waited")
    .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn idle_streams_resend_the_newest_frame() {
    let srv = TestServer::start(&["cam"], opts(Some(Duration::from_millis(250)))).await;
    srv.hub("cam")
        .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "only"))
        .unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let first = c.part().await;
    for _ in 0..3 {
        let again = c
            .part_within(Duration::from_secs(5))
            .await
            .expect("no re-send");
        assert_eq!(again.jpeg, first.jpeg);
        // The timestamp is the time of publication, not of sending.
        assert_eq!(again.get("X-Timestamp"), first.get("X-Timestamp"));
    }
}

#[tokio::test]
async fn resend_can_be_turned_off() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    srv.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    c.part().await;
    assert!(c.part_within(Duration::from_millis(1500)).await.is_none());
}

#[tokio::test]
async fn fps_caps_one_client_and_it_still_gets_the_newest_frame() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_5k.jpg");
    hub.publish_jpeg(tagged(&base, "0")).unwrap();
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            // 100 frames over 2 s.
            for i in 1..=100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
            }
        })
    };
    let mut capped = RawClient::stream(srv.addr, "/stream/cam?fps=4").await;
    let mut free = RawClient::stream(srv.addr, "/stream/cam").await;
    let free_reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(p) = free.part_within(Duration::from_secs(3)).await {
            n += 1;
            if p.tag().as_deref() == Some("100") {
                break;
            }
        }
        n
    });
    let mut tags = Vec::new();
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        match capped.part_within(Duration::from_secs(1)).await {
            Some(p) => tags.push(p.tag().unwrap().parse::<u32>().unwrap()),
            None => break,
        }
    }
    publisher.await.unwrap();
    let free_count = free_reader.await.unwrap();
    // 4 fps for about 2.5 s: about 10 frames; far fewer than the 100 sent.
    assert!(
        (5..=15).contains(&tags.len()),
        "capped client got {} frames: {tags:?}",
        tags.len()
    );
    assert!(tags.windows(2).all(|w| w[0] < w[1]), "{tags:?}");
    // It skips: consecutive frames it got are several publishes apart.
    assert!(
        tags.windows(2).filter(|w| w[1] - w[0] > 2).count() >= 3,
        "{tags:?}"
    );
    assert!(
        free_count > 50,
        "uncapped client got only {free_count} frames"
    );
}

#[tokio::test]
async fn two_hundred_clients_all_receive_every_frame() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_50k.jpg");
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(RawClient::stream(srv.addr, "/stream/cam").await);
    }
    srv.wait_clients("cam", 200).await;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while seen.last().map(String::as_str) != Some("4") {
                    let p = c
                        .part_within(Duration::from_secs(20))
                        .await
                        .expect("client starved");
                    seen.push(p.tag().unwrap());
                }
                seen
            })
        })
        .collect();
    for i in 0..5 {
        hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in readers {
        let seen = r.await.unwrap();
        // Frames are never repeated or reordered, and the last one arrives.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last().unwrap(), "4");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_slows_no_one() {
    let srv = TestServer::start(
        &["cam"],
        ServerOptions {
            write_timeout: Some(Duration::from_secs(60)),
            ..opts(None)
        },
    )
    .await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_200k.jpg");
    hub.publish_jpeg(tagged(&base, "0")).unwrap();
    // The stalled client reads the head and then nothing, ever.
    let mut stalled = RawClient::stream(srv.addr, "/stream/cam").await;
    let mut fast = RawClient::stream(srv.addr, "/stream/cam").await;
    assert_eq!(fast.part().await.tag().as_deref(), Some("0"));
    // Lockstep: publish frame i only once the fast client has frame i-1, so
    // the test needs no timing: 150 frames of 200 KB (30 MB) is far more than
    // the stalled client's socket buffers can hold, so if the stalled client
    // held anything up, this would hang.
    let run = async {
        for i in 1..=150 {
            hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
            let p = fast.part().await;
            assert_eq!(p.tag(), Some(i.to_string()), "fast client missed a frame");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the fast client was held up by the stalled one");
    // The stalled one is still connected (its write timeout is long) and,
    // when it finally reads, it has old frames, then jumps to the newest.
    assert_eq!(hub.stats().clients, 2);
    let mut tags = Vec::new();
    while tags.last().map(String::as_str) != Some("150") {
        tags.push(stalled.part().await.tag().unwrap());
        assert!(
            tags.len() < 60,
            "the server queued frames for the stalled client: {tags:?}"
        );
    }
}

#[tokio::test]
async fn a_stalled_client_is_dropped_after_the_write_timeout() {
    let srv = TestServer::start(
        &["cam"],
        ServerOptions {
            write_timeout: Some(Duration::from_millis(500)),
            ..opts(None)
        },
    )
    .await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_1m.jpg");
    let _stalled = RawClient::stream(srv.addr, "/stream/cam").await;
    srv.wait_clients("cam", 1).await;
    // Fill its socket buffers, then keep publishing until the server gives up.
    for i in 0..100 {
        hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if hub.stats().clients == 0 {
            return;
        }
    }
    panic!("stalled client still connected");
}

#[tokio::test]
async fn clients_that_vanish_mid_frame_leave_nothing_behind() {
    let srv = TestServer::start(&["cam"], opts(None)).await;
    let hub = srv.hub("cam");
    hub.publish_jpeg(corpus("jpeg_1m.jpg")).unwrap();
    for _ in 0..50 {
        let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
        // Read a little of the 1 MB frame and hang up.
        let mut buf = [0u8; 1000];
        tokio::io::AsyncReadExt::read_exact(&mut c.reader, &mut buf)
            .await
            .unwrap();
        drop(c);
    }
    srv.wait_clients("cam", 0).await;
    // The server still serves.
    hub.publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "after"))
        .unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    assert_eq!(c.part().await.tag().as_deref(), Some("after"));
}

#[tokio::test]
async fn shutdown_closes_viewers_and_run_returns() {
    let mut srv = TestServer::start(&["cam"], opts(None)).await;
    srv.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    c.part().await;
    srv.token.cancel();
    // The stream ends cleanly at a part boundary, and the connection closes.
    assert_eq!(c.rest().await, b"");
    let done = srv.done.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("run did not return")
        .unwrap()
        .unwrap();
}
