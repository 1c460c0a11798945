//! `chart`: numbers in, a live line chart out.
//!
//! Most people who want "a live graph in an `<img>`" have numbers, not
//! pictures: a load average, a temperature, a training loss. Without this
//! source they would need a plotting script that renders images and pushes
//! them. With it, `--stream cpu=chart` turns numbers into a chart stream:
//!
//! * `POST /stream/cpu/data` with `{"load": 0.42, "temp": 61.5}` (optionally
//!   `"t"`, Unix seconds, at most [`MAX_AHEAD`] ahead of the server's clock;
//!   an array of such objects is a batch) or with text
//!   lines `load=0.42 temp=61.5`, one sample per line;
//! * lines of the same text form on standard input (`chart:stdin`), so
//!   `vmstat 1 | while read -r _ _ _ free _; do echo "free=$free"; done | mjpeg-server --stream mem=chart:stdin`
//!   works (a program that buffers its output to a pipe, as awk does,
//!   shows nothing for minutes; see the README);
//! * from Rust, [`Chart::push_sample`].
//!
//! Each name is a series with its own colour and legend entry. The x axis
//! shows the last `window` seconds up to the newest sample, labelled in
//! seconds (or minutes, hours) before it; the newest sample's time is shown
//! in the top corner. The y axis is fitted to the data unless fixed.
//!
//! ## When frames are made
//!
//! A frame is drawn only when data changed, and at most `fps` times a
//! second: a burst of samples becomes one frame, and an idle chart costs no
//! CPU (the HTTP layer re-sends the newest frame to idle viewers by
//! itself). Because the x axis ends at the newest sample rather than at the
//! wall clock, the same data always gives the same picture.
//!
//! Drawing ([`plotters`] into an RGB buffer) and JPEG encoding take a few
//! milliseconds, so they run on the blocking pool, never on the async
//! workers that serve clients. Text uses DejaVu Sans, embedded in the
//! binary, so no system fonts or libraries are needed.
//!
//! ## Memory
//!
//! Samples older than the window (counted back from the newest) are
//! dropped as new ones arrive; a series with no sample left disappears.
//! On top of that a chart holds at most [`MAX_SERIES`] series of at most
//! [`MAX_POINTS`] samples each, so a client that sends too fast or too many
//! names cannot make the server grow without bound.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::frame::Frame;
use crate::hub::{Hub, SourceState};

mod canvas;
mod draw;
mod input;
mod model;
mod options;
mod samples;
mod stdin;
mod ticks;

pub use draw::RenderError;
pub use options::{ChartOptions, ChartSpec, Rgb, Style, Theme, PALETTE};
pub use samples::SampleError;

use draw::render;
use model::{thin, Data, SeriesSnapshot, Snapshot};
use samples::{check_name, parse_json, parse_lines, unix_seconds, Sample};
use stdin::{read_stdin, STDIN_WAITING};

/// Most series one chart shows; samples naming more are refused.
pub const MAX_SERIES: usize = 16;
/// Most samples kept per series, whatever the window: at 100 samples a
/// second this still covers 100 s.
pub const MAX_POINTS: usize = 10_000;
/// Longest series name, in characters.
pub const MAX_NAME: usize = 40;
/// How far ahead of the server's clock a sample's `t` may be. The x axis
/// ends at the newest sample and older ones fall out of the window behind
/// it, so one sample from the far future would push every later one out
/// of the chart, which would then never change again. A few minutes allow
/// for senders whose clocks are a little fast.
pub const MAX_AHEAD: Duration = Duration::from_secs(300);

struct Shared {
    options: ChartOptions,
    data: Mutex<Data>,
    /// Woken when data changes. `Notify` keeps one permit, so any number of
    /// pushes while a frame is drawn wake the renderer once: that is how a
    /// burst coalesces.
    changed: Notify,
}

/// A live chart: feed it samples, and its stream shows them.
///
/// Cheap to clone; clones are the same chart. Pushing is a short lock and a
/// wake-up, so it can be called from async tasks, blocking threads or plain
/// `std::thread`s; drawing happens elsewhere (see [`Chart::start`]).
///
/// ```no_run
/// # async fn demo() {
/// use mjpeg_server::source::chart::{Chart, ChartOptions};
/// use mjpeg_server::Streams;
/// use tokio_util::sync::CancellationToken;
///
/// let streams = Streams::new();
/// let hub = streams.add("cpu").unwrap();
/// let chart = Chart::start(&hub, ChartOptions::default(), CancellationToken::new());
/// chart.push_sample(None, &[("load", 0.42), ("temp", 61.5)]).unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct Chart {
    shared: Arc<Shared>,
}

impl fmt::Debug for Chart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chart")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Chart {
    /// A chart with no data and no stream yet; see [`Chart::start`] to draw
    /// it into a stream.
    pub fn new(options: ChartOptions) -> Chart {
        Chart {
            shared: Arc::new(Shared {
                options,
                data: Mutex::new(Data::default()),
                changed: Notify::new(),
            }),
        }
    }

    /// Makes a chart that draws into `hub` until `shutdown`, and returns
    /// its handle.
    ///
    /// The chart is attached to the hub (so that `POST /stream/NAME/data`
    /// and [`Chart::of`] find it) before this returns, and an empty chart is
    /// published at once so that viewers see something before the first
    /// sample. Must be called inside a tokio runtime.
    pub fn start(hub: &Hub, options: ChartOptions, shutdown: CancellationToken) -> Chart {
        let chart = Chart::new(options);
        chart.attach(hub);
        tokio::spawn(chart.clone().run(hub.clone(), shutdown));
        chart
    }

    /// The chart attached to `hub`, if its stream is a chart.
    pub fn of(hub: &Hub) -> Option<Chart> {
        let input = hub.data_input()?;
        input.as_any().downcast_ref::<Chart>().cloned()
    }

    /// Makes the chart `hub`'s data input, so that [`Chart::of`] and
    /// `POST /stream/NAME/data` find it. [`Chart::start`] does this; call
    /// it yourself only when running [`Chart::run`] yourself.
    pub fn attach(&self, hub: &Hub) {
        hub.set_data_input(Arc::new(self.clone()));
    }

    /// The options the chart was made with.
    pub fn options(&self) -> &ChartOptions {
        &self.shared.options
    }

    /// Adds one sample: `values` as `(series, value)` at time `t` (now when
    /// `None`). All values are checked first; a bad one refuses the whole
    /// sample and names the field.
    pub fn push_sample(
        &self,
        t: Option<SystemTime>,
        values: &[(&str, f64)],
    ) -> Result<(), SampleError> {
        let t = t.map(unix_seconds).transpose()?;
        if values.is_empty() {
            return Err(SampleError::Empty);
        }
        let mut sample = Sample {
            t,
            values: Vec::with_capacity(values.len()),
        };
        for &(name, value) in values {
            check_name(name)?;
            if !value.is_finite() {
                return Err(SampleError::NotANumber {
                    field: name.to_string(),
                    value: value.to_string(),
                });
            }
            sample.values.push((name.to_string(), value));
        }
        self.apply(&[sample]).map(|_| ())
    }

    /// Adds the samples of a text of lines such as `load=0.42 temp=61.5`
    /// (`t=UNIX_SECONDS` optional; blank lines and `#` comments ignored).
    /// All or nothing: one bad line refuses the text. Returns the number of
    /// samples taken.
    pub fn push_text(&self, text: &str) -> Result<usize, SampleError> {
        self.apply(&parse_lines(text)?)
    }

    /// Adds the samples of a JSON text: `{"load": 0.42, "t": 1700000000}`
    /// or an array of such objects. All or nothing. Returns the number of
    /// samples taken.
    pub fn push_json(&self, json: &[u8]) -> Result<usize, SampleError> {
        self.apply(&parse_json(json)?)
    }

    fn apply(&self, samples: &[Sample]) -> Result<usize, SampleError> {
        let now = unix_seconds(SystemTime::now()).unwrap_or(0.0);
        let window = self.shared.options.window.as_secs_f64();
        lock(&self.shared.data).apply(samples, now, window)?;
        self.shared.changed.notify_one();
        Ok(samples.len())
    }

    /// The number of series and of samples held now.
    pub fn counts(&self) -> (usize, usize) {
        let data = lock(&self.shared.data);
        let samples = data.series.iter().map(|s| s.points.len()).sum();
        (data.series.len(), samples)
    }

    /// Whether the chart holds no samples.
    pub fn is_empty(&self) -> bool {
        self.counts().1 == 0
    }

    /// A copy of the data to draw, thinned to at most four points per
    /// pixel column (first, lowest, highest, last), which looks the same
    /// as all of them and bounds the cost of drawing.
    fn snapshot(&self) -> Snapshot {
        let o = &self.shared.options;
        let data = lock(&self.shared.data);
        let Some(newest) = data.newest else {
            return Snapshot {
                version: data.version,
                ..Snapshot::default()
            };
        };
        let window = o.window.as_secs_f64();
        let columns = o.width.max(1) as usize;
        let series = data
            .series
            .iter()
            .map(|s| SeriesSnapshot {
                name: s.name.clone(),
                slot: s.slot,
                points: thin(&s.points, newest, window, columns),
            })
            .collect();
        Snapshot {
            series,
            newest: Some(newest),
            version: data.version,
        }
    }

    /// Draws the chart as it is now and encodes it as a JPEG. Takes a few
    /// milliseconds of CPU: call it from a blocking thread, not an async
    /// task. [`Chart::run`] calls it whenever data changed.
    pub fn render_jpeg(&self) -> Result<Vec<u8>, RenderError> {
        render(&self.shared.options, &self.snapshot())
    }

    /// Publishes a frame into `hub` whenever data changed, at most
    /// `max_fps` times a second, until `shutdown`. Starts with an empty
    /// chart. [`Chart::start`] spawns this; run it once per chart (a chart
    /// feeds one stream; two runs would share its wake-ups).
    pub async fn run(self, hub: Hub, shutdown: CancellationToken) {
        self.run_waiting(hub, shutdown, "no sample yet").await
    }

    /// [`run`](Chart::run), with `waiting` as the source state in
    /// `/status` until the first sample.
    async fn run_waiting(self, hub: Hub, shutdown: CancellationToken, waiting: &str) {
        let min_interval = Duration::from_secs_f64(1.0 / self.shared.options.max_fps);
        let mut drawn: Option<u64> = None;
        let mut last: Option<Instant> = None;
        hub.set_source_state(SourceState::Waiting(waiting.into()));
        loop {
            if drawn.is_some() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.shared.changed.notified() => {}
                }
            }
            if let Some(last) = last {
                // The cap: samples that arrive meanwhile join this frame.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(last + min_interval) => {}
                }
            }
            let snapshot = self.snapshot();
            if drawn == Some(snapshot.version) {
                continue; // Woken for data an earlier frame already showed.
            }
            drawn = Some(snapshot.version);
            last = Some(Instant::now());
            let has_data = snapshot.newest.is_some();
            let options = self.shared.options.clone();
            let jpeg = match tokio::task::spawn_blocking(move || render(&options, &snapshot)).await
            {
                Ok(Ok(jpeg)) => jpeg,
                Ok(Err(e)) => {
                    tracing::error!(stream = hub.name(), "{e}");
                    hub.reject(&e);
                    continue;
                }
                Err(e) => {
                    tracing::error!(stream = hub.name(), "chart renderer failed: {e}");
                    continue;
                }
            };
            match Frame::from_jpeg(jpeg) {
                Ok(frame) => {
                    if let Err(e) = hub.publish(frame) {
                        tracing::error!(stream = hub.name(), "chart frame refused: {e}");
                    } else if has_data {
                        hub.set_source_state(SourceState::Running);
                    }
                }
                Err(e) => {
                    tracing::error!(stream = hub.name(), "chart encoder made a bad JPEG: {e}")
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Data is only changed by `Data::apply`, which cannot panic half-way
    // through in a way that breaks its invariants worse than losing a sample.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a `chart` or `chart:stdin` source for `hub`: the chart is
/// attached before this returns, so samples posted right after are taken.
pub fn spawn(spec: ChartSpec, hub: Hub, shutdown: CancellationToken) -> JoinHandle<()> {
    let chart = Chart::new(spec.options);
    chart.attach(&hub);
    tokio::spawn(async move {
        if spec.stdin {
            let render = chart
                .clone()
                .run_waiting(hub.clone(), shutdown.clone(), STDIN_WAITING);
            tokio::join!(render, read_stdin(chart, hub, shutdown));
        } else {
            chart.run(hub, shutdown).await;
        }
    })
}

#[cfg(test)]
mod tests;
