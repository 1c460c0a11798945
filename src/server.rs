//! The server: accepts connections, limits how many, serves each with
//! hyper, and shuts down gracefully.
//!
//! Shaped like tokio's mini-redis: a [`Server`] owns the listening sockets
//! and a semaphore that caps open connections (plus a count per client
//! address); each accepted connection runs in its own task, a `Handler`,
//! until the client leaves or shutdown is signalled through a shared
//! [`CancellationToken`]. A [`TaskTracker`] lets shutdown wait until every
//! connection task has ended.
//!
//! A connection's life: the TLS handshake if the server has a certificate,
//! then its request head, read within the header timeout and size limit
//! (`408` / `431` otherwise). A plain `GET` of a stream that the client may
//! watch is written directly ([`viewer::write_stream`]); everything else,
//! HTTP/2 included, goes to hyper and the routes of [`crate::http`], which
//! also give every refusal its status and reason.

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::{Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::http::{self, HttpOptions};
use crate::hub::Streams;
use crate::tls::Tls;
use crate::viewer::{self, Viewer};

/// An address to listen on: TCP (IPv4 or IPv6) or, on Unix, a Unix socket
/// written `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address and port, e.g. `127.0.0.1:8080` or `[::1]:8080`.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path (`unix:/run/mjpeg.sock`).
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/mjpeg-server.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!("{s:?} is not an ADDR:PORT (e.g. 127.0.0.1:8080 or [::1]:8080) or unix:PATH")
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl serde::Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr::Tcp(addr)
    }
}

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; past it a new connection gets `503`.
    pub max_connections: usize,
    /// Most connections open at once from one client address (IPv4, or
    /// IPv6); past it, `503`. 0 turns the limit off. One host cannot take
    /// every slot of `max_connections`. Behind a reverse proxy every client
    /// has the proxy's address: raise it or turn it off there.
    pub max_connections_per_address: usize,
    /// A write that makes no progress for this long drops the client: a
    /// viewer that stopped reading must not hold a task and a socket forever.
    pub write_timeout: Option<Duration>,
    /// How long a client may take to send its request headers (and, with
    /// TLS, to finish the handshake); past it, `408` and the connection
    /// closes. Slowloris clients hold a connection by sending a header line
    /// now and then.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; a larger
    /// one gets `431`.
    pub max_header_bytes: usize,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Serve TLS (and HTTP/2) on TCP listeners with this certificate.
    /// Unix sockets stay plain: they serve a local proxy.
    pub tls: Option<Tls>,
    /// Behaviour of the HTTP routes.
    pub http: HttpOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            max_connections_per_address: 256,
            write_timeout: Some(Duration::from_secs(10)),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
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
        addr: ListenAddr,
    },
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoAddress,
    /// Any other failure to bind.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: ListenAddr,
        /// What the OS said (part of the message, so not also a `source`
        /// that `{:#}` would print twice).
        error: io::Error,
    },
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listeners: Vec<Listener>,
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
        Server::bind_all(&[ListenAddr::Tcp(addr)], streams, opts).await
    }

    /// Binds every address in `addrs` (IPv4, IPv6 and Unix sockets alike;
    /// port 0 picks a free port for each) and prepares to serve `streams`
    /// on all of them, sharing one connection limit. Fails if any cannot be
    /// bound.
    pub async fn bind_all(
        addrs: &[ListenAddr],
        streams: Streams,
        opts: ServerOptions,
    ) -> Result<Server, ServerError> {
        let mut listeners = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let bound = match addr {
                ListenAddr::Tcp(a) => TcpListener::bind(a).await.map(Listener::Tcp),
                ListenAddr::Unix(path) => bind_unix(path).await,
            };
            let listener = bound.map_err(|error| match error.kind() {
                io::ErrorKind::AddrInUse => ServerError::AddrInUse { addr: addr.clone() },
                _ => ServerError::Bind {
                    addr: addr.clone(),
                    error,
                },
            })?;
            listeners.push(listener);
        }
        if listeners.is_empty() {
            return Err(ServerError::NoAddress);
        }
        let shutdown = CancellationToken::new();
        let app = http::router(streams.clone(), opts.http.clone(), shutdown.clone());
        Ok(Server {
            listeners,
            streams,
            app,
            limit: Arc::new(Semaphore::new(opts.max_connections)),
            opts,
            shutdown,
        })
    }

    /// The TCP address actually bound (useful with port 0); with several,
    /// the first. A server listening only on Unix sockets has none and
    /// answers `0.0.0.0:0`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs()
            .into_iter()
            .find_map(|a| match a {
                ListenAddr::Tcp(a) => Some(a),
                ListenAddr::Unix(_) => None,
            })
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every address actually bound, in the order asked for.
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.listeners.iter().map(Listener::addr).collect()
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
        let accepting = TaskTracker::new();
        let per_address = PerAddress::new(self.opts.max_connections_per_address);
        // Shared, not copied into every connection's task.
        let opts = Arc::new(self.opts.clone());
        for listener in self.listeners {
            let acceptor = Acceptor {
                streams: self.streams.clone(),
                app: self.app.clone(),
                limit: self.limit.clone(),
                per_address: per_address.clone(),
                opts: opts.clone(),
                shutdown: self.shutdown.clone(),
                tracker: tracker.clone(),
            };
            accepting.spawn(acceptor.run(listener));
        }
        accepting.close();
        accepting.wait().await;
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

/// One listening socket.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    fn addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(l) => ListenAddr::Tcp(
                l.local_addr()
                    .expect("a bound TCP listener has a local address"),
            ),
            #[cfg(unix)]
            Listener::Unix(_, path) => ListenAddr::Unix(path.clone()),
        }
    }
}

/// Binds a Unix socket at `path`. A socket file left behind by a server
/// that is gone (nothing accepts on it) is replaced; one that a running
/// server answers on is "in use". Any other kind of file is left alone.
#[cfg(unix)]
async fn bind_unix(path: &std::path::Path) -> io::Result<Listener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

#[cfg(not(unix))]
async fn bind_unix(_path: &std::path::Path) -> io::Result<Listener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Unix sockets are not available on this system",
    ))
}

/// The accept loop of one listening socket.
struct Acceptor {
    streams: Streams,
    app: Router,
    limit: Arc<Semaphore>,
    per_address: PerAddress,
    opts: Arc<ServerOptions>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts until shutdown, then closes the listening socket (and
    /// removes a Unix socket's file).
    async fn run(self, listener: Listener) {
        match listener {
            Listener::Tcp(l) => {
                let tls = self.opts.tls.is_some();
                self.accept_loop(tls, || async {
                    let (socket, peer) = l.accept().await?;
                    // Frames go out as soon as they are written; Nagle's
                    // delay would only add latency to the small part headers.
                    let _ = socket.set_nodelay(true);
                    #[cfg(any(target_os = "linux", target_os = "android"))]
                    let _ =
                        socket2::SockRef::from(&socket).set_tcp_notsent_lowat(NOT_SENT_LOW_WATER);
                    Ok((socket, Some(peer)))
                })
                .await
            }
            #[cfg(unix)]
            Listener::Unix(l, path) => {
                self.accept_loop(false, || async {
                    let (socket, _) = l.accept().await?;
                    Ok((socket, None))
                })
                .await;
                drop(l);
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Accepts connections from `accept` until shutdown; `tls`: this
    /// listener serves TLS.
    async fn accept_loop<S, F, Fut>(&self, tls: bool, mut accept: F)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<(S, Option<SocketAddr>)>>,
    {
        loop {
            let (socket, peer) = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = accept() => match r {
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
            // Refusals are answered in plain HTTP; a TLS client would not
            // understand one, so it is simply closed.
            let turn_away = |socket, why: &'static str| {
                if !tls {
                    self.tracker.spawn(refuse(socket, why));
                }
            };
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                turn_away(socket, "too many connections, try later\n");
                continue;
            };
            let Some(slot) = self.per_address.take(peer) else {
                tracing::debug!(?peer, "refused: too many connections from this address");
                turn_away(socket, "too many connections from your address\n");
                continue;
            };
            let handler = Handler {
                streams: self.streams.clone(),
                app: self.app.clone(),
                opts: self.opts.clone(),
                shutdown: self.shutdown.clone(),
            };
            self.tracker.spawn(async move {
                let mut io = TimeoutStream::new(socket);
                io.set_write_timeout(handler.opts.write_timeout);
                let io = Box::pin(io);
                match handler.opts.tls.clone().filter(|_| tls) {
                    None => handler.run(io, peer).await,
                    // Boxed: a task's future is as large as its largest
                    // state, and a TLS connection's (rustls keeps its
                    // buffers inline) would otherwise add kilobytes to every
                    // plain viewer's task too.
                    Some(tls) => Box::pin(serve_tls(handler, tls, io, peer)).await,
                }
                drop((permit, slot));
            });
        }
    }
}

/// Serves `io` after a TLS handshake that must finish within the header
/// timeout.
async fn serve_tls<S>(handler: Handler, tls: Tls, io: S, peer: Option<SocketAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accept = TlsAcceptor::from(tls.config()).accept(io);
    match tokio::time::timeout(handler.opts.header_timeout, accept).await {
        Ok(Ok(io)) => handler.run(io, peer).await,
        Ok(Err(e)) => tracing::debug!(?peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
    }
}

/// Open connections per client address, for
/// [`ServerOptions::max_connections_per_address`].
#[derive(Clone)]
struct PerAddress {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
}

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerAddress {
    fn new(limit: usize) -> PerAddress {
        PerAddress {
            open: Arc::default(),
            limit,
        }
    }

    /// A slot for a connection from `peer`, or `None` if its address has
    /// the most it may. Connections without an address (Unix sockets) and
    /// a limit of 0 are not counted.
    fn take(&self, peer: Option<SocketAddr>) -> Option<Option<AddressSlot>> {
        let Some(peer) = peer.filter(|_| self.limit > 0) else {
            return Some(None);
        };
        // An IPv4 client on an IPv6 socket is the same host as on IPv4.
        let ip = peer.ip().to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Some(AddressSlot {
            open: self.open.clone(),
            ip,
        }))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over a limit with a short 503 and closes it.
async fn refuse<S: AsyncWrite + Unpin>(socket: S, why: &'static str) {
    answer(socket, "503 Service Unavailable", "Retry-After: 1\r\n", why).await;
}

/// Writes a short plain-text response (`status` line, `extra` header lines,
/// `body`) and closes, giving up after a second: a client that is being
/// refused gets no more of the server's time. For refusals made before any
/// HTTP library has seen the connection.
async fn answer<S: AsyncWrite + Unpin>(mut socket: S, status: &str, extra: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    })
    .await;
}

/// Serves one connection.
struct Handler {
    streams: Streams,
    app: Router,
    opts: Arc<ServerOptions>,
    shutdown: CancellationToken,
}

/// hyper's own cap on a request head (for the requests after the first on
/// a keep-alive connection) and on its write buffer; the smallest it allows.
const HYPER_BUF: usize = 16 * 1024;

/// Most viewers' connections ask for one stream and then only receive. A
/// socket never holds more unsent data than this: the rest of a frame waits
/// in the server as shared bytes, and when a viewer is slow the next frame
/// it gets is the newest one, not one that sat in a kernel buffer.
const NOT_SENT_LOW_WATER: u32 = 16 * 1024;

impl Handler {
    /// Serves `io` (the accepted socket, wrapped for write timeouts and
    /// perhaps TLS); `peer` is the client's address (none on a Unix socket).
    async fn run<S>(self, mut io: S, peer: Option<SocketAddr>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Read the request head first: a plain GET of a stream (nearly every
        // connection) is written directly, without an HTTP library's
        // per-connection buffers; everything else goes to hyper, which gets
        // the bytes already read.
        let limit = self.opts.max_header_bytes;
        let mut head = BytesMut::with_capacity(1024);
        match tokio::time::timeout(
            self.opts.header_timeout,
            read_head(&mut io, &mut head, limit),
        )
        .await
        {
            Ok(Ok(Head::Complete)) => {}
            Ok(Ok(Head::TooLarge)) => {
                tracing::debug!(?peer, "refused: request head over {limit} bytes");
                let body = format!("request headers larger than {limit} bytes\n");
                return answer(io, "431 Request Header Fields Too Large", "", &body).await;
            }
            Err(_) if !head.is_empty() => {
                tracing::debug!(
                    ?peer,
                    "refused: request head not sent within {:?}",
                    self.opts.header_timeout
                );
                let body = "request headers not sent in time\n";
                return answer(io, "408 Request Timeout", "", body).await;
            }
            // Closed before sending a whole head, a read error, or silent
            // from the start (a browser's speculative connection): nothing
            // to answer.
            Ok(Ok(Head::Closed)) | Ok(Err(_)) | Err(_) => return,
        }
        // A plain GET of a stream the client may watch.
        let direct = viewer::direct_request(&self.streams, &self.opts.http.access, &head);
        if let Some(direct) = direct {
            let Some(sub) = direct
                .hub
                .try_subscribe_from(peer, self.opts.http.max_clients_per_stream)
            else {
                // Full: the HTTP routes answer with the reason.
                return self.serve_http(io, head, peer).await;
            };
            drop(head);
            let viewer = Viewer::new(
                sub,
                direct.min_interval,
                self.opts.http.resend_after,
                self.shutdown.clone(),
            )
            .with_layout(direct.layout);
            if let Err(e) = viewer::write_stream(&mut io, viewer).await {
                tracing::debug!(?peer, "viewer left: {e}");
            }
            return;
        }
        self.serve_http(io, head, peer).await
    }

    /// Serves the connection with hyper (HTTP/1.1 or HTTP/2), which reads
    /// `head` first.
    async fn serve_http<S>(self, io: S, head: BytesMut, peer: Option<SocketAddr>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
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
            .max_buf_size(HYPER_BUF.max(self.opts.max_header_bytes));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.opts.max_header_bytes as u32);
        // Routes learn the client's address the way axum's own server tells
        // them: a `ConnectInfo` in the request's extensions.
        let app =
            self.app
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    if let Some(peer) = peer {
                        req.extensions_mut().insert(ConnectInfo(peer));
                    }
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
            tracing::debug!(?peer, "connection ended: {e}");
        }
    }
}

/// How reading a request head ended.
#[derive(Debug, PartialEq)]
enum Head {
    /// The head is whole (`\r\n\r\n` seen).
    Complete,
    /// More than the limit came without the end of the head.
    TooLarge,
    /// The client closed the connection first.
    Closed,
}

/// Reads from `io` until `buf` holds a whole request head (`\r\n\r\n`),
/// or more than `limit` bytes, or the client stops.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    limit: usize,
) -> io::Result<Head> {
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            return Ok(if end + 4 > limit {
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
        tokio::io::AsyncWriteExt::write_all(&mut b, &junk)
            .await
            .unwrap();
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
    fn per_address_slots_come_back() {
        let p = PerAddress::new(2);
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:6".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5".parse().unwrap();
        let s1 = p.take(Some(a)).unwrap();
        let s2 = p.take(Some(mapped)).unwrap();
        assert!(p.take(Some(a)).is_none(), "the third from one host");
        assert!(
            p.take(Some(b)).unwrap().is_some(),
            "another host is not limited"
        );
        assert!(p.take(None).unwrap().is_none(), "no address, not counted");
        drop(s1);
        assert!(p.take(Some(a)).is_some());
        drop(s2);
        assert!(p.open.lock().unwrap().is_empty());
        assert!(PerAddress::new(0).take(Some(a)).unwrap().is_none());
    }
}
