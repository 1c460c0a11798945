//! The settings of the command-line server: flags, the config file, and
//! what the server runs with.
//!
//! Each setting that is one value (a number, a size, a duration) is
//! declared once, in the table of `settings!` below: its type, default,
//! help, flag and file key come from that one line, and so do its field in
//! [`Settings`] and its merge (a flag wins over the file, the file over the
//! default). The settings with a shape of their own (listen addresses,
//! streams, `[auth]`, `[tls]`) are declared beside it.
//!
//! | module | job |
//! | --- | --- |
//! | [`flags`] | the command line ([`Cli`]) and the checks of flag values |
//! | `file` | the config file as written, each key checked where it stands |
//! | [`auth`] | `[auth]` and `[tls]` |

pub mod auth;
mod file;
pub mod flags;
#[cfg(test)]
mod tests;

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use auth::{AuthSetting, TlsSetting, TokenSetting, UserSetting};
pub use flags::{Cli, StreamArg};

use auth::{all_streams, FileAuth, HIDDEN};
use file::{
    Checked, Connections, Count, Fps, HeaderSize, Listen, Origin, PixelCount, Pixels, Positive,
    PrefixBits, Proxies, Quality, Seconds, Size,
};
use flags::{byte_size, fps, header_size, non_negative_f64, positive_f64};
use mjpeg_server::http::HttpOptions;
use mjpeg_server::server::{ListenAddr, ServerOptions, TrustedProxy};
use mjpeg_server::source::{SourceOptions, SourceSpec};
use mjpeg_server::OptionNames;

/// Declares the settings that are one value each. For each entry of
/// `with_defaults`: `name: Type = default, "Default: as the help says it.",
/// flag(clap arguments), file Check;` where `Check` reads the config file's
/// key (a `file::Kind`); an entry of `optional` has no default. The
/// config file's other keys (the settings with a shape of their own) are
/// listed after them, so that the file's one struct refuses unknown keys. From that one
/// declaration come the flag `--name` (help: the doc comment and its
/// default), the file key `name` (kebab-case), the field of [`Scalars`]
/// with its default, and the merge.
macro_rules! settings {
    (
        with_defaults {
            $(
                $(#[doc = $doc:literal])*
                $name:ident: $ty:ty = $default:expr, $shown:literal,
                    flag($($flag:tt)*), file $check:ty;
            )*
        }
        optional {
            $(
                $(#[doc = $odoc:literal])*
                $oname:ident: $oty:ty, flag($($oflag:tt)*), file $ocheck:ty;
            )*
        }
        other_file_keys {
            $(
                $(#[$fmeta:meta])*
                $fname:ident: $fty:ty,
            )*
        }
    ) => {
        /// The flags of the settings declared in `settings!`.
        #[derive(Debug, Default, clap::Args)]
        pub struct ScalarFlags {
            $(
                $(#[doc = $doc])*
                #[doc = $shown]
                #[arg(long, $($flag)*)]
                pub $name: Option<$ty>,
            )*
            $(
                $(#[doc = $odoc])*
                #[arg(long, $($oflag)*)]
                pub $oname: Option<$oty>,
            )*
        }

        /// The values of the settings declared in `settings!`.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub struct Scalars {
            $(
                $(#[doc = $doc])*
                pub $name: $ty,
            )*
            $(
                $(#[doc = $odoc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $oname: Option<$oty>,
            )*
        }

        impl Default for Scalars {
            fn default() -> Self {
                Scalars {
                    $( $name: $default, )*
                    $( $oname: None, )*
                }
            }
        }

        impl Scalars {
            /// Each value from its flag, else from the file, else its
            /// default.
            fn merge(flags: &ScalarFlags, file: &mut FileConfig) -> Scalars {
                let d = Scalars::default();
                Scalars {
                    $(
                        $name: flags
                            .$name
                            .or_else(|| file.$name.take().map(|v| v.0))
                            .unwrap_or(d.$name),
                    )*
                    $(
                        $oname: flags.$oname.or_else(|| file.$oname.take().map(|v| v.0)),
                    )*
                }
            }
        }

        /// The config file as written: every key optional, unknown keys
        /// refused.
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        struct FileConfig {
            $( $name: Option<Checked<$check>>, )*
            $( $oname: Option<Checked<$ocheck>>, )*
            $( $(#[$fmeta])* $fname: $fty, )*
        }
    };
}

settings! {
    with_defaults {
        /// Frames per second of sources that set their own pace (dir, demo).
        fps: f64 = 1.0 / SourceOptions::default().interval.as_secs_f64(), "Default: 10.", flag(value_name = "N", value_parser = fps), file Fps;
        /// Re-send the newest frame to a viewer after this many seconds without
        /// a new one (Chrome shows a frame only when the next begins); 0 = never.
        resend_after: f64 = secs(http().resend_after), "Default: 1.",
            flag(value_name = "SECONDS", value_parser = non_negative_f64), file Seconds;
        /// Drop a viewer whose socket accepts nothing for this many seconds;
        /// 0 = never.
        write_timeout: f64 = secs(server().write_timeout), "Default: 10.",
            flag(value_name = "SECONDS", value_parser = non_negative_f64), file Seconds;
        /// Most connections open at once; more get 503.
        max_connections: u32 = count(server().max_connections), "Default: 4096.",
            flag(value_name = "N", value_parser = clap::value_parser!(u32).range(1..)),
            file Connections;
        /// Most streams that pushes may create (--allow-create); one more gets
        /// 503.
        max_created_streams: u32 = count(http().max_created_streams), "Default: 64.", flag(value_name = "N"), file Count;
        /// Forget a stream created by a push once nobody has pushed to it for
        /// this many seconds and nobody watches it; 0 = never.
        created_stream_idle: f64 = secs(http().created_stream_idle), "Default: 600.",
            flag(value_name = "SECONDS", value_parser = non_negative_f64), file Seconds;
        /// Largest frame a source may publish (bytes; K, M, G suffixes allowed).
        max_frame_size: usize = http().max_frame_bytes, "Default: 16M.",
            flag(value_name = "BYTES", value_parser = byte_size), file Size;
        /// JPEG quality for images converted from other formats (PNG, GIF, …).
        jpeg_quality: u8 = http().convert.quality, "Default: 85.",
            flag(value_name = "1-100", value_parser = clap::value_parser!(u8).range(1..=100)),
            file Quality;
        /// Refuse images (JPEGs too) whose header declares more pixels than
        /// this, before decoding them.
        max_pixels: u64 = http().convert.max_pixels, "Default: 50000000.",
            flag(value_name = "PIXELS", value_parser = clap::value_parser!(u64).range(1..)),
            file PixelCount;
        /// Most viewers of one stream; more get 503.
        max_clients_per_stream: u32 = http().max_clients_per_stream.map_or(0, count), "Default: 0, no limit of its own (--max-connections still applies).",
            flag(value_name = "N"), file Count;
        /// Most connections open at once from one client address; more get
        /// 503. Behind a reverse proxy every client has the proxy's address:
        /// raise it or set 0 (no limit).
        max_connections_per_address: u32 = count(server().max_connections_per_address), "Default: 256.", flag(value_name = "N"), file Count;
        /// IPv6 clients whose addresses share this many leading bits are one
        /// client for --max-connections-per-address (a host usually has a whole
        /// /64); 128 counts exact addresses.
        ipv6_prefix: u8 = server().ipv6_prefix, "Default: 64.",
            flag(value_name = "BITS", value_parser = clap::value_parser!(u8).range(0..=128)),
            file PrefixBits;
        /// Largest request head (request line and headers); larger gets 431.
        max_header_size: usize = server().max_header_bytes, "Default: 16K.",
            flag(value_name = "BYTES", value_parser = header_size), file HeaderSize;
        /// Seconds a client may take to send its request headers (and finish a
        /// TLS handshake); slower gets 408.
        header_timeout: f64 = server().header_timeout.as_secs_f64(), "Default: 10.",
            flag(value_name = "SECONDS", value_parser = positive_f64), file Positive;
        /// End a push whose body sends nothing for this many seconds (408);
        /// 0 = never.
        push_idle_timeout: f64 = secs(http().push_idle_timeout), "Default: 30.",
            flag(value_name = "SECONDS", value_parser = non_negative_f64), file Seconds;
        /// Most variants of one stream (?width=, ?height=, ?quality=) made at
        /// a time; a request for one more gets 503. 0 turns variants off.
        max_variants: u32 = count(http().max_variants), "Default: 8.", flag(value_name = "N"), file Count;

    }
    optional {
        /// Shrink converted images wider than this many pixels.
        max_width: u32,
            flag(value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535)),
            file Pixels;
        /// Shrink converted images taller than this many pixels.
        max_height: u32,
            flag(value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535)),
            file Pixels;

    }
    other_file_keys {
        listen: Option<Listen>,
        allow_create: Option<bool>,
        allow_origin: Option<Vec<Origin>>,
        trusted_proxy: Option<Proxies>,
        tls: Option<TlsSetting>,
        auth: Option<FileAuth>,
        #[serde(default, rename = "stream")]
        streams: Vec<file::FileStream>,
    }
}

/// How the library's messages name the options a user can change: as the
/// flags that change them (with the file key where a user may look for
/// one).
pub const OPTION_NAMES: OptionNames = OptionNames {
    max_frame: "--max-frame-size",
    max_pixels: "--max-pixels (config key max-pixels)",
    push_idle_timeout: "--push-idle-timeout",
    allow_create: "start the server with --allow-create (allow-create = true in the config file)",
    push_stream: "--stream NAME=push",
    chart_stream: "--stream NAME=chart",
    listen: "another with --listen",
    max_variants: "--max-variants",
    allow_origin: "--allow-origin ORIGIN",
};

/// The library's default server options: the command line's defaults are
/// the library's, so that each is written once.
fn server() -> ServerOptions {
    ServerOptions::default()
}

/// The library's default HTTP options.
fn http() -> HttpOptions {
    HttpOptions::default()
}

/// An optional duration in the config's seconds, 0 for none.
fn secs(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

/// A count of the library's as a setting's.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
    /// The settings that are one value each.
    #[serde(flatten)]
    pub scalars: Scalars,
    /// Create a push stream when a frame is pushed to an unknown name.
    pub allow_create: bool,
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
            scalars: Scalars::default(),
            allow_create: false,
            allow_origin: Vec::new(),
            trusted_proxy: Vec::new(),
            tls: None,
            auth: AuthSetting::default(),
            streams: Vec::new(),
        }
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

    fn merge(mut file: FileConfig, cli: &Cli) -> Settings {
        let d = Settings::default();
        let mut streams: Vec<StreamArg> = std::mem::take(&mut file.streams)
            .into_iter()
            .map(|s| s.0)
            .collect();
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
                overlay: None,
            });
        }
        Settings {
            listen: if let Some(port) = cli.port {
                vec![ListenAddr::port(port)]
            } else if !cli.listen.is_empty() {
                cli.listen.clone()
            } else {
                file.listen.take().map(|l| l.0).unwrap_or(d.listen)
            },
            scalars: Scalars::merge(&cli.scalars, &mut file),
            allow_create,
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
