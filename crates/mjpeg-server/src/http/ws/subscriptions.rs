//! The streams one socket watches, and which of them has a frame due.

use futures_util::future::select_all;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

use super::protocol::Key;
use crate::hub::{Published, Subscriber};

/// One stream watched over the socket: a viewer of it like any other,
/// counted in `/status`.
pub(super) struct Subscription {
    /// The stream as the page named it, and the variant.
    pub(super) key: Key,
    pub(super) sub: Subscriber,
    /// Least time between frames (`fps`).
    pub(super) min_interval: Option<Duration>,
    last_sent: Option<Instant>,
}

/// Every subscription of a socket.
#[derive(Default)]
pub(super) struct Subscriptions {
    subs: Vec<Subscription>,
    /// Which subscription is polled first next time, so that a stream
    /// that always has a new frame cannot starve the others when the
    /// socket is the bottleneck.
    turn: usize,
}

impl Subscriptions {
    pub(super) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Adds `sub` under `key`, replacing the subscription of that key if
    /// any (a page that subscribes again changes its rate).
    pub(super) fn insert(&mut self, key: Key, sub: Subscriber, min_interval: Option<Duration>) {
        self.remove(&key);
        self.subs.push(Subscription {
            key,
            sub,
            min_interval,
            last_sent: None,
        });
    }

    /// Ends the subscription of `key`; whether there was one.
    pub(super) fn remove(&mut self, key: &Key) -> bool {
        let before = self.subs.len();
        self.subs.retain(|s| s.key != *key);
        self.subs.len() != before
    }

    /// Whether `key` is subscribed.
    pub(super) fn contains(&self, key: &Key) -> bool {
        self.subs.iter().any(|s| s.key == *key)
    }

    /// Waits until some subscription has a frame it should get (a new
    /// one, no sooner than its `fps` allows), marks it taken, and returns
    /// the subscription with it. With no subscriptions it waits forever.
    ///
    /// Cancel-safe: a frame is only taken by the future that returns it.
    pub(super) async fn next_due(&mut self) -> (&Subscription, Arc<Published>) {
        if self.subs.is_empty() {
            return std::future::pending().await;
        }
        let n = self.subs.len();
        let (at, p) = loop {
            // A frame that is already there is taken without building a
            // wait for every subscription (most pages watch one stream).
            if let Some(ready) = self.ready() {
                break ready;
            }
            if n == 1 {
                self.subs[0].due().await;
                continue;
            }
            let start = self.turn % n;
            let (first, second) = self.subs.split_at_mut(start);
            let waits = second
                .iter_mut()
                .chain(first.iter_mut())
                .map(|s| Box::pin(s.due()));
            let ((), i, _) = select_all(waits).await;
            let at = (start + i) % n;
            self.turn = at + 1;
            // The wait that won saw a frame, and nothing took it since; but
            // should it be gone, this waits again rather than fail.
            if let Some(p) = self.subs[at].sub.take_unseen() {
                break (at, p);
            }
        };
        let s = &mut self.subs[at];
        let now = Instant::now();
        s.last_sent = Some(now);
        s.sub.record().took(p.seq(), now.into_std());
        (s, p)
    }

    /// The first subscription, in turn, that may take a frame now and has
    /// one, with the frame, taken.
    fn ready(&mut self) -> Option<(usize, Arc<Published>)> {
        let n = self.subs.len();
        let now = Instant::now();
        let turn = self.turn;
        (0..n).map(|k| (turn + k) % n).find_map(|at| {
            let s = &mut self.subs[at];
            let allowed = match (s.min_interval, s.last_sent) {
                (Some(interval), Some(last)) => now >= last + interval,
                _ => true,
            };
            if !allowed {
                return None;
            }
            let p = s.sub.take_unseen()?;
            self.turn = at + 1;
            Some((at, p))
        })
    }
}

impl Subscription {
    /// Waits until this subscription may get a frame and one is there,
    /// without taking it.
    async fn due(&mut self) {
        if let (Some(interval), Some(last)) = (self.min_interval, self.last_sent) {
            sleep_until(last + interval).await;
        }
        self.sub.wait_unseen().await;
    }
}

/// Counts a socket's messages, to close one that sends more than a page
/// ever needs to.
pub(super) struct FloodMeter {
    window: Instant,
    count: u32,
}

impl FloodMeter {
    pub(super) fn new() -> FloodMeter {
        FloodMeter {
            window: Instant::now(),
            count: 0,
        }
    }

    /// Counts one message; whether it is within `per_second` in the
    /// current second.
    pub(super) fn allow(&mut self, per_second: u32) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= per_second
    }
}
