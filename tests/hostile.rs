//! Clients that bend or break HTTP on purpose, each once a way to hold the
//! server's resources or lose a client's answer: bare-LF request heads,
//! viewers that half-close, refusals sent in the middle of an upload, and
//! HTTP/2 connections that send no request or never open their window.

mod common;

use common::*;
use mjpeg_server::access::{Access, Grant, Patterns};
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with(opts: ServerOptions) -> TestServer {
    let server = TestServer::start(&["cam"], opts).await;
    server
        .hub("cam")
        .publish_jpeg(corpus("jpeg_5k.jpg"))
        .unwrap();
    server
}

/// Reads what the server sends until it closes, at most `within`.
async fn read_for(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut buf)).await;
    buf
}

#[tokio::test]
async fn request_heads_with_bare_lf_line_ends_are_answered_at_once() {
    let server = server_with(ServerOptions::default()).await;
    // Through the HTTP routes (a snapshot) and on the direct stream path.
    let started = Instant::now();
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(b"GET /snapshot/cam HTTP/1.1\nHost: x\nConnection: close\n\n")
        .await
        .unwrap();
    let answer = read_for(&mut c, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    assert!(answer.ends_with(&corpus("jpeg_5k.jpg")));
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut c = RawClient::send(server.addr, "GET /stream/cam HTTP/1.1\nHost: x\n\n").await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    c.preamble().await;
    assert_eq!(c.part().await.jpeg, corpus("jpeg_5k.jpg"));
}

/// A viewer that shuts down its sending side after the request (as
/// `nc -N` and some embedded clients do) still gets the whole stream, and
/// one that closes is still noticed at once, even on an idle stream that
/// re-sends nothing.
#[tokio::test]
async fn a_viewer_that_half_closes_keeps_getting_frames() {
    let server = server_with(ServerOptions {
        http: HttpOptions {
            resend_after: None,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    })
    .await;
    let hub = server.hub("cam");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /stream/cam HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut c = RawClient {
        reader: tokio::io::BufReader::new(s),
    };
    assert_eq!(c.head().await.status, 200);
    c.preamble().await;
    c.part().await;
    for n in 0..3 {
        let tag = format!("after half-close {n}");
        hub.publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), &tag))
            .unwrap();
        // The frame it already has may come again first.
        loop {
            let part = c
                .part_within(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no frame {n} after the half-close"));
            if part.tag().as_deref() == Some(tag.as_str()) {
                break;
            }
        }
    }
    server.wait_clients("cam", 1).await;
    // A viewer that closes its socket: gone from the count without any
    // new frame.
    drop(c);
    server.wait_clients("cam", 0).await;
}

/// Sends a request head and its whole body of `len` bytes, as curl does
/// even when an answer has already come, then reads the answer: its status
/// line, or why the client could not get one.
async fn upload_then_read(addr: SocketAddr, head: &str, len: usize) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![0x55u8; 64 * 1024];
    let mut written = 0;
    while written < len {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            // curl ends here with "Failed sending data to the peer" and
            // never shows the answer.
            Ok(Err(e)) => return Err(format!("sending failed after {written} bytes: {e}")),
            Err(_) => return Err(format!("sending stalled after {written} bytes")),
        }
    }
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if buf.is_empty() => return Err(format!("reading failed: {e}")),
        _ => {}
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines()
        .next()
        .map(str::to_string)
        .ok_or_else(|| "no answer".to_string())
}

/// Every refusal made while the client is still uploading reaches it: the
/// server half-closes and reads what is left (bounded) before it closes,
/// instead of resetting the connection over the unread upload.
#[tokio::test]
async fn refusals_sent_during_an_upload_reach_the_client() {
    let mut access = Access::new(
        "test",
        Grant {
            watch: Patterns::all(),
            push: Patterns::default(),
        },
    );
    access.add_user("alice", "pw", Grant::everything()).unwrap();
    let server = TestServer::start(
        &["p", "guarded"],
        ServerOptions {
            http: HttpOptions {
                max_frame_bytes: 1 << 20,
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    server.hub("p").set_accepts_push(true);
    let guarded = TestServer::start(
        &["p"],
        ServerOptions {
            http: HttpOptions {
                access: Arc::new(access),
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    guarded.hub("p").set_accepts_push(true);
    let big = 8 << 20;
    for round in 0..5 {
        // Too large by its declared length: 413 before the body is read.
        let head = format!(
            "PUT /stream/p HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {big}\r\n\r\n"
        );
        let status = upload_then_read(server.addr, &head, big).await;
        assert!(
            status
                .as_deref()
                .is_ok_and(|s| s.starts_with("HTTP/1.1 413")),
            "round {round}: the client got {status:?} instead of 413"
        );
        // No credentials: 401 before the body is read.
        let status = upload_then_read(guarded.addr, &head, big).await;
        assert!(
            status
                .as_deref()
                .is_ok_and(|s| s.starts_with("HTTP/1.1 401")),
            "round {round}: the client got {status:?} instead of 401"
        );
    }
}

/// An HTTP/2 client connection over plain TCP, driven in the background.
async fn h2_connect(
    addr: SocketAddr,
    builder: h2::client::Builder,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = builder.handshake(tcp).await.unwrap();
    (send, tokio::spawn(conn))
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://x{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn an_http2_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let server = server_with(ServerOptions {
        max_connections: 1,
        header_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    })
    .await;
    // The preface and SETTINGS, then nothing.
    let (_send, conn) = h2_connect(server.addr, h2::client::Builder::new()).await;
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(
        ended.is_ok(),
        "the idle HTTP/2 connection was still open after 5 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    // Its place is free again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(b"GET /snapshot/cam HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_for(&mut c, Duration::from_secs(5)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 "));
}

#[tokio::test]
async fn an_http2_viewer_that_never_opens_its_window_is_dropped_after_the_write_timeout() {
    let server = server_with(ServerOptions {
        write_timeout: Some(Duration::from_secs(1)),
        http: HttpOptions {
            max_clients_per_stream: Some(4),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    })
    .await;
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(0);
    let (mut send, _conn) = h2_connect(server.addr, builder).await;
    let mut responses = Vec::new();
    for _ in 0..4 {
        send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get("/stream/cam"), true).unwrap();
        responses.push(response.await.unwrap());
    }
    assert!(responses.iter().all(|r| r.status() == 200));
    server.wait_clients("cam", 4).await;
    // The stream is full while they hold their places...
    let mut c = RawClient::request(server.addr, "GET", "/stream/cam").await;
    assert_eq!(c.head().await.status, 503);
    // ...until the write timeout frees them: none of them reads.
    let started = Instant::now();
    while server.hub("cam").stats().clients > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "HTTP/2 viewers with a closed window still hold {} places",
            server.hub("cam").stats().clients
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    RawClient::stream(server.addr, "/stream/cam").await;
}

#[tokio::test]
async fn http2_streams_count_against_the_per_address_limit_and_per_connection_cap() {
    let server = server_with(ServerOptions {
        max_connections_per_address: 3,
        ..ServerOptions::default()
    })
    .await;
    let (mut send, _conn) = h2_connect(server.addr, h2::client::Builder::new()).await;
    let mut statuses = Vec::new();
    let mut open = Vec::new();
    for _ in 0..4 {
        send = send.ready().await.unwrap();
        let (response, _) = send.send_request(get("/stream/cam"), true).unwrap();
        let response = response.await.unwrap();
        statuses.push(response.status().as_u16());
        open.push(response);
    }
    // The connection holds one place; each stream watched over it one more.
    assert_eq!(statuses, [200, 200, 503, 503]);
    // One connection cannot carry an unbounded number of streams.
    let cap = send.current_max_send_streams();
    assert!(
        (1..=256).contains(&cap),
        "the server allows {cap} concurrent streams per connection"
    );
}

#[tokio::test]
async fn pushes_create_at_most_the_cap_and_idle_created_streams_are_forgotten() {
    let server = TestServer::start(
        &[],
        ServerOptions {
            http: HttpOptions {
                allow_create: true,
                max_created_streams: 3,
                created_stream_idle: Some(Duration::from_millis(500)),
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let jpeg = corpus("jpeg_5k.jpg");
    for name in ["a", "b", "c"] {
        let res = put(server.url(&format!("/stream/{name}")), jpeg.clone()).await;
        assert_eq!(res.status(), 204, "{name}");
    }
    let res = put(server.url("/stream/d"), jpeg.clone()).await;
    assert_eq!(res.status(), 503);
    let why = res.text().await.unwrap();
    assert!(why.contains("at most 3 streams created by pushes"), "{why}");
    assert!(server.streams.get("d").is_none());
    // A viewer keeps "a" alive; "b" and "c" are forgotten once idle.
    let _viewer = RawClient::stream(server.addr, "/stream/a").await;
    let started = Instant::now();
    while server.streams.all().len() > 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "idle created streams were kept: {:?}",
            server.streams.all()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.streams.get("a").is_some());
    let mut c = RawClient::request(server.addr, "GET", "/snapshot/b").await;
    assert_eq!(c.head().await.status, 404);
    // Their places are free again.
    for name in ["d", "e"] {
        let res = put(server.url(&format!("/stream/{name}")), jpeg.clone()).await;
        assert_eq!(res.status(), 204, "{name}");
    }
}
