//! Publish frames from your own loop and serve them.
//!
//! ```sh
//! cargo run --example publish_frames                   # http://127.0.0.1:8080/
//! cargo run --example publish_frames -- 0.0.0.0:9000   # or any address
//! MJPEG_LISTEN=8081 cargo run --example publish_frames # 127.0.0.1:8081
//! ```
//!
//! The address to listen on is the first argument, else the `MJPEG_LISTEN`
//! environment variable, else 127.0.0.1:8080; it takes the forms of
//! `mjpeg-server --listen` (`8081`, `0.0.0.0:8080`, `localhost:8080`).
//!
//! The loop here alternates two JPEGs from the test data; a real program would
//! publish images from a camera, a renderer or a plotting library.

use mjpeg_server::server::ListenAddr;
use mjpeg_server::{Frame, Server, ServerOptions, Streams};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let streams = Streams::new();
    let hub = streams.add("cam")?;
    let listen: ListenAddr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MJPEG_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let server = Server::bind_all(&[listen], streams, ServerOptions::default()).await?;
    println!("serving http://{}/stream/cam", server.local_addr());
    tokio::spawn(server.run());

    let images = [
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/jpeg_50k.jpg"
        ))?,
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/progressive.jpg"
        ))?,
    ];
    for i in 0.. {
        // `publish` is synchronous and cheap: it can be called from any task
        // or thread. A corrupt image is refused and the last good one stays.
        hub.publish(Frame::from_jpeg(images[i % 2].clone())?)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
