//! `dir:PATH`: a folder of images played in a loop.
//!
//! The folder is listed again at the start of every pass, so files added or
//! removed while the server runs are picked up on the next loop. Files are
//! played in natural order (`img2.jpg` before `img10.jpg`), since numbered
//! frames are rarely zero-padded. Any image format is accepted (see
//! [`crate::convert`]); a file that is not a complete image is skipped with
//! one warning (repeated only if the file changes), and the stream keeps its
//! last good frame. So is a file larger than `--max-frame-size`, from its
//! size and without reading it, and anything that is not a regular file (a
//! FIFO is never opened for reading: it would block the source).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{SourceError, SourceOptions};
use crate::convert::{self, ConvertOptions};
use crate::frame::Frame;
use crate::hub::Hub;

/// Largest file [`check`] reads. It runs before the settings reach the
/// source, so it does not know `--max-frame-size`; it only has to find one
/// image, and must not read a huge file whole to do so.
const CHECK_LIMIT: usize = 64 << 20;

/// Lists the regular, non-hidden files of `path` in natural order.
async fn list(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut rd = tokio::fs::read_dir(path).await?;
    let mut files = Vec::new();
    while let Some(entry) = rd.next_entry().await? {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // metadata() follows symlinks, so linked images count.
        if tokio::fs::metadata(entry.path())
            .await
            .is_ok_and(|m| m.is_file())
        {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| {
        natord::compare(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    Ok(files)
}

/// Fails unless `path` is a readable folder with at least one image.
pub async fn check(path: &Path) -> Result<(), SourceError> {
    let unreadable = |error| SourceError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    let files = list(path).await.map_err(unreadable)?;
    let opts = ConvertOptions::default();
    for f in &files {
        if let Ok((_, data)) = super::read_image_file(f, CHECK_LIMIT).await {
            if convert::to_frame(data.into(), &opts).await.is_ok() {
                return Ok(());
            }
        }
    }
    Err(SourceError::NoImages {
        path: path.to_path_buf(),
        files: files.len(),
    })
}

/// Plays the folder into `hub`, one frame every `opts.interval`, until
/// `shutdown`.
pub async fn run(path: PathBuf, opts: SourceOptions, hub: Hub, shutdown: CancellationToken) {
    let interval = opts.interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Files already reported as bad, with the size and time they had then,
    // so a bad file is reported once per version rather than once per pass.
    let mut reported: HashMap<PathBuf, (u64, Option<SystemTime>)> = HashMap::new();
    let mut listing_failed = false;
    loop {
        let files = match list(&path).await {
            Ok(files) => {
                listing_failed = false;
                files
            }
            Err(e) => {
                if !listing_failed {
                    tracing::warn!(
                        stream = hub.name(),
                        "cannot read folder {}: {e}",
                        path.display()
                    );
                    listing_failed = true;
                }
                Vec::new()
            }
        };
        let mut published = false;
        for file in files {
            let frame = match read_frame(&file, &opts).await {
                Ok(frame) => {
                    reported.remove(&file);
                    frame
                }
                Err((stamp, reason)) => {
                    if reported.insert(file.clone(), stamp) != Some(stamp) {
                        tracing::warn!(
                            stream = hub.name(),
                            "skipping {}: {reason}",
                            file.display()
                        );
                        hub.reject(&format!("{}: {reason}", file.display()));
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = hub.publish(frame) {
                tracing::warn!(stream = hub.name(), "skipping {}: {e}", file.display());
            }
            published = true;
        }
        if !published {
            // Nothing playable now: look again shortly instead of spinning.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval.max(Duration::from_millis(250))) => {}
            }
        }
    }
}

type Stamp = (u64, Option<SystemTime>);

/// Reads and converts one file. Files over `--max-frame-size` are refused
/// from their size, unread, and FIFOs are never opened for reading (see
/// [`super::read_image_file`]): a huge or blocking file in the folder costs
/// neither memory nor the stream.
async fn read_frame(file: &Path, opts: &SourceOptions) -> Result<Frame, (Stamp, String)> {
    let meta = tokio::fs::metadata(file)
        .await
        .map_err(|e| ((0, None), e.to_string()))?;
    let stamp = (meta.len(), meta.modified().ok());
    let (_, data) = super::read_image_file(file, opts.max_frame)
        .await
        .map_err(|e| (stamp, e.to_string()))?;
    convert::to_frame(data.into(), &opts.convert)
        .await
        .map_err(|e| (stamp, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_in_natural_order_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["img10.jpg", "img2.jpg", "img1.jpg", ".hidden.jpg"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let names: Vec<String> = list(dir.path())
            .await
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["img1.jpg", "img2.jpg", "img10.jpg"]);
    }

    #[tokio::test]
    async fn check_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jpg"), b"not an image").unwrap();
        let err = check(dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("has no images (1 files"), "{err}");
        let err = check(&dir.path().join("missing"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read folder"), "{err}");
    }
}
