//! The command line: the flags of the settings that are not one value
//! each (those are declared in [`super`]'s table), and the parsers that
//! check a flag's value as the config file's key is checked.

use clap::Parser;
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::str::FromStr;

use super::auth::UserSetting;
use super::ScalarFlags;
use mjpeg_server::access::check_token;
use mjpeg_server::hub::check_name;
use mjpeg_server::server::{ListenAddr, TrustedProxy};
use mjpeg_server::source::SourceSpec;
use mjpeg_server::variant::Overlay;

/// Serve live MJPEG streams over HTTP.
///
/// With no flags, serves a built-in demo stream at http://127.0.0.1:8080/.
/// Settings may also come from a TOML file (`--config`); a flag given on
/// the command line wins over the file.
#[derive(Debug, Parser)]
#[command(name = "mjpeg-server", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Read settings and streams from this TOML file; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the settings (file and flags), print the effective
    /// configuration as TOML and exit: 0 if valid, 2 with the error if not.
    #[arg(long)]
    pub check_config: bool,

    /// Address and port to listen on, or unix:PATH for a Unix socket
    /// (repeatable, e.g. `127.0.0.1:8080` and `[::1]:8080`). A port alone
    /// (`8080`) means 127.0.0.1:8080: only this machine; give 0.0.0.0:8080
    /// to be reached from the network. A host name (`localhost:8080`) is
    /// resolved at start and the server listens on every address it
    /// resolves to. Given on the command line, replaces the file's list.
    /// Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<ListenAddr>,

    /// Short for `--listen 127.0.0.1:PORT` (this machine only); cannot be
    /// combined with --listen.
    #[arg(long, value_name = "PORT", conflicts_with = "listen")]
    pub port: Option<u16>,

    /// A stream, as NAME=SOURCE (repeatable). SOURCE is demo, dir:PATH,
    /// watch:PATH, push, stdin, exec:COMMAND, relay:URL or chart; options
    /// follow after `#`. A flag replaces the config file's stream of the
    /// same name and adds any other. Without any, one stream `demo=demo` is
    /// served.
    #[arg(long = "stream", value_name = "NAME=SOURCE")]
    pub streams: Vec<StreamArg>,

    /// The settings that are one value each: the table in [`super`].
    #[command(flatten)]
    pub scalars: ScalarFlags,

    /// Create a push stream when a frame is pushed to an unknown name.
    #[arg(long)]
    pub allow_create: bool,

    /// Let pages from this origin read the streams with fetch or a canvas
    /// (CORS; repeatable; `*` for any), e.g. `https://dash.example.com`.
    /// Default: none.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = origin)]
    pub allow_origins: Vec<String>,

    /// A reverse proxy (address or ADDR/PREFIX, repeatable) whose
    /// X-Forwarded-For / Forwarded headers name the client: for the
    /// per-address limit, logs and /status. Only for proxies that set
    /// those headers themselves. Default: none (the headers are ignored).
    #[arg(long = "trusted-proxy", value_name = "ADDR/CIDR")]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// A user who may watch and push every stream, as NAME:PASSWORD (HTTP
    /// Basic auth; repeatable). Once any user or token is set, every request
    /// needs credentials except what --public-watch opens. Per-stream rules:
    /// the config file's `[auth]` table.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = user)]
    pub users: Vec<UserSetting>,

    /// A token that may watch and push every stream, sent as
    /// `Authorization: Bearer TOKEN` or `?token=TOKEN` (repeatable).
    #[arg(long = "token", value_name = "TOKEN", value_parser = token)]
    pub tokens: Vec<String>,

    /// A token that may only watch (repeatable).
    #[arg(long = "watch-token", value_name = "TOKEN", value_parser = token)]
    pub watch_tokens: Vec<String>,

    /// A token that may only push (repeatable).
    #[arg(long = "push-token", value_name = "TOKEN", value_parser = token)]
    pub push_tokens: Vec<String>,

    /// Anyone may watch every stream without credentials; users and tokens
    /// are then needed only to push and for /status and /metrics.
    #[arg(long)]
    pub public_watch: bool,

    /// Serve HTTPS (and HTTP/2) with this PEM certificate chain; needs
    /// --tls-key. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Examples:
  mjpeg-server
  mjpeg-server --listen 0.0.0.0:8080 --fps 30 --stream cam=dir:./img --stream graphs=dir:./plots
  mjpeg-server --stream graphs=push      # then: curl -T graph.png http://127.0.0.1:8080/stream/graphs
  mjpeg-server --stream 'cpu=chart#title=CPU#window=120'   # then: curl -d load=0.4 http://127.0.0.1:8080/stream/cpu/data
  mjpeg-server --stream cam=relay:http://192.0.2.10/video.cgi --stream plot=watch:./graph.png
  mjpeg-server --config streams.toml --check-config   # validate, print the effective config
  mjpeg-server --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --user admin:pw --public-watch

URLs: /  /stream/NAME  /snapshot/NAME  /status  /?action=stream  /?action=snapshot
Logging: set RUST_LOG (e.g. RUST_LOG=debug).";

/// One `--stream NAME=SOURCE`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamArg {
    /// The stream's name, as used in URLs.
    pub name: String,
    /// Where its frames come from.
    pub source: SourceSpec,
    /// The source as written (`watch:./x.png#poll=1`), options included.
    pub source_text: String,
    /// Text drawn on every frame (`#overlay=TEXT`).
    pub overlay: Option<Overlay>,
}

impl Serialize for StreamArg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("StreamArg", 2)?;
        st.serialize_field("name", &self.name)?;
        // --check-config output is pasted into bug reports: no passwords.
        st.serialize_field(
            "source",
            &mjpeg_server::source::redact_userinfo(&self.source_text),
        )?;
        st.end()
    }
}

impl FromStr for StreamArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, source)) = s.split_once('=') else {
            return Err("expected NAME=SOURCE, e.g. cam=dir:./img".into());
        };
        check_name(name).map_err(|e| e.to_string())?;
        let (spec, overlay) = parse_source(source)?;
        Ok(StreamArg {
            name: name.to_string(),
            source: spec,
            source_text: source.to_string(),
            overlay,
        })
    }
}

/// A SOURCE as written: the source, and the overlay its stream options
/// (`#overlay=TEXT`, `#overlay-time=local`) ask for.
pub(super) fn parse_source(text: &str) -> Result<(SourceSpec, Option<Overlay>), String> {
    let (source, overlay) = mjpeg_server::variant::split_overlay(text)?;
    let spec = source
        .parse()
        .map_err(|e: mjpeg_server::source::SourceError| e.to_string())?;
    Ok((spec, overlay))
}

/// The most seconds any setting takes: beyond it a duration would not fit
/// a timer (and nobody means a timeout of more than 30 years).
const MAX_SECONDS: f64 = 1e9;

/// Frames per second: the interval between frames, 1/fps, must be a
/// duration a timer can hold and more than nothing.
const FPS_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1000.0;

pub(super) fn check_fps(v: f64) -> Result<f64, String> {
    if FPS_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a frame rate from 0.001 to 1000"))
    }
}

/// `--fps`.
pub(super) fn fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_fps(v),
        _ => Err(format!("{s:?} is not a number of frames per second")),
    }
}

pub(super) fn check_seconds(v: f64, positive: bool) -> Result<f64, String> {
    if !v.is_finite() || v < 0.0 || (positive && v == 0.0) {
        Err(if positive {
            format!("{v} is not a positive number")
        } else {
            format!("{v} is not a number of seconds (0 or more)")
        })
    } else if v > MAX_SECONDS {
        Err(format!("{v} seconds is too long (at most {MAX_SECONDS})"))
    } else {
        Ok(v)
    }
}

pub(super) fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_seconds(v, true),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

pub(super) fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_seconds(v, false),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// A size in bytes: `16777216`, `512K`, `16M`, `1G`.
/// `--max-header-size`: a size from 1K to 1M.
pub(super) fn header_size(s: &str) -> Result<usize, String> {
    let n = byte_size(s)?;
    check_header_size(n)
}

pub(super) fn check_header_size(n: usize) -> Result<usize, String> {
    if (1024..=1 << 20).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} bytes is not a header size from 1K to 1M"))
    }
}

/// `--allow-origin`: `*` or `scheme://host[:port]`, as browsers send it.
pub(super) fn origin(s: &str) -> Result<String, String> {
    let ok = s == "*"
        || s.split_once("://").is_some_and(|(scheme, host)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an origin: use * or SCHEME://HOST[:PORT] with no path, e.g. https://dash.example.com"
        ))
    }
}

/// `--user NAME:PASSWORD`, allowed to do everything.
fn user(s: &str) -> Result<UserSetting, String> {
    let (name, password) = s
        .split_once(':')
        .ok_or_else(|| "expected NAME:PASSWORD".to_string())?;
    let u = UserSetting {
        name: name.to_string(),
        password: password.to_string(),
        watch: vec!["*".into()],
        push: vec!["*".into()],
    };
    u.check()?;
    Ok(u)
}

/// `--token TOKEN` and its watch/push variants.
fn token(s: &str) -> Result<String, String> {
    check_token(s).map(|_| s.to_string())
}

pub(super) fn byte_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{s:?} is not a size: use e.g. 16M or 512K")),
    };
    match digits.parse::<usize>() {
        Ok(n) if n > 0 => n
            .checked_shl(shift)
            .filter(|v| v >> shift == n)
            .ok_or_else(|| format!("{s:?} is too large")),
        _ => Err(format!("{s:?} is not a size: use e.g. 16M or 512K")),
    }
}
