//! Every limit refuses what is past it, with the right status, and lets
//! the rest through: connections overall, per client address and per
//! stream; request head size and time (slowloris); idle pushes.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn server_with(opts: ServerOptions) -> TestServer {
    let server = TestServer::start(&["cam", "other"], opts).await;
    for name in ["cam", "other"] {
        server
            .hub(name)
            .publish_jpeg(corpus("jpeg_5k.jpg"))
            .unwrap();
    }
    server
}

/// A connection from a chosen loopback address (127.0.0.0/8 is all local).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads what the server sends until it closes (or 5 s pass).
async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn past_the_connection_limit_a_client_gets_503() {
    let server = server_with(ServerOptions {
        max_connections: 3,
        ..ServerOptions::default()
    })
    .await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(RawClient::stream(server.addr, "/stream/cam").await);
    }
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    let answer = read_all(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("Retry-After: 1"));
    assert!(answer.ends_with("too many connections, try later\n"));
    // A place comes free when a viewer leaves.
    viewers.pop();
    server.wait_clients("cam", 2).await;
    let mut again = None;
    for _ in 0..100 {
        let mut c = RawClient::request(server.addr, "GET", "/stream/cam").await;
        if c.head().await.status == 200 {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place was never given out");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = server_with(ServerOptions {
        max_connections_per_address: 2,
        ..ServerOptions::default()
    })
    .await;
    // Two idle connections from 127.0.0.2 hold its two places.
    let _a = connect_from([127, 0, 0, 2], server.addr).await;
    let _b = connect_from([127, 0, 0, 2], server.addr).await;
    let mut c = connect_from([127, 0, 0, 2], server.addr).await;
    let answer = read_all(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.ends_with("too many connections from your address\n"));
    // Another address is not affected.
    let mut other = connect_from([127, 0, 0, 3], server.addr).await;
    other
        .write_all(b"GET /snapshot/cam HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_all(&mut other).await.starts_with("HTTP/1.1 200 "));
}

#[tokio::test]
async fn past_the_per_stream_limit_a_viewer_gets_503_on_both_paths() {
    let server = server_with(ServerOptions {
        http: HttpOptions {
            max_clients_per_stream: Some(2),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    })
    .await;
    let first = RawClient::stream(server.addr, "/stream/cam").await;
    let _second = RawClient::stream(server.addr, "/?action=stream").await;
    // A plain GET (the direct path) and a keep-alive one through the HTTP
    // routes are both refused.
    for request in [
        "GET /stream/cam HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /stream/cam HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n\r\n",
    ] {
        let mut c = RawClient::send(server.addr, request).await;
        let head = c.head().await;
        assert_eq!(head.status, 503, "{request}");
        assert_eq!(head.get("retry-after"), Some("5"));
    }
    assert_eq!(server.hub("cam").stats().clients, 2);
    // Other streams are not limited by this one's viewers.
    let _other = RawClient::stream(server.addr, "/stream/other").await;
    drop(first);
    server.wait_clients("cam", 1).await;
    let mut c = RawClient::stream(server.addr, "/stream/cam").await;
    c.part().await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let server = server_with(ServerOptions {
        max_header_bytes: 2048,
        ..ServerOptions::default()
    })
    .await;
    let cookie = "a".repeat(4000);
    let mut c = RawClient::send(
        server.addr,
        format!("GET /stream/cam HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"),
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 431);
    assert!(String::from_utf8(c.rest().await)
        .unwrap()
        .contains("larger than 2048 bytes"));
    // A head that never ends is cut off at the limit too, not read forever.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let junk = vec![b'x'; 64 * 1024];
    let _ = s.write_all(&junk).await;
    assert!(read_all(&mut s).await.starts_with("HTTP/1.1 431 "));
    // Under the limit is fine.
    let mut c = RawClient::send(
        server.addr,
        format!(
            "GET /stream/cam HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
            "a".repeat(1500)
        ),
    )
    .await;
    assert_eq!(c.head().await.status, 200);
}

#[tokio::test]
async fn a_slowloris_client_gets_408_and_is_closed() {
    let timeout = Duration::from_millis(600);
    let server = server_with(ServerOptions {
        header_timeout: timeout,
        ..ServerOptions::default()
    })
    .await;
    // One header line every 200 ms, never the blank line that ends them.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    s.write_all(b"GET /stream/cam HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
    let answer = read_all(&mut s).await;
    let took = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    // A connection that sends nothing at all is closed without an answer.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    assert_eq!(read_all(&mut idle).await, "");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_idle_push_is_ended_with_408_and_keeps_its_frames() {
    let server = TestServer::start(
        &["in"],
        ServerOptions {
            http: HttpOptions {
                push_idle_timeout: Some(Duration::from_millis(500)),
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    server.hub("in").set_accepts_push(true);
    let jpeg = tagged(&corpus("jpeg_5k.jpg"), "first");
    // A chunked upload: one whole frame, then silence.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut req = b"PUT /stream/in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    req.extend_from_slice(format!("{:x}\r\n", jpeg.len()).as_bytes());
    req.extend_from_slice(&jpeg);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).await.unwrap();
    let start = Instant::now();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("no answer to an idle push")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(start.elapsed() >= Duration::from_millis(400));
    let text = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let rest = read_all(&mut s).await;
    assert!(
        (text + &rest).contains("sent nothing for 0.5 s"),
        "{answer}{rest}"
    );
    // The frame sent before the silence was published.
    assert_eq!(
        server.hub("in").latest().unwrap().jpeg().as_ref(),
        &jpeg[..]
    );
}
