//! Chart streams over real HTTP: numbers posted (or written to stdin, or
//! pushed from Rust) come out as JPEG frames of the configured size; frames
//! are made when data changes and only then; bad samples are refused with
//! the field named.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::source::chart::{Chart, ChartOptions, PALETTE};
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::ServerOptions;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server whose stream `cpu` is the chart `spec` and `cam` a push
/// stream, with the idle re-send off so that every part on the wire is a
/// new frame.
async fn chart_server(spec: &str) -> TestServer {
    let srv = TestServer::start(
        &["cpu", "cam"],
        ServerOptions {
            http: HttpOptions {
                resend_after: None,
                ..HttpOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let spec: SourceSpec = spec.parse().unwrap();
    spec.spawn(srv.hub("cpu"), SourceOptions::default(), srv.token.clone());
    srv.hub("cam").set_accepts_push(true);
    wait_first_frame(&srv).await;
    srv
}

/// Waits for the empty chart a chart stream starts with.
async fn wait_first_frame(srv: &TestServer) {
    for _ in 0..500 {
        if srv.hub("cpu").latest().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the chart published no first frame");
}

/// Waits until the hub has published `n` frames.
async fn wait_frames(hub: &mjpeg_server::Hub, n: u64) {
    for _ in 0..1000 {
        if hub.stats().frames_published >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{n} frames expected, {} published",
        hub.stats().frames_published
    );
}

async fn post(srv: &TestServer, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(srv.url(path))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Decodes a JPEG into its size and RGB pixels.
fn pixels(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut d = zune_jpeg::JpegDecoder::new(jpeg);
    let rgb = d.decode().expect("frame does not decode");
    let (w, h) = d.dimensions().unwrap();
    (w, h, rgb)
}

/// How many pixels are close to `color` (JPEG moves colours a little).
fn count_color(rgb: &[u8], color: [u8; 3]) -> usize {
    rgb.chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip(color)
                .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() < 40)
        })
        .count()
}

#[tokio::test]
async fn posted_samples_become_a_jpeg_of_the_configured_size() {
    let srv = chart_server("chart#size=640x360#title=CPU#fps=50").await;
    let mut viewer = RawClient::stream(srv.addr, "/stream/cpu").await;
    let empty = viewer.part().await;
    assert_eq!(decode(&empty.jpeg), (640, 360));
    let (_, _, rgb) = pixels(&empty.jpeg);
    assert_eq!(
        count_color(&rgb, PALETTE[0]),
        0,
        "an empty chart has no series"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A JSON batch: 30 samples of two series over the last 30 s.
    let batch: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            let i = f64::from(i);
            serde_json::json!({"t": now - 30.0 + i, "load": 0.4 + 0.01 * i, "temp": 61.5 - i})
        })
        .collect();
    let batch = serde_json::Value::Array(batch).to_string();
    let (status, text) = post(&srv, "/stream/cpu/data", "application/json", &batch).await;
    assert_eq!(status, 204, "{text}");
    let part = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(part.get("Content-Type"), Some("image/jpeg"));
    let (w, h, rgb) = pixels(&part.jpeg);
    assert_eq!((w, h), (640, 360));
    // The first series' colour is there (line and legend swatch).
    assert!(count_color(&rgb, PALETTE[0]) > 50, "no series drawn");
    assert!(
        count_color(&rgb, PALETTE[1]) > 50,
        "second series not drawn"
    );

    // Text lines work the same way, and the snapshot is the newest frame.
    let (status, text) = post(
        &srv,
        "/stream/cpu/data",
        "text/plain",
        "load=0.3 temp=62\nload=0.35\n",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let part = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    let snap = reqwest::get(srv.url("/snapshot/cpu"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(snap.as_ref(), part.jpeg.as_slice());
    let status: serde_json::Value = reqwest::get(srv.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["streams"][0]["source"]["state"], "running");
    assert_eq!(status["streams"][0]["width"], 640);
}

#[tokio::test]
async fn frames_change_with_data_and_not_otherwise() {
    let srv = chart_server("chart#fps=4").await;
    let hub = srv.hub("cpu");
    let mut viewer = RawClient::stream(srv.addr, "/stream/cpu").await;
    let first = viewer.part().await;

    // No data, no frame (the idle re-send is off).
    assert!(
        viewer
            .part_within(Duration::from_millis(1500))
            .await
            .is_none(),
        "a frame arrived without new data"
    );

    // New data, a new frame: new bytes, new X-Timestamp.
    let (status, _) = post(&srv, "/stream/cpu/data", "text/plain", "a=1").await;
    assert_eq!(status, 204);
    let second = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    assert_ne!(second.jpeg, first.jpeg);
    assert!(second.timestamp() > first.timestamp());
    assert!(
        viewer
            .part_within(Duration::from_millis(1500))
            .await
            .is_none(),
        "a second frame arrived for one sample"
    );

    // A burst of samples is coalesced: at most `fps` frames a second.
    let before = hub.stats().frames_published;
    let began = Instant::now();
    for i in 0..40 {
        let (status, _) = post(&srv, "/stream/cpu/data", "text/plain", &format!("a={i}")).await;
        assert_eq!(status, 204);
    }
    let burst = began.elapsed().as_secs_f64();
    // Let the last frame of the burst out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let frames = hub.stats().frames_published - before;
    let allowed = (burst * 4.0).ceil() as u64 + 2;
    assert!(
        (1..=allowed).contains(&frames),
        "40 samples in {burst:.2} s made {frames} frames; the cap allows {allowed}"
    );
    // The viewer sees the newest data: a frame, then quiet again.
    let mut last = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    while let Some(p) = viewer.part_within(Duration::from_millis(800)).await {
        last = p;
    }
    assert_eq!(last.jpeg, hub.latest().unwrap().jpeg().as_ref());
}

#[tokio::test]
async fn bad_samples_get_400_naming_the_field_and_change_nothing() {
    let srv = chart_server("chart#fps=50").await;
    let hub = srv.hub("cpu");
    let (status, _) = post(&srv, "/stream/cpu/data", "text/plain", "good=1").await;
    assert_eq!(status, 204);
    // The empty chart, then the one with the sample (drawing takes a while
    // in a debug build).
    wait_frames(&hub, 2).await;
    let published = hub.stats().frames_published;
    let chart = Chart::of(&hub).expect("a chart stream has a chart");
    assert_eq!(chart.counts(), (1, 1));

    for (content_type, body, says) in [
        (
            "application/json",
            r#"{"load": "high"}"#,
            r#"field "load": "high" is not a number"#,
        ),
        (
            "application/json",
            r#"{"load": 1, "temp": null}"#,
            r#"field "temp""#,
        ),
        (
            "application/json",
            r#"{"load": 1, "t": "now"}"#,
            r#"field "t""#,
        ),
        ("application/json", r#"{}"#, "no values"),
        ("application/json", r#"{"load": 1"#, "bad JSON"),
        (
            "text/plain",
            "load=1\nload=0.5 temp=hot\n",
            r#"line 2: field "temp": "hot" is not a number"#,
        ),
        ("text/plain", "load 1", "is not name=value"),
        ("text/plain", "t=1700000000000 load=1", "milliseconds"),
        // No Content-Type: a body starting with '{' is JSON.
        ("", r#"{"x": true}"#, r#"field "x""#),
    ] {
        let (status, text) = post(&srv, "/stream/cpu/data", content_type, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            text.contains(says),
            "{body}: {text:?} does not say {says:?}"
        );
    }
    // Nothing of a refused body was taken, and no frame was made.
    assert_eq!(chart.counts(), (1, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hub.stats().frames_published, published);

    // Too many series.
    let many: Vec<String> = (0..20).map(|i| format!("s{i}=1")).collect();
    let (status, text) = post(&srv, "/stream/cpu/data", "text/plain", &many.join(" ")).await;
    assert_eq!(status, 400);
    assert!(text.contains("at most 16 series"), "{text}");

    // Unknown stream, a stream that is not a chart, the wrong method.
    let (status, text) = post(&srv, "/stream/nope/data", "text/plain", "a=1").await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = post(&srv, "/stream/cam/data", "text/plain", "a=1").await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("not a chart"), "{text}");
    let res = reqwest::get(srv.url("/stream/cpu/data")).await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn the_rust_api_feeds_a_stream() {
    let srv = TestServer::start(&["graph"], ServerOptions::default()).await;
    let hub = srv.hub("graph");
    let chart = Chart::start(
        &hub,
        ChartOptions {
            width: 320,
            height: 180,
            max_fps: 50.0,
            ..ChartOptions::default()
        },
        srv.token.clone(),
    );
    assert!(Chart::of(&hub).is_some());
    let mut viewer = RawClient::stream(srv.addr, "/stream/graph").await;
    let empty = viewer.part().await;
    let t0 = std::time::SystemTime::now();
    for i in 0..10 {
        chart
            .push_sample(
                Some(t0 + Duration::from_millis(i * 100)),
                &[("sine", (i as f64).sin())],
            )
            .unwrap();
    }
    assert_eq!(
        chart
            .push_sample(None, &[("bad", f64::NAN)])
            .unwrap_err()
            .to_string(),
        "field \"bad\": NaN is not a number"
    );
    // Parts on the wire are the empty chart (perhaps again, by the idle
    // re-send) until the one with data arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let part = loop {
        let part = viewer.part_within(Duration::from_secs(10)).await.unwrap();
        if part.jpeg != empty.jpeg {
            break part;
        }
        assert!(Instant::now() < deadline, "no frame with data");
    };
    assert_eq!(decode(&part.jpeg), (320, 180));
}

/// Writes `text` to the server's standard input.
fn write(p: &mut ServerProcess, text: &str) {
    let stdin = p.child.stdin.as_mut().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
}

#[tokio::test]
async fn stdin_lines_feed_a_chart_stream() {
    let mut p = ServerProcess::start_with_stdin(
        &[
            "--resend-after",
            "0",
            "--stream",
            "cpu=chart:stdin#size=320x180#fps=20",
        ],
        std::process::Stdio::piped(),
    );
    let mut viewer = RawClient::stream(p.addr, "/stream/cpu").await;
    let empty = viewer.part().await;
    assert_eq!(decode(&empty.jpeg), (320, 180));

    // A line may come in pieces; a bad line is skipped, not fatal.
    write(&mut p, "cpu=0.");
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(&mut p, "5 mem=12\ncpu=oops\n");
    let part = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    assert_ne!(part.jpeg, empty.jpeg);
    assert_eq!(decode(&part.jpeg), (320, 180));
    write(&mut p, "cpu=0.7 mem=13\n");
    let next = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    assert_ne!(next.jpeg, part.jpeg);

    // Closing stdin ends that input only: HTTP still feeds the chart.
    drop(p.child.stdin.take());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = reqwest::Client::new()
        .post(format!("http://{}/stream/cpu/data", p.addr))
        .body("cpu=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let last = viewer.part_within(Duration::from_secs(10)).await.unwrap();
    assert_ne!(last.jpeg, next.jpeg);
    assert!(p.child.try_wait().unwrap().is_none(), "the server exited");
}

#[test]
fn two_streams_cannot_both_read_stdin() {
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--stream", "a=chart:stdin", "--stream", "b=stdin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only one stream can read standard input"),
        "{err}"
    );
}

#[tokio::test]
async fn a_sample_from_the_far_future_is_refused_and_the_chart_keeps_drawing() {
    let srv = chart_server("chart#fps=50").await;
    let hub = srv.hub("cpu");
    let chart = Chart::of(&hub).expect("a chart stream has a chart");
    let (status, _) = post(&srv, "/stream/cpu/data", "text/plain", "load=1").await;
    assert_eq!(status, 204);
    wait_frames(&hub, 2).await;
    for (content_type, body) in [
        ("application/json", r#"{"t": 1e10, "load": 5}"#),
        (
            "application/json",
            r#"[{"load": 2}, {"t": 9999999999, "load": 5}]"#,
        ),
        ("text/plain", "t=9999999999 load=5"),
    ] {
        let (status, text) = post(&srv, "/stream/cpu/data", content_type, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            text.contains(r#"field "t""#) && text.contains("300 s"),
            "{body}: {text:?} names neither the field nor the bound"
        );
    }
    assert_eq!(chart.counts(), (1, 1), "a refused body changed the chart");
    // Samples at the server's time still move the chart on.
    let published = hub.stats().frames_published;
    for load in ["load=2", "load=3"] {
        let (status, _) = post(&srv, "/stream/cpu/data", "text/plain", load).await;
        assert_eq!(status, 204);
    }
    assert_eq!(chart.counts(), (1, 3));
    wait_frames(&hub, published + 1).await;
    // A little ahead (a client's clock a few seconds fast) is fine.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 10.0;
    let (status, text) = post(
        &srv,
        "/stream/cpu/data",
        "application/json",
        &format!(r#"{{"t": {soon}, "load": 4}}"#),
    )
    .await;
    assert_eq!(status, 204, "{text}");
}

/// The source state of stream `name` in `/status`: (state, detail).
async fn source_state(addr: std::net::SocketAddr, name: &str) -> (String, String) {
    let status = status_json(addr).await;
    let stream = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name}: {status}"))
        .clone();
    (
        stream["source"]["state"].as_str().unwrap().to_string(),
        stream["source"]["detail"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

#[tokio::test]
async fn status_says_when_no_line_came_on_stdin() {
    let mut p = ServerProcess::start_with_stdin(
        &["--stream", "cpu=chart:stdin"],
        std::process::Stdio::piped(),
    );
    let (state, detail) = source_state(p.addr, "cpu").await;
    assert_eq!(state, "waiting");
    assert!(
        detail.starts_with("no line on standard input yet") && detail.contains("stdbuf"),
        "{detail}"
    );
    write(&mut p, "procs memory\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (state, detail) = source_state(p.addr, "cpu").await;
        if detail.contains("no sample yet") {
            assert_eq!(state, "waiting");
            break;
        }
        assert!(Instant::now() < deadline, "{state} {detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write(&mut p, "cpu=1\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while source_state(p.addr, "cpu").await.0 != "running" {
        assert!(Instant::now() < deadline, "not running after a sample");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The README's `chart:stdin` example, run as written (with the server
/// from this build and on a free port): samples arrive within seconds,
/// not after awk has filled a 4 KB buffer (mawk, Debian's awk, buffers
/// output to a pipe).
#[tokio::test]
async fn the_readme_vmstat_example_shows_samples_within_seconds() {
    if !tool_available("vmstat", "procps") {
        return;
    }
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("vmstat") && l.contains("chart:stdin"))
        .expect("README has a vmstat | … chart:stdin example");
    assert!(
        line.ends_with("mjpeg-server --stream mem=chart:stdin"),
        "{line}"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mjpeg-server"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} --listen 127.0.0.1:0 --resend-after 0"))
        // A process group of its own, so that the whole pipeline can be
        // stopped.
        .process_group(0)
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("serving http://").nth(1) {
            break rest.trim_end_matches('/').parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut state = source_state(addr, "mem").await;
    while state.0 != "running" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = source_state(addr, "mem").await;
    }
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    stop(&mut child);
    assert_eq!(state.0, "running", "no sample within 8 s: {state:?}");
}
