//! A watched folder: the images that arrive in it, published in order of
//! arrival.

use globset::GlobMatcher;
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

use super::checker::{read_file, Checker, Stamp, Verdict};
use super::feed::{Batch, Change};
use super::{RENAME_GRACE, RETRY, STABLE};
use crate::convert;
use crate::hub::{Hub, SourceState};
use crate::source::SourceOptions;

/// In a folder, the oldest finished file is retried for at most this long
/// while it keeps changing, so that one file that is written forever cannot
/// hold up the files behind it.
const HEAD_PATIENCE: Duration = Duration::from_secs(2);

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
pub(super) struct FolderWorker {
    dir: PathBuf,
    matcher: Option<GlobMatcher>,
    delete_after: bool,
    /// `Some` while polling: no events, so files are taken once a scan sees
    /// them unchanged since the previous one.
    pub(super) poll: Option<Duration>,
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
    pub(super) fn new(
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
    pub(super) fn wanted(&self, name: &OsStr) -> bool {
        wanted(self.matcher.as_ref(), name)
    }

    /// The folder's wanted regular files with their stamps, or `None` (after
    /// setting the state) if it cannot be listed.
    async fn list(&mut self) -> Option<Listing> {
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
    pub(super) async fn start(&mut self) {
        self.set_idle_state();
        let Some(Listing { mut files, others }) = self.list().await else {
            return;
        };
        // Names that are no file (a FIFO, a socket) are reported now, once:
        // created later they would be, by their event, and one made just
        // before the watch began has no event.
        for (name, stamp) in others {
            let path = self.dir.join(&name);
            if let Err(e) = read_file(&path, self.source.max_frame).await {
                self.refused(&path, &e.to_string());
            }
            self.seen.insert(name, stamp);
        }
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

    pub(super) fn deadline(&self) -> Option<Instant> {
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

    pub(super) async fn handle(&mut self, batch: Batch) {
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
        let Some(Listing { files, .. }) = self.list().await else {
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
/// What [`list`] finds: the wanted regular files, and the wanted names
/// that are something else (a FIFO, a socket, a folder), with their
/// stamps.
struct Listing {
    files: Vec<(OsString, Stamp)>,
    others: Vec<(OsString, Stamp)>,
}

fn list(dir: &Path, matcher: Option<&GlobMatcher>) -> io::Result<Listing> {
    let mut files = Vec::new();
    let mut others = Vec::new();
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
            } else {
                others.push((name, Stamp::of(&meta)));
            }
        }
    }
    Ok(Listing { files, others })
}

/// Oldest first by modification time, then in natural name order.
fn sort_by_age(files: &mut [(OsString, Stamp)]) {
    files.sort_by(|a, b| {
        a.1.modified
            .cmp(&b.1.modified)
            .then_with(|| natord::compare(&a.0.to_string_lossy(), &b.0.to_string_lossy()))
    });
}
