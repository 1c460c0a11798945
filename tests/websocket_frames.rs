//! `/ws` at the level of its frames and handshake, from a plain TCP socket
//! against the real server on 127.0.0.1:0: the accept key of RFC 6455's
//! own example, pings, fragments, the close handshake, frames that break
//! the protocol, and requests that are no handshake. (The messages and the
//! rules of the player's protocol, from a WebSocket client, are
//! `tests/websocket.rs`.)

mod common;

use common::{corpus, TestServer};
use mjpeg_server::ServerOptions;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;

/// Bound on waiting for any one answer.
const WAIT: Duration = Duration::from_secs(5);

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Opens `/ws` over a plain TCP socket with the handshake of RFC 6455's
/// own example; the socket, after checking the `101` and its accept key.
async fn raw_socket(server: &TestServer) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the server closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // The accept key RFC 6455 §1.3 gives for that key.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    tcp
}

/// A client's frame, masked unless `masked` is false.
fn client_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [9, 200, 33, 71];
    let mut f = vec![0x80 | opcode, payload.len() as u8];
    if masked {
        f[1] |= 0x80;
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Reads one server frame: its first byte and its payload.
async fn server_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut head))
        .await
        .expect("a frame within the wait")
        .expect("a frame, not the end");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] {
        126 => usize::from(tcp.read_u16().await.unwrap()),
        127 => tcp.read_u64().await.unwrap() as usize,
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

#[tokio::test]
async fn the_socket_speaks_the_protocol_at_the_frame_level() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(&["cam"], ServerOptions::default()).await;
    server
        .hub("cam")
        .publish_jpeg(corpus("jpeg_50k.jpg"))
        .unwrap();

    // A ping is answered with a pong of the same payload; a request sent in
    // two fragments, with a ping between them, is read whole; a frame comes
    // as one final binary frame (a 64-bit length for a 50 kB JPEG: 127).
    let mut tcp = raw_socket(&server).await;
    let request = br#"{"op":"subscribe","stream":"cam"}"#;
    let mut first = client_frame(0x1, &request[..10], true);
    first[0] &= 0x7F; // not final
    tcp.write_all(&first).await.unwrap();
    tcp.write_all(&client_frame(0x9, b"are you there", true))
        .await
        .unwrap();
    tcp.write_all(&client_frame(0x0, &request[10..], true))
        .await
        .unwrap();
    assert_eq!(
        server_frame(&mut tcp).await,
        (0x8A, b"are you there".to_vec())
    );
    let (op, reply) = server_frame(&mut tcp).await;
    assert_eq!(op, 0x81);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["op"], "subscribed", "{reply}");
    let (op, msg) = server_frame(&mut tcp).await;
    assert_eq!(op, 0x82);
    assert_eq!(&msg[20..], &corpus("jpeg_50k.jpg")[..]);

    // The page's close is answered with a close of its code, then the end.
    tcp.write_all(&client_frame(0x8, &1000u16.to_be_bytes(), true))
        .await
        .unwrap();
    let (op, payload) = loop {
        let (op, payload) = server_frame(&mut tcp).await;
        if op != 0x82 {
            break (op, payload);
        }
    };
    assert_eq!((op, payload), (0x88, 1000u16.to_be_bytes().to_vec()));
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the end of the connection")
        .unwrap();
    server.wait_clients("cam", 0).await;

    // Frames that break the protocol are closed with 1002, and bad UTF-8
    // with 1007, saying why.
    let cases: [(&str, Vec<u8>, u16, &str); 3] = [
        (
            "unmasked",
            client_frame(0x1, br#"{"op":"subscribe"}"#, false),
            1002,
            "masked",
        ),
        (
            "a reserved opcode",
            client_frame(0x3, b"", true),
            1002,
            "opcode",
        ),
        (
            "bad UTF-8",
            client_frame(0x1, &[b'{', 0xC0, 0x80, b'}'], true),
            1007,
            "UTF-8",
        ),
    ];
    for (what, frame, code, reason) in cases {
        let mut tcp = raw_socket(&server).await;
        tcp.write_all(&frame).await.unwrap();
        let (op, payload) = server_frame(&mut tcp).await;
        assert_eq!(op, 0x88, "{what}");
        let got = u16::from_be_bytes([payload[0], payload[1]]);
        let why = String::from_utf8_lossy(&payload[2..]);
        assert_eq!(got, code, "{what}: {why}");
        assert!(why.contains(reason), "{what}: {why}");
    }
}

#[tokio::test]
async fn requests_that_are_not_websocket_handshakes_are_told_what_is_missing() {
    let server = TestServer::start(&["cam"], ServerOptions::default()).await;
    let cases = [
        (vec![], 426, "not a WebSocket handshake"),
        (
            vec![
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "8"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            426,
            "version 13",
        ),
        (
            vec![
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "short"),
            ],
            400,
            "Sec-WebSocket-Key",
        ),
    ];
    for (headers, status, why) in cases {
        let mut req = http().get(server.url("/ws"));
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{headers:?}");
        if status == 426 {
            assert_eq!(res.headers()["sec-websocket-version"], "13");
        }
        let text = res.text().await.unwrap();
        assert!(text.contains(why), "{headers:?}: {text}");
    }
}
