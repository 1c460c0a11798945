//! Behind a reverse proxy: the client address comes from `X-Forwarded-For`
//! / `Forwarded`, believed only from `trusted_proxies`, so the per-address
//! limit counts the clients and not the proxy (the scale-out recipe used
//! to stop at the proxy's 256 or 512 connections).

mod common;

use common::*;
use mjpeg_server::ServerOptions;

async fn server(trusted: &[&str]) -> TestServer {
    let srv = TestServer::start(
        &["cam"],
        ServerOptions {
            max_connections_per_address: 2,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ..ServerOptions::default()
        },
    )
    .await;
    srv.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    srv
}

async fn get_as(srv: &TestServer, path: &str, header: &str) -> RawClient {
    RawClient::send(
        srv.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn a_trusted_proxy_counts_each_client_it_forwards_for() {
    let srv = server(&["127.0.0.0/8"]).await;
    let mut viewers = Vec::new();
    // Five clients behind one proxy address: more than the limit of 2.
    for i in 1..=5 {
        let mut c = get_as(
            &srv,
            "/stream/cam",
            &format!("X-Forwarded-For: 203.0.113.{i}"),
        )
        .await;
        assert_eq!(c.head().await.status, 200, "client {i}");
        c.preamble().await;
        c.part().await;
        viewers.push(c);
    }
    srv.wait_clients("cam", 5).await;
    let status = status_json(srv.addr).await;
    let mut addrs: Vec<String> = status["streams"][0]["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["addr"].as_str().unwrap().to_string())
        .collect();
    addrs.sort();
    assert!(
        addrs.iter().all(|a| a.starts_with("203.0.113.")),
        "{status}"
    );
    // One client is still held to its 2, whatever the proxy in front; a
    // made-up entry on the left does not change who it is; `Forwarded`
    // counts as well.
    let mut c = get_as(&srv, "/stream/cam", "X-Forwarded-For: 203.0.113.1").await;
    assert_eq!(c.head().await.status, 200);
    viewers.push(c);
    let mut c = get_as(
        &srv,
        "/stream/cam",
        "X-Forwarded-For: 198.51.100.9, 203.0.113.1",
    )
    .await;
    assert_eq!(c.head().await.status, 503);
    let mut c = get_as(&srv, "/snapshot/cam", "Forwarded: for=203.0.113.1").await;
    assert_eq!(c.head().await.status, 503);
    let mut c = get_as(&srv, "/snapshot/cam", "Forwarded: for=203.0.113.9").await;
    assert_eq!(c.head().await.status, 200);
}

#[tokio::test]
async fn forwarding_headers_from_anyone_else_are_ignored() {
    let srv = server(&[]).await;
    let mut viewers = Vec::new();
    for i in 1..=2 {
        let mut c = get_as(
            &srv,
            "/stream/cam",
            &format!("X-Forwarded-For: 203.0.113.{i}"),
        )
        .await;
        assert_eq!(c.head().await.status, 200);
        viewers.push(c);
    }
    srv.wait_clients("cam", 2).await;
    let mut c = get_as(&srv, "/stream/cam", "X-Forwarded-For: 203.0.113.3").await;
    assert_eq!(c.head().await.status, 503);
    viewers.pop();
    srv.wait_clients("cam", 1).await;
    let status = status_json(srv.addr).await;
    assert_eq!(
        status["streams"][0]["viewers"][0]["addr"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("127.0.0.1"),
        "{status}"
    );
}
