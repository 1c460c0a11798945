//! `synthetic:PATH`: one fixed image published over and over, for
//! benchmarks.
//!
//! Measuring the server means measuring fan-out alone: a camera, a folder or
//! the demo renderer would add decoding, disk reads or drawing to every
//! frame and make the figures depend on them. This source reads its image
//! once, checks it once, and then publishes the same shared bytes at a fixed
//! rate (`#fps=30`) or as fast as viewers can take frames (`#fps=max`).
//! Every publish still gets a fresh sequence number and `X-Timestamp`, so a
//! load client can measure latency from publication to arrival.
//!
//! `fps=max` publishes every millisecond (tokio's timer resolution) rather
//! than in a loop that never sleeps: 1000 frames a second is more than any
//! viewer can take of frames worth benchmarking (a 200 KB frame at 1000 fps
//! is 200 MB/s to one viewer), so each viewer finds a new frame whenever it
//! is ready for one, while a spinning loop would take a whole core from the
//! server it is meant to measure.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::SourceError;
use crate::convert::{self, ConvertOptions};
use crate::frame::Frame;
use crate::hub::Hub;

/// How often the image is published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// The server's `--fps` (no `#fps=` option given).
    Default,
    /// This many frames per second.
    Fps(f64),
    /// As fast as viewers can take them (`#fps=max`): every millisecond.
    Max,
}

impl Rate {
    /// Parses the value of `#fps=`: a positive number or `max`.
    pub fn parse(v: &str) -> Result<Rate, String> {
        if v.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match v.parse::<f64>() {
            // 1/fps must fit a timer and be more than nothing.
            Ok(fps) if (0.001..=1e6).contains(&fps) => Ok(Rate::Fps(fps)),
            _ => Err("not a number of frames per second from 0.001 to 1000000, nor max".into()),
        }
    }

    /// The time between frames; `default` is the server's `--fps` interval.
    pub fn interval(self, default: Duration) -> Duration {
        match self {
            Rate::Default => default,
            Rate::Fps(fps) => Duration::from_secs_f64(1.0 / fps),
            Rate::Max => Duration::from_millis(1),
        }
    }
}

/// Reads and checks the image, converting it once if it is not a JPEG.
async fn load(path: &Path, opts: &ConvertOptions) -> Result<Frame, SourceError> {
    let data = tokio::fs::read(path)
        .await
        .map_err(|error| SourceError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
    convert::to_frame(data.into(), opts)
        .await
        .map_err(|e| SourceError::BadOption {
            spec: format!("synthetic:{}", path.display()),
            why: format!("{} is not a usable image: {e}", path.display()),
        })
}

/// Fails unless `path` is a readable image.
pub async fn check(path: &Path) -> Result<(), SourceError> {
    load(path, &ConvertOptions::default()).await.map(|_| ())
}

/// Publishes the image at `path` into `hub` every `interval` until
/// `shutdown`.
pub async fn run(
    path: PathBuf,
    interval: Duration,
    convert: ConvertOptions,
    hub: Hub,
    shutdown: CancellationToken,
) {
    let frame = match load(&path, &convert).await {
        Ok(frame) => frame,
        Err(e) => {
            // `check` passed at start, so the file changed since; there is
            // nothing to publish and nothing to retry.
            tracing::error!(stream = hub.name(), "synthetic source stopped: {e}");
            hub.set_source_state(crate::hub::SourceState::Failed(e.to_string()));
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    // A late tick is skipped rather than caught up in a burst: a benchmark
    // wants an even rate more than an exact count.
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Cloning a frame copies a pointer to the shared JPEG, not the image.
        if let Err(e) = hub.publish(frame.clone()) {
            tracing::error!(stream = hub.name(), "synthetic frame refused: {e}");
            hub.set_source_state(crate::hub::SourceState::Failed(e.to_string()));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("30"), Ok(Rate::Fps(30.0)));
        assert_eq!(Rate::parse("MAX"), Ok(Rate::Max));
        for bad in ["0", "-1", "abc", "inf", ""] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let d = Duration::from_millis(100);
        assert_eq!(Rate::Default.interval(d), d);
        assert_eq!(Rate::Fps(4.0).interval(d), Duration::from_millis(250));
        assert_eq!(Rate::Max.interval(d), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn publishes_the_same_bytes_at_its_rate() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/jpeg_5k.jpg"
        ));
        check(&path).await.unwrap();
        assert!(check(Path::new("/nonexistent.jpg")).await.is_err());
        let hub = Hub::new("b");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            path.clone(),
            Duration::from_millis(5),
            ConvertOptions::default(),
            hub.clone(),
            shutdown.clone(),
        ));
        let mut sub = hub.subscribe();
        let a = sub.next().await;
        let b = sub.next().await;
        shutdown.cancel();
        task.await.unwrap();
        assert!(b.seq() > a.seq());
        // The same shared buffer, not a copy per frame.
        assert_eq!(a.jpeg().as_ptr(), b.jpeg().as_ptr());
        assert_eq!(&a.jpeg()[..], &std::fs::read(&path).unwrap()[..]);
    }
}
