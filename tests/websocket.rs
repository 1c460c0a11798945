//! `/ws`, the player's WebSocket, from a real WebSocket client against the
//! real server on 127.0.0.1:0: frames and their header, the streams' access
//! rules, the origin check, and hostile clients (garbage, huge messages,
//! floods, too many subscriptions, a client that never reads), which are
//! closed with a reason and never hurt the other clients. (The frames and
//! the handshake themselves: `tests/websocket_frames.rs`.)

mod common;

use common::{corpus, tag_of, tagged, TestServer};
use futures_util::{SinkExt, StreamExt};
use mjpeg_server::access::{Access, Grant, Patterns};
use mjpeg_server::http::{HttpOptions, Mount};
use mjpeg_server::{Hub, ServerOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on waiting for any one message.
const WAIT: Duration = Duration::from_secs(5);

async fn connect(url: &str) -> Ws {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => panic!("{url}: {e}"),
        Err(_) => panic!("{url}: no handshake within {WAIT:?}"),
    }
}

/// The handshake's refusal: its status and body.
async fn refused(req: impl IntoClientRequest + Unpin) -> (u16, String) {
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(res)) => (
            res.status().as_u16(),
            String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Ok(_) => panic!("the handshake was accepted"),
        Err(e) => panic!("not an HTTP refusal: {e}"),
    }
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next message that is not a ping or pong.
async fn next(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(m))) => return m,
            Ok(Some(Err(e))) => panic!("the socket failed: {e}"),
            Ok(None) => panic!("the socket ended without a close frame"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// The next text message, as JSON (frames before it are skipped).
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match next(ws).await {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Binary(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// A frame message, split: stream id, seq, µs timestamp, JPEG.
struct FrameMsg {
    id: u32,
    seq: u64,
    micros: u64,
    jpeg: Vec<u8>,
}

async fn next_frame(ws: &mut Ws) -> FrameMsg {
    loop {
        if let Message::Binary(b) = next(ws).await {
            assert!(b.len() > 20, "a frame message of {} bytes", b.len());
            return FrameMsg {
                id: u32::from_be_bytes(b[0..4].try_into().unwrap()),
                seq: u64::from_be_bytes(b[4..12].try_into().unwrap()),
                micros: u64::from_be_bytes(b[12..20].try_into().unwrap()),
                jpeg: b[20..].to_vec(),
            };
        }
    }
}

/// Reads until the server's close frame: its code and reason.
async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("a close frame without a code"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("the socket failed before a close frame: {e}"),
            Ok(None) => panic!("the socket ended without a close frame"),
            Err(_) => panic!("no close frame within {WAIT:?}"),
        }
    }
}

/// Publishes tagged frames into `hub` every `every` until `stop`.
fn publish_every(hub: Hub, every: Duration, base: Vec<u8>, stop: CancellationToken) {
    tokio::spawn(async move {
        for n in 0u64.. {
            hub.publish_jpeg(tagged(&base, &format!("f{n}"))).unwrap();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn ws_url(server: &TestServer, query: &str) -> String {
    format!("ws://{}/ws{query}", server.addr)
}

#[tokio::test]
async fn a_subscription_gets_each_new_frame_with_its_header_and_shows_in_status() {
    let server = TestServer::start(&["cam", "yard"], ServerOptions::default()).await;
    publish_every(
        server.hub("cam"),
        Duration::from_millis(20),
        corpus("jpeg_5k.jpg"),
        server.token.clone(),
    );
    let mut ws = connect(&ws_url(&server, "")).await;
    send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(reply["op"], "subscribed", "{reply}");
    assert_eq!(reply["stream"], "cam", "{reply}");
    assert_eq!(reply["name"], "cam", "{reply}");
    let id = reply["id"].as_u64().unwrap() as u32;

    let mut last = 0;
    for _ in 0..10 {
        let f = next_frame(&mut ws).await;
        assert_eq!(f.id, id);
        assert!(f.seq > last, "seq {} after {last}", f.seq);
        last = f.seq;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(
            f.micros <= now && now - f.micros < 10_000_000,
            "{}",
            f.micros
        );
        let tag = tag_of(&f.jpeg).expect("a published frame, whole");
        assert!(tag.starts_with('f'), "{tag}");
        assert_eq!(common::decode(&f.jpeg), (320, 240));
    }
    // One viewer of cam in /status, with what it was sent.
    server.wait_clients("cam", 1).await;
    server.wait_clients("yard", 0).await;
    let status = common::stream_status(server.addr, "cam").await;
    assert!(
        status["viewers"][0]["frames"].as_u64().unwrap() >= 10,
        "{status}"
    );

    // The first stream, unnamed, as /stream is; and an unsubscribe ends
    // the viewer.
    send_json(&mut ws, json!({"op": "subscribe"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(
        (reply["stream"].clone(), reply["name"].clone()),
        (Value::Null, json!("cam"))
    );
    server.wait_clients("cam", 2).await;
    send_json(&mut ws, json!({"op": "unsubscribe", "stream": "cam"})).await;
    send_json(&mut ws, json!({"op": "unsubscribe"})).await;
    server.wait_clients("cam", 0).await;
    // Closing the socket ends everything it watched.
    send_json(&mut ws, json!({"op": "subscribe", "stream": "yard"})).await;
    server.wait_clients("yard", 1).await;
    drop(ws);
    server.wait_clients("yard", 0).await;
}

#[tokio::test]
async fn a_subscription_can_ask_for_a_variant_and_a_page_can_watch_two_sizes() {
    let server = TestServer::start(&["cam"], ServerOptions::default()).await;
    let hub = server.hub("cam");
    publish_every(
        hub.clone(),
        Duration::from_millis(50),
        corpus("jpeg_50k.jpg"),
        server.token.clone(),
    );
    let mut ws = connect(&ws_url(&server, "")).await;
    send_json(
        &mut ws,
        json!({"op": "subscribe", "stream": "cam", "width": 160}),
    )
    .await;
    let small = next_text(&mut ws).await;
    assert_eq!(
        (small["op"].as_str(), small["width"].as_u64()),
        (Some("subscribed"), Some(160)),
        "{small}"
    );
    send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
    let whole = next_text(&mut ws).await;
    assert_eq!(whole["op"], "subscribed", "{whole}");
    assert!(whole.get("width").is_none(), "{whole}");
    let (small, whole) = (small["id"].as_u64().unwrap(), whole["id"].as_u64().unwrap());
    assert_ne!(small, whole, "a variant's frames carry an id of their own");

    // Both arrive, each at its size, the variant keeping the aspect ratio.
    let mut seen = (false, false);
    while seen != (true, true) {
        let f = next_frame(&mut ws).await;
        let size = common::decode(&f.jpeg);
        if u64::from(f.id) == small {
            assert_eq!(size, (160, 120));
            seen.0 = true;
        } else {
            assert_eq!(u64::from(f.id), whole);
            assert_eq!(size, (640, 480));
            assert!(tag_of(&f.jpeg).is_some(), "the source's own bytes");
            seen.1 = true;
        }
    }
    assert_eq!(hub.stats().variants.len(), 1);
    assert_eq!(hub.stats().variants[0].viewers, 1);

    // A bad value is refused as the query parameter is, and the socket
    // goes on.
    send_json(
        &mut ws,
        json!({"op": "subscribe", "stream": "cam", "width": 0}),
    )
    .await;
    let refused = next_text(&mut ws).await;
    assert_eq!(
        (refused["op"].as_str(), refused["status"].as_u64()),
        (Some("error"), Some(400)),
        "{refused}"
    );
    assert_eq!(refused["width"], 0, "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("width"),
        "{refused}"
    );
    // Unsubscribing the variant leaves the whole frames playing.
    send_json(
        &mut ws,
        json!({"op": "unsubscribe", "stream": "cam", "width": 160}),
    )
    .await;
    let until = tokio::time::Instant::now() + WAIT;
    while hub.stats().variants.first().is_some_and(|v| v.viewers > 0) {
        assert!(
            tokio::time::Instant::now() < until,
            "the variant's viewer stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // (A variant frame or two may have been sent before the unsubscribe
    // was read.)
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(u64::from(next_frame(&mut ws).await.id));
    }
    assert!(ids[10..].iter().all(|&id| id == whole), "{ids:?}");
}

#[tokio::test]
async fn subscriptions_follow_the_streams_access_rules() {
    let token = "watch-token-123";
    let mut access = Access::new(
        "test",
        Grant {
            watch: Patterns::new(&["public-*"]).unwrap(),
            push: Patterns::default(),
        },
    );
    access.add_token(token, Grant::watch_only()).unwrap();
    let opts = ServerOptions {
        http: HttpOptions {
            access: Arc::new(access),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["cam", "public-lobby"], opts).await;
    for name in ["cam", "public-lobby"] {
        server
            .hub(name)
            .publish_jpeg(corpus("jpeg_5k.jpg"))
            .unwrap();
    }

    // Without credentials: the public stream only.
    let mut ws = connect(&ws_url(&server, "")).await;
    send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(
        (reply["op"].as_str(), reply["status"].as_u64()),
        (Some("error"), Some(401)),
        "{reply}"
    );
    assert!(
        reply["reason"].as_str().unwrap().contains("credentials"),
        "{reply}"
    );
    send_json(&mut ws, json!({"op": "subscribe", "stream": "nope"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(
        reply["status"], 401,
        "unknown names are not told apart: {reply}"
    );
    send_json(
        &mut ws,
        json!({"op": "subscribe", "stream": "public-lobby"}),
    )
    .await;
    assert_eq!(next_text(&mut ws).await["op"], "subscribed");
    next_frame(&mut ws).await;
    server.wait_clients("cam", 0).await;

    // A wrong token is refused at the handshake, as on any route.
    let (status, body) = refused(ws_url(&server, "?token=wrong-token-1")).await;
    assert_eq!(status, 401, "{body}");

    // With the token: every stream; an unknown one is named as such, and a
    // bad rate is a 400, as a stream request would get.
    let mut ws = connect(&ws_url(&server, &format!("?token={token}"))).await;
    send_json(
        &mut ws,
        json!({"op": "subscribe", "stream": "cam", "fps": 5}),
    )
    .await;
    assert_eq!(next_text(&mut ws).await["op"], "subscribed");
    send_json(&mut ws, json!({"op": "subscribe", "stream": "nope"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(reply["status"], 404, "{reply}");
    assert!(
        reply["reason"].as_str().unwrap().contains("public-lobby"),
        "{reply}"
    );
    send_json(
        &mut ws,
        json!({"op": "subscribe", "stream": "public-lobby", "fps": 0}),
    )
    .await;
    let reply = next_text(&mut ws).await;
    assert_eq!(reply["status"], 400, "{reply}");
    server.wait_clients("cam", 1).await;
}

#[tokio::test]
async fn the_per_stream_viewer_limit_counts_subscriptions() {
    let opts = ServerOptions {
        http: HttpOptions {
            max_clients_per_stream: Some(1),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["cam"], opts).await;
    let mut a = connect(&ws_url(&server, "")).await;
    send_json(&mut a, json!({"op": "subscribe", "stream": "cam"})).await;
    assert_eq!(next_text(&mut a).await["op"], "subscribed");
    // Subscribing again (a new rate) does not count twice.
    send_json(
        &mut a,
        json!({"op": "subscribe", "stream": "cam", "fps": 2}),
    )
    .await;
    assert_eq!(next_text(&mut a).await["op"], "subscribed");
    let mut b = connect(&ws_url(&server, "")).await;
    send_json(&mut b, json!({"op": "subscribe", "stream": "cam"})).await;
    let reply = next_text(&mut b).await;
    assert_eq!(reply["status"], 503, "{reply}");
}

#[tokio::test]
async fn pages_of_other_origins_need_to_be_allowed() {
    let opts = ServerOptions {
        http: HttpOptions {
            allow_origins: vec!["http://good.example".parse().unwrap()],
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["cam"], opts).await;
    let with_origin = |origin: &str| {
        let mut req = ws_url(&server, "").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let (status, body) = refused(with_origin("http://evil.example")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("allow_origins") && body.contains("http://evil.example"),
        "the refusal names the option: {body}"
    );
    // The server's own pages, and the listed origin.
    for origin in [
        format!("http://{}", server.addr),
        "http://good.example".into(),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(with_origin(&origin))
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
        assert_eq!(next_text(&mut ws).await["op"], "subscribed", "{origin}");
    }
    // A plain GET is told what /ws is.
    let res = http().get(server.url("/ws")).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(
        status.is_client_error() && text.contains("player"),
        "{status}: {text}"
    );
}

#[tokio::test]
async fn bad_messages_close_the_socket_with_a_reason() {
    // Enough streams to subscribe to more than a socket may.
    let names: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = ["cam"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .collect();
    let server = TestServer::start(&names, ServerOptions::default()).await;
    let url = ws_url(&server, "");
    let cases: Vec<(&str, Vec<Message>, u16, &str)> = vec![
        (
            "garbage",
            vec![Message::text("hello?")],
            1008,
            "bad message",
        ),
        (
            "unknown op",
            vec![Message::text(r#"{"op":"dance"}"#)],
            1008,
            "bad message",
        ),
        (
            "binary",
            vec![Message::binary(vec![1, 2, 3])],
            1003,
            "binary",
        ),
        (
            "8 KiB",
            vec![Message::text(format!(
                r#"{{"op":"subscribe","stream":"{}"}}"#,
                "x".repeat(8192)
            ))],
            1009,
            "over 4096",
        ),
        (
            "1 MiB",
            vec![Message::binary(vec![b'x'; 1 << 20])],
            1009,
            "over 4096",
        ),
        (
            "65 subscriptions",
            (0..65)
                .map(|i| {
                    Message::text(json!({"op": "subscribe", "stream": format!("s{i}")}).to_string())
                })
                .collect(),
            1008,
            "more than 64 subscriptions",
        ),
        (
            "a flood",
            (0..300)
                .map(|_| Message::text(r#"{"op":"unsubscribe","stream":"cam"}"#))
                .collect(),
            1008,
            "messages a second",
        ),
    ];
    for (what, msgs, code, reason) in cases {
        let mut ws = connect(&url).await;
        for m in msgs {
            // The server may close before the last of them is sent.
            if ws.send(m).await.is_err() {
                break;
            }
        }
        eprintln!("{what}");
        let (got, why) = close_of(&mut ws).await;
        assert_eq!(got, code, "{what}: closed with {got} {why:?}");
        assert!(why.contains(reason), "{what}: reason {why:?}");
    }
    // The server is none the worse.
    server
        .hub("cam")
        .publish_jpeg(corpus("jpeg_5k.jpg"))
        .unwrap();
    let mut ws = connect(&url).await;
    send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
    next_frame(&mut ws).await;
}

#[tokio::test]
async fn a_client_that_never_reads_skips_frames_and_does_not_slow_the_others() {
    let server = TestServer::start(&["cam"], ServerOptions::default()).await;
    // 200 kB frames, 50 a second: the idle client's socket buffers fill
    // within a second.
    publish_every(
        server.hub("cam"),
        Duration::from_millis(20),
        corpus("jpeg_200k.jpg"),
        server.token.clone(),
    );
    let mut idle = connect(&ws_url(&server, "")).await;
    send_json(&mut idle, json!({"op": "subscribe", "stream": "cam"})).await;
    // ...and never reads again.
    let mut reader = connect(&ws_url(&server, "")).await;
    send_json(&mut reader, json!({"op": "subscribe", "stream": "cam"})).await;
    let mut seqs = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        seqs.push(next_frame(&mut reader).await.seq);
    }
    let published = server.hub("cam").stats().frames_published;
    let status = common::stream_status(server.addr, "cam").await;
    let viewers = status["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 2, "{status}");
    let stuck = viewers.iter().min_by_key(|v| v["frames"].as_u64()).unwrap();
    eprintln!(
        "reader got {} frames; published {published}; the idle client: {stuck}",
        seqs.len()
    );
    // The reader kept getting new frames throughout.
    assert!(
        seqs.len() >= 30,
        "the reader got only {} frames in 3 s",
        seqs.len()
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // The idle one was sent what its socket took, and skipped the rest:
    // nothing queued for it.
    let stuck_frames = stuck["frames"].as_u64().unwrap();
    assert!(
        stuck_frames < published / 2,
        "the idle client was sent {stuck_frames} of {published}"
    );
    assert!(
        stuck["frames_skipped"].as_u64().unwrap() > published / 2,
        "{stuck}"
    );
}

#[tokio::test]
async fn sockets_are_closed_going_away_at_shutdown() {
    let server = TestServer::start(&["cam"], ServerOptions::default()).await;
    let mut ws = connect(&ws_url(&server, "")).await;
    send_json(&mut ws, json!({"op": "subscribe", "stream": "cam"})).await;
    assert_eq!(next_text(&mut ws).await["op"], "subscribed");
    server.token.cancel();
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Away), "{why}");
    server.wait_clients("cam", 0).await;
}

#[tokio::test]
async fn a_mounted_stream_has_its_websocket() {
    let hub = Hub::new("camera");
    let mount = Mount::new(hub.clone());
    let app: axum::Router = axum::Router::new()
        .route("/my/camera.mjpg", mount.stream())
        .route("/my/ws", mount.websocket())
        .route(
            "/my/player.js",
            axum::routing::get(mjpeg_server::http::player_js),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    hub.publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();

    let mut ws = connect(&format!("ws://{addr}/my/ws")).await;
    send_json(&mut ws, json!({"op": "subscribe"})).await;
    let reply = next_text(&mut ws).await;
    assert_eq!(reply["name"], "camera", "{reply}");
    let f = next_frame(&mut ws).await;
    assert_eq!(f.jpeg, corpus("jpeg_5k.jpg"));
    assert_eq!(hub.stats().clients, 1);

    let res = http()
        .get(format!("http://{addr}/my/player.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("customElements.define('mjpeg-stream'"));
}
