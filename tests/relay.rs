//! Relays: one upstream connection for many viewers, tolerant reading of
//! other servers' streams, and surviving an upstream that goes away.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::hub::SourceState;
use mjpeg_server::source::relay::{self, RelayOptions};
use mjpeg_server::{Server, ServerOptions, Streams};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn quick(url: String) -> RelayOptions {
    let mut o = RelayOptions::new(url);
    o.linger = Duration::from_millis(300);
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_millis(400);
    o.poll_interval = Duration::from_millis(100);
    o
}

fn resend_fast() -> ServerOptions {
    ServerOptions {
        http: HttpOptions {
            resend_after: Some(Duration::from_millis(200)),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    }
}

/// A relay server with one stream `r` relaying `opts`.
async fn relay_server(opts: RelayOptions) -> TestServer {
    let srv = TestServer::start(&["r"], resend_fast()).await;
    tokio::spawn(relay::run(opts, srv.hub("r"), srv.token.clone()));
    srv
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_relay_passes_frames_through_with_the_origins_timestamps() {
    let origin = TestServer::start(&["cam"], ServerOptions::default()).await;
    let relay = relay_server(quick(origin.url("/stream/cam"))).await;
    let mut viewer = RawClient::stream(relay.addr, "/stream/r").await;
    let mut direct = RawClient::stream(origin.addr, "/stream/cam").await;
    for name in ["jpeg_50k.jpg", "exif_thumbnail.jpg", "progressive.jpg"] {
        let sent = tagged(&corpus(name), name);
        origin.hub("cam").publish_jpeg(sent.clone()).unwrap();
        let at_origin = direct.part().await;
        // The relay may first show the frame that was current when it
        // connected; skip to this one.
        let relayed = loop {
            let p = viewer
                .part_within(Duration::from_secs(10))
                .await
                .expect("relay stalled");
            if p.tag().as_deref() == Some(name) {
                break p;
            }
        };
        assert_eq!(relayed.jpeg, sent);
        assert_eq!(relayed.get("X-Timestamp"), at_origin.get("X-Timestamp"));
    }
}

#[tokio::test]
async fn one_upstream_connection_only_while_someone_watches() {
    let origin = TestServer::start(&["cam"], resend_fast()).await;
    origin
        .hub("cam")
        .publish_jpeg(corpus("jpeg_5k.jpg"))
        .unwrap();
    let relay = relay_server(quick(origin.url("/stream/cam"))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        origin.hub("cam").stats().clients,
        0,
        "connected with no viewers"
    );
    assert!(matches!(
        relay.hub("r").stats().source,
        SourceState::Waiting(_)
    ));

    let mut viewers = Vec::new();
    for _ in 0..5 {
        let mut v = RawClient::stream(relay.addr, "/stream/r").await;
        v.part().await;
        viewers.push(v);
    }
    assert_eq!(origin.hub("cam").stats().clients, 1);
    assert_eq!(relay.hub("r").stats().source, SourceState::Running);
    drop(viewers);
    let hub = origin.hub("cam");
    wait_for("the relay to disconnect after the last viewer", || {
        hub.stats().clients == 0
    })
    .await;
}

#[tokio::test]
async fn always_mode_stays_connected() {
    let origin = TestServer::start(&["cam"], ServerOptions::default()).await;
    let mut opts = quick(origin.url("/stream/cam"));
    opts.on_demand = false;
    let _relay = relay_server(opts).await;
    let hub = origin.hub("cam");
    wait_for("an upstream connection", || hub.stats().clients == 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hub.stats().clients, 1);
}

#[tokio::test]
async fn viewers_keep_the_last_frame_while_the_upstream_is_down() {
    // The origin runs on a port it can bind again after a restart.
    let streams = Streams::new();
    let cam = streams.add("cam").unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        streams.clone(),
        resend_fast(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let token = server.shutdown_token();
    let first_run = tokio::spawn(server.run());
    cam.publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "before"))
        .unwrap();

    let relay = relay_server(quick(format!("http://{addr}/stream/cam"))).await;
    let mut viewer = RawClient::stream(relay.addr, "/stream/r").await;
    assert_eq!(viewer.part().await.tag().as_deref(), Some("before"));

    token.cancel();
    first_run.await.unwrap().unwrap();
    let hub = relay.hub("r");
    wait_for(
        "the relay to notice",
        || matches!(hub.stats().source, SourceState::Waiting(ref w) if w.contains("reconnecting")),
    )
    .await;
    // The viewer is still connected and still gets the last frame.
    for _ in 0..3 {
        let p = viewer
            .part_within(Duration::from_secs(5))
            .await
            .expect("viewer dropped");
        assert_eq!(p.tag().as_deref(), Some("before"));
    }

    let server = Server::bind(addr, streams.clone(), resend_fast())
        .await
        .unwrap();
    let token = server.shutdown_token();
    tokio::spawn(server.run());
    cam.publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "after"))
        .unwrap();
    let got = loop {
        let p = viewer
            .part_within(Duration::from_secs(10))
            .await
            .expect("viewer dropped");
        if p.tag().as_deref() != Some("before") {
            break p;
        }
    };
    assert_eq!(got.tag().as_deref(), Some("after"));
    assert_eq!(hub.stats().source, SourceState::Running);
    token.cancel();
}

#[tokio::test]
async fn a_snapshot_url_is_polled() {
    let origin = TestServer::start(&["cam"], ServerOptions::default()).await;
    origin
        .hub("cam")
        .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "one"))
        .unwrap();
    let relay = relay_server(quick(origin.url("/snapshot/cam"))).await;
    let mut viewer = RawClient::stream(relay.addr, "/stream/r").await;
    assert_eq!(viewer.part().await.tag().as_deref(), Some("one"));
    origin
        .hub("cam")
        .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), "two"))
        .unwrap();
    loop {
        let p = viewer
            .part_within(Duration::from_secs(10))
            .await
            .expect("not polled");
        if p.tag().as_deref() == Some("two") {
            break;
        }
    }
}

/// A one-connection-at-a-time server that answers every request with
/// `head` and then `body`, then keeps the connection open for a while.
/// `check` sees each request head and may answer 401 instead.
async fn odd_server(
    head: String,
    body: Vec<u8>,
    check: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).into_owned();
            if let Some(refusal) = check(&req) {
                let _ = sock.write_all(refusal.as_bytes()).await;
                continue;
            }
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    addr
}

fn frames() -> Vec<Vec<u8>> {
    vec![
        tagged(&corpus("jpeg_5k.jpg"), "v1"),
        tagged(&corpus("exif_thumbnail.jpg"), "v2"),
        tagged(&corpus("restart_markers.jpg"), "v3"),
    ]
}

/// Relays from `addr` and returns the tags the viewer sees, until it has
/// seen v3.
async fn relayed_tags(url: String) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(30), relayed_tags_inner(url))
        .await
        .expect("v3 never arrived")
}

async fn relayed_tags_inner(url: String) -> Vec<String> {
    let relay = relay_server(quick(url)).await;
    let mut viewer = RawClient::stream(relay.addr, "/stream/r").await;
    let mut tags = Vec::new();
    while tags.last().map(String::as_str) != Some("v3") {
        let p = viewer
            .part_within(Duration::from_secs(10))
            .await
            .expect("relay stalled");
        decode(&p.jpeg);
        let tag = p.tag().unwrap();
        if tags.last() != Some(&tag) {
            tags.push(tag);
        }
    }
    tags
}

#[tokio::test]
async fn tolerant_of_how_other_servers_write_streams() {
    let f = frames();
    let with_len = |sep: &str, nl: &str, len: bool| {
        let mut body = b"some junk before the first boundary".to_vec();
        body.extend_from_slice(nl.as_bytes());
        for frame in &f {
            body.extend_from_slice(format!("{sep}{nl}Content-Type: image/jpeg{nl}").as_bytes());
            if len {
                body.extend_from_slice(format!("Content-Length: {}{nl}", frame.len()).as_bytes());
            }
            body.extend_from_slice(nl.as_bytes());
            body.extend_from_slice(frame);
            body.extend_from_slice(nl.as_bytes());
        }
        body.extend_from_slice(format!("{sep}{nl}").as_bytes());
        body
    };
    let variants: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "quoted boundary, no Content-Length",
            "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=\"my frame\"\r\n\r\n".into(),
            with_len("--my frame", "\r\n", false),
        ),
        (
            "boundary parameter starting with --",
            "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=--myboundary\r\n\r\n".into(),
            with_len("--myboundary", "\r\n", true),
        ),
        (
            "LF-only lines",
            "HTTP/1.0 200 OK\nContent-Type: multipart/x-mixed-replace; boundary=b\n\n".into(),
            with_len("--b", "\n", true),
        ),
        (
            "no Content-Type at all",
            "HTTP/1.0 200 OK\r\n\r\n".into(),
            with_len("--whatever", "\r\n", true),
        ),
        (
            "chunked body",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: multipart/x-mixed-replace; boundary=c\r\n\r\n".into(),
            {
                let plain = with_len("--c", "\r\n", true);
                let mut chunked = Vec::new();
                for piece in plain.chunks(7000) {
                    chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    chunked.extend_from_slice(piece);
                    chunked.extend_from_slice(b"\r\n");
                }
                chunked
            },
        ),
        (
            "JPEGs back to back",
            "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".into(),
            f.concat(),
        ),
    ];
    for (what, head, body) in variants {
        let addr = odd_server(head, body, |_| None).await;
        let tags = tokio::time::timeout(
            Duration::from_secs(30),
            relayed_tags(format!("http://{addr}/")),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"));
        assert_eq!(tags, ["v1", "v2", "v3"], "{what}");
    }
}

#[tokio::test]
async fn basic_credentials_from_the_url() {
    let body = frames().concat();
    let addr = odd_server(
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".into(),
        body,
        |req| {
            // base64("user:secret")
            (!req.contains("Authorization: Basic dXNlcjpzZWNyZXQ=")
                && !req.contains("authorization: Basic dXNlcjpzZWNyZXQ="))
            .then(|| {
                "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
                    .to_string()
            })
        },
    )
    .await;
    let tags = relayed_tags(format!("http://user:secret@{addr}/video")).await;
    assert_eq!(tags.last().map(String::as_str), Some("v3"));
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of `key` in a Digest `Authorization` header.
fn digest_field(header: &str, key: &str) -> Option<String> {
    let at = header.find(&format!("{key}="))? + key.len() + 1;
    let rest = &header[at..];
    Some(if let Some(q) = rest.strip_prefix('"') {
        q[..q.find('"')?].to_string()
    } else {
        rest.split([',', '\r']).next()?.trim().to_string()
    })
}

#[tokio::test]
async fn digest_credentials_are_answered() {
    let body = frames().concat();
    let addr = odd_server(
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".into(),
        body,
        |req| {
            let challenge = "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5\r\n\r\n".to_string();
            let Some(line) = req.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization: digest")) else {
                return Some(challenge);
            };
            let f = |k| digest_field(line, k).unwrap_or_default();
            let ha1 = md5_hex("user:cam:p@ss");
            let ha2 = md5_hex(&format!("GET:{}", f("uri")));
            let want = md5_hex(&format!("{ha1}:n0nce:{}:{}:auth:{ha2}", f("nc"), f("cnonce")));
            (f("username") != "user" || f("uri") != "/cam?x=1" || f("response") != want).then_some(challenge)
        },
    )
    .await;
    let tags = relayed_tags(format!("http://user:p%40ss@{addr}/cam?x=1")).await;
    assert_eq!(tags.last().map(String::as_str), Some("v3"));
}

#[tokio::test]
async fn a_refusing_upstream_is_retried_and_reported() {
    let addr = odd_server(String::new(), Vec::new(), |_| {
        Some("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string())
    })
    .await;
    let mut opts = quick(format!("http://{addr}/nope"));
    opts.on_demand = false;
    let relay = relay_server(opts).await;
    let hub = relay.hub("r");
    wait_for(
        "the error in the source state",
        || matches!(hub.stats().source, SourceState::Waiting(ref w) if w.contains("404")),
    )
    .await;
}

/// The latency one relay hop adds, for the docs: not a pass/fail timing.
/// `cargo test --release --test relay -- --ignored --nocapture hop_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn hop_latency() {
    let origin = TestServer::start(&["cam"], ServerOptions::default()).await;
    let relay = relay_server(quick(origin.url("/stream/cam"))).await;
    let hub = origin.hub("cam");
    hub.publish_jpeg(tagged(&corpus("jpeg_50k.jpg"), "warm"))
        .unwrap();
    let mut direct = RawClient::stream(origin.addr, "/stream/cam").await;
    let mut relayed = RawClient::stream(relay.addr, "/stream/r").await;
    direct.part().await;
    relayed.part().await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for i in 0..200 {
        hub.publish_jpeg(tagged(&corpus("jpeg_50k.jpg"), &i.to_string()))
            .unwrap();
        let p = direct.part().await;
        d.push(now() - p.timestamp());
        let p = relayed.part().await;
        r.push(now() - p.timestamp());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2] * 1e3, v[v.len() * 99 / 100] * 1e3)
    };
    let (dm, d99) = stats(&mut d);
    let (rm, r99) = stats(&mut r);
    println!("50 KB frames, 200 samples: direct p50 {dm:.3} ms p99 {d99:.3} ms; through one relay p50 {rm:.3} ms p99 {r99:.3} ms");
}

/// An upstream that answers every request with `answer` and closes, and
/// counts the requests.
async fn counting_server(answer: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn an_upstream_answering_a_web_page_is_retried_with_back_off() {
    let page = "<!DOCTYPE html><html><body>Please log in</body></html>";
    let (addr, requests) = counting_server(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    ))
    .await;
    let mut opts = quick(format!("http://{addr}/"));
    opts.on_demand = false;
    opts.poll_interval = Duration::from_millis(50);
    opts.backoff_min = Duration::from_millis(200);
    opts.backoff_max = Duration::from_secs(1);
    let relay = relay_server(opts).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // With back-off: at 0, 0.2, 0.6, 1.4 and 2.4 s. Polled as an image, it
    // would be every 50 ms: about 60 requests.
    let n = requests.load(Ordering::Relaxed);
    assert!((2..=8).contains(&n), "{n} requests in 3 s");
    let stats = relay.hub("r").stats();
    match &stats.source {
        SourceState::Waiting(why) => assert!(why.contains("HTML"), "{why}"),
        other => panic!("source state {other:?}"),
    }
    assert!(stats.upstream_reconnects >= 1, "{stats:?}");
}

#[tokio::test]
async fn an_upstream_that_drips_bytes_without_a_frame_is_reconnected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8";
                if sock.write_all(head).await.is_err() {
                    return;
                }
                // A byte every 100 ms: never silent, never a frame.
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if sock.write_all(b"\x55").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut opts = quick(format!("http://{addr}/"));
    opts.on_demand = false;
    opts.frame_timeout = Duration::from_secs(1);
    let relay = relay_server(opts).await;
    let hub = relay.hub("r");
    wait_for("the frame timeout in the source state", || {
        matches!(hub.stats().source, SourceState::Waiting(ref w) if w.contains("no complete frame"))
    })
    .await;
    wait_for("a second connection", || {
        connections.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert!(hub.stats().upstream_reconnects >= 1);
    assert!(hub.stats().source_errors >= 1);
}

#[tokio::test]
async fn an_upstream_that_never_answers_the_request_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        // Accepts, reads the request, and says nothing.
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let mut opts = quick(format!("http://{addr}/"));
    opts.on_demand = false;
    opts.read_timeout = Duration::from_secs(1);
    let relay = relay_server(opts).await;
    let hub = relay.hub("r");
    wait_for(
        "the missing answer in the source state",
        || matches!(hub.stats().source, SourceState::Waiting(ref w) if w.contains("no answer")),
    )
    .await;
    assert!(hub.stats().source_errors >= 1);
}
