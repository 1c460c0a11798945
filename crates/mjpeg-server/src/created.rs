//! Streams created by pushes to unknown names
//! ([`HttpOptions::allow_create`](crate::http::HttpOptions)).
//!
//! Each such stream keeps its newest frame in memory, and every name shows
//! in `/status` and the index, so anyone allowed to push could otherwise
//! fill the server's memory one name at a time. So there are at most
//! [`HttpOptions::max_created_streams`](crate::http::HttpOptions) of them,
//! and one that nobody has pushed to for
//! [`HttpOptions::created_stream_idle`](crate::http::HttpOptions) and that
//! nobody watches is forgotten: its name is free again and its frame gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, NameError, Streams};

/// The streams that pushes created, with what keeps each alive.
pub(crate) struct Created {
    max: usize,
    idle: Option<Duration>,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    /// Pushes to it in progress.
    pushing: usize,
    /// When the last push to it ended (or it was created).
    last_push: Instant,
}

/// Why a stream could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// The most streams created by pushes exist already.
    #[error("this server keeps at most {0} streams created by pushes, and has them all; push to an existing stream, or try again once one has been idle long enough to be forgotten")]
    Full(usize),
    /// The name cannot be used.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// A push in progress to a created stream: while it lives, the stream is
/// not forgotten.
pub(crate) struct Pushing {
    created: Arc<Created>,
    name: String,
}

impl Created {
    /// At most `max` created streams, each forgotten once idle for `idle`
    /// (`None`: never).
    pub(crate) fn new(max: usize, idle: Option<Duration>) -> Arc<Created> {
        Arc::new(Created {
            max,
            idle,
            entries: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the push stream `name` in `streams` for a push about to
    /// begin, unless the most allowed exist already (after forgetting the
    /// idle ones).
    pub(crate) fn create(
        self: &Arc<Self>,
        streams: &Streams,
        name: &str,
    ) -> Result<(Hub, Pushing), CreateError> {
        self.forget_idle(streams);
        let mut entries = self.lock();
        if entries.len() >= self.max {
            return Err(CreateError::Full(self.max));
        }
        let hub = streams.add(name)?;
        hub.set_accepts_push(true);
        entries.insert(
            name.to_string(),
            Entry {
                pushing: 1,
                last_push: Instant::now(),
            },
        );
        Ok((hub, self.pushing(name)))
    }

    /// Marks a push to `name` as in progress, if a push created that
    /// stream; `None` for every other stream.
    pub(crate) fn push_begins(self: &Arc<Self>, name: &str) -> Option<Pushing> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name)?;
        entry.pushing += 1;
        Some(self.pushing(name))
    }

    fn pushing(self: &Arc<Self>, name: &str) -> Pushing {
        Pushing {
            created: self.clone(),
            name: name.to_string(),
        }
    }

    /// Removes from `streams` every created stream that nobody pushes to
    /// or watches and that has had no push for the idle time.
    pub(crate) fn forget_idle(&self, streams: &Streams) {
        let Some(idle) = self.idle else { return };
        let mut entries = self.lock();
        entries.retain(|name, entry| {
            if entry.pushing > 0 || entry.last_push.elapsed() < idle {
                return true;
            }
            let watched = streams.get(name).is_some_and(|h| h.stats().clients > 0);
            if !watched {
                streams.remove(name);
                tracing::info!(
                    stream = name,
                    "forgotten: created by a push, then idle for {idle:?}"
                );
            }
            watched
        });
    }

    /// Forgets idle streams now and then until `shutdown`, for as long as
    /// the registry exists; runs on the current tokio runtime if there is
    /// one (a router built outside a runtime forgets them only when a push
    /// creates another).
    pub(crate) fn spawn_sweeper(self: &Arc<Self>, streams: Streams, shutdown: CancellationToken) {
        let (Some(idle), Ok(runtime)) = (self.idle, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let created: Weak<Created> = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(created) = created.upgrade() else {
                    return;
                };
                created.forget_idle(&streams);
            }
        });
    }
}

impl Drop for Pushing {
    fn drop(&mut self) {
        let mut entries = self.created.lock();
        if let Some(entry) = entries.get_mut(&self.name) {
            entry.pushing -= 1;
            entry.last_push = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_and_idle_ones_are_forgotten() {
        let streams = Streams::new();
        let created = Created::new(2, Some(Duration::from_millis(50)));
        let (_a, push_a) = created.create(&streams, "a").unwrap();
        let (_b, push_b) = created.create(&streams, "b").unwrap();
        assert!(matches!(
            created.create(&streams, "c"),
            Err(CreateError::Full(2))
        ));
        // Idle long enough, but still being pushed to: kept.
        std::thread::sleep(Duration::from_millis(80));
        created.forget_idle(&streams);
        assert_eq!(streams.all().len(), 2);
        drop(push_a);
        // Its push just ended: idle from now on.
        created.forget_idle(&streams);
        assert!(streams.get("a").is_some());
        std::thread::sleep(Duration::from_millis(80));
        // Watched: kept.
        let viewer = streams.get("a").unwrap().subscribe();
        created.forget_idle(&streams);
        assert!(streams.get("a").is_some());
        drop(viewer);
        let (_c, _push_c) = created.create(&streams, "c").unwrap();
        assert!(streams.get("a").is_none(), "a was idle and unwatched");
        assert!(streams.get("b").is_some());
        drop(push_b);
        // Streams that a push did not create are never touched.
        streams.add("declared").unwrap();
        assert!(created.push_begins("declared").is_none());
        std::thread::sleep(Duration::from_millis(80));
        created.forget_idle(&streams);
        assert!(streams.get("declared").is_some());
        assert!(streams.get("b").is_none());
    }
}
