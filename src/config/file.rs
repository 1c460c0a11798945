//! The config file as written: the values of its keys, each checked as
//! the flag of the same setting checks it, so that an error points at the
//! key's line and column.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::Path;

use super::flags::{
    byte_size, check_fps, check_header_size, check_seconds, header_size, origin, StreamArg,
};
use super::{ConfigError, FileConfig};
use mjpeg_server::hub::check_name;
use mjpeg_server::server::{ListenAddr, TrustedProxy};
use mjpeg_server::source::SourceSpec;
use mjpeg_server::variant::Overlay;

#[derive(Debug)]
pub(super) struct Origin(pub(super) String);

/// `trusted-proxy = "ADDR/CIDR"` or a list of them.
#[derive(Debug)]
pub(super) struct Proxies(pub(super) Vec<TrustedProxy>);

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
    pub(super) fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
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
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
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
pub(super) struct FileStream(pub(super) StreamArg, pub(super) std::ops::Range<usize>);

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
                overlay: raw.source.2,
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

struct SourceText(SourceSpec, String, Option<Overlay>);

impl<'de> Deserialize<'de> for SourceText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (spec, overlay) = super::flags::parse_source(&s).map_err(serde::de::Error::custom)?;
        Ok(SourceText(spec, s, overlay))
    }
}

/// `listen = "ADDR:PORT"` or `listen = ["ADDR:PORT", "unix:PATH", …]`; a
/// port alone (`listen = 8080` or `"8080"`) is 127.0.0.1 as on the command
/// line.
#[derive(Debug)]
pub(super) struct Listen(pub(super) Vec<ListenAddr>);

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
pub(super) struct Checked<K: Kind>(pub(super) K::Value);

pub(super) trait Kind {
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
pub(super) struct Positive;
impl Kind for Positive {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_seconds(n.value(), true)
    }
}

#[derive(Debug)]
pub(super) struct Fps;
impl Kind for Fps {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_fps(n.value())
    }
}

#[derive(Debug)]
pub(super) struct Seconds;
impl Kind for Seconds {
    type Value = f64;
    fn from_number(n: Number) -> Result<f64, String> {
        check_seconds(n.value(), false)
    }
}

/// A number as the config file wrote it: a whole number exactly (so that
/// an error shows it as written, not rounded through a float), or a float.
#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
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
pub(super) struct Connections;
impl Kind for Connections {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 1, u32::MAX)
    }
}

#[derive(Debug)]
pub(super) struct PrefixBits;
impl Kind for PrefixBits {
    type Value = u8;
    fn from_number(n: Number) -> Result<u8, String> {
        whole_in(n, 0, 128).map(|v| v as u8)
    }
}

#[derive(Debug)]
pub(super) struct Count;
impl Kind for Count {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 0, u32::MAX)
    }
}

#[derive(Debug)]
pub(super) struct HeaderSize;
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
pub(super) struct Quality;
impl Kind for Quality {
    type Value = u8;
    fn from_number(n: Number) -> Result<u8, String> {
        whole_in(n, 1, 100).map(|v| v as u8)
    }
}

#[derive(Debug)]
pub(super) struct Pixels;
impl Kind for Pixels {
    type Value = u32;
    fn from_number(n: Number) -> Result<u32, String> {
        whole_in(n, 1, 65535)
    }
}

#[derive(Debug)]
pub(super) struct PixelCount;
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
pub(super) struct Size;
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
