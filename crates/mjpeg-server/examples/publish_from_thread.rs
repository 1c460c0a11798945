//! Frames from a plain loop on a plain thread: no async anywhere in your
//! code.
//!
//! ```sh
//! cargo run --example publish_from_thread                  # http://127.0.0.1:8080/
//! cargo run --example publish_from_thread -- 127.0.0.1:9000
//! ```
//!
//! The address to listen on is the first argument, else the `MJPEG_LISTEN`
//! environment variable, else 127.0.0.1:8080; it takes the forms of
//! `mjpeg-server --listen` (`8081`, `0.0.0.0:8080`, `localhost:8080`).
//!
//! [`Server::start`] serves from threads of its own and returns; the loop
//! draws pixels, encodes them once ([`Frame::from_pixels`]) and publishes
//! them. Every viewer gets the newest frame; nobody waits for anybody.

use mjpeg_server::frame::Pixels;
use mjpeg_server::server::ListenAddr;
use mjpeg_server::{Frame, Server, ServerOptions, Streams};
use std::time::Duration;

const WIDTH: u16 = 320;
const HEIGHT: u16 = 240;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let streams = Streams::new();
    let hub = streams.add("plasma")?;
    let listen: ListenAddr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MJPEG_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let server = Server::start(&[listen], streams, ServerOptions::default())?;
    println!("serving http://{}/stream/plasma", server.local_addr());

    let mut rgb = vec![0u8; usize::from(WIDTH) * usize::from(HEIGHT) * 3];
    for t in 0u32.. {
        draw(&mut rgb, t);
        // Encoded once, shared by every viewer; `publish` never waits for
        // them.
        hub.publish(Frame::from_pixels(&rgb, WIDTH, HEIGHT, Pixels::Rgb, 85)?)?;
        std::thread::sleep(Duration::from_millis(40));
    }
    server.stop()?;
    Ok(())
}

/// A moving colour pattern, `t` frames in.
fn draw(rgb: &mut [u8], t: u32) {
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        let x = (i % usize::from(WIDTH)) as f32;
        let y = (i / usize::from(WIDTH)) as f32;
        let t = t as f32 * 0.08;
        let v = ((x * 0.05 + t).sin() + (y * 0.07 - t).cos() + ((x + y) * 0.03 + t).sin()) / 3.0;
        px[0] = (128.0 + 127.0 * v) as u8;
        px[1] = (128.0 + 127.0 * (v + 2.1).sin()) as u8;
        px[2] = (128.0 + 127.0 * (v + 4.2).sin()) as u8;
    }
}
