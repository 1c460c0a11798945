//! One viewer of a stream: which frame it gets next, and how it is written.
//!
//! [`Viewer::next_part`] decides what a viewer gets: the newest frame when
//! it is ready for one (never a queue of old ones), at most `?fps=N` times a
//! second, and the same frame again after a second of silence (which keeps
//! proxies from closing a quiet connection, and is what shows the newest
//! frame of an idle source in Chrome to a viewer of plain parts). How its
//! parts are laid out is its [`Layout`]: browsers get the next part's
//! headers in advance (see [`crate::multipart`]).
//!
//! Two writers use it. Inside an axum app, the stream is an ordinary
//! response body ([`crate::http`]). The standalone server takes a shorter
//! path for the connections that are nothing but a stream, which are almost
//! all of them: [`write_stream`] writes the response straight to the socket
//! with vectored writes of the shared buffers. That path holds no HTTP
//! library state per viewer (hyper keeps a 16 KiB read buffer and an 8 KiB
//! write buffer for every connection, which is most of the memory of ten
//! thousand viewers) and skips a layer of polling per frame.
//!
//! Both writers account for what they send in the same place: the
//! subscriber's [`ClientRecord`](crate::hub::ClientRecord) (frames, bytes,
//! skipped frames, rate), which `/status` and `/metrics` read. When a viewer
//! ends, one access-log line (`tracing` target `mjpeg_server::access`, level
//! info) gives its address, stream, duration, frames, bytes and skipped
//! frames.

use bytes::Bytes;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::hub::{Published, Subscriber};
use crate::multipart::Layout;

/// What one viewer has been sent, and what it may get next.
pub struct Viewer {
    sub: Subscriber,
    min_interval: Option<Duration>,
    resend_after: Option<Duration>,
    last_sent: Option<Instant>,
    /// Once a viewer's input ended (see [`Viewer::input_ended`]): how many
    /// of [`PROBE_GAPS`] have passed, and when the next re-send is due.
    probe_step: Option<usize>,
    probe_at: Instant,
    /// The part last returned is such a re-send.
    probing: bool,
    shutdown: CancellationToken,
    layout: Layout,
}

/// The pauses between the re-sends that find out whether a viewer whose
/// input ended is still there: each gives the reset that a closed socket
/// answers with one more round trip to come back (a millisecond on a LAN,
/// a second on the slowest links), and the write after it fails.
const PROBE_GAPS: [Duration; 5] = [
    // Over loopback the reset is back before the first write returns.
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
];

impl Viewer {
    /// A viewer of `sub`'s stream that gets at most one frame per
    /// `min_interval`, the newest frame again after `resend_after` without
    /// a new one, and nothing more once `shutdown` is cancelled. Its parts
    /// are [`Layout::Plain`] unless [`Viewer::with_layout`] says otherwise.
    pub fn new(
        sub: Subscriber,
        min_interval: Option<Duration>,
        resend_after: Option<Duration>,
        shutdown: CancellationToken,
    ) -> Viewer {
        Viewer {
            sub,
            min_interval,
            resend_after,
            last_sent: None,
            probe_step: None,
            probe_at: Instant::now(),
            probing: false,
            shutdown,
            layout: Layout::Plain,
        }
    }

    /// The viewer sent the end of its input. That is how a client that
    /// closed its socket looks, and also one that only shut down its
    /// sending side after the request (HTTP/1.1 allows it, and `nc -N` and
    /// some embedded clients do it): only a write tells them apart, since a
    /// closed socket answers data with a reset, which fails the write after
    /// it. So unless new frames go out anyway, the newest frame goes out
    /// again now and after each of `PROBE_GAPS`, not counted in the
    /// viewer's frames and bytes: a viewer still there gets the frame it
    /// has a few more times, and one that is gone is noticed within a round
    /// trip even when the source is idle.
    pub fn input_ended(&mut self) {
        self.probe_step = Some(0);
        self.probe_at = Instant::now();
    }

    /// The same viewer, getting its parts in `layout` (see
    /// [`crate::http`] for who gets which).
    pub fn with_layout(mut self, layout: Layout) -> Viewer {
        self.layout = layout;
        self
    }

    /// How this viewer's parts are laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The shared buffers of `part` in this viewer's layout.
    pub fn chunks(&self, part: &Published) -> [Bytes; 3] {
        part.chunks(self.layout)
    }

    /// Waits for the next frame this viewer should get: a newer frame, or
    /// the same one again after `resend_after` of silence. `None` ends the
    /// stream (shutdown).
    ///
    /// The re-send is what shows a plain-layout viewer in Chrome the newest
    /// frame of an idle source. A viewer with advanced headers does not need
    /// it for that: Chromium shows each of its frames at once (measured in
    /// `tests/browser.rs`: 300 ms after a frame is published it is on
    /// screen, a second before the re-send), and sending the frame twice
    /// cannot show it any sooner, so there is no "send the last frame of a
    /// burst twice" either. It gets the re-send all the same, because the
    /// re-send is also what keeps a proxy from timing out a quiet
    /// connection.
    pub async fn next_part(&mut self) -> Option<Arc<Published>> {
        if let (Some(interval), Some(last)) = (self.min_interval, self.last_sent) {
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = sleep_until(last + interval) => {}
            }
        }
        self.probing = false;
        let part = loop {
            if let Some(p) = self.sub.take_unseen() {
                break p;
            }
            // Silence is counted from the later of the last send and the
            // newest frame's publication, so that a source publishing about
            // as often as `resend_after` is not doubled by re-sends.
            let resend_at = match (self.resend_after, self.last_sent) {
                (Some(after), Some(last)) => {
                    let newest = self.sub.latest().map(|p| Instant::now() - p.age());
                    Some(newest.map_or(last, |n| n.max(last)) + after)
                }
                _ => None,
            };
            tokio::select! {
                // A new frame wins over a re-send that falls due at the same
                // moment.
                biased;
                _ = self.shutdown.cancelled() => return None,
                p = self.sub.next() => break p,
                _ = sleep_until(resend_at.unwrap_or_else(Instant::now)), if resend_at.is_some() => {
                    match self.sub.latest() {
                        Some(p) => break p,
                        None => continue,
                    }
                }
                _ = sleep_until(self.probe_at), if self.probe_step.is_some() => {
                    self.next_probe();
                    match self.sub.latest() {
                        // Not counted as a frame sent: a viewer that is
                        // gone never reads it.
                        Some(p) => {
                            self.probing = true;
                            return Some(p);
                        }
                        None => continue,
                    }
                }
            }
        };
        // Any write tells as much as a re-send would.
        self.next_probe();
        let now = Instant::now();
        self.last_sent = Some(now);
        self.sub.record().took(part.seq(), now.into_std());
        Some(part)
    }

    /// Schedules the re-send after the next of [`PROBE_GAPS`], if any are
    /// left.
    fn next_probe(&mut self) {
        if let Some(step) = self.probe_step {
            self.probe_step = PROBE_GAPS.get(step).map(|gap| {
                self.probe_at = Instant::now() + *gap;
                step + 1
            });
        }
    }

    /// Records that `part` (from [`Viewer::next_part`]) has been written
    /// whole, for `/status` and `/metrics`.
    pub fn sent(&self, part: &Published) {
        if !self.probing {
            self.sub.record().wrote(part.wire_len(self.layout));
        }
    }
}

impl Drop for Viewer {
    /// The access log: one line per viewer, when it ends.
    fn drop(&mut self) {
        let record = self.sub.record();
        tracing::info!(
            target: "mjpeg_server::access",
            client = %Peer(record.addr()),
            stream = self.sub.hub().name(),
            duration_ms = u64::try_from(record.connected().as_millis()).unwrap_or(u64::MAX),
            frames = record.frames(),
            bytes = record.bytes(),
            skipped = self.sub.frames_skipped(),
            "stream client left"
        );
    }
}

/// A client address for the log, `-` when unknown.
struct Peer(Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}

/// Writes a whole stream response for `viewer` to `io` until the viewer
/// leaves, the connection fails or times out, or shutdown.
///
/// Each part goes out as one vectored write of three shared buffers, in the
/// viewer's [`Layout`]; no frame byte is copied. The caller's socket sets the pace: the next frame
/// is chosen only once the last one was written, so a slow viewer skips
/// frames. Write timeouts come from the socket wrapper.
///
/// While waiting for a frame it also reads the socket, so that a viewer
/// who hangs up is gone at once, even from a stream whose source is idle
/// (it would otherwise only be noticed at the next write). The end of a
/// viewer's input alone does not end the stream, since a client may only
/// have shut down its sending side: see [`Viewer::input_ended`].
pub async fn write_stream<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    mut viewer: Viewer,
) -> io::Result<()> {
    let head = [
        crate::stream_request::direct_head(),
        Bytes::from_static(viewer.layout().preamble()),
        Bytes::new(),
    ];
    write_all_vectored(io, &head).await?;
    let mut scratch = [0u8; 64];
    let mut reading = true;
    loop {
        let part = tokio::select! {
            part = viewer.next_part() => match part {
                Some(part) => part,
                None => break,
            },
            // Anything a viewer sends after its request is ignored.
            read = io.read(&mut scratch), if reading => match read {
                Ok(0) => {
                    reading = false;
                    viewer.input_ended();
                    continue;
                }
                Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        write_all_vectored(io, &viewer.chunks(&part)).await?;
        viewer.sent(&part);
    }
    io.flush().await
}

/// Writes every byte of `bufs`, in as few system calls as the socket
/// allows, without allocating. Empty buffers are allowed.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    bufs: &[Bytes; 3],
) -> io::Result<()> {
    let mut index = 0; // first buffer not fully written
    let mut offset = 0; // bytes of it already written
    while index < bufs.len() {
        let mut slices = [IoSlice::new(&[]); 3];
        for (k, buf) in bufs[index..].iter().enumerate() {
            let start = if k == 0 { offset } else { 0 };
            slices[k] = IoSlice::new(&buf[start..]);
        }
        let mut n = io.write_vectored(&slices[..bufs.len() - index]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while index < bufs.len() && n >= bufs[index].len() - offset {
            n -= bufs[index].len() - offset;
            index += 1;
            offset = 0;
        }
        offset += n;
    }
    Ok(())
}
