//! The browser player (`/player.js`, `<mjpeg-stream>`) and the dashboard
//! in headless Chromium, against the real server on 127.0.0.1.
//!
//! - Twenty-four players on one page all show new frames within 3 s over
//!   plain HTTP/1.1, where the same page of twenty-four `<img>`s (the
//!   control) plays at most six: Chromium opens six connections to a
//!   server, and the players share one WebSocket.
//! - A player whose server is killed and restarted on the same port says
//!   it is reconnecting, and plays again within 5 s, without a reload.
//! - A player scrolled out of view, removed, or in a hidden tab is no
//!   longer a viewer in `/status` within 2 s.
//! - Players show the variants their attributes or URLs ask for.
//! - On a page of another origin, a player plays over the WebSocket when
//!   the server allows that origin, and falls back to an `<img>` when it
//!   does not.
//! - The dashboard shows each stream's viewers and rate, enlarges a stream
//!   on a click and copies its `<img>` snippet.
//! - In Firefox (where it is installed; not in CI), players of a stream
//!   and of a variant play over the WebSocket.
//!
//! The measurements (latency, memory over a minute) are
//! `tests/player_measures.rs`; the browser harnesses `tests/chromium/` and
//! `tests/firefox/`, the player pages `tests/player_page/`.

mod chromium;
mod common;
mod firefox;
mod player_page;

use chromium::{bounded, chromium_or_skip, page_noise, STEP};
use common::TestServer;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use player_page::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_four_players_play_over_http1_where_img_stalls_at_six() {
    if chromium_or_skip("24 players") {
        bounded("24 players", run_twenty_four()).await;
    }
}

async fn run_twenty_four() {
    let names: Vec<String> = (1..=24).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = TestServer::start(&names, ServerOptions::default()).await;
    let hubs = server.streams.all();
    publish_all(hubs.clone(), server.token.clone());
    let (chromium, mut cdp) = page(&server.url("/")).await;

    // 24 players: all play within 3 s.
    load_player(&mut cdp, server.addr).await;
    let tiles: String = names
        .iter()
        .map(|n| format!(r#"<mjpeg-stream src="/stream/{n}" style="{TILE}"></mjpeg-stream>"#))
        .collect();
    set_body(&mut cdp, &tiles).await;
    let started = Instant::now();
    let shown = until_players(
        &mut cdp,
        Duration::from_secs(3),
        "all 24 players showing new frames",
        |ps| {
            ps.len() == 24
                && ps
                    .iter()
                    .all(|p| p["frames"].as_u64() >= Some(2) && p["transport"] == "websocket")
        },
    )
    .await;
    eprintln!(
        "24 players showed new frames within {:.1?}: {:?}",
        started.elapsed(),
        shown
            .iter()
            .map(|p| p["frames"].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    // One viewer per stream, all over one connection.
    let mut peers = std::collections::BTreeSet::new();
    for hub in &hubs {
        let stats = hub.stats();
        assert_eq!(stats.clients, 1, "{}: {stats:?}", hub.name());
        peers.insert(stats.viewers[0].addr);
    }
    assert_eq!(
        peers.len(),
        1,
        "the players used several connections: {peers:?}"
    );

    // The control: the same page with 24 plain <img>s. Chromium opens six
    // connections to the server; the other eighteen wait for one of them
    // to end, forever. (The players, removed, unsubscribe.)
    let imgs: String = names
        .iter()
        .map(|n| format!(r#"<img src="/stream/{n}" style="{TILE}">"#))
        .collect();
    set_body(&mut cdp, &imgs).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let watched = hubs.iter().filter(|h| h.stats().clients > 0).count();
    eprintln!("24 <img>s over HTTP/1.1: {watched} streams had a viewer after 3 s");
    assert!(
        (1..=6).contains(&watched),
        "over HTTP/1.1 {watched} of 24 <img>s played (the control expects at most six)"
    );
    let noise = page_noise(&cdp);
    assert!(noise.is_empty(), "the page logged or threw: {noise:?}");
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_recovers_from_a_server_restart_without_a_reload() {
    if chromium_or_skip("restart") {
        bounded("restart", run_restart()).await;
    }
}

/// The server as its own process (`mjpeg-server --listen ADDR --stream
/// cam=demo`), killed with SIGKILL: no close frame, as in a crash.
struct Process(std::process::Child);

impl Process {
    async fn start(listen: &str) -> Process {
        let child = common::logged_server(&["--listen", listen, "--stream", "cam=demo"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + STEP;
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not listen on {listen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Process(child)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_restart() {
    // A free port, for both lives of the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = Process::start(&listen).await;
    // The index page: a dashboard of one player.
    let (chromium, mut cdp) = page(&format!("http://{listen}/")).await;
    until_players(
        &mut cdp,
        Duration::from_secs(5),
        "the player showing frames",
        |ps| ps[0]["frames"].as_u64() >= Some(2),
    )
    .await;

    drop(server);
    // Down for a second: the player tries again, and backs off, and says
    // so.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = players(&mut cdp).await[0]["frames"].as_u64().unwrap();
    let reconnecting = "(() => { const e = document.querySelector('mjpeg-stream'); \
        return [e.reconnecting, e.hasAttribute('reconnecting'), \
        getComputedStyle(e, '::after').content]; })()";
    assert_eq!(
        cdp.eval(reconnecting).await,
        serde_json::json!([true, true, "\"reconnecting…\""])
    );
    let _server = Process::start(&listen).await;
    let restarted = Instant::now();
    let after = until_players(
        &mut cdp,
        Duration::from_secs(5),
        "new frames after the restart",
        |ps| ps[0]["frames"].as_u64().unwrap() >= before + 2,
    )
    .await;
    eprintln!(
        "the player showed new frames {:.1?} after the restart: {after:?}",
        restarted.elapsed()
    );
    assert_eq!(
        cdp.eval(reconnecting).await,
        serde_json::json!([false, false, "none"])
    );
    // The same document: no reload happened.
    assert_eq!(
        cdp.eval("document.querySelectorAll('mjpeg-stream').length")
            .await,
        1
    );
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_out_of_view_or_removed_stops_being_a_viewer() {
    if chromium_or_skip("visibility") {
        bounded("visibility", run_visibility()).await;
    }
}

async fn run_visibility() {
    let server = TestServer::start(&["top", "below"], ServerOptions::default()).await;
    let (top, below) = (server.hub("top"), server.hub("below"));
    publish_all(vec![top.clone(), below.clone()], server.token.clone());
    let (chromium, mut cdp) = page(&server.url("/")).await;
    load_player(&mut cdp, server.addr).await;
    // The second player is far below the fold of the 800 px window.
    set_body(
        &mut cdp,
        &format!(
            r#"<mjpeg-stream id="top" src="/stream/top" style="{TILE}"></mjpeg-stream>
               <div style="height:4000px"></div>
               <mjpeg-stream id="below" src="/stream/below" style="{TILE}"></mjpeg-stream>
               <div style="height:4000px"></div>"#
        ),
    )
    .await;
    until_clients(&top, 1, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(below.stats().clients, 0, "a player out of view subscribed");

    // Scrolled into view, it plays; scrolled out again, it stops.
    cdp.eval("document.getElementById('below').scrollIntoView(); true")
        .await;
    until_clients(&below, 1, Duration::from_secs(2)).await;
    until_clients(&top, 0, Duration::from_secs(2)).await;
    cdp.eval("window.scrollTo(0, 0); true").await;
    until_clients(&below, 0, Duration::from_secs(2)).await;
    until_clients(&top, 1, Duration::from_secs(2)).await;

    // In a hidden tab, it stops; shown again, it plays. (The page is told
    // as a browser tells it: `visibilityState` and a `visibilitychange`.)
    cdp.eval(
        "Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true }); \
         document.dispatchEvent(new Event('visibilitychange')); true",
    )
    .await;
    until_clients(&top, 0, Duration::from_secs(2)).await;
    cdp.eval(
        "delete document.visibilityState; \
         document.dispatchEvent(new Event('visibilitychange')); document.visibilityState",
    )
    .await;
    until_clients(&top, 1, Duration::from_secs(2)).await;

    // Removed, it stops too.
    cdp.eval("document.getElementById('top').remove(); true")
        .await;
    until_clients(&top, 0, Duration::from_secs(2)).await;
    let noise = page_noise(&cdp);
    assert!(noise.is_empty(), "the page logged or threw: {noise:?}");
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_show_the_variants_their_attributes_or_urls_ask_for() {
    if chromium_or_skip("variants") {
        bounded("variants", run_variants()).await;
    }
}

async fn run_variants() {
    let server = TestServer::start(&["s"], ServerOptions::default()).await;
    let hub = server.hub("s");
    publish_all(vec![hub.clone()], server.token.clone());
    let (chromium, mut cdp) = page(&server.url("/")).await;
    load_player(&mut cdp, server.addr).await;
    // 320×240 frames: whole, ?width=160 in the URL, width="80" as an
    // attribute, and the same through the <img> fallback.
    set_body(
        &mut cdp,
        &format!(
            r#"<mjpeg-stream src="/stream/s" style="{TILE}"></mjpeg-stream>
               <mjpeg-stream src="/stream/s?width=160" style="{TILE}"></mjpeg-stream>
               <mjpeg-stream src="/stream/s" width="80" quality="50" style="{TILE}"></mjpeg-stream>
               <mjpeg-stream src="/stream/s" width="80" transport="img" style="{TILE}"></mjpeg-stream>"#
        ),
    )
    .await;
    // (An <img> of a stream loads once: its element counts one frame.)
    until_players(
        &mut cdp,
        Duration::from_secs(5),
        "every player playing",
        |ps| {
            ps[..3].iter().all(|p| p["frames"].as_u64() >= Some(2))
                && ps[3]["frames"].as_u64() >= Some(1)
        },
    )
    .await;
    let sizes = cdp
        .eval(
            "[...document.querySelectorAll('mjpeg-stream')].map(e => { \
               const c = e.querySelector('canvas'), i = e.querySelector('img'); \
               return c ? [e.transport, c.width, c.height] : [e.transport, i.naturalWidth, i.naturalHeight]; })",
        )
        .await;
    assert_eq!(
        sizes,
        serde_json::json!([
            ["websocket", 320, 240],
            ["websocket", 160, 120],
            ["websocket", 80, 60],
            ["img", 80, 60]
        ])
    );
    // Two variants, made once each: the attribute's and the <img>'s
    // `width=80&quality=50` and `width=80` differ in quality.
    let mut live: Vec<String> = hub
        .stats()
        .variants
        .into_iter()
        .map(|v| v.variant)
        .collect();
    live.sort();
    assert_eq!(live, ["width=160", "width=80", "width=80&quality=50"]);
    // A value that is no number is the element's error, not the socket's.
    let error = cdp
        .eval(
            "new Promise(done => { \
               const e = document.createElement('mjpeg-stream'); \
               e.addEventListener('error', ev => done(ev.detail.reason)); \
               e.setAttribute('width', 'big'); e.setAttribute('src', '/stream/s'); \
               document.body.prepend(e); })",
        )
        .await;
    assert!(
        error.as_str().is_some_and(|r| r.contains("width=\"big\"")),
        "{error}"
    );
    until_players(
        &mut cdp,
        Duration::from_secs(3),
        "the others still playing",
        |ps| ps[1..4].iter().all(|p| p["frames"].as_u64() >= Some(4)),
    )
    .await;
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_another_origin_a_player_uses_the_websocket_if_allowed_else_an_img() {
    if chromium_or_skip("other origin") {
        bounded("other origin", run_other_origin()).await;
    }
}

async fn run_other_origin() {
    // The page's own server, with no streams.
    let site = TestServer::start(&[], ServerOptions::default()).await;
    let origin = format!("http://{}", site.addr);
    // One stream server allows the page's origin, one does not.
    let allowing = ServerOptions {
        http: HttpOptions {
            allow_origins: vec![origin.parse().unwrap()],
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let open = TestServer::start(&["cam"], allowing).await;
    let closed = TestServer::start(&["cam"], ServerOptions::default()).await;
    publish_all(vec![open.hub("cam"), closed.hub("cam")], site.token.clone());
    let (chromium, mut cdp) = page(&site.url("/")).await;
    // The module itself comes from a stream server (CORS lets it).
    load_player(&mut cdp, open.addr).await;
    set_body(
        &mut cdp,
        &format!(
            r#"<mjpeg-stream src="http://{}/stream/cam" style="{TILE}"></mjpeg-stream>
               <mjpeg-stream src="http://{}/stream/cam" style="{TILE}"></mjpeg-stream>"#,
            open.addr, closed.addr
        ),
    )
    .await;
    let ps = until_players(
        &mut cdp,
        Duration::from_secs(5),
        "both players playing",
        |ps| {
            ps[0]["transport"] == "websocket"
                && ps[0]["frames"].as_u64() >= Some(2)
                && ps[1]["transport"] == "img"
                && ps[1]["frames"].as_u64() >= Some(1)
        },
    )
    .await;
    eprintln!("other origin: {ps:?}");
    until_clients(&open.hub("cam"), 1, Duration::from_secs(2)).await;
    until_clients(&closed.hub("cam"), 1, Duration::from_secs(2)).await;
    // The refused socket is tried again (after 0.5, then 1 s) while the
    // <img> plays: the element does not say it is reconnecting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reconnecting = cdp
        .eval("[...document.querySelectorAll('mjpeg-stream')].map(e => e.reconnecting)")
        .await;
    assert_eq!(reconnecting, serde_json::json!([false, false]));
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_stream_with_its_figures_and_copies_its_snippet() {
    if chromium_or_skip("dashboard") {
        bounded("dashboard", run_dashboard()).await;
    }
}

async fn run_dashboard() {
    let server = TestServer::start(&["a", "b"], ServerOptions::default()).await;
    publish_all(vec![server.hub("a"), server.hub("b")], server.token.clone());
    let url = server.url("/");
    let (chromium, mut cdp) = page(&url).await;
    // The clipboard, as a user's click would have it.
    cdp.call(
        "Browser.grantPermissions",
        serde_json::json!({
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            "origin": url.trim_end_matches('/'),
        }),
    )
    .await;
    cdp.call(
        "Emulation.setFocusEmulationEnabled",
        serde_json::json!({ "enabled": true }),
    )
    .await;
    // A player per stream, each with its viewers and rate from /status.
    until_players(
        &mut cdp,
        Duration::from_secs(5),
        "both players playing",
        |ps| ps.len() == 2 && ps.iter().all(|p| p["frames"].as_u64() >= Some(2)),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = cdp
            .eval("[...document.querySelectorAll('figure[data-name] .stats')].map(e => e.textContent)")
            .await;
        if stats.as_array().unwrap().iter().all(|t| {
            t.as_str()
                .is_some_and(|t| t.starts_with("1 viewer ·") && t.ends_with("fps"))
        }) {
            break stats;
        }
        assert!(Instant::now() < deadline, "the figures: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("dashboard figures: {stats}");
    // A click enlarges a stream, another shrinks it.
    let big = cdp
        .eval(
            "(() => { const f = document.querySelector('figure[data-name=\"b\"]'); \
               f.querySelector('mjpeg-stream').click(); const once = f.classList.contains('big'); \
               f.querySelector('mjpeg-stream').click(); return [once, f.classList.contains('big')]; })()",
        )
        .await;
    assert_eq!(big, serde_json::json!([true, false]));
    // The copy button puts the stream's <img> into the clipboard.
    let copied = cdp
        .eval(
            "(async () => { document.querySelector('figure[data-name=\"b\"] button.copy').click(); \
               await new Promise(r => setTimeout(r, 200)); return navigator.clipboard.readText(); })()",
        )
        .await;
    assert_eq!(
        copied.as_str(),
        Some(format!(r#"<img src="{}stream/b">"#, url).as_str())
    );
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_play_in_firefox() {
    if firefox::firefox_or_skip("players in Firefox") {
        bounded("players in Firefox", run_firefox()).await;
    }
}

async fn run_firefox() {
    let server = TestServer::start(&["a", "b"], ServerOptions::default()).await;
    let (a, b) = (server.hub("a"), server.hub("b"));
    publish_all(vec![a.clone(), b.clone()], server.token.clone());
    // A page of the server's origin: its index.
    let (_firefox, mut bidi) = firefox::open(&server.url("/")).await;
    let loaded = bidi
        .eval(&format!(
            "import('http://{}/player.js').then(() => !!customElements.get('mjpeg-stream'))",
            server.addr
        ))
        .await;
    assert_eq!(loaded, true);
    let html = serde_json::to_string(&format!(
        r#"<mjpeg-stream src="/stream/a" style="{TILE}"></mjpeg-stream>
           <mjpeg-stream src="/stream/b?width=160" style="{TILE}"></mjpeg-stream>"#
    ))
    .unwrap();
    bidi.eval(&format!("(document.body.innerHTML = {html}, true)"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let shown = bidi
            .eval(
                "[...document.querySelectorAll('mjpeg-stream')].map(e => { \
                   const c = e.querySelector('canvas'); \
                   return [e.transport, e.frames, c && c.width, c && c.height]; })",
            )
            .await;
        let playing = shown
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p[1].as_u64() >= Some(5));
        if playing {
            break shown;
        }
        assert!(Instant::now() < deadline, "players in Firefox: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sizes: Vec<(String, u64, u64)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[2].as_u64().unwrap(),
                p[3].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("websocket".to_string(), 320, 240),
            ("websocket".to_string(), 160, 120)
        ]
    );
    assert_eq!(a.stats().clients, 1);
    assert_eq!(b.stats().variants[0].viewers, 1);
}
