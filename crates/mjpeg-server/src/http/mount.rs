//! One stream's handlers, for routes of an embedder's own axum app.

use axum::body::Body;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::{get, MethodRouter};
use tokio_util::sync::CancellationToken;

use super::{push, snapshot_response, stream_response, ws, AppState, Creds, HttpOptions, Viewing};
use crate::hub::{Hub, Streams};
use crate::stream_request::{Params, Which};

/// The handlers of one stream, to mount at routes of your own
/// [`axum::Router`], behind your own middleware.
///
/// [`router`](super::router) serves every stream of a [`Streams`] at the
/// server's URLs; `Mount` serves one [`Hub`] wherever you like:
///
/// ```
/// use axum::Router;
/// use mjpeg_server::http::Mount;
/// use mjpeg_server::Hub;
///
/// let camera = Hub::new("camera");
/// let mount = Mount::new(camera.clone());
/// let app: Router = Router::new()
///     .route("/my/camera.mjpg", mount.stream())
///     .route("/my/camera.jpg", mount.snapshot())
///     // The browser player: <mjpeg-stream src="/my/camera.mjpg"
///     // ws="/my/ws"> after <script type="module" src="/my/player.js">.
///     .route("/my/ws", mount.websocket())
///     .route("/my/player.js", axum::routing::get(mjpeg_server::http::player_js));
/// // Publish into `camera` from anywhere: camera.publish(frame).
/// ```
///
/// The stream takes the same query parameters as the server's
/// (`?fps=N`, `?advance_headers=1`), and gives the same answers. Access
/// rules are those of [`HttpOptions::access`], open by default: put your
/// own authentication in a layer around the routes.
#[derive(Clone)]
pub struct Mount {
    state: AppState,
    hub: Hub,
}

impl Mount {
    /// The handlers of `hub`, with the default [`HttpOptions`]. Its viewers
    /// are never ended by the server: use [`Mount::with_options`] to end
    /// them at your shutdown.
    pub fn new(hub: Hub) -> Mount {
        Mount::with_options(hub, HttpOptions::default(), CancellationToken::new())
    }

    /// The handlers of `hub` with `opts`; stream responses end when
    /// `shutdown` is cancelled (a graceful shutdown waits for them).
    pub fn with_options(hub: Hub, opts: HttpOptions, shutdown: CancellationToken) -> Mount {
        let state = AppState::new(Streams::of(hub.clone()), opts, shutdown);
        Mount { state, hub }
    }

    /// `GET` (and `HEAD`): the live MJPEG stream.
    pub fn stream<S: Clone + Send + Sync + 'static>(&self) -> MethodRouter<S> {
        let mount = self.clone();
        get(
            |viewing: Viewing, creds: Creds, Query(p): Query<Params>| async move {
                let which = Which::Named(mount.hub.name());
                stream_response(&mount.state, &creds, which, &viewing, &p)
            },
        )
    }

    /// `GET` (and `HEAD`): the newest frame as one JPEG.
    pub fn snapshot<S: Clone + Send + Sync + 'static>(&self) -> MethodRouter<S> {
        let mount = self.clone();
        get(|creds: Creds, Query(p): Query<Params>| async move {
            snapshot_response(&mount.state, &creds, &mount.hub, &p).await
        })
    }

    /// `GET`: the player's WebSocket ([`ws`]), serving this one stream
    /// under its hub's name, with the same access rules as the stream.
    pub fn websocket<S: Clone + Send + Sync + 'static>(&self) -> MethodRouter<S> {
        let mount = self.clone();
        get(|up: ws::Upgrade| async move { ws::handle(mount.state.clone(), up) })
    }

    /// `PUT` and `POST`: frames published by other programs, as the
    /// server's push (one image, JPEGs back to back or a multipart
    /// stream). Mounting it lets the stream accept pushes.
    pub fn push<S: Clone + Send + Sync + 'static>(&self) -> MethodRouter<S> {
        self.hub.set_accepts_push(true);
        let handler = |mount: Mount| {
            move |creds: Creds, headers: HeaderMap, body: Body| async move {
                push::push_to(&mount.state, mount.hub.name(), creds, headers, body).await
            }
        };
        axum::routing::put(handler(self.clone())).post(handler(self.clone()))
    }
}
