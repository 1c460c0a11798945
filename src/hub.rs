//! The hub: one per stream, holding the newest frame for every viewer.
//!
//! A source calls [`Hub::publish`]; every viewer of the stream holds a
//! [`Subscriber`] and, whenever it is ready for more, takes the newest frame.
//! Nothing queues: a viewer that is slower than the source simply never sees
//! the frames that were replaced while it was busy, so one slow client cannot
//! slow the source, the other clients, or make the server buffer without
//! bound.
//!
//! The newest frame lives in a [`tokio::sync::watch`] channel as an
//! `Arc<Published>`: the JPEG and its multipart part header, encoded once when
//! the frame is published. A thousand viewers hold a thousand pointers to the
//! same bytes.

use bytes::Bytes;
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

use crate::frame::{Frame, FrameError};
use crate::multipart;

/// A frame as published: the frame, when, and its encoded part header.
#[derive(Debug)]
pub struct Published {
    frame: Frame,
    seq: u64,
    published: SystemTime,
    at: Instant,
    header: Bytes,
}

impl Published {
    /// The frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The JPEG bytes.
    pub fn jpeg(&self) -> &Bytes {
        self.frame.jpeg()
    }

    /// The multipart part header for this frame (`Content-Type`,
    /// `Content-Length`, `X-Timestamp` and the blank line), encoded once.
    pub fn part_header(&self) -> &Bytes {
        &self.header
    }

    /// 1 for the stream's first frame, counting up.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Wall-clock time of publication (what `X-Timestamp` carries).
    pub fn published(&self) -> SystemTime {
        self.published
    }

    /// How long ago the frame was published.
    pub fn age(&self) -> Duration {
        self.at.elapsed()
    }
}

/// Why a frame was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The bytes are not a complete JPEG.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The JPEG contains the multipart boundary string, which would make
    /// browsers cut it in two.
    #[error("the frame contains the stream's multipart boundary string and cannot be sent intact")]
    ContainsBoundary,
}

/// One named stream: its newest frame and its counters.
///
/// Cheap to clone (an `Arc`); clones are the same hub. `publish` is a plain
/// synchronous call, so it can be used from async tasks, blocking threads or
/// plain `std::thread`s alike.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    tx: watch::Sender<Option<Arc<Published>>>,
    published: AtomicU64,
    rejected: AtomicU64,
    /// Viewers connected now; a watch channel so that sources that only
    /// run while someone watches (relays) can wait for a change.
    clients: watch::Sender<usize>,
    push: AtomicBool,
    rate: Mutex<RateMeter>,
    last_error: Mutex<Option<String>>,
    source: Mutex<SourceState>,
    /// What the source hung on the hub for routes to find; see
    /// [`Hub::set_attachment`].
    attachment: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

/// What the stream's source is doing, as shown by `/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "lowercase")]
pub enum SourceState {
    /// Not started yet, or no source (frames come from the Rust API).
    Idle,
    /// Producing frames.
    Running,
    /// Alive but waiting for something (a file to appear, a command to
    /// restart); the text says what.
    Waiting(String),
    /// Stopped by an error it cannot recover from; the text says which.
    Failed(String),
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Creates a hub for the stream `name`. The name is checked by
    /// [`Streams::add`]; a hub on its own accepts any name.
    pub fn new(name: impl Into<String>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                name: name.into(),
                tx: watch::Sender::new(None),
                published: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                clients: watch::Sender::new(0),
                push: AtomicBool::new(false),
                rate: Mutex::new(RateMeter::default()),
                last_error: Mutex::new(None),
                source: Mutex::new(SourceState::Idle),
                attachment: Mutex::new(None),
            }),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Makes `frame` the newest frame of the stream and wakes every viewer.
    ///
    /// Returns the frame's sequence number. The part header is encoded here,
    /// once, so that viewers only copy pointers.
    pub fn publish(&self, frame: Frame) -> Result<u64, PublishError> {
        self.publish_at(frame, SystemTime::now())
    }

    /// Like [`Hub::publish`], with the time the frame was made rather than
    /// now: a relay passes on its upstream's `X-Timestamp`, so latency is
    /// measured from the origin, however many hops away.
    pub fn publish_at(&self, frame: Frame, published: SystemTime) -> Result<u64, PublishError> {
        if multipart::contains_boundary(frame.jpeg()) {
            self.reject(&PublishError::ContainsBoundary);
            return Err(PublishError::ContainsBoundary);
        }
        let at = Instant::now();
        let header = multipart::part_header(frame.len(), published);
        let seq = self.inner.published.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.inner.rate).record(at);
        self.inner.tx.send_replace(Some(Arc::new(Published {
            frame,
            seq,
            published,
            at,
            header,
        })));
        Ok(seq)
    }

    /// Checks `data` as a JPEG and publishes it; a rejected frame is counted
    /// and leaves the stream's newest frame as it was.
    pub fn publish_jpeg(&self, data: impl Into<Bytes>) -> Result<u64, PublishError> {
        match Frame::from_jpeg(data) {
            Ok(frame) => self.publish(frame),
            Err(e) => {
                let e = PublishError::from(e);
                self.reject(&e);
                Err(e)
            }
        }
    }

    /// Counts a frame that a source refused before publishing and remembers
    /// why, for `/status`.
    pub fn reject(&self, reason: &dyn std::fmt::Display) {
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        *lock(&self.inner.last_error) = Some(reason.to_string());
    }

    /// Lets other programs publish into this stream over HTTP (`PUT` or
    /// `POST` to `/stream/NAME`). Off by default, so that a stream fed by a
    /// camera or a folder cannot be overwritten by anyone who can reach the
    /// server.
    pub fn set_accepts_push(&self, accept: bool) {
        self.inner.push.store(accept, Ordering::Relaxed);
    }

    /// Whether HTTP pushes are accepted; see [`Hub::set_accepts_push`].
    pub fn accepts_push(&self) -> bool {
        self.inner.push.load(Ordering::Relaxed)
    }

    /// Records what the stream's source is doing, for `/status`.
    pub fn set_source_state(&self, state: SourceState) {
        *lock(&self.inner.source) = state;
    }

    /// Hangs `value` on the hub, replacing what was there, so that HTTP
    /// routes can reach the stream's source: a chart stream attaches its
    /// [`Chart`](crate::source::chart::Chart), which
    /// `POST /stream/NAME/data` feeds. The hub only keeps it; it knows
    /// nothing of its type.
    pub fn set_attachment(&self, value: Arc<dyn Any + Send + Sync>) {
        *lock(&self.inner.attachment) = Some(value);
    }

    /// What [`Hub::set_attachment`] hung on the hub, if it is a `T`.
    pub fn attachment<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let value = lock(&self.inner.attachment).clone()?;
        value.downcast::<T>().ok()
    }

    /// The newest frame, if any was published yet. Never waits.
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.inner.tx.borrow().clone()
    }

    /// Starts watching the stream. The subscriber counts as a client until it
    /// is dropped.
    pub fn subscribe(&self) -> Subscriber {
        self.inner.clients.send_modify(|n| *n += 1);
        Subscriber {
            rx: self.inner.tx.subscribe(),
            fresh: true,
            hub: self.clone(),
        }
    }

    /// The number of viewers, as a channel that changes when they come and
    /// go. Relays use it to connect upstream only while someone watches.
    pub fn watch_clients(&self) -> watch::Receiver<usize> {
        self.inner.clients.subscribe()
    }

    /// A snapshot of the stream's counters.
    pub fn stats(&self) -> HubStats {
        let latest = self.latest();
        HubStats {
            name: self.inner.name.clone(),
            frames_published: self.inner.published.load(Ordering::Relaxed),
            frames_rejected: self.inner.rejected.load(Ordering::Relaxed),
            fps_in: lock(&self.inner.rate).fps(),
            clients: *self.inner.clients.borrow(),
            newest_frame_age: latest.as_ref().map(|p| p.age()),
            width: latest.as_ref().map(|p| p.frame().width()),
            height: latest.as_ref().map(|p| p.frame().height()),
            bytes: latest.as_ref().map(|p| p.frame().len()),
            last_error: lock(&self.inner.last_error).clone(),
            source: lock(&self.inner.source).clone(),
        }
    }
}

/// Locks a mutex, ignoring poisoning: every value behind these locks is
/// replaced whole, so a panic elsewhere cannot leave it half-written.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters of one stream, as shown by `/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HubStats {
    /// The stream's name.
    pub name: String,
    /// Frames published since start.
    pub frames_published: u64,
    /// Frames refused (corrupt, not a JPEG, …) since start.
    pub frames_rejected: u64,
    /// Recent publishing rate, frames per second.
    pub fps_in: f64,
    /// Viewers connected now.
    pub clients: usize,
    /// Age of the newest frame; `None` before the first.
    #[serde(rename = "newest_frame_age_ms", serialize_with = "as_millis")]
    pub newest_frame_age: Option<Duration>,
    /// Width of the newest frame.
    pub width: Option<u16>,
    /// Height of the newest frame.
    pub height: Option<u16>,
    /// Size of the newest frame in bytes.
    pub bytes: Option<usize>,
    /// Why the last refused frame was refused.
    pub last_error: Option<String>,
    /// What the source is doing.
    pub source: SourceState,
}

fn as_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// A viewer's handle on a hub: yields the newest frame whenever asked.
pub struct Subscriber {
    rx: watch::Receiver<Option<Arc<Published>>>,
    /// True until the first frame was handed out: the frame that was current
    /// when the viewer arrived is shown at once, not after the next publish.
    fresh: bool,
    hub: Hub,
}

impl Subscriber {
    /// The newest frame if it was not handed out yet by this subscriber.
    pub fn take_unseen(&mut self) -> Option<Arc<Published>> {
        let changed = std::mem::take(&mut self.fresh) || self.rx.has_changed().unwrap_or(false);
        if changed {
            self.rx.borrow_and_update().clone()
        } else {
            None
        }
    }

    /// Waits until a frame newer than the last one taken is published, and
    /// returns it. Frames published in between are skipped: this always
    /// returns the newest.
    pub async fn next(&mut self) -> Arc<Published> {
        if let Some(p) = self.take_unseen() {
            return p;
        }
        loop {
            // The sender lives in the hub, which this subscriber keeps alive,
            // so `changed` cannot fail. It marks the new value as seen.
            let _ = self.rx.changed().await;
            if let Some(p) = self.rx.borrow_and_update().clone() {
                return p;
            }
        }
    }

    /// The newest frame, seen or not (for re-sending it to an idle viewer).
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.rx.borrow().clone()
    }

    /// The hub this subscriber watches.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.hub.inner.clients.send_modify(|n| *n -= 1);
    }
}

/// Publishing rate, smoothed over recent frames.
#[derive(Default)]
struct RateMeter {
    last: Option<Instant>,
    /// Exponentially weighted mean interval between frames, in seconds.
    mean_interval: Option<f64>,
}

impl RateMeter {
    fn record(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.duration_since(last).as_secs_f64();
            self.mean_interval = Some(match self.mean_interval {
                Some(m) => 0.8 * m + 0.2 * dt,
                None => dt,
            });
        }
        self.last = Some(now);
    }

    fn fps(&self) -> f64 {
        let (Some(last), Some(mean)) = (self.last, self.mean_interval) else {
            return 0.0;
        };
        // A source that stopped shows a falling rate, not its last one.
        let interval = mean.max(last.elapsed().as_secs_f64());
        if interval > 0.0 {
            ((1.0 / interval) * 100.0).round() / 100.0
        } else {
            0.0
        }
    }
}

/// The server's streams, in the order they were declared.
///
/// Order matters: `/stream` and mjpg-streamer's `?action=stream` show the
/// first, and `?action=stream_N` the N-th.
#[derive(Clone, Default)]
pub struct Streams {
    hubs: Arc<RwLock<Vec<Hub>>>,
}

/// A stream name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not 1–64 of `A-Z a-z 0-9 _ -`.
    #[error("invalid stream name {0:?}: use 1 to 64 of the characters A-Z a-z 0-9 _ -")]
    Invalid(String),
    /// Two streams with one name.
    #[error("stream name {0:?} is used twice")]
    Duplicate(String),
}

/// Checks a stream name: 1 to 64 of `[A-Za-z0-9_-]`. Names appear in URLs,
/// HTML and logs, so nothing that needs escaping is allowed.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid(name.to_string()))
    }
}

impl Streams {
    /// An empty set.
    pub fn new() -> Streams {
        Streams::default()
    }

    /// Adds a stream and returns its hub.
    pub fn add(&self, name: &str) -> Result<Hub, NameError> {
        check_name(name)?;
        let mut hubs = self.hubs.write().unwrap_or_else(|e| e.into_inner());
        if hubs.iter().any(|h| h.name() == name) {
            return Err(NameError::Duplicate(name.to_string()));
        }
        let hub = Hub::new(name);
        hubs.push(hub.clone());
        Ok(hub)
    }

    /// The stream called `name`.
    pub fn get(&self, name: &str) -> Option<Hub> {
        self.read().iter().find(|h| h.name() == name).cloned()
    }

    /// The `n`-th stream (0-based), in declaration order.
    pub fn nth(&self, n: usize) -> Option<Hub> {
        self.read().get(n).cloned()
    }

    /// All streams, in declaration order.
    pub fn all(&self) -> Vec<Hub> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Hub>> {
        self.hubs.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/jpeg_5k.jpg"
        ))
        .unwrap()
    }

    #[test]
    fn names_are_checked() {
        let s = Streams::new();
        for good in ["a", "cam-1", "Graphs_2", &"x".repeat(64)] {
            s.add(good).unwrap();
        }
        for bad in ["", "a b", "../x", "ü", "a/b", "a?b", &"x".repeat(65)] {
            assert_eq!(s.add(bad).unwrap_err(), NameError::Invalid(bad.to_string()));
        }
        assert_eq!(s.add("a").unwrap_err(), NameError::Duplicate("a".into()));
        assert_eq!(s.nth(1).unwrap().name(), "cam-1");
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_only_the_newest_frame() {
        let hub = Hub::new("t");
        let mut sub = hub.subscribe();
        assert!(sub.take_unseen().is_none());
        for _ in 0..5 {
            hub.publish_jpeg(jpeg()).unwrap();
        }
        assert_eq!(sub.next().await.seq(), 5);
        assert!(sub.take_unseen().is_none());
        hub.publish_jpeg(jpeg()).unwrap();
        assert_eq!(sub.next().await.seq(), 6);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_for_each_new_frame() {
        let hub = Hub::new("t");
        let mut sub = hub.subscribe();
        let waiter = tokio::spawn(async move {
            let a = sub.next().await.seq();
            let b = sub.next().await.seq();
            (a, b)
        });
        tokio::task::yield_now().await;
        hub.publish_jpeg(jpeg()).unwrap();
        // Wait until the first frame was taken before publishing the second.
        while hub.inner.tx.receiver_count() > 0 && !waiter.is_finished() {
            if hub.inner.tx.borrow().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                hub.publish_jpeg(jpeg()).unwrap();
                break;
            }
        }
        let (a, b) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a, 1);
        assert!(b >= 2);
    }

    #[tokio::test]
    async fn a_new_subscriber_sees_the_current_frame_at_once() {
        let hub = Hub::new("t");
        hub.publish_jpeg(jpeg()).unwrap();
        let mut sub = hub.subscribe();
        assert_eq!(sub.next().await.seq(), 1);
    }

    #[test]
    fn clients_are_counted_until_dropped() {
        let hub = Hub::new("t");
        let a = hub.subscribe();
        let b = hub.subscribe();
        assert_eq!(hub.stats().clients, 2);
        drop(a);
        drop(b);
        assert_eq!(hub.stats().clients, 0);
    }

    #[test]
    fn rejected_frames_keep_the_last_good_one() {
        let hub = Hub::new("t");
        hub.publish_jpeg(jpeg()).unwrap();
        assert!(hub.publish_jpeg(&b"garbage"[..]).is_err());
        let mut boundary = jpeg();
        // A COM segment carrying the boundary string is a valid JPEG.
        let mut com = vec![0xFF, 0xFE, 0, 21];
        com.extend_from_slice(multipart::BOUNDARY.as_bytes());
        boundary.splice(2..2, com);
        assert_eq!(
            hub.publish_jpeg(boundary).unwrap_err(),
            PublishError::ContainsBoundary
        );
        let stats = hub.stats();
        assert_eq!(stats.frames_published, 1);
        assert_eq!(stats.frames_rejected, 2);
        assert_eq!(hub.latest().unwrap().seq(), 1);
        assert!(stats.last_error.unwrap().contains("boundary"));
    }
}
