//! `GET /ws`: every stream a page shows, over one WebSocket.
//!
//! A browser opens at most six HTTP/1.1 connections to a server, and each
//! `<img>` of a stream holds one for as long as it plays: a seventh stream
//! on the page waits forever. The player (`/player.js`, see
//! [`player_js`](super::player_js)) instead asks for every stream of the
//! page over one WebSocket, so a dashboard of twenty-four cameras needs one
//! connection.
//!
//! ## Protocol
//!
//! The page sends JSON text messages:
//!
//! ```text
//! {"op":"subscribe","stream":"NAME","fps":N}    fps optional; no stream: the first
//! {"op":"unsubscribe","stream":"NAME"}
//! ```
//!
//! The server answers each subscribe with a text message,
//! `{"op":"subscribed","stream":NAME,"name":NAME,"id":ID}` or
//! `{"op":"error","stream":NAME,"status":CODE,"reason":TEXT}` (the status
//! and text a stream request would get: 400, 401, 403, 404, 503), and sends
//! every frame as one binary message, a 20-byte header and the JPEG:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | the stream's `id` from `subscribed`, big-endian `u32` |
//! | 4..12 | the frame's sequence number, big-endian `u64` |
//! | 12..20 | when it was published, µs since the Unix epoch, big-endian `u64` |
//! | 20.. | the JPEG |
//!
//! The id is the stream's own, the same on every socket, so the message is
//! built once per frame and shared by every socket.
//!
//! ## Rules
//!
//! Each subscription is a viewer like any other: the same access rules
//! as a stream request, with the socket's credentials (`Authorization` or
//! `?token=` of the upgrade request; wrong ones are refused with `401` at
//! the upgrade), the same per-stream limit, and a line in `/status`. And the
//! same newest-only rule: a socket takes a frame only once the previous one
//! has been written, so a slow page skips frames and nothing queues.
//!
//! Browsers open WebSockets from pages of any origin, with the user's
//! stored credentials, so a page of another origin is let in only if
//! [`HttpOptions::allow_origins`](super::HttpOptions::allow_origins) lists
//! it, or if it presents a `?token=` of its own; others get `403`.
//!
//! A socket that breaks the rules is closed with a code and a reason: 1008
//! (policy) for text that is not a request, more than [`MAX_SUBSCRIPTIONS`]
//! streams, more than [`MAX_MESSAGES_PER_SECOND`] messages, or a socket
//! that takes nothing for [`SEND_STALL`]; 1003 for binary messages; 1009
//! for messages over [`MAX_MESSAGE`] bytes. At shutdown every socket is
//! closed with 1001 (going away).

mod protocol;
mod subscriptions;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::time::Duration;

use super::{AppState, ConnectionHold, Creds};
use crate::names::option_names;
use crate::stream_request::{self, Asked, Params, Which};
use protocol::{Reply, Request, Violation};
use subscriptions::{FloodMeter, Subscriptions};

/// Most streams one socket may watch.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Largest message a page may send, in bytes; requests are a few dozen.
pub const MAX_MESSAGE: usize = 4096;
/// Most messages a page may send in a second: enough for a page to
/// subscribe to all its streams at once, four times over.
pub const MAX_MESSAGES_PER_SECOND: u32 = 4 * MAX_SUBSCRIPTIONS as u32;
/// A socket whose message could not be written for this long is not
/// reading, and is closed.
pub const SEND_STALL: Duration = Duration::from_secs(10);

/// Messages larger than this are refused by the WebSocket layer before it
/// reads them; those between [`MAX_MESSAGE`] and this are read, and
/// answered with a close that says why.
const HARD_LIMIT: usize = 4 * MAX_MESSAGE;

/// What the upgrade request says about who is asking.
pub(super) struct Upgrade {
    creds: Creds,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    /// Kept while the socket lives ([`ConnectionHold`]).
    _hold: Option<ConnectionHold>,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let creds = Creds::from_request_parts(parts, state).await?;
        Ok(Upgrade {
            creds,
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            headers: parts.headers.clone(),
            _hold: parts.extensions.get::<ConnectionHold>().cloned(),
        })
    }
}

/// The `/ws` handler: checks the origin and the credentials, then serves
/// the socket until it closes or the server shuts down.
pub(super) fn handle(
    st: AppState,
    up: Upgrade,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return (
                e.status(),
                format!(
                    "{}: /ws is the player's WebSocket (see /player.js); open it with new WebSocket(\"ws://HOST/ws\")\n",
                    e.body_text()
                ),
            )
                .into_response()
        }
    };
    if let Err(res) = check_origin(&st, &up) {
        return res;
    }
    // Wrong credentials are refused now, as they would be on any route;
    // missing ones only when a stream that needs them is asked for.
    if let Err(why) = st.opts.access.identify(&up.creds.presented()) {
        return st.denied(&up.creds, why);
    }
    ws.max_message_size(HARD_LIMIT)
        .max_frame_size(HARD_LIMIT)
        // The WebSocket layer's defaults are 128 KiB buffers each way per
        // socket, most of a viewer's memory: requests are small, and a
        // frame goes out as it is sent (the socket's own buffer holds what
        // the client has not read yet), so small ones do.
        .read_buffer_size(MAX_MESSAGE)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve(socket, st, up))
}

/// `Err` with the refusal if a browser page of another origin opens the
/// socket without being allowed to.
///
/// WebSockets have no CORS: a browser opens one from any page, with the
/// user's stored Basic credentials. So a page of another origin is let in
/// only if [`HttpOptions::allow_origins`](super::HttpOptions::allow_origins)
/// lists it, or if it presents a `?token=` itself (then it was given the
/// right, rather than borrowing the user's). Clients that are not pages
/// send no `Origin`.
#[allow(clippy::result_large_err)]
fn check_origin(st: &AppState, up: &Upgrade) -> Result<(), Response> {
    let Some(origin) = up.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let listed = st
        .opts
        .allow_origins
        .iter()
        .any(|o| o == "*" || o == origin);
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .zip(up.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host));
    if listed || same || up.creds.token.is_some() {
        return Ok(());
    }
    let origin = String::from_utf8_lossy(origin.as_bytes());
    Err((
        StatusCode::FORBIDDEN,
        format!(
            "a page of {origin:?} may not open this server's WebSocket: add {} to let it, or give the page a ?token=\n",
            option_names().allow_origin.replace("ORIGIN", &origin)
        ),
    )
        .into_response())
}

/// How a socket's service ends.
enum End {
    /// The client closed it or went away.
    Gone,
    /// The server closes it, saying why.
    Close(Violation),
}

/// Serves one socket: its requests, and every frame of its subscriptions.
async fn serve(mut socket: WebSocket, st: AppState, up: Upgrade) {
    let mut subs = Subscriptions::default();
    let mut flood = FloodMeter::new();
    let end = loop {
        tokio::select! {
            biased;
            _ = st.shutdown.cancelled() => break End::Close(Violation::Shutdown),
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => break End::Close(Violation::Binary),
                    Some(Ok(Message::Close(_))) | None => break End::Gone,
                    // Pings are answered by the WebSocket layer; they
                    // count against the flood limit all the same.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        if !flood.allow(MAX_MESSAGES_PER_SECOND) {
                            break End::Close(Violation::Flood(MAX_MESSAGES_PER_SECOND));
                        }
                        continue;
                    }
                    Some(Err(e)) => break read_error(e),
                };
                if !flood.allow(MAX_MESSAGES_PER_SECOND) {
                    break End::Close(Violation::Flood(MAX_MESSAGES_PER_SECOND));
                }
                if text.len() > MAX_MESSAGE {
                    break End::Close(Violation::TooBig(MAX_MESSAGE));
                }
                let reply = match protocol::parse(&text) {
                    Ok(req) => match answer(&st, &up, &mut subs, req).await {
                        Ok(reply) => reply,
                        Err(v) => break End::Close(v),
                    },
                    Err(v) => break End::Close(v),
                };
                if let Some(reply) = reply {
                    if let Err(end) = send(&mut socket, &st, Message::Text(reply.into())).await {
                        break end;
                    }
                }
            }
            (sub, p) = subs.next_due() => {
                let id = sub.sub.hub().id();
                let msg = p.ws_message(|p| protocol::frame_message(id, p));
                let len = msg.len();
                let record = sub.sub.record();
                if let Err(end) = send(&mut socket, &st, Message::Binary(msg)).await {
                    break end;
                }
                record.wrote(len);
            }
        }
    };
    if let End::Close(why) = end {
        tracing::debug!(peer = ?up.peer, "closing a WebSocket: {why}");
        let frame = CloseFrame {
            code: why.code(),
            reason: why.reason().into(),
        };
        // Best effort: a client that is not reading cannot be told.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
}

/// Why reading failed: a message over the hard limit is closed with 1009;
/// anything else (a broken frame, a reset) ends the socket.
fn read_error(e: axum::Error) -> End {
    match e.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) if matches!(*e, tungstenite::Error::Capacity(_)) => {
            End::Close(Violation::TooBig(MAX_MESSAGE))
        }
        _ => End::Gone,
    }
}

/// Sends `msg`, unless the server shuts down first or the socket takes
/// nothing for [`SEND_STALL`].
async fn send(socket: &mut WebSocket, st: &AppState, msg: Message) -> Result<(), End> {
    tokio::select! {
        _ = st.shutdown.cancelled() => Err(End::Close(Violation::Shutdown)),
        sent = tokio::time::timeout(SEND_STALL, socket.send(msg)) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Close(Violation::Stalled)),
        },
    }
}

/// Carries out one request; the reply to send, if any. A request that
/// breaks a limit is the socket's end.
async fn answer(
    st: &AppState,
    up: &Upgrade,
    subs: &mut Subscriptions,
    req: Request,
) -> Result<Option<String>, Violation> {
    match req {
        Request::Unsubscribe { stream } => {
            subs.remove(stream.as_deref());
            Ok(None)
        }
        Request::Subscribe { stream, fps } => {
            let key = stream.as_deref();
            if !subs.contains(key) && subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(Violation::TooManySubscriptions(MAX_SUBSCRIPTIONS));
            }
            // A page that subscribes again (to change the rate) gives its
            // place back first, so that it does not count twice against
            // the stream's limit.
            subs.remove(key);
            Ok(Some(subscribe(st, up, subs, key, fps).await))
        }
    }
}

/// Subscribes to the stream `key` as a stream request for it would be
/// served, and says how it went.
async fn subscribe(
    st: &AppState,
    up: &Upgrade,
    subs: &mut Subscriptions,
    key: Option<&str>,
    fps: Option<f64>,
) -> String {
    let params = Params {
        fps: fps.map(|f| f.to_string()),
        ..Params::default()
    };
    let asked = Asked {
        which: key.map_or(Which::First, Which::Named),
        params: &params,
        presented: up.creds.presented(),
        sec_fetch_dest: None,
    };
    let wanted = stream_request::decide(&st.streams, &st.opts.access, st.opts.max_variants, &asked)
        .and_then(|w| {
            let sub = w.subscribe(up.peer, st.opts.max_clients_per_stream)?;
            Ok((w, sub))
        });
    match wanted {
        Ok((w, sub)) => {
            let reply = Reply::Subscribed {
                stream: key,
                name: w.hub.name(),
                id: w.hub.id(),
            }
            .to_json();
            subs.insert(key.map(str::to_string), sub, w.min_interval);
            reply
        }
        Err(refusal) => {
            // The refusal a stream request would get, logged and counted
            // the same way; its status and text go into the reply.
            let res = st.refuse(&up.creds, refusal);
            let status = res.status().as_u16();
            let text = axum::body::to_bytes(Body::new(res.into_body()), MAX_MESSAGE)
                .await
                .unwrap_or_default();
            let reason = String::from_utf8_lossy(&text);
            Reply::Error {
                stream: key,
                status,
                reason: reason.trim_end(),
            }
            .to_json()
        }
    }
}
