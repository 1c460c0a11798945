//! Reading a watched file, and telling a complete image from one still
//! being written and from a bad one.

use bytes::Bytes;
use std::io;
use std::path::Path;
use std::time::SystemTime;
use tokio::time::Instant;

use super::{CLOSE_SETTLE, SETTLE};
use crate::convert::{self, ConvertOptions};
use crate::frame::{Frame, ImageKind};

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    pub(super) modified: Option<SystemTime>,
    /// The inode: a file renamed into place is a new inode even when size
    /// and time match.
    ino: u64,
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let ino = 0;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            ino,
        }
    }
}

/// Reads a file whole, if it is a regular file of at most `limit` bytes
/// (the frame size limit; see [`crate::source::read_image_file`]). Returns
/// the stamp it had when opened.
pub(super) async fn read_file(path: &Path, limit: usize) -> io::Result<(Stamp, Bytes)> {
    let (meta, data) = crate::source::read_image_file(path, limit).await?;
    Ok((Stamp::of(&meta), data.into()))
}

/// Whether bytes look like a whole image of their format: a cheap test done
/// before decoding, so that a half-written PNG is not decoded again and
/// again while it grows. JPEGs are left to the marker walk, which is exact
/// and as cheap as this.
pub(super) fn looks_complete(data: &[u8]) -> bool {
    let le32 = |at: usize| {
        data.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u64::from(u32::from_le_bytes(b)))
    };
    match ImageKind::detect(data) {
        // The IEND chunk's type and CRC, the same in every PNG.
        ImageKind::Png => memchr::memmem::rfind(data, b"IEND\xAE\x42\x60\x82").is_some(),
        ImageKind::Gif => data.last() == Some(&0x3B),
        // The header gives the file size.
        ImageKind::Bmp => le32(2).is_some_and(|n| n <= data.len() as u64),
        ImageKind::Webp => le32(4).is_some_and(|n| n + 8 <= data.len() as u64),
        ImageKind::Empty => false,
        _ => true,
    }
}

/// Bytes that were not a usable image, and since when they are unchanged.
struct Attempt {
    data: Bytes,
    since: Instant,
    /// The writer said it was done (closed the file, or renamed it in).
    finished: bool,
    /// Why they could not be converted, once tried: not tried again while
    /// the bytes stay the same.
    reason: Option<String>,
}

/// What to do with bytes just read.
pub(super) enum Verdict {
    Frame(Frame),
    /// Not a complete image yet: read again after [`RETRY`](super::RETRY).
    Retry,
    /// Not a usable image, and the writer is done with it.
    Bad(String),
}

/// Tells complete images from incomplete ones, and incomplete ones from bad
/// ones, across repeated reads of one file.
#[derive(Default)]
pub(super) struct Checker {
    attempt: Option<Attempt>,
}

impl Checker {
    pub(super) async fn check(
        &mut self,
        data: Bytes,
        finished: bool,
        convert: &ConvertOptions,
    ) -> Verdict {
        let now = Instant::now();
        match &mut self.attempt {
            Some(a) if a.data == data => a.finished |= finished,
            _ => {
                self.attempt = Some(Attempt {
                    data: data.clone(),
                    since: now,
                    finished,
                    reason: None,
                })
            }
        }
        let Some(attempt) = self.attempt.as_mut() else {
            return Verdict::Retry;
        };
        let settle = if attempt.finished {
            CLOSE_SETTLE
        } else {
            SETTLE
        };
        let settled = now.duration_since(attempt.since) >= settle;
        if attempt.reason.is_none() {
            if !settled && !looks_complete(&data) {
                return Verdict::Retry;
            }
            match convert::to_frame(data, convert).await {
                Ok(frame) => {
                    self.attempt = None;
                    return Verdict::Frame(frame);
                }
                Err(e) => attempt.reason = Some(e.to_string()),
            }
        }
        if settled {
            let reason = self.attempt.take().and_then(|a| a.reason);
            Verdict::Bad(reason.unwrap_or_else(|| "not a complete image".into()))
        } else {
            Verdict::Retry
        }
    }

    pub(super) fn clear(&mut self) {
        self.attempt = None;
    }
}
