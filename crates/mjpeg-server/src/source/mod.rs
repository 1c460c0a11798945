//! Sources: where frames come from.
//!
//! A source is a task that publishes into one [`Hub`]. Each kind lives in its
//! own module; [`SourceSpec`] is how the command line names them
//! (`--stream NAME=KIND:ARG`).
//!
//! | spec | module | what it does |
//! | --- | --- | --- |
//! | `demo` | [`demo`] | draws a moving test picture with the current time |
//! | `dir:PATH` | [`dir`] | plays a folder's images in a loop, in natural order |
//! | `push` | [`crate::http`] | other programs `PUT`/`POST` frames to `/stream/NAME` |
//! | `watch:PATH` | [`watch`] | a file another program keeps rewriting, or a folder images arrive in |
//! | `stdin` | [`pipe`] | concatenated JPEGs on standard input |
//! | `exec:COMMAND` | [`pipe`] | concatenated JPEGs from a command's stdout, restarted when it exits |
//! | `relay:URL` | [`relay`] | another MJPEG stream or snapshot URL |
//! | `chart`, `chart:stdin` | [`chart`] | a live chart of numbers posted to `/stream/NAME/data` (or read from stdin) |
//! | `synthetic:PATH` | [`synthetic`] | one fixed image at a fixed rate (`#fps=30`, `#fps=max`), for benchmarks |
//!
//! Options follow the argument after `#`: `watch:./spool/#pattern=*.png#delete`,
//! `relay:http://cam/stream#always#linger=10`.

#[cfg(feature = "chart")]
pub mod chart;
pub mod demo;
pub mod dir;
mod file;
pub mod pipe;
#[cfg(feature = "relay")]
pub mod relay;
pub mod synthetic;
#[cfg(feature = "watch")]
pub mod watch;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use file::read_image_file;

use crate::convert::ConvertOptions;
use crate::hub::{Hub, SourceState};

/// A source, as its typed description: build one in code
/// (`SourceSpec::Dir("./img".into())`, `SourceSpec::Relay(..)`) or parse
/// the SOURCE syntax of `--stream NAME=SOURCE` (`"dir:./img".parse()`), then
/// [`spawn`](SourceSpec::spawn) it. Each kind's own options live in its
/// module, and every module's `run` takes the same order: what the source
/// reads and its options, then the hub it publishes into, then the
/// shutdown token.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The built-in moving test picture.
    Demo,
    /// A folder of images played in a loop.
    Dir(PathBuf),
    /// Frames pushed over HTTP; no task of its own.
    Push,
    /// A watched file or folder.
    #[cfg(feature = "watch")]
    Watch(PathBuf, watch::WatchOptions),
    /// Concatenated JPEGs on standard input.
    Stdin,
    /// Concatenated JPEGs from a shell command's standard output.
    Exec(String),
    /// Another server's stream.
    #[cfg(feature = "relay")]
    Relay(RelaySpec),
    /// A live chart of numbers posted over HTTP (and read from stdin).
    #[cfg(feature = "chart")]
    Chart(chart::ChartSpec),
    /// One fixed image published at a fixed rate, for benchmarks.
    Synthetic(PathBuf, synthetic::Rate),
}

/// What `relay:URL#…` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RelaySpec {
    /// The upstream URL.
    pub url: String,
    /// Stay connected even with no viewers (`#always`).
    pub always: bool,
    /// Stay connected this long after the last viewer leaves (`#linger=S`).
    pub linger: Option<Duration>,
}

/// Why a source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The spec names no known kind of source.
    #[error("unknown source {0:?}: use demo, dir:PATH, watch:PATH, push, stdin, exec:COMMAND, relay:URL, synthetic:PATH or chart")]
    Unknown(String),
    /// A kind of source this build leaves out: its cargo feature is off.
    #[error("{kind}: sources are not in this build (the `{kind}` feature of the mjpeg-server library is off)")]
    NotBuilt {
        /// The kind, which is also the feature's name.
        kind: &'static str,
    },
    /// An option after `#` that the source does not know or a bad value.
    #[error("source {spec:?}: {why}")]
    BadOption {
        /// The whole source spec.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A folder that cannot be listed.
    #[error("cannot read folder {path}: {error}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// What the OS said (part of the message, so not also a `source`
        /// that `{:#}` would print twice).
        error: std::io::Error,
    },
    /// A folder with nothing to show.
    #[error("folder {path} has no images ({files} files looked at)")]
    NoImages {
        /// The folder.
        path: PathBuf,
        /// How many files it holds.
        files: usize,
    },
}

impl FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| SourceError::BadOption {
            spec: s.to_string(),
            why,
        };
        // Chart options may hold a ':' (`#title=CPU: load`), so `chart` is
        // recognised before splitting at the first ':'.
        if let Some(rest) = s.strip_prefix("chart") {
            if rest.is_empty() || rest.starts_with(['#', ':']) {
                #[cfg(feature = "chart")]
                return parse_chart(rest).map(SourceSpec::Chart).map_err(bad);
                #[cfg(not(feature = "chart"))]
                return Err(SourceError::NotBuilt { kind: "chart" });
            }
        }
        let (kind, arg) = match s.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (s, None),
        };
        match (kind, arg) {
            ("demo", None) => Ok(SourceSpec::Demo),
            ("push", None) => Ok(SourceSpec::Push),
            ("stdin", None) => Ok(SourceSpec::Stdin),
            ("dir", Some(path)) if !path.is_empty() => Ok(SourceSpec::Dir(PathBuf::from(path))),
            // The command goes to `sh -c` whole: `#` is the shell's business.
            ("exec", Some(cmd)) if !cmd.trim().is_empty() => Ok(SourceSpec::Exec(cmd.to_string())),
            #[cfg(not(feature = "watch"))]
            ("watch", Some(_)) => Err(SourceError::NotBuilt { kind: "watch" }),
            #[cfg(not(feature = "relay"))]
            ("relay", Some(_)) => Err(SourceError::NotBuilt { kind: "relay" }),
            #[cfg(feature = "watch")]
            ("watch", Some(arg)) => {
                let (path, options) = split_options(arg);
                if path.is_empty() {
                    return Err(bad(
                        "watch: needs a file or folder, e.g. watch:./graph.png".into()
                    ));
                }
                let mut opts = watch::WatchOptions::default();
                for (key, value) in options {
                    match (key, value) {
                        ("pattern", Some(v)) if !v.is_empty() => opts.pattern = Some(v.to_string()),
                        ("delete", None) => opts.delete_after = true,
                        ("poll", Some(v)) => {
                            opts.poll = Some(parse_seconds(v).map_err(|e| bad(format!("poll={v}: {e}")))?)
                        }
                        _ => {
                            return Err(bad(format!(
                                "unknown option {key:?} for watch: use pattern=GLOB, delete, poll=SECONDS"
                            )))
                        }
                    }
                }
                Ok(SourceSpec::Watch(PathBuf::from(path), opts))
            }
            #[cfg(feature = "relay")]
            ("relay", Some(arg)) => {
                let (url, options) = split_options(arg);
                match reqwest::Url::parse(url) {
                    Ok(u) if u.scheme() == "http" => {}
                    Ok(u) => {
                        return Err(bad(format!(
                            "relay: {}:// is not supported; use an http:// URL",
                            u.scheme()
                        )))
                    }
                    Err(e) => return Err(bad(format!("relay: {url:?} is not a URL: {e}"))),
                }
                let mut spec = RelaySpec {
                    url: url.to_string(),
                    always: false,
                    linger: None,
                };
                for (key, value) in options {
                    match (key, value) {
                        ("always", None) => spec.always = true,
                        ("linger", Some(v)) => {
                            spec.linger = Some(
                                parse_seconds(v).map_err(|e| bad(format!("linger={v}: {e}")))?,
                            )
                        }
                        _ => {
                            return Err(bad(format!(
                                "unknown option {key:?} for relay: use always, linger=SECONDS"
                            )))
                        }
                    }
                }
                Ok(SourceSpec::Relay(spec))
            }
            ("synthetic", Some(arg)) => {
                let (path, options) = split_options(arg);
                if path.is_empty() {
                    return Err(bad(
                        "synthetic: needs an image, e.g. synthetic:tests/data/jpeg_50k.jpg#fps=30"
                            .into(),
                    ));
                }
                let mut rate = synthetic::Rate::Default;
                for (key, value) in options {
                    match (key, value) {
                        ("fps", Some(v)) => {
                            rate = synthetic::Rate::parse(v)
                                .map_err(|e| bad(format!("fps={v}: {e}")))?
                        }
                        _ => {
                            return Err(bad(format!(
                                "unknown option {key:?} for synthetic: use fps=N or fps=max"
                            )))
                        }
                    }
                }
                Ok(SourceSpec::Synthetic(PathBuf::from(path), rate))
            }
            _ => Err(SourceError::Unknown(s.to_string())),
        }
    }
}

#[cfg(feature = "chart")]
/// `chart` options: what follows `chart`, i.e. nothing, `#key=value…`,
/// `:stdin` or `:stdin#key=value…`.
fn parse_chart(rest: &str) -> Result<chart::ChartSpec, String> {
    let (input, options) = split_options(rest);
    let stdin = match input {
        "" => false,
        ":stdin" => true,
        other => {
            return Err(format!(
                "chart{other}: use chart or chart:stdin, options after #"
            ))
        }
    };
    let mut spec = chart::ChartSpec {
        stdin,
        options: chart::ChartOptions::default(),
    };
    for (key, value) in options {
        spec.options.set(key, value)?;
    }
    spec.options.validate()?;
    Ok(spec)
}

/// Splits `ARG#key=value#flag` into the argument and its options.
fn split_options(arg: &str) -> (&str, Vec<(&str, Option<&str>)>) {
    let mut parts = arg.split('#');
    let head = parts.next().unwrap_or("");
    let options = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
        .collect();
    (head, options)
}

#[cfg(any(feature = "watch", feature = "relay"))]
fn parse_seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => {
            Duration::try_from_secs_f64(s).map_err(|_| "too many seconds for a timer".to_string())
        }
        _ => Err("not a number of seconds".into()),
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Demo => write!(f, "demo"),
            SourceSpec::Dir(p) => write!(f, "dir:{}", p.display()),
            SourceSpec::Push => write!(f, "push"),
            #[cfg(feature = "watch")]
            SourceSpec::Watch(p, _) => write!(f, "watch:{}", p.display()),
            SourceSpec::Stdin => write!(f, "stdin"),
            // A command line or URL may carry a camera's password.
            SourceSpec::Exec(cmd) => write!(f, "exec:{}", redact_userinfo(cmd)),
            #[cfg(feature = "relay")]
            SourceSpec::Relay(r) => write!(f, "relay:{}", redact_userinfo(&r.url)),
            #[cfg(feature = "chart")]
            SourceSpec::Chart(c) => write!(f, "{c}"),
            SourceSpec::Synthetic(p, _) => write!(f, "synthetic:{}", p.display()),
        }
    }
}

/// Settings shared by sources.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Time between frames for sources that set their own pace.
    pub interval: Duration,
    /// How images that are not JPEG are converted.
    pub convert: ConvertOptions,
    /// Largest frame a source may produce; larger ones are dropped.
    pub max_frame: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            interval: Duration::from_millis(100),
            convert: ConvertOptions::default(),
            max_frame: crate::ingest::DEFAULT_MAX_FRAME,
        }
    }
}

impl SourceOptions {
    /// What piped sources (stdin, exec) accept: the frame size and the
    /// pixel limit that conversions apply too.
    fn read_limits(&self) -> pipe::ReadLimits {
        pipe::ReadLimits {
            max_frame: self.max_frame,
            max_pixels: self.convert.max_pixels,
        }
    }
}

impl SourceSpec {
    /// Checks, before the server starts, that the source can work at all, so
    /// that a typo fails at once with a clear message rather than as an empty
    /// stream.
    pub async fn check(&self) -> Result<(), SourceError> {
        match self {
            SourceSpec::Demo | SourceSpec::Push | SourceSpec::Stdin | SourceSpec::Exec(_) => Ok(()),
            #[cfg(feature = "relay")]
            SourceSpec::Relay(_) => Ok(()),
            #[cfg(feature = "chart")]
            SourceSpec::Chart(_) => Ok(()),
            SourceSpec::Dir(path) => dir::check(path).await,
            #[cfg(feature = "watch")]
            SourceSpec::Watch(path, opts) => watch::check(path, opts).await,
            SourceSpec::Synthetic(path, _) => synthetic::check(path).await,
        }
    }

    /// Whether the source reads standard input, which only one stream can.
    pub fn reads_stdin(&self) -> bool {
        match self {
            SourceSpec::Stdin => true,
            #[cfg(feature = "chart")]
            SourceSpec::Chart(chart::ChartSpec { stdin, .. }) => *stdin,
            _ => false,
        }
    }

    /// Starts the source publishing into `hub` until `shutdown`. Returns
    /// `None` for sources that have no task of their own (`push`).
    pub fn spawn(
        self,
        hub: Hub,
        opts: SourceOptions,
        shutdown: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        hub.set_source_state(SourceState::Running);
        Some(match self {
            SourceSpec::Demo => tokio::spawn(demo::run(opts.interval, hub, shutdown)),
            SourceSpec::Dir(path) => tokio::spawn(dir::run(path, opts, hub, shutdown)),
            #[cfg(feature = "watch")]
            SourceSpec::Watch(path, w) => tokio::spawn(watch::run(path, w, opts, hub, shutdown)),
            SourceSpec::Stdin => tokio::spawn(pipe::run_stdin(opts.read_limits(), hub, shutdown)),
            SourceSpec::Exec(cmd) => {
                tokio::spawn(pipe::run_exec(cmd, opts.read_limits(), hub, shutdown))
            }
            #[cfg(feature = "relay")]
            SourceSpec::Relay(spec) => {
                let mut r = relay::RelayOptions::new(spec.url);
                r.on_demand = !spec.always;
                if let Some(linger) = spec.linger {
                    r.linger = linger;
                }
                r.poll_interval = opts.interval;
                r.max_frame = opts.max_frame;
                r.convert = opts.convert;
                tokio::spawn(relay::run(r, hub, shutdown))
            }
            SourceSpec::Synthetic(path, rate) => tokio::spawn(synthetic::run(
                path,
                rate.interval(opts.interval),
                opts.convert,
                hub,
                shutdown,
            )),
            #[cfg(feature = "chart")]
            SourceSpec::Chart(spec) => chart::spawn(spec, hub, shutdown),
            SourceSpec::Push => {
                hub.set_accepts_push(true);
                hub.set_source_state(SourceState::Waiting("no frame pushed yet".into()));
                return None;
            }
        })
    }
}

/// `text` with the password of every URL in it replaced by `***`
/// (`http://admin:secret@cam/` becomes `http://admin:***@cam/`), so that
/// URLs with credentials can be logged and shown in `/status`.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    // Where the userinfo last redacted starts: a later '@' of the same
    // authority (a password with an unescaped '@') extends the redaction,
    // since the last '@' is the one that ends the userinfo.
    let mut redacted = None;
    for (at, _) in text.match_indices('@') {
        // The userinfo runs from just after `://` to the `@`, with no
        // '/', '?', '#' or space in it.
        let start = text[..at]
            .rfind(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .map_or(0, |i| i + 1);
        if redacted == Some(start) {
            done = at;
            continue;
        }
        if start < done || !text[..start].ends_with("://") {
            continue;
        }
        if let Some(colon) = text[start..at].find(':') {
            out.push_str(&text[done..start + colon + 1]);
            out.push_str("***");
            done = at;
            redacted = Some(start);
        }
    }
    out.push_str(&text[done..]);
    out
}

/// An error and every error under it, as one line (`cannot reach upstream:
/// … : Connection refused`): the cause a user can act on is usually the
/// last. A source whose text its parent already includes is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// Holds back a warning that repeats: the first is logged, then the same
/// text at most once per `every`, with how many were held back. A source
/// that fails every few seconds for hours (a camera that is off) would
/// otherwise fill the log with one line per attempt.
#[cfg(feature = "relay")]
#[derive(Debug)]
pub(crate) struct Repeats {
    every: Duration,
    last: Option<String>,
    since: tokio::time::Instant,
    held: u64,
}

#[cfg(feature = "relay")]
impl Repeats {
    pub(crate) fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            last: None,
            since: tokio::time::Instant::now(),
            held: 0,
        }
    }

    /// What to log for the warning `what` now, or `None` to hold it back.
    pub(crate) fn check(&mut self, what: &str) -> Option<String> {
        let now = tokio::time::Instant::now();
        if self.last.as_deref() != Some(what) {
            let held = std::mem::take(&mut self.held);
            self.last = Some(what.to_string());
            self.since = now;
            return Some(match held {
                0 => what.to_string(),
                n => format!("{what} (the previous warning was repeated {n} more times)"),
            });
        }
        if now.duration_since(self.since) < self.every {
            self.held += 1;
            return None;
        }
        let held = std::mem::take(&mut self.held);
        self.since = now;
        Some(format!(
            "{what} (again; {held} more times since the last warning)"
        ))
    }

    /// Forgets the last warning: the next one is logged whatever it says
    /// (after a success, the same failure is news again).
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("demo".parse::<SourceSpec>().unwrap(), SourceSpec::Demo);
        assert_eq!(
            "dir:./a:b".parse::<SourceSpec>().unwrap(),
            SourceSpec::Dir("./a:b".into())
        );
        assert_eq!(
            "watch:./spool/#pattern=*.png#delete#poll=0.5"
                .parse::<SourceSpec>()
                .unwrap(),
            SourceSpec::Watch(
                "./spool/".into(),
                watch::WatchOptions {
                    pattern: Some("*.png".into()),
                    delete_after: true,
                    poll: Some(Duration::from_millis(500)),
                }
            )
        );
        assert_eq!(
            "relay:http://u:p@127.0.0.1:81/s?x=1#always#linger=2"
                .parse::<SourceSpec>()
                .unwrap(),
            SourceSpec::Relay(RelaySpec {
                url: "http://u:p@127.0.0.1:81/s?x=1".into(),
                always: true,
                linger: Some(Duration::from_secs(2)),
            })
        );
        assert_eq!(
            "exec:ffmpeg -i x -f mjpeg - # comment"
                .parse::<SourceSpec>()
                .unwrap(),
            SourceSpec::Exec("ffmpeg -i x -f mjpeg - # comment".into())
        );
        assert_eq!("stdin".parse::<SourceSpec>().unwrap(), SourceSpec::Stdin);
        assert_eq!(
            "synthetic:a.jpg#fps=max".parse::<SourceSpec>().unwrap(),
            SourceSpec::Synthetic("a.jpg".into(), synthetic::Rate::Max)
        );
        for bad in [
            "",
            "dir:",
            "dirx",
            "file:x",
            "demo:1",
            "exec:",
            "exec:  ",
            "watch:",
            "watch:x#bogus",
            "watch:x#poll=abc",
            "relay:ftp://x",
            "relay:nota url",
            "relay:http://x#never",
            "synthetic:",
            "synthetic:a.jpg#fps=0",
            "synthetic:a.jpg#rate=1",
        ] {
            let err = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = "watch:x#bogus"
            .parse::<SourceSpec>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown option \"bogus\""), "{err}");
    }

    #[test]
    fn chart_specs_parse() {
        assert_eq!(
            "chart".parse::<SourceSpec>().unwrap(),
            SourceSpec::Chart(chart::ChartSpec::default())
        );
        let spec: SourceSpec =
            "chart:stdin#title=CPU: load#window=60#ymin=0#ymax=1#size=640x360#theme=light#style=area#colors=ff0000,00ff00#fps=5"
                .parse()
                .unwrap();
        assert_eq!(
            spec,
            SourceSpec::Chart(chart::ChartSpec {
                stdin: true,
                options: chart::ChartOptions {
                    title: Some("CPU: load".into()),
                    window: Duration::from_secs(60),
                    y_min: Some(0.0),
                    y_max: Some(1.0),
                    width: 640,
                    height: 360,
                    theme: chart::Theme::Light,
                    style: chart::Style::Area,
                    colors: vec![[255, 0, 0], [0, 255, 0]],
                    max_fps: 5.0,
                },
            })
        );
        assert!(spec.reads_stdin());
        assert_eq!(spec.to_string(), "chart:stdin");
        let spec: SourceSpec = "chart#style=line".parse().unwrap();
        assert!(!spec.reads_stdin());
        assert_eq!(spec.to_string(), "chart");
        for (bad, says) in [
            ("chart:file", "chart or chart:stdin"),
            ("chart#size=big", "WIDTHxHEIGHT"),
            ("chart#ymin=2#ymax=1", "below"),
            ("chart#bogus=1", "unknown option \"bogus\""),
            ("chart:stdin#theme", "needs a value"),
        ] {
            let err = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // `charts` is not `chart`.
        assert!(matches!(
            "charts".parse::<SourceSpec>(),
            Err(SourceError::Unknown(_))
        ));
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        for (text, want) in [
            ("http://admin:secret@cam/x", "http://admin:***@cam/x"),
            ("http://admin@cam/x", "http://admin@cam/x"),
            ("http://cam:81/x?a=b@c", "http://cam:81/x?a=b@c"),
            (
                "ffmpeg -i rtsp://u:p%40ss@10.0.0.2:554/s -f mjpeg - http://a:b@h",
                "ffmpeg -i rtsp://u:***@10.0.0.2:554/s -f mjpeg - http://a:***@h",
            ),
            ("http://a:b:c@h", "http://a:***@h"),
            ("http://a:p@ss@h/x", "http://a:***@h/x"),
            ("http://uhttp://u:PW@host", "http://uhttp://u:***@host"),
            ("no url here", "no url here"),
            ("://", "://"),
        ] {
            assert_eq!(redact_userinfo(text), want, "{text}");
        }
        // Whatever the text, the password never survives.
        let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D_u64);
        for _ in 0..20_000 {
            let mut pick = |n: usize| rng.below(n);
            const PIECES: &[&str] = &["http://", "u", ":", "@", "/", "?", "#", " ", "h", "PW"];
            let mut text = String::new();
            for _ in 0..pick(12) {
                text.push_str(PIECES[pick(PIECES.len())]);
            }
            let url = format!("{text}http://u:PW@host/p");
            let red = redact_userinfo(&url);
            assert!(red.ends_with("http://u:***@host/p"), "{url:?} -> {red:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_warnings_are_held_back_for_a_minute() {
        let mut r = Repeats::new(Duration::from_secs(60));
        assert_eq!(r.check("a").as_deref(), Some("a"));
        assert_eq!(r.check("a"), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(r.check("a"), None);
        tokio::time::advance(Duration::from_secs(31)).await;
        let again = r.check("a").unwrap();
        assert!(again.contains("2 more times"), "{again}");
        assert_eq!(r.check("a"), None);
        let b = r.check("b").unwrap();
        assert!(b.starts_with('b') && b.contains("1 more times"), "{b}");
        r.reset();
        assert_eq!(r.check("b").as_deref(), Some("b"));
    }
}
