//! A live MJPEG route inside an existing axum app.
//!
//! ```sh
//! cargo run --example axum_embed
//! # http://127.0.0.1:3000/           your own page, showing the stream
//! # http://127.0.0.1:3000/cam/stream/demo   the stream itself
//! cargo run --example axum_embed -- 127.0.0.1:3001
//! ```
//!
//! The address to listen on is the first argument, else the `MJPEG_LISTEN`
//! environment variable, else 127.0.0.1:3000 (as `HOST:PORT`, given to
//! `tokio::net::TcpListener::bind`).
//!
//! `mjpeg_server::http::router` returns an ordinary `axum::Router`: nest it
//! under a prefix (or merge it) next to your own routes, and publish frames
//! into its hubs from anywhere in your program.

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use mjpeg_server::http::{self, HttpOptions};
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::Streams;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The streams, and something publishing into one: here the built-in
    // demo picture; in your program, `hub.publish(frame)`.
    let streams = Streams::new();
    let hub = streams.add("demo")?;
    let shutdown = CancellationToken::new();
    SourceSpec::Demo.spawn(hub, SourceOptions::default(), shutdown.clone());

    let app = Router::new()
        .route(
            "/",
            get(|| async { Html(r#"<h1>My app</h1><img src="/cam/stream/demo">"#) }),
        )
        .nest(
            "/cam",
            http::router(streams, HttpOptions::default(), shutdown),
        );

    let listen = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MJPEG_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("serving http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
