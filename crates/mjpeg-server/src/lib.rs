//! # mjpeg-server
//!
//! Turn a sequence of images into a live MJPEG stream over HTTP
//! (`multipart/x-mixed-replace`), so that `<img src="http://host:8080/stream">`
//! shows it live in any browser, and ffmpeg, VLC, OpenCV, Home Assistant and
//! OctoPrint can read it.
//!
//! ## Layout
//!
//! The path of one frame, source to socket:
//!
//! | module | role |
//! | --- | --- |
//! | [`source`] | tasks that produce images: [`source::demo`], [`source::dir`], [`source::watch`], [`source::pipe`] (stdin, commands), [`source::relay`], and `push` through [`http`] |
//! | [`jpeg`] | marker parsing: is this a whole JPEG, where does it end |
//! | [`convert`] | any image format to a JPEG frame, off the async workers |
//! | [`frame`] | [`Frame`]: a checked JPEG in shared [`bytes::Bytes`] |
//! | [`hub`] | [`Hub`]: one per stream, the newest frame for every viewer |
//! | [`multipart`] | the wire format, encoded once per frame; [`multipart::reader`] reads other servers' |
//! | [`http`] | the routes: stream, snapshot, push, index, status, mjpg-streamer URLs |
//! | [`viewer`] | one viewer: which frame next; the direct socket path for plain stream requests |
//! | [`server`] | accept loop, connection limits, request-head limits, graceful shutdown |
//! | [`access`] | who may watch and push: Basic users, bearer tokens, per-stream rules |
//! | [`tls`] | rustls certificate, reload, HTTP/2 by ALPN |
//! | [`metrics`] | `/metrics`: the counters of every stream for Prometheus |
//!
//! A frame's path: a source hands bytes to [`convert`] (or the splitter in
//! [`source::pipe`]), which checks them with [`jpeg`] and makes a [`Frame`];
//! [`Hub::publish`] encodes its part header once and swaps it in as the
//! newest frame; each viewer's body in [`http`] takes the newest frame when
//! its socket has room and writes header, JPEG and trailer by reference.
//!
//! ## Publishing frames from Rust
//!
//! ```
//! use mjpeg_server::{Frame, Streams};
//!
//! let streams = Streams::new();
//! let hub = streams.add("cam").unwrap();
//! let jpeg = std::fs::read("../../tests/data/jpeg_5k.jpg").unwrap();
//! hub.publish(Frame::from_jpeg(jpeg).unwrap()).unwrap();
//! assert_eq!(hub.latest().unwrap().frame().width(), 320);
//! // Serve `streams` with `Server::bind(addr, streams, opts)` and `run()`,
//! // or merge `http::router(...)` into your own axum app.
//! ```

#![warn(missing_docs)]

pub mod access;
pub mod convert;
mod created;
pub mod frame;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod jpeg;
pub mod metrics;
pub mod multipart;
pub mod server;
pub mod source;
mod stream_request;
#[cfg(feature = "tls")]
pub mod tls;
pub mod viewer;

/// The parsers' checks that the fuzz targets (`fuzz/`) and the regression
/// test of their findings (`tests/fuzz_regressions.rs`) run; not API.
#[doc(hidden)]
pub mod fuzz {
    pub use crate::ingest::split::fuzz_split as split;
    pub use crate::multipart::reader::fuzz_read as multipart;
    pub use crate::stream_request::fuzz_request as request;
}
mod xorshift;

pub use frame::{Frame, FrameError};
pub use hub::{Hub, PublishError, Streams};
pub use server::{Server, ServerOptions};

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
