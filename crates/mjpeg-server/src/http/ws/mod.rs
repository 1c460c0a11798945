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
//! {"op":"subscribe","stream":"NAME","fps":N,"width":W,"height":H,"quality":Q}
//! {"op":"unsubscribe","stream":"NAME","width":W,"height":H,"quality":Q}
//! ```
//!
//! Every field but `op` is optional: no `stream` is the server's first,
//! `fps` caps the rate as `?fps=` does, and `width`, `height` and `quality`
//! ask for a variant as the query parameters of the same names do. A
//! subscription is known by its stream and variant: a page may watch two
//! sizes of one stream.
//!
//! The server answers each subscribe with a text message,
//! `{"op":"subscribed","stream":NAME,"name":NAME,"id":ID}` or
//! `{"op":"error","stream":NAME,"status":CODE,"reason":TEXT}` (the status
//! and text a stream request would get: 400, 401, 403, 404, 503), both with
//! the variant's fields as asked, and sends every frame as one binary
//! message, a 20-byte header and the JPEG:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | the stream's `id` from `subscribed`, big-endian `u32` |
//! | 4..12 | the frame's sequence number, big-endian `u64` |
//! | 12..20 | when it was published, µs since the Unix epoch, big-endian `u64` |
//! | 20.. | the JPEG |
//!
//! The id is the stream's own (a variant's is its own too), the same on
//! every socket, so the message's headers are built once per frame and
//! shared by every socket, which writes them and the hub's JPEG with one
//! vectored write (the private `wire` module says why `/ws` frames by
//! hand).
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
//! subscriptions or more than [`MAX_MESSAGES_PER_SECOND`] messages; 1003
//! for binary messages; 1009 for messages over [`MAX_MESSAGE`] bytes
//! (refused from the frame's header, unread); 1002 for frames that break
//! RFC 6455; 1007 for text that is not UTF-8. A socket that takes nothing
//! for [`SEND_STALL`] is dropped (half a frame is written: no close frame
//! can follow). At shutdown every socket is closed with 1001 (going away).

mod protocol;
mod subscriptions;
mod wire;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{AppState, ConnectionHold, Creds};
use crate::names::option_names;
use crate::stream_request::{self, Asked, Params, Which};
use crate::viewer::write_all_vectored;
use protocol::{Key, Reply, Request, Violation};
use subscriptions::{FloodMeter, Subscriptions};
use wire::{Incoming, ReadEnd, Reader};

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

/// How long a closing socket waits for the page to finish: its close
/// frame and the end of what it was still sending.
const CLOSING: Duration = Duration::from_secs(2);

/// The upgrade request: who is asking, and the connection to take over.
pub(super) struct Upgrade {
    creds: Creds,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    /// The connection after the `101`, from hyper; none where the request
    /// cannot be upgraded (HTTP/2).
    on_upgrade: Option<OnUpgrade>,
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
            on_upgrade: parts.extensions.remove::<OnUpgrade>(),
            _hold: parts.extensions.get::<ConnectionHold>().cloned(),
        })
    }
}

/// Who a socket serves, for as long as it lives.
struct Who {
    creds: Creds,
    peer: Option<SocketAddr>,
    /// Kept while the socket lives ([`ConnectionHold`]).
    _hold: Option<ConnectionHold>,
}

/// The `/ws` handler: checks the handshake, the origin and the
/// credentials, answers `101`, then serves the socket until it closes or
/// the server shuts down.
pub(super) fn handle(st: AppState, mut up: Upgrade) -> Response {
    let (accept, on_upgrade) = match handshake(&mut up) {
        Ok(ok) => ok,
        Err(res) => return res,
    };
    if let Err(res) = check_origin(&st, &up) {
        return res;
    }
    // Wrong credentials are refused now, as they would be on any route;
    // missing ones only when a stream that needs them is asked for.
    if let Err(why) = st.opts.access.identify(&up.creds.presented()) {
        return st.denied(&up.creds, why);
    }
    // Only what the socket needs is kept for its life: the request's
    // headers share hyper's read buffer, 16 KiB a socket.
    let who = Who {
        creds: up.creds.owned(),
        peer: up.peer,
        _hold: up._hold,
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), st, who).await,
            Err(e) => tracing::debug!(peer = ?who.peer, "a WebSocket upgrade failed: {e}"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    res
}

/// Checks the opening handshake (RFC 6455 §4.2.1): the
/// `Sec-WebSocket-Accept` to answer with and the connection to take over,
/// or the refusal.
#[allow(clippy::result_large_err)]
fn handshake(up: &mut Upgrade) -> Result<(HeaderValue, OnUpgrade), Response> {
    let has = |name: header::HeaderName, token: &str| {
        up.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let refuse = |status: StatusCode, why: &str| {
        let mut res = (
            status,
            format!(
                "{why}: /ws is the player's WebSocket (see /player.js); open it with new WebSocket(\"ws://HOST/ws\")\n"
            ),
        )
            .into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            let h = res.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        Err(res)
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "not a WebSocket handshake (no Connection: upgrade and Upgrade: websocket)",
        );
    }
    if up
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is spoken",
        );
    }
    let key = match up.headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key)
            if base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes())
                .is_ok_and(|k| k.len() == 16) =>
        {
            key
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is missing or not 16 bytes in base64",
            )
        }
    };
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let Some(on_upgrade) = up.on_upgrade.take() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded (WebSockets need HTTP/1.1)",
        );
    };
    // Base64 is always a valid header value.
    Ok((HeaderValue::try_from(accept).expect("base64"), on_upgrade))
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
    /// The server drops it without a close frame: a frame is half
    /// written, so none can follow.
    Drop(Violation),
}

/// Serves one socket: its requests, and every frame of its subscriptions.
async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, st: AppState, up: Who) {
    let mut subs = Subscriptions::default();
    let mut flood = FloodMeter::new();
    let mut reader = Reader::new(MAX_MESSAGE);
    let end = loop {
        // Shutdown is looked at last: only when nothing else is ready, so
        // that a socket does not register with the shared token for every
        // frame it sends.
        let out = tokio::select! {
            biased;
            msg = reader.next(&mut io) => {
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(ReadEnd::Gone) => break End::Gone,
                    Err(ReadEnd::Broke(v)) => break End::Close(v),
                };
                if !flood.allow(MAX_MESSAGES_PER_SECOND) {
                    break End::Close(Violation::Flood(MAX_MESSAGES_PER_SECOND));
                }
                match msg {
                    Incoming::Text(text) => match protocol::parse(&text) {
                        // Boxed: requests are rare, and their futures
                        // would otherwise take room in every socket's task.
                        Ok(req) => match Box::pin(answer(&st, &up, &mut subs, req)).await {
                            Ok(Some(reply)) => [wire::message(wire::TEXT, reply.as_bytes()), Bytes::new()],
                            Ok(None) => continue,
                            Err(v) => break End::Close(v),
                        },
                        Err(v) => break End::Close(v),
                    },
                    Incoming::Binary => break End::Close(Violation::Binary),
                    Incoming::Ping(payload) => [wire::message(wire::PONG, &payload), Bytes::new()],
                    Incoming::Pong => continue,
                    // The page closes: its close is answered in kind.
                    Incoming::Close(code) => {
                        let echo = code.map(u16::to_be_bytes);
                        let echo = echo.as_ref().map_or(&[][..], |c| &c[..]);
                        let _ = send(&mut io, &st, [wire::message(wire::CLOSE, echo), Bytes::new()]).await;
                        break End::Gone;
                    }
                }
            }
            (sub, p) = subs.next_due() => {
                let id = sub.sub.hub().id();
                let record = sub.sub.record();
                let prefix = p.ws_prefix(|p| protocol::frame_prefix(id, p));
                let len = prefix.len() + p.jpeg().len();
                if let Err(end) = send(&mut io, &st, [prefix, p.jpeg().clone()]).await {
                    break end;
                }
                record.wrote(len);
                continue;
            }
            _ = st.shutdown.cancelled() => break End::Close(Violation::Shutdown),
        };
        if let Err(end) = send(&mut io, &st, out).await {
            break end;
        }
    };
    match end {
        End::Gone => {}
        End::Drop(why) => tracing::debug!(peer = ?up.peer, "dropping a WebSocket: {why}"),
        End::Close(why) => {
            tracing::debug!(peer = ?up.peer, "closing a WebSocket: {why}");
            Box::pin(close(&mut io, &why)).await;
        }
    }
}

/// Sends one message (its buffers, one after the other, with one
/// vectored write where the socket takes it), unless the socket takes
/// nothing for [`SEND_STALL`]. At shutdown, a message begun is finished
/// within a second, so that the close frame can follow it.
async fn send<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    st: &AppState,
    bufs: [Bytes; 2],
) -> Result<(), End> {
    let [a, b] = bufs;
    let bufs = [a, b, Bytes::new()];
    let write = tokio::time::timeout(SEND_STALL, write_all_vectored(io, &bufs));
    tokio::pin!(write);
    // The write first: nearly always the socket takes it at once, and then
    // no timer or shutdown wait is ever registered.
    let sent = tokio::select! {
        biased;
        sent = &mut write => sent,
        _ = st.shutdown.cancelled() => match tokio::time::timeout(Duration::from_secs(1), write).await {
            Ok(Ok(Ok(()))) => return Err(End::Close(Violation::Shutdown)),
            _ => return Err(End::Drop(Violation::Shutdown)),
        },
    };
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => Err(End::Drop(Violation::Stalled)),
    }
}

/// Closes the socket as RFC 6455 §7 asks: the close frame, then the end
/// of the server's half; then what the page still sends (its own close,
/// the rest of a message that was refused) is read and thrown away until
/// it closes too, so that it reads the close frame instead of a reset.
async fn close<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, why: &Violation) {
    let frame = wire::close(why.code(), &why.reason());
    let closing = async {
        io.write_all(&frame).await?;
        io.shutdown().await?;
        // On the heap, and only now: an array here would make every
        // socket's task this much larger for its whole life.
        let mut scratch = vec![0u8; 4096];
        let mut left: usize = 16 << 20;
        while left > 0 {
            match io.read(&mut scratch).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    };
    // Best effort: a page that does not read cannot be told.
    let _ = tokio::time::timeout(CLOSING, closing).await;
}

/// Carries out one request; the reply to send, if any. A request that
/// breaks a limit is the socket's end.
async fn answer(
    st: &AppState,
    up: &Who,
    subs: &mut Subscriptions,
    req: Request,
) -> Result<Option<String>, Violation> {
    let key = req.key();
    match req {
        Request::Unsubscribe { .. } => {
            subs.remove(&key);
            Ok(None)
        }
        Request::Subscribe { fps, .. } => {
            if !subs.contains(&key) && subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(Violation::TooManySubscriptions(MAX_SUBSCRIPTIONS));
            }
            // A page that subscribes again (to change the rate) gives its
            // place back first, so that it does not count twice against
            // the stream's limit.
            subs.remove(&key);
            Ok(Some(subscribe(st, up, subs, key, fps).await))
        }
    }
}

/// Subscribes to the stream and variant of `key` as a stream request for
/// them would be served, and says how it went.
async fn subscribe(
    st: &AppState,
    up: &Who,
    subs: &mut Subscriptions,
    key: Key,
    fps: Option<f64>,
) -> String {
    let text = |n: Option<u64>| n.map(|n| n.to_string());
    let params = Params {
        fps: fps.map(|f| f.to_string()),
        width: text(key.variant.width),
        height: text(key.variant.height),
        quality: text(key.variant.quality),
        ..Params::default()
    };
    let asked = Asked {
        which: key.stream.as_deref().map_or(Which::First, Which::Named),
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
                stream: key.stream.as_deref(),
                variant: key.variant,
                name: w.hub.name(),
                id: w.hub.id(),
            }
            .to_json();
            subs.insert(key, sub, w.min_interval);
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
                stream: key.stream.as_deref(),
                variant: key.variant,
                status,
                reason: reason.trim_end(),
            }
            .to_json()
        }
    }
}
