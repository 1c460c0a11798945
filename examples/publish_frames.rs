//! Publish frames from your own loop and serve them.
//!
//! ```sh
//! cargo run --example publish_frames
//! # then open http://127.0.0.1:8080/
//! ```
//!
//! The loop here alternates two JPEGs from the test data; a real program would
//! publish images from a camera, a renderer or a plotting library.

use mjpeg_server::{Frame, Server, ServerOptions, Streams};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let streams = Streams::new();
    let hub = streams.add("cam")?;
    let server = Server::bind("127.0.0.1:8080".parse()?, streams, ServerOptions::default()).await?;
    println!("serving http://{}/stream/cam", server.local_addr());
    tokio::spawn(server.run());

    let images = [
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/jpeg_50k.jpg"
        ))?,
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/progressive.jpg"
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
