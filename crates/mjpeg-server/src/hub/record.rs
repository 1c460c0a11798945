//! What each viewer was sent: the record its writer keeps, the hub's list
//! of them, and the figures of one viewer that `/status` shows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One viewer, as shown by `/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientStats {
    /// The client's address; `None` when the server did not say (a router
    /// embedded without `ConnectInfo`).
    pub addr: Option<SocketAddr>,
    /// How long it has been connected.
    #[serde(rename = "connected_ms", serialize_with = "as_millis_f64")]
    pub connected: Duration,
    /// Parts sent to it (re-sends included).
    pub frames: u64,
    /// Bytes of parts sent to it.
    pub bytes: u64,
    /// Frames published while it watched that it never got.
    pub frames_skipped: u64,
    /// Recent rate of parts sent to it, per second.
    pub fps: f64,
}

fn as_millis_f64<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Every subscriber's record, and what those that left were sent.
#[derive(Default)]
pub(super) struct ClientList {
    pub(super) next_id: u64,
    pub(super) live: BTreeMap<u64, Arc<ClientRecord>>,
    pub(super) gone: Totals,
}

#[derive(Default)]
pub(super) struct Totals {
    pub(super) frames: u64,
    pub(super) bytes: u64,
    pub(super) skipped: u64,
}

/// What one subscriber was sent, updated by its one writer and read by
/// `/status` and `/metrics`.
///
/// The writer alone stores into these atomics (load, add, store: no locked
/// instruction) and readers only load, so the hot path costs a few plain
/// stores to a cache line no other writer touches.
#[derive(Debug)]
pub struct ClientRecord {
    pub(super) id: u64,
    addr: Option<SocketAddr>,
    since: Instant,
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Frames skipped between parts taken so far.
    skipped: AtomicU64,
    /// Seq of the last frame taken (published before it counts as seen).
    last_seq: AtomicU64,
    /// When the last part was taken, in ns since `since` (0: none yet).
    last_at: AtomicU64,
    /// Smoothed interval between parts, in ns (0: unknown).
    mean_interval: AtomicU64,
    /// The most skipped frames ever reported: a read that races the writer
    /// can come out low, never high, so reporting the maximum keeps the
    /// counter from going back.
    skipped_reported: AtomicU64,
}

impl ClientRecord {
    pub(super) fn new(id: u64, addr: Option<SocketAddr>, last_seq: u64) -> ClientRecord {
        ClientRecord {
            id,
            addr,
            since: Instant::now(),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_seq: AtomicU64::new(last_seq),
            last_at: AtomicU64::new(0),
            mean_interval: AtomicU64::new(0),
            skipped_reported: AtomicU64::new(0),
        }
    }

    /// The client's address, if known.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// How long since the client subscribed.
    pub fn connected(&self) -> Duration {
        self.since.elapsed()
    }

    /// Parts sent so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Bytes of parts sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The writer took the frame `seq` to send it at `now`. Frames between
    /// the last one it took and this one were skipped.
    pub(crate) fn took(&self, seq: u64, now: Instant) {
        let last = self.last_seq.load(Ordering::Relaxed);
        if seq > last {
            // `last_seq` before `skipped`, and readers load them in the other
            // order (see `skipped`): a reader may see the new `last_seq` with
            // the old `skipped` (a low count), never the reverse.
            self.last_seq.store(seq, Ordering::Release);
            if seq > last + 1 {
                let skipped = self.skipped.load(Ordering::Relaxed) + (seq - last - 1);
                self.skipped.store(skipped, Ordering::Release);
            }
        }
        let at = u64::try_from(now.saturating_duration_since(self.since).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let prev = self.last_at.load(Ordering::Relaxed);
        if prev != 0 {
            let dt = at.saturating_sub(prev);
            let mean = self.mean_interval.load(Ordering::Relaxed);
            let mean = if mean == 0 { dt } else { (4 * mean + dt) / 5 };
            self.mean_interval.store(mean.max(1), Ordering::Relaxed);
        }
        self.last_at.store(at, Ordering::Relaxed);
    }

    /// The writer finished sending a part of `bytes` bytes.
    pub(crate) fn wrote(&self, bytes: usize) {
        let frames = self.frames.load(Ordering::Relaxed) + 1;
        self.frames.store(frames, Ordering::Relaxed);
        let total = self.bytes.load(Ordering::Relaxed) + bytes as u64;
        self.bytes.store(total, Ordering::Relaxed);
    }

    /// Frames skipped, with `newest` the seq of the stream's newest frame:
    /// those skipped between parts taken, and those published since the
    /// last part taken that a newer frame replaced before this client could
    /// take them (a stalled client keeps skipping while it hangs).
    pub(super) fn skipped(&self, newest: u64) -> u64 {
        let skipped = self.skipped.load(Ordering::Acquire);
        let last = self.last_seq.load(Ordering::Acquire);
        let now = skipped + newest.saturating_sub(last).saturating_sub(1);
        self.skipped_reported
            .fetch_max(now, Ordering::Relaxed)
            .max(now)
    }

    fn fps(&self, now: Instant) -> f64 {
        let mean = self.mean_interval.load(Ordering::Relaxed);
        let last = self.last_at.load(Ordering::Relaxed);
        if mean == 0 || last == 0 {
            return 0.0;
        }
        let since_last = u64::try_from(now.saturating_duration_since(self.since).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_sub(last);
        // A client that stopped getting frames shows a falling rate.
        let interval = mean.max(since_last) as f64 / 1e9;
        ((1.0 / interval) * 100.0).round() / 100.0
    }

    pub(super) fn stats(&self, newest: u64, now: Instant) -> ClientStats {
        ClientStats {
            addr: self.addr,
            connected: now.saturating_duration_since(self.since),
            frames: self.frames(),
            bytes: self.bytes(),
            frames_skipped: self.skipped(newest),
            fps: self.fps(now),
        }
    }
}
