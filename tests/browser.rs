//! End to end in a real browser: the index page, opened in Debian's headless
//! Chromium, shows the demo stream live.
//!
//! The server runs in-process on 127.0.0.1:0; Chromium is driven over the
//! Chrome DevTools Protocol (CDP) on a loopback WebSocket
//! (`tests/chromium/mod.rs`, shared with `tests/player.rs`). Nothing leaves
//! 127.0.0.1: the browser gets no proxy and a host resolver that maps every
//! name to "not found".
//!
//! Without `/usr/bin/chromium` the test is skipped on a developer machine
//! and fails when `CI` is set (CI installs it: `apt-get install chromium`).
//! A screenshot of the page is left in `target/browser-index.png`.
//!
//! A second test does the same for a chart stream: numbers posted to
//! `/stream/cpu/data` show up as a chart in the page's player; its
//! screenshot is `target/browser-chart.png`.
//!
//! A third shows why the server speaks HTTP/2 over TLS: a page with eight
//! `<img>`s of streams plays all eight over HTTPS, where over plain
//! HTTP/1.1 Chromium opens only six connections to the server and the rest
//! wait.
//!
//! Then advanced part headers: a frame pushed, or written to a `watch:`
//! file, is on screen 300 ms after it was published (the control with
//! `?advance_headers=0` still shows the previous frame then, until the
//! idle re-send a second later; screenshots in
//! `target/browser-advance-{push,watch}.png`); a 30 fps stream animates;
//! and an ignored test measures publish-to-display latency with and
//! without them (`docs/benchmarks.md`).
//!
//! The browser tests run one at a time (see [`bounded`]).

mod chromium;
mod common;
mod firefox;

use chromium::*;
use firefox::{Bidi, Firefox, FIREFOX};

use mjpeg_server::frame::{Chroma, Pixels};
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::{Server, ServerOptions, Streams};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_page_shows_the_live_demo_stream_in_chromium() {
    if chromium_or_skip("demo") {
        bounded("demo", run()).await;
    }
}

async fn run() {
    // The real server, in-process, with the built-in demo picture at 10 fps.
    let streams = Streams::new();
    let hub = streams.add("demo").unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        streams.clone(),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let token = server.shutdown_token();
    let _stop_server = token.clone().drop_guard();
    tokio::spawn(server.run());
    SourceSpec::Demo.spawn(
        hub,
        SourceOptions {
            interval: Duration::from_millis(100),
            ..SourceOptions::default()
        },
        token.clone(),
    );
    let index_url = format!("http://{addr}/");

    let (chromium, mut cdp) = open(&index_url).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .unwrap();

    // 1. The player of the demo stream draws the demo's 640×360 (over the
    // WebSocket: the page's origin is the server's).
    let deadline = Instant::now() + Duration::from_secs(10);
    let img = loop {
        let state = cdp
            .eval(
                r#"(() => {
                    const els = [...document.querySelectorAll('mjpeg-stream')]
                        .filter(e => e.getAttribute('src').endsWith('/stream/demo'));
                    const el = els[0];
                    const c = el && el.querySelector('canvas');
                    return {
                        readyState: document.readyState,
                        title: document.title,
                        count: els.length,
                        src: el ? new URL(el.getAttribute('src'), location.href).href : null,
                        transport: el ? el.transport : null,
                        width: c ? c.width : null,
                        height: c ? c.height : null,
                    };
                })()"#,
            )
            .await;
        if state["width"].as_u64().unwrap_or(0) > 0 {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "the demo stream's player drew nothing within 10 s; page state: {state}\n\
             chromium stderr:\n{}",
            chromium.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("img: {img}");
    assert_eq!(img["count"], 1, "one player for the demo stream: {img}");
    assert_eq!(img["transport"], "websocket", "{img}");
    assert_eq!(img["title"], "mjpeg-server", "{img}");
    assert_eq!(img["src"], format!("{index_url}stream/demo"), "{img}");
    assert_eq!(
        (img["width"].as_u64(), img["height"].as_u64()),
        (Some(640), Some(360)),
        "the demo picture is 640×360: {img}"
    );

    // 2. The picture is live: it is not blank, and it changes.
    let first = sample(&mut cdp).await;
    let mut hashes = vec![first.hash];
    let until = Instant::now() + Duration::from_secs(2);
    let mut last = first.clone();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = sample(&mut cdp).await;
        if !hashes.contains(&last.hash) {
            hashes.push(last.hash);
        }
    }
    eprintln!("first sample: {first:?}");
    eprintln!("last sample:  {last:?}");
    eprintln!("{} distinct pictures seen in ~2 s", hashes.len());
    for s in [&first, &last] {
        assert_eq!((s.width, s.height), (640, 360), "{s:?}");
        assert!(
            s.variance > 100.0 && (2.0..253.0).contains(&s.mean),
            "the picture looks blank (luma mean {:.1}, variance {:.1}): {s:?}",
            s.mean,
            s.variance
        );
    }
    assert_ne!(
        first.hash, last.hash,
        "the picture did not change in ~2 s: the stream is not live in the browser"
    );

    // The server sees the page as one viewer of the stream.
    let status: Value = serde_json::from_str(
        &http
            .get(format!("{index_url}status"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    eprintln!("/status: {status}");

    // 3. A screenshot for humans.
    let shot = cdp
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = screenshot_path();
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());

    let noise: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| {
            matches!(
                e["method"].as_str(),
                Some("Runtime.exceptionThrown" | "Runtime.consoleAPICalled")
            )
        })
        .collect();
    assert!(noise.is_empty(), "the page logged or threw: {noise:?}");

    drop(cdp);
    drop(chromium);
}

/// Statistics of the picture the demo's player (`<mjpeg-stream>`) shows
/// now, drawn into a canvas.
#[derive(Debug, Clone)]
struct Sample {
    width: u64,
    height: u64,
    hash: u64,
    mean: f64,
    variance: f64,
}

async fn sample(cdp: &mut Cdp) -> Sample {
    sample_of(cdp, "/stream/demo").await
}

/// Like [`sample`], for the player whose URL ends with `suffix`.
async fn sample_of(cdp: &mut Cdp, suffix: &str) -> Sample {
    let v = cdp
        .eval(
            &r#"(() => {
                const el = [...document.querySelectorAll('mjpeg-stream')]
                    .find(e => e.getAttribute('src').endsWith('SUFFIX'));
                const img = el.querySelector('canvas, img');
                const c = document.createElement('canvas');
                c.width = img.naturalWidth || img.width;
                c.height = img.naturalHeight || img.height;
                const ctx = c.getContext('2d', { willReadFrequently: true });
                ctx.drawImage(img, 0, 0);
                const d = ctx.getImageData(0, 0, c.width, c.height).data;
                let hash = 0x811c9dc5, sum = 0, sumSq = 0;
                for (let i = 0; i < d.length; i += 4) {
                    hash = Math.imul(hash ^ d[i], 0x01000193);
                    hash = Math.imul(hash ^ d[i + 1], 0x01000193);
                    hash = Math.imul(hash ^ d[i + 2], 0x01000193);
                    const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
                    sum += y;
                    sumSq += y * y;
                }
                const n = d.length / 4;
                const mean = sum / n;
                return { width: c.width, height: c.height, hash: hash >>> 0,
                         mean, variance: sumSq / n - mean * mean };
            })()"#
                .replace("SUFFIX", suffix),
        )
        .await;
    Sample {
        width: v["width"].as_u64().unwrap(),
        height: v["height"].as_u64().unwrap(),
        hash: v["hash"].as_u64().unwrap(),
        mean: v["mean"].as_f64().unwrap(),
        variance: v["variance"].as_f64().unwrap(),
    }
}

/// `target/browser-index.png`, in whatever target directory cargo uses.
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-index.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_page_shows_a_live_chart_in_chromium() {
    if chromium_or_skip("chart") {
        bounded("chart", run_chart()).await;
    }
}

/// Samples for the chart at times `from..to` (seconds before now): two
/// wavy series, one sample every 0.25 s, as one JSON batch.
fn chart_batch(from: f64, to: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut items = Vec::new();
    let mut s = from;
    while s <= to {
        let t = now - s;
        items.push(json!({
            "t": t,
            "load": 0.5 + 0.3 * (t * 0.4).sin() + 0.05 * (t * 3.0).sin(),
            "temp": 0.4 + 0.2 * (t * 0.1).cos(),
        }));
        s += 0.25;
    }
    items.reverse();
    Value::Array(items).to_string()
}

async fn run_chart() {
    // The real server with one chart stream, 800×450, as `--stream
    // cpu=chart#title=…` would make it.
    let streams = Streams::new();
    let hub = streams.add("cpu").unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        streams.clone(),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let token = server.shutdown_token();
    let _stop_server = token.clone().drop_guard();
    tokio::spawn(server.run());
    let spec: SourceSpec = "chart#title=CPU load (browser test)#ymin=0#fps=20"
        .parse()
        .unwrap();
    spec.spawn(hub, SourceOptions::default(), token.clone());
    let index_url = format!("http://{addr}/");
    let data_url = format!("{index_url}stream/cpu/data");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .unwrap();
    let res = http
        .post(&data_url)
        .header("content-type", "application/json")
        .body(chart_batch(30.0, 60.0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());

    let (chromium, mut cdp) = open(&index_url).await;

    // 1. The chart's player draws the chart's 800×450.
    let deadline = Instant::now() + Duration::from_secs(10);
    let img = loop {
        let state = cdp
            .eval(
                r#"(() => {
                    const el = [...document.querySelectorAll('mjpeg-stream')]
                        .find(e => e.getAttribute('src').endsWith('/stream/cpu'));
                    const c = el && el.querySelector('canvas');
                    return {
                        src: el ? el.getAttribute('src') : null,
                        width: c ? c.width : null,
                        height: c ? c.height : null,
                    };
                })()"#,
            )
            .await;
        if state["width"].as_u64().unwrap_or(0) > 0 {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "the chart's player drew nothing within 10 s: {state}\nchromium stderr:\n{}",
            chromium.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("chart img: {img}");
    assert_eq!(
        (img["width"].as_u64(), img["height"].as_u64()),
        (Some(800), Some(450)),
        "{img}"
    );

    // 2. It is a picture, not a blank: a chart has a background, lines
    // and text, so its luma varies.
    let first = sample_of(&mut cdp, "/stream/cpu").await;
    eprintln!("chart sample: {first:?}");
    assert_eq!((first.width, first.height), (800, 450), "{first:?}");
    assert!(
        first.variance > 50.0 && (2.0..253.0).contains(&first.mean),
        "the chart looks blank: {first:?}"
    );

    // 3. New samples change the picture in the browser.
    let res = http
        .post(&data_url)
        .header("content-type", "application/json")
        .body(chart_batch(0.0, 29.9))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = sample_of(&mut cdp, "/stream/cpu").await;
        if s.hash != first.hash {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the chart did not change in the browser within 10 s of new data"
        );
    };
    assert!(last.variance > 50.0, "{last:?}");
    // Give Chrome a moment to paint the newest frame before the shot.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 4. A screenshot for humans.
    let shot = cdp
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = screenshot_path().with_file_name("browser-chart.png");
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());

    let noise: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| {
            matches!(
                e["method"].as_str(),
                Some("Runtime.exceptionThrown" | "Runtime.consoleAPICalled")
            )
        })
        .collect();
    assert!(noise.is_empty(), "the page logged or threw: {noise:?}");
    drop(cdp);
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_streams_play_at_once_over_http2_but_not_over_http1() {
    if chromium_or_skip("HTTP/2") {
        bounded("HTTP/2", run_many_streams()).await;
    }
}

/// How many of the streams have a viewer, and how many of those viewers
/// have had at least `frames` frames, after the page has had `wait`.
async fn viewers(streams: &Streams, wait: Duration, frames: u64) -> (usize, usize) {
    tokio::time::sleep(wait).await;
    let hubs = streams.all();
    let watched = hubs.iter().filter(|h| h.stats().clients > 0).count();
    let playing = hubs
        .iter()
        .filter(|h| h.stats().viewers.iter().any(|c| c.frames >= frames))
        .count();
    (watched, playing)
}

async fn run_many_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::Cert::new().install(dir.path());
    let tls = mjpeg_server::tls::Tls::load(&cert, &key).unwrap();

    // Eight demo streams, once over HTTPS and once over plain HTTP.
    for secure in [true, false] {
        let streams = Streams::new();
        let opts = ServerOptions {
            tls: secure.then(|| tls.clone()),
            ..ServerOptions::default()
        };
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), streams.clone(), opts)
            .await
            .unwrap();
        let addr = server.local_addr();
        let token = server.shutdown_token();
        let _stop_server = token.clone().drop_guard();
        for i in 1..=8 {
            let hub = streams.add(&format!("s{i}")).unwrap();
            SourceSpec::Demo.spawn(hub, SourceOptions::default(), token.clone());
        }
        tokio::spawn(server.run());
        let scheme = if secure { "https" } else { "http" };
        // A page of eight plain <img>s (the index page plays them all
        // over one WebSocket: tests/player.rs).
        let url = format!("{scheme}://{addr}/page");
        let (chromium, mut cdp) = open_with(&url, &["--ignore-certificate-errors"]).await;
        wait_loaded(&mut cdp, &url).await;
        let imgs: String = (1..=8)
            .map(|i| format!(r#"<img src="/stream/s{i}" width="160">"#))
            .collect();
        cdp.eval(&format!("document.body.innerHTML = '{imgs}'; true"))
            .await;
        if secure {
            // Every stream gets a viewer, and every viewer frames.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (watched, playing) = viewers(&streams, Duration::from_millis(250), 5).await;
                if (watched, playing) == (8, 8) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "over HTTP/2 only {watched} of 8 streams were watched, {playing} playing\nchromium stderr:\n{}",
                    chromium.stderr_tail()
                );
            }
        } else {
            // The control: over HTTP/1.1 the same page plays at most six.
            // (If Chromium ever opened more, this test would no longer
            // show anything, and should say so.)
            let (watched, _) = viewers(&streams, Duration::from_secs(4), 0).await;
            assert!(
                (1..8).contains(&watched),
                "over HTTP/1.1, {watched} of 8 streams had a viewer"
            );
            eprintln!("over HTTP/1.1 Chromium watched {watched} of 8 streams");
        }
        drop(chromium);
    }
}

// Each frame at once. Chrome draws part N of a multipart image only once
// the delimiter and header block of part N+1 have arrived (crbug 527446).
// A browser's image load gets those right after each frame (advanced
// headers); `?advance_headers=0` gets the plain parts, where the frame only
// shows when the next part begins: the idle re-send, a second later.

/// Colours of the test frames: distinct enough that JPEG's colour
/// subsampling cannot confuse them.
const PALETTE: [[u8; 3]; 6] = [
    [230, 20, 20],  // red
    [20, 20, 230],  // blue
    [20, 200, 20],  // green
    [240, 240, 20], // yellow
    [20, 220, 220], // cyan
    [230, 20, 230], // magenta
];
const RED: usize = 0;
const BLUE: usize = 1;
const NAMES: [&str; 6] = ["red", "blue", "green", "yellow", "cyan", "magenta"];

/// Size of the test frames and of their `<img>`s on the page.
const FRAME_W: u16 = 160;
const FRAME_H: u16 = 120;

/// A JPEG of one colour of [`PALETTE`].
fn solid_jpeg(colour: usize) -> Vec<u8> {
    let pixels: Vec<u8> = PALETTE[colour]
        .iter()
        .copied()
        .cycle()
        .take(usize::from(FRAME_W) * usize::from(FRAME_H) * 3)
        .collect();
    mjpeg_server::frame::encode_jpeg(&pixels, FRAME_W, FRAME_H, Pixels::Rgb, 90, Chroma::Full)
        .unwrap()
}

/// The colour of [`PALETTE`] nearest to `rgb`, if any is near (a blank or
/// half-drawn picture is none).
fn colour_of(rgb: &Value) -> Option<usize> {
    let rgb: Vec<i64> = rgb.as_array()?.iter().filter_map(Value::as_i64).collect();
    let (best, dist) = PALETTE
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let d: i64 = p
                .iter()
                .zip(&rgb)
                .map(|(&a, &b)| (i64::from(a) - b).pow(2))
                .sum();
            (i, d)
        })
        .min_by_key(|&(_, d)| d)?;
    (rgb.len() == 3 && dist < 3 * 60 * 60).then_some(best)
}

fn name(colour: Option<usize>) -> &'static str {
    colour.map_or("nothing", |c| NAMES[c])
}

/// A browser showing a page, driven over its remote protocol.
enum Page {
    Chromium(Chromium, Cdp),
    Firefox(Firefox, Bidi),
}

impl Page {
    /// Evaluates `expr` in the page and returns its value as JSON
    /// (promises awaited).
    async fn eval(&mut self, expr: &str) -> Value {
        match self {
            Page::Chromium(_, cdp) => cdp.eval(expr).await,
            Page::Firefox(_, bidi) => bidi.eval(expr).await,
        }
    }

    /// A PNG of the top-left `width`×`height` of the page.
    async fn screenshot(&mut self, width: f64, height: f64) -> Vec<u8> {
        let data = match self {
            Page::Chromium(_, cdp) => {
                let clip = json!({ "x": 0, "y": 0, "width": width, "height": height, "scale": 1 });
                cdp.call(
                    "Page.captureScreenshot",
                    json!({ "format": "png", "clip": clip }),
                )
                .await
            }
            Page::Firefox(_, bidi) => {
                let clip =
                    json!({ "type": "box", "x": 0, "y": 0, "width": width, "height": height });
                let context = bidi.context.clone();
                bidi.call(
                    "browsingContext.captureScreenshot",
                    json!({ "context": context, "clip": clip }),
                )
                .await
            }
        };
        base64_decode(data["data"].as_str().expect("screenshot data"))
    }

    fn stderr_tail(&self) -> String {
        match self {
            Page::Chromium(c, _) => c.stderr_tail(),
            Page::Firefox(f, _) => f.stderr_tail(),
        }
    }
}

/// A server with one stream `s` (default options: the idle re-send after
/// 1 s), and a browser showing a page of its origin, so that the page may
/// read the `<img>`s' pixels.
struct Bench {
    addr: std::net::SocketAddr,
    hub: mjpeg_server::Hub,
    token: tokio_util::sync::CancellationToken,
    page: Page,
    /// How many `<img>`s the page shows.
    imgs: usize,
}

impl Bench {
    /// With Chromium.
    async fn start() -> Bench {
        Bench::start_in(false).await
    }

    /// With Firefox if `firefox`, else Chromium.
    async fn start_in(firefox: bool) -> Bench {
        let streams = Streams::new();
        let hub = streams.add("s").unwrap();
        let server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            streams,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let token = server.shutdown_token();
        tokio::spawn(server.run());
        // Any page of the server's origin will do (the test replaces its
        // content): a plain-text 404, which both browsers show as an
        // ordinary document.
        let url = format!("http://{addr}/page");
        let mut page = if firefox {
            let (firefox, bidi) = firefox::open(&url).await;
            Page::Firefox(firefox, bidi)
        } else {
            let (chromium, cdp) = open(&url).await;
            Page::Chromium(chromium, cdp)
        };
        // The tab may still be on its first, blank document.
        let deadline = Instant::now() + STEP;
        loop {
            let state = page
                .eval("[location.href, document.readyState].join(' ')")
                .await;
            if state.as_str() == Some(&format!("{url} complete")) {
                break;
            }
            assert!(Instant::now() < deadline, "{url} did not load: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Bench {
            addr,
            hub,
            token,
            page,
            imgs: 0,
        }
    }

    /// Replaces the page with one `<img>` per URL, one above the other,
    /// and defines `colours()`: the colour each of them shows now.
    async fn show(&mut self, urls: &[&str]) {
        self.imgs = urls.len();
        let imgs: String = urls
            .iter()
            .map(|u| {
                format!(
                    r#"<img src="{u}" width="{FRAME_W}" height="{FRAME_H}" style="display:block">"#
                )
            })
            .collect();
        self.page
            .eval(&format!(
                r#"(() => {{
                    document.body.style.margin = '0';
                    document.body.innerHTML = '{imgs}';
                    const c = document.createElement('canvas');
                    c.width = c.height = 1;
                    const x = c.getContext('2d', {{ willReadFrequently: true }});
                    window.colours = () => [...document.images].map(img => {{
                        if (!img.naturalWidth) return null;
                        x.clearRect(0, 0, 1, 1);
                        x.drawImage(img, img.naturalWidth / 2, img.naturalHeight / 2, 1, 1, 0, 0, 1, 1);
                        return [...x.getImageData(0, 0, 1, 1).data.slice(0, 3)];
                    }});
                    return true;
                }})()"#
            ))
            .await;
    }

    /// The colour each `<img>` shows, read from its pixels: in Chromium
    /// by drawing it into a canvas, in Firefox from a screenshot (Firefox
    /// draws the first part of a multipart image into a canvas, whichever
    /// part it shows).
    async fn colours(&mut self) -> Vec<Option<usize>> {
        if let Page::Firefox(..) = self.page {
            return self.screenshot(self.imgs, "firefox").await;
        }
        let v = self.page.eval("colours()").await;
        v.as_array().unwrap().iter().map(colour_of).collect()
    }

    /// Waits until every `<img>` shows `colour`.
    async fn until_all(&mut self, colour: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.colours().await;
            if now.iter().all(|&c| c == Some(colour)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the <img>s show {:?}, not all {} within {within:?}\nchromium stderr:\n{}",
                now.iter().map(|&c| name(c)).collect::<Vec<_>>(),
                NAMES[colour],
                self.page.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A screenshot of the `<img>`s, `n` of them, and the colour at the
    /// centre of each; the PNG is saved as `target/browser-FILE.png`.
    async fn screenshot(&mut self, n: usize, file: &str) -> Vec<Option<usize>> {
        let h = f64::from(FRAME_H) * n as f64;
        let png = self.page.screenshot(f64::from(FRAME_W), h).await;
        let path = screenshot_path().with_file_name(format!("browser-{file}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .expect("the screenshot is a PNG")
            .to_rgb8();
        (0..n)
            .map(|i| {
                let y = u32::from(FRAME_H) * i as u32 + u32::from(FRAME_H) / 2;
                let y = y.min(img.height() - 1);
                let p = img
                    .get_pixel(u32::from(FRAME_W / 2).min(img.width() - 1), y)
                    .0;
                colour_of(&json!(p))
            })
            .collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// How a test's stream gets its frames.
enum Feed {
    /// `PUT /stream/s` of each frame.
    Push(reqwest::Client),
    /// `watch:` of a file that is rewritten (a new file renamed over it).
    Watch(tempfile::TempDir),
}

impl Feed {
    /// Publishes a frame of `colour` and returns once the stream has it.
    async fn publish(&self, bench: &Bench, colour: usize) {
        let before = bench.hub.latest().map_or(0, |p| p.seq());
        match self {
            Feed::Push(http) => {
                let res = http
                    .put(format!("http://{}/stream/s", bench.addr))
                    .body(solid_jpeg(colour))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
            }
            Feed::Watch(dir) => {
                let tmp = dir.path().join(".graph.jpg.tmp");
                std::fs::write(&tmp, solid_jpeg(colour)).unwrap();
                std::fs::rename(&tmp, dir.path().join("graph.jpg")).unwrap();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while bench.hub.latest().map_or(0, |p| p.seq()) == before {
            assert!(
                Instant::now() < deadline,
                "the stream did not get the frame"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Frame A (red), then frame B (blue): 300 ms after B was published, the
/// page's `<img>` (advanced headers, as for every browser) shows B; the
/// control with `?advance_headers=0` still shows A, until the re-send.
async fn run_each_frame_at_once(watch: bool) {
    let what = if watch { "watch" } else { "push" };
    let mut bench = Bench::start().await;
    let feed = if watch {
        let dir = tempfile::tempdir().unwrap();
        let spec: SourceSpec = format!("watch:{}", dir.path().join("graph.jpg").display())
            .parse()
            .unwrap();
        spec.spawn(
            bench.hub.clone(),
            SourceOptions::default(),
            bench.token.clone(),
        );
        Feed::Watch(dir)
    } else {
        bench.hub.set_accepts_push(true);
        Feed::Push(
            reqwest::Client::builder()
                .no_proxy()
                .timeout(STEP)
                .build()
                .unwrap(),
        )
    };
    feed.publish(&bench, RED).await;
    bench
        .show(&["/stream/s", "/stream/s?advance_headers=0"])
        .await;
    // The control shows A only once the server re-sends it (1 s).
    bench.until_all(RED, Duration::from_secs(10)).await;

    feed.publish(&bench, BLUE).await;
    let published = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shot = bench.screenshot(2, &format!("advance-{what}")).await;
    let late = published.elapsed();
    eprintln!(
        "{what}: {late:?} after B: advanced shows {}, plain shows {}",
        name(shot[0]),
        name(shot[1])
    );
    assert_eq!(
        shot[0],
        Some(BLUE),
        "{what}: 300 ms after blue was published the <img> showed {}",
        name(shot[0])
    );
    assert!(
        late < Duration::from_millis(900),
        "the screenshot took {late:?}"
    );
    assert_eq!(
        shot[1],
        Some(RED),
        "{what}: the control (?advance_headers=0) showed {} 300 ms after blue: \
         it should show the last frame only at the re-send",
        name(shot[1])
    );
    // And the control does catch up, at the re-send.
    bench.until_all(BLUE, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_frame_shows_at_once_in_chromium() {
    if chromium_or_skip("advance-push") {
        bounded("advance-push", run_each_frame_at_once(false)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_watched_file_shows_at_once_in_chromium() {
    if chromium_or_skip("advance-watch") {
        bounded("advance-watch", run_each_frame_at_once(true)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_img_animates_a_30_fps_stream_with_advanced_headers() {
    if chromium_or_skip("30 fps") {
        bounded("30 fps", run_30_fps()).await;
    }
}

async fn run_30_fps() {
    let mut bench = Bench::start().await;
    let frames: Vec<Vec<u8>> = (0..PALETTE.len()).map(solid_jpeg).collect();
    let publisher = {
        let hub = bench.hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(33_333));
            for i in 0.. {
                tick.tick().await;
                hub.publish_jpeg(frames[i % frames.len()].clone()).unwrap();
            }
        })
    };
    bench.show(&["/stream/s"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bench.colours().await[0].is_none() {
        assert!(Instant::now() < deadline, "the <img> did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frames_before = bench.hub.stats().viewers[0].frames;
    // Forty looks, 50 ms apart, inside the page.
    let seen = bench
        .page
        .eval(
            r#"new Promise(done => {
                const seen = [];
                const look = () => {
                    seen.push(colours()[0]);
                    if (seen.length < 40) setTimeout(look, 50); else done(seen);
                };
                look();
            })"#,
        )
        .await;
    let frames_sent = bench.hub.stats().viewers[0].frames - frames_before;
    publisher.abort();
    let seen: Vec<Option<usize>> = seen.as_array().unwrap().iter().map(colour_of).collect();
    let changes = seen.windows(2).filter(|w| w[0] != w[1]).count();
    let mut distinct: Vec<usize> = seen.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    eprintln!(
        "30 fps: {frames_sent} frames sent in ~2 s; the <img> changed {changes} times in 40 looks, \
         {} colours",
        distinct.len()
    );
    assert!(seen.iter().all(Option::is_some), "blank looks: {seen:?}");
    assert!(
        changes >= 10 && distinct.len() >= 4,
        "the <img> hardly animates: {:?}",
        seen.iter().map(|&c| name(c)).collect::<Vec<_>>()
    );
    assert!(
        frames_sent >= 20,
        "the server sent {frames_sent} frames in ~2 s"
    );
}

/// Publish-to-display latency of an `<img>` in Chromium, with and without
/// advanced headers, for a source that publishes one frame every 2 s.
/// Prints the figures; no assertion on them (timings are not a CI
/// pass/fail).
///
/// `cargo test --test browser -- --ignored --nocapture img_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes about 25 s; run it by name"]
async fn img_latency_with_and_without_advanced_headers() {
    if chromium_or_skip("latency") {
        measure_latency(false).await;
    }
}

/// The same in Firefox, where it is installed (`apt-get install
/// firefox-esr`); skipped where it is not, CI included.
///
/// `cargo test --test browser -- --ignored --nocapture firefox_img_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that takes about 25 s; run it by name"]
async fn firefox_img_latency_with_and_without_advanced_headers() {
    if Path::new(FIREFOX).exists() {
        measure_latency(true).await;
    } else {
        eprintln!("skipping: {FIREFOX} not found (apt-get install firefox-esr)");
    }
}

async fn measure_latency(firefox: bool) {
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(120), run_latency(firefox))
        .await
        .expect("the latency measurement did not finish in 120 s");
    eprintln!("latency measurement took {:.1?}", started.elapsed());
}

async fn run_latency(firefox: bool) {
    const FRAMES: usize = 10;
    const LABELS: [&str; 2] = [
        "advanced headers (Sec-Fetch-Dest: image)",
        "?advance_headers=0",
    ];
    let mut bench = Bench::start_in(firefox).await;
    bench.hub.publish_jpeg(solid_jpeg(0)).unwrap();
    bench
        .show(&["/stream/s", "/stream/s?advance_headers=0"])
        .await;
    bench.until_all(0, Duration::from_secs(10)).await;
    // Per <img>: each frame's latency in ms, or none if it never showed.
    let mut latencies: [Vec<Option<f64>>; 2] = Default::default();
    if firefox {
        // Firefox shows no new frame through a canvas, so the page is
        // looked at by screenshots, as fast as they come; a frame's time is
        // when the first screenshot showing it came back (an upper bound).
        for i in 1..=FRAMES {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let colour = i % PALETTE.len();
            bench.hub.publish_jpeg(solid_jpeg(colour)).unwrap();
            let published = Instant::now();
            let mut seen = [None; 2];
            while seen.iter().any(Option::is_none)
                && published.elapsed() < Duration::from_millis(1900)
            {
                let now = bench.colours().await;
                let at = published.elapsed().as_secs_f64() * 1000.0;
                for (s, c) in seen.iter_mut().zip(now) {
                    if s.is_none() && c == Some(colour) {
                        *s = Some(at);
                    }
                }
            }
            for (l, s) in latencies.iter_mut().zip(seen) {
                l.push(s);
            }
        }
    } else {
        // The page looks at both <img>s every 4 ms and logs each change
        // with the wall clock, which is the clock `published` reads too.
        bench
            .page
            .eval(
                r#"(() => {
                    window.changes = [[], []];
                    const last = [null, null];
                    const look = () => {
                        const now = performance.timeOrigin + performance.now();
                        colours().forEach((c, i) => {
                            const key = c && c.join();
                            if (key !== last[i]) { last[i] = key; changes[i].push([now, c]); }
                        });
                        setTimeout(look, 4);
                    };
                    look();
                    return true;
                })()"#,
            )
            .await;
        let mut published = Vec::new();
        for i in 1..=FRAMES {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let colour = i % PALETTE.len();
            bench.hub.publish_jpeg(solid_jpeg(colour)).unwrap();
            let at = bench.hub.latest().unwrap().published();
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                * 1000.0;
            published.push((colour, ms));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let changes = bench.page.eval("changes").await;
        for (i, l) in latencies.iter_mut().enumerate() {
            let log: Vec<(f64, Option<usize>)> = changes[i]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c[0].as_f64().unwrap(), colour_of(&c[1])))
                .collect();
            *l = published
                .iter()
                .map(|&(colour, at)| {
                    log.iter()
                        .find(|&&(t, c)| t >= at && c == Some(colour))
                        .map(|&(t, _)| t - at)
                })
                .collect();
        }
    }
    for (label, l) in LABELS.iter().zip(latencies) {
        let mut lat: Vec<f64> = l.iter().flatten().copied().collect();
        let missed = l.len() - lat.len();
        lat.sort_by(f64::total_cmp);
        let median = lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN);
        eprintln!(
            "{} <img> with {label}: {} frames, publish to display median {median:.0} ms, \
             min {:.0} ms, max {:.0} ms{}",
            if firefox { "Firefox" } else { "Chromium" },
            lat.len(),
            lat.first().copied().unwrap_or(f64::NAN),
            lat.last().copied().unwrap_or(f64::NAN),
            if missed > 0 {
                format!(", {missed} not shown within 1.9 s")
            } else {
                String::new()
            }
        );
    }
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8hIQ=="), b"hello!!");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

#[test]
fn devtools_line_parses() {
    assert_eq!(
        devtools_port("DevTools listening on ws://127.0.0.1:41235/devtools/browser/0a-1b"),
        Some(41235)
    );
    assert_eq!(devtools_port("[1:2:ERROR:foo.cc] DevTools"), None);
}
