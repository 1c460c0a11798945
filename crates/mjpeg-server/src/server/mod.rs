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
//! watch is written directly by the `viewer` module; everything else,
//! HTTP/2 included, goes to hyper and the routes of [`crate::http`], which
//! also give every refusal its status and reason.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::http::{self, HttpOptions};
use crate::hub::Streams;
use crate::refusals::Reason;
use crate::stream_request;
#[cfg(feature = "tls")]
use crate::tls::Tls;
use crate::viewer::{self, Viewer};

mod activity;
mod background;
mod bind;
mod forwarded;
mod per_address;
mod wire;

use activity::{Activity, Expired, Tracked};
pub use background::Running;
pub use bind::ListenAddr;
use bind::{bind_host, bind_unix, Listener};
pub use forwarded::TrustedProxy;
use per_address::PerAddress;
use wire::{answer, read_head, Head, Prefixed};

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most connections open at once; past it a new connection gets `503`.
    pub max_connections: usize,
    /// Most connections open at once from one client address (IPv4, or
    /// IPv6 prefix: see `ipv6_prefix`); past it, `503`. 0 turns the limit
    /// off. One host cannot take every slot of `max_connections`. Over
    /// HTTP/2 every request open on a connection counts as one more. Behind
    /// a reverse proxy every client has the proxy's address: name the
    /// proxy in `trusted_proxies`, or raise the limit or turn it off there.
    pub max_connections_per_address: usize,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are
    /// believed: for connections from them, the client is the rightmost
    /// address in those headers that is not itself a trusted proxy, for the
    /// per-address limit, the logs and `/status`. Their connections take
    /// their per-address place when the request head has been read, not at
    /// accept. Empty (the default): the headers are ignored, since any
    /// client can send them.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// IPv6 clients whose addresses share this many leading bits count as
    /// one client for `max_connections_per_address`: a host usually has a
    /// whole /64 and can use any address in it. 128 counts exact addresses.
    pub ipv6_prefix: u8,
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
    #[cfg(feature = "tls")]
    pub tls: Option<Tls>,
    /// Behaviour of the HTTP routes.
    pub http: HttpOptions,
}

impl ServerOptions {
    /// Whether TCP listeners serve TLS.
    fn serves_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Whether `peer` is one of the `trusted_proxies`.
    fn is_trusted_proxy(&self, peer: SocketAddr) -> bool {
        self.trusted_proxies.iter().any(|t| t.contains(peer.ip()))
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            max_connections_per_address: 256,
            ipv6_prefix: 64,
            trusted_proxies: Vec::new(),
            write_timeout: Some(Duration::from_secs(10)),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
            #[cfg(feature = "tls")]
            tls: None,
            http: HttpOptions::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is taken by another program.
    #[error(
        "cannot listen on {addr}: the address is already in use (is another server running? \
         pick {})",
        crate::names::option_names().listen
    )]
    AddrInUse {
        /// The address asked for.
        addr: ListenAddr,
    },
    /// The server's threads could not be started ([`Server::start`]).
    #[error("cannot start the server's threads: {0}")]
    Runtime(io::Error),
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoAddress,
    /// A host name did not resolve to any address.
    #[error("cannot listen on {addr}: the name does not resolve: {error}")]
    Resolve {
        /// The address asked for.
        addr: ListenAddr,
        /// What the resolver said.
        error: io::Error,
    },
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
            let bind_error = |error: io::Error| match error.kind() {
                io::ErrorKind::AddrInUse => ServerError::AddrInUse { addr: addr.clone() },
                _ => ServerError::Bind {
                    addr: addr.clone(),
                    error,
                },
            };
            match addr {
                ListenAddr::Tcp(a) => listeners.push(Listener::Tcp(
                    TcpListener::bind(a).await.map_err(bind_error)?,
                )),
                ListenAddr::Unix(path) => {
                    listeners.push(bind_unix(path).await.map_err(bind_error)?)
                }
                ListenAddr::Host(host, port) => {
                    for listener in bind_host(addr, host, *port).await? {
                        listeners.push(listener);
                    }
                }
            }
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
                ListenAddr::Host(..) | ListenAddr::Unix(_) => None,
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
        let per_address =
            PerAddress::new(self.opts.max_connections_per_address, self.opts.ipv6_prefix);
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
                self.accept_loop(self.opts.serves_tls(), || async {
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
            let refusals = self.streams.refusals();
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                let limit = self.opts.max_connections;
                refusals.note(
                    Reason::Connections,
                    peer,
                    &format_args!("the server has its most connections ({limit})"),
                );
                turn_away(socket, "too many connections, try later\n");
                continue;
            };
            // A trusted proxy's connection is counted for the client it
            // names, once its request head is read (see `Handler::run`).
            let slot = if peer.is_some_and(|p| self.opts.is_trusted_proxy(p)) {
                None
            } else {
                let Some(slot) = self.per_address.take(peer) else {
                    refusals.note(Reason::PerAddress, peer, &TooManyFrom(&self.opts));
                    turn_away(socket, TOO_MANY_FROM_ADDRESS);
                    continue;
                };
                slot
            };
            let handler = Handler {
                streams: self.streams.clone(),
                app: self.app.clone(),
                per_address: self.per_address.clone(),
                opts: self.opts.clone(),
                shutdown: self.shutdown.clone(),
            };
            self.tracker.spawn(async move {
                let mut io = TimeoutStream::new(socket);
                io.set_write_timeout(handler.opts.write_timeout);
                let io = Box::pin(io);
                #[cfg(feature = "tls")]
                match handler.opts.tls.clone().filter(|_| tls) {
                    None => handler.run(io, peer).await,
                    // Boxed: a task's future is as large as its largest
                    // state, and a TLS connection's (rustls keeps its
                    // buffers inline) would otherwise add kilobytes to every
                    // plain viewer's task too.
                    Some(tls) => Box::pin(serve_tls(handler, tls, io, peer)).await,
                }
                #[cfg(not(feature = "tls"))]
                handler.run(io, peer).await;
                drop((permit, slot));
            });
        }
    }
}

#[cfg(feature = "tls")]
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

/// Answers a connection over a limit with a short 503 and closes it.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(socket: S, why: &'static str) {
    answer(socket, "503 Service Unavailable", "Retry-After: 1\r\n", why).await;
}

/// Why a client over [`ServerOptions::max_connections_per_address`] is
/// refused.
const TOO_MANY_FROM_ADDRESS: &str = "too many connections from your address\n";

/// What a client over the per-address limit was refused, for the log.
struct TooManyFrom<'a>(&'a ServerOptions);

impl std::fmt::Display for TooManyFrom<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a connection over the limit of {} from one address (behind a reverse proxy, \
             trust it so that its clients count apart)",
            self.0.max_connections_per_address
        )
    }
}

/// The refusal of a request over the per-address limit once hyper serves
/// the connection (an HTTP/2 stream): what [`refuse`] writes before.
fn too_many_from_address() -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        TOO_MANY_FROM_ADDRESS,
    )
        .into_response()
}

/// Serves one connection.
struct Handler {
    streams: Streams,
    app: Router,
    per_address: PerAddress,
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
                self.streams.refusals().note(
                    Reason::HeaderTooLarge,
                    peer,
                    &format_args!("a request head over {limit} bytes"),
                );
                let body = format!("request headers larger than {limit} bytes\n");
                return answer(io, "431 Request Header Fields Too Large", "", &body).await;
            }
            Err(_) if !head.is_empty() => {
                self.streams.refusals().note(
                    Reason::HeaderTimeout,
                    peer,
                    &format_args!(
                        "a request head not sent within {} s",
                        self.opts.header_timeout.as_secs_f64()
                    ),
                );
                let body = "request headers not sent in time\n";
                return answer(io, "408 Request Timeout", "", body).await;
            }
            // Closed before sending a whole head, a read error, or silent
            // from the start (a browser's speculative connection): nothing
            // to answer.
            Ok(Ok(Head::Closed)) | Ok(Err(_)) | Err(_) => return,
        }
        // From a trusted proxy: the client it names is the peer from here
        // on, and takes the per-address place that others took at accept.
        let proxy = peer.filter(|p| self.opts.is_trusted_proxy(*p));
        let mut _slot = None;
        let peer = match proxy {
            Some(p) => {
                let client = forwarded::client_of_head(p, &self.opts.trusted_proxies, &head);
                match self.per_address.take(Some(client)) {
                    Some(slot) => _slot = slot,
                    None => {
                        self.streams.refusals().note(
                            Reason::PerAddress,
                            Some(client),
                            &TooManyFrom(&self.opts),
                        );
                        let extra = "Retry-After: 1\r\n";
                        return answer(io, "503 Service Unavailable", extra, TOO_MANY_FROM_ADDRESS)
                            .await;
                    }
                }
                Some(client)
            }
            None => peer,
        };
        // A plain GET of a stream the client may watch.
        let direct = stream_request::direct(
            &self.streams,
            &self.opts.http.access,
            self.opts.http.max_variants,
            &head,
        );
        if let Some(direct) = direct {
            let Ok(sub) = direct.subscribe(peer, self.opts.http.max_clients_per_stream) else {
                // Full: the HTTP routes answer with the reason.
                return self.serve_http(io, head, peer, proxy).await;
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
        self.serve_http(io, head, peer, proxy).await
    }

    /// Serves the connection with hyper (HTTP/1.1 or HTTP/2), which reads
    /// `head` first. `peer` is the client of the first request; `proxy` the
    /// connection's peer when it is a trusted proxy, whose later requests
    /// name their own clients.
    async fn serve_http<S>(
        self,
        io: S,
        head: BytesMut,
        peer: Option<SocketAddr>,
        proxy: Option<SocketAddr>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Prefixed::new(head.freeze(), io));
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
            .max_concurrent_streams(MAX_HTTP2_STREAMS)
            .max_header_list_size(self.opts.max_header_bytes as u32);
        let activity = Activity::new();
        // Every request gets a clone of `hold`; a WebSocket keeps its own
        // for as long as it lives, after hyper has let go of the
        // connection, so that the connection keeps its place in the limits
        // until then (see the wait below).
        let (hold, mut upgraded) = tokio::sync::mpsc::channel::<()>(1);
        let service = TowerToHyperService::new(Requests {
            hold: http::ConnectionHold(hold),
            app: self.app.clone(),
            activity: activity.clone(),
            per_address: self.per_address.clone(),
            peer,
            proxy,
            opts: self.opts.clone(),
            streams: self.streams.clone(),
        });
        // In a block, so that the connection, and the service with its
        // `hold`, are gone before the wait for a WebSocket below.
        let result = {
            let conn = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            let watch = activity.expired(self.opts.header_timeout, self.opts.write_timeout);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = self.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                // Dropping the connection closes it, whatever its streams wait
                // for: a client that sends nothing, or reads nothing, gets no
                // graceful end.
                why = watch => {
                    tracing::debug!(?peer, "closed: {}", match why {
                        Expired::Idle => "no request within the header timeout",
                        Expired::Stalled => "a response not read within the write timeout",
                    });
                    Ok(())
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(?peer, "connection ended: {e}");
        }
        // Nothing is ever sent: this returns once every clone of `hold` is
        // gone, the WebSocket's last (it ends at shutdown too).
        let _ = upgraded.recv().await;
    }
}

/// Most requests one HTTP/2 connection may have open at once (nginx's
/// default): each viewer on it also takes a place of its client address.
const MAX_HTTP2_STREAMS: u32 = 128;

/// The service hyper calls for each request of one connection: the routes,
/// with the connection's bookkeeping around them.
#[derive(Clone)]
struct Requests {
    /// Handed to each request ([`http::ConnectionHold`]).
    hold: http::ConnectionHold,
    app: Router,
    activity: Arc<Activity>,
    per_address: PerAddress,
    peer: Option<SocketAddr>,
    /// The connection's peer when it is a trusted proxy: each request's
    /// client is then read from its own headers.
    proxy: Option<SocketAddr>,
    opts: Arc<ServerOptions>,
    /// For the count of refusals.
    streams: Streams,
}

impl tower::Service<Request<Incoming>> for Requests {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let flight = self.activity.begin();
        let peer = match self.proxy {
            Some(proxy) => Some(forwarded::client_of_request(
                proxy,
                &self.opts.trusted_proxies,
                req.headers(),
            )),
            None => self.peer,
        };
        // Over HTTP/1 a connection is one request at a time and took its
        // place at accept; over HTTP/2 every request is another client of
        // the connection's address, counted as a connection would be.
        let slot = if req.version() == Version::HTTP_2 {
            match self.per_address.take(peer) {
                Some(slot) => slot,
                None => {
                    self.streams.refusals().note(
                        Reason::PerAddress,
                        peer,
                        &TooManyFrom(&self.opts),
                    );
                    let refusal = too_many_from_address();
                    return Box::pin(async move {
                        Ok(refusal.map(|b| Body::new(Tracked::new(b, flight, ()))))
                    });
                }
            }
        } else {
            None
        };
        // Routes learn the client's address the way axum's own server tells
        // them: a `ConnectInfo` in the request's extensions.
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        req.extensions_mut().insert(self.hold.clone());
        let app = self.app.clone();
        Box::pin(async move {
            let res = app.oneshot(req.map(Body::new)).await?;
            Ok(res.map(|b| Body::new(Tracked::new(b, flight, slot))))
        })
    }
}

#[cfg(test)]
mod tests;
