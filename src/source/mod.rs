//! Sources: where frames come from.
//!
//! A source is a task that publishes into one [`Hub`]. Each kind lives in its
//! own module; [`SourceSpec`] is how the command line names them
//! (`--stream NAME=KIND:ARG`).
//!
//! | spec | module | what it does |
//! | --- | --- | --- |
//! | `demo` | [`demo`] | draws a moving test picture with the current time |
//! | `dir:PATH` | [`dir`] | plays a folder's JPEGs in a loop, in natural order |

pub mod demo;
pub mod dir;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// A source as named on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The built-in moving test picture.
    Demo,
    /// A folder of images played in a loop.
    Dir(PathBuf),
}

/// Why a source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The spec names no known kind of source.
    #[error("unknown source {0:?}: use demo or dir:PATH")]
    Unknown(String),
    /// A folder that cannot be listed.
    #[error("cannot read folder {path}: {source}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A folder with nothing to show.
    #[error("folder {path} has no JPEG images ({files} files looked at)")]
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
        match s.split_once(':') {
            None if s == "demo" => Ok(SourceSpec::Demo),
            Some(("dir", path)) if !path.is_empty() => Ok(SourceSpec::Dir(PathBuf::from(path))),
            _ => Err(SourceError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Demo => write!(f, "demo"),
            SourceSpec::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

/// Settings shared by sources.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Time between frames for sources that set their own pace.
    pub interval: Duration,
}

impl SourceSpec {
    /// Checks, before the server starts, that the source can work at all, so
    /// that a typo fails at once with a clear message rather than as an empty
    /// stream.
    pub async fn check(&self) -> Result<(), SourceError> {
        match self {
            SourceSpec::Demo => Ok(()),
            SourceSpec::Dir(path) => dir::check(path).await,
        }
    }

    /// Starts the source publishing into `hub` until `shutdown`.
    pub fn spawn(
        self,
        hub: Hub,
        opts: SourceOptions,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        match self {
            SourceSpec::Demo => tokio::spawn(demo::run(hub, opts.interval, shutdown)),
            SourceSpec::Dir(path) => tokio::spawn(dir::run(path, hub, opts.interval, shutdown)),
        }
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
        for bad in ["", "dir:", "dirx", "file:x", "demo:1"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }
}
