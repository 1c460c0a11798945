//! A watched file: published whenever it changes.

use bytes::Bytes;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use tokio::time::Instant;

use super::checker::{read_file, Checker, Stamp, Verdict};
use super::feed::{Batch, Change};
use super::RETRY;
use crate::hub::{Hub, SourceState};
use crate::source::SourceOptions;

/// Publishes one file whenever it changes.
pub(super) struct FileWorker {
    path: PathBuf,
    name: OsString,
    /// Conversion of other formats, and the largest file read.
    source: SourceOptions,
    hub: Hub,
    checker: Checker,
    /// The bytes on show, to skip events that changed nothing.
    published: Option<Bytes>,
    /// The bytes last refused, so that a bad version is reported once.
    rejected: Option<Bytes>,
    /// The file's stamp when last read, for polling.
    stamp: Option<Stamp>,
    /// When to read incomplete bytes again.
    pub(super) retry_at: Option<Instant>,
    /// The last read error reported, so that it is reported once.
    read_error: Option<String>,
}

impl FileWorker {
    pub(super) fn new(
        path: PathBuf,
        name: OsString,
        source: SourceOptions,
        hub: Hub,
    ) -> FileWorker {
        FileWorker {
            path,
            name,
            source,
            hub,
            checker: Checker::default(),
            published: None,
            rejected: None,
            stamp: None,
            retry_at: None,
            read_error: None,
        }
    }

    pub(super) async fn handle(&mut self, batch: Batch) {
        let ours = batch.changes.iter().filter(|(n, _)| *n == self.name);
        let mut written = false;
        let mut touched = batch.tick;
        let mut urgent = batch.rescan;
        let mut finished = false;
        for (_, change) in ours {
            match change {
                Change::Written => written = true,
                Change::Touched => touched = true,
                Change::Closed | Change::Renamed => {
                    urgent = true;
                    finished = true;
                }
                Change::Removed => urgent = true,
            }
        }
        let now = Instant::now();
        let retry_due = self.retry_at.is_some_and(|t| t <= now);
        if urgent || retry_due {
            return self.examine(finished).await;
        }
        if written {
            // While incomplete bytes are being retried anyway, every small
            // write of an in-place writer need not cost a read: the retry
            // comes within RETRY, and the close (urgent) comes at once.
            if self.retry_at.is_none() {
                self.examine(false).await;
            }
            return;
        }
        if touched {
            // A polling tick or a metadata change: read only if the file
            // looks different, so that nothing can turn into a loop of
            // reads.
            let stamp = tokio::fs::metadata(&self.path)
                .await
                .ok()
                .map(|m| Stamp::of(&m));
            if stamp != self.stamp || stamp.is_none() {
                self.examine(false).await;
            }
        }
    }

    /// Reads the file and publishes it if it is a new, complete image.
    pub(super) async fn examine(&mut self, finished: bool) {
        self.retry_at = None;
        let data = match read_file(&self.path, self.source.max_frame).await {
            Ok((stamp, data)) => {
                self.stamp = Some(stamp);
                self.read_error = None;
                data
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.stamp = None;
                self.read_error = None;
                self.checker.clear();
                return self.missing();
            }
            Err(e) => {
                self.stamp = None;
                self.checker.clear();
                let why = format!("cannot read file {}: {e}", self.path.display());
                if self.read_error.as_ref() != Some(&why) {
                    tracing::warn!(stream = self.hub.name(), "{why}");
                    self.hub.reject(&why);
                    self.read_error = Some(why.clone());
                }
                self.hub.set_source_state(SourceState::Waiting(why));
                return;
            }
        };
        if self.published.as_ref() == Some(&data) {
            // A spurious event, or the same picture saved again.
            self.checker.clear();
            self.hub.set_source_state(SourceState::Running);
            return;
        }
        if self.rejected.as_ref() == Some(&data) {
            self.checker.clear();
            return;
        }
        match self
            .checker
            .check(data.clone(), finished, &self.source.convert)
            .await
        {
            Verdict::Frame(frame) => match self.hub.publish(frame) {
                Ok(_) => {
                    self.published = Some(data);
                    self.rejected = None;
                    self.hub.set_source_state(SourceState::Running);
                }
                // `publish` counted the refusal; say which file it was.
                Err(e) => self.refused(data, &e.to_string(), false),
            },
            Verdict::Retry => self.retry_at = Some(Instant::now() + RETRY),
            Verdict::Bad(reason) => self.refused(data, &reason, true),
        }
    }

    fn refused(&mut self, data: Bytes, reason: &str, count: bool) {
        let file = self.path.display();
        tracing::warn!(stream = self.hub.name(), "skipping {file}: {reason}");
        if count {
            self.hub.reject(&format!("{file}: {reason}"));
        }
        self.rejected = Some(data);
        let keeps = if self.published.is_some() {
            "; showing the last good frame"
        } else {
            ""
        };
        self.hub.set_source_state(SourceState::Waiting(format!(
            "file {file} is not a usable image{keeps}"
        )));
    }

    fn missing(&mut self) {
        let dir_missing = self
            .path
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir());
        let file = self.path.display();
        let state = if dir_missing {
            let dir = self.path.parent().unwrap_or(Path::new(".")).display();
            format!("folder {dir} does not exist")
        } else if self.published.is_some() {
            format!("file {file} was removed; showing the last frame until it is written again")
        } else {
            format!("file {file} does not exist yet")
        };
        self.hub.set_source_state(SourceState::Waiting(state));
    }
}
