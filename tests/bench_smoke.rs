//! The load client against the real server, briefly: keeps `mjpeg-bench`
//! and its figures working without timing anything (CI machines are too
//! noisy for pass/fail speeds; `bench/run.sh` measures).

mod common;

use common::*;
use mjpeg_bench::{self as bench, BenchOptions, Report};
use mjpeg_server::convert::ConvertOptions;
use mjpeg_server::source::synthetic;
use mjpeg_server::ServerOptions;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

fn opts(url: String, clients: usize) -> BenchOptions {
    BenchOptions {
        url,
        clients,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
        ..BenchOptions::default()
    }
}

/// Publishes the 50 KB test JPEG into stream `b` of `srv` at 30 fps until
/// `stop`.
fn synthetic_50k(srv: &TestServer, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(synthetic::run(
        format!("{}/tests/data/jpeg_50k.jpg", env!("CARGO_MANIFEST_DIR")).into(),
        Duration::from_millis(33),
        ConvertOptions::default(),
        srv.hub("b"),
        stop.clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_client_measures_a_synthetic_stream() {
    let srv = TestServer::start(&["b"], ServerOptions::default()).await;
    let stop = CancellationToken::new();
    let source = synthetic_50k(&srv, &stop);

    let report: Report = bench::run(&BenchOptions {
        slow_share: 0.1,
        slow_rate: 200_000,
        verify_jpeg: true,
        // The server runs in this process, so its figures are ours: enough
        // to check that they are read.
        server_pid: Some(std::process::id()),
        ..opts(srv.url("/stream/b"), 20)
    })
    .await
    .unwrap();
    stop.cancel();
    source.await.unwrap();

    assert!(report.problems().is_empty(), "{report}");
    assert_eq!(
        (report.connected, report.invalid_frames),
        (20, 0),
        "{report}"
    );
    assert_eq!(report.fast.clients, 18);
    assert_eq!(report.slow.as_ref().unwrap().clients, 2);
    assert!(report.fast.fps.min > 0.0, "{report}");
    assert!(report.fast.frames > 0 && report.mb_per_s > 0.0, "{report}");
    let lat = report.fast.latency_ms.expect("latency figures");
    assert!(
        0.0 <= lat.p50 && lat.p50 <= lat.p99 && lat.p99 <= lat.max,
        "{report}"
    );
    let server = report.server.as_ref().expect("server figures");
    assert!(server.cpu_s_per_gb.is_some() && server.peak_rss_mb > 0.0);
    // The JSON line the benchmark script reads.
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    for key in ["fast", "slow", "mb_per_s", "invalid_frames", "server"] {
        assert!(!json[key].is_null(), "{key} missing from {json}");
    }
    assert!(json["fast"]["latency_ms"]["p99"].is_number());
    assert!(report.to_string().contains("fast"));
}

#[tokio::test]
async fn a_broken_part_is_counted_as_invalid() {
    // A server that sends one good part, then one whose JPEG is cut short.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jpeg = corpus("jpeg_5k.jpg");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let jpeg = jpeg.clone();
            tokio::spawn(async move {
                let mut out = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n--{BOUNDARY}\r\n"
                )
                .into_bytes();
                for cut in [0, 10] {
                    out.extend(
                        format!(
                            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: 1.0\r\n\r\n",
                            jpeg.len()
                        )
                        .bytes(),
                    );
                    out.extend_from_slice(&jpeg[..jpeg.len() - cut]);
                    out.extend(format!("\r\n--{BOUNDARY}\r\n").bytes());
                }
                let _ = s.write_all(&out).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let report = bench::run(&BenchOptions {
        duration: Duration::from_millis(300),
        ..opts(format!("http://{addr}/stream"), 3)
    })
    .await
    .unwrap();
    assert_eq!(report.invalid_frames, 3, "{report}");
    assert!(report.errors[0].contains("invalid frame"), "{report}");
    assert!(!report.problems().is_empty());
}

#[tokio::test]
async fn no_server_is_reported_not_hidden() {
    // Bind and drop to get a port that nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = bench::run(&BenchOptions {
        duration: Duration::from_millis(100),
        warmup: Duration::ZERO,
        ..opts(format!("http://{addr}/stream"), 2)
    })
    .await
    .unwrap();
    assert_eq!(report.connected, 0);
    assert!(report.errors[0].contains("connect"), "{report}");
    assert!(report
        .problems()
        .iter()
        .any(|p| p.contains("only 0 of 2 connections")));
}

/// `https://` URLs, over HTTP/1.1 and HTTP/2, are loaded and checked like
/// plain ones, trusting the certificate given with `ca`; without it the run
/// does not start and says what to give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_client_speaks_https_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Cert::new().install(dir.path());
    let srv = TestServer::start(
        &["b"],
        ServerOptions {
            tls: Some(mjpeg_server::tls::Tls::load(&cert, &key).unwrap()),
            ..ServerOptions::default()
        },
    )
    .await;
    let stop = CancellationToken::new();
    let source = synthetic_50k(&srv, &stop);
    let url = format!("https://{}/stream/b", srv.addr);
    for http2 in [false, true] {
        let report = bench::run(&BenchOptions {
            ca: Some(cert.clone()),
            http2,
            verify_jpeg: true,
            ..opts(url.clone(), 8)
        })
        .await
        .unwrap();
        assert!(report.problems().is_empty(), "http2 {http2}: {report}");
        assert_eq!(
            (report.connected, report.invalid_frames),
            (8, 0),
            "{report}"
        );
        assert!(report.fast.fps.min > 0.0, "http2 {http2}: {report}");
    }
    // Without the certificate to trust, it says what to give.
    let err = bench::run(&opts(url, 1)).await.unwrap_err();
    assert!(format!("{err:#}").contains("--ca"), "{err:#}");
    stop.cancel();
    source.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_client_measures_the_players_websocket() {
    let srv = TestServer::start(&["b"], ServerOptions::default()).await;
    let stop = CancellationToken::new();
    let source = synthetic_50k(&srv, &stop);

    let report: Report = bench::run(&BenchOptions {
        websocket: true,
        verify_jpeg: true,
        ..opts(srv.url("/stream/b"), 20)
    })
    .await
    .unwrap();
    // A stream that does not exist is a refusal, with the server's reason.
    let refused = bench::run(&BenchOptions {
        websocket: true,
        ..opts(srv.url("/stream/nope"), 1)
    })
    .await
    .unwrap();
    stop.cancel();
    source.await.unwrap();

    assert!(report.problems().is_empty(), "{report}");
    assert_eq!(
        (report.connected, report.invalid_frames),
        (20, 0),
        "{report}"
    );
    assert!(report.fast.fps.min > 0.0, "{report}");
    assert!(report.fast.frames > 0 && report.mb_per_s > 0.0, "{report}");
    assert!(report.fast.latency_ms.is_some(), "{report}");
    assert_eq!(refused.connected, 0, "{refused}");
    assert!(
        refused.errors.iter().any(|e| e.contains("404")),
        "{:?}",
        refused.errors
    );
}
