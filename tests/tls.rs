//! HTTPS with a real client: HTTP/2 negotiated by ALPN with many streams
//! on one connection, HTTP/1.1 over TLS, and the certificate reloaded on
//! SIGHUP (a bad file keeps the old one).

mod common;

use common::*;
use futures_util::StreamExt;
use mjpeg_server::multipart::reader::PartReader;
use std::path::Path;
use std::time::Duration;

/// A new certificate, installed in `dir`; returns its PEM and DER.
fn write_cert(dir: &Path) -> (String, Vec<u8>) {
    let cert = Cert::new();
    cert.install(dir);
    (cert.pem, cert.der)
}

fn start(dir: &Path, extra: &[&str]) -> ServerProcess {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn client(roots: &[&str]) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_info(true)
        .timeout(Duration::from_secs(20));
    for pem in roots {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b
}

/// `GET url` of a snapshot, again until the source's first frame is there.
async fn first_frame(client: &reqwest::Client, url: &str) -> reqwest::Response {
    for _ in 0..100 {
        let res = client.get(url).send().await.unwrap();
        if res.status() != 503 {
            assert_eq!(res.status(), 200);
            return res;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no frame at {url}");
}

/// Reads `n` whole parts of a stream response and checks each is a JPEG.
async fn read_parts(res: reqwest::Response, n: usize) {
    let boundary = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(mjpeg_server::multipart::reader::boundary_from_content_type)
        .expect("a multipart content type");
    let mut reader = PartReader::new(&boundary, 1 << 20);
    let mut body = res.bytes_stream();
    let mut got = 0;
    while got < n {
        let chunk = body.next().await.expect("stream ended early").unwrap();
        reader.push(&chunk);
        while let Some(part) = reader.next_part().unwrap() {
            decode(&part.body);
            got += 1;
        }
    }
}

#[tokio::test]
async fn http2_carries_many_streams_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, _) = write_cert(dir.path());
    let server = start(dir.path(), &["--stream", "cam=demo", "--fps", "20"]);
    let base = format!("https://{}", server.addr);
    let client = client(&[&pem]).build().unwrap();

    let res = first_frame(&client, &format!("{base}/snapshot/cam")).await;
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    decode(&res.bytes().await.unwrap());

    // Eight streams at once: more than the six HTTP/1.1 connections a
    // browser opens per host, all on the one HTTP/2 connection.
    let fds_before = server.fds();
    let mut streams = Vec::new();
    for _ in 0..8 {
        let res = client
            .get(format!("{base}/stream/cam"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert!(res.headers().get("connection").is_none());
        streams.push(res);
    }
    let status: serde_json::Value = client
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["streams"][0]["clients"], 8, "{status}");
    assert!(
        server.fds() <= fds_before + 1,
        "eight streams opened {} sockets",
        server.fds() - fds_before
    );
    futures_util::future::join_all(streams.into_iter().map(|res| read_parts(res, 3))).await;
}

#[tokio::test]
async fn http1_over_tls_streams_too() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, _) = write_cert(dir.path());
    let server = start(dir.path(), &["--stream", "cam=demo", "--fps", "20"]);
    let client = client(&[&pem]).http1_only().build().unwrap();
    let res = client
        .get(format!("https://{}/stream/cam", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.version() <= reqwest::Version::HTTP_11);
    read_parts(res, 3).await;
    // Plain HTTP on the TLS port gets no page.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/", server.addr))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let a = Cert::new();
    let b = Cert::new();
    a.install(dir.path());
    let server = start(dir.path(), &["--stream", "cam=demo"]);
    let url = format!("https://{}/snapshot/cam", server.addr);

    // Each request on a new connection, so that each sees the certificate
    // in use at that moment.
    let peer_cert = || async {
        let client = client(&[&a.pem, &b.pem])
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let res = first_frame(&client, &url).await;
        res.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .unwrap()
            .to_vec()
    };
    assert_eq!(peer_cert().await, a.der);

    let hup = || assert!(signal(server.child.id(), "HUP"));
    // A broken key first: the server keeps serving the old certificate.
    std::fs::write(dir.path().join("cert.pem"), &b.pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\ngarbage\n",
    )
    .unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(peer_cert().await, a.der);

    // Then the whole new pair.
    b.install(dir.path());
    hup();
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = peer_cert().await;
        if seen == b.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, b.der, "the new certificate was never served");
}
