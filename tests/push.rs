//! Frames pushed over HTTP: one image, JPEGs back to back, multipart
//! streams; and every way a push can be wrong.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use std::time::Duration;

async fn push_server(opts: HttpOptions) -> TestServer {
    // Its messages name the options as the command line does, whose
    // messages these tests read.
    mjpeg_server::set_option_names(mjpeg_server_cli::config::OPTION_NAMES);
    let srv = TestServer::start(
        &["cam", "fixed"],
        ServerOptions {
            http: opts,
            ..ServerOptions::default()
        },
    )
    .await;
    srv.hub("cam").set_accepts_push(true);
    srv
}

#[tokio::test]
async fn a_put_jpeg_reaches_viewers_untouched() {
    let srv = push_server(HttpOptions::default()).await;
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam").await;
    let http = reqwest::Client::new();
    for name in ["jpeg_50k.jpg", "exif_thumbnail.jpg", "progressive.jpg"] {
        let sent = tagged(&corpus(name), name);
        let res = put(srv.url("/stream/cam"), sent.clone()).await;
        assert_eq!(res.status(), 204, "{name}");
        assert_eq!(viewer.part().await.jpeg, sent, "{name}");
    }
    // POST works the same way.
    let res = http
        .post(srv.url("/stream/cam"))
        .body(corpus("jpeg_5k.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(viewer.part().await.jpeg, corpus("jpeg_5k.jpg"));
}

#[tokio::test]
async fn other_formats_are_converted_to_jpeg() {
    let srv = push_server(HttpOptions::default()).await;
    for (name, w, h) in [("image.png", 320, 240), ("image.gif", 160, 120)] {
        let res = put(srv.url("/stream/cam"), corpus(name)).await;
        assert_eq!(res.status(), 204, "{name}");
        let snap = get_bytes(srv.url("/snapshot/cam")).await;
        assert_eq!(decode(&snap), (w, h), "{name}");
    }
}

#[tokio::test]
async fn bad_pushes_get_the_right_status_and_lose_nothing() {
    let srv = push_server(HttpOptions {
        max_frame_bytes: 100_000,
        ..HttpOptions::default()
    })
    .await;
    let good = tagged(&corpus("jpeg_5k.jpg"), "good");
    let put_cam = |body: Vec<u8>| put(srv.url("/stream/cam"), body);
    assert_eq!(put_cam(good.clone()).await.status(), 204);

    for (body, status, says) in [
        (corpus("truncated.jpg"), 400, "truncated JPEG"),
        (corpus("empty.jpg"), 400, "empty"),
        (corpus("garbage.jpg"), 415, "not an image"),
        (
            [corpus("jpeg_5k.jpg"), b"trailing junk".to_vec()].concat(),
            415,
            "not an image",
        ),
        (
            b"<!DOCTYPE html><h1>502 Bad Gateway</h1>".to_vec(),
            415,
            "HTML",
        ),
        (corpus("jpeg_200k.jpg"), 413, "limit of 100000 bytes"),
        (
            corpus("image.png")[..5000].to_vec(),
            400,
            "cannot decode a PNG",
        ),
    ] {
        let res = put_cam(body).await;
        assert_eq!(res.status().as_u16(), status, "{says}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{text:?} does not say {says:?}");
    }
    // The stream still serves the last good frame: the JPEG that came
    // before the trailing junk.
    let snap = get_bytes(srv.url("/snapshot/cam")).await;
    assert!(
        snap.as_ref() == corpus("jpeg_5k.jpg").as_slice(),
        "not the last good frame"
    );
    let status = status_json(srv.addr).await;
    // The JPEG before the trailing junk was published.
    assert_eq!(status["streams"][0]["frames_published"], 2);
    assert_eq!(status["streams"][0]["frames_rejected"], 7);
    assert!(status["streams"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("PNG"));
}

#[tokio::test]
async fn pushes_to_the_wrong_stream_are_refused() {
    let srv = push_server(HttpOptions::default()).await;
    let res = put(srv.url("/stream/fixed"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 409);
    let res = put(srv.url("/stream/new"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 404);
    assert!(srv.streams.get("new").is_none());
}

#[tokio::test]
async fn allow_create_makes_a_stream_on_first_push() {
    let srv = push_server(HttpOptions {
        allow_create: true,
        ..HttpOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let res = put(srv.url("/stream/new-one"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 204);
    let html = http
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("/stream/new-one"));
    let res = put(srv.url("/stream/bad%20name"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("invalid stream name"));
    // A stream with its own source is still protected.
    let res = put(srv.url("/stream/fixed"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 409);
}

/// A request body fed from a channel, so a test can send it piece by piece.
fn channel_body() -> (tokio::sync::mpsc::Sender<Vec<u8>>, reqwest::Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn a_long_post_of_concatenated_jpegs_is_a_live_source() {
    let srv = push_server(HttpOptions::default()).await;
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam").await;
    let (tx, body) = channel_body();
    let url = srv.url("/stream/cam");
    let upload =
        tokio::spawn(async move { reqwest::Client::new().post(url).body(body).send().await });
    for i in 0..5 {
        let frame = tagged(&corpus("restart_markers.jpg"), &format!("raw{i}"));
        // Split each frame over two writes, to cross read boundaries.
        let (a, b) = frame.split_at(frame.len() / 3);
        tx.send(a.to_vec()).await.unwrap();
        tx.send(b.to_vec()).await.unwrap();
        // Each frame is shown while the upload is still going on.
        let part = viewer
            .part_within(Duration::from_secs(10))
            .await
            .expect("frame not live");
        assert_eq!(part.jpeg, frame);
    }
    drop(tx);
    assert_eq!(upload.await.unwrap().unwrap().status(), 204);
}

#[tokio::test]
async fn a_long_post_of_a_multipart_stream_is_a_live_source() {
    let srv = push_server(HttpOptions::default()).await;
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam").await;
    let (tx, body) = channel_body();
    let url = srv.url("/stream/cam");
    let upload = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header(
                "content-type",
                "multipart/x-mixed-replace;boundary=--myframe",
            )
            .body(body)
            .send()
            .await
    });
    tx.send(b"--myframe\r\n".to_vec()).await.unwrap();
    for i in 0..4 {
        let frame = tagged(&corpus("jpeg_50k.jpg"), &format!("mp{i}"));
        let mut part = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            frame.len()
        )
        .into_bytes();
        part.extend_from_slice(&frame);
        part.extend_from_slice(b"\r\n--myframe\r\n");
        tx.send(part).await.unwrap();
        let got = viewer
            .part_within(Duration::from_secs(10))
            .await
            .expect("frame not live");
        assert_eq!(got.jpeg, frame);
    }
    // A PNG part is converted; a garbage part is refused and counted.
    let mut part = b"Content-Type: image/png\r\n\r\n".to_vec();
    part.extend_from_slice(&corpus("image.png"));
    part.extend_from_slice(b"\r\n--myframe\r\nContent-Type: image/jpeg\r\n\r\n");
    part.extend_from_slice(&corpus("garbage.jpg"));
    part.extend_from_slice(b"\r\n--myframe--\r\n");
    tx.send(part).await.unwrap();
    drop(tx);
    let res = upload.await.unwrap().unwrap();
    assert_eq!(res.status(), 415);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("accepted 5 frames, refused 1"));
    assert_eq!(decode(&viewer.part().await.jpeg), (320, 240));
}

#[tokio::test]
async fn ffmpeg_can_push_a_multipart_stream() {
    if !tool_available("ffmpeg", "apt-get install ffmpeg") {
        return;
    }
    let srv = push_server(HttpOptions::default()).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-frames:v", "15", "-f", "mpjpeg"])
            .arg(srv.url("/stream/cam"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg did not finish")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ffmpeg may close once it has sent its last part, before the server
    // has published it: give the server a moment to catch up.
    let hub = srv.hub("cam");
    for _ in 0..100 {
        if hub.stats().frames_published >= 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = hub.stats();
    assert_eq!(stats.frames_published, 15, "{stats:?}");
    assert_eq!(stats.frames_rejected, 0, "{stats:?}");
    assert_eq!((stats.width, stats.height), (Some(320), Some(240)));
}

#[tokio::test]
async fn an_empty_boundary_line_is_refused_not_a_crash() {
    // `printf -- '--\r\n\r\nabc' | curl -T - …`: a body that starts like a
    // multipart stream but names no boundary.
    let srv = push_server(HttpOptions::default()).await;
    for body in [&b"--\r\n\r\nabc"[..], b"--\n\nabc", b"-- \r\n", b"--\r\n"] {
        let (tx, stream) = channel_body();
        tx.send(body.to_vec()).await.unwrap();
        drop(tx);
        let res = reqwest::Client::new()
            .put(srv.url("/stream/cam"))
            .body(stream)
            .send()
            .await
            .expect("the server dropped the connection");
        assert_eq!(res.status(), 400, "{body:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains("no boundary"), "{body:?}: {text:?}");
    }
    // The server is still there.
    assert_eq!(
        put(srv.url("/stream/cam"), corpus("jpeg_5k.jpg"))
            .await
            .status(),
        204
    );
}

/// Sends `body` in 8 KiB pieces (as a client on a real network would
/// arrive) with `content_type`, and returns the status and the reply text.
async fn push_in_pieces(url: String, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let (tx, stream) = channel_body();
    let mut req = reqwest::Client::new().put(url).body(stream);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let sent = tokio::spawn(req.send());
    for piece in body.chunks(8192) {
        if tx.send(piece.to_vec()).await.is_err() {
            break;
        }
    }
    drop(tx);
    let res = sent.await.unwrap().unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Pushes built to be slow to parse (each took seconds to minutes of a
/// runtime worker, which stalled every other request) are read in time
/// linear in their size, so the server keeps answering while they arrive.
/// The server is the real program, with its own runtime.
#[tokio::test]
async fn pushes_built_to_be_slow_to_parse_leave_the_server_responsive() {
    let server = ServerProcess::start(&["--stream", "cam=push"]);
    let url = format!("http://{}/stream/cam", server.addr);
    let dashes = [b"x".to_vec(), vec![b'-'; 200_000]].concat();
    let mut pushes = Vec::new();
    for _ in 0..2 {
        let (url, body) = (url.clone(), dashes.clone());
        pushes.push(tokio::spawn(async move {
            push_in_pieces(url, Some("multipart/x-mixed-replace; boundary=-"), body).await
        }));
    }
    // A body that starts like a multipart stream and never ends its first
    // line, and one of white space: both used to be looked at again from
    // their start on every piece.
    for body in [
        [b"--".to_vec(), vec![b'x'; 12 << 20]].concat(),
        vec![b' '; 12 << 20],
    ] {
        let url = url.clone();
        pushes.push(tokio::spawn(async move {
            push_in_pieces(url, None, body).await
        }));
    }
    let status = || async {
        reqwest::get(format!("http://{}/status", server.addr))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
    };
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(5), status())
            .await
            .expect("/status did not answer within 5 s while the pushes were parsed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for push in pushes {
        let (status, text) = tokio::time::timeout(Duration::from_secs(60), push)
            .await
            .expect("a push was not parsed within 60 s")
            .unwrap();
        assert!(status == 400 || status == 415, "{status} {text:?}");
    }
}

#[tokio::test]
async fn a_push_to_an_unknown_stream_names_allow_create() {
    let srv = push_server(HttpOptions::default()).await;
    let res = put(srv.url("/stream/new"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 404);
    let text = res.text().await.unwrap();
    assert!(text.contains("no stream named \"new\""), "{text}");
    assert!(text.contains("--allow-create"), "{text}");
    // A viewer asking for a missing stream is not told about pushing.
    let res = reqwest::get(srv.url("/snapshot/new")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("--allow-create"));
}

/// What `curl -d @frame.jpg` sends: the file with every CR and LF removed,
/// as a form.
fn as_curl_d_sends(file: &[u8]) -> Vec<u8> {
    file.iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect()
}

#[tokio::test]
async fn a_form_encoded_push_is_refused_with_the_curl_flag_that_works() {
    let srv = push_server(HttpOptions::default()).await;
    let mut viewer = RawClient::stream(srv.addr, "/stream/cam").await;
    let http = reqwest::Client::new();
    for name in ["jpeg_5k.jpg", "jpeg_50k.jpg", "image.png"] {
        let res = http
            .post(srv.url("/stream/cam"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(as_curl_d_sends(&corpus(name)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 415, "{name}");
        let text = res.text().await.unwrap();
        assert!(
            text.contains("--data-binary") && text.contains("-T"),
            "{name}: {text}"
        );
    }
    let status = status_json(srv.addr).await;
    assert_eq!(status["streams"][0]["frames_published"], 0, "{status}");
    assert!(
        status["streams"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("--data-binary"),
        "{status}"
    );
    // The same file sent whole (curl --data-binary) goes through.
    let res = http
        .post(srv.url("/stream/cam"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(corpus("jpeg_5k.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415, "a form is never an image");
    let res = put(srv.url("/stream/cam"), corpus("jpeg_5k.jpg")).await;
    assert_eq!(res.status(), 204);
    assert_eq!(viewer.part().await.jpeg, corpus("jpeg_5k.jpg"));
}
