//! One viewer of a stream: which frame it gets next, and how it is written.
//!
//! [`Viewer::next_part`] decides what a viewer gets: the newest frame when
//! it is ready for one (never a queue of old ones), at most `?fps=N` times a
//! second, and the same frame again after a second of silence so that
//! browsers show the newest frame of an idle source.
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

use crate::http::{action_index, parse_fps, Params};
use crate::hub::{Hub, Published, Streams, Subscriber};
use crate::multipart;

/// What one viewer has been sent, and what it may get next.
pub struct Viewer {
    sub: Subscriber,
    min_interval: Option<Duration>,
    resend_after: Option<Duration>,
    last_sent: Option<Instant>,
    shutdown: CancellationToken,
}

impl Viewer {
    /// A viewer of `sub`'s stream that gets at most one frame per
    /// `min_interval`, the newest frame again after `resend_after` without
    /// a new one, and nothing more once `shutdown` is cancelled.
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
            shutdown,
        }
    }

    /// Waits for the next frame this viewer should get: a newer frame, or
    /// the same one again after `resend_after` of silence. `None` ends the
    /// stream (shutdown).
    pub async fn next_part(&mut self) -> Option<Arc<Published>> {
        if let (Some(interval), Some(last)) = (self.min_interval, self.last_sent) {
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = sleep_until(last + interval) => {}
            }
        }
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
            }
        };
        let now = Instant::now();
        self.last_sent = Some(now);
        self.sub.record().took(part.seq(), now.into_std());
        Some(part)
    }

    /// Records that `part` (from [`Viewer::next_part`]) has been written
    /// whole, for `/status` and `/metrics`.
    pub fn sent(&self, part: &Published) {
        self.sub.record().wrote(part.wire_len());
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

impl Published {
    /// The three shared buffers of this frame's part: header, JPEG, and the
    /// trailer with the next boundary.
    pub fn chunks(&self) -> [Bytes; 3] {
        [
            self.part_header().clone(),
            self.jpeg().clone(),
            Bytes::from_static(multipart::TRAILER),
        ]
    }
}

/// The response head of a stream written by [`write_stream`]: the same
/// status line and headers as the axum route sends (see
/// [`crate::http`]), and the opening boundary.
const STREAM_HEAD: &[u8] = b"HTTP/1.0 200 OK\r\n\
content-type: multipart/x-mixed-replace; boundary=mjpegserverboundary\r\n\
connection: close\r\n\
x-accel-buffering: no\r\n\
cache-control: no-store, no-cache, must-revalidate, max-age=0\r\n\
pragma: no-cache\r\n\
expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
\r\n\
--mjpegserverboundary\r\n";

/// If `GET path?query` asks for a stream that exists, with a valid `?fps`,
/// the stream and its frame interval. Anything else (another URL, an
/// unknown stream, a bad parameter) is `None` and is answered by the HTTP
/// routes, which say what is wrong.
pub(crate) fn stream_request(
    streams: &Streams,
    path: &str,
    query: Option<&str>,
) -> Option<(Hub, Option<Duration>)> {
    let params: Params = match query {
        Some(q) => serde_urlencoded::from_str(q).ok()?,
        None => Params::default(),
    };
    let hub = match path {
        "/stream" => streams.nth(0)?,
        "/" => streams.nth(action_index(params.action.as_deref()?, "stream")??)?,
        _ => streams.get(path.strip_prefix("/stream/")?)?,
    };
    let min_interval = parse_fps(&params).ok()?;
    Some((hub, min_interval))
}

/// Writes a whole stream response for `viewer` to `io` until the viewer
/// leaves, the connection fails or times out, or shutdown.
///
/// Each part goes out as one vectored write of three shared buffers; no
/// frame byte is copied. The caller's socket sets the pace: the next frame
/// is chosen only once the last one was written, so a slow viewer skips
/// frames. Write timeouts come from the socket wrapper.
///
/// While waiting for a frame it also reads the socket, so that a viewer who
/// hangs up is gone at once, even from a stream whose source is idle (it
/// would otherwise only be noticed at the next write).
pub async fn write_stream<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    mut viewer: Viewer,
) -> io::Result<()> {
    io.write_all(STREAM_HEAD).await?;
    let mut scratch = [0u8; 64];
    loop {
        let part = tokio::select! {
            part = viewer.next_part() => match part {
                Some(part) => part,
                None => break,
            },
            // Anything a viewer sends after its request is ignored; the end
            // of its input means it left.
            read = io.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        write_all_vectored(io, &part.chunks()).await?;
        viewer.sent(&part);
    }
    io.flush().await
}

/// Writes every byte of `bufs`, in as few system calls as the socket
/// allows, without allocating.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
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

/// The fuzz target's checks (`fuzz/fuzz_targets/request.rs`): an arbitrary
/// request head, parsed as the server parses it, never panics, and a stream
/// it resolves to is one that exists.
#[doc(hidden)]
pub fn fuzz_request(data: &[u8]) {
    let streams = Streams::new();
    for name in ["cam", "b-2"] {
        streams.add(name).expect("valid names");
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if let Ok(httparse::Status::Complete(_)) = req.parse(data) {
        if let Some(target) = req.path {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            if let Some((hub, interval)) = stream_request(&streams, path, query) {
                assert!(streams.get(hub.name()).is_some());
                assert!(interval.is_none_or(|i| i > Duration::ZERO));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_recognised_and_nothing_else() {
        let streams = Streams::new();
        streams.add("a").unwrap();
        streams.add("b").unwrap();
        let name = |path: &str, query: Option<&str>| {
            stream_request(&streams, path, query).map(|(h, i)| (h.name().to_string(), i))
        };
        assert_eq!(name("/stream", None), Some(("a".into(), None)));
        assert_eq!(name("/stream/b", None), Some(("b".into(), None)));
        assert_eq!(
            name("/stream/b", Some("fps=4")),
            Some(("b".into(), Some(Duration::from_millis(250))))
        );
        assert_eq!(name("/", Some("action=stream")), Some(("a".into(), None)));
        assert_eq!(name("/", Some("action=stream_1")), Some(("b".into(), None)));
        for (path, query) in [
            ("/", None),
            ("/", Some("action=snapshot")),
            ("/", Some("action=stream_9")),
            ("/stream/c", None),
            ("/stream/a", Some("fps=0")),
            ("/stream/a/data", None),
            ("/snapshot/a", None),
            ("/status", None),
        ] {
            assert!(name(path, query).is_none(), "{path} {query:?}");
        }
    }

    #[test]
    fn the_direct_head_matches_the_wire_format() {
        let head = std::str::from_utf8(STREAM_HEAD).unwrap();
        assert!(head.contains(&format!("content-type: {}\r\n", multipart::CONTENT_TYPE)));
        assert!(head.ends_with(std::str::from_utf8(multipart::PREAMBLE).unwrap()));
    }

    #[tokio::test]
    async fn vectored_writes_survive_short_writes() {
        // A writer that takes at most 7 bytes per call.
        struct Trickle(Vec<u8>);
        impl AsyncWrite for Trickle {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                let n = buf.len().min(7);
                self.0.extend_from_slice(&buf[..n]);
                std::task::Poll::Ready(Ok(n))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let bufs = [
            Bytes::from_static(b"header\r\n"),
            Bytes::from(vec![0xAB; 1000]),
            Bytes::from_static(b"\r\n--b\r\n"),
        ];
        let mut w = Trickle(Vec::new());
        write_all_vectored(&mut w, &bufs).await.unwrap();
        assert_eq!(w.0, bufs.concat());
    }
}
