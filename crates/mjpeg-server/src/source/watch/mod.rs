//! `watch:PATH`: publish a file each time it is rewritten, or each image that
//! arrives in a folder.
//!
//! Two common ways of feeding a stream need no camera and no pipe: a program
//! that keeps saving one picture (a plotting script writing `graph.png` every
//! second, a webcam tool overwriting `snap.jpg`), and a program that drops
//! numbered images into a folder (mjpg-streamer's folder input, timelapse
//! tools, spool folders). Both are watched here, by file-system events
//! ([`notify`]: inotify on Linux) so that a new picture is on the stream
//! within milliseconds of being written, with a plain polling loop for file
//! systems that raise no events (NFS, SMB, FUSE, some containers).
//!
//! The hard part is never showing half a file. Writers do one of two things:
//!
//! * write a temporary file and rename it into place: the name then always
//!   holds a whole image, and the rename is the signal to publish it;
//! * rewrite the file in place: a reader can see it empty or half written.
//!
//! So the bytes read are published only when they are a complete image (a
//! JPEG must pass the marker walk of [`crate::jpeg`], other formats must end
//! with their trailer and decode). Otherwise they are read again every
//! [`RETRY`] until they are complete or stop changing; only then does an
//! image count as bad, is refused ([`Hub::reject`]) and reported once per
//! version of the file. The stream keeps its last good frame throughout: a
//! file that is deleted, rewritten or broken never blanks a viewer.
//!
//! In a folder, files are published in the order they were finished: closed
//! after writing, or moved in. A file that is closed and then renamed away
//! within [`RENAME_GRACE`] was a temporary file of a writer that renames, and
//! is published once, under its final name. Hidden files and common
//! temporary names are ignored.
//!
//! The parent folder is watched rather than the file itself, because a watch
//! on a file follows its inode: after the first rename-into-place it would
//! watch the old, deleted file and see nothing more.

use globset::{GlobBuilder, GlobMatcher};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{SourceError, SourceOptions};
use crate::hub::{Hub, SourceState};

mod checker;
mod feed;
mod file;
mod folder;

use feed::{Batch, Feed, Notes};
use file::FileWorker;
use folder::FolderWorker;

/// How often bytes that are not a complete image yet are read again.
///
/// Short, because a writer that rewrites in place usually finishes within a
/// few milliseconds, and the next complete version should be on the stream
/// at once; reads come from the page cache and cost microseconds.
pub const RETRY: Duration = Duration::from_millis(15);

/// Incomplete bytes that stay unchanged this long after the writer closed
/// the file (or renamed it into place) count as a bad image.
///
/// Not zero: a writer that rewrites in a loop may already have truncated the
/// file again by the time the close is seen. Only the report of a bad image
/// waits for this; good images are published as soon as they are complete.
pub const CLOSE_SETTLE: Duration = Duration::from_millis(250);

/// Incomplete bytes that stay unchanged this long without any close count as
/// a bad image (a writer that died half way, a file system without close
/// events).
pub const SETTLE: Duration = Duration::from_secs(2);

/// A file in a watched folder that was closed after writing is published
/// after this long, unless it is renamed away first: it was then a writer's
/// temporary file, and is published once, under the name it is renamed to.
pub const RENAME_GRACE: Duration = Duration::from_millis(20);

/// A file in a watched folder that was written but never closed (file
/// systems and backends without close events, hard links, symlinks) is
/// taken once it has been left alone this long.
pub const STABLE: Duration = Duration::from_millis(500);

/// Polling interval used when file-system events are not available and
/// [`WatchOptions::poll`] does not say.
pub const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// Shortest accepted polling interval, so that `poll: Some(0)` is not a busy
/// loop.
const MIN_POLL: Duration = Duration::from_millis(10);

/// How a `watch:` source behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Folders only: publish only files whose name matches this glob
    /// (`*.jpg`, `cam1-*.{png,jpg}`), compared with the file name alone and
    /// ignoring case. `None`: every file that is not hidden or temporary.
    pub pattern: Option<String>,
    /// Folders only: delete each file once it has been published, for spool
    /// folders that would otherwise fill up. Files that are not usable
    /// images are left in place to be looked at. With this set, files found
    /// in the folder at start are published (and deleted) too, oldest first.
    pub delete_after: bool,
    /// Look for changes this often instead of waiting for file-system
    /// events: for network and FUSE file systems, where writes made by other
    /// machines raise no events. `None` uses events, and falls back to
    /// polling every [`FALLBACK_POLL`] if they are not available.
    pub poll: Option<Duration>,
}

/// What `PATH` names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// One file, watched through its parent folder.
    File { dir: PathBuf, name: OsString },
    /// A folder whose new files are published.
    Folder(PathBuf),
}

impl Target {
    /// A folder if `path` is an existing folder or ends with a slash, else a
    /// file.
    fn of(path: &Path) -> Target {
        let bytes = path.as_os_str().as_encoded_bytes();
        let slash = bytes.last().is_some_and(|&b| b == b'/' || b == b'\\');
        match path.file_name() {
            Some(name) if !slash && !path.is_dir() => {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                Target::File {
                    dir,
                    name: name.to_os_string(),
                }
            }
            // `/`, `..` and `x/..` have no file name: they are folders.
            _ => Target::Folder(path.to_path_buf()),
        }
    }

    /// The folder to watch.
    fn dir(&self) -> &Path {
        match self {
            Target::File { dir, .. } | Target::Folder(dir) => dir,
        }
    }
}

/// Compiles a file-name pattern. Patterns are matched against names, never
/// paths, so a `/` in one is a mistake worth reporting.
fn compile_pattern(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.contains('/') {
        return Err(format!(
            "invalid file-name pattern {pattern:?}: it is matched against file names, \
             so it cannot contain '/'"
        ));
    }
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid file-name pattern {pattern:?}: {}", e.kind()))
}

/// Checks, before the server starts, what can be checked: the pattern
/// compiles, and the folder to watch exists (for a file: its parent folder).
///
/// A watched file that does not exist yet is fine: it is only logged, and
/// the stream waits for it. A bad pattern is reported as
/// [`SourceError::Unreadable`] of the folder, with the pattern and the
/// problem in the message.
pub async fn check(path: &Path, opts: &WatchOptions) -> Result<(), SourceError> {
    let target = Target::of(path);
    let dir = target.dir().to_path_buf();
    let unreadable = |error| SourceError::Unreadable {
        path: dir.clone(),
        error,
    };
    if let Some(pattern) = &opts.pattern {
        compile_pattern(pattern)
            .map_err(|e| unreadable(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    }
    let meta = tokio::fs::metadata(&dir).await.map_err(unreadable)?;
    if !meta.is_dir() {
        return Err(unreadable(io::Error::other("not a folder")));
    }
    match &target {
        Target::Folder(_) => {
            // Listing is what the source does at start; fail now if it cannot.
            let _listing = tokio::fs::read_dir(&dir).await.map_err(unreadable)?;
        }
        Target::File { .. } => {
            if opts.pattern.is_some() || opts.delete_after {
                tracing::warn!(
                    "watch:{}: a file-name pattern and delete-after apply to folders only; \
                     ignored for a single file",
                    path.display()
                );
            }
            if tokio::fs::metadata(path).await.is_err() {
                tracing::warn!(
                    "watch:{}: file does not exist yet; the stream waits for it",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// Watches `path` and publishes into `hub` until `shutdown`.
///
/// A folder is watched if `path` is an existing folder or ends with `/`:
/// each image that arrives in it is published in order of arrival.
/// Otherwise `path` is a file, published whenever it changes; it may not
/// exist yet, and may be deleted and created again. Images of any format go
/// through [`convert::to_frame`](crate::convert::to_frame) with
/// `source.convert`; only regular files are read, and files over
/// `source.max_frame` bytes are refused unread. Never returns an error:
/// problems are logged, counted on the hub and shown in its
/// [`SourceState`], and the watch carries on.
pub async fn run(
    path: PathBuf,
    opts: WatchOptions,
    source: SourceOptions,
    hub: Hub,
    shutdown: CancellationToken,
) {
    let target = Target::of(&path);
    let matcher = match opts.pattern.as_deref().map(compile_pattern) {
        Some(Err(e)) => {
            // `check` reports this before start; a caller that skipped it
            // still gets a clear state rather than a silent stream.
            tracing::error!(stream = hub.name(), "watch:{}: {e}", path.display());
            hub.set_source_state(SourceState::Failed(e));
            return;
        }
        Some(Ok(m)) => Some(m),
        None => None,
    };
    let dir = target.dir().to_path_buf();
    let poll = opts.poll.map(|p| p.max(MIN_POLL));
    let mut notes = Notes::default();
    let mut feed = Feed::open(&dir, poll, &hub, &mut notes);
    let mut worker = match target {
        Target::File { name, .. } => Worker::File(FileWorker::new(path, name, source, hub.clone())),
        Target::Folder(_) => Worker::Folder(FolderWorker::new(
            dir.clone(),
            matcher,
            opts.delete_after,
            feed.polling(),
            source,
            hub.clone(),
        )),
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = worker.start() => {}
    }
    loop {
        let deadline = worker.deadline();
        let mut batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            batch = feed.next() => batch,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                Batch::default()
            }
        };
        if let Some(e) = batch.error.take() {
            notes.watch_error(&hub, &dir, &e);
        }
        if batch.dir_gone {
            // The watch followed the folder's inode away; look for the path
            // again until a folder is there, and show why meanwhile.
            feed = Feed::missing();
            batch.rescan = true;
        }
        if batch.reopen {
            feed = Feed::open(&dir, poll, &hub, &mut notes);
            batch.rescan = !matches!(feed, Feed::Missing(_));
        }
        worker.set_polling(feed.polling());
        worker.handle(batch).await;
    }
}

/// The two kinds of watch.
enum Worker {
    File(FileWorker),
    Folder(FolderWorker),
}

impl Worker {
    async fn start(&mut self) {
        match self {
            Worker::File(w) => w.examine(false).await,
            Worker::Folder(w) => w.start().await,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Worker::File(w) => w.retry_at,
            Worker::Folder(w) => w.deadline(),
        }
    }

    fn set_polling(&mut self, poll: Option<Duration>) {
        if let Worker::Folder(w) = self {
            w.poll = poll;
        }
    }

    async fn handle(&mut self, batch: Batch) {
        match self {
            Worker::File(w) => w.handle(batch).await,
            Worker::Folder(w) => w.handle(batch).await,
        }
    }
}

#[cfg(test)]
mod tests;
