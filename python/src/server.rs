//! `Server`: the library's server on a tokio runtime of its own, with the
//! streams Python publishes to and the sources it starts.
//!
//! The runtime lives as long as the `Server` object. `start` binds and
//! serves on it and starts every stream's source; `stop` ends both and
//! waits for them (with the GIL released); `start` may be called again.
//! Streams, and the frames they hold, outlive a stop.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use mjpeg_server::hub::Hub;
use mjpeg_server::server::{ListenAddr, ServerError};
use mjpeg_server::source::chart::{Chart, ChartOptions};
use mjpeg_server::source::SourceSpec;
use mjpeg_server::variant::{split_overlay, Clock, Overlay};
use mjpeg_server::Streams;

use crate::options::{describe, Args, Config};
use crate::stream::{new_chart, new_stream};

/// How long `stop` waits for sources to stop (an `exec:` command gets
/// SIGTERM, then SIGKILL after 2 s), as the command line does.
const SOURCE_STOP_WAIT: Duration = Duration::from_secs(5);

/// An MJPEG server: streams, their sources, and the HTTP server that
/// serves them from threads of its own.
#[pyclass(module = "mjpeg_server", frozen)]
pub struct Server {
    config: Config,
    streams: Streams,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
    state: Mutex<State>,
}

/// What a stream's frames come from.
enum Feed {
    /// `Stream.publish`: nothing to start.
    Python,
    /// A source of the SOURCE syntax of `--stream`.
    Source(SourceSpec),
    /// A chart that Python adds numbers to; its data outlives a stop.
    Chart(Chart),
}

#[derive(Default)]
struct State {
    feeds: Vec<(Hub, Feed)>,
    serving: Option<Serving>,
}

struct Serving {
    shutdown: CancellationToken,
    server: JoinHandle<io::Result<()>>,
    sources: Vec<JoinHandle<()>>,
    addr: Option<SocketAddr>,
}

impl Server {
    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the server listens now, if it does.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.state().serving.as_ref().and_then(|s| s.addr)
    }

    /// The server's base URL, as a browser on this machine reaches it.
    pub(crate) fn base_url(&self) -> Option<String> {
        let addr = self.addr()?;
        let scheme = if self.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // 0.0.0.0 and :: are not addresses to connect to; this machine is.
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        Some(format!("{scheme}://{host}:{}/", addr.port()))
    }

    pub(crate) fn convert_options(&self) -> &mjpeg_server::convert::ConvertOptions {
        &self.config.sources.convert
    }

    pub(crate) fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.runtime().handle().clone()
    }

    /// Starts `feed` for `hub` inside the runtime, until `shutdown`.
    fn spawn(
        &self,
        hub: &Hub,
        feed: &Feed,
        shutdown: &CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let _inside = self.runtime().enter();
        match feed {
            Feed::Python => None,
            Feed::Source(spec) => {
                spec.clone()
                    .spawn(hub.clone(), self.config.sources.clone(), shutdown.clone())
            }
            Feed::Chart(chart) => Some(tokio::spawn(
                chart.clone().run(hub.clone(), shutdown.clone()),
            )),
        }
    }

    /// Adds a stream fed by `feed`, started now if the server runs.
    fn add(&self, name: &str, feed: Feed) -> PyResult<Hub> {
        let hub = self
            .streams
            .add(name)
            .map_err(|e| PyValueError::new_err(format!("stream {name:?}: {e}")))?;
        let mut state = self.state();
        if let Some(serving) = state.serving.as_mut() {
            let task = self.spawn(&hub, &feed, &serving.shutdown);
            serving.sources.extend(task);
        }
        state.feeds.push((hub.clone(), feed));
        Ok(hub)
    }

    fn stop_serving(&self, py: Python<'_>, serving: Serving) -> PyResult<()> {
        serving.shutdown.cancel();
        let runtime = self.runtime();
        let result = py.detach(|| {
            runtime.block_on(async {
                let served = serving.server.await;
                let stopped = futures_join(serving.sources);
                let _ = tokio::time::timeout(SOURCE_STOP_WAIT, stopped).await;
                served
            })
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PyOSError::new_err(format!("the server failed: {e}"))),
            Err(e) => Err(PyRuntimeError::new_err(format!(
                "the server's task failed: {e}"
            ))),
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

fn server_error(e: ServerError) -> PyErr {
    match e {
        ServerError::Runtime(_) | ServerError::NoAddress => PyRuntimeError::new_err(e.to_string()),
        _ => PyOSError::new_err(e.to_string()),
    }
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (
        listen = None, *, fps = None, quality = None, users = None, tokens = None,
        public = None, realm = None, tls_cert = None, tls_key = None,
        max_connections = None, max_connections_per_address = None,
        max_clients_per_stream = None, max_frame_size = None, max_pixels = None,
        allow_create = false, allow_origin = None, write_timeout = None,
        push_idle_timeout = None, shutdown_grace = None, max_variants = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        listen: Option<Bound<'py, PyAny>>,
        fps: Option<f64>,
        quality: Option<u8>,
        users: Option<Bound<'py, PyDict>>,
        tokens: Option<Vec<String>>,
        public: Option<Vec<String>>,
        realm: Option<String>,
        tls_cert: Option<String>,
        tls_key: Option<String>,
        max_connections: Option<usize>,
        max_connections_per_address: Option<usize>,
        max_clients_per_stream: Option<usize>,
        max_frame_size: Option<usize>,
        max_pixels: Option<u64>,
        allow_create: bool,
        allow_origin: Option<Vec<String>>,
        write_timeout: Option<f64>,
        push_idle_timeout: Option<f64>,
        shutdown_grace: Option<f64>,
        max_variants: Option<usize>,
    ) -> PyResult<Server> {
        let listen = match listen {
            Some(listen) => listen,
            None => "127.0.0.1:8080".into_pyobject(py)?.into_any(),
        };
        let config = Args {
            listen,
            fps,
            quality,
            users,
            tokens,
            public,
            realm,
            tls_cert,
            tls_key,
            max_connections,
            max_connections_per_address,
            max_clients_per_stream,
            max_frame_size,
            max_pixels,
            allow_create,
            allow_origin,
            write_timeout,
            push_idle_timeout,
            shutdown_grace,
            max_variants,
        }
        .check()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("mjpeg-server")
            .enable_all()
            .build()
            .map_err(|e| {
                PyRuntimeError::new_err(format!("cannot start the server's threads: {e}"))
            })?;
        Ok(Server {
            config,
            streams: Streams::new(),
            runtime: Some(runtime),
            state: Mutex::new(State::default()),
        })
    }

    /// Binds the address and serves from the server's own threads; returns
    /// at once. Raises OSError if the address is in use.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = self.state();
        if state.serving.is_some() {
            return Err(PyRuntimeError::new_err(format!(
                "the server is already running at {}",
                self.config.listen
            )));
        }
        let runtime = self.runtime();
        let listen = [self.config.listen.clone()];
        let opts = self.config.server.clone();
        let streams = self.streams.clone();
        let server = py
            .detach(|| runtime.block_on(mjpeg_server::Server::bind_all(&listen, streams, opts)))
            .map_err(server_error)?;
        let addr = server.local_addrs().into_iter().find_map(|a| match a {
            ListenAddr::Tcp(a) => Some(a),
            _ => None,
        });
        let shutdown = server.shutdown_token();
        let task = runtime.spawn(server.run());
        let sources = state
            .feeds
            .iter()
            .filter_map(|(hub, feed)| self.spawn(hub, feed, &shutdown))
            .collect();
        state.serving = Some(Serving {
            shutdown,
            server: task,
            sources,
            addr,
        });
        Ok(())
    }

    /// Stops serving: ends every viewer's stream (waiting up to
    /// `shutdown_grace` for them), stops the sources, and returns when all
    /// is done. Does nothing if the server is not running.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let serving = self.state().serving.take();
        match serving {
            Some(serving) => self.stop_serving(py, serving),
            None => Ok(()),
        }
    }

    /// Whether the server is serving.
    #[getter]
    fn running(&self) -> bool {
        self.state().serving.is_some()
    }

    /// The URL of the index page, `http://127.0.0.1:8080/`; `None` when
    /// not running.
    #[getter]
    fn url(&self) -> Option<String> {
        self.base_url()
    }

    /// The TCP port listened on (the one picked, with port 0); `None` when
    /// not running.
    #[getter]
    fn port(&self) -> Option<u16> {
        self.addr().map(|a| a.port())
    }

    /// The address listened on, `"127.0.0.1:8080"`; `None` when not running.
    #[getter]
    fn address(&self) -> Option<String> {
        self.addr().map(|a| a.to_string())
    }

    /// The effective options, with every default filled in.
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        describe(py, &self.config)
    }

    /// The stream `name`: a new one that Python publishes to, or one fed
    /// by `source` (the SOURCE syntax of `--stream`: `dir:PATH`,
    /// `watch:PATH`, `relay:URL`, `exec:COMMAND`, `push`, `chart`, …). An
    /// existing stream is returned as it is when no source is given.
    #[pyo3(signature = (name, source = None, *, overlay = None, overlay_time = "utc"))]
    fn stream(
        slf: &Bound<'_, Self>,
        name: &str,
        source: Option<&str>,
        overlay: Option<&str>,
        overlay_time: &str,
    ) -> PyResult<Py<crate::stream::Stream>> {
        let server = slf.get();
        let py = slf.py();
        let bad = |e: String| PyValueError::new_err(format!("stream {name:?}: {e}"));
        // `#overlay=` in the source, as on the command line, or overlay=.
        let (source, mut drawn) = match source {
            Some(s) => {
                let (rest, o) = split_overlay(s).map_err(bad)?;
                (Some(rest), o)
            }
            None => (None, None),
        };
        if let Some(text) = overlay {
            let clock = match overlay_time {
                "utc" => Clock::Utc,
                "local" => Clock::Local,
                other => {
                    return Err(bad(format!(
                        "overlay_time={other:?}: use \"utc\" or \"local\""
                    )))
                }
            };
            drawn = Some(Overlay::new(text, clock).map_err(bad)?);
        }
        let source = source.as_deref();
        if source.is_none() {
            if let Some(hub) = server.streams.get(name) {
                if drawn.is_some() {
                    hub.set_overlay(drawn);
                }
                return new_stream(py, slf.clone().unbind(), hub);
            }
        }
        let feed = match source {
            None => {
                if let Some(hub) = server.streams.get(name) {
                    return new_stream(py, slf.clone().unbind(), hub);
                }
                Feed::Python
            }
            Some(source) => {
                if server.streams.get(name).is_some() {
                    return Err(PyValueError::new_err(format!(
                        "stream {name:?} exists already; a source is given when a stream is made"
                    )));
                }
                let spec: SourceSpec = source
                    .parse()
                    .map_err(|e| PyValueError::new_err(format!("source {source:?}: {e}")))?;
                if spec.reads_stdin()
                    && server
                        .state()
                        .feeds
                        .iter()
                        .any(|(_, f)| matches!(f, Feed::Source(s) if s.reads_stdin()))
                {
                    return Err(PyValueError::new_err(
                        "only one stream can read standard input",
                    ));
                }
                let runtime = server.runtime();
                py.detach(|| runtime.block_on(spec.check()))
                    .map_err(|e| PyValueError::new_err(format!("stream {name:?}: {e}")))?;
                Feed::Source(spec)
            }
        };
        let hub = server.add(name, feed)?;
        hub.set_overlay(drawn);
        new_stream(py, slf.clone().unbind(), hub)
    }

    /// A live chart stream named `name`: add numbers with `Chart.add`.
    /// Options as the `chart` source's: `title`, `window` (seconds shown),
    /// `ymin`, `ymax`, `size` ((width, height)), `theme` ("dark" or
    /// "light"), `style` ("line" or "area"), `colors` (["RRGGBB", …]) and
    /// `fps` (most frames drawn per second).
    #[pyo3(signature = (name, *, title = None, window = None, ymin = None, ymax = None,
        size = None, theme = None, style = None, colors = None, fps = None))]
    #[allow(clippy::too_many_arguments)]
    fn chart(
        slf: &Bound<'_, Self>,
        name: &str,
        title: Option<String>,
        window: Option<f64>,
        ymin: Option<f64>,
        ymax: Option<f64>,
        size: Option<(u32, u32)>,
        theme: Option<String>,
        style: Option<String>,
        colors: Option<Vec<String>>,
        fps: Option<f64>,
    ) -> PyResult<Py<crate::stream::Chart>> {
        let mut options = ChartOptions::default();
        let given = [
            ("title", title),
            ("window", window.map(|w| w.to_string())),
            ("ymin", ymin.map(|v| v.to_string())),
            ("ymax", ymax.map(|v| v.to_string())),
            ("size", size.map(|(w, h)| format!("{w}x{h}"))),
            ("theme", theme),
            ("style", style),
            ("colors", colors.map(|c| c.join(","))),
            ("fps", fps.map(|f| f.to_string())),
        ];
        for (key, value) in given {
            if let Some(value) = value {
                options
                    .set(key, Some(&value))
                    .map_err(|e| PyValueError::new_err(format!("chart {name:?}: {e}")))?;
            }
        }
        options
            .validate()
            .map_err(|e| PyValueError::new_err(format!("chart {name:?}: {e}")))?;
        let server = slf.get();
        let chart = Chart::new(options);
        let hub = server.add(name, Feed::Chart(chart.clone()))?;
        chart.attach(&hub);
        new_chart(slf.py(), slf.clone().unbind(), hub, chart)
    }

    /// Every stream, in the order they were made.
    #[getter]
    fn streams(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<crate::stream::Stream>>> {
        slf.get()
            .streams
            .all()
            .into_iter()
            .map(|hub| new_stream(slf.py(), slf.clone().unbind(), hub))
            .collect()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if !slf.get().running() {
            slf.get().start(slf.py())?;
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.stop(py)
    }

    fn __repr__(&self) -> String {
        match self.base_url() {
            Some(url) => format!("<mjpeg_server.Server running at {url}>"),
            None => format!(
                "<mjpeg_server.Server for {} (not running)>",
                self.config.listen
            ),
        }
    }
}

impl Drop for Server {
    /// A server dropped while running (the program ends without `stop`)
    /// stops at once: its connections close and its threads end without
    /// waiting, so the interpreter's exit never hangs on it.
    fn drop(&mut self) {
        if let Some(serving) = self.state().serving.take() {
            serving.shutdown.cancel();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
