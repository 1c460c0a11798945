//! What the player tests share: a page with the player, its players'
//! state, and streams that keep publishing. Included by
//! `tests/player.rs` and `tests/player_measures.rs`, beside `mod chromium;`
//! and `mod common;`.

#![allow(dead_code)]

use super::chromium::{self, wait_loaded, Cdp, Chromium};
use super::common::{corpus, tagged};
use mjpeg_server::Hub;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Publishes a new (tagged) 320×240 JPEG into each of `hubs` every 100 ms
/// until `stop`: new frames, at no encoding cost.
pub fn publish_all(hubs: Vec<Hub>, stop: CancellationToken) {
    let base = corpus("jpeg_5k.jpg");
    tokio::spawn(async move {
        for n in 0u64.. {
            for hub in &hubs {
                let _ = hub.publish_jpeg(tagged(&base, &format!("f{n}")));
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
}

/// Chromium on `url`, once it has loaded. The tests open the server's index
/// page, an HTML page of its origin, and replace its body (custom elements
/// are HTML's: a plain-text page would not run them).
pub async fn page(url: &str) -> (Chromium, Cdp) {
    let (chromium, mut cdp) = chromium::open(url).await;
    wait_loaded(&mut cdp, url).await;
    (chromium, cdp)
}

/// Loads the player module from the server at `addr` into the page.
pub async fn load_player(cdp: &mut Cdp, addr: SocketAddr) {
    let loaded = cdp
        .eval(&format!(
            "import('http://{addr}/player.js').then(() => !!customElements.get('mjpeg-stream'))"
        ))
        .await;
    assert_eq!(
        loaded, true,
        "the player module did not define <mjpeg-stream>"
    );
}

/// Replaces the page's body with `html`.
pub async fn set_body(cdp: &mut Cdp, html: &str) {
    let html = serde_json::to_string(html).unwrap();
    cdp.eval(&format!("document.body.innerHTML = {html}; true"))
        .await;
}

/// Each player's frames shown and transport, in document order.
pub async fn players(cdp: &mut Cdp) -> Vec<Value> {
    let v = cdp
        .eval(
            "[...document.querySelectorAll('mjpeg-stream')]\
             .map(e => ({ frames: e.frames, transport: e.transport, age: e.lastFrameAge }))",
        )
        .await;
    v.as_array().unwrap().clone()
}

/// Waits until `done(players)` holds, for at most `within`.
pub async fn until_players(
    cdp: &mut Cdp,
    within: Duration,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let now = players(cdp).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}; the players: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `hub` has `n` viewers, for at most `within`.
pub async fn until_clients(hub: &Hub, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while hub.stats().clients != n {
        assert!(
            Instant::now() < deadline,
            "stream {} has {} viewers, not {n}, after {within:?}",
            hub.name(),
            hub.stats().clients
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const TILE: &str = "display:inline-block;width:160px;height:120px;overflow:hidden";
