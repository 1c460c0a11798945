//! Visibility: `/status` per viewer, `/metrics` for Prometheus, and the
//! access log, over real TCP against the real server.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// No re-sends: a client gets exactly the frames published.
fn opts() -> ServerOptions {
    ServerOptions {
        write_timeout: Some(Duration::from_secs(60)),
        http: HttpOptions {
            resend_after: None,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    }
}

/// Bytes of a part as the client read them: header lines, blank line, JPEG,
/// trailer with the next boundary.
fn wire_len(p: &Part) -> u64 {
    let headers: usize = p.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    (headers + 2 + p.jpeg.len() + BOUNDARY.len() + 6) as u64
}

/// A stream request that the server's direct path does not take (a GET with
/// a `Content-Length` goes to hyper and the axum routes), so that both
/// writers are measured.
async fn stream_via_axum(addr: SocketAddr, path: &str) -> RawClient {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut c = RawClient {
        reader: BufReader::new(s),
    };
    let head = c.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    c.preamble().await;
    c
}

fn local_addr(c: &RawClient) -> String {
    c.reader.get_ref().local_addr().unwrap().to_string()
}

async fn status(srv: &TestServer) -> Value {
    reqwest::get(srv.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The viewers of the first stream in `/status`, by address.
fn viewers(status: &Value) -> HashMap<String, Value> {
    status["streams"][0]["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["addr"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// `/metrics`, parsed: the `# TYPE` of each family, and every sample's
/// value by its name and labels as written.
struct Metrics {
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

impl Metrics {
    fn get(&self, sample: &str) -> f64 {
        *self
            .samples
            .get(sample)
            .unwrap_or_else(|| panic!("no sample {sample} in {:?}", self.samples))
    }
}

async fn metrics(srv: &TestServer) -> Metrics {
    let res = reqwest::get(srv.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = res.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut types = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), kind.to_string());
        } else if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# UNIT ") || line == "# EOF",
                "{line}"
            );
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let family = series.split('{').next().unwrap();
            assert!(
                family.starts_with("mjpeg_")
                    && family
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "bad metric name in {line}"
            );
            samples.insert(series.to_string(), value.parse().unwrap());
        }
    }
    Metrics { types, samples }
}

/// Polls until `done` holds for `/status`, or fails after 5 s. The server
/// counts a part once it was written, which may be a moment after the
/// client read its last byte.
async fn status_until(srv: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..250 {
        let s = status(srv).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: /status is {}", status(srv).await);
}

#[tokio::test]
async fn status_and_metrics_count_what_each_client_read() {
    const N: usize = 12;
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_50k.jpg");
    // Two viewers on the direct socket path, one through axum.
    let mut clients = vec![
        RawClient::stream(srv.addr, "/stream/cam").await,
        RawClient::stream(srv.addr, "/stream/cam").await,
        stream_via_axum(srv.addr, "/stream/cam").await,
    ];
    srv.wait_clients("cam", 3).await;
    let mut read = vec![0u64; clients.len()];
    // Lockstep: every client reads frame i before i+1 is published, so each
    // gets all N and the counts are exact.
    for i in 1..=N {
        hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
        for (c, bytes) in clients.iter_mut().zip(&mut read) {
            let p = c.part().await;
            assert_eq!(p.tag(), Some(i.to_string()));
            *bytes += wire_len(&p);
        }
    }
    assert!(hub.publish_jpeg(&b"not a jpeg"[..]).is_err());

    let addrs: Vec<String> = clients.iter().map(local_addr).collect();
    let s = status_until(&srv, "every client counted", |s| {
        let v = viewers(s);
        addrs.iter().zip(&read).all(|(a, &bytes)| {
            v.get(a)
                .is_some_and(|v| v["frames"] == N as u64 && v["bytes"].as_u64() == Some(bytes))
        })
    })
    .await;
    let stream = &s["streams"][0];
    assert_eq!(stream["clients"], 3);
    assert_eq!(stream["viewers"].as_array().unwrap().len(), 3);
    for (addr, v) in viewers(&s) {
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        assert!(v["connected_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["frames_skipped"], 0, "{v}");
        assert!(v["fps"].as_f64().unwrap() >= 0.0, "{v}");
    }
    let total: u64 = read.iter().sum();
    assert_eq!(stream["frames_sent"], 3 * N as u64);
    assert_eq!(stream["bytes_sent"].as_u64(), Some(total));
    assert_eq!(stream["frames_skipped"], 0);
    assert!(stream["fps_out"].as_f64().unwrap() >= 0.0);

    let m = metrics(&srv).await;
    for (family, kind) in [
        ("mjpeg_frames_in", "counter"),
        ("mjpeg_frames_sent", "counter"),
        ("mjpeg_sent_bytes", "counter"),
        ("mjpeg_clients", "gauge"),
        ("mjpeg_frames_skipped", "counter"),
        ("mjpeg_frames_rejected", "counter"),
        ("mjpeg_source_errors", "counter"),
        ("mjpeg_upstream_reconnects", "counter"),
    ] {
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    let cam = |name: &str| m.get(&format!("{name}{{stream=\"cam\"}}"));
    assert_eq!(cam("mjpeg_frames_in_total"), N as f64);
    assert_eq!(cam("mjpeg_frames_sent_total"), (3 * N) as f64);
    assert_eq!(cam("mjpeg_sent_bytes_total"), total as f64);
    assert_eq!(cam("mjpeg_clients"), 3.0);
    assert_eq!(cam("mjpeg_frames_skipped_total"), 0.0);
    assert_eq!(cam("mjpeg_frames_rejected_total"), 1.0);
    assert_eq!(cam("mjpeg_source_errors_total"), 0.0);
    assert_eq!(cam("mjpeg_upstream_reconnects_total"), 0.0);

    // Clients that leave vanish from /status; what they were sent stays
    // counted.
    drop(clients);
    srv.wait_clients("cam", 0).await;
    let s = status_until(&srv, "viewers gone", |s| {
        s["streams"][0]["viewers"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(s["streams"][0]["frames_sent"], 3 * N as u64);
    assert_eq!(s["streams"][0]["bytes_sent"].as_u64(), Some(total));
    let m = metrics(&srv).await;
    assert_eq!(
        m.get("mjpeg_frames_sent_total{stream=\"cam\"}"),
        (3 * N) as f64
    );
    assert_eq!(
        m.get("mjpeg_sent_bytes_total{stream=\"cam\"}"),
        total as f64
    );
    assert_eq!(m.get("mjpeg_clients{stream=\"cam\"}"), 0.0);
}

#[tokio::test]
async fn a_client_that_stops_reading_shows_skipped_frames() {
    const N: usize = 40;
    let srv = TestServer::start(&["cam"], opts()).await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_1m.jpg");
    hub.publish_jpeg(tagged(&base, "0")).unwrap();
    // The stalled client reads the head and then nothing.
    let stalled = RawClient::stream(srv.addr, "/stream/cam").await;
    let mut fast = RawClient::stream(srv.addr, "/stream/cam").await;
    assert_eq!(fast.part().await.tag().as_deref(), Some("0"));
    // 40 MB in lockstep with the fast client: far more than the stalled
    // client's socket buffers hold, so its writer hangs on an old frame
    // while newer ones replace each other.
    for i in 1..=N {
        hub.publish_jpeg(tagged(&base, &i.to_string())).unwrap();
        assert_eq!(fast.part().await.tag(), Some(i.to_string()));
    }
    let (stalled_addr, fast_addr) = (local_addr(&stalled), local_addr(&fast));
    let s = status_until(&srv, "the fast client counted", |s| {
        viewers(s)
            .get(&fast_addr)
            .is_some_and(|v| v["frames"] == N as u64 + 1)
    })
    .await;
    let v = viewers(&s);
    assert_eq!(v[&fast_addr]["frames_skipped"], 0, "{s}");
    let skipped = v[&stalled_addr]["frames_skipped"].as_u64().unwrap();
    // It got at most a few frames into its buffers; every frame replaced
    // while its writer waited counts as skipped.
    assert!(skipped > N as u64 / 2, "{s}");
    assert!(
        v[&stalled_addr]["frames"].as_u64().unwrap() + skipped <= N as u64 + 1,
        "{s}"
    );
    let m = metrics(&srv).await;
    let total = m.get("mjpeg_frames_skipped_total{stream=\"cam\"}");
    assert!(total >= skipped as f64, "{total} < {skipped}");

    // Counters never go back when the client leaves.
    drop(stalled);
    srv.wait_clients("cam", 1).await;
    let m = metrics(&srv).await;
    assert!(m.get("mjpeg_frames_skipped_total{stream=\"cam\"}") >= total);
}

/// The server program with `RUST_LOG=info`, its stderr lines on a channel.
struct LoggingServer {
    child: std::process::Child,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LoggingServer {
    fn start(args: &[&str]) -> LoggingServer {
        use std::io::BufRead;
        let mut child = logged_server(&[&["--listen", "127.0.0.1:0"], args].concat())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        // Reads stderr to its end, so the server never blocks on the pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = LoggingServer {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
        };
        let line = server.wait_line(|l| l.contains("serving http://"));
        server.addr = line
            .split("serving http://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        server
    }

    /// The first line from now on that `want` accepts; fails after 10 s.
    fn wait_line(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no such log line: {e}"),
            }
        }
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `key=value` from a log line of tracing's default format.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[tokio::test]
async fn each_stream_client_gets_an_access_log_line_when_it_leaves() {
    let server = LoggingServer::start(&["--stream", "cam=synthetic:tests/data/jpeg_5k.jpg#fps=30"]);
    let mut c = RawClient::stream(server.addr, "/stream/cam").await;
    let mut read = 0;
    for _ in 0..3 {
        read += wire_len(&c.part().await);
    }
    let addr = local_addr(&c);
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);
    let line = tokio::task::spawn_blocking(move || {
        server.wait_line(|l| l.contains("stream client left") && l.contains(&addr))
    })
    .await
    .unwrap();
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("mjpeg_server::access"), "{line}");
    assert_eq!(field(&line, "stream").trim_matches('"'), "cam", "{line}");
    assert!(
        field(&line, "duration_ms").parse::<u64>().unwrap() >= 50,
        "{line}"
    );
    // The server may have written a frame or two more than the client read
    // before it noticed the client was gone.
    assert!(
        field(&line, "frames").parse::<u64>().unwrap() >= 3,
        "{line}"
    );
    assert!(
        field(&line, "bytes").parse::<u64>().unwrap() >= read,
        "{line}"
    );
    field(&line, "skipped").parse::<u64>().unwrap();
}

/// Every refusal of a limit or of credentials is counted in `/metrics` by
/// reason and logged at WARN with its reason and client, and a burst of one
/// reason is logged once and counted whole.
#[tokio::test]
async fn refusals_are_counted_by_reason_and_warned_once_per_burst() {
    let server = LoggingServer::start(&[
        "--stream",
        "cam=synthetic:tests/data/jpeg_5k.jpg#fps=30",
        "--stream",
        "in=push",
        "--user",
        "admin:secret",
        "--public-watch",
        "--max-clients-per-stream",
        "1",
        "--max-header-size",
        "1K",
        "--header-timeout",
        "0.5",
        "--max-frame-size",
        "1K",
    ]);
    let addr = server.addr;
    let url = |p: &str| format!("http://{addr}{p}");
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();

    // 503: a second viewer of a stream that takes one.
    let _first = RawClient::stream(addr, "/stream/cam").await;
    let second = RawClient::request(addr, "GET", "/stream/cam")
        .await
        .head()
        .await;
    assert_eq!(second.status, 503);
    // 401 without credentials (twenty times), and with wrong ones.
    for _ in 0..20 {
        assert_eq!(
            status(client.get(url("/status")).send().await.unwrap()),
            401
        );
    }
    let wrong = client
        .get(url("/status"))
        .basic_auth("admin", Some("guess"));
    assert_eq!(status(wrong.send().await.unwrap()), 401);
    // 413: a frame over --max-frame-size.
    let big = client
        .put(url("/stream/in"))
        .basic_auth("admin", Some("secret"))
        .body(corpus("jpeg_5k.jpg"));
    assert_eq!(status(big.send().await.unwrap()), 413);
    // 431 and 408: a request head too large, and one never finished.
    let mut huge = RawClient::send(
        addr,
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2048)),
    )
    .await;
    assert_eq!(huge.head().await.status, 431);
    let mut slow = RawClient::send(addr, "GET / HTTP/1.1\r\n").await;
    assert_eq!(slow.head().await.status, 408);

    let metrics = client
        .get(url("/metrics"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |reason: &str| -> u64 {
        let key = format!("mjpeg_refusals_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(count("clients_per_stream"), 1);
    assert_eq!(count("no_credentials"), 20);
    assert_eq!(count("wrong_credentials"), 1);
    assert_eq!(count("frame_too_large"), 1);
    assert_eq!(count("header_too_large"), 1);
    assert_eq!(count("header_timeout"), 1);
    assert_eq!(count("connections"), 0);

    // One WARN line per reason, the burst of twenty included.
    let mut warned: HashMap<String, usize> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = server.lines.recv_timeout(left) else {
            break;
        };
        if line.contains("refused: ") {
            assert!(line.contains(" WARN "), "{line}");
            assert!(line.contains("client=127.0.0.1:"), "{line}");
            *warned
                .entry(field(&line, "reason").to_string())
                .or_default() += 1;
        }
    }
    for reason in [
        "clients_per_stream",
        "no_credentials",
        "wrong_credentials",
        "frame_too_large",
        "header_too_large",
        "header_timeout",
    ] {
        assert_eq!(warned.get(reason), Some(&1), "{reason}: {warned:?}");
    }
}
