//! The command line: every flag, with its default and what it is for.
//!
//! Parsing is done by clap; this module adds the types that flags parse
//! into ([`StreamArg`]) so that a bad value is refused with a message that
//! names it before anything starts.

use clap::Parser;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use mjpeg_server::access::{check_token, check_user, Access, Grant, Patterns};
use mjpeg_server::hub::check_name;
use mjpeg_server::server::{ListenAddr, TrustedProxy};
use mjpeg_server::source::SourceSpec;

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

    /// Frames per second of sources that set their own pace (dir, demo).
    /// Default: 10.
    #[arg(long, value_name = "N", value_parser = fps)]
    pub fps: Option<f64>,

    /// Re-send the newest frame to a viewer after this many seconds without
    /// a new one (Chrome shows a frame only when the next begins); 0 = never.
    /// Default: 1.
    #[arg(long, value_name = "SECONDS", value_parser = non_negative_f64)]
    pub resend_after: Option<f64>,

    /// Drop a viewer whose socket accepts nothing for this many seconds;
    /// 0 = never. Default: 10.
    #[arg(long, value_name = "SECONDS", value_parser = non_negative_f64)]
    pub write_timeout: Option<f64>,

    /// Most connections open at once; more get 503. Default: 4096.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Create a push stream when a frame is pushed to an unknown name.
    #[arg(long)]
    pub allow_create: bool,

    /// Most streams that pushes may create (--allow-create); one more gets
    /// 503. Default: 64.
    #[arg(long, value_name = "N")]
    pub max_created_streams: Option<u32>,

    /// Forget a stream created by a push once nobody has pushed to it for
    /// this many seconds and nobody watches it; 0 = never. Default: 600.
    #[arg(long, value_name = "SECONDS", value_parser = non_negative_f64)]
    pub created_stream_idle: Option<f64>,

    /// Largest frame a source may publish (bytes; K, M, G suffixes allowed).
    /// Default: 16M.
    #[arg(long, value_name = "BYTES", value_parser = byte_size)]
    pub max_frame_size: Option<usize>,

    /// JPEG quality for images converted from other formats (PNG, GIF, …).
    /// Default: 85.
    #[arg(long, value_name = "1-100", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,

    /// Shrink converted images wider than this many pixels.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_width: Option<u32>,

    /// Shrink converted images taller than this many pixels.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_height: Option<u32>,

    /// Refuse images (JPEGs too) whose header declares more pixels than
    /// this, before decoding them. Default: 50000000.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: Option<u64>,

    /// Most viewers of one stream; more get 503. Default: 0, no limit of
    /// its own (--max-connections still applies).
    #[arg(long, value_name = "N")]
    pub max_clients_per_stream: Option<u32>,

    /// Most connections open at once from one client address; more get
    /// 503. Behind a reverse proxy every client has the proxy's address:
    /// raise it or set 0 (no limit). Default: 256.
    #[arg(long, value_name = "N")]
    pub max_connections_per_address: Option<u32>,

    /// IPv6 clients whose addresses share this many leading bits are one
    /// client for --max-connections-per-address (a host usually has a whole
    /// /64); 128 counts exact addresses. Default: 64.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_prefix: Option<u8>,

    /// Largest request head (request line and headers); larger gets 431.
    /// Default: 16K.
    #[arg(long, value_name = "BYTES", value_parser = header_size)]
    pub max_header_size: Option<usize>,

    /// Seconds a client may take to send its request headers (and finish a
    /// TLS handshake); slower gets 408. Default: 10.
    #[arg(long, value_name = "SECONDS", value_parser = positive_f64)]
    pub header_timeout: Option<f64>,

    /// End a push whose body sends nothing for this many seconds (408);
    /// 0 = never. Default: 30.
    #[arg(long, value_name = "SECONDS", value_parser = non_negative_f64)]
    pub push_idle_timeout: Option<f64>,

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
        let source_text = source;
        let source = source
            .parse()
            .map_err(|e: mjpeg_server::source::SourceError| e.to_string())?;
        Ok(StreamArg {
            name: name.to_string(),
            source,
            source_text: source_text.to_string(),
        })
    }
}

/// The most seconds any setting takes: beyond it a duration would not fit
/// a timer (and nobody means a timeout of more than 30 years).
const MAX_SECONDS: f64 = 1e9;

/// Frames per second: the interval between frames, 1/fps, must be a
/// duration a timer can hold and more than nothing.
const FPS_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1000.0;

fn check_fps(v: f64) -> Result<f64, String> {
    if FPS_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a frame rate from 0.001 to 1000"))
    }
}

/// `--fps`.
fn fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_fps(v),
        _ => Err(format!("{s:?} is not a number of frames per second")),
    }
}

fn check_seconds(v: f64, positive: bool) -> Result<f64, String> {
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

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_seconds(v, true),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) => check_seconds(v, false),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// A size in bytes: `16777216`, `512K`, `16M`, `1G`.
/// `--max-header-size`: a size from 1K to 1M.
fn header_size(s: &str) -> Result<usize, String> {
    let n = byte_size(s)?;
    check_header_size(n)
}

fn check_header_size(n: usize) -> Result<usize, String> {
    if (1024..=1 << 20).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} bytes is not a header size from 1K to 1M"))
    }
}

/// `--allow-origin`: `*` or `scheme://host[:port]`, as browsers send it.
fn origin(s: &str) -> Result<String, String> {
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

fn byte_size(s: &str) -> Result<usize, String> {
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

/// Seconds as a duration, with 0 meaning "off".
pub fn seconds_or_off(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The settings the server runs with: the config file, if any, with the
/// command line's flags laid over it and defaults for the rest.
///
/// Serialises as TOML in the config file's own format (`--check-config`
/// prints it), so its output is itself a valid config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    /// Addresses to listen on, at least one.
    pub listen: Vec<ListenAddr>,
    /// Frames per second of sources that set their own pace.
    pub fps: f64,
    /// Seconds before re-sending the newest frame; 0 = never.
    pub resend_after: f64,
    /// Seconds a write may stall before the viewer is dropped; 0 = never.
    pub write_timeout: f64,
    /// Most connections open at once.
    pub max_connections: u32,
    /// Create a push stream when a frame is pushed to an unknown name.
    pub allow_create: bool,
    /// Most streams that pushes may create.
    pub max_created_streams: u32,
    /// Seconds before an idle stream created by a push is forgotten; 0 =
    /// never.
    pub created_stream_idle: f64,
    /// Largest frame, in bytes.
    pub max_frame_size: usize,
    /// JPEG quality of converted images.
    pub jpeg_quality: u8,
    /// Shrink converted images wider than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// Shrink converted images taller than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Most pixels an image may declare.
    pub max_pixels: u64,
    /// Most viewers of one stream; 0 = no limit of its own.
    pub max_clients_per_stream: u32,
    /// Most connections from one address; 0 = no limit.
    pub max_connections_per_address: u32,
    /// Leading bits of an IPv6 address that make one client.
    pub ipv6_prefix: u8,
    /// Largest request head, in bytes.
    pub max_header_size: usize,
    /// Seconds to send the request head.
    pub header_timeout: f64,
    /// Seconds a push body may send nothing; 0 = never.
    pub push_idle_timeout: f64,
    /// CORS origins (`*` for any); empty = no CORS.
    pub allow_origin: Vec<String>,
    /// Reverse proxies whose forwarding headers name the client.
    pub trusted_proxy: Vec<TrustedProxy>,
    /// HTTPS certificate and key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSetting>,
    /// Who may watch and push.
    #[serde(skip_serializing_if = "AuthSetting::is_default")]
    pub auth: AuthSetting,
    /// The streams, in order (the first is `/stream`). Empty means none
    /// were configured; [`Settings::resolve`] never leaves it empty unless
    /// `allow_create` is set.
    #[serde(rename = "stream")]
    pub streams: Vec<StreamArg>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080)))],
            fps: 10.0,
            resend_after: 1.0,
            write_timeout: 10.0,
            max_connections: 4096,
            allow_create: false,
            max_created_streams: 64,
            created_stream_idle: 600.0,
            max_frame_size: 16 << 20,
            jpeg_quality: 85,
            max_width: None,
            max_height: None,
            max_pixels: mjpeg_server::convert::DEFAULT_MAX_PIXELS,
            max_clients_per_stream: 0,
            max_connections_per_address: 256,
            ipv6_prefix: 64,
            max_header_size: 16 << 10,
            header_timeout: 10.0,
            push_idle_timeout: 30.0,
            allow_origin: Vec::new(),
            trusted_proxy: Vec::new(),
            tls: None,
            auth: AuthSetting::default(),
            streams: Vec::new(),
        }
    }
}

/// `[tls]`: the PEM files of an HTTPS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSetting {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `[auth]`: users, tokens, and what anyone may do without them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthSetting {
    /// Named in the browser's login prompt.
    pub realm: String,
    /// Streams anyone may watch (patterns, `*` for all).
    pub public_watch: Vec<String>,
    /// Streams anyone may push to.
    pub public_push: Vec<String>,
    /// HTTP Basic users.
    #[serde(rename = "user")]
    pub users: Vec<UserSetting>,
    /// Bearer tokens.
    #[serde(rename = "token")]
    pub tokens: Vec<TokenSetting>,
}

impl Default for AuthSetting {
    fn default() -> Self {
        AuthSetting {
            realm: "mjpeg-server".into(),
            public_watch: Vec::new(),
            public_push: Vec::new(),
            users: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

impl AuthSetting {
    /// No credentials: everyone may do everything.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Nothing set: `--check-config` leaves the table out.
    fn is_default(&self) -> bool {
        *self == AuthSetting::default()
    }

    /// The access rules these settings describe.
    pub fn access(&self) -> Result<Access, String> {
        let grant = |watch: &[String], push: &[String]| -> Result<Grant, String> {
            Ok(Grant {
                watch: Patterns::new(watch)?,
                push: Patterns::new(push)?,
            })
        };
        let mut access = Access::new(
            self.realm.clone(),
            grant(&self.public_watch, &self.public_push)?,
        );
        for u in &self.users {
            access.add_user(&u.name, &u.password, grant(&u.watch, &u.push)?)?;
        }
        for t in &self.tokens {
            access.add_token(&t.token, grant(&t.watch, &t.push)?)?;
        }
        Ok(access)
    }
}

/// Every stream, the default grant of a user or token.
fn all_streams() -> Vec<String> {
    vec!["*".into()]
}

/// Secrets are printed by `--check-config` as this, never in clear.
const HIDDEN: &str = "(hidden)";

fn hide<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(HIDDEN)
}

/// `[[auth.user]]` / `--user`: an HTTP Basic user and the streams it may
/// watch and push to (default: all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSetting {
    /// The user name (no `:`).
    pub name: String,
    /// The password.
    #[serde(serialize_with = "hide")]
    pub password: String,
    /// Streams it may watch.
    #[serde(default = "all_streams")]
    pub watch: Vec<String>,
    /// Streams it may push to.
    #[serde(default = "all_streams")]
    pub push: Vec<String>,
}

impl UserSetting {
    fn check(&self) -> Result<(), String> {
        check_user(&self.name, &self.password)?;
        Patterns::new(&self.watch)?;
        Patterns::new(&self.push)?;
        Ok(())
    }
}

/// `[[auth.token]]` / `--token`: a bearer token and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSetting {
    /// The token (8 characters or more).
    #[serde(serialize_with = "hide")]
    pub token: String,
    /// Streams it may watch.
    #[serde(default = "all_streams")]
    pub watch: Vec<String>,
    /// Streams it may push to.
    #[serde(default = "all_streams")]
    pub push: Vec<String>,
}

impl TokenSetting {
    fn check(&self) -> Result<(), String> {
        check_token(&self.token)?;
        Patterns::new(&self.watch)?;
        Patterns::new(&self.push)?;
        Ok(())
    }
}

/// A config file that cannot be used. Displays as one line:
/// `FILE:LINE:COLUMN: key `KEY`: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is wrong.
    #[error("{path}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The key, as a dotted path, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl Settings {
    /// The settings `cli` asks for: its config file (if any), then its
    /// flags, then defaults. A `--stream` whose name is in the file
    /// replaces that stream; other `--stream`s are added after the file's.
    pub fn resolve(cli: &Cli) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.clone(),
                    error,
                })?;
                FileConfig::parse(path, &text)?
            }
            None => FileConfig::default(),
        };
        Ok(Settings::merge(file, cli))
    }

    fn merge(file: FileConfig, cli: &Cli) -> Settings {
        let d = Settings::default();
        let mut streams: Vec<StreamArg> = file.streams.into_iter().map(|s| s.0).collect();
        let from_file = streams.len();
        let mut replaced = vec![false; from_file];
        for arg in &cli.streams {
            // A flag replaces the file's stream of that name, once; two
            // flags with one name stay two, for the duplicate to be refused.
            match streams[..from_file]
                .iter()
                .position(|s| s.name == arg.name)
                .filter(|&i| !replaced[i])
            {
                Some(i) => {
                    streams[i] = arg.clone();
                    replaced[i] = true;
                }
                None => streams.push(arg.clone()),
            }
        }
        let allow_create = cli.allow_create || file.allow_create.unwrap_or(d.allow_create);
        if streams.is_empty() && !allow_create {
            streams.push(StreamArg {
                name: "demo".into(),
                source: SourceSpec::Demo,
                source_text: "demo".into(),
            });
        }
        Settings {
            listen: if let Some(port) = cli.port {
                vec![ListenAddr::port(port)]
            } else if !cli.listen.is_empty() {
                cli.listen.clone()
            } else {
                file.listen.map(|l| l.0).unwrap_or(d.listen)
            },
            fps: cli.fps.or(file.fps.map(|v| v.0)).unwrap_or(d.fps),
            resend_after: cli
                .resend_after
                .or(file.resend_after.map(|v| v.0))
                .unwrap_or(d.resend_after),
            write_timeout: cli
                .write_timeout
                .or(file.write_timeout.map(|v| v.0))
                .unwrap_or(d.write_timeout),
            max_connections: cli
                .max_connections
                .or(file.max_connections.map(|v| v.0))
                .unwrap_or(d.max_connections),
            allow_create,
            max_created_streams: cli
                .max_created_streams
                .or(file.max_created_streams.map(|v| v.0))
                .unwrap_or(d.max_created_streams),
            created_stream_idle: cli
                .created_stream_idle
                .or(file.created_stream_idle.map(|v| v.0))
                .unwrap_or(d.created_stream_idle),
            max_frame_size: cli
                .max_frame_size
                .or(file.max_frame_size.map(|v| v.0))
                .unwrap_or(d.max_frame_size),
            jpeg_quality: cli
                .jpeg_quality
                .or(file.jpeg_quality.map(|v| v.0))
                .unwrap_or(d.jpeg_quality),
            max_width: cli.max_width.or(file.max_width.map(|v| v.0)),
            max_height: cli.max_height.or(file.max_height.map(|v| v.0)),
            max_pixels: cli
                .max_pixels
                .or(file.max_pixels.map(|v| v.0))
                .unwrap_or(d.max_pixels),
            max_clients_per_stream: cli
                .max_clients_per_stream
                .or(file.max_clients_per_stream.map(|v| v.0))
                .unwrap_or(d.max_clients_per_stream),
            max_connections_per_address: cli
                .max_connections_per_address
                .or(file.max_connections_per_address.map(|v| v.0))
                .unwrap_or(d.max_connections_per_address),
            ipv6_prefix: cli
                .ipv6_prefix
                .or(file.ipv6_prefix.map(|v| v.0))
                .unwrap_or(d.ipv6_prefix),
            max_header_size: cli
                .max_header_size
                .or(file.max_header_size.map(|v| v.0))
                .unwrap_or(d.max_header_size),
            header_timeout: cli
                .header_timeout
                .or(file.header_timeout.map(|v| v.0))
                .unwrap_or(d.header_timeout),
            push_idle_timeout: cli
                .push_idle_timeout
                .or(file.push_idle_timeout.map(|v| v.0))
                .unwrap_or(d.push_idle_timeout),
            allow_origin: if !cli.allow_origins.is_empty() {
                cli.allow_origins.clone()
            } else {
                file.allow_origin
                    .map(|v| v.into_iter().map(|o| o.0).collect())
                    .unwrap_or_default()
            },
            trusted_proxy: if !cli.trusted_proxies.is_empty() {
                cli.trusted_proxies.clone()
            } else {
                file.trusted_proxy.map(|v| v.0).unwrap_or_default()
            },
            tls: match (&cli.tls_cert, &cli.tls_key) {
                (Some(cert), Some(key)) => Some(TlsSetting {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => file.tls,
            },
            auth: Settings::merge_auth(file.auth.unwrap_or_default(), cli),
            streams,
        }
    }

    /// The file's `[auth]` with the command line's users and tokens added.
    fn merge_auth(file: FileAuth, cli: &Cli) -> AuthSetting {
        let d = AuthSetting::default();
        let mut users: Vec<UserSetting> = file.users.into_iter().map(|u| u.0).collect();
        users.extend(cli.users.iter().cloned());
        let mut tokens: Vec<TokenSetting> = file.tokens.into_iter().map(|t| t.0).collect();
        let flag_tokens = [
            (&cli.tokens, true, true),
            (&cli.watch_tokens, true, false),
            (&cli.push_tokens, false, true),
        ];
        for (list, watch, push) in flag_tokens {
            let streams = |yes: bool| if yes { all_streams() } else { Vec::new() };
            tokens.extend(list.iter().map(|t| TokenSetting {
                token: t.clone(),
                watch: streams(watch),
                push: streams(push),
            }));
        }
        AuthSetting {
            realm: file.realm.unwrap_or(d.realm),
            public_watch: if cli.public_watch {
                all_streams()
            } else {
                file.public_watch.map(|p| p.0).unwrap_or_default()
            },
            public_push: file.public_push.map(|p| p.0).unwrap_or_default(),
            users,
            tokens,
        }
    }

    /// The settings as a TOML document (what `--check-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render the settings: {e}\n"))
    }
}

/// The config file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<Listen>,
    fps: Option<Checked<Fps>>,
    resend_after: Option<Checked<Seconds>>,
    write_timeout: Option<Checked<Seconds>>,
    max_connections: Option<Checked<Connections>>,
    allow_create: Option<bool>,
    max_created_streams: Option<Checked<Count>>,
    created_stream_idle: Option<Checked<Seconds>>,
    max_frame_size: Option<Checked<Size>>,
    jpeg_quality: Option<Checked<Quality>>,
    max_width: Option<Checked<Pixels>>,
    max_height: Option<Checked<Pixels>>,
    max_pixels: Option<Checked<PixelCount>>,
    max_clients_per_stream: Option<Checked<Count>>,
    max_connections_per_address: Option<Checked<Count>>,
    ipv6_prefix: Option<Checked<PrefixBits>>,
    max_header_size: Option<Checked<HeaderSize>>,
    header_timeout: Option<Checked<Positive>>,
    push_idle_timeout: Option<Checked<Seconds>>,
    allow_origin: Option<Vec<Origin>>,
    trusted_proxy: Option<Proxies>,
    tls: Option<TlsSetting>,
    auth: Option<FileAuth>,
    #[serde(default, rename = "stream")]
    streams: Vec<FileStream>,
}

/// `[auth]` as written, each entry checked as it is read so that an error
/// points at its line.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileAuth {
    realm: Option<String>,
    public_watch: Option<PatternList>,
    public_push: Option<PatternList>,
    #[serde(default, rename = "user")]
    users: Vec<FileUser>,
    #[serde(default, rename = "token")]
    tokens: Vec<FileToken>,
}

#[derive(Debug)]
struct PatternList(Vec<String>);

impl<'de> Deserialize<'de> for PatternList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        Patterns::new(&v).map_err(serde::de::Error::custom)?;
        Ok(PatternList(v))
    }
}

#[derive(Debug)]
struct FileUser(UserSetting);

impl<'de> Deserialize<'de> for FileUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let u = UserSetting::deserialize(d)?;
        u.check().map_err(serde::de::Error::custom)?;
        Ok(FileUser(u))
    }
}

#[derive(Debug)]
struct FileToken(TokenSetting);

impl<'de> Deserialize<'de> for FileToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = TokenSetting::deserialize(d)?;
        t.check().map_err(serde::de::Error::custom)?;
        Ok(FileToken(t))
    }
}

#[derive(Debug)]
struct Origin(String);

/// `trusted-proxy = "ADDR/CIDR"` or a list of them.
#[derive(Debug)]
struct Proxies(Vec<TrustedProxy>);

impl<'de> Deserialize<'de> for Proxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let list = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        list.iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect::<Result<_, _>>()
            .map(Proxies)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        origin(&s).map(Origin).map_err(serde::de::Error::custom)
    }
}

impl FileConfig {
    fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        let invalid =
            |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
                let (line, column) = line_column(text, span.map_or(0, |s| s.start));
                ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    column,
                    key,
                    message,
                }
            };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().lines().collect::<Vec<_>>().join("; ");
            let mut key = error_key(&e);
            // serde names an unknown key in its message; name it in full.
            if let Some(unknown) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
            {
                key = Some(match key {
                    Some(parent) => format!("{parent}.{unknown}"),
                    None => unknown.to_string(),
                });
            }
            invalid(e.span(), key, message)
        })?;
        // Names are checked here, not in `StreamArg`, to point at the second
        // of two streams with one name.
        let mut seen: Vec<&str> = Vec::new();
        for s in &file.streams {
            if seen.contains(&s.0.name.as_str()) {
                return Err(invalid(
                    Some(s.1.clone()),
                    Some("stream.name".into()),
                    format!("stream name {:?} is used twice", s.0.name),
                ));
            }
            seen.push(&s.0.name);
        }
        Ok(file)
    }
}

/// The dotted key a toml error is about. The error keeps it private but
/// prints it (`in `a.b``) when rendered without the input.
fn error_key(e: &toml::de::Error) -> Option<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let line = rendered.lines().rev().find(|l| l.starts_with("in `"))?;
    Some(
        line.trim_start_matches("in `")
            .trim_end_matches('`')
            .to_string(),
    )
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `[[stream]]` in the file: a name and a source spec, checked as the
/// command line checks `--stream NAME=SOURCE`. Keeps the name's span so a
/// duplicate can be pointed at.
#[derive(Debug)]
struct FileStream(StreamArg, std::ops::Range<usize>);

impl<'de> Deserialize<'de> for FileStream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            name: toml::Spanned<StreamName>,
            source: SourceText,
        }
        let raw = Raw::deserialize(d)?;
        let span = raw.name.span();
        Ok(FileStream(
            StreamArg {
                name: raw.name.into_inner().0,
                source: raw.source.0,
                source_text: raw.source.1,
            },
            span,
        ))
    }
}

struct StreamName(String);

impl<'de> Deserialize<'de> for StreamName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_name(&s).map_err(serde::de::Error::custom)?;
        Ok(StreamName(s))
    }
}

struct SourceText(SourceSpec, String);

impl<'de> Deserialize<'de> for SourceText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let spec = s.parse().map_err(serde::de::Error::custom)?;
        Ok(SourceText(spec, s))
    }
}

/// `listen = "ADDR:PORT"` or `listen = ["ADDR:PORT", "unix:PATH", …]`; a
/// port alone (`listen = 8080` or `"8080"`) is 127.0.0.1 as on the command
/// line.
#[derive(Debug)]
struct Listen(Vec<ListenAddr>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn addr<E: serde::de::Error>(s: &str) -> Result<ListenAddr, E> {
            s.parse().map_err(E::custom)
        }
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address like \"127.0.0.1:8080\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Listen, E> {
                Ok(Listen(vec![addr(s)?]))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Listen, E> {
                let port = u16::try_from(n)
                    .map_err(|_| E::custom(format!("port {n} is not from 0 to 65535")))?;
                Ok(Listen(vec![ListenAddr::port(port)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listen, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(addr(&s)?);
                }
                if out.is_empty() {
                    return Err(serde::de::Error::custom(
                        "listen needs at least one address",
                    ));
                }
                Ok(Listen(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value checked as its flag checks it.
#[derive(Debug)]
struct Checked<K: Kind>(K::Value);

trait Kind {
    type Value;
    fn from_number(n: Number) -> Result<Self::Value, String>;
    fn from_str(s: &str) -> Result<Self::Value, String> {
        Err(format!("expected a number, found the string {s:?}"))
    }
}

impl<'de, K: Kind> Deserialize<'de> for Checked<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(std::marker::PhantomData<K>);
        impl<'de, K: Kind> serde::de::Visitor<'de> for V<K> {
            type Value = Checked<K>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Checked<K>, E> {
                K::from_number(Number::Integer(i128::from(v)))
                    .map(Checked)
                    .map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Checked<K>, E> {
                K::from_number(Number::Integer(i128::from(v)))
                    .map(Checked)
                    .map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Checked<K>, E> {
                K::from_number(Number::Float(v))
                    .map(Checked)
                    .map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Checked<K>, E> {
                K::from_str(v).map(Checked).map_err(E::custom)
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Checked<K>, E> {
                Err(E::custom(format!("expected a number, found {v}")))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug)]
struct Positive;
impl Kind for Positive {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_seconds(n.value(), true)
    }
}

#[derive(Debug)]
struct Fps;
impl Kind for Fps {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_fps(n.value())
    }
}

#[derive(Debug)]
struct Seconds;
impl Kind for Seconds {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_seconds(n.value(), false)
    }
}

/// A number as the config file wrote it: a whole number exactly (so that
/// an error shows it as written, not rounded through a float), or a float.
#[derive(Debug, Clone, Copy)]
enum Number {
    Integer(i128),
    Float(f64),
}

impl Number {
    fn value(self) -> f64 {
        match self {
            Number::Integer(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Number::Integer(i) => write!(f, "{i}"),
            Number::Float(v) => write!(f, "{v}"),
        }
    }
}

fn whole_in(n: Number, lo: u32, hi: u32) -> Result<u32, String> {
    match n {
        Number::Integer(i) if (i128::from(lo)..=i128::from(hi)).contains(&i) => Ok(i as u32),
        _ => Err(format!("{n} is not a whole number from {lo} to {hi}")),
    }
}

#[derive(Debug)]
struct Connections;
impl Kind for Connections {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 1, u32::MAX)
    }
}

#[derive(Debug)]
struct PrefixBits;
impl Kind for PrefixBits {
    type Value = u8;
    fn from_number(n: Number) -> Result<u8, String> {
        whole_in(n, 0, 128).map(|v| v as u8)
    }
}

#[derive(Debug)]
struct Count;
impl Kind for Count {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 0, u32::MAX)
    }
}

#[derive(Debug)]
struct HeaderSize;
impl Kind for HeaderSize {
    type Value = usize;
    fn from_number(n: Number) -> Result<usize, String> {
        Size::from_number(n).and_then(check_header_size)
    }
    fn from_str(s: &str) -> Result<usize, String> {
        header_size(s)
    }
}

#[derive(Debug)]
struct Quality;
impl Kind for Quality {
    type Value = u8;
    fn from_number(n: Number) -> Result<u8, String> {
        whole_in(n, 1, 100).map(|v| v as u8)
    }
}

#[derive(Debug)]
struct Pixels;
impl Kind for Pixels {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 1, 65535)
    }
}

#[derive(Debug)]
struct PixelCount;
impl Kind for PixelCount {
    type Value = u64;
    fn from_number(n: Number) -> Result<u64, String> {
        match n {
            Number::Integer(i) if i >= 1 && i <= i128::from(u64::MAX) => Ok(i as u64),
            _ => Err(format!(
                "{n} is not a number of pixels: use a whole number such as 50000000"
            )),
        }
    }
}

/// Bytes: a whole number or a string with a suffix (`"16M"`).
#[derive(Debug)]
struct Size;
impl Kind for Size {
    type Value = usize;
    fn from_number(n: Number) -> Result<usize, String> {
        match n {
            Number::Integer(i) if i >= 1 => usize::try_from(i)
                .map_err(|_| format!("{n} bytes is more than this machine can hold")),
            _ => Err(format!("{n} is not a size: use e.g. 16777216 or \"16M\"")),
        }
    }
    fn from_str(s: &str) -> Result<usize, String> {
        byte_size(s)
    }
}

/// The fuzz target's checks (`fuzz/fuzz_targets/config.rs`): any text is
/// either refused with an error that renders, or read into settings whose
/// `--check-config` output reads back as the same settings (secrets apart,
/// which it prints hidden).
#[doc(hidden)]
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let file = match FileConfig::parse(path, text) {
        Ok(file) => file,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.toml:"), "{message}");
            return;
        }
    };
    let cli = Cli::try_parse_from(["mjpeg-server"]).expect("no flags parse");
    let mut settings = Settings::merge(file, &cli);
    let printed = settings.to_toml();
    let again = FileConfig::parse(path, &printed)
        .unwrap_or_else(|e| panic!("the printed config does not read back: {e}\n{printed}"));
    for u in &mut settings.auth.users {
        u.password = HIDDEN.into();
    }
    for t in &mut settings.auth.tokens {
        t.token = HIDDEN.into();
    }
    assert_eq!(settings, Settings::merge(again, &cli), "{printed}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_args_parse_or_say_why_not() {
        let a: StreamArg = "cam=dir:./img".parse().unwrap();
        assert_eq!(a.name, "cam");
        assert_eq!(a.source, SourceSpec::Dir("./img".into()));
        assert!("cam"
            .parse::<StreamArg>()
            .unwrap_err()
            .contains("NAME=SOURCE"));
        assert!("bad name=demo"
            .parse::<StreamArg>()
            .unwrap_err()
            .contains("invalid stream name"));
        assert!("x=ftp:y"
            .parse::<StreamArg>()
            .unwrap_err()
            .contains("unknown source"));
    }

    #[test]
    fn defaults_and_bad_numbers() {
        let cli = Cli::try_parse_from(["mjpeg-server"]).unwrap();
        let settings = Settings::resolve(&cli).unwrap();
        assert_eq!(settings.listen[0].to_string(), "127.0.0.1:8080");
        assert_eq!(settings.streams.len(), 1);
        assert_eq!(settings.streams[0].source, SourceSpec::Demo);
        assert!(Cli::try_parse_from(["x", "--fps", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--fps", "abc"]).is_err());
        assert!(Cli::try_parse_from(["x", "--resend-after", "-1"]).is_err());
        assert_eq!(seconds_or_off(0.0), None);
        assert_eq!(settings.max_frame_size, 16 << 20);
    }

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn file_values_and_flags_merge() {
        let file = parse(
            "listen = \"[::1]:81\"\nfps = 2.5\nmax-frame-size = 1024\nwrite-timeout = 0\n\
             [[stream]]\nname = \"a\"\nsource = \"demo\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from(["x", "--write-timeout", "3", "--stream", "b=push"]).unwrap();
        let s = Settings::merge(file, &cli);
        assert_eq!(s.listen, [ListenAddr::Tcp("[::1]:81".parse().unwrap())]);
        assert_eq!(s.fps, 2.5);
        assert_eq!(s.write_timeout, 3.0);
        assert_eq!(s.max_frame_size, 1024);
        let names: Vec<_> = s.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // Two flags with one name are both kept, to be refused as a duplicate.
        let cli = Cli::try_parse_from(["x", "--stream", "a=push", "--stream", "a=demo"]).unwrap();
        let file = parse("[[stream]]\nname = \"a\"\nsource = \"demo\"\n").unwrap();
        assert_eq!(Settings::merge(file, &cli).streams.len(), 2);
        // allow-create alone means no default demo stream.
        let s = Settings::merge(
            parse("allow-create = true").unwrap(),
            &Cli::try_parse_from(["x"]).unwrap(),
        );
        assert!(s.streams.is_empty());
    }

    #[test]
    fn file_errors_name_line_and_key() {
        let e = parse("\n\nfps = -1\n").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:3:7: key `fps`: "), "{e}");
        let e = parse("[[stream]]\nname = \"a\"\nsource = \"demo\"\nfps = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml:4:1: key `stream.fps`: unknown field"),
            "{e}"
        );
        let e = parse("listen = \"unix:\"").unwrap_err().to_string();
        assert!(e.contains("key `listen`: unix: needs a path"), "{e}");
        let l = parse("listen = [\"unix:/run/x.sock\"]")
            .unwrap()
            .listen
            .unwrap();
        assert_eq!(l.0, [ListenAddr::Unix("/run/x.sock".into())]);
        let e = parse("listen = []").unwrap_err().to_string();
        assert!(e.contains("at least one address"), "{e}");
        // Whole numbers are shown as written, not rounded through a float.
        let e = parse("max-connections = 9223372036854775807")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("9223372036854775807 is not a whole number from 1 to 4294967295"),
            "{e}"
        );
        let e = parse("max-frame-size = true").unwrap_err().to_string();
        assert!(e.contains("key `max-frame-size`"), "{e}");
        assert_eq!(line_column("ab\ncdé\nf", 7), (2, 4));
        assert_eq!(line_column("", 5), (1, 1));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("1000"), Ok(1000));
        assert_eq!(byte_size("512K"), Ok(512 << 10));
        assert_eq!(byte_size("16m"), Ok(16 << 20));
        assert_eq!(byte_size("1GiB"), Ok(1 << 30));
        for bad in ["", "0", "M", "12X", "-1", "99999999999999999999G"] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
    }
}
