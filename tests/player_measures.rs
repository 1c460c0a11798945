//! Measurements of the browser player in headless Chromium, against the
//! real server on 127.0.0.1, with what they must show:
//!
//! - For a source that publishes once every 2 s, a player shows each frame
//!   sooner than an `<img>` that Chromium shows a frame late (plain parts);
//!   the figures of all three views are printed for docs/benchmarks.md.
//! - Eight players of 640×480 streams at 30 fps for a minute leave the
//!   page's JS heap and Chromium's memory where they were: decoded frames
//!   are freed as they are replaced, and nothing queues.
//!
//! The behaviours are `tests/player.rs`.

mod chromium;
mod common;
mod player_page;

use chromium::{bounded, bounded_by, chromium_or_skip, Cdp, Chromium};
use common::{corpus, tagged, TestServer};
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use player_page::*;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_players_for_a_minute_do_not_grow_the_browsers_memory() {
    if chromium_or_skip("memory") {
        bounded_by("memory", Duration::from_secs(120), run_memory()).await;
    }
}

/// Resident memory of every process in the process group `group`, in
/// bytes (Chromium's browser, renderer and helper processes).
fn group_rss(group: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(2) != Some(&group.to_string()) {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            total += kb * 1024;
        }
    }
    total
}

/// The page's JavaScript heap after a full collection, and the browser's
/// resident memory then.
async fn memory(cdp: &mut Cdp, chromium: &Chromium) -> (u64, u64) {
    cdp.call("HeapProfiler.collectGarbage", serde_json::json!({}))
        .await;
    let heap = cdp
        .call("Runtime.getHeapUsage", serde_json::json!({}))
        .await;
    let used = heap["usedSize"].as_f64().unwrap() as u64;
    (used, group_rss(chromium.pid()))
}

async fn run_memory() {
    const STREAMS: usize = 8;
    const MINUTE: Duration = Duration::from_secs(60);
    let names: Vec<String> = (0..STREAMS).map(|i| format!("m{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = TestServer::start(&names, ServerOptions::default()).await;
    // 8 streams of 640×480 at 30 fps, every frame new.
    let base = corpus("jpeg_50k.jpg");
    for name in &names {
        let hub = server.hub(name);
        let (stop, base) = (server.token.clone(), base.clone());
        tokio::spawn(async move {
            for n in 0u64.. {
                let _ = hub.publish_jpeg(tagged(&base, &format!("f{n}")));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(33)) => {}
                }
            }
        });
    }
    let (chromium, mut cdp) = page(&server.url("/")).await;
    load_player(&mut cdp, server.addr).await;
    // Small enough that all eight are in view (out of view, a player
    // unsubscribes).
    let html: String = names
        .iter()
        .map(|n| format!(r#"<mjpeg-stream src="/stream/{n}" style="{TILE}"></mjpeg-stream>"#))
        .collect();
    set_body(&mut cdp, &html).await;
    // Warm up: the first frames allocate the canvases and the decoders.
    until_players(
        &mut cdp,
        Duration::from_secs(10),
        "the players playing",
        |ps| ps.len() == STREAMS && ps.iter().all(|p| p["frames"].as_u64() >= Some(30)),
    )
    .await;
    let shown = |ps: &[Value]| {
        ps.iter()
            .map(|p| p["frames"].as_u64().unwrap())
            .sum::<u64>()
    };
    let (heap0, rss0) = memory(&mut cdp, &chromium).await;
    let frames0 = shown(&players(&mut cdp).await);
    tokio::time::sleep(MINUTE).await;
    let (heap1, rss1) = memory(&mut cdp, &chromium).await;
    let frames1 = shown(&players(&mut cdp).await);
    let shown = frames1 - frames0;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "{shown} frames of 640×480 (50 kB JPEG, 1.2 MiB decoded) shown by {STREAMS} players in {MINUTE:?}: \
         JS heap {:.1} -> {:.1} MiB, Chromium RSS {:.1} -> {:.1} MiB",
        mib(heap0),
        mib(heap1),
        mib(rss0),
        mib(rss1)
    );
    // Enough frames went through that keeping any of them would show (a
    // thousand decoded frames are 1.2 GiB, their JPEGs 50 MB), even if a
    // busy machine makes the players skip most of them.
    assert!(shown >= 2000, "only {shown} frames shown in {MINUTE:?}");
    assert!(
        heap1 < heap0 + (2 << 20),
        "the JS heap grew from {heap0} to {heap1} bytes"
    );
    assert!(
        rss1 < rss0 + (64 << 20),
        "Chromium's memory grew from {:.1} to {:.1} MiB over {shown} frames",
        mib(rss0),
        mib(rss1)
    );
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_shows_a_slow_streams_frames_sooner_than_an_img() {
    if chromium_or_skip("player latency") {
        bounded("player latency", run_latency()).await;
    }
}

/// A 160×120 JPEG, all red or all blue.
fn red_or_blue(red: bool) -> Vec<u8> {
    let rgb: [u8; 3] = if red { [230, 20, 20] } else { [20, 20, 230] };
    let pixels: Vec<u8> = rgb.iter().copied().cycle().take(160 * 120 * 3).collect();
    mjpeg_server::frame::encode_jpeg(
        &pixels,
        160,
        120,
        mjpeg_server::frame::Pixels::Rgb,
        90,
        mjpeg_server::frame::Chroma::Full,
    )
    .unwrap()
}

/// Publish-to-display latency, for a source that publishes once every
/// 2 s, of three views of one stream side by side on one page: a player;
/// an `<img>` with plain parts (`?advance_headers=0`), which Chromium shows
/// one frame late, when the next part begins (crbug 527446); and an
/// `<img>` as browsers get it from this server (the next part's headers
/// sent after each frame, which makes Chromium show it at once). Frames
/// alternate red and blue; the page looks at the centre pixel of each
/// every 4 ms, logging each change by the wall clock, which the server's
/// publication time is read by too.
///
/// The player's median must beat the plain `<img>`'s; the figures of all
/// three are printed (`--nocapture`) for docs/benchmarks.md.
async fn run_latency() {
    const FRAMES: usize = 6;
    const EVERY: Duration = Duration::from_secs(2);
    // No re-sends of an idle stream's frame: the plain <img> then shows
    // each frame when the next one begins, 2 s late, as Chromium does with
    // servers that do not send the next part's headers at once.
    let options = ServerOptions {
        http: HttpOptions {
            resend_after: None,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["s"], options).await;
    let hub = server.hub("s");
    hub.publish_jpeg(red_or_blue(false)).unwrap();
    let (chromium, mut cdp) = page(&server.url("/")).await;
    load_player(&mut cdp, server.addr).await;
    set_body(
        &mut cdp,
        &format!(
            r#"<img src="/stream/s?advance_headers=0" style="{TILE}"><img src="/stream/s" style="{TILE}"><mjpeg-stream src="/stream/s" style="{TILE}"></mjpeg-stream>"#
        ),
    )
    .await;
    until_players(
        &mut cdp,
        Duration::from_secs(5),
        "the player playing",
        |ps| ps[0]["frames"].as_u64() >= Some(1),
    )
    .await;
    cdp.eval(
        r#"(() => {
            window.changes = [[], [], []];
            const last = [null, null, null];
            const c = document.createElement('canvas');
            c.width = c.height = 1;
            const x = c.getContext('2d', { willReadFrequently: true });
            const look = () => {
                const now = performance.timeOrigin + performance.now();
                const els = [...document.querySelectorAll('body > img'), document.querySelector('mjpeg-stream canvas')];
                els.forEach((el, i) => {
                    const w = el && (el.naturalWidth || el.width), h = el && (el.naturalHeight || el.height);
                    if (!w) return;
                    x.clearRect(0, 0, 1, 1);
                    x.drawImage(el, w / 2, h / 2, 1, 1, 0, 0, 1, 1);
                    const d = x.getImageData(0, 0, 1, 1).data;
                    const k = d[0] > d[2] ? 'red' : 'blue';
                    if (k !== last[i]) { last[i] = k; changes[i].push([now, k]); }
                });
                setTimeout(look, 4);
            };
            look();
            return true;
        })()"#,
    )
    .await;
    let mut published = Vec::new();
    for i in 0..FRAMES {
        tokio::time::sleep(EVERY).await;
        let red = i % 2 == 0;
        hub.publish_jpeg(red_or_blue(red)).unwrap();
        let at = hub.latest().unwrap().published();
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        published.push((if red { "red" } else { "blue" }, ms));
    }
    // The plain <img> shows the last frame when the next part begins: one
    // more frame, as long after, is what shows it.
    tokio::time::sleep(EVERY).await;
    hub.publish_jpeg(red_or_blue(FRAMES.is_multiple_of(2)))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let changes = cdp.eval("changes").await;
    let mut latencies = Vec::new();
    for (i, label) in [
        "<img>, plain parts (?advance_headers=0)",
        "<img>, as browsers get it (advanced headers)",
        "<mjpeg-stream> (WebSocket)",
    ]
    .iter()
    .enumerate()
    {
        let log: Vec<(f64, String)> = changes[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_f64().unwrap(), c[1].as_str().unwrap().to_string()))
            .collect();
        let mut lat: Vec<f64> = published
            .iter()
            .filter_map(|&(colour, at)| {
                log.iter()
                    .find(|(t, c)| *t >= at && c == colour)
                    .map(|(t, _)| t - at)
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        eprintln!(
            "Chromium {label}: {} of {FRAMES} frames shown, publish to display median {:.0} ms, min {:.0} ms, max {:.0} ms",
            lat.len(),
            lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN),
            lat.first().copied().unwrap_or(f64::NAN),
            lat.last().copied().unwrap_or(f64::NAN),
        );
        assert_eq!(lat.len(), FRAMES, "{label} missed frames: {log:?}");
        latencies.push(lat);
    }
    let median = |l: &Vec<f64>| l[l.len() / 2];
    let (plain, player) = (median(&latencies[0]), median(&latencies[2]));
    assert!(
        player < plain,
        "the player's median ({player:.0} ms) was not below the plain <img>'s ({plain:.0} ms)"
    );
    drop(chromium);
}
