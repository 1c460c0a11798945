//! The HTTP interface: stream, snapshot, index page, status, and the URLs of
//! mjpg-streamer that other tools hard-code.
//!
//! [`router`] returns an [`axum::Router`], so the same routes serve the
//! standalone server and can be merged into a user's own axum app.
//!
//! | URL | answer |
//! | --- | --- |
//! | `GET /` | an HTML page showing every stream live |
//! | `GET /stream`, `/stream/{name}` | the MJPEG stream (`?fps=N` caps the rate, `?advance_headers=1` or `0` forces the layout) |
//! | `GET /snapshot`, `/snapshot/{name}` | the newest frame as one JPEG |
//! | `GET /status` | JSON counters of every stream and each of its viewers |
//! | `GET /metrics` | the same counters for Prometheus ([`crate::metrics`]) |
//! | `GET /?action=stream[_N]`, `/?action=snapshot[_N]` | mjpg-streamer's URLs |
//! | `PUT`/`POST /stream/{name}` | publish: one image, concatenated JPEGs, or a multipart stream |
//! | `POST /stream/{name}/data` | numbers for a chart stream ([`crate::source::chart`]) |
//!
//! `HEAD` works on all of them; other methods get `405`, unknown paths and
//! stream names `404`.
//!
//! A browser's image load (`Sec-Fetch-Dest: image`) gets its part headers in
//! advance ([`multipart::Layout::Advanced`]), so that Chrome shows each
//! frame as soon as it arrives; every other client gets the plain parts
//! with `Content-Length`. One function decides which, for this router and
//! for the standalone server's direct path alike.

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, Action, Denied, Identity, Presented};
use crate::convert::{self, ConvertOptions};
use crate::created::{CreateError, Created};
use crate::frame::{FrameError, ImageKind};
use crate::hub::{Hub, HubStats, NameError, PublishError, SourceState, Streams};
use crate::multipart::{self, reader::PartReader};
use crate::source::pipe::{Problem, Split, Splitter};
use crate::stream_request::{
    self, action_index, Asked, Params, Which, NO_CACHE_HEADERS, STREAM_HEADERS,
};
use crate::viewer::Viewer;

/// How stream responses behave.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Re-send the newest frame to a viewer that got nothing new for this
    /// long; `None` turns it off.
    ///
    /// It keeps proxies from timing out a quiet connection. And Chrome
    /// shows a plain part only once the next part begins, so a viewer of
    /// plain parts (`?advance_headers=0`) of an idle source would otherwise
    /// show the second-newest frame forever; browsers, which get the next
    /// part's headers in advance, show each frame without it.
    pub resend_after: Option<Duration>,
    /// Largest frame a push may carry; a larger one gets `413`.
    pub max_frame_bytes: usize,
    /// Create a push stream when a frame is pushed to a name that does not
    /// exist yet.
    pub allow_create: bool,
    /// Most streams that pushes may create (`allow_create`); a push that
    /// would create one more gets `503`.
    pub max_created_streams: usize,
    /// A stream created by a push that nobody has pushed to for this long
    /// and nobody watches is forgotten; `None`: kept forever.
    pub created_stream_idle: Option<Duration>,
    /// How pushed images that are not JPEG are converted.
    pub convert: ConvertOptions,
    /// Who may watch and push ([`Access::default`]: everyone).
    pub access: Arc<Access>,
    /// Most viewers of one stream; past it, `503`. `None`: only the
    /// server's connection limit applies.
    pub max_clients_per_stream: Option<usize>,
    /// A push whose body sends nothing for this long is ended with `408`,
    /// freeing its connection (a sender that died without closing).
    /// `None`: wait forever.
    pub push_idle_timeout: Option<Duration>,
    /// Origins whose pages may read the streams with `fetch` or a canvas
    /// (CORS); `*` for any. Empty (the default): no CORS headers at all.
    pub allow_origins: Vec<HeaderValue>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            resend_after: Some(Duration::from_secs(1)),
            max_frame_bytes: 16 << 20,
            allow_create: false,
            max_created_streams: 64,
            created_stream_idle: Some(Duration::from_secs(600)),
            convert: ConvertOptions::default(),
            access: Arc::new(Access::default()),
            max_clients_per_stream: None,
            push_idle_timeout: Some(Duration::from_secs(30)),
            allow_origins: Vec::new(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    streams: Streams,
    created: Arc<Created>,
    opts: Arc<HttpOptions>,
    shutdown: CancellationToken,
    metrics: Arc<prometheus_client::registry::Registry>,
}

/// What a stream response needs to know of its request, besides the
/// stream, the credentials and the query.
struct Viewing {
    /// The client's address, from axum's [`ConnectInfo`] when the server
    /// provides it (the standalone server does; an app served with
    /// `into_make_service_with_connect_info::<SocketAddr>()` does too), else
    /// `None`.
    peer: Option<SocketAddr>,
    method: Method,
    version: Version,
    /// The `Sec-Fetch-Dest` header, for [`parse_layout`].
    sec_fetch_dest: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewing {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Viewing {
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            method: parts.method.clone(),
            version: parts.version,
            sec_fetch_dest: parts.headers.get("sec-fetch-dest").cloned(),
        })
    }
}

/// The credentials a request carries: its `Authorization` header and
/// `?token=`, checked by [`AppState::allow`].
struct Creds {
    authorization: Option<HeaderValue>,
    token: Option<String>,
    /// Who sent them, for the log of refusals.
    peer: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Creds {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts.uri.query().and_then(|q| {
            serde_urlencoded::from_str::<Params>(q)
                .ok()
                .and_then(|p| p.token)
        });
        Ok(Creds {
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            token,
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        })
    }
}

impl Creds {
    fn presented(&self) -> Presented<'_> {
        Presented {
            authorization: self.authorization.as_ref().map(HeaderValue::as_bytes),
            token: self.token.as_deref(),
        }
    }
}

impl AppState {
    /// `Ok` if `creds` may do `action` on `stream`, else the refusal.
    #[allow(clippy::result_large_err)]
    fn allow(&self, creds: &Creds, action: Action, stream: &str) -> Result<(), Response> {
        self.opts
            .access
            .check(&creds.presented(), action, stream)
            .map_err(|d| self.denied(creds, d))
    }

    /// `Ok` if `creds` may see the pages about the server itself
    /// ([`Access::check_known`]), else the refusal.
    #[allow(clippy::result_large_err)]
    fn allow_known(&self, creds: &Creds) -> Result<(), Response> {
        self.opts
            .access
            .check_known(&creds.presented())
            .map_err(|d| self.denied(creds, d))
    }

    /// `401` (with a challenge) or `403`, saying why. Wrong credentials are
    /// logged as warnings (someone may be guessing), refusals of valid ones
    /// at info.
    fn denied(&self, creds: &Creds, why: Denied) -> Response {
        let client = creds.peer.map(|p| p.to_string());
        let client = client.as_deref().unwrap_or("-");
        match why {
            Denied::Missing => {
                tracing::debug!(target: "mjpeg_server::access", client, "refused: no credentials")
            }
            Denied::Invalid => {
                tracing::warn!(target: "mjpeg_server::access", client, "refused: wrong user, password or token")
            }
            Denied::Forbidden => {
                tracing::info!(target: "mjpeg_server::access", client, "refused: not permitted")
            }
        }
        let (status, text) = match why {
            Denied::Missing => (
                StatusCode::UNAUTHORIZED,
                "credentials needed: a user and password, an Authorization: Bearer token, or ?token=\n",
            ),
            Denied::Invalid => (
                StatusCode::UNAUTHORIZED,
                "wrong user, password or token\n",
            ),
            Denied::Forbidden => (
                StatusCode::FORBIDDEN,
                "these credentials do not allow this on this stream\n",
            ),
        };
        let mut res = (status, text).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let realm = self.opts.access.realm().replace(['"', '\\'], "");
            for challenge in [
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
                format!("Bearer realm=\"{realm}\""),
            ] {
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        res
    }
}

impl AppState {
    /// The response to a stream request that [`stream_request::decide`]
    /// refused.
    fn refuse(&self, creds: &Creds, refusal: stream_request::Refusal) -> Response {
        match refusal {
            stream_request::Refusal::NotFound(text) => not_found_text(text),
            stream_request::Refusal::NoSuchStream(name) => no_such_stream(self, creds, &name),
            stream_request::Refusal::Denied(why) => self.denied(creds, why),
            stream_request::Refusal::BadParameter(why) => {
                (StatusCode::BAD_REQUEST, why).into_response()
            }
            stream_request::Refusal::Full { name, limit } => {
                let mut res = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("stream {name:?} has the most viewers it may ({limit}); try later\n"),
                )
                    .into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
        }
    }
}

/// The routes of the server, for `streams`.
///
/// Stream responses end when `shutdown` is cancelled, which is how a
/// graceful shutdown closes viewers that would otherwise watch forever.
pub fn router(streams: Streams, opts: HttpOptions, shutdown: CancellationToken) -> Router {
    let created = Created::new(opts.max_created_streams, opts.created_stream_idle);
    created.spawn_sweeper(streams.clone(), shutdown.clone());
    let state = AppState {
        metrics: Arc::new(crate::metrics::registry(&streams)),
        created,
        streams,
        opts: Arc::new(opts),
        shutdown,
    };
    let cors = cors_layer(&state.opts.allow_origins);
    let router = Router::new()
        .route("/", get(root))
        .route("/stream", get(stream_first))
        .route("/stream/{name}", get(stream_named).put(push).post(push));
    #[cfg(feature = "chart")]
    let router = router.route("/stream/{name}/data", axum::routing::post(chart_data));
    let router = router
        .route("/snapshot", get(snapshot_first))
        .route("/snapshot/{name}", get(snapshot_named))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for `origins` (`*` for any), or none if the list is empty. Answers
/// preflight `OPTIONS` requests itself, before any credentials are asked
/// for: browsers send none with a preflight.
fn cors_layer(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().cloned())
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::POST,
                Method::OPTIONS,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::HeaderName::from_static("x-timestamp")])
            .max_age(Duration::from_secs(3600)),
    )
}

async fn root(
    State(st): State<AppState>,
    viewing: Viewing,
    creds: Creds,
    Query(p): Query<Params>,
) -> Response {
    let Some(action) = p.action.as_deref() else {
        return index(&st, &creds);
    };
    if action_index(action, "stream").is_some() {
        stream_response(&st, &creds, Which::Action(action), &viewing, &p)
    } else if let Some(n) = action_index(action, "snapshot") {
        match n.and_then(|n| st.streams.nth(n)) {
            Some(hub) => snapshot_response(&st, &creds, &hub),
            None => not_found_text(format!("no stream for action={action}\n")),
        }
    } else {
        not_found_text(format!(
            "unknown action {action:?}: use stream, stream_N, snapshot or snapshot_N\n"
        ))
    }
}

async fn stream_first(
    State(st): State<AppState>,
    viewing: Viewing,
    creds: Creds,
    Query(p): Query<Params>,
) -> Response {
    stream_response(&st, &creds, Which::First, &viewing, &p)
}

async fn stream_named(
    State(st): State<AppState>,
    Path(name): Path<String>,
    viewing: Viewing,
    creds: Creds,
    Query(p): Query<Params>,
) -> Response {
    stream_response(&st, &creds, Which::Named(&name), &viewing, &p)
}

async fn snapshot_first(State(st): State<AppState>, creds: Creds) -> Response {
    match st.streams.nth(0) {
        Some(hub) => snapshot_response(&st, &creds, &hub),
        None => not_found_text("this server has no streams\n".into()),
    }
}

async fn snapshot_named(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
) -> Response {
    match st.streams.get(&name) {
        Some(hub) => snapshot_response(&st, &creds, &hub),
        None => unknown_to_viewer(&st, &creds, &name),
    }
}

#[derive(serde::Serialize)]
struct Status {
    streams: Vec<HubStats>,
}

async fn status(State(st): State<AppState>, creds: Creds) -> Response {
    if let Err(refused) = st.allow_known(&creds) {
        return refused;
    }
    let streams = st.streams.all().iter().map(Hub::stats).collect();
    let mut res = Json(Status { streams }).into_response();
    no_cache(&mut res);
    res
}

async fn metrics(State(st): State<AppState>, creds: Creds) -> Response {
    if let Err(refused) = st.allow_known(&creds) {
        return refused;
    }
    let mut res = crate::metrics::render(&st.metrics).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    no_cache(&mut res);
    res
}

async fn not_found() -> Response {
    not_found_text("not found; the streams are listed at /\n".into())
}

fn not_found_text(text: String) -> Response {
    (StatusCode::NOT_FOUND, text).into_response()
}

/// A viewer asked for a stream that does not exist: the refusal it would
/// get if it did, so that which names exist cannot be probed without the
/// right to watch them; else `404`.
fn unknown_to_viewer(st: &AppState, creds: &Creds, name: &str) -> Response {
    match st.allow(creds, Action::Watch, name) {
        Err(refused) => refused,
        Ok(()) => no_such_stream(st, creds, name),
    }
}

/// `404` for an unknown stream, listing the streams the client may watch
/// (so that names are not revealed to those who may not see them).
fn no_such_stream(st: &AppState, creds: &Creds, name: &str) -> Response {
    not_found_text(no_such_stream_text(st, creds, name))
}

/// The text of [`no_such_stream`].
fn no_such_stream_text(st: &AppState, creds: &Creds, name: &str) -> String {
    let access = &st.opts.access;
    let visible = match access.identify(&creds.presented()) {
        Ok(who) => watchable(access, who, &st.streams.all()),
        Err(_) => Vec::new(),
    };
    let names: Vec<String> = visible.iter().map(|h| h.name().to_string()).collect();
    // The name is echoed only through {:?}, which escapes control characters.
    format!("no stream named {name:?}; streams: {}\n", names.join(", "))
}

fn no_cache(res: &mut Response) {
    for (name, value) in NO_CACHE_HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
}

/// The streams of `hubs` that `who` may watch, in order.
fn watchable(access: &Access, who: Identity<'_>, hubs: &[Hub]) -> Vec<Hub> {
    hubs.iter()
        .filter(|h| access.permits(who, Action::Watch, h.name()).is_ok())
        .cloned()
        .collect()
}

fn snapshot_response(st: &AppState, creds: &Creds, hub: &Hub) -> Response {
    if let Err(refused) = st.allow(creds, Action::Watch, hub.name()) {
        return refused;
    }
    let Some(p) = hub.latest() else {
        let mut res = (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stream {:?} has no frame yet; try again shortly\n",
                hub.name()
            ),
        )
            .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    };
    let mut res = Response::new(Body::from(p.jpeg().clone()));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    if let Ok(v) = HeaderValue::from_str(&multipart::timestamp(p.published())) {
        res.headers_mut().insert("x-timestamp", v);
    }
    no_cache(&mut res);
    res
}

/// Builds a stream response: headers now, frames as the viewer takes them.
/// What is served, or why not, is [`stream_request::decide`]'s answer.
fn stream_response(
    st: &AppState,
    creds: &Creds,
    which: Which<'_>,
    req: &Viewing,
    p: &Params,
) -> Response {
    let asked = Asked {
        which,
        params: p,
        presented: creds.presented(),
        sec_fetch_dest: req.sec_fetch_dest.as_ref().map(HeaderValue::as_bytes),
    };
    let wanted = match stream_request::decide(&st.streams, &st.opts.access, &asked) {
        Ok(wanted) => wanted,
        Err(refusal) => return st.refuse(creds, refusal),
    };
    let body = if req.method == Method::HEAD {
        // An empty stream (not an empty body) so that HEAD gets exactly the
        // headers of GET: no Content-Length is added.
        Body::from_stream(stream::empty::<Result<Bytes, Infallible>>())
    } else {
        let sub = match wanted.subscribe(req.peer, st.opts.max_clients_per_stream) {
            Ok(sub) => sub,
            Err(refusal) => return st.refuse(creds, refusal),
        };
        let v = Viewer::new(
            sub,
            wanted.min_interval,
            st.opts.resend_after,
            st.shutdown.clone(),
        )
        .with_layout(wanted.layout);
        Body::from_stream(viewer(v))
    };
    let mut res = Response::new(body);
    // Answering an HTTP/1.1 request as HTTP/1.0 makes hyper write the body as
    // is and end it by closing the connection, the way mjpg-streamer and
    // µStreamer do. Otherwise hyper would use chunked transfer encoding for a
    // body of unknown length, which many MJPEG clients (motionEye, embedded
    // viewers) cannot parse. HTTP/2 has no such problem and is left alone.
    if req.version == Version::HTTP_11 {
        *res.version_mut() = Version::HTTP_10;
    }
    let h = res.headers_mut();
    for (name, value) in STREAM_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    // HTTP/2 forbids connection headers; its streams end on their own.
    if req.version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The body of a stream response: the preamble, then for every frame the
/// shared buffers of its part (header, JPEG, trailer) in the viewer's
/// layout.
///
/// The body is polled only when hyper has room to write (its write buffer is
/// kept small by the server), so a viewer takes a new frame only after the
/// previous one has mostly gone out: a slow viewer skips frames instead of
/// queueing them. A part counts as sent once its last chunk went to hyper.
fn viewer(v: Viewer) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let queue = VecDeque::from([Bytes::from_static(v.layout().preamble())]);
    stream::unfold(
        (v, queue, None::<Arc<crate::hub::Published>>),
        |(mut v, mut queue, mut part)| async move {
            if queue.is_empty() {
                let next = v.next_part().await?;
                // An advanced part has no header of its own: no empty chunk.
                queue.extend(v.chunks(&next).into_iter().filter(|c| !c.is_empty()));
                part = Some(next);
            }
            let chunk = queue.pop_front()?;
            if queue.is_empty() {
                if let Some(done) = part.take() {
                    v.sent(&done);
                }
            }
            Some((Ok(chunk), (v, queue, part)))
        },
    )
}

/// `PUT`/`POST /stream/{name}`: other programs publish frames.
///
/// The body is one image of any format (`curl -T frame.png …`), JPEGs back
/// to back (`ffmpeg … -f mjpeg`), or a `multipart/x-mixed-replace` stream
/// (`ffmpeg … -f mpjpeg`). Frames are published as soon as each is complete,
/// so a long-lived upload is a live source. The reply comes when the body
/// ends: `204` if every frame was accepted, `400` with the reason for a
/// corrupt one, `413` for one over the size limit, `415` for a body that is
/// no image.
async fn push(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Checked by name before the stream is looked up or created, so that a
    // refused client learns nothing about which streams exist.
    if let Err(refused) = st.allow(&creds, Action::Push, &name) {
        return refused;
    }
    // A stream that a push created is marked as being pushed to before it
    // is looked up, so that it cannot be forgotten in between.
    let pushing = st.created.push_begins(&name);
    let (hub, _pushing) = match st.streams.get(&name) {
        Some(hub) if hub.accepts_push() => (hub, pushing),
        Some(_) => {
            return (
                StatusCode::CONFLICT,
                format!("stream {name:?} has its own source and does not accept pushed frames; declare a stream with NAME=push\n"),
            )
                .into_response()
        }
        None if st.opts.allow_create => match st.created.create(&st.streams, &name) {
            Ok((hub, pushing)) => {
                tracing::info!(stream = name, "created by a push");
                (hub, Some(pushing))
            }
            // Created by a concurrent push a moment ago.
            Err(CreateError::Name(NameError::Duplicate(_))) => {
                let pushing = st.created.push_begins(&name);
                match st.streams.get(&name) {
                    Some(hub) if hub.accepts_push() => (hub, pushing),
                    _ => return no_such_stream(&st, &creds, &name),
                }
            }
            Err(e @ CreateError::Full(_)) => {
                tracing::warn!(stream = name, "push refused: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            }
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
        None => return no_such_push_target(&st, &creds, &name),
    };
    // `curl -d @frame.jpg` sends a form: it strips every CR and LF from
    // the file, so what arrives is a broken image whatever else it looks
    // like. Refused before a byte is read, with the flag that sends the
    // file as it is.
    if is_form(&headers) {
        let why = Refusal::Form;
        hub.reject(&why);
        tracing::warn!(stream = hub.name(), "pushed frame refused: {why}");
        return (why.status(), format!("{why}\n")).into_response();
    }
    let limit = st.opts.max_frame_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(multipart::reader::boundary_from_content_type);

    let mut tally = Tally::default();
    let result = match boundary {
        Some(b) => push_multipart(&hub, body, &b, &st.opts, &mut tally).await,
        None if declared.is_some_and(|n| n > limit) => Err(Refusal::TooLarge(limit)),
        None => push_images(&hub, body, &st.opts, &mut tally).await,
    };
    if let Err(refusal) = result {
        tally.refuse(&hub, refusal);
    }
    tally.reply(&hub)
}

/// `404` for a push to a stream that does not exist: as for a viewer, plus
/// how to let pushes create streams when that is off (the usual reason a
/// first push fails).
fn no_such_push_target(st: &AppState, creds: &Creds, name: &str) -> Response {
    let mut text = no_such_stream_text(st, creds, name);
    if !st.opts.allow_create {
        text.push_str(
            "to let a push create the stream, start the server with --allow-create \
             (allow-create = true in the config file), or declare it with --stream NAME=push\n",
        );
    }
    not_found_text(text)
}

/// Whether the body is declared a form (`application/x-www-form-urlencoded`,
/// what `curl -d` sends).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `POST /stream/{name}/data`: samples for a chart stream, handled by
/// [`crate::source::chart::post_data`].
#[cfg(feature = "chart")]
async fn chart_data(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Credentials first, then the body: a refused client's upload is not
    // read.
    if let Err(refused) = st.allow(&creds, Action::Push, &name) {
        return refused;
    }
    let Some(hub) = st.streams.get(&name) else {
        return no_such_stream(&st, &creds, &name);
    };
    match axum::body::to_bytes(body, CHART_BODY_LIMIT).await {
        Ok(body) => crate::source::chart::post_data(&hub, &headers, &body),
        Err(e) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("chart data over {CHART_BODY_LIMIT} bytes, or unreadable: {e}\n"),
        )
            .into_response(),
    }
}

/// Samples for a chart are numbers; 2 MiB of them is plenty.
#[cfg(feature = "chart")]
const CHART_BODY_LIMIT: usize = 2 << 20;

/// Why pushed bytes were not published.
#[derive(Debug)]
enum Refusal {
    Frame(PublishError),
    Split(Problem),
    TooLarge(usize),
    Empty,
    NoBoundary,
    Body(String),
    Idle(Duration),
    /// The body was sent as a form (`curl -d`), which mangles images.
    Form,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Frame(PublishError::Frame(FrameError::NotImage(_)))
            | Refusal::Frame(PublishError::Frame(FrameError::NotJpeg(_)))
            | Refusal::Split(Problem::Garbage { .. })
            | Refusal::Form => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooLarge(_)
            | Refusal::Frame(PublishError::Frame(FrameError::TooManyPixels { .. })) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Refusal::Idle(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Frame(e) => write!(f, "{e}"),
            Refusal::Split(Problem::Truncated { bytes }) => write!(
                f,
                "truncated JPEG: the body ended {bytes} bytes into a frame, before its end-of-image marker"
            ),
            Refusal::Split(Problem::Garbage { .. }) => {
                write!(f, "not an image: data after the last JPEG is not one")
            }
            Refusal::Split(e) => write!(f, "{e}"),
            Refusal::TooLarge(limit) => write!(f, "frame larger than the limit of {limit} bytes"),
            Refusal::Empty => write!(f, "empty body: nothing to publish"),
            Refusal::NoBoundary => write!(
                f,
                "the body starts with a \"--\" line that names no boundary: a multipart body starts with --BOUNDARY (or send Content-Type: multipart/x-mixed-replace; boundary=BOUNDARY)"
            ),
            Refusal::Body(e) => write!(f, "reading the body failed: {e}"),
            Refusal::Form => write!(
                f,
                "the body is a form (Content-Type application/x-www-form-urlencoded), not an image: \
                 curl -d strips the file's newlines and breaks it; send it as it is with \
                 curl --data-binary @FILE or curl -T FILE"
            ),
            Refusal::Idle(idle) => write!(
                f,
                "the body sent nothing for {} s (see --push-idle-timeout)",
                idle.as_secs_f64()
            ),
        }
    }
}

/// What became of the frames of one push.
#[derive(Default)]
struct Tally {
    accepted: u64,
    refused: u64,
    last: Option<Refusal>,
}

impl Tally {
    /// Counts a refusal on the hub (for `/status`) and in this push.
    fn refuse(&mut self, hub: &Hub, why: Refusal) {
        hub.reject(&why);
        self.note(hub, why);
    }

    /// Counts a refusal in this push only (the hub counted it already).
    fn note(&mut self, hub: &Hub, why: Refusal) {
        tracing::warn!(stream = hub.name(), "pushed frame refused: {why}");
        self.refused += 1;
        self.last = Some(why);
    }

    async fn publish(&mut self, hub: &Hub, data: Bytes, opts: &HttpOptions) {
        let frame = match convert::to_frame(data, &opts.convert).await {
            Ok(frame) => frame,
            Err(e) => return self.refuse(hub, Refusal::Frame(e.into())),
        };
        match hub.publish(frame) {
            Ok(_) => {
                self.accepted += 1;
                hub.set_source_state(SourceState::Running);
            }
            Err(e) => self.note(hub, Refusal::Frame(e)),
        }
    }

    fn reply(self, hub: &Hub) -> Response {
        match self.last {
            None if self.accepted > 0 => StatusCode::NO_CONTENT.into_response(),
            None => {
                let why = Refusal::Empty;
                hub.reject(&why);
                (why.status(), format!("{why}\n")).into_response()
            }
            Some(why) if self.accepted == 0 && self.refused == 1 => {
                (why.status(), format!("{why}\n")).into_response()
            }
            Some(why) => (
                why.status(),
                format!(
                    "accepted {} frames, refused {}; the last refused: {why}\n",
                    self.accepted, self.refused
                ),
            )
                .into_response(),
        }
    }
}

/// A body of one image or of JPEGs back to back. JPEGs are published as
/// each one completes; any other image must be the whole body.
///
/// A body that starts with a `--boundary` line is a multipart stream sent
/// without a `Content-Type` (as ffmpeg's `-f mpjpeg` HTTP output does) and
/// is read as one.
async fn push_images(
    hub: &Hub,
    mut body: Body,
    opts: &HttpOptions,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    let limit = opts.max_frame_bytes;
    // Until the first bytes tell what the body is.
    let mut head = BytesMut::new();
    let mut splitter: Option<Splitter> = None;
    // How much of `head` is known to hold no line break: the search for the
    // end of a first `--boundary` line goes on from there, so that a line
    // that never ends is looked at once, not again on every piece.
    let mut searched = 0;
    while let Some(data) = next_chunk(&mut body, opts.push_idle_timeout).await? {
        if let Some(splitter) = splitter.as_mut() {
            splitter.push(&data);
            drain(hub, splitter, opts, tally).await?;
            continue;
        }
        let decided = head.len() >= JPEG_OR_MULTIPART && !head.starts_with(b"--");
        head.extend_from_slice(&data);
        if decided {
            // Neither a JPEG nor a multipart stream: one image of another
            // format, converted when the body ends.
            if head.len() > limit {
                return Err(Refusal::TooLarge(limit));
            }
            continue;
        }
        if head.starts_with(b"--") {
            let Some(eol) = memchr::memchr(b'\n', &head[searched..]).map(|i| searched + i) else {
                searched = head.len();
                if head.len() > limit {
                    return Err(Refusal::TooLarge(limit));
                }
                continue;
            };
            let boundary = String::from_utf8_lossy(&head[2..eol]).trim().to_string();
            if boundary.is_empty() {
                // RFC 2046 boundaries are 1 to 70 characters; with none,
                // every line that starts with "--" would end a part.
                return Err(Refusal::NoBoundary);
            }
            let mut reader = PartReader::new(&boundary, limit);
            reader.push(&head);
            return read_parts(hub, body, reader, opts, tally).await;
        }
        if ImageKind::detect(&head) == ImageKind::Jpeg {
            let mut s = Splitter::new(limit);
            s.push(&head);
            head.clear();
            drain(hub, &mut s, opts, tally).await?;
            splitter = Some(s);
        } else if head.len() > limit {
            return Err(Refusal::TooLarge(limit));
        }
    }
    match splitter.as_mut() {
        Some(splitter) => {
            splitter.finish();
            drain(hub, splitter, opts, tally).await
        }
        // One image in another format (or too short to tell).
        None if !head.is_empty() => {
            tally.publish(hub, head.freeze(), opts).await;
            Ok(())
        }
        None => Ok(()),
    }
}

/// How many first bytes of a push tell a JPEG (`FF D8 FF`) or a multipart
/// stream (`--`) from anything else.
const JPEG_OR_MULTIPART: usize = 3;

/// Publishes the frames the splitter has found; a frame it had to drop
/// ends the push with the reason.
async fn drain(
    hub: &Hub,
    splitter: &mut Splitter,
    opts: &HttpOptions,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    while let Some(event) = splitter.next_event() {
        match event {
            Split::Frame(jpeg) => tally.publish(hub, jpeg, opts).await,
            Split::Dropped(Problem::TooLarge { limit }) => return Err(Refusal::TooLarge(limit)),
            Split::Dropped(problem) => return Err(Refusal::Split(problem)),
        }
    }
    Ok(())
}

/// A `multipart/*` body: each part is a frame.
async fn push_multipart(
    hub: &Hub,
    body: Body,
    boundary: &str,
    opts: &HttpOptions,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    let reader = PartReader::new(boundary, opts.max_frame_bytes);
    read_parts(hub, body, reader, opts, tally).await
}

/// Publishes every part `reader` finds in what is left of `body`.
async fn read_parts(
    hub: &Hub,
    mut body: Body,
    mut reader: PartReader,
    opts: &HttpOptions,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    loop {
        loop {
            match reader.next_part() {
                Ok(Some(part)) => tally.publish(hub, part.body, opts).await,
                Ok(None) => break,
                Err(multipart::reader::MultipartError::TooLarge { limit }) => {
                    tally.refuse(hub, Refusal::TooLarge(limit))
                }
                Err(e) => tally.refuse(hub, Refusal::Body(e.to_string())),
            }
        }
        let Some(data) = next_chunk(&mut body, opts.push_idle_timeout).await? else {
            return Ok(());
        };
        reader.push(&data);
    }
}

/// The next bytes of a push body; `None` at its end. A sender that sends
/// nothing for `idle` is refused, so that one that died without closing
/// does not hold its connection (and the stream's "pushing" state) forever.
async fn next_chunk(body: &mut Body, idle: Option<Duration>) -> Result<Option<Bytes>, Refusal> {
    loop {
        let frame = match idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| Refusal::Idle(idle))?,
            None => body.frame().await,
        };
        let Some(frame) = frame else {
            return Ok(None);
        };
        let frame = frame.map_err(|e| Refusal::Body(e.to_string()))?;
        // Trailers carry no image data.
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}

/// The index page: every stream the client may watch, live.
fn index(st: &AppState, creds: &Creds) -> Response {
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
            r#"<figure><img src="/stream/{n}{suffix}" alt="live stream {n}"><figcaption><b>{n}</b> · <a href="/stream/{n}{suffix}">stream</a> · <a href="/snapshot/{n}{suffix}">snapshot</a></figcaption></figure>
"#
        ));
    }
    if hubs.is_empty() {
        cards.push_str("<p>This server has no streams.</p>");
    }
    let mut res = Html(format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mjpeg-server</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;background:#111;color:#ddd}}
a{{color:#8cf}} main{{display:flex;flex-wrap:wrap;gap:1.5rem}}
figure{{margin:0}} img{{display:block;max-width:min(100%,960px);background:#222;min-width:160px;min-height:90px}}
figcaption{{margin-top:.4rem}} code{{color:#fc8}}
</style></head><body>
<h1>mjpeg-server</h1>
<main>
{cards}</main>
<p>Embed a stream with <code>&lt;img src="http://HOST:PORT/stream/NAME"&gt;</code>. Counters: <a href="/status{suffix}">/status</a>.</p>
</body></html>
"#
    ))
    .into_response();
    no_cache(&mut res);
    res
}
