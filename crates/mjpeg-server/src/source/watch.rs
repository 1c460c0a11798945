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

use bytes::Bytes;
use globset::{GlobBuilder, GlobMatcher};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{SourceError, SourceOptions};
use crate::convert::{self, ConvertOptions};
use crate::frame::{Frame, ImageKind};
use crate::hub::{Hub, SourceState};

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

/// How often a missing folder is looked for again.
const REWATCH: Duration = Duration::from_secs(1);

/// In a folder, the oldest finished file is retried for at most this long
/// while it keeps changing, so that one file that is written forever cannot
/// hold up the files behind it.
const HEAD_PATIENCE: Duration = Duration::from_secs(2);

/// Events held between the watcher's thread and the source task. Past this
/// the folder is looked at as a whole instead (see [`Batch::rescan`]).
const EVENT_QUEUE: usize = 1024;

/// Shortest accepted polling interval, so that `poll: Some(0)` is not a busy
/// loop.
const MIN_POLL: Duration = Duration::from_millis(10);

/// Name endings of temporary and partial files (downloads, editors, copy
/// tools), which are never published from a folder.
const TEMP_SUFFIXES: &[&str] = &[
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".filepart",
    ".swp",
    "~",
];

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
/// through [`convert::to_frame`] with `source.convert`; only regular files
/// are read, and files over `source.max_frame` bytes are refused unread.
/// Never returns an error:
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

/// Warnings that are given once per run rather than once per event.
#[derive(Default)]
struct Notes {
    fallback: bool,
    watch_error: bool,
}

impl Notes {
    fn fallback(&mut self, hub: &Hub, dir: &Path, why: &dyn std::fmt::Display) {
        if !std::mem::replace(&mut self.fallback, true) {
            tracing::warn!(
                stream = hub.name(),
                "cannot watch folder {} for changes ({why}); looking every {} ms instead",
                dir.display(),
                FALLBACK_POLL.as_millis()
            );
        }
    }

    fn watch_error(&mut self, hub: &Hub, dir: &Path, why: &str) {
        if !std::mem::replace(&mut self.watch_error, true) {
            tracing::warn!(
                stream = hub.name(),
                "watching folder {}: {why}; looking at the whole folder again",
                dir.display()
            );
        }
    }
}

/// What happened to one name in the watched folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Created, or its data changed.
    Written,
    /// Closed after writing: the writer says it is done.
    Closed,
    /// Renamed to or from this name; whether it is here now tells which.
    Renamed,
    /// Deleted.
    Removed,
    /// Only its metadata changed (`touch`, `chmod`).
    Touched,
}

/// The events of one wake-up, in order.
#[derive(Debug, Default)]
struct Batch {
    changes: Vec<(OsString, Change)>,
    /// Events were lost or are unreliable: look at everything.
    rescan: bool,
    /// A polling tick: look at what changed.
    tick: bool,
    /// The watched folder itself was deleted or moved away.
    dir_gone: bool,
    /// Time to try watching a missing folder again.
    reopen: bool,
    /// An error reported by the watcher.
    error: Option<String>,
}

impl Batch {
    /// Adds one notify event. Paths are compared with `dir` as it was given
    /// to the watcher, which is how the watcher builds them.
    fn add(&mut self, event: notify::Result<notify::Event>, dir: &Path) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                self.rescan = true;
                self.error = Some(e.to_string());
                return;
            }
        };
        if event.need_rescan() {
            self.rescan = true;
        }
        let change = match event.kind {
            // Our own reads open and close the file: never react to them.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Closed,
            EventKind::Access(_) | EventKind::Create(CreateKind::Folder) => return,
            EventKind::Create(_) => Change::Written,
            EventKind::Modify(ModifyKind::Name(_)) => Change::Renamed,
            EventKind::Modify(ModifyKind::Metadata(_)) => Change::Touched,
            EventKind::Modify(_) => Change::Written,
            EventKind::Remove(_) => Change::Removed,
            EventKind::Any | EventKind::Other => {
                self.rescan = true;
                return;
            }
        };
        for path in event.paths {
            if path == dir {
                if matches!(change, Change::Removed | Change::Renamed) {
                    self.dir_gone = true;
                }
            } else if let Some(name) = path.file_name() {
                self.changes.push((name.to_os_string(), change));
            }
        }
    }
}

/// Where wake-ups come from.
enum Feed {
    /// File-system events from a native watcher.
    Events {
        rx: mpsc::Receiver<notify::Result<notify::Event>>,
        /// Set by the watcher's thread when the queue was full and events
        /// were dropped.
        overflow: Arc<AtomicBool>,
        /// The path as given to the watcher, which events are built from.
        dir: PathBuf,
        /// Kept alive: dropping it stops the watch.
        _watcher: RecommendedWatcher,
    },
    /// Periodic looks, for file systems without events.
    Poll(Interval),
    /// The folder does not exist: look for it again now and then.
    Missing(Interval),
}

/// An interval whose first tick is one period from now (tokio's first tick
/// is immediate, which would turn "try again later" into a busy loop).
fn interval(period: Duration) -> Interval {
    let mut i = tokio::time::interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

impl Feed {
    /// Polls if asked to; else watches `dir` natively, falling back to
    /// polling if that cannot be done, or to [`Feed::Missing`] if `dir` is
    /// not there.
    fn open(dir: &Path, poll: Option<Duration>, hub: &Hub, notes: &mut Notes) -> Feed {
        if let Some(period) = poll {
            return Feed::Poll(interval(period));
        }
        if !dir.is_dir() {
            return Feed::missing();
        }
        // Absolute, so that event paths can be compared with it even if the
        // working directory changes.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = overflow.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Every read of the file opens and closes it: drop those events
            // here rather than wake the task for each.
            if let Ok(notify::Event {
                kind: EventKind::Access(kind),
                ..
            }) = &event
            {
                if *kind != AccessKind::Close(AccessMode::Write) {
                    return;
                }
            }
            if tx.try_send(event).is_err() {
                flag.store(true, Ordering::Relaxed);
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                notes.fallback(hub, &dir, &e);
                return Feed::Poll(interval(FALLBACK_POLL));
            }
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            if !dir.is_dir() {
                return Feed::missing();
            }
            // Typically the inotify watch limit: polling still works.
            notes.fallback(hub, &dir, &e);
            return Feed::Poll(interval(FALLBACK_POLL));
        }
        Feed::Events {
            rx,
            overflow,
            dir,
            _watcher: watcher,
        }
    }

    fn missing() -> Feed {
        Feed::Missing(interval(REWATCH))
    }

    fn polling(&self) -> Option<Duration> {
        match self {
            Feed::Poll(i) => Some(i.period()),
            Feed::Events { .. } | Feed::Missing(_) => None,
        }
    }

    /// Waits for the next wake-up. Cancel-safe: nothing is awaited after
    /// the first event is taken.
    async fn next(&mut self) -> Batch {
        match self {
            Feed::Events {
                rx, overflow, dir, ..
            } => {
                let mut batch = Batch::default();
                match rx.recv().await {
                    Some(event) => batch.add(event, dir),
                    None => {
                        // The watcher's thread ended: watch again.
                        batch.dir_gone = true;
                        return batch;
                    }
                }
                // A write raises many events; handle everything pending at
                // once, so that a burst costs one read of the file.
                while let Ok(event) = rx.try_recv() {
                    batch.add(event, dir);
                }
                if overflow.swap(false, Ordering::Relaxed) {
                    batch.rescan = true;
                }
                batch
            }
            Feed::Poll(i) => {
                i.tick().await;
                Batch {
                    tick: true,
                    ..Batch::default()
                }
            }
            Feed::Missing(i) => {
                i.tick().await;
                Batch {
                    reopen: true,
                    ..Batch::default()
                }
            }
        }
    }
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// The inode: a file renamed into place is a new inode even when size
    /// and time match.
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
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
/// (`--max-frame-size`; see [`super::read_image_file`]). Returns the stamp
/// it had when opened.
async fn read_file(path: &Path, limit: usize) -> io::Result<(Stamp, Bytes)> {
    let (meta, data) = super::read_image_file(path, limit).await?;
    Ok((Stamp::of(&meta), data.into()))
}

/// Whether bytes look like a whole image of their format: a cheap test done
/// before decoding, so that a half-written PNG is not decoded again and
/// again while it grows. JPEGs are left to the marker walk, which is exact
/// and as cheap as this.
fn looks_complete(data: &[u8]) -> bool {
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
enum Verdict {
    Frame(Frame),
    /// Not a complete image yet: read again after [`RETRY`].
    Retry,
    /// Not a usable image, and the writer is done with it.
    Bad(String),
}

/// Tells complete images from incomplete ones, and incomplete ones from bad
/// ones, across repeated reads of one file.
#[derive(Default)]
struct Checker {
    attempt: Option<Attempt>,
}

impl Checker {
    async fn check(&mut self, data: Bytes, finished: bool, convert: &ConvertOptions) -> Verdict {
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

    fn clear(&mut self) {
        self.attempt = None;
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

/// Publishes one file whenever it changes.
struct FileWorker {
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
    retry_at: Option<Instant>,
    /// The last read error reported, so that it is reported once.
    read_error: Option<String>,
}

impl FileWorker {
    fn new(path: PathBuf, name: OsString, source: SourceOptions, hub: Hub) -> FileWorker {
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

    async fn handle(&mut self, batch: Batch) {
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
    async fn examine(&mut self, finished: bool) {
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

/// A finished file waiting its turn to be published.
struct Queued {
    name: OsString,
    /// Not before: closed files wait [`RENAME_GRACE`], retried ones
    /// [`RETRY`].
    ready_at: Instant,
    /// When it first reached the head of the queue and was read.
    first_try: Option<Instant>,
}

/// A file written to but not finished yet.
struct Dirty {
    /// Its stamp when a scan saw it; `None` when only events were seen.
    stamp: Option<Stamp>,
    /// Last seen changing.
    since: Instant,
}

/// Publishes the files that arrive in a folder, in order of arrival.
struct FolderWorker {
    dir: PathBuf,
    matcher: Option<GlobMatcher>,
    delete_after: bool,
    /// `Some` while polling: no events, so files are taken once a scan sees
    /// them unchanged since the previous one.
    poll: Option<Duration>,
    /// Conversion of other formats, and the largest file read.
    source: SourceOptions,
    hub: Hub,
    checker: Checker,
    queue: VecDeque<Queued>,
    dirty: HashMap<OsString, Dirty>,
    /// Files handled (published or refused), with the stamp they had then:
    /// not handled again unless they change. Only names that still exist
    /// are kept, so this is as large as the folder at most.
    seen: HashMap<OsString, Stamp>,
    /// Whether a frame was published yet (for the state shown).
    published: bool,
    /// Whether the folder was missing at the last look, so that it is
    /// reported once.
    missing: bool,
}

impl FolderWorker {
    fn new(
        dir: PathBuf,
        matcher: Option<GlobMatcher>,
        delete_after: bool,
        poll: Option<Duration>,
        source: SourceOptions,
        hub: Hub,
    ) -> FolderWorker {
        FolderWorker {
            dir,
            matcher,
            delete_after,
            poll,
            source,
            hub,
            checker: Checker::default(),
            queue: VecDeque::new(),
            dirty: HashMap::new(),
            seen: HashMap::new(),
            published: false,
            missing: false,
        }
    }

    /// Whether a file of this name is one to publish.
    fn wanted(&self, name: &OsStr) -> bool {
        wanted(self.matcher.as_ref(), name)
    }

    /// The folder's wanted regular files with their stamps, or `None` (after
    /// setting the state) if it cannot be listed.
    async fn list(&mut self) -> Option<Vec<(OsString, Stamp)>> {
        let dir = self.dir.clone();
        let matcher = self.matcher.clone();
        // One trip to the blocking pool for the whole listing, not one per
        // file: a poll of a large folder stays cheap.
        let listed = tokio::task::spawn_blocking(move || list(&dir, matcher.as_ref()))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("listing task failed: {e}"))));
        match listed {
            Ok(files) => {
                if std::mem::take(&mut self.missing) {
                    self.set_idle_state();
                }
                Some(files)
            }
            Err(e) => {
                let why = if e.kind() == io::ErrorKind::NotFound {
                    format!("folder {} does not exist", self.dir.display())
                } else {
                    format!("cannot read folder {}: {e}", self.dir.display())
                };
                if !std::mem::replace(&mut self.missing, true) {
                    tracing::warn!(stream = self.hub.name(), "{why}");
                }
                self.hub.set_source_state(SourceState::Waiting(why));
                None
            }
        }
    }

    fn set_idle_state(&self) {
        let state = if self.published {
            SourceState::Running
        } else {
            let what = match self.matcher.as_ref() {
                Some(m) => format!("images matching {:?}", m.glob().glob()),
                None => "images".into(),
            };
            SourceState::Waiting(format!(
                "waiting for {what} in folder {}",
                self.dir.display()
            ))
        };
        self.hub.set_source_state(state);
    }

    /// Looks at what is in the folder already. Without `delete_after`, the
    /// newest usable image is shown so that the stream has a picture at
    /// once, and the rest are left alone; with it, every file is spooled
    /// work and is published and deleted, oldest first.
    async fn start(&mut self) {
        self.set_idle_state();
        let Some(mut files) = self.list().await else {
            return;
        };
        sort_by_age(&mut files);
        if self.delete_after {
            let now = Instant::now();
            for (name, _) in files {
                self.enqueue(name, now);
            }
            return self.process().await;
        }
        for (name, stamp) in &files {
            self.seen.insert(name.clone(), *stamp);
        }
        // Newest first; a few tries, not the whole folder, if they are bad.
        for (name, _) in files.iter().rev().take(8) {
            let path = self.dir.join(name);
            // An unreadable one (too large, not a regular file) is
            // reported here: as a file already seen, no event brings it
            // back.
            let (stamp, data) = match read_file(&path, self.source.max_frame).await {
                Ok(read) => read,
                Err(e) => {
                    self.refused(&path, &e.to_string());
                    continue;
                }
            };
            self.seen.insert(name.clone(), stamp);
            match convert::to_frame(data, &self.source.convert).await {
                Ok(frame) => {
                    if self.hub.publish(frame).is_ok() {
                        self.published = true;
                        self.set_idle_state();
                        return;
                    }
                }
                Err(e) => self.refused(&path, &e.to_string()),
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let head = self.queue.front().map(|q| q.ready_at);
        let stable = match self.poll {
            Some(_) => None,
            None => self.dirty.values().map(|d| d.since + STABLE).min(),
        };
        match (head, stable) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn handle(&mut self, batch: Batch) {
        let now = Instant::now();
        for (name, change) in batch.changes {
            if !self.wanted(&name) {
                continue;
            }
            match change {
                Change::Written => {
                    let d = self.dirty.entry(name).or_insert(Dirty {
                        stamp: None,
                        since: now,
                    });
                    d.stamp = None;
                    d.since = now;
                }
                Change::Closed => {
                    self.dirty.remove(&name);
                    self.enqueue(name, now + RENAME_GRACE);
                }
                Change::Renamed => {
                    if self.dir.join(&name).is_file() {
                        // Moved in: whole by the writer's own contract.
                        self.dirty.remove(&name);
                        self.enqueue(name, now);
                    } else {
                        // Moved away: a temporary file, or gone.
                        self.forget(&name);
                    }
                }
                Change::Removed => self.forget(&name),
                Change::Touched => {}
            }
        }
        if batch.rescan || batch.tick {
            self.scan().await;
        }
        if self.poll.is_none() || batch.rescan || batch.tick {
            self.promote_stable();
        }
        self.process().await;
    }

    /// Adds a finished file to the queue, or, if it is queued already,
    /// keeps its place and updates when it may go.
    fn enqueue(&mut self, name: OsString, ready_at: Instant) {
        if let Some(q) = self.queue.iter_mut().find(|q| q.name == name) {
            q.ready_at = ready_at;
        } else {
            self.queue.push_back(Queued {
                name,
                ready_at,
                first_try: None,
            });
        }
    }

    fn forget(&mut self, name: &OsStr) {
        self.dirty.remove(name);
        self.seen.remove(name);
        if self.queue.front().is_some_and(|q| q.name == name) {
            self.checker.clear();
        }
        self.queue.retain(|q| q.name != name);
    }

    /// Compares the folder with what is known: files that are new or
    /// changed become dirty, and names that are gone are forgotten.
    async fn scan(&mut self) {
        let Some(files) = self.list().await else {
            return;
        };
        let now = Instant::now();
        let present: HashMap<OsString, Stamp> = files.into_iter().collect();
        self.seen.retain(|n, _| present.contains_key(n));
        self.dirty.retain(|n, _| present.contains_key(n));
        for (name, stamp) in present {
            if self.seen.get(&name) == Some(&stamp) || self.queue.iter().any(|q| q.name == name) {
                continue;
            }
            let d = self.dirty.entry(name).or_insert(Dirty {
                stamp: Some(stamp),
                since: now,
            });
            if d.stamp != Some(stamp) {
                d.stamp = Some(stamp);
                d.since = now;
            }
        }
    }

    /// Queues dirty files that have been left alone long enough, oldest
    /// change first.
    fn promote_stable(&mut self) {
        let now = Instant::now();
        // When polling, "unchanged since the previous scan" is the test; the
        // half period allows for ticks that come a little late or early.
        let after = self.poll.map_or(STABLE, |p| p / 2);
        let mut ready: Vec<(Instant, OsString)> = self
            .dirty
            .iter()
            .filter(|(_, d)| now.duration_since(d.since) >= after)
            .map(|(n, d)| (d.since, n.clone()))
            .collect();
        ready.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| natord::compare(&a.1.to_string_lossy(), &b.1.to_string_lossy()))
        });
        for (_, name) in ready {
            self.dirty.remove(&name);
            self.enqueue(name, now);
        }
    }

    /// Publishes queued files from the head while they are ready.
    async fn process(&mut self) {
        loop {
            let now = Instant::now();
            let Some(head) = self.queue.front_mut() else {
                return;
            };
            if head.ready_at > now {
                return;
            }
            let first_try = *head.first_try.get_or_insert(now);
            let name = head.name.clone();
            match self.try_publish(&name).await {
                Step::Done => {
                    self.checker.clear();
                    self.queue.pop_front();
                }
                Step::Retry if now.duration_since(first_try) >= HEAD_PATIENCE => {
                    // Still being written: let the files behind it go, and
                    // take it up again once it is left alone.
                    self.checker.clear();
                    self.queue.pop_front();
                    self.dirty.insert(
                        name,
                        Dirty {
                            stamp: None,
                            since: now,
                        },
                    );
                }
                Step::Retry => {
                    if let Some(head) = self.queue.front_mut() {
                        head.ready_at = now + RETRY;
                    }
                    return;
                }
            }
        }
    }

    async fn try_publish(&mut self, name: &OsStr) -> Step {
        let path = self.dir.join(name);
        let (stamp, data) = match read_file(&path, self.source.max_frame).await {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Step::Done,
            Err(e) => {
                // Reported once per version of the file, like a bad image.
                if let Ok(meta) = tokio::fs::metadata(&path).await {
                    let stamp = Stamp::of(&meta);
                    if self.seen.insert(name.to_os_string(), stamp) == Some(stamp) {
                        return Step::Done;
                    }
                }
                self.refused(&path, &format!("cannot read it: {e}"));
                return Step::Done;
            }
        };
        if self.seen.get(name) == Some(&stamp) {
            // Closed again without a change.
            return Step::Done;
        }
        match self.checker.check(data, true, &self.source.convert).await {
            Verdict::Frame(frame) => {
                self.seen.insert(name.to_os_string(), stamp);
                match self.hub.publish(frame) {
                    Ok(_) => {
                        self.published = true;
                        self.set_idle_state();
                        if self.delete_after {
                            if let Err(e) = tokio::fs::remove_file(&path).await {
                                if e.kind() != io::ErrorKind::NotFound {
                                    tracing::warn!(
                                        stream = self.hub.name(),
                                        "cannot delete {} after publishing it: {e}",
                                        path.display()
                                    );
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // `publish` counted it; say which file it was.
                        tracing::warn!(
                            stream = self.hub.name(),
                            "skipping {}: {e}",
                            path.display()
                        );
                    }
                }
                Step::Done
            }
            Verdict::Retry => Step::Retry,
            Verdict::Bad(reason) => {
                self.seen.insert(name.to_os_string(), stamp);
                self.refused(&path, &reason);
                Step::Done
            }
        }
    }

    fn refused(&self, path: &Path, reason: &str) {
        tracing::warn!(
            stream = self.hub.name(),
            "skipping {}: {reason}",
            path.display()
        );
        self.hub.reject(&format!("{}: {reason}", path.display()));
    }
}

/// Outcome of one try at the head of a folder's queue.
enum Step {
    Done,
    Retry,
}

/// Whether a file called `name` in a watched folder is one to publish:
/// not hidden, not a temporary name, and matching the pattern if any.
fn wanted(matcher: Option<&GlobMatcher>, name: &OsStr) -> bool {
    let text = name.to_string_lossy();
    if text.starts_with('.') || TEMP_SUFFIXES.iter().any(|s| text.ends_with(s)) {
        return false;
    }
    matcher.is_none_or(|m| m.is_match(Path::new(name)))
}

/// The wanted regular files of `dir`, with their stamps.
fn list(dir: &Path, matcher: Option<&GlobMatcher>) -> io::Result<Vec<(OsString, Stamp)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !wanted(matcher, &name) {
            continue;
        }
        // fs::metadata follows symlinks, so linked images count.
        if let Ok(meta) = std::fs::metadata(entry.path()) {
            if meta.is_file() {
                files.push((name, Stamp::of(&meta)));
            }
        }
    }
    Ok(files)
}

/// Oldest first by modification time, then in natural name order.
fn sort_by_age(files: &mut [(OsString, Stamp)]) {
    files.sort_by(|a, b| {
        a.1.modified
            .cmp(&b.1.modified)
            .then_with(|| natord::compare(&a.0.to_string_lossy(), &b.0.to_string_lossy()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::corpus;

    #[test]
    fn targets_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(Target::of(d), Target::Folder(d.to_path_buf()));
        let missing = d.join("spool/");
        assert_eq!(Target::of(&missing), Target::Folder(missing.clone()));
        assert_eq!(
            Target::of(&d.join("graph.png")),
            Target::File {
                dir: d.to_path_buf(),
                name: "graph.png".into()
            }
        );
        assert_eq!(
            Target::of(Path::new("graph.png")),
            Target::File {
                dir: ".".into(),
                name: "graph.png".into()
            }
        );
        assert_eq!(Target::of(Path::new("/")), Target::Folder("/".into()));
        assert_eq!(Target::of(Path::new("a/..")), Target::Folder("a/..".into()));
    }

    #[test]
    fn patterns_match_names_ignoring_case() {
        let m = compile_pattern("*.{jpg,png}").unwrap();
        assert!(m.is_match("IMG_1.JPG"));
        assert!(m.is_match("graph.png"));
        assert!(!m.is_match("notes.txt"));
        let err = compile_pattern("*.{jpg").unwrap_err();
        assert!(err.contains("\"*.{jpg\""), "{err}");
        assert!(compile_pattern("sub/*.jpg").unwrap_err().contains("'/'"));
    }

    #[test]
    fn hidden_and_temporary_names_are_not_wanted() {
        let w = FolderWorker::new(
            ".".into(),
            None,
            false,
            None,
            SourceOptions::default(),
            Hub::new("t"),
        );
        for name in [".tmp123", "img.jpg.part", "x.tmp", "a.jpg~", ".img.jpg"] {
            assert!(!w.wanted(OsStr::new(name)), "{name}");
        }
        assert!(w.wanted(OsStr::new("img5.png")));
    }

    #[test]
    fn partial_images_do_not_look_complete() {
        for name in ["image.png", "image.gif"] {
            let data = corpus(name);
            assert!(looks_complete(&data), "{name}");
            for cut in [0, 10, data.len() / 2, data.len() - 1] {
                assert!(!looks_complete(&data[..cut]), "{name} cut at {cut}");
            }
        }
        assert!(looks_complete(b"garbage"));
        assert!(!looks_complete(b""));
        assert!(!looks_complete(b"BM\xff\xff\x00\x00"));
        assert!(!looks_complete(b"RIFF\xff\x00\x00\x00WEBP"));
    }

    #[tokio::test]
    async fn incomplete_bytes_are_retried_then_refused() {
        let mut c = Checker::default();
        let opts = ConvertOptions::default();
        let jpeg = Bytes::from(corpus("jpeg_5k.jpg"));
        let half = jpeg.slice(..jpeg.len() / 2);
        assert!(matches!(
            c.check(half.clone(), false, &opts).await,
            Verdict::Retry
        ));
        // The rest arrives: published at once.
        assert!(matches!(
            c.check(jpeg.clone(), false, &opts).await,
            Verdict::Frame(_)
        ));
        // Half a file that the writer closed and left alone is bad.
        assert!(matches!(
            c.check(half.clone(), true, &opts).await,
            Verdict::Retry
        ));
        tokio::time::sleep(CLOSE_SETTLE).await;
        match c.check(half, false, &opts).await {
            Verdict::Bad(reason) => assert!(reason.starts_with("truncated JPEG"), "{reason}"),
            _ => panic!("expected a bad verdict"),
        }
    }

    #[tokio::test]
    async fn check_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WatchOptions::default();
        check(&dir.path().join("not-yet.png"), &opts).await.unwrap();
        check(dir.path(), &opts).await.unwrap();
        let err = check(&dir.path().join("missing/graph.png"), &opts)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read folder"), "{err}");
        let err = check(&dir.path().join("missing/"), &opts)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read folder"), "{err}");
        let bad = WatchOptions {
            pattern: Some("*.{jpg".into()),
            ..WatchOptions::default()
        };
        let err = check(dir.path(), &bad).await.unwrap_err().to_string();
        assert!(err.contains("pattern \"*.{jpg\""), "{err}");
    }
}
