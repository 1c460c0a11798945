//! `GET /player.js`: the browser player, an ES module that defines
//! `<mjpeg-stream>`.
//!
//! The element plays every stream of a page over one WebSocket per server
//! (`/ws`), so a page can show more streams than the six HTTP/1.1
//! connections a browser opens to one server; it falls back to a plain
//! `<img>` of the stream where the socket cannot be had. The script is
//! dependency-free and compiled into the server.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The module's source.
const PLAYER: &str = include_str!("player.js");

/// The player module, for a route of your own app (the server serves it
/// at `/player.js`).
///
/// It may be loaded by pages of any origin (`Access-Control-Allow-Origin:
/// *`: a module script is fetched with CORS, and the script holds nothing
/// secret); what such a page may watch is decided by `/ws`.
pub async fn player_js() -> Response {
    let mut res = PLAYER.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // Revalidated each time, so that a new server's player is used at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
