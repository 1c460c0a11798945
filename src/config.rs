//! The command line: every flag, with its default and what it is for.
//!
//! Parsing is done by clap; this module adds the types that flags parse
//! into ([`StreamArg`]) so that a bad value is refused with a message that
//! names it before anything starts.

use clap::Parser;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::hub::check_name;
use crate::source::SourceSpec;

/// Serve live MJPEG streams over HTTP.
///
/// With no flags, serves a built-in demo stream at http://127.0.0.1:8080/.
#[derive(Debug, Parser)]
#[command(name = "mjpeg-server", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A stream, as NAME=SOURCE (repeatable). SOURCE is demo, dir:PATH,
    /// watch:PATH, push, stdin, exec:COMMAND, relay:URL or chart; options
    /// follow after `#`. Without any, one stream `demo=demo` is served.
    #[arg(long = "stream", value_name = "NAME=SOURCE")]
    pub streams: Vec<StreamArg>,

    /// Frames per second of sources that set their own pace (dir, demo).
    #[arg(long, value_name = "N", default_value = "10", value_parser = positive_f64)]
    pub fps: f64,

    /// Re-send the newest frame to a viewer after this many seconds without
    /// a new one (Chrome shows a frame only when the next begins); 0 = never.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = non_negative_f64)]
    pub resend_after: f64,

    /// Drop a viewer whose socket accepts nothing for this many seconds;
    /// 0 = never.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = non_negative_f64)]
    pub write_timeout: f64,

    /// Most connections open at once; more get 503.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Create a push stream when a frame is pushed to an unknown name.
    #[arg(long)]
    pub allow_create: bool,

    /// Largest frame a source may publish (bytes; K, M, G suffixes allowed).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = byte_size)]
    pub max_frame_size: usize,

    /// JPEG quality for images converted from other formats (PNG, GIF, …).
    #[arg(long, value_name = "1-100", default_value = "85", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// Shrink converted images wider than this many pixels.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_width: Option<u32>,

    /// Shrink converted images taller than this many pixels.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_height: Option<u32>,
}

const AFTER_HELP: &str = "\
Examples:
  mjpeg-server
  mjpeg-server --listen 0.0.0.0:8080 --fps 30 --stream cam=dir:./img --stream graphs=dir:./plots
  mjpeg-server --stream graphs=push      # then: curl -T graph.png http://127.0.0.1:8080/stream/graphs
  mjpeg-server --stream 'cpu=chart#title=CPU#window=120'   # then: curl -d load=0.4 http://127.0.0.1:8080/stream/cpu/data
  mjpeg-server --stream cam=relay:http://192.0.2.10/video.cgi --stream plot=watch:./graph.png

URLs: /  /stream/NAME  /snapshot/NAME  /status  /?action=stream  /?action=snapshot
Logging: set RUST_LOG (e.g. RUST_LOG=debug).";

/// One `--stream NAME=SOURCE`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamArg {
    /// The stream's name, as used in URLs.
    pub name: String,
    /// Where its frames come from.
    pub source: SourceSpec,
}

impl FromStr for StreamArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, source)) = s.split_once('=') else {
            return Err("expected NAME=SOURCE, e.g. cam=dir:./img".into());
        };
        check_name(name).map_err(|e| e.to_string())?;
        let source = source
            .parse()
            .map_err(|e: crate::source::SourceError| e.to_string())?;
        Ok(StreamArg {
            name: name.to_string(),
            source,
        })
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// A size in bytes: `16777216`, `512K`, `16M`, `1G`.
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
        assert_eq!(cli.listen.to_string(), "127.0.0.1:8080");
        assert!(cli.streams.is_empty());
        assert!(Cli::try_parse_from(["x", "--fps", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--fps", "abc"]).is_err());
        assert!(Cli::try_parse_from(["x", "--resend-after", "-1"]).is_err());
        assert_eq!(seconds_or_off(0.0), None);
        assert_eq!(cli.max_frame_size, 16 << 20);
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
