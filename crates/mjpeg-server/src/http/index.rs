//! `GET /`: the index page, every stream the visitor may watch, live: a
//! dashboard on the player (`/player.js`), so that it shows any number of
//! streams over one connection, with each stream's viewers and rate from
//! `/status`.

use axum::response::{Html, IntoResponse, Response};

/// The page, with `<!--cards-->` where the streams go and `<!--token-->`
/// where links carry the visitor's `?token=`.
const PAGE: &str = include_str!("index.html");

use super::{no_cache, watchable, AppState, Creds};
use crate::access::Denied;

/// The index page: every stream the client may watch, live.
pub(super) fn index(st: &AppState, creds: &Creds) -> Response {
    let access = &st.opts.access;
    let who = match access.identify(&creds.presented()) {
        Ok(who) => who,
        Err(why) => return st.denied(creds, why),
    };
    let all = st.streams.all();
    let hubs = watchable(access, who, &all);
    // An anonymous visitor who cannot see every stream is asked to log in
    // (a browser shows its prompt; only a 401 makes it), rather than shown
    // part of the page with no way to see the rest.
    if !who.is_known() && hubs.len() < all.len() {
        return st.denied(creds, Denied::Missing);
    }
    if hubs.is_empty() && !all.is_empty() {
        return st.denied(creds, Denied::Forbidden);
    }
    // A page opened with ?token= passes it on to its images and links:
    // an <img> cannot send any other credentials.
    let suffix = match creds.token.as_deref().filter(|_| who.is_known()) {
        Some(t) => format!(
            "?{}",
            serde_urlencoded::to_string([("token", t)]).unwrap_or_default()
        ),
        None => String::new(),
    };
    let mut cards = String::new();
    for hub in &hubs {
        // Names are limited to [A-Za-z0-9_-], and the suffix is
        // URL-encoded, so neither needs HTML escaping.
        let n = hub.name();
        cards.push_str(&format!(
            r#"<figure data-name="{n}"><mjpeg-stream src="/stream/{n}{suffix}" alt="live stream {n}" title="click to enlarge"></mjpeg-stream><figcaption><b>{n}</b> <span class="stats"></span> <a href="/stream/{n}{suffix}">stream</a> <a href="/snapshot/{n}{suffix}">snapshot</a> <button class="copy" type="button">copy &lt;img&gt;</button><code class="snippet"></code></figcaption></figure>
"#
        ));
    }
    if hubs.is_empty() {
        cards.push_str("<p>This server has no streams.</p>");
    }
    let page = PAGE
        .replacen("<!--cards-->", &cards, 1)
        .replace("<!--token-->", &suffix);
    let mut res = Html(page).into_response();
    no_cache(&mut res);
    res
}
