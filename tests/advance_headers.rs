//! Advanced part headers, on the wire: a browser's image load
//! (`Sec-Fetch-Dest: image`) gets the next part's delimiter and header block
//! right after each frame, so that Chrome shows a frame as soon as it
//! arrives; every other client gets exactly the parts it always got, each
//! with its `Content-Length` and `X-Timestamp`. Both writers are checked:
//! the server's direct socket path and the axum routes (a GET with a
//! `Content-Length` is left to hyper).

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::multipart::reader::PartReader;
use mjpeg_server::{Hub, ServerOptions};
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::AsyncReadExt;

/// No re-sends: a client gets exactly the frames published, so the bytes
/// on the wire can be predicted exactly.
fn opts() -> ServerOptions {
    ServerOptions {
        http: HttpOptions {
            resend_after: None,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    }
}

/// The two writers: the direct socket path, and hyper with the axum routes.
#[derive(Debug, Clone, Copy)]
enum Path {
    Direct,
    Axum,
}

const PATHS: [Path; 2] = [Path::Direct, Path::Axum];

/// Sends a stream request for `target` with `extra` header lines, on the
/// writer `path` chooses, and returns the client after the response head.
async fn open(addr: SocketAddr, target: &str, extra: &str, path: Path) -> RawClient {
    // A GET with a body is never taken by the direct path.
    let detour = match path {
        Path::Direct => "",
        Path::Axum => "Content-Length: 0\r\n",
    };
    let mut c = RawClient::send(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}{detour}\r\n"),
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 200, "{path:?} {target}: {head:?}");
    assert_eq!(
        head.get("content-type"),
        Some("multipart/x-mixed-replace; boundary=mjpegserverboundary")
    );
    assert_eq!(head.get("transfer-encoding"), None, "{head:?}");
    c
}

/// Reads exactly `n` bytes, failing after 5 s.
async fn read_n(c: &mut RawClient, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), c.reader.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{n} bytes did not arrive within 5 s"))
        .unwrap();
    buf
}

/// Fails, showing where they first differ, unless `got == want`. (A
/// byte-array diff of two JPEGs is unreadable.)
fn same(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(40)..(at + 40).min(b.len())]).into_owned()
    };
    panic!(
        "{what}: {} bytes where {} were expected, first difference at byte {at}:\n got  {:?}\n want {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

/// Nothing more arrives within `wait`: the client has been sent exactly
/// what it read.
async fn nothing_more(c: &mut RawClient, wait: Duration) {
    let mut byte = [0u8; 1];
    if let Ok(r) = tokio::time::timeout(wait, c.reader.read(&mut byte)).await {
        panic!("unexpected data after the expected bytes: {r:?} {byte:?}");
    }
}

/// The frame's publication time as `X-Timestamp` carries it.
fn timestamp(hub: &Hub) -> String {
    let d = hub
        .latest()
        .unwrap()
        .published()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// The part header every non-browser client has always got: written out
/// here by hand, not with the server's own encoder, so that a change to the
/// wire shows up as a failure.
fn plain_part(jpeg: &[u8], ts: &str) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {ts}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    out.extend_from_slice(jpeg);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
    out
}

/// What follows each frame for a browser: the end of the part, the next
/// delimiter and the next part's header block.
fn advanced_trailer() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes()
}

fn frames() -> Vec<Vec<u8>> {
    ["a", "b", "c"]
        .iter()
        .map(|t| tagged(&corpus("jpeg_5k.jpg"), t))
        .collect()
}

#[tokio::test]
async fn clients_without_sec_fetch_dest_get_exactly_the_old_wire() {
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    // A bare request as ffmpeg, OpenCV or an embedded client sends it, and
    // one with the headers a non-browser program typically adds.
    let extras = [
        "",
        "User-Agent: Lavf/59.27.100\r\nAccept: */*\r\nIcy-MetaData: 1\r\n",
    ];
    let mut clients = Vec::new();
    for path in PATHS {
        for extra in extras {
            clients.push(open(srv.addr, "/stream/cam", extra, path).await);
        }
    }
    srv.wait_clients("cam", clients.len()).await;
    let preamble = format!("--{BOUNDARY}\r\n").into_bytes();
    for c in &mut clients {
        assert_eq!(read_n(c, preamble.len()).await, preamble);
    }
    for jpeg in frames() {
        hub.publish_jpeg(jpeg.clone()).unwrap();
        let want = plain_part(&jpeg, &timestamp(&hub));
        for c in &mut clients {
            same(&read_n(c, want.len()).await, &want, "a plain part");
        }
    }
    for c in &mut clients {
        nothing_more(c, Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_image_load_by_a_browser_gets_the_next_headers_at_once() {
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    // What Chrome sends for an <img>, in part.
    let browser = "User-Agent: Mozilla/5.0 Chrome/120\r\nAccept: image/avif,image/webp,*/*\r\n\
                   Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n";
    let mut clients = Vec::new();
    for path in PATHS {
        clients.push(open(srv.addr, "/stream/cam", browser, path).await);
    }
    srv.wait_clients("cam", clients.len()).await;
    let opening = format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
    let mut wires = vec![Vec::new(); clients.len()];
    for (c, wire) in clients.iter_mut().zip(&mut wires) {
        let got = read_n(c, opening.len()).await;
        same(
            &got,
            &opening,
            "the opening delimiter and first header block",
        );
        wire.extend(got);
    }
    let frames = frames();
    for jpeg in &frames {
        hub.publish_jpeg(jpeg.clone()).unwrap();
        // The frame and, before any further frame is published, the next
        // part's delimiter and headers: what makes Chrome draw it.
        let mut want = jpeg.clone();
        want.extend(advanced_trailer());
        for (c, wire) in clients.iter_mut().zip(&mut wires) {
            let got = read_n(c, want.len()).await;
            same(&got, &want, "a frame and the next part's headers");
            wire.extend(got);
        }
    }
    for c in &mut clients {
        nothing_more(c, Duration::from_millis(200)).await;
    }
    // The layout is ordinary multipart: a reader that finds parts by their
    // boundary gets every frame whole, in any chunking.
    for wire in &wires {
        for chunk in [1, 100, wire.len()] {
            let mut reader = PartReader::new(BOUNDARY, 1 << 20);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                reader.push(piece);
                while let Some(part) = reader.next_part().unwrap() {
                    assert_eq!(part.header("content-type"), Some("image/jpeg"));
                    got.push(part.body.to_vec());
                }
            }
            assert_eq!(got, frames, "chunks of {chunk}");
        }
    }
}

#[tokio::test]
async fn advance_headers_in_the_query_forces_either_layout() {
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    let jpeg = tagged(&corpus("jpeg_5k.jpg"), "x");
    hub.publish_jpeg(jpeg.clone()).unwrap();
    let ts = timestamp(&hub);
    let dest = "Sec-Fetch-Dest: image\r\n";
    for path in PATHS {
        // =1 without the header: advanced (a browser that sends none, or a
        // test page).
        for target in [
            "/stream/cam?advance_headers=1",
            "/?action=stream&advance_headers=1",
        ] {
            let mut c = open(srv.addr, target, "", path).await;
            let mut want = format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
            want.extend_from_slice(&jpeg);
            want.extend(advanced_trailer());
            same(
                &read_n(&mut c, want.len()).await,
                &want,
                &format!("{path:?} {target}"),
            );
        }
        // =0 with the header: the plain parts.
        for target in [
            "/stream/cam?advance_headers=0",
            "/stream?advance_headers=0&fps=5",
        ] {
            let mut c = open(srv.addr, target, dest, path).await;
            let mut want = format!("--{BOUNDARY}\r\n").into_bytes();
            want.extend(plain_part(&jpeg, &ts));
            same(
                &read_n(&mut c, want.len()).await,
                &want,
                &format!("{path:?} {target}"),
            );
        }
    }
    // Anything else is refused, saying what is allowed (the direct path
    // leaves it to the routes, which say it).
    let mut c = RawClient::send(
        srv.addr,
        format!(
            "GET /stream/cam?advance_headers=yes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{dest}\r\n"
        ),
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 400, "{head:?}");
    let body = String::from_utf8(c.rest().await).unwrap();
    assert!(
        body.contains("advance_headers") && body.contains("0 or 1"),
        "{body}"
    );
}

#[tokio::test]
async fn status_counts_the_bytes_each_layout_sent() {
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    let dest = "Sec-Fetch-Dest: image\r\n";
    let mut clients = Vec::new();
    for path in PATHS {
        for extra in ["", dest] {
            clients.push(open(srv.addr, "/stream/cam", extra, path).await);
        }
    }
    srv.wait_clients("cam", clients.len()).await;
    let mut drained = vec![0usize; clients.len()];
    let mut expected = vec![0u64; clients.len()];
    for jpeg in frames() {
        hub.publish_jpeg(jpeg.clone()).unwrap();
        let plain = plain_part(&jpeg, &timestamp(&hub)).len();
        let advanced = jpeg.len() + advanced_trailer().len();
        for (i, c) in clients.iter_mut().enumerate() {
            // The opening delimiter (and, advanced, the first header block)
            // is not part of any frame's count, on either writer.
            let opening = if drained[i] == 0 {
                if i % 2 == 0 {
                    BOUNDARY.len() + 4
                } else {
                    BOUNDARY.len() + 4 + "Content-Type: image/jpeg\r\n\r\n".len()
                }
            } else {
                0
            };
            let part = if i % 2 == 0 { plain } else { advanced };
            read_n(c, opening + part).await;
            drained[i] += 1;
            expected[i] += part as u64;
        }
    }
    let addrs: Vec<String> = clients
        .iter()
        .map(|c| c.reader.get_ref().local_addr().unwrap().to_string())
        .collect();
    for _ in 0..250 {
        let status = status_json(srv.addr).await;
        let viewers = status["streams"][0]["viewers"].as_array().unwrap().clone();
        let counted: Vec<Option<u64>> = addrs
            .iter()
            .map(|a| {
                viewers
                    .iter()
                    .find(|v| v["addr"] == a.as_str())
                    .and_then(|v| v["bytes"].as_u64())
            })
            .collect();
        if counted.iter().zip(&expected).all(|(c, &e)| *c == Some(e)) {
            assert_eq!(
                status["streams"][0]["bytes_sent"].as_u64(),
                Some(expected.iter().sum())
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "/status does not count {expected:?} bytes for (direct, direct+image, axum, axum+image): {}",
        status_json(srv.addr).await
    );
}
