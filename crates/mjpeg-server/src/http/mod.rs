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
//! | `GET /metrics` | the same counters for Prometheus |
//! | `GET /ws` | every stream a page shows over one WebSocket ([`ws`]) |
//! | `GET /player.js` | the browser player: `<mjpeg-stream>` ([`player_js`]) |
//! | `GET /?action=stream[_N]`, `/?action=snapshot[_N]` | mjpg-streamer's URLs |
//! | `PUT`/`POST /stream/{name}` | publish: one image, concatenated JPEGs, or a multipart stream |
//! | `POST /stream/{name}/data` | data for the stream's source: a chart's numbers ([`crate::hub::DataInput`]) |
//!
//! `HEAD` works on all of them; other methods get `405`, unknown paths and
//! stream names `404`.
//!
//! A browser's image load (`Sec-Fetch-Dest: image`) gets its part headers in
//! advance ([`multipart::Layout::Advanced`]), so that Chrome shows each
//! frame as soon as it arrives; every other client gets the plain parts
//! with `Content-Length`. One function decides which, for this router and
//! for the standalone server's direct path alike.

mod index;
mod mount;
mod player;
mod push;
pub mod ws;

pub use mount::Mount;
pub use player::player_js;

/// Held by every request of a connection of the standalone server, and by
/// a WebSocket for as long as it lives: the connection keeps its place in
/// the server's limits until the last is gone.
#[derive(Clone)]
pub(crate) struct ConnectionHold(
    // Never used: only held, and dropped.
    #[allow(dead_code)] pub(crate) tokio::sync::mpsc::Sender<()>,
);

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, Action, Denied, Identity, Presented};
use crate::convert::ConvertOptions;
use crate::created::Created;
use crate::hub::{Hub, HubStats, Streams};
use crate::multipart;
use crate::names::option_names;
use crate::refusals::Reason;
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
    /// Most variants (`?width=`, `?height=`, `?quality=`) of one stream
    /// being made at a time; a request for one more gets `503`. Each costs
    /// a decode, a resize and an encode per source frame while watched.
    pub max_variants: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            resend_after: Some(Duration::from_secs(1)),
            max_frame_bytes: crate::ingest::DEFAULT_MAX_FRAME,
            allow_create: false,
            max_created_streams: 64,
            created_stream_idle: Some(Duration::from_secs(600)),
            convert: ConvertOptions::default(),
            access: Arc::new(Access::default()),
            max_clients_per_stream: None,
            push_idle_timeout: Some(Duration::from_secs(30)),
            allow_origins: Vec::new(),
            max_variants: 8,
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
    /// The same credentials in buffers of their own. A request's header
    /// values share the buffer hyper read the request into (16 KiB), so
    /// whatever outlives the request, a WebSocket, keeps a copy instead.
    fn owned(self) -> Creds {
        Creds {
            authorization: self
                .authorization
                .map(|v| HeaderValue::from_maybe_shared(Bytes::copy_from_slice(v.as_bytes())))
                .and_then(Result::ok),
            ..self
        }
    }

    fn presented(&self) -> Presented<'_> {
        Presented {
            authorization: self.authorization.as_ref().map(HeaderValue::as_bytes),
            token: self.token.as_deref(),
        }
    }
}

impl AppState {
    /// The state of handlers serving `streams` with `opts` until
    /// `shutdown`.
    fn new(streams: Streams, opts: HttpOptions, shutdown: CancellationToken) -> AppState {
        AppState {
            metrics: Arc::new(crate::metrics::registry(&streams)),
            created: Created::new(opts.max_created_streams, opts.created_stream_idle),
            streams,
            opts: Arc::new(opts),
            shutdown,
        }
    }

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
        let (reason, what) = match why {
            Denied::Missing => (Reason::NoCredentials, "a request without credentials"),
            Denied::Invalid => (Reason::WrongCredentials, "a wrong user, password or token"),
            Denied::Forbidden => (Reason::Forbidden, "credentials without this permission"),
        };
        self.streams.refusals().note(reason, creds.peer, &what);
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
            stream_request::Refusal::Variant(why) => {
                self.streams.refusals().note(
                    Reason::TooManyVariants,
                    creds.peer,
                    &format_args!("{}", why.to_string().trim_end()),
                );
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, why.to_string()).into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
            stream_request::Refusal::Full { name, limit } => {
                self.streams.refusals().note(
                    Reason::StreamFull,
                    creds.peer,
                    &format_args!("a viewer of {name:?} over its limit of {limit}"),
                );
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
    let state = AppState::new(streams, opts, shutdown);
    state
        .created
        .spawn_sweeper(state.streams.clone(), state.shutdown.clone());
    let cors = cors_layer(&state.opts.allow_origins);
    let router = Router::new()
        .route("/", get(root))
        .route("/stream", get(stream_first))
        .route(
            "/stream/{name}",
            get(stream_named).put(push::push).post(push::push),
        );
    let router = router
        .route("/stream/{name}/data", axum::routing::post(post_data))
        .route("/snapshot", get(snapshot_first))
        .route("/snapshot/{name}", get(snapshot_named))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route("/player.js", get(player_js))
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
        return index::index(&st, &creds);
    };
    if action_index(action, "stream").is_some() {
        stream_response(&st, &creds, Which::Action(action), &viewing, &p)
    } else if let Some(n) = action_index(action, "snapshot") {
        match n.and_then(|n| st.streams.nth(n)) {
            Some(hub) => snapshot_response(&st, &creds, &hub, &p).await,
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

async fn snapshot_first(
    State(st): State<AppState>,
    creds: Creds,
    Query(p): Query<Params>,
) -> Response {
    match st.streams.nth(0) {
        Some(hub) => snapshot_response(&st, &creds, &hub, &p).await,
        None => not_found_text("this server has no streams\n".into()),
    }
}

async fn snapshot_named(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
    Query(p): Query<Params>,
) -> Response {
    match st.streams.get(&name) {
        Some(hub) => snapshot_response(&st, &creds, &hub, &p).await,
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

async fn websocket(State(st): State<AppState>, up: ws::Upgrade) -> Response {
    ws::handle(st, up)
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

async fn snapshot_response(st: &AppState, creds: &Creds, hub: &Hub, p: &Params) -> Response {
    if let Err(refused) = st.allow(creds, Action::Watch, hub.name()) {
        return refused;
    }
    let no_frame = |why: String| {
        let mut res = (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        res
    };
    let variant = match stream_request::variant_of(hub, p) {
        Ok(v) => v,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let Some(latest) = hub.latest() else {
        return no_frame(format!(
            "stream {:?} has no frame yet; try again shortly\n",
            hub.name()
        ));
    };
    let p = match variant {
        None => latest,
        Some(spec) => {
            let derived = match hub.variant(spec, st.opts.max_variants) {
                Ok(derived) => derived,
                Err(why) => {
                    return st.refuse(creds, stream_request::Refusal::Variant(why));
                }
            };
            // A viewer of the variant until its first frame is made.
            let mut frames = derived.subscribe();
            match tokio::time::timeout(SNAPSHOT_VARIANT_WAIT, frames.next()).await {
                Ok(p) => p,
                Err(_) => {
                    return no_frame(format!(
                        "the {spec} variant of stream {:?} was not made within {SNAPSHOT_VARIANT_WAIT:?}; try again\n",
                        hub.name()
                    ))
                }
            }
        }
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

/// How long a snapshot of a variant waits for the variant's first frame.
const SNAPSHOT_VARIANT_WAIT: Duration = Duration::from_secs(10);

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
    let wanted =
        match stream_request::decide(&st.streams, &st.opts.access, st.opts.max_variants, &asked) {
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

/// `POST /stream/{name}/data`: data for a stream's source other than
/// frames (the samples of a chart), handed to the stream's
/// [`DataInput`](crate::hub::DataInput). `204` when taken, `400` with what
/// is wrong, `409` for a stream whose source takes none.
async fn post_data(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
    headers: axum::http::HeaderMap,
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
    let Some(input) = hub.data_input() else {
        return (
            StatusCode::CONFLICT,
            format!(
                "stream {name:?} is not a chart; declare it with {} to post numbers to it\n",
                option_names().chart_stream.replace("NAME", &name)
            ),
        )
            .into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match axum::body::to_bytes(body, DATA_BODY_LIMIT).await {
        Ok(body) => match input.take(content_type, &body) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
        },
        Err(e) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("chart data over {DATA_BODY_LIMIT} bytes, or unreadable: {e}\n"),
        )
            .into_response(),
    }
}

/// Samples for a chart are numbers; 2 MiB of them is plenty.
const DATA_BODY_LIMIT: usize = 2 << 20;
