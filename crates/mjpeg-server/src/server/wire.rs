//! The bytes of a connection before and after HTTP: reading the request
//! head, handing hyper a socket with those bytes put back in front, and
//! closing so that the last answer reaches the client.

use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// How reading a request head ended.
#[derive(Debug, PartialEq)]
pub(super) enum Head {
    /// The head is whole (an empty line seen).
    Complete,
    /// More than the limit came without the end of the head.
    TooLarge,
    /// The client closed the connection first.
    Closed,
}

/// Reads from `io` until `buf` holds a whole request head, or more than
/// `limit` bytes, or the client stops.
///
/// A head ends at its first empty line, CRLF or bare LF: RFC 9112 §2.2 lets
/// a recipient accept a bare LF as a line end, as httparse (and so hyper
/// and the direct path) does, so a client that sends one gets its answer
/// instead of waiting for the header timeout.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    limit: usize,
) -> io::Result<Head> {
    // Where the search for the end goes on, so that a head sent a byte at a
    // time is scanned once, not once per byte.
    let mut from = 0;
    loop {
        if let Some(end) = end_of_head(buf, &mut from) {
            return Ok(if end > limit {
                Head::TooLarge
            } else {
                Head::Complete
            });
        }
        if buf.len() > limit {
            return Ok(Head::TooLarge);
        }
        if io.read_buf(buf).await? == 0 {
            return Ok(Head::Closed);
        }
    }
}

/// The length of the head in `buf` through its empty line, if it is there;
/// `from` is where to look on (kept by the caller between reads).
fn end_of_head(buf: &[u8], from: &mut usize) -> Option<usize> {
    while let Some(rel) = memchr::memchr(b'\n', &buf[*from..]) {
        let nl = *from + rel;
        match &buf[nl + 1..] {
            [b'\n', ..] => return Some(nl + 2),
            [b'\r', b'\n', ..] => return Some(nl + 3),
            // The next line may yet turn out empty: look here again.
            [] | [b'\r'] => return None,
            _ => *from = nl + 1,
        }
    }
    *from = buf.len();
    None
}

/// Most a closing connection reads and throws away of what the client still
/// sends, for how long in all, and how long it waits for more once the
/// client sends nothing (see [`Prefixed`]'s `poll_shutdown`). A client still
/// uploading sends without pause; one that is not (an idle keep-alive
/// connection at shutdown) must not delay the close for long.
const LINGER_BYTES: usize = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_IDLE: Duration = Duration::from_millis(300);

/// A connection whose first bytes were already read: reads return them
/// before reading the socket again. (hyper-util has such a type but does
/// not export it.)
///
/// Shutting it down closes the way nginx's lingering close does: send
/// everything and half-close, then read and discard what the client still
/// sends, within [`LINGER_BYTES`], [`LINGER_TIME`] and [`LINGER_IDLE`],
/// until it closes too.
/// Closing a socket with unread data makes the kernel reset the connection,
/// and a client still uploading (a frame refused with `413`, a push without
/// credentials refused with `401`) would then fail to send and never read
/// the answer that told it why.
pub(super) struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
    closing: Closing,
}

enum Closing {
    Open,
    Draining {
        /// Fires at the earlier of the end of [`LINGER_TIME`] and
        /// [`LINGER_IDLE`] after the last bytes read.
        timer: Pin<Box<tokio::time::Sleep>>,
        end: tokio::time::Instant,
        left: usize,
    },
    Closed,
}

impl<T> Prefixed<T> {
    /// `inner`, with `prefix` read back first.
    pub(super) fn new(prefix: Bytes, inner: T) -> Prefixed<T> {
        Prefixed {
            prefix,
            inner,
            closing: Closing::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    let now = tokio::time::Instant::now();
                    this.closing = Closing::Draining {
                        timer: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
                        end: now + LINGER_TIME,
                        left: LINGER_BYTES,
                    };
                }
                Closing::Draining { timer, end, left } => {
                    if timer.as_mut().poll(cx).is_ready() || *left == 0 {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            let idle_end = tokio::time::Instant::now() + LINGER_IDLE;
                            timer.as_mut().reset(idle_end.min(*end));
                        }
                        // The client closed too (or the connection failed):
                        // nothing is left to reset it over.
                        _ => this.closing = Closing::Closed,
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Writes a short plain-text response (`status` line, `extra` header lines,
/// `body`) and closes as [`Prefixed`] does, giving up after a second in all:
/// a client that is being refused gets no more of the server's time. For
/// refusals made before any HTTP library has seen the connection.
pub(super) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    status: &str,
    extra: &str,
    body: &str,
) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = Prefixed::new(Bytes::new(), socket);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_reads_the_prefix_first() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut p = Prefixed::new(Bytes::from_static(b"hello"), a);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn shutting_down_reads_what_the_client_still_sends() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut p = Prefixed::new(Bytes::new(), a);
        let client = tokio::spawn(async move {
            // Far more than the pipe holds: the writes only finish if the
            // closing side keeps reading.
            for _ in 0..100 {
                b.write_all(&[7u8; 1000]).await.unwrap();
            }
            let mut answer = Vec::new();
            b.read_to_end(&mut answer).await.unwrap();
            answer
        });
        p.write_all(b"413").await.unwrap();
        p.shutdown().await.unwrap();
        drop(p);
        assert_eq!(client.await.unwrap(), b"413");
    }

    #[tokio::test]
    async fn request_heads_are_read_whole_and_bounded() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nextra")
            .await
            .unwrap();
        let mut r = a;
        let mut buf = BytesMut::new();
        assert_eq!(
            read_head(&mut r, &mut buf, 1024).await.unwrap(),
            Head::Complete
        );
        assert!(buf.starts_with(b"GET / HTTP/1.1\r\n"));
        // A whole head over the limit, and one that never ends.
        let mut buf = BytesMut::new();
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            read_head(&mut r, &mut buf, 20).await.unwrap(),
            Head::TooLarge
        );
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let junk = vec![b'x'; 3 * 16384];
        b.write_all(&junk).await.unwrap();
        let mut r = a;
        let mut buf = BytesMut::new();
        assert_eq!(
            read_head(&mut r, &mut buf, 16384).await.unwrap(),
            Head::TooLarge
        );
        assert!(buf.len() > 16384 && buf.len() < 2 * 16384 + 8192);
        // Closed half-way.
        let mut r: &[u8] = b"GET / HT";
        let mut buf = BytesMut::new();
        assert_eq!(
            read_head(&mut r, &mut buf, 1024).await.unwrap(),
            Head::Closed
        );
    }

    #[test]
    fn a_head_ends_at_its_first_empty_line_whatever_the_line_ends() {
        let end = |s: &[u8]| end_of_head(s, &mut 0);
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(end(b"GET / HTTP/1.1\nA: b\n\nbody"), Some(21));
        assert_eq!(end(b"GET / HTTP/1.1\nA: b\n\r\n"), Some(22));
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n\r"), None);
        // The HTTP/2 preface ends where hyper expects the rest of it.
        assert_eq!(end(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(18));
        // Byte by byte, the search goes on where it stopped.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut from = 0;
        for n in 1..head.len() {
            assert_eq!(end_of_head(&head[..n], &mut from), None, "{n}");
        }
        assert_eq!(end_of_head(head, &mut from), Some(head.len()));
    }
}
