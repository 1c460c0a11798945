//! What a connection served by hyper is doing, so that the limits that
//! guard a plain HTTP/1 connection also guard HTTP/2.
//!
//! On HTTP/1 the socket itself tells: a client that sends no request is
//! caught by the header timeout, one that stops reading by the write timeout
//! of the socket. HTTP/2 hides both behind one connection. A client can send
//! its preface and SETTINGS and then nothing, which no header timeout sees;
//! and it can leave a stream's flow-control window at zero, so that hyper
//! never writes that stream's data and the socket's write timeout never
//! fires, while the viewer holds its place in the stream's client count.
//!
//! So the server watches requests instead of bytes. [`Activity`] counts the
//! requests in flight on one connection and, for each response body, when
//! it handed over a chunk that has not been taken yet ([`Tracked`] sees
//! this: hyper asks a body for its next chunk only once the last one could
//! be sent). [`Activity::expired`] resolves when the connection has had no
//! request for the header timeout, or a chunk has waited longer than the
//! write timeout; the server then closes the connection.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests in flight on one connection, and response chunks waiting.
#[derive(Default)]
pub(super) struct Activity {
    state: Mutex<State>,
    /// Wakes [`Activity::expired`] when what it waits for changes: the
    /// connection turns idle or busy, or a first chunk starts waiting.
    changed: Notify,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    /// Since when nothing was in flight; `None` while something is (and
    /// before [`Activity::new`] set it).
    idle_since: Option<Instant>,
    /// Requests whose response handed over a chunk that is still waiting
    /// to be sent, by request, with the moment it was handed over.
    waiting: HashMap<u64, Instant>,
    next_id: u64,
}

/// Why a connection is closed by its watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// No request for the header timeout.
    Idle,
    /// A response chunk was not taken within the write timeout.
    Stalled,
}

impl Activity {
    /// The activity of a connection that starts now, with nothing in flight.
    pub(super) fn new() -> Arc<Activity> {
        let activity = Activity::default();
        activity.lock().idle_since = Some(Instant::now());
        Arc::new(activity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request begins; it is in flight until the returned guard (held by
    /// its response body) is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        if s.idle_since.take().is_some() {
            self.changed.notify_one();
        }
        s.next_id += 1;
        InFlight {
            activity: self.clone(),
            id: s.next_id,
        }
    }

    /// Resolves when the connection has had nothing in flight for `idle`,
    /// or a response chunk has waited for more than `stalled` (`None`: no
    /// limit).
    pub(super) async fn expired(&self, idle: Duration, stalled: Option<Duration>) -> Expired {
        loop {
            let now = Instant::now();
            let (due, why) = {
                let s = self.lock();
                match (s.idle_since, s.waiting.values().min(), stalled) {
                    (Some(since), _, _) => (Some(since + idle), Expired::Idle),
                    (None, Some(&oldest), Some(stalled)) => {
                        (Some(oldest + stalled), Expired::Stalled)
                    }
                    // Busy, and nothing waits: only a change can expire it.
                    _ => (None, Expired::Idle),
                }
            };
            match due {
                Some(due) if due <= now => return why,
                // A change wakes the watch early; it then looks again.
                Some(due) => tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep_until(due) => {}
                },
                None => self.changed.notified().await,
            }
        }
    }
}

/// A request in flight; see [`Activity::begin`].
pub(super) struct InFlight {
    activity: Arc<Activity>,
    id: u64,
}

impl InFlight {
    fn chunk_handed_over(&self) {
        let mut s = self.activity.lock();
        s.waiting.insert(self.id, Instant::now());
        // A chunk that waits behind older ones does not bring the deadline
        // forward; only the first one does.
        if s.waiting.len() == 1 {
            self.activity.changed.notify_one();
        }
    }

    fn chunk_taken(&self) {
        let mut s = self.activity.lock();
        if !s.waiting.is_empty() {
            s.waiting.remove(&self.id);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.activity.lock();
        s.waiting.remove(&self.id);
        s.in_flight -= 1;
        if s.in_flight == 0 {
            s.idle_since = Some(Instant::now());
            self.activity.changed.notify_one();
        }
    }
}

/// A response body that tells its connection's [`Activity`] when it hands
/// over a chunk and when it is asked for the next, and holds whatever must
/// live as long as the response (`G`: the request's place in flight, and
/// over HTTP/2 its place in the per-address count).
pub(super) struct Tracked<B, G> {
    inner: B,
    flight: InFlight,
    _guard: G,
}

impl<B, G> Tracked<B, G> {
    pub(super) fn new(inner: B, flight: InFlight, guard: G) -> Tracked<B, G> {
        Tracked {
            inner,
            flight,
            _guard: guard,
        }
    }
}

impl<B, G> Body for Tracked<B, G>
where
    B: Body<Data = Bytes> + Unpin,
    G: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // Asked again: the last chunk was taken.
        self.flight.chunk_taken();
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                self.flight.chunk_handed_over();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_time() {
        let a = Activity::new();
        let started = Instant::now();
        assert_eq!(
            a.expired(Duration::from_secs(10), None).await,
            Expired::Idle
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // A request in flight keeps it open; its end starts the clock again.
        let flight = a.begin();
        let watch = tokio::spawn({
            let a = a.clone();
            async move { a.expired(Duration::from_secs(10), None).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watch.is_finished());
        let ended = Instant::now();
        drop(flight);
        assert_eq!(watch.await.unwrap(), Expired::Idle);
        assert!(ended.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_not_taken_expires_after_the_stall_time() {
        let a = Activity::new();
        let flight = a.begin();
        flight.chunk_handed_over();
        flight.chunk_taken();
        let watch = tokio::spawn({
            let a = a.clone();
            async move {
                a.expired(Duration::from_secs(10), Some(Duration::from_secs(3)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!watch.is_finished(), "a taken chunk is not a stall");
        let handed = Instant::now();
        flight.chunk_handed_over();
        assert_eq!(watch.await.unwrap(), Expired::Stalled);
        assert!(handed.elapsed() >= Duration::from_secs(3));
    }
}
