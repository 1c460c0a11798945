//! One live stream at a route of an existing axum app, behind that app's
//! own authentication.
//!
//! ```sh
//! cargo run --example one_stream_behind_auth
//! # http://127.0.0.1:3000/?key=letmein            the app's page, showing the camera
//! # http://127.0.0.1:3000/my/camera.mjpg?key=letmein   the stream itself
//! # http://127.0.0.1:3000/my/camera.mjpg          401: the app's layer refuses
//! cargo run --example one_stream_behind_auth -- 127.0.0.1:3001
//! ```
//!
//! The address to listen on is the first argument, else the `MJPEG_LISTEN`
//! environment variable, else 127.0.0.1:3000. The key is `CAMERA_KEY`, else
//! `letmein`.
//!
//! [`Mount`] hands out the handlers of one stream; the app decides where
//! they go and what stands in front of them. Here a middleware of the app's
//! own checks `?key=` (which an `<img>` can send) or `Authorization:
//! Bearer`, and the stream knows nothing of it.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mjpeg_server::http::{HttpOptions, Mount};
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::Hub;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The camera: here the built-in demo picture; in your program,
    // `camera.publish(frame)` from wherever frames come from.
    let camera = Hub::new("camera");
    let shutdown = CancellationToken::new();
    SourceSpec::Demo.spawn(camera.clone(), SourceOptions::default(), shutdown.clone());

    let key: Arc<str> = std::env::var("CAMERA_KEY")
        .unwrap_or_else(|_| "letmein".into())
        .into();
    let mount = Mount::with_options(camera, HttpOptions::default(), shutdown.clone());
    let app = Router::new()
        .route("/", get(page))
        .route("/my/camera.mjpg", mount.stream())
        .route("/my/camera.jpg", mount.snapshot())
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let key = key.clone();
            async move { require_key(&key, req, next).await }
        }));

    let listen = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MJPEG_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("serving http://{}/?key=…", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Ends the streams, which would otherwise keep the server open.
            shutdown.cancel();
        })
        .await?;
    Ok(())
}

async fn page() -> Html<&'static str> {
    Html(
        r#"<h1>My app</h1>
<img src="/my/camera.mjpg?key=letmein" alt="camera">"#,
    )
}

/// The app's own authentication: every route needs the key.
async fn require_key(key: &str, req: Request, next: Next) -> Response {
    let in_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("key=") == Some(key)));
    let in_header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ") == Some(key));
    if in_query || in_header {
        next.run(req).await
    } else {
        (StatusCode::UNAUTHORIZED, "a key is needed: ?key=KEY\n").into_response()
    }
}
