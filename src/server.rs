//! The server: accepts connections, limits how many, serves each with
//! hyper, and shuts down gracefully.
//!
//! Shaped like tokio's mini-redis: a [`Server`] owns the listening socket and
//! a semaphore that caps open connections; each accepted connection runs in
//! its own task until the client leaves or shutdown is signalled through a
//! shared [`CancellationToken`]. A [`TaskTracker`] lets shutdown wait until
//! every connection task has ended.

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::{Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::http::{self, HttpOptions};
use crate::hub::Streams;
use crate::viewer::{self, Viewer};

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; past it a new connection gets `503`.
    pub max_connections: usize,
    /// A write that makes no progress for this long drops the client: a
    /// viewer that stopped reading must not hold a task and a socket forever.
    pub write_timeout: Option<Duration>,
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Behaviour of the HTTP routes.
    pub http: HttpOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            write_timeout: Some(Duration::from_secs(10)),
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            http: HttpOptions::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is taken by another program.
    #[error("cannot listen on {addr}: the address is already in use (is another server running? pick another with --listen)")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Any other failure to bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    streams: Streams,
    app: Router,
    limit: Arc<Semaphore>,
    opts: ServerOptions,
    shutdown: CancellationToken,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and prepares to serve
    /// `streams`.
    pub async fn bind(
        addr: SocketAddr,
        streams: Streams,
        opts: ServerOptions,
    ) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::AddrInUse => ServerError::AddrInUse { addr },
                _ => ServerError::Bind { addr, source },
            })?;
        let shutdown = CancellationToken::new();
        let app = http::router(streams.clone(), opts.http.clone(), shutdown.clone());
        Ok(Server {
            listener,
            streams,
            app,
            limit: Arc::new(Semaphore::new(opts.max_connections)),
            opts,
            shutdown,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// A token that stops the server when cancelled: it stops accepting,
    /// ends every stream, and [`run`](Server::run) returns once connections
    /// have closed (or after the grace period).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled.
    pub async fn run(self) -> io::Result<()> {
        let tracker = TaskTracker::new();
        loop {
            let (socket, peer) = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        // Running out of fds or memory is temporary: back off
                        // instead of spinning or dying.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                tracker.spawn(refuse(socket));
                continue;
            };
            let handler = Handler {
                streams: self.streams.clone(),
                app: self.app.clone(),
                opts: self.opts.clone(),
                shutdown: self.shutdown.clone(),
            };
            tracker.spawn(async move {
                handler.run(socket, peer).await;
                drop(permit);
            });
        }
        drop(self.listener);
        tracker.close();
        if tokio::time::timeout(self.opts.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} connections still open after {:?}; closing them",
                tracker.len(),
                self.opts.shutdown_grace
            );
        }
        Ok(())
    }
}

/// Answers a connection over the limit with a short 503 and closes it.
async fn refuse(mut socket: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        socket.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections, try later\n",
        ),
    )
    .await;
}

/// Serves one connection.
struct Handler {
    streams: Streams,
    app: Router,
    opts: ServerOptions,
    shutdown: CancellationToken,
}

/// Request heads larger than this are left to hyper, which refuses them.
const MAX_HEAD: usize = 16 * 1024;

/// Most viewers' connections ask for one stream and then only receive. A
/// socket never holds more unsent data than this: the rest of a frame waits
/// in the server as shared bytes, and when a viewer is slow the next frame
/// it gets is the newest one, not one that sat in a kernel buffer.
const NOT_SENT_LOW_WATER: u32 = 16 * 1024;

impl Handler {
    async fn run(self, socket: TcpStream, peer: SocketAddr) {
        // Frames go out as soon as they are written; Nagle's delay would
        // only add latency to the small part headers.
        let _ = socket.set_nodelay(true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&socket).set_tcp_notsent_lowat(NOT_SENT_LOW_WATER);
        let mut io = TimeoutStream::new(socket);
        io.set_write_timeout(self.opts.write_timeout);
        let mut io = Box::pin(io);

        // Read the request head first: a plain GET of a stream (nearly every
        // connection) is written directly, without an HTTP library's
        // per-connection buffers; everything else goes to hyper, which gets
        // the bytes already read.
        let mut head = BytesMut::with_capacity(1024);
        match tokio::time::timeout(self.opts.header_timeout, read_head(&mut io, &mut head)).await {
            Ok(Ok(true)) => {}
            // Closed before sending anything, or too slow: nothing to answer.
            Ok(Ok(false)) | Ok(Err(_)) | Err(_) => return,
        }
        if let Some((hub, min_interval)) = self.direct_stream(&head) {
            drop(head);
            let viewer = Viewer::new(
                hub.subscribe_from(Some(peer)),
                min_interval,
                self.opts.http.resend_after,
                self.shutdown.clone(),
            );
            if let Err(e) = viewer::write_stream(&mut io, viewer).await {
                tracing::debug!(%peer, "viewer left: {e}");
            }
            return;
        }

        let io = TokioIo::new(Prefixed {
            prefix: head.freeze(),
            inner: io,
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.opts.header_timeout)
            // The smallest write buffer hyper allows. hyper polls a body for
            // more only while its buffer has room, so a small buffer means a
            // viewer takes its next frame only when the last one has nearly
            // gone out: slow viewers skip frames instead of queueing them.
            // It also caps request headers at 16 KiB.
            .max_buf_size(MAX_HEAD);
        // Routes learn the client's address the way axum's own server tells
        // them: a `ConnectInfo` in the request's extensions.
        let app =
            self.app
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
        let service = TowerToHyperService::new(app);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    }

    /// The stream a request head asks for, if it is a plain `GET` of an
    /// existing stream that the direct path can answer.
    fn direct_stream(&self, head: &[u8]) -> Option<(crate::hub::Hub, Option<Duration>)> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if !req.parse(head).ok()?.is_complete() || req.method? != "GET" {
            return None;
        }
        // A GET with a body, or one asking to switch protocols, is unusual
        // enough to leave to hyper.
        if req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
                || h.name.eq_ignore_ascii_case("upgrade")
        }) {
            return None;
        }
        let target = req.path?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        viewer::stream_request(&self.streams, path, query)
    }
}

/// Reads from `io` until `buf` holds a whole request head (`\r\n\r\n`),
/// or `MAX_HEAD` bytes, or the client stops. Returns false if the client
/// closed the connection without sending anything.
async fn read_head<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> io::Result<bool> {
    loop {
        if memchr::memmem::find(buf, b"\r\n\r\n").is_some() || buf.len() >= MAX_HEAD {
            return Ok(true);
        }
        if io.read_buf(buf).await? == 0 {
            return Ok(!buf.is_empty());
        }
    }
}

/// A connection whose first bytes were already read: reads return them
/// before reading the socket again. (hyper-util has such a type but does not
/// export it.)
struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
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

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
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
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefixed_reads_the_prefix_first() {
        let (a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut b, b" world")
            .await
            .unwrap();
        drop(b);
        let mut p = Prefixed {
            prefix: Bytes::from_static(b"hello"),
            inner: a,
        };
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn request_heads_are_read_whole_and_bounded() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut b, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nextra")
            .await
            .unwrap();
        let mut r = a;
        let mut buf = BytesMut::new();
        assert!(read_head(&mut r, &mut buf).await.unwrap());
        assert!(buf.starts_with(b"GET / HTTP/1.1\r\n"));
        // A client that sends header lines forever stops at the limit.
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let junk = vec![b'x'; 3 * MAX_HEAD];
        tokio::io::AsyncWriteExt::write_all(&mut b, &junk)
            .await
            .unwrap();
        let mut r = a;
        let mut buf = BytesMut::new();
        assert!(read_head(&mut r, &mut buf).await.unwrap());
        assert!(buf.len() >= MAX_HEAD && buf.len() < 2 * MAX_HEAD + 8192);
    }
}
