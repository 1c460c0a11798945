//! What the server turns away, and why: one counter per reason for
//! `/metrics`, and a warning in the log, at most one per reason every few
//! seconds.
//!
//! A refusal is a decision an operator may want to change (a limit too
//! low, a proxy not trusted, a client without its password): each one is
//! counted, and logged at WARN with the client and what was refused. A
//! client that is refused a thousand times a second (a reconnect loop, a
//! scan) must not flood the log, so after a warning the same reason is
//! only counted for [`WARN_EVERY`], and the next warning says how many
//! were held back.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a connection or a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `503`: the server has as many connections as it may.
    Connections,
    /// `503`: one client address has as many connections as it may.
    PerAddress,
    /// `503`: a stream has as many viewers as it may.
    StreamFull,
    /// `503`: pushes have created as many streams as they may.
    CreatedStreams,
    /// `503`: a stream has as many variants as it may.
    TooManyVariants,
    /// `401`: no credentials where they are needed.
    NoCredentials,
    /// `401`: credentials that match no user or token.
    WrongCredentials,
    /// `403`: valid credentials without the permission.
    Forbidden,
    /// `413`: a frame over the size limit.
    FrameTooLarge,
    /// `413`: an image that declares more pixels than allowed.
    TooManyPixels,
    /// `408`: a request head not sent in time.
    HeaderTimeout,
    /// `408`: a push that sent nothing for too long.
    PushIdle,
    /// `431`: a request head over the size limit.
    HeaderTooLarge,
}

impl Reason {
    /// Every reason, in the order of the counters.
    pub(crate) const ALL: [Reason; 13] = [
        Reason::Connections,
        Reason::PerAddress,
        Reason::StreamFull,
        Reason::CreatedStreams,
        Reason::TooManyVariants,
        Reason::NoCredentials,
        Reason::WrongCredentials,
        Reason::Forbidden,
        Reason::FrameTooLarge,
        Reason::TooManyPixels,
        Reason::HeaderTimeout,
        Reason::PushIdle,
        Reason::HeaderTooLarge,
    ];

    /// The `reason` label of `mjpeg_refusals_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::Connections => "connections",
            Reason::PerAddress => "connections_per_address",
            Reason::StreamFull => "clients_per_stream",
            Reason::CreatedStreams => "created_streams",
            Reason::TooManyVariants => "variants_per_stream",
            Reason::NoCredentials => "no_credentials",
            Reason::WrongCredentials => "wrong_credentials",
            Reason::Forbidden => "forbidden",
            Reason::FrameTooLarge => "frame_too_large",
            Reason::TooManyPixels => "too_many_pixels",
            Reason::HeaderTimeout => "header_timeout",
            Reason::PushIdle => "push_idle",
            Reason::HeaderTooLarge => "header_too_large",
        }
    }

    /// The HTTP status it gets.
    pub(crate) fn status(self) -> u16 {
        match self {
            Reason::Connections
            | Reason::PerAddress
            | Reason::StreamFull
            | Reason::CreatedStreams
            | Reason::TooManyVariants => 503,
            Reason::NoCredentials | Reason::WrongCredentials => 401,
            Reason::Forbidden => 403,
            Reason::FrameTooLarge | Reason::TooManyPixels => 413,
            Reason::HeaderTimeout | Reason::PushIdle => 408,
            Reason::HeaderTooLarge => 431,
        }
    }

    fn index(self) -> usize {
        Reason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every reason is in ALL")
    }
}

/// At most one warning per reason this often; the rest are counted.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The refusals of one server (shared by its listeners and its routes).
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    counts: [AtomicU64; Reason::ALL.len()],
    /// Per reason: when it was last logged, and how many since.
    logged: Mutex<[Option<(Instant, u64)>; Reason::ALL.len()]>,
}

impl Refusals {
    /// Counts a refusal for `reason` of `client` (if known) and logs it
    /// unless one of the same reason was logged less than [`WARN_EVERY`]
    /// ago. `what` says what was refused, in the client's terms.
    pub(crate) fn note(&self, reason: Reason, client: Option<SocketAddr>, what: &dyn fmt::Display) {
        let i = reason.index();
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let held = {
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            match &mut logged[i] {
                Some((at, held)) if now.duration_since(*at) < WARN_EVERY => {
                    *held += 1;
                    return;
                }
                slot => {
                    let held = slot.map_or(0, |(_, held)| held);
                    *slot = Some((now, 0));
                    held
                }
            }
        };
        let client = client.map_or_else(|| "-".to_string(), |c| c.to_string());
        let status = reason.status();
        let reason = reason.label();
        match held {
            0 => tracing::warn!(%client, status, %reason, "refused: {what}"),
            n => tracing::warn!(
                %client,
                status,
                %reason,
                "refused: {what} (and {n} more refusals of this kind since the last warning)"
            ),
        }
    }

    /// How many refusals of each reason so far.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|r| (*r, self.counts[r.index()].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let refusals = Refusals::default();
        for (n, reason) in Reason::ALL.iter().enumerate() {
            for _ in 0..=n {
                refusals.note(*reason, None, &"test");
            }
        }
        let counts: Vec<(Reason, u64)> = refusals.counts().collect();
        for (n, (reason, count)) in counts.iter().enumerate() {
            assert_eq!(*reason, Reason::ALL[n]);
            assert_eq!(*count, n as u64 + 1, "{reason:?}");
        }
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }

    #[test]
    fn a_burst_is_logged_once_and_counted_whole() {
        let refusals = Refusals::default();
        for _ in 0..1000 {
            refusals.note(Reason::PerAddress, None, &"burst");
        }
        let logged = refusals.logged.lock().unwrap();
        // The first was logged; the other 999 wait for the next warning.
        assert_eq!(
            logged[Reason::PerAddress.index()].map(|(_, held)| held),
            Some(999)
        );
        drop(logged);
        let count = refusals
            .counts()
            .find(|(r, _)| *r == Reason::PerAddress)
            .map(|(_, n)| n);
        assert_eq!(count, Some(1000));
    }
}
