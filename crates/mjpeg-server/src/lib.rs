//! # mjpeg-server
//!
//! Turn a sequence of images into a live MJPEG stream over HTTP
//! (`multipart/x-mixed-replace`), so that `<img src="http://host:8080/stream">`
//! shows it live in any browser, and ffmpeg, VLC, OpenCV, Home Assistant and
//! OctoPrint can read it. This crate is the library; the `mjpeg-server`
//! command is built on it.
//!
//! ## Publishing frames from Rust
//!
//! ```
//! use mjpeg_server::frame::Pixels;
//! use mjpeg_server::{Frame, Streams};
//!
//! let streams = Streams::new();
//! let hub = streams.add("cam").unwrap();
//! // Pixels are encoded once, here; every viewer shares the JPEG.
//! let red = [255u8, 0, 0].repeat(320 * 240);
//! hub.publish(Frame::from_pixels(&red, 320, 240, Pixels::Rgb, 85).unwrap()).unwrap();
//! assert_eq!(hub.latest().unwrap().frame().width(), 320);
//! ```
//!
//! Then serve them, in one of three ways:
//!
//! - [`Server::start`]: the whole server on threads of its own, for a
//!   program with no async code (`examples/publish_from_thread.rs`);
//! - [`Server::bind`] and [`Server::run`]: the same inside your tokio
//!   runtime (`examples/publish_frames.rs`);
//! - [`http::Mount`]: one stream (or its snapshot, or push) at a route of
//!   your own axum app, behind your own middleware
//!   (`examples/one_stream_behind_auth.rs`), or [`http::router`] for every
//!   route of the server (`examples/axum_embed.rs`).
//!
//! Frames can also come from the server's own sources, started from code:
//! [`source::SourceSpec`] names them (`SourceSpec::Dir(path)`, a relay, a
//! chart, …) and [`SourceSpec::spawn`](source::SourceSpec::spawn) starts
//! one publishing into a hub.
//!
//! ## Layout
//!
//! | module | role |
//! | --- | --- |
//! | [`source`] | tasks that produce frames: [`source::demo`], [`source::dir`], `watch`, [`source::pipe`] (stdin, commands), `relay`, `chart`, [`source::synthetic`]; and `push` through [`http`] |
//! | [`ingest`] | one reader for every byte stream a source receives: multipart, JPEGs back to back ([`ingest::split`]) or one image |
//! | [`jpeg`] | the marker walk: is this a whole JPEG, where does it end, how large is it |
//! | [`convert`] | any image format to a JPEG frame, off the async workers |
//! | [`frame`] | [`Frame`]: a checked JPEG in shared [`bytes::Bytes`] |
//! | [`hub`] | [`Hub`]: one per stream, the newest frame for every viewer, and the hubs of its variants ([`Hub::variant`]); [`Streams`]: the set of them |
//! | [`variant`] | a stream at the size and quality a viewer asks for (`?width=320`): the spec, and making one frame of it (reduced decode, resize, encode) |
//! | [`multipart`] | the wire format, encoded once per frame; [`multipart::reader`] reads other servers' |
//! | `stream_request` | what a request for a stream is (which stream, rate, layout) or why it is refused, for both paths below |
//! | [`http`] | the axum handlers: stream, snapshot, push, index, status, metrics, mjpg-streamer URLs; [`http::Mount`] |
//! | [`http::ws`] | `/ws`: every stream of a page over one WebSocket, for the browser player ([`http::player_js`], `<mjpeg-stream>`) |
//! | `viewer` | one viewer: which frame next, and the direct socket writer |
//! | [`server`] | [`Server`]: listeners, the accept loop, connection limits, request heads, graceful shutdown |
//! | [`access`] | who may watch and push: Basic users, bearer tokens, per-stream rules |
//! | `tls` | rustls certificate, reload, HTTP/2 by ALPN (feature `tls`) |
//! | [`metrics`] | `/metrics`: every stream's counters and the refusals by reason, for Prometheus |
//!
//! ## The path of one frame
//!
//! 1. A source has bytes: a file read by `dir:`, a part read by the
//!    [`ingest::FrameReader`] of a push, a relay or a pipe.
//! 2. [`convert::to_frame`] makes a [`Frame`] of them: a JPEG is checked
//!    by the [`jpeg`] marker walk and passes untouched; another format is
//!    decoded and encoded once.
//! 3. [`Hub::publish`] encodes the part's header once and swaps the frame in
//!    as the newest; every subscribed viewer is woken.
//! 4. Each viewer takes the newest frame when its socket has room (a slow
//!    one skips frames; nothing queues) and writes the part header, the JPEG
//!    and the trailer, all shared by reference: on the standalone server's
//!    direct path as one vectored write straight to the socket (plain
//!    stream `GET`s, almost every viewer), otherwise as the body of the
//!    axum handler's response.
//!
//! ## Cargo features
//!
//! All on by default. Without them the library keeps the hub, frames,
//! multipart, the handlers and the server, and drops their dependencies:
//! `watch` (notify), `relay` (reqwest), `chart` (plotters), `convert`
//! (image: without it only JPEGs are taken) and `tls` (rustls).
//!
//! ## Messages
//!
//! Refusals name the option that lifts them, by its API name; a program
//! that offers the options under other names (flags) says so once with
//! [`set_option_names`].

#![warn(missing_docs)]

pub mod access;
mod canvas;
pub mod convert;
mod created;
pub mod frame;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod jpeg;
pub mod metrics;
pub mod multipart;
mod names;
mod refusals;
pub mod server;
pub mod source;
mod stream_request;
#[cfg(feature = "tls")]
pub mod tls;
pub mod variant;
mod viewer;

/// The parsers' checks that the fuzz targets (`fuzz/`) and the regression
/// test of their findings (`tests/fuzz_regressions.rs`) run; not API.
#[doc(hidden)]
pub mod fuzz {
    pub use crate::ingest::split::fuzz_split as split;
    pub use crate::multipart::reader::fuzz_read as multipart;
    pub use crate::stream_request::fuzz_request as request;
    pub use crate::variant::reduced::fuzz_decode as reduced_decode;
}
mod xorshift;

pub use frame::{Frame, FrameError};
pub use hub::{Hub, PublishError, Streams};
pub use names::{set_option_names, OptionNames};
pub use server::{Server, ServerOptions};

/// The README's Rust examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;

/// Files of `tests/data` for the unit tests of every module.
#[cfg(test)]
pub(crate) mod test_data {
    /// The bytes of `tests/data/NAME`; panics naming the file if missing.
    pub(crate) fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/data/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
    }
}
