//! `Stream` and `Chart`: one stream of a server, as Python sees it.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::time::{Duration, SystemTime};

use mjpeg_server::hub::Hub;
use mjpeg_server::source::chart::Chart as ChartData;

use crate::pixels::{frame_from, Encoding};
use crate::server::Server;

/// One stream of a server: publish frames to it, see who watches.
#[pyclass(module = "mjpeg_server", frozen, subclass)]
pub struct Stream {
    server: Py<Server>,
    hub: Hub,
}

pub(crate) fn new_stream(py: Python<'_>, server: Py<Server>, hub: Hub) -> PyResult<Py<Stream>> {
    Py::new(py, Stream { server, hub })
}

impl Stream {
    fn url_of(&self, py: Python<'_>, route: &str) -> Option<String> {
        let base = self.server.bind(py).get().base_url()?;
        Some(format!("{base}{route}/{}", self.hub.name()))
    }
}

#[pymethods]
impl Stream {
    /// Publishes one frame; every viewer gets it (a slow one skips to it).
    /// Never waits for viewers. Returns the frame's sequence number.
    ///
    /// Takes JPEG bytes (passed through untouched) or another image
    /// format's bytes; a NumPy uint8 array of shape (H, W), (H, W, 3) or
    /// (H, W, 4); a Pillow Image; or a matplotlib Figure. Pixels are
    /// encoded once, at `quality`, with the GIL released; `bgr=True` reads
    /// 3- and 4-channel arrays in OpenCV's blue-green-red order.
    #[pyo3(signature = (frame, quality = 85, *, bgr = false))]
    fn publish(&self, frame: &Bound<'_, PyAny>, quality: i64, bgr: bool) -> PyResult<u64> {
        let py = frame.py();
        let quality = u8::try_from(quality)
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| {
                PyValueError::new_err(format!("quality={quality} is not between 1 and 100"))
            })?;
        let server = self.server.bind(py).get();
        let frame = frame_from(frame, Encoding { quality, bgr }, server.convert_options())?;
        self.hub
            .publish(frame)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The stream's name.
    #[getter]
    fn name(&self) -> &str {
        self.hub.name()
    }

    /// How many viewers watch now: render only when someone does.
    #[getter]
    fn viewers(&self) -> usize {
        *self.hub.watch_clients().borrow()
    }

    /// Frames published so far.
    #[getter]
    fn frames(&self) -> u64 {
        self.hub.counters().frames_published
    }

    /// The newest frame's JPEG bytes, or `None` before the first.
    #[getter]
    fn latest<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.hub.latest().map(|p| PyBytes::new(py, p.jpeg()))
    }

    /// The stream's URL (`http://127.0.0.1:8080/stream/NAME`), for an
    /// `<img src=…>`; `None` while the server is not running.
    #[getter]
    fn url(&self, py: Python<'_>) -> Option<String> {
        self.url_of(py, "stream")
    }

    /// The URL of the newest frame as one JPEG; `None` while the server is
    /// not running.
    #[getter]
    fn snapshot_url(&self, py: Python<'_>) -> Option<String> {
        self.url_of(py, "snapshot")
    }

    /// Waits until someone watches (returns True) or `timeout` seconds
    /// pass (returns False); `None` waits as long as it takes. The GIL is
    /// released meanwhile. Ctrl-C is noticed within a tenth of a second.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_viewer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = match timeout {
            Some(t) => Some(
                std::time::Instant::now()
                    + Duration::try_from_secs_f64(t).map_err(|_| {
                        PyValueError::new_err(format!("timeout={t} is not a number of seconds"))
                    })?,
            ),
            None => None,
        };
        let handle = self.server.bind(py).get().runtime_handle();
        let mut clients = self.hub.watch_clients();
        loop {
            // Short waits, so that a KeyboardInterrupt gets through.
            let step = Duration::from_millis(100);
            let step = match deadline {
                Some(d) => step.min(d.saturating_duration_since(std::time::Instant::now())),
                None => step,
            };
            let watched = py.detach(|| {
                handle.block_on(async {
                    tokio::time::timeout(step, clients.wait_for(|n| *n > 0))
                        .await
                        .map(|r| r.is_ok())
                        .unwrap_or(false)
                })
            });
            if watched {
                return Ok(true);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// Shows the stream live in Jupyter.
    fn _repr_html_(&self, py: Python<'_>) -> String {
        let name = html_escape(self.hub.name());
        match self.url_of(py, "stream") {
            Some(url) => format!(
                "<img src=\"{}\" alt=\"{name}\" style=\"max-width:100%\">",
                html_escape(&url)
            ),
            None => format!("<p>Stream <b>{name}</b>: the server is not running (call <code>start()</code>).</p>"),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.url_of(py, "stream") {
            Some(url) => format!("<mjpeg_server.Stream {:?} at {url}>", self.hub.name()),
            None => format!(
                "<mjpeg_server.Stream {:?} (server not running)>",
                self.hub.name()
            ),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stream that draws a live chart of the numbers added to it.
#[pyclass(module = "mjpeg_server", frozen, extends = Stream)]
pub struct Chart {
    data: ChartData,
}

pub(crate) fn new_chart(
    py: Python<'_>,
    server: Py<Server>,
    hub: Hub,
    data: ChartData,
) -> PyResult<Py<Chart>> {
    Py::new(
        py,
        PyClassInitializer::from(Stream { server, hub }).add_subclass(Chart { data }),
    )
}

#[pymethods]
impl Chart {
    /// Adds one sample: each keyword is a series (`load=0.4, temp=61.5`),
    /// at time `t` (Unix seconds, as `time.time()` gives; now if left out).
    /// A bad value refuses the whole sample with a ValueError naming it.
    #[pyo3(signature = (t = None, **values))]
    fn add(&self, t: Option<f64>, values: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let mut pairs: Vec<(String, f64)> = Vec::new();
        for (name, value) in values.into_iter().flat_map(|d| d.iter()) {
            let name: String = name.extract()?;
            let value: f64 = value
                .extract()
                .map_err(|_| PyValueError::new_err(format!("{name}: {} is not a number", value)))?;
            pairs.push((name, value));
        }
        let t = match t {
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "t={t} is not a time in Unix seconds"
                )))
            }
            None => None,
        };
        let pairs: Vec<(&str, f64)> = pairs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.data
            .push_sample(t, &pairs)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Adds samples as text lines (`load=0.42 temp=61.5`, one sample a
    /// line, `t=UNIX_SECONDS` optional), all or nothing. Returns how many.
    fn add_lines(&self, text: &str) -> PyResult<usize> {
        self.data
            .push_text(text)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// How many series and samples the chart holds.
    #[getter]
    fn counts(&self) -> (usize, usize) {
        self.data.counts()
    }

    /// A chart draws its own frames.
    #[pyo3(signature = (*_args, **_kwargs))]
    fn publish(
        &self,
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        Err(PyRuntimeError::new_err(
            "a chart draws its own frames: add numbers with chart.add(name=value), or make a \
             plain stream with server.stream(name) to publish pictures",
        ))
    }
}
