//! Where the source's wake-ups come from: file-system events, periodic
//! looks where there are none, and the changes to names they report.

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::FALLBACK_POLL;
use crate::hub::Hub;

/// How often a missing folder is looked for again.
const REWATCH: Duration = Duration::from_secs(1);

/// Events held between the watcher's thread and the source task. Past this
/// the folder is looked at as a whole instead (see [`Batch::rescan`]).
const EVENT_QUEUE: usize = 1024;

/// Warnings that are given once per run rather than once per event.
#[derive(Default)]
pub(super) struct Notes {
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

    pub(super) fn watch_error(&mut self, hub: &Hub, dir: &Path, why: &str) {
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
pub(super) enum Change {
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
pub(super) struct Batch {
    pub(super) changes: Vec<(OsString, Change)>,
    /// Events were lost or are unreliable: look at everything.
    pub(super) rescan: bool,
    /// A polling tick: look at what changed.
    pub(super) tick: bool,
    /// The watched folder itself was deleted or moved away.
    pub(super) dir_gone: bool,
    /// Time to try watching a missing folder again.
    pub(super) reopen: bool,
    /// An error reported by the watcher.
    pub(super) error: Option<String>,
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
pub(super) enum Feed {
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
    pub(super) fn open(dir: &Path, poll: Option<Duration>, hub: &Hub, notes: &mut Notes) -> Feed {
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

    pub(super) fn missing() -> Feed {
        Feed::Missing(interval(REWATCH))
    }

    pub(super) fn polling(&self) -> Option<Duration> {
        match self {
            Feed::Poll(i) => Some(i.period()),
            Feed::Events { .. } | Feed::Missing(_) => None,
        }
    }

    /// Waits for the next wake-up. Cancel-safe: nothing is awaited after
    /// the first event is taken.
    pub(super) async fn next(&mut self) -> Batch {
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
