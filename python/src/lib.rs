//! The `mjpeg_server` Python module (`mjpeg_server._native`): the
//! library's hub, server and JPEG encoder behind a Python API.
//!
//! | file | role |
//! | --- | --- |
//! | `server.rs` | `Server`: its own tokio runtime, start and stop, the streams and their sources |
//! | `options.rs` | the keyword arguments of `Server`, mapped onto the library's options |
//! | `stream.rs` | `Stream` (publish, viewers, URLs) and `Chart` (add numbers) |
//! | `pixels.rs` | what `publish` takes: encoded images, arrays, Pillow images, matplotlib figures |
//!
//! Python calls that wait (starting, stopping, encoding, waiting for a
//! viewer) release the GIL, so the program's other threads run meanwhile.
//! The server's own threads never take it: nothing here calls back into
//! Python from them.

use pyo3::prelude::*;

mod options;
mod pixels;
mod server;
mod stream;

/// Messages that a user can act on name the options by their Python names.
const PYTHON_NAMES: mjpeg_server::OptionNames = mjpeg_server::OptionNames {
    max_frame: "the max_frame_size argument of Server",
    max_pixels: "the max_pixels argument of Server",
    push_idle_timeout: "the push_idle_timeout argument of Server",
    allow_create: "pass allow_create=True to Server",
    push_stream: "server.stream(\"NAME\", source=\"push\")",
    chart_stream: "server.chart(\"NAME\")",
    listen: "another listen= address (port 0 picks a free one)",
    max_variants: "the max_variants argument of Server",
    allow_origin: "allow_origin=[\"ORIGIN\"] in Server",
};

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    mjpeg_server::set_option_names(PYTHON_NAMES);
    init_logging();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::Server>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<stream::Chart>()?;
    Ok(())
}

/// The server's warnings (refused frames, lost upstreams, refused
/// viewers) go to standard error, as a Python program's warnings do.
/// `MJPEG_SERVER_LOG` picks the level as `RUST_LOG` does (`info`,
/// `debug`, `mjpeg_server=debug`); the default is `warn`.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MJPEG_SERVER_LOG").unwrap_or_else(|_| "warn".into());
    // Another extension of the process may have set a subscriber first;
    // then the server logs through it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
