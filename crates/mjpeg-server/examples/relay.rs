//! Relay another MJPEG server: many viewers, one upstream connection.
//!
//! ```sh
//! mjpeg-server --listen 127.0.0.1:8090          # an origin (the demo stream)
//! cargo run --example relay -- http://127.0.0.1:8090/stream/demo
//! # http://127.0.0.1:8080/stream/cam
//! cargo run --example relay -- http://127.0.0.1:8090/stream/demo 127.0.0.1:8081
//! ```
//!
//! The first argument is the upstream URL (default: the origin above). The
//! address to listen on is the second argument, else the `MJPEG_LISTEN`
//! environment variable, else 127.0.0.1:8080; it takes the forms of
//! `mjpeg-server --listen` (`8081`, `0.0.0.0:8080`, `localhost:8080`).
//!
//! The relay connects upstream only while someone watches, keeps the
//! upstream's timestamps, and reconnects with back-off if it is lost; the
//! viewers keep the last frame meanwhile.

use mjpeg_server::server::ListenAddr;
use mjpeg_server::source::relay::{self, RelayOptions};
use mjpeg_server::{Server, ServerOptions, Streams};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8090/stream/demo".into());
    let streams = Streams::new();
    let hub = streams.add("cam")?;
    let listen: ListenAddr = std::env::args()
        .nth(2)
        .or_else(|| std::env::var("MJPEG_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let server = Server::bind_all(&[listen], streams, ServerOptions::default()).await?;
    println!(
        "relaying {url} at http://{}/stream/cam",
        server.local_addr()
    );
    tokio::spawn(relay::run(
        RelayOptions::new(url),
        hub,
        server.shutdown_token(),
    ));
    server.run().await?;
    Ok(())
}
