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

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::frame::Frame;
use crate::hub::{Hub, SourceState};

/// Most series one chart shows; samples naming more are refused.
pub const MAX_SERIES: usize = 16;
/// Most samples kept per series, whatever the window: at 100 samples a
/// second this still covers 100 s.
pub const MAX_POINTS: usize = 10_000;
/// Longest series name, in characters.
pub const MAX_NAME: usize = 40;
/// Longest line accepted on standard input, in bytes.
const MAX_LINE: usize = 64 * 1024;
/// How far ahead of the server's clock a sample's `t` may be. The x axis
/// ends at the newest sample and older ones fall out of the window behind
/// it, so one sample from the far future would push every later one out
/// of the chart, which would then never change again. A few minutes allow
/// for senders whose clocks are a little fast.
pub const MAX_AHEAD: Duration = Duration::from_secs(300);
/// A `t` this large is not Unix seconds but most likely milliseconds
/// (it would be the year 5138).
const T_LIMIT: f64 = 1e11;
/// JPEG quality: charts are thin lines and small text, which lower
/// qualities smear.
const QUALITY: u8 = 90;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Series colours when none are given: Tableau 10, legible on light and
/// dark backgrounds alike.
pub const PALETTE: [Rgb; 10] = [
    [0x4e, 0x9b, 0xe8],
    [0xf2, 0x8e, 0x2b],
    [0x59, 0xc3, 0x6a],
    [0xe4, 0x57, 0x56],
    [0xb0, 0x7a, 0xa1],
    [0xed, 0xc9, 0x48],
    [0x76, 0xb7, 0xb2],
    [0xff, 0x9d, 0xa7],
    [0x9c, 0x75, 0x5f],
    [0xba, 0xb0, 0xac],
];

/// Light or dark background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// Dark grey background, light text: matches the index page.
    #[default]
    Dark,
    /// White background, dark text.
    Light,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// A line through the samples.
    #[default]
    Line,
    /// A line with the area under it lightly filled.
    Area,
}

/// What a chart looks like and how often it may be redrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartOptions {
    /// Shown above the chart; none by default.
    pub title: Option<String>,
    /// How much time the x axis spans, ending at the newest sample.
    pub window: Duration,
    /// Fixed bottom of the y axis; fitted to the data when `None`.
    pub y_min: Option<f64>,
    /// Fixed top of the y axis; fitted to the data when `None`.
    pub y_max: Option<f64>,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Light or dark.
    pub theme: Theme,
    /// Line or area.
    pub style: Style,
    /// Series colours in the order series first appear; [`PALETTE`] when
    /// empty. Reused in a cycle when there are more series than colours.
    pub colors: Vec<Rgb>,
    /// Most frames drawn per second, however fast samples arrive.
    pub max_fps: f64,
}

impl Default for ChartOptions {
    /// 800×450, the last 60 s, y fitted to the data, dark, lines, at most
    /// 10 frames a second.
    fn default() -> Self {
        ChartOptions {
            title: None,
            window: Duration::from_secs(60),
            y_min: None,
            y_max: None,
            width: 800,
            height: 450,
            theme: Theme::Dark,
            style: Style::Line,
            colors: Vec::new(),
            max_fps: 10.0,
        }
    }
}

impl ChartOptions {
    /// Applies one `#key=value` option of a `chart` spec: `title=TEXT`,
    /// `window=SECONDS`, `ymin=N`, `ymax=N`, `size=WxH`, `theme=dark|light`,
    /// `style=line|area`, `colors=RRGGBB,RRGGBB,…`, `fps=N`. The error says
    /// what is wrong in words meant for the command line.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let Some(v) = value else {
            return Err(format!("option {key:?} needs a value ({key}=…)"));
        };
        let number = |what: &str| -> Result<f64, String> {
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(format!("{key}={v}: not {what}")),
            }
        };
        match key {
            "title" => self.title = (!v.is_empty()).then(|| v.to_string()),
            "window" => {
                let s = number("a number of seconds")?;
                if !(0.1..=7.0 * 86400.0).contains(&s) {
                    return Err(format!("{key}={v}: use 0.1 to 604800 seconds"));
                }
                self.window = Duration::from_secs_f64(s);
            }
            "ymin" => self.y_min = Some(number("a number")?),
            "ymax" => self.y_max = Some(number("a number")?),
            "size" => {
                let parsed = v
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
                match parsed {
                    Some((w, h)) if (160..=3840).contains(&w) && (90..=2160).contains(&h) => {
                        self.width = w;
                        self.height = h;
                    }
                    _ => {
                        return Err(format!(
                            "{key}={v}: use WIDTHxHEIGHT, 160x90 to 3840x2160, e.g. 800x450"
                        ))
                    }
                }
            }
            "theme" => {
                self.theme = match v {
                    "dark" => Theme::Dark,
                    "light" => Theme::Light,
                    _ => return Err(format!("{key}={v}: use dark or light")),
                }
            }
            "style" => {
                self.style = match v {
                    "line" => Style::Line,
                    "area" => Style::Area,
                    _ => return Err(format!("{key}={v}: use line or area")),
                }
            }
            "colors" | "colours" => {
                self.colors = v
                    .split(',')
                    .map(|c| parse_color(c.trim()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!("{key}={v}: use hex colours separated by commas, e.g. ff0000,00aa00")
                    })?;
            }
            "fps" => {
                let fps = number("a number of frames per second")?;
                if !(0.1..=120.0).contains(&fps) {
                    return Err(format!("{key}={v}: use 0.1 to 120 frames per second"));
                }
                self.max_fps = fps;
            }
            _ => {
                return Err(format!(
                    "unknown option {key:?} for chart: use title=, window=, ymin=, ymax=, size=, theme=, style=, colors=, fps="
                ))
            }
        }
        Ok(())
    }

    /// Checks options that are fine alone but not together.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(lo), Some(hi)) = (self.y_min, self.y_max) {
            if lo >= hi {
                return Err(format!("ymin={lo} must be below ymax={hi}"));
            }
        }
        Ok(())
    }

    fn color(&self, slot: usize) -> Rgb {
        if self.colors.is_empty() {
            PALETTE[slot % PALETTE.len()]
        } else {
            self.colors[slot % self.colors.len()]
        }
    }
}

/// `RRGGBB` (or `RGB`) hex, with or without a leading `#`.
fn parse_color(s: &str) -> Option<Rgb> {
    let s = s.strip_prefix('#').unwrap_or(s);
    let hex = |i: usize, n: usize| u8::from_str_radix(s.get(i..i + n)?, 16).ok();
    match s.len() {
        6 => Some([hex(0, 2)?, hex(2, 2)?, hex(4, 2)?]),
        3 => Some([hex(0, 1)? * 17, hex(1, 1)? * 17, hex(2, 1)? * 17]),
        _ => None,
    }
}

/// What `chart` or `chart:stdin` on the command line asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartSpec {
    /// Also read samples from standard input (`chart:stdin`). HTTP and the
    /// Rust API always work.
    pub stdin: bool,
    /// Looks and pace.
    pub options: ChartOptions,
}

impl fmt::Display for ChartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.stdin { "chart:stdin" } else { "chart" })
    }
}

/// Why a sample was refused. The message names the field at fault, and is
/// what an HTTP client gets back with `400`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// A value that is not a finite number.
    #[error("field {field:?}: {value} is not a number")]
    NotANumber {
        /// The series name (or `t`).
        field: String,
        /// The value as sent, shortened.
        value: String,
    },
    /// A series name that cannot be shown.
    #[error("field {field:?}: a series name must be 1 to {MAX_NAME} characters, with no control characters or spaces, and not \"t\"")]
    BadName {
        /// The name as sent, shortened.
        field: String,
    },
    /// A timestamp that is not Unix seconds.
    #[error("field \"t\": {value} is not a time in Unix seconds{hint}")]
    BadTime {
        /// The value as sent.
        value: String,
        /// A guess at what went wrong, or empty.
        hint: &'static str,
    },
    /// A time further ahead of the server's clock than [`MAX_AHEAD`].
    #[error(
        "field \"t\": {value} is {ahead:.0} s ahead of the server's clock; a sample may be \
         at most {} s ahead (is the sender's clock right?)",
        MAX_AHEAD.as_secs()
    )]
    TooFarAhead {
        /// The value as sent.
        value: String,
        /// How far ahead it is, in seconds.
        ahead: f64,
    },
    /// More series than a chart holds.
    #[error(
        "field {field:?}: a chart shows at most {MAX_SERIES} series, and this would be one more"
    )]
    TooManySeries {
        /// The first name that did not fit.
        field: String,
    },
    /// A sample with no values.
    #[error("no values: send e.g. load=0.42 or {{\"load\": 0.42}}")]
    Empty,
    /// Text that is not `name=value` pairs.
    #[error("{token:?} is not name=value, e.g. load=0.42")]
    Syntax {
        /// The offending word, shortened.
        token: String,
    },
    /// A JSON body that does not parse or is not an object.
    #[error("bad JSON: {0}")]
    Json(String),
    /// One line of a text body, or one element of a JSON array, was bad;
    /// nothing of the body was taken.
    #[error("{place} {index}: {error}")]
    At {
        /// `line` or `item`.
        place: &'static str,
        /// 1-based.
        index: usize,
        /// What was wrong there.
        error: Box<SampleError>,
    },
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// plotters failed to draw.
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    /// The JPEG encoder failed.
    #[error("encoding the chart as JPEG failed: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
}

/// A shortened copy of `s` for error messages: a client must not be able to
/// make the server echo megabytes.
fn short(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One sample as parsed: a time and named values, checked.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    t: Option<f64>,
    values: Vec<(String, f64)>,
}

fn check_name(name: &str) -> Result<(), SampleError> {
    let ok = !name.is_empty()
        && name != "t"
        && name.chars().count() <= MAX_NAME
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(SampleError::BadName { field: short(name) })
    }
}

fn check_time(t: f64, shown: &dyn fmt::Display) -> Result<f64, SampleError> {
    if t.is_finite() && (0.0..T_LIMIT).contains(&t) {
        Ok(t)
    } else {
        Err(SampleError::BadTime {
            value: short(&shown.to_string()),
            hint: if t.is_finite() && t >= T_LIMIT {
                " (milliseconds? divide by 1000)"
            } else {
                ""
            },
        })
    }
}

fn unix_seconds(t: SystemTime) -> Result<f64, SampleError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SampleError::BadTime {
            value: "a time before 1970".into(),
            hint: "",
        })?
        .as_secs_f64();
    check_time(secs, &secs)
}

/// Parses one text line: `name=value` pairs separated by spaces, tabs or
/// commas, `t=UNIX_SECONDS` optional. `None` for a blank line or a `#`
/// comment.
fn parse_line(line: &str) -> Result<Option<Sample>, SampleError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut sample = Sample {
        t: None,
        values: Vec::new(),
    };
    for token in line.split(|c: char| c.is_whitespace() || c == ',') {
        if token.is_empty() {
            continue;
        }
        let Some((name, raw)) = token.split_once('=') else {
            return Err(SampleError::Syntax {
                token: short(token),
            });
        };
        let parsed = raw.parse::<f64>().ok().filter(|v| v.is_finite());
        if name == "t" {
            let t = parsed.ok_or_else(|| SampleError::BadTime {
                value: format!("{:?}", short(raw)),
                hint: "",
            })?;
            sample.t = Some(check_time(t, &raw)?);
            continue;
        }
        check_name(name)?;
        let value = parsed.ok_or_else(|| SampleError::NotANumber {
            field: name.to_string(),
            value: format!("{:?}", short(raw)),
        })?;
        sample.values.push((name.to_string(), value));
    }
    if sample.values.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(Some(sample))
}

/// Parses a text body of lines; all or nothing.
fn parse_lines(text: &str) -> Result<Vec<Sample>, SampleError> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => {}
            Err(e) => {
                return Err(SampleError::At {
                    place: "line",
                    index: i + 1,
                    error: Box::new(e),
                })
            }
        }
    }
    if samples.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(samples)
}

/// Parses a JSON body: an object of numbers (and `t`), or an array of them.
fn parse_json(body: &[u8]) -> Result<Vec<Sample>, SampleError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| SampleError::Json(e.to_string()))?;
    match value {
        serde_json::Value::Object(map) => Ok(vec![json_sample(map)?]),
        serde_json::Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |error| SampleError::At {
                    place: "item",
                    index: i + 1,
                    error: Box::new(error),
                };
                match item {
                    serde_json::Value::Object(map) => json_sample(map).map_err(at),
                    _ => Err(at(SampleError::Json("expected an object".into()))),
                }
            })
            .collect(),
        _ => Err(SampleError::Json(
            "expected an object such as {\"load\": 0.42}, or an array of them".into(),
        )),
    }
}

fn json_sample(map: serde_json::Map<String, serde_json::Value>) -> Result<Sample, SampleError> {
    let mut sample = Sample {
        t: None,
        values: Vec::with_capacity(map.len()),
    };
    for (name, value) in map {
        let number = value.as_f64().filter(|v| v.is_finite());
        if name == "t" {
            let t = number.ok_or_else(|| SampleError::BadTime {
                value: short(&value.to_string()),
                hint: "",
            })?;
            sample.t = Some(check_time(t, &t)?);
            continue;
        }
        check_name(&name)?;
        let v = number.ok_or_else(|| SampleError::NotANumber {
            field: name.clone(),
            value: short(&value.to_string()),
        })?;
        sample.values.push((name, v));
    }
    if sample.values.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(sample)
}

/// One series: its name, colour slot and samples `(t, value)` in time order.
struct Series {
    name: String,
    slot: usize,
    points: VecDeque<(f64, f64)>,
}

/// Everything a chart holds.
#[derive(Default)]
struct Data {
    series: Vec<Series>,
    /// Time of the newest sample: where the x axis ends.
    newest: Option<f64>,
    /// Counts changes, so the renderer can tell whether it is behind.
    version: u64,
}

impl Data {
    /// Takes `samples` (all checked) at `now`, or refuses all of them.
    fn apply(&mut self, samples: &[Sample], now: f64, window: f64) -> Result<(), SampleError> {
        // Refuse before changing anything if a time is too far ahead (see
        // MAX_AHEAD) or the names would not fit.
        let latest = now + MAX_AHEAD.as_secs_f64();
        if let Some(t) = samples.iter().filter_map(|s| s.t).find(|&t| t > latest) {
            return Err(SampleError::TooFarAhead {
                value: short(&t.to_string()),
                ahead: t - now,
            });
        }
        let mut names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        for (name, _) in samples.iter().flat_map(|s| &s.values) {
            if !names.contains(&name.as_str()) {
                if names.len() >= MAX_SERIES {
                    return Err(SampleError::TooManySeries {
                        field: name.clone(),
                    });
                }
                names.push(name);
            }
        }
        // New points per series (index as in `self.series`), merged in
        // below: one merge per series however the batch is ordered, so
        // that a large batch of late samples costs a sort, not an insert
        // in the middle of the series for each.
        let mut fresh: Vec<Vec<(f64, f64)>> = vec![Vec::new(); self.series.len()];
        for sample in samples {
            let t = sample.t.unwrap_or(now);
            if self.newest.is_some_and(|newest| t < newest - window) {
                continue; // Already out of the window.
            }
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
            for (name, value) in &sample.values {
                let i = match self.series.iter().position(|s| &s.name == name) {
                    Some(i) => i,
                    None => {
                        // The lowest colour not in use, so that a series
                        // keeps its colour when another one disappears.
                        let slot = (0..)
                            .find(|slot| self.series.iter().all(|s| s.slot != *slot))
                            .unwrap_or(0);
                        self.series.push(Series {
                            name: name.clone(),
                            slot,
                            points: VecDeque::new(),
                        });
                        fresh.push(Vec::new());
                        self.series.len() - 1
                    }
                };
                fresh[i].push((t, *value));
            }
        }
        for (series, mut new) in self.series.iter_mut().zip(fresh) {
            if new.is_empty() {
                continue;
            }
            // Stable: samples with the same time keep their order.
            new.sort_by(|a, b| a.0.total_cmp(&b.0));
            let points = &mut series.points;
            if points.back().is_none_or(|&(last, _)| last <= new[0].0) {
                points.extend(new);
            } else {
                // Late samples: merge, keeping the series in time order.
                let mut all: Vec<(f64, f64)> = points.drain(..).collect();
                all.extend(new);
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                *points = all.into();
            }
        }
        if let Some(newest) = self.newest {
            let cutoff = newest - window;
            for s in &mut self.series {
                while s.points.front().is_some_and(|&(t, _)| t < cutoff) {
                    s.points.pop_front();
                }
                while s.points.len() > MAX_POINTS {
                    s.points.pop_front();
                }
            }
            self.series.retain(|s| !s.points.is_empty());
        }
        self.version += 1;
        Ok(())
    }
}

/// What the renderer draws: a copy of the data, thinned to what the
/// picture can show, with times relative to the newest sample.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    series: Vec<SeriesSnapshot>,
    newest: Option<f64>,
    version: u64,
}

#[derive(Debug, Clone)]
struct SeriesSnapshot {
    name: String,
    slot: usize,
    /// `(seconds before the newest sample (≤ 0), value)`.
    points: Vec<(f64, f64)>,
}

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
        hub.attachment::<Chart>().map(|c| Chart::clone(&c))
    }

    /// Attaches the chart to `hub`, so that [`Chart::of`] and the HTTP
    /// route find it. [`Chart::start`] does this; call it yourself only
    /// when running [`Chart::run`] yourself.
    pub fn attach(&self, hub: &Hub) {
        hub.set_attachment(Arc::new(self.clone()));
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

/// Points of `points` (in time order) in the window, with times relative to
/// `newest`, thinned to first/min/max/last per pixel column when there are
/// more than four per column.
fn thin(
    points: &VecDeque<(f64, f64)>,
    newest: f64,
    window: f64,
    columns: usize,
) -> Vec<(f64, f64)> {
    let start = newest - window;
    let visible = points.iter().filter(|&&(t, _)| t >= start);
    if points.len() <= 4 * columns {
        return visible.map(|&(t, v)| (t - newest, v)).collect();
    }
    let width = window / columns as f64;
    let mut out = Vec::with_capacity(4 * columns);
    // first, min, max, last of the current column
    let mut bucket: Option<(usize, [(f64, f64); 4])> = None;
    let flush = |out: &mut Vec<(f64, f64)>, b: [(f64, f64); 4]| {
        let [first, lo, hi, last] = b;
        let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        for p in [first, a, b, last] {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    };
    for &(t, v) in visible {
        let p = (t - newest, v);
        let col = (((t - start) / width) as usize).min(columns - 1);
        match &mut bucket {
            Some((c, b)) if *c == col => {
                if v < b[1].1 {
                    b[1] = p;
                }
                if v > b[2].1 {
                    b[2] = p;
                }
                b[3] = p;
            }
            _ => {
                if let Some((_, b)) = bucket.take() {
                    flush(&mut out, b);
                }
                bucket = Some((col, [p; 4]));
            }
        }
    }
    if let Some((_, b)) = bucket {
        flush(&mut out, b);
    }
    out
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

/// The state of a `chart:stdin` source until the first line: a pipeline
/// whose program buffers its output (awk, grep, python writing to a pipe
/// hold back 4 KB or more) shows nothing for minutes, and this says where
/// to look.
const STDIN_WAITING: &str = "no line on standard input yet; a program writing to a pipe may \
     hold its lines back (awk, grep, python): see its line-buffering option, or stdbuf -oL";

/// `chart:stdin`: takes a sample from every line on standard input until it
/// closes. Bad lines are logged and skipped; the chart keeps accepting
/// samples over HTTP after stdin closes.
async fn read_stdin(chart: Chart, hub: Hub, shutdown: CancellationToken) {
    // Read like the `stdin` source does: a pipe asynchronously (so that
    // shutdown never waits on a blocked read), anything else as a file.
    #[cfg(unix)]
    let result = match super::pipe::stdin_pipe() {
        Some(pipe) => read_lines(pipe, &chart, &hub, &shutdown).await,
        None => match super::pipe::stdin_file() {
            Ok(file) => read_lines(file, &chart, &hub, &shutdown).await,
            Err(e) => Err(e),
        },
    };
    #[cfg(not(unix))]
    let result = match super::pipe::stdin_file() {
        Ok(file) => read_lines(file, &chart, &hub, &shutdown).await,
        Err(e) => Err(e),
    };
    if shutdown.is_cancelled() {
        return;
    }
    match result {
        Ok(lines) => tracing::info!(
            stream = hub.name(),
            lines,
            "stdin closed; the chart still takes samples over HTTP"
        ),
        Err(e) => tracing::error!(stream = hub.name(), "cannot read stdin: {e}"),
    }
}

/// Feeds every line of `reader` to `chart` until it ends or `shutdown`;
/// returns the number of lines read. Lines longer than [`MAX_LINE`] are
/// skipped, so a stream without newlines cannot grow the buffer forever.
async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    chart: &Chart,
    hub: &Hub,
    shutdown: &CancellationToken,
) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut lines = 0u64;
    let mut skipping = false;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(lines),
            n = reader.read(&mut chunk) => n?,
        };
        if n == 0 {
            if !buf.is_empty() && !skipping {
                lines += 1;
                take_line(chart, hub, &buf, lines);
            }
            return Ok(lines);
        }
        let mut rest = &chunk[..n];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if !skipping {
                buf.extend_from_slice(&rest[..i]);
                lines += 1;
                take_line(chart, hub, &buf, lines);
            }
            buf.clear();
            skipping = false;
            rest = &rest[i + 1..];
        }
        if !skipping {
            buf.extend_from_slice(rest);
            if buf.len() > MAX_LINE {
                lines += 1;
                tracing::warn!(
                    stream = hub.name(),
                    "stdin line {lines}: longer than {MAX_LINE} bytes; skipped"
                );
                buf.clear();
                skipping = true;
            }
        }
    }
}

fn take_line(chart: &Chart, hub: &Hub, line: &[u8], number: u64) {
    if number == 1 && hub.stats().source == SourceState::Waiting(STDIN_WAITING.into()) {
        // A line came; a sample may not have (a header, a bad line).
        hub.set_source_state(SourceState::Waiting(
            "lines arrive on standard input, but no sample yet".into(),
        ));
    }
    let text = String::from_utf8_lossy(line);
    let result = parse_line(&text).and_then(|s| match s {
        Some(s) => chart.apply(&[s]).map(|_| ()),
        None => Ok(()),
    });
    if let Err(e) = result {
        tracing::warn!(stream = hub.name(), "stdin line {number}: {e}; skipped");
    }
}

/// `POST /stream/{name}/data` for `hub`: JSON (by `Content-Type`, or a body
/// starting with `{` or `[`) or text lines. `204` when taken, `400` naming
/// the bad field, `409` when the stream is not a chart.
pub fn post_data(hub: &Hub, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(chart) = Chart::of(hub) else {
        return (
            StatusCode::CONFLICT,
            format!(
                "stream {:?} is not a chart; declare it with --stream {}=chart to post numbers to it\n",
                hub.name(),
                hub.name()
            ),
        )
            .into_response();
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
        || matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        );
    let result = if is_json {
        chart.push_json(body)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) => chart.push_text(text),
            Err(_) => Err(SampleError::Syntax {
                token: "(bytes that are not UTF-8)".into(),
            }),
        }
    };
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

// ---------------------------------------------------------------------------
// Drawing
//
// plotters fills the background and draws the grid, the axes, the areas
// under series and the legend swatches into the RGB buffer. Series lines
// and text are drawn afterwards straight into the same buffer: lines
// antialiased with round joins (plotters joins thick lines with unbounded
// miters, which shoot spikes across the chart wherever noisy data turns
// sharply, and does not antialias them), text with ab_glyph (plotters' own
// ab_glyph text drops each glyph's side bearing, which spaces letters
// unevenly: "cp u"). The ticks are chosen here too, so that labels and grid
// lines agree.

/// Colours of a theme.
struct Palette {
    background: RGBColor,
    grid: RGBColor,
    axis: RGBColor,
    text: Rgb,
    muted: Rgb,
}

fn palette(theme: Theme) -> Palette {
    match theme {
        Theme::Dark => Palette {
            background: RGBColor(0x17, 0x1a, 0x1f),
            grid: RGBColor(0x2c, 0x31, 0x39),
            axis: RGBColor(0x5c, 0x64, 0x70),
            text: [0xd6, 0xda, 0xe0],
            muted: [0x9a, 0xa1, 0xac],
        },
        Theme::Light => Palette {
            background: RGBColor(0xff, 0xff, 0xff),
            grid: RGBColor(0xe6, 0xe8, 0xeb),
            axis: RGBColor(0x9a, 0xa0, 0xa8),
            text: [0x22, 0x25, 0x2a],
            muted: [0x5b, 0x62, 0x70],
        },
    }
}

/// DejaVu Sans, parsed once. `None` only if the embedded font were
/// broken, in which case charts are drawn without text rather than not at
/// all.
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(dejavu::sans::regular()).ok())
        .as_ref()
}

/// Width of `text` at `px` pixels per em.
fn text_width(text: &str, px: f32) -> f32 {
    let Some(font) = font() else { return 0.0 };
    let font = font.as_scaled(PxScale::from(px));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        prev = Some(id);
    }
    width
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
    Right,
}

/// An RGB buffer to draw text into.
struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: i32,
    height: i32,
}

impl Canvas<'_> {
    /// Draws `text` with its digits' vertical middle at `y`, aligned to `x`.
    fn text(&mut self, text: &str, px: f32, (x, y): (f32, f32), align: Align, color: Rgb) {
        let Some(font) = font() else { return };
        let scale = PxScale::from(px);
        let scaled = font.as_scaled(scale);
        let x = match align {
            Align::Left => x,
            Align::Center => x - text_width(text, px) / 2.0,
            Align::Right => x - text_width(text, px),
        };
        // Digits and capitals are about 0.73 em tall in DejaVu Sans.
        let baseline = (y + 0.365 * px).round();
        let mut caret = x.round();
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // A space.
            };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32, bounds.min.y as i32);
            outline.draw(|gx, gy, coverage| {
                self.blend(left + gx as i32, top + gy as i32, color, coverage);
            });
        }
    }

    fn blend(&mut self, x: i32, y: i32, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width || y >= self.height {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        // Integer blending in 1/256ths: this runs for every pixel of every
        // line and glyph, and f32 rounding is a libm call on baseline x86-64.
        let a = (alpha.clamp(0.0, 1.0) * 256.0) as i32;
        for (dst, src) in self.rgb[i..i + 3].iter_mut().zip(color) {
            let d = i32::from(*dst);
            *dst = (d + (((i32::from(src) - d) * a) >> 8)) as u8;
        }
    }
}

/// Draws `snap` and encodes it as a JPEG.
fn render(o: &ChartOptions, snap: &Snapshot) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (o.width, o.height);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    let layout = Layout::new(o, snap);
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, o, snap, &layout).map_err(|e| RenderError::Draw(e.to_string()))?;
        root.present()
            .map_err(|e| RenderError::Draw(e.to_string()))?;
    }
    let mut canvas = Canvas {
        rgb: &mut rgb,
        width: w as i32,
        height: h as i32,
    };
    layout.draw_lines(&mut canvas, o, snap);
    layout.draw_text(&mut canvas, o, snap);
    let mut jpeg = Vec::with_capacity(64 * 1024);
    // Both sizes are at most 3840 (checked by the options), so they fit.
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, QUALITY);
    // Colour at half resolution, as for photos: the lines' shape is in the
    // luma, which stays sharp, and encoding takes a third less time than
    // full-resolution colour (which the encoder picks at this quality).
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)?;
    Ok(jpeg)
}

/// Where everything goes: computed once per frame, used by the plotters
/// part and the text part alike.
struct Layout {
    /// Sizes scale with the picture, so that a 1920×1080 chart is as
    /// readable as an 800×450 one.
    scale: f32,
    label_px: f32,
    title_px: f32,
    pad: f32,
    /// The plot's pixel rectangle: left, top, right, bottom.
    plot: (i32, i32, i32, i32),
    /// x axis: from, to (in `unit`s before the newest sample), ticks.
    x: (f64, f64, Vec<f64>),
    unit: (f64, &'static str),
    /// y axis: from, to, ticks, and how its labels are written.
    y: (f64, f64, Vec<f64>),
    y_format: TickFormat,
    /// Legend entries (series index, text, left x) per row, top row first.
    legend: Vec<Vec<(usize, String, f32)>>,
    legend_top: f32,
    row_h: f32,
}

impl Layout {
    fn new(o: &ChartOptions, snap: &Snapshot) -> Layout {
        let (w, h) = (o.width as f32, o.height as f32);
        let scale = (h / 450.0).clamp(0.6, 2.5);
        let label_px = (13.0 * scale).round();
        let title_px = (18.0 * scale).round();
        let pad = (10.0 * scale).round();
        let header_h = (title_px * 1.7).round();

        // Legend: "■ name  latest" entries, wrapped into rows.
        let swatch = 14.0 * scale;
        let row_h = (label_px * 1.6).round();
        let mut legend: Vec<Vec<(usize, String, f32)>> = Vec::new();
        let mut x = w; // forces a first row
        for (i, s) in snap.series.iter().enumerate() {
            let latest = s
                .points
                .last()
                .map_or(String::new(), |&(_, v)| fmt_latest(v));
            let text = format!("{}  {latest}", s.name);
            let width = swatch + 6.0 + text_width(&text, label_px) + 2.0 * pad;
            if x + width > w - pad && !legend.last().is_some_and(|r| r.is_empty()) {
                legend.push(Vec::new());
                x = pad + 6.0 * scale;
            }
            if let Some(row) = legend.last_mut() {
                row.push((i, text, x));
            }
            x += width;
        }
        let legend_h = if legend.is_empty() {
            pad / 2.0
        } else {
            legend.len() as f32 * row_h + pad / 2.0
        };
        let legend_top = h - legend_h;

        // Axes.
        let window = o.window.as_secs_f64();
        let unit = time_unit(window);
        let x_span = window / unit.0;
        let (y0, y1) = y_range(o, snap);
        let x_label_h = (label_px * 1.9).round();
        let top = header_h;
        let bottom = legend_top - x_label_h;
        let max_y_ticks = (((bottom - top) / (45.0 * scale)) as usize).clamp(2, 10);
        let y_ticks = nice_ticks(y0, y1, max_y_ticks);
        let y_format = TickFormat::new(y0.abs().max(y1.abs()), y_ticks.1);
        let widest = y_ticks
            .0
            .iter()
            .map(|&v| text_width(&y_format.fmt(v), label_px))
            .fold(0.0, f32::max);
        let left = pad + widest + 8.0 * scale;
        // Room for half of the rightmost x label ("0s").
        let right = w - pad - label_px;
        let max_x_ticks = (((right - left) / (90.0 * scale)) as usize).clamp(2, 12);
        let x_ticks = nice_ticks(-x_span, 0.0, max_x_ticks);
        Layout {
            scale,
            label_px,
            title_px,
            pad,
            plot: (
                left as i32,
                top as i32,
                right as i32,
                (bottom as i32).max(top as i32 + 10),
            ),
            x: (-x_span, 0.0, x_ticks.0),
            unit,
            y: (y0, y1, y_ticks.0),
            y_format,
            legend,
            legend_top,
            row_h,
        }
    }

    /// Pixel of chart point `(x, y)`, as plotters maps it (see `draw`).
    fn to_px(&self, x: f64, y: f64) -> (f32, f32) {
        let (l, t, r, b) = self.plot;
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            l as f32 + (fx * f64::from(r - l - 1)) as f32,
            b as f32 - 1.0 - (fy * f64::from(b - t - 1)) as f32,
        )
    }

    /// The series' lines, over the grid and areas, clipped to the plot.
    fn draw_lines(&self, canvas: &mut Canvas, o: &ChartOptions, snap: &Snapshot) {
        let mut mask = Mask::new(self.plot);
        let radius = self.scale.max(0.6);
        let (y0, y1) = (self.y.0, self.y.1);
        let mut pixels = Vec::new();
        for s in &snap.series {
            pixels.clear();
            // Values outside a fixed y range are drawn at its edge rather
            // than over the labels.
            pixels.extend(
                s.points
                    .iter()
                    .map(|&(t, v)| self.to_px(t / self.unit.0, v.clamp(y0, y1))),
            );
            // One sample draws no line: show it as a dot.
            let radius = if pixels.len() == 1 {
                radius * 2.5
            } else {
                radius
            };
            mask.polyline(&pixels, radius);
            mask.paint(canvas, o.color(s.slot));
        }
    }

    /// The text: title, time of the newest sample, tick labels, legend.
    fn draw_text(&self, canvas: &mut Canvas, o: &ChartOptions, snap: &Snapshot) {
        let p = palette(o.theme);
        let header_mid = self.pad / 2.0 + self.title_px * 0.6;
        if let Some(title) = &o.title {
            canvas.text(
                title,
                self.title_px,
                (self.pad, header_mid),
                Align::Left,
                p.text,
            );
        }
        let stamp = match snap.newest {
            Some(t) if t > 946_684_800.0 => clock(t),
            Some(_) => String::new(),
            None => "waiting for data".into(),
        };
        canvas.text(
            &stamp,
            self.label_px,
            (o.width as f32 - self.pad, header_mid),
            Align::Right,
            p.muted,
        );
        let (l, _, _, b) = self.plot;
        for &v in &self.y.2 {
            let (_, y) = self.to_px(self.x.0, v);
            let text = self.y_format.fmt(v);
            let at = (l as f32 - 6.0 * self.scale, y);
            canvas.text(&text, self.label_px, at, Align::Right, p.muted);
        }
        for &v in &self.x.2 {
            let (x, _) = self.to_px(v, self.y.0);
            let text = fmt_time(v, self.unit.1);
            let at = (x, b as f32 + 5.0 * self.scale + self.label_px * 0.55);
            canvas.text(&text, self.label_px, at, Align::Center, p.muted);
        }
        let swatch = 14.0 * self.scale;
        for (r, row) in self.legend.iter().enumerate() {
            let mid = self.legend_top + (r as f32 + 0.5) * self.row_h;
            for (_, text, x) in row {
                let at = (x + swatch + 6.0, mid);
                canvas.text(text, self.label_px, at, Align::Left, p.text);
            }
        }
    }
}

/// Coverage of one antialiased polyline over the plot rectangle, so that
/// where its segments overlap (at every joint) a pixel is painted once, at
/// the larger coverage, rather than twice.
struct Mask {
    /// The plot rectangle: left, top, right, bottom (exclusive).
    clip: (i32, i32, i32, i32),
    coverage: Vec<f32>,
    /// Per row, the touched columns (`start > end` when none), so that
    /// painting and clearing visit only those.
    touched: Vec<(i32, i32)>,
}

impl Mask {
    fn new(clip: (i32, i32, i32, i32)) -> Mask {
        let (l, t, r, b) = clip;
        let (w, h) = ((r - l).max(0) as usize, (b - t).max(0) as usize);
        Mask {
            clip,
            coverage: vec![0.0; w * h],
            touched: vec![(i32::MAX, i32::MIN); h],
        }
    }

    /// Adds a line of half-width `radius` through `points` (pixel
    /// coordinates), with round ends and joins: the union of one capsule
    /// per segment (a disc for a single point).
    fn polyline(&mut self, points: &[(f32, f32)], radius: f32) {
        match points {
            [] => {}
            [p] => self.capsule(*p, *p, radius),
            _ => {
                for pair in points.windows(2) {
                    self.capsule(pair[0], pair[1], radius);
                }
            }
        }
    }

    /// The pixels within `radius` (plus half a pixel of antialiasing) of
    /// the segment `a`–`b`.
    fn capsule(&mut self, a: (f32, f32), b: (f32, f32), radius: f32) {
        let (l, t, r, bottom) = self.clip;
        let reach = radius + 1.0;
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let y_from = ((a.1.min(b.1) - reach).floor() as i32).max(t);
        let y_to = ((a.1.max(b.1) + reach).ceil() as i32).min(bottom - 1);
        let x_min = ((a.0.min(b.0) - reach).floor() as i32).max(l);
        let x_max = ((a.0.max(b.0) + reach).ceil() as i32).min(r - 1);
        if y_from > y_to || x_min > x_max {
            return;
        }
        let len = len2.sqrt();
        // The segment's unit normal. In one row, the pixels near the line
        // lie in a band whose width depends on the slope; only those are
        // looked at, so a steep segment costs its length, not its bounding
        // box.
        let (nx, ny) = if len > 1e-6 {
            (-dy / len, dx / len)
        } else {
            (0.0, 0.0)
        };
        let width = (r - l) as usize;
        for y in y_from..=y_to {
            let cy = y as f32 + 0.5;
            let (mut from, mut to) = (x_min, x_max);
            if nx.abs() > 1e-3 {
                // |nx (x - ax) + ny (cy - ay)| <= reach
                let c = ny * (cy - a.1);
                let x1 = a.0 + (-reach - c) / nx;
                let x2 = a.0 + (reach - c) / nx;
                from = from.max(x1.min(x2).floor() as i32);
                to = to.min(x1.max(x2).ceil() as i32);
            }
            if from > to {
                continue;
            }
            let row = (y - t) as usize;
            let py = cy - a.1;
            for x in from..=to {
                let px = x as f32 + 0.5 - a.0;
                // Distance from the pixel centre to the segment.
                let k = if len2 > 0.0 {
                    ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (px - k * dx, py - k * dy);
                let cover = (radius + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                if cover > 0.0 {
                    let cell = &mut self.coverage[row * width + (x - l) as usize];
                    if cover > *cell {
                        *cell = cover;
                    }
                    let span = &mut self.touched[row];
                    span.0 = span.0.min(x);
                    span.1 = span.1.max(x);
                }
            }
        }
    }

    /// Paints the line in `color` and clears the mask for the next one.
    fn paint(&mut self, canvas: &mut Canvas, color: Rgb) {
        let (l, t, r, _) = self.clip;
        let width = (r - l) as usize;
        for (row, span) in self.touched.iter_mut().enumerate() {
            for x in span.0..=span.1 {
                let cell = &mut self.coverage[row * width + (x - l) as usize];
                canvas.blend(x, t + row as i32, color, *cell);
                *cell = 0.0;
            }
            *span = (i32::MAX, i32::MIN);
        }
    }
}

/// The shapes: grid, axes, areas, legend swatches.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    o: &ChartOptions,
    snap: &Snapshot,
    layout: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let p = palette(o.theme);
    root.fill(&p.background)?;
    let (w, h) = (o.width as i32, o.height as i32);
    let (l, t, r, b) = layout.plot;
    let area = root.margin(t, h - b, l, w - r);
    let (x0, x1, ref x_ticks) = layout.x;
    let (y0, y1, ref y_ticks) = layout.y;
    let mut chart = ChartBuilder::on(&area).build_cartesian_2d(x0..x1, y0..y1)?;
    let plot = chart.plotting_area();
    for &y in y_ticks {
        plot.draw(&PathElement::new(vec![(x0, y), (x1, y)], p.grid))?;
    }
    for &x in x_ticks {
        plot.draw(&PathElement::new(vec![(x, y0), (x, y1)], p.grid))?;
    }

    let scale = layout.scale;
    if o.style == Style::Area {
        // The areas only; their lines are drawn with the others, later.
        let base = if (y0..=y1).contains(&0.0) { 0.0 } else { y0 };
        let unit = layout.unit.0;
        for s in &snap.series {
            let c = rgb(o.color(s.slot));
            let points = s.points.iter().map(|&(t, v)| (t / unit, v.clamp(y0, y1)));
            chart.draw_series(AreaSeries::new(points, base, c.mix(0.18).filled()))?;
        }
    }

    // Axis lines and tick marks, over the grid and the areas' edges.
    let tick = (4.0 * scale).round() as i32;
    root.draw(&PathElement::new(
        vec![(l, t), (l, b - 1), (r - 1, b - 1)],
        p.axis,
    ))?;
    for &y in y_ticks {
        let (_, py) = layout.to_px(x0, y);
        root.draw(&PathElement::new(
            vec![(l - tick, py as i32), (l, py as i32)],
            p.axis,
        ))?;
    }
    for &x in x_ticks {
        let (px, _) = layout.to_px(x, y0);
        root.draw(&PathElement::new(
            vec![(px as i32, b - 1), (px as i32, b - 1 + tick)],
            p.axis,
        ))?;
    }

    // Legend swatches; their text comes later.
    let swatch = (14.0 * scale) as i32;
    for (row_index, row) in layout.legend.iter().enumerate() {
        let mid = (layout.legend_top + (row_index as f32 + 0.5) * layout.row_h) as i32;
        for &(i, _, x) in row {
            let c = rgb(o.color(snap.series[i].slot));
            let x = x as i32;
            root.draw(&Rectangle::new(
                [(x, mid - swatch / 4), (x + swatch, mid + swatch / 4)],
                c.filled(),
            ))?;
        }
    }
    Ok(())
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// The y axis range: fixed ends as given, the others fitted to the data
/// with a margin, never empty.
fn y_range(o: &ChartOptions, snap: &Snapshot) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, v) in snap.series.iter().flat_map(|s| &s.points) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let span = hi - lo;
    let margin = if span > 0.0 {
        span * 0.08
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    let mut y0 = o.y_min.unwrap_or(lo - margin);
    let mut y1 = o.y_max.unwrap_or(hi + margin);
    // Values that never go below zero read better from a zero baseline
    // when it is close.
    if o.y_min.is_none() && lo >= 0.0 && y0 < 0.0 {
        y0 = 0.0;
    }
    if y1 <= y0 {
        // One end fixed beyond all the data: open up the other.
        if o.y_max.is_some() {
            y0 = y1 - span.max(1.0);
        } else {
            y1 = y0 + span.max(1.0);
        }
    }
    (y0, y1)
}

/// At most `max` ticks on round numbers (1, 2 or 5 times a power of ten)
/// from `lo` to `hi`, and their step.
fn nice_ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return (vec![lo], 1.0);
    }
    let raw = span / max.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last.min(first + 50))
        .map(|i| {
            let v = i as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    (ticks, step)
}

/// How the y labels of one axis are written: the decimals the step needs,
/// with k/M/G for large numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TickFormat {
    div: f64,
    suffix: &'static str,
    decimals: usize,
}

impl TickFormat {
    fn new(magnitude: f64, step: f64) -> TickFormat {
        let (div, suffix) = if magnitude >= 1e9 {
            (1e9, "G")
        } else if magnitude >= 1e6 {
            (1e6, "M")
        } else if magnitude >= 1e4 {
            (1e3, "k")
        } else {
            (1.0, "")
        };
        let decimals = (-(step / div).log10().floor()).clamp(0.0, 9.0) as usize;
        TickFormat {
            div,
            suffix,
            decimals,
        }
    }

    fn fmt(&self, v: f64) -> String {
        format!(
            "{}{}",
            trim_number(v / self.div, self.decimals),
            self.suffix
        )
    }
}

/// The unit for x labels: seconds up to 3 minutes, minutes up to 3 hours,
/// then hours. Ticks fall on round numbers of it.
fn time_unit(window: f64) -> (f64, &'static str) {
    if window <= 180.0 {
        (1.0, "s")
    } else if window <= 3.0 * 3600.0 {
        (60.0, "m")
    } else {
        (3600.0, "h")
    }
}

fn fmt_time(x: f64, suffix: &str) -> String {
    format!("{}{suffix}", trim_number(x, 3))
}

/// The latest value for the legend: about 4 significant digits.
fn fmt_latest(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a >= 1e5 {
        return TickFormat::new(a, a / 1000.0).fmt(v);
    }
    let decimals = if a >= 1.0 {
        3usize.saturating_sub(a.log10().floor() as usize)
    } else {
        4
    };
    trim_number(v, decimals)
}

/// `v` with at most `decimals` decimals, trailing zeros and "-0" removed.
fn trim_number(v: f64, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// `HH:MM:SS UTC` of Unix time `t`: the server knows no time zone.
fn clock(t: f64) -> String {
    let secs = t as u64;
    format!(
        "{:02}:{:02}:{:02} UTC",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stdin_lines_from_the_far_future_are_skipped() {
        let chart = Chart::new(ChartOptions::default());
        let hub = Hub::new("t");
        let token = CancellationToken::new();
        let input = b"load=1\nt=10000000000 load=5\nload=2\n";
        let lines = read_lines(&input[..], &chart, &hub, &token).await.unwrap();
        assert_eq!(lines, 3);
        // The future line was skipped; the one after it still counts.
        assert_eq!(chart.counts(), (1, 2));
        let data = lock(&chart.shared.data);
        let newest = data.newest.unwrap();
        let now = unix_seconds(SystemTime::now()).unwrap();
        assert!(newest <= now + 1.0, "newest sample at {newest}, now {now}");
    }

    #[test]
    fn options_parse_or_say_why_not() {
        let mut o = ChartOptions::default();
        for (k, v) in [
            ("title", "CPU"),
            ("window", "30"),
            ("ymin", "0"),
            ("ymax", "1"),
            ("size", "640x360"),
            ("theme", "light"),
            ("style", "area"),
            ("colors", "ff0000,#0f0"),
            ("fps", "5"),
        ] {
            o.set(k, Some(v)).unwrap();
        }
        assert_eq!(
            o,
            ChartOptions {
                title: Some("CPU".into()),
                window: Duration::from_secs(30),
                y_min: Some(0.0),
                y_max: Some(1.0),
                width: 640,
                height: 360,
                theme: Theme::Light,
                style: Style::Area,
                colors: vec![[255, 0, 0], [0, 255, 0]],
                max_fps: 5.0,
            }
        );
        for (k, v, says) in [
            ("size", Some("800"), "WIDTHxHEIGHT"),
            ("size", Some("99999x1"), "WIDTHxHEIGHT"),
            ("window", Some("-1"), "seconds"),
            ("ymin", Some("low"), "not a number"),
            ("theme", Some("blue"), "dark or light"),
            ("colors", Some("red"), "hex"),
            ("fps", Some("0"), "frames"),
            ("title", None, "needs a value"),
            ("bogus", Some("1"), "unknown option"),
        ] {
            let err = ChartOptions::default().set(k, v).unwrap_err();
            assert!(err.contains(says), "{k}: {err}");
        }
        let mut o = ChartOptions::default();
        o.set("ymin", Some("5")).unwrap();
        o.set("ymax", Some("1")).unwrap();
        assert!(o.validate().unwrap_err().contains("below"));
    }

    #[test]
    fn lines_parse_and_bad_fields_are_named() {
        assert_eq!(
            parse_line("load=0.42 temp=61.5, t=1700000000").unwrap(),
            Some(Sample {
                t: Some(1_700_000_000.0),
                values: vec![("load".into(), 0.42), ("temp".into(), 61.5)],
            })
        );
        assert_eq!(parse_line("  # comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        for (line, says) in [
            (
                "load=0.4 temp=hot",
                "field \"temp\": \"hot\" is not a number",
            ),
            ("load=NaN", "field \"load\""),
            ("load=", "field \"load\""),
            ("free", "\"free\" is not name=value"),
            ("t=1", "no values"),
            ("t=1700000000000 x=1", "milliseconds"),
            ("t=soon x=1", "field \"t\""),
            ("=1", "series name"),
        ] {
            let err = parse_line(line).unwrap_err().to_string();
            assert!(err.contains(says), "{line}: {err}");
        }
        let err = parse_lines("a=1\n\nb=x\n").unwrap_err().to_string();
        assert_eq!(err, "line 3: field \"b\": \"x\" is not a number");
    }

    #[test]
    fn json_parses_and_bad_fields_are_named() {
        let s = parse_json(br#"{"load": 0.42, "temp": 61, "t": 1700000000.5}"#).unwrap();
        assert_eq!(s[0].t, Some(1_700_000_000.5));
        assert_eq!(s[0].values.len(), 2);
        assert_eq!(parse_json(br#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        for (body, says) in [
            (
                &br#"{"load": "0.4"}"#[..],
                "field \"load\": \"0.4\" is not a number",
            ),
            (br#"{"load": null}"#, "field \"load\": null"),
            (br#"{"load": [1]}"#, "field \"load\""),
            (br#"{}"#, "no values"),
            (br#"[{"a":1},{"b":true}]"#, "item 2: field \"b\""),
            (br#"{"t": "now", "a": 1}"#, "field \"t\""),
            (br#"42"#, "expected an object"),
            (br#"{"a": 1"#, "bad JSON"),
        ] {
            let err = parse_json(body).unwrap_err().to_string();
            assert!(
                err.contains(says),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn memory_is_bounded_by_window_series_and_points() {
        let chart = Chart::new(ChartOptions {
            window: Duration::from_secs(10),
            ..ChartOptions::default()
        });
        let t0 = 1_700_000_000.0;
        for i in 0..100 {
            chart
                .push_text(&format!("t={} a={i}", t0 + f64::from(i)))
                .unwrap();
        }
        // Only the last 10 s (11 samples, both ends included) are kept.
        assert_eq!(chart.counts(), (1, 11));
        // A sample too old for the window is ignored; a late one within it
        // is put in order.
        chart.push_text(&format!("t={t0} a=1")).unwrap();
        chart.push_text(&format!("t={} a=-1", t0 + 95.5)).unwrap();
        assert_eq!(chart.counts(), (1, 12));
        let snap = chart.snapshot();
        let times: Vec<f64> = snap.series[0].points.iter().map(|p| p.0).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(*times.last().unwrap(), 0.0);

        // A series that leaves the window disappears and frees its place.
        chart.push_text(&format!("t={} b=1", t0 + 200.0)).unwrap();
        assert_eq!(chart.counts(), (1, 1));

        // At most MAX_SERIES names; the one too many is refused whole.
        let names: Vec<String> = (0..MAX_SERIES).map(|i| format!("s{i}=1")).collect();
        let chart = Chart::new(ChartOptions::default());
        chart.push_text(&names.join(" ")).unwrap();
        let err = chart.push_text("s0=2 extra=1").unwrap_err();
        assert_eq!(
            err,
            SampleError::TooManySeries {
                field: "extra".into()
            }
        );
        assert_eq!(chart.counts(), (MAX_SERIES, MAX_SERIES));

        // A batch in reverse time order is taken whole and put in order.
        let chart = Chart::new(ChartOptions::default());
        let reversed: String = (0..5000)
            .rev()
            .map(|i| format!("t={} x={i}\n", t0 + f64::from(i) * 0.01))
            .collect();
        assert_eq!(chart.push_text(&reversed).unwrap(), 5000);
        let snap = chart.snapshot();
        assert_eq!(chart.counts(), (1, 5000));
        assert!(snap.series[0].points.windows(2).all(|w| w[0].0 <= w[1].0));

        // At most MAX_POINTS per series, whatever the rate.
        let chart = Chart::new(ChartOptions::default());
        let burst: String = (0..MAX_POINTS + 500)
            .map(|i| format!("t={} x={i}\n", t0 + i as f64 * 0.001))
            .collect();
        chart.push_text(&burst).unwrap();
        assert_eq!(chart.counts(), (1, MAX_POINTS));
    }

    #[test]
    fn thinning_keeps_extremes_and_bounds_points() {
        let newest = 100.0;
        let points: VecDeque<(f64, f64)> = (0..100_000)
            .map(|i| {
                let t = i as f64 * 0.001;
                (t, if i == 50_000 { 1000.0 } else { (t * 7.0).sin() })
            })
            .collect();
        let out = thin(&points, newest, 100.0, 800);
        assert!(out.len() <= 4 * 800, "{}", out.len());
        assert!(out.iter().any(|p| p.1 == 1000.0), "the spike is kept");
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn ticks_are_round_and_labels_read_well() {
        assert_eq!(
            nice_ticks(-60.0, 0.0, 7).0,
            [-60.0, -50.0, -40.0, -30.0, -20.0, -10.0, 0.0]
        );
        let (ticks, step) = nice_ticks(0.03, 0.97, 5);
        assert_eq!(step, 0.2);
        assert_eq!(ticks.len(), 4); // 0.2 0.4 0.6 0.8
        let f = TickFormat::new(1.0, step);
        assert_eq!(
            ticks.iter().map(|&v| f.fmt(v)).collect::<Vec<_>>(),
            ["0.2", "0.4", "0.6", "0.8"]
        );
        assert_eq!(TickFormat::new(1.0, 0.05).fmt(0.25), "0.25");
        assert_eq!(TickFormat::new(80.0, 20.0).fmt(60.0), "60");
        assert_eq!(TickFormat::new(1.0, 0.2).fmt(-0.0000001), "0");
        assert_eq!(TickFormat::new(3e6, 5e5).fmt(2_500_000.0), "2.5M");
        assert_eq!(TickFormat::new(20_000.0, 5_000.0).fmt(15_000.0), "15k");
        assert_eq!(nice_ticks(5.0, 5.0, 5).0, [5.0]);
        assert_eq!(fmt_time(-30.0, "s"), "-30s");
        assert_eq!(fmt_time(0.0, "m"), "0m");
        assert_eq!(fmt_latest(61.5), "61.5");
        assert_eq!(fmt_latest(0.123456), "0.1235");
        assert_eq!(fmt_latest(1234.56), "1235");
        assert_eq!(fmt_latest(2_500_000.0), "2.5M");
        assert_eq!(clock(1_700_000_000.0), "22:13:20 UTC");
        assert!(text_width("load", 13.0) > 20.0);
    }

    #[test]
    fn renders_a_jpeg_of_the_configured_size() {
        for style in [Style::Line, Style::Area] {
            for theme in [Theme::Dark, Theme::Light] {
                let chart = Chart::new(ChartOptions {
                    width: 640,
                    height: 360,
                    style,
                    theme,
                    title: Some("Test".into()),
                    ..ChartOptions::default()
                });
                let empty = chart.render_jpeg().unwrap();
                for i in 0..50 {
                    let t = 1_700_000_000.0 + f64::from(i);
                    chart
                        .push_text(&format!("t={t} a={} b={}", f64::from(i).sin(), i))
                        .unwrap();
                }
                let jpeg = chart.render_jpeg().unwrap();
                assert_ne!(empty, jpeg);
                let frame = Frame::from_jpeg(jpeg.clone()).unwrap();
                assert_eq!((frame.width(), frame.height()), (640, 360));
                let pixels = zune_jpeg::JpegDecoder::new(&jpeg).decode().unwrap();
                assert_eq!(pixels.len(), 640 * 360 * 3);
            }
        }
    }
}
