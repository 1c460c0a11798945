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
//!
//! Every subscriber also has a [`ClientRecord`], registered in the hub while
//! it lives: its address and what it was sent. Its writer updates it with
//! plain atomic stores after each part (one writer per record, so no
//! contended cache line and no lock per frame); `/status` and `/metrics`
//! read it, taking the hub's client list lock once per read.

use bytes::Bytes;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

use crate::frame::{Frame, FrameError};
use crate::multipart::{self, Layout};
use crate::refusals::Refusals;

mod record;
mod variants;

pub use record::{ClientRecord, ClientStats};

use record::ClientList;
pub use variants::{VariantError, VariantStats, LINGER as VARIANT_LINGER};

/// A frame as published: the frame, when, and its encoded part header.
#[derive(Debug)]
pub struct Published {
    frame: Frame,
    seq: u64,
    published: SystemTime,
    at: Instant,
    header: Bytes,
    /// What goes before the JPEG in this frame's WebSocket message, built
    /// by the first socket that sends it and shared by every other (see
    /// [`crate::http`]'s `/ws`).
    ws_prefix: OnceLock<Bytes>,
}

impl Published {
    /// The three shared buffers of this frame's part in `layout`: header,
    /// JPEG, and the trailer with the next boundary. In
    /// [`Layout::Advanced`] the header is empty (it went out with the
    /// previous trailer) and the trailer carries the next part's header.
    pub fn chunks(&self, layout: Layout) -> [Bytes; 3] {
        let header = match layout {
            Layout::Plain => self.part_header().clone(),
            Layout::Advanced => Bytes::new(),
        };
        [
            header,
            self.jpeg().clone(),
            Bytes::from_static(layout.trailer()),
        ]
    }
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

    /// What goes before the JPEG in this frame's WebSocket message, made
    /// by `build` for the first socket that asks and shared with every
    /// later one, as [`part_header`](Self::part_header) is for multipart.
    pub(crate) fn ws_prefix(&self, build: impl FnOnce(&Published) -> Bytes) -> Bytes {
        self.ws_prefix.get_or_init(|| build(self)).clone()
    }

    /// Bytes of this frame's part on the wire in `layout`: part header (if
    /// the layout sends it with the frame), JPEG, and the trailer with the
    /// next boundary (and, advanced, the next part's header block).
    pub fn wire_len(&self, layout: multipart::Layout) -> usize {
        let header = match layout {
            multipart::Layout::Plain => self.header.len(),
            multipart::Layout::Advanced => 0,
        };
        header + self.frame.len() + layout.trailer().len()
    }
}

/// The id of the next hub made ([`Hub::id`]).
static NEXT_HUB_ID: AtomicU32 = AtomicU32::new(1);

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
    /// A number no other hub of this process has: what a WebSocket
    /// message says the frame belongs to, so that one message serves
    /// every socket.
    id: u32,
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
    source_errors: AtomicU64,
    reconnects: AtomicU64,
    /// Every subscriber's record, and the totals of those that left.
    client_list: Mutex<ClientList>,
    /// What the stream's source takes besides frames; see
    /// [`Hub::set_data_input`].
    data_input: Mutex<Option<Arc<dyn DataInput>>>,
    /// The variants being made of this stream; see [`Hub::variant`].
    variants: Mutex<variants::Variants>,
}

/// What a stream's source takes over HTTP besides frames: a chart takes
/// samples (`POST /stream/NAME/data`). The route hands the body to the
/// stream's input, whatever its source is.
pub trait DataInput: Send + Sync + 'static {
    /// Takes one body sent with `content_type`; an `Err` says what is wrong
    /// with it, and nothing of it was taken.
    fn take(&self, content_type: Option<&str>, body: &[u8]) -> Result<(), String>;

    /// The input itself, for its owner to find it again on the hub
    /// ([`Chart::of`](crate::source::chart::Chart::of)).
    fn as_any(&self) -> &dyn Any;
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
                id: NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed),
                tx: watch::Sender::new(None),
                published: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                clients: watch::Sender::new(0),
                push: AtomicBool::new(false),
                rate: Mutex::new(RateMeter::default()),
                last_error: Mutex::new(None),
                source: Mutex::new(SourceState::Idle),
                source_errors: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                client_list: Mutex::new(ClientList::default()),
                data_input: Mutex::new(None),
                variants: Mutex::default(),
            }),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number that WebSocket messages carrying this stream's frames
    /// name it by; unique among the hubs of this process.
    pub(crate) fn id(&self) -> u32 {
        self.inner.id
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
            ws_prefix: OnceLock::new(),
        })));
        Ok(seq)
    }

    /// Checks `data` as a JPEG and publishes it; a rejected frame is counted
    /// and leaves the stream's newest frame as it was.
    pub fn publish_jpeg(&self, data: impl Into<Bytes>) -> Result<u64, PublishError> {
        self.publish_jpeg_within(data, u64::MAX)
    }

    /// Like [`Hub::publish_jpeg`], refusing a JPEG whose header declares
    /// more than `max_pixels` pixels (see [`Frame::from_jpeg_within`]).
    pub fn publish_jpeg_within(
        &self,
        data: impl Into<Bytes>,
        max_pixels: u64,
    ) -> Result<u64, PublishError> {
        match Frame::from_jpeg_within(data, max_pixels) {
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

    /// Records what the stream's source is doing, for `/status`. A
    /// [`SourceState::Failed`] also counts as a source error.
    pub fn set_source_state(&self, state: SourceState) {
        if matches!(state, SourceState::Failed(_)) {
            self.record_source_error();
        }
        *lock(&self.inner.source) = state;
    }

    /// Counts an error of the stream's source (a lost or refused upstream,
    /// a source that failed), for `/metrics`. Frames refused one by one are
    /// counted by [`Hub::reject`] instead.
    pub fn record_source_error(&self) {
        self.inner.source_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error of the source, as [`record_source_error`]
    /// does, and shows `why` as the stream's `last_error` in `/status`.
    ///
    /// [`record_source_error`]: Hub::record_source_error
    pub fn source_error(&self, why: &dyn std::fmt::Display) {
        self.record_source_error();
        *lock(&self.inner.last_error) = Some(why.to_string());
    }

    /// Counts an attempt to reconnect to an upstream after an error (relays).
    pub fn record_reconnect(&self) {
        self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes `input` the stream's data input, replacing any other: what
    /// `POST /stream/NAME/data` feeds.
    pub fn set_data_input(&self, input: Arc<dyn DataInput>) {
        *lock(&self.inner.data_input) = Some(input);
    }

    /// The stream's data input, if its source takes any.
    pub fn data_input(&self) -> Option<Arc<dyn DataInput>> {
        lock(&self.inner.data_input).clone()
    }

    /// The newest frame, if any was published yet. Never waits.
    pub fn latest(&self) -> Option<Arc<Published>> {
        self.inner.tx.borrow().clone()
    }

    /// Starts watching the stream. The subscriber counts as a client until it
    /// is dropped.
    pub fn subscribe(&self) -> Subscriber {
        self.subscribe_from(None)
    }

    /// Like [`Hub::subscribe`], for a client at `addr` (shown by `/status`
    /// and in the access log).
    pub fn subscribe_from(&self, addr: Option<SocketAddr>) -> Subscriber {
        self.inner.clients.send_modify(|n| *n += 1);
        self.subscriber(addr)
    }

    /// Like [`Hub::subscribe_from`], unless the stream already has `limit`
    /// clients (`None`: no limit): then `None`. The count is checked and
    /// taken in one step, so concurrent viewers cannot overshoot it.
    pub fn try_subscribe_from(
        &self,
        addr: Option<SocketAddr>,
        limit: Option<usize>,
    ) -> Option<Subscriber> {
        let took = self.inner.clients.send_if_modified(|n| {
            if limit.is_some_and(|limit| *n >= limit) {
                return false;
            }
            *n += 1;
            true
        });
        took.then(|| self.subscriber(addr))
    }

    /// A subscriber whose place in the client count is already taken.
    fn subscriber(&self, addr: Option<SocketAddr>) -> Subscriber {
        let rx = self.inner.tx.subscribe();
        // The frame current now is the first the subscriber gets: it is not
        // skipped, nor is anything published before it.
        let current = rx.borrow().as_ref().map_or(0, |p| p.seq);
        let record = {
            let mut list = lock(&self.inner.client_list);
            list.next_id += 1;
            let record = Arc::new(ClientRecord::new(
                list.next_id,
                addr,
                current.saturating_sub(1),
            ));
            list.live.insert(record.id, record.clone());
            record
        };
        Subscriber {
            rx,
            fresh: true,
            hub: self.clone(),
            record,
        }
    }

    /// The number of viewers, as a channel that changes when they come and
    /// go. Relays use it to connect upstream only while someone watches.
    pub fn watch_clients(&self) -> watch::Receiver<usize> {
        self.inner.clients.subscribe()
    }

    /// The stream's counters without the list of clients: what
    /// `/metrics` shows. Cheap enough to read often: one lock, no
    /// allocation.
    pub fn counters(&self) -> HubCounters {
        self.read_counters(None)
    }

    fn read_counters(&self, mut list: Option<&mut Vec<ClientStats>>) -> HubCounters {
        let newest = self.inner.tx.borrow().as_ref().map_or(0, |p| p.seq);
        let now = Instant::now();
        let clients = lock(&self.inner.client_list);
        let mut c = HubCounters {
            frames_published: self.inner.published.load(Ordering::Relaxed),
            frames_rejected: self.inner.rejected.load(Ordering::Relaxed),
            frames_sent: clients.gone.frames,
            bytes_sent: clients.gone.bytes,
            frames_skipped: clients.gone.skipped,
            clients: clients.live.len(),
            fps_out: 0.0,
            source_errors: self.inner.source_errors.load(Ordering::Relaxed),
            upstream_reconnects: self.inner.reconnects.load(Ordering::Relaxed),
        };
        for r in clients.live.values() {
            let s = r.stats(newest, now);
            c.frames_sent += s.frames;
            c.bytes_sent += s.bytes;
            c.frames_skipped += s.frames_skipped;
            c.fps_out += s.fps;
            if let Some(list) = list.as_mut() {
                list.push(s);
            }
        }
        c.fps_out = (c.fps_out * 100.0).round() / 100.0;
        c
    }

    /// A snapshot of the stream's counters.
    pub fn stats(&self) -> HubStats {
        let latest = self.latest();
        let mut viewers = Vec::new();
        let c = self.read_counters(Some(&mut viewers));
        HubStats {
            name: self.inner.name.clone(),
            frames_published: c.frames_published,
            frames_rejected: c.frames_rejected,
            fps_in: lock(&self.inner.rate).fps(),
            fps_out: c.fps_out,
            frames_sent: c.frames_sent,
            bytes_sent: c.bytes_sent,
            frames_skipped: c.frames_skipped,
            source_errors: c.source_errors,
            upstream_reconnects: c.upstream_reconnects,
            clients: *self.inner.clients.borrow(),
            viewers,
            newest_frame_age: latest.as_ref().map(|p| p.age()),
            width: latest.as_ref().map(|p| p.frame().width()),
            height: latest.as_ref().map(|p| p.frame().height()),
            bytes: latest.as_ref().map(|p| p.frame().len()),
            last_error: lock(&self.inner.last_error).clone(),
            source: lock(&self.inner.source).clone(),
            variants: self.variants(),
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
    /// Recent sending rate, frames per second summed over the viewers.
    pub fps_out: f64,
    /// Parts sent to viewers since start (re-sends included).
    pub frames_sent: u64,
    /// Bytes of parts sent to viewers since start (part headers, JPEGs and
    /// boundaries; not the response heads).
    pub bytes_sent: u64,
    /// Frames some viewer never got because it was slower than the source
    /// (or capped by `?fps=`), summed over viewers.
    pub frames_skipped: u64,
    /// Errors of the source (see [`Hub::record_source_error`]).
    pub source_errors: u64,
    /// Reconnects to an upstream after an error (relays).
    pub upstream_reconnects: u64,
    /// Viewers connected now.
    pub clients: usize,
    /// Each viewer connected now, oldest first.
    pub viewers: Vec<ClientStats>,
    /// Age of the newest frame; `None` before the first.
    #[serde(rename = "newest_frame_age_ms", serialize_with = "as_millis")]
    pub newest_frame_age: Option<Duration>,
    /// Width of the newest frame.
    pub width: Option<u16>,
    /// Height of the newest frame.
    pub height: Option<u16>,
    /// Size of the newest frame in bytes.
    pub bytes: Option<usize>,
    /// Why the last refused frame was refused, or the source's last
    /// error (a relay's lost upstream).
    pub last_error: Option<String>,
    /// What the source is doing.
    pub source: SourceState,
    /// The variants being made now (`?width=`, `?height=`, `?quality=`),
    /// each with its own viewers; each also counts as one of `clients`.
    pub variants: Vec<VariantStats>,
}

fn as_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// The counters of one stream that `/metrics` exports; see [`HubStats`]
/// for what each means.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct HubCounters {
    pub frames_published: u64,
    pub frames_rejected: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_skipped: u64,
    pub clients: usize,
    pub fps_out: f64,
    pub source_errors: u64,
    pub upstream_reconnects: u64,
}

/// A viewer's handle on a hub: yields the newest frame whenever asked.
pub struct Subscriber {
    rx: watch::Receiver<Option<Arc<Published>>>,
    /// True until the first frame was handed out: the frame that was current
    /// when the viewer arrived is shown at once, not after the next publish.
    fresh: bool,
    hub: Hub,
    record: Arc<ClientRecord>,
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

    /// Waits until [`Subscriber::take_unseen`] has a frame to give, without
    /// taking it: a socket that serves several streams waits on all of
    /// them and takes only the frame of the one that is ready.
    /// Cancel-safe.
    pub async fn wait_unseen(&self) {
        // A clone of the receiver is waited on, so that this one's idea of
        // what was seen stays as it is.
        let mut rx = self.rx.clone();
        loop {
            let unseen = self.fresh || self.rx.has_changed().unwrap_or(false);
            if unseen && self.rx.borrow().is_some() {
                return;
            }
            // The hub, which this subscriber keeps alive, holds the sender.
            let _ = rx.changed().await;
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

    /// What this subscriber was sent, as its writer recorded it.
    pub fn record(&self) -> &ClientRecord {
        &self.record
    }

    /// Frames this subscriber skipped so far (see [`ClientStats`]).
    pub fn frames_skipped(&self) -> u64 {
        let newest = self.rx.borrow().as_ref().map_or(0, |p| p.seq);
        self.record.skipped(newest)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // Its writer is gone, so its counts are final.
        let skipped = self.frames_skipped();
        {
            let mut list = lock(&self.hub.inner.client_list);
            list.live.remove(&self.record.id);
            list.gone.frames += self.record.frames();
            list.gone.bytes += self.record.bytes();
            list.gone.skipped += skipped;
        }
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
    /// What the server of these streams turned away: the set of streams is
    /// what its listeners and its routes share, so the count lives here.
    refusals: Arc<Refusals>,
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

    /// A set of one hub made elsewhere ([`Hub::new`]), whatever its name.
    pub(crate) fn of(hub: Hub) -> Streams {
        let streams = Streams::new();
        streams
            .hubs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hub);
        streams
    }

    /// The refusals of the server that serves these streams.
    pub(crate) fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Removes the stream called `name` and returns its hub. Its viewers
    /// keep the hub until they leave; new requests no longer find it.
    pub fn remove(&self, name: &str) -> Option<Hub> {
        let mut hubs = self.hubs.write().unwrap_or_else(|e| e.into_inner());
        let at = hubs.iter().position(|h| h.name() == name)?;
        Some(hubs.remove(at))
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
mod tests;
