//! The server: accepts connections, limits how many, serves each with
//! hyper, and shuts down gracefully.
//!
//! Shaped like tokio's mini-redis: a [`Server`] owns the listening socket and
//! a semaphore that caps open connections; each accepted connection runs in
//! its own task until the client leaves or shutdown is signalled through a
//! shared [`CancellationToken`]. A [`TaskTracker`] lets shutdown wait until
//! every connection task has ended.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::{self, HttpOptions};
use crate::hub::Streams;

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
        let app = http::router(streams, opts.http.clone(), shutdown.clone());
        Ok(Server {
            listener,
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
    app: Router,
    opts: ServerOptions,
    shutdown: CancellationToken,
}

impl Handler {
    async fn run(self, socket: TcpStream, peer: SocketAddr) {
        // Frames go out as soon as they are written; Nagle's delay would
        // only add latency to the small part headers.
        let _ = socket.set_nodelay(true);
        let mut io = TimeoutStream::new(socket);
        io.set_write_timeout(self.opts.write_timeout);
        let io = TokioIo::new(Box::pin(io));

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
            .max_buf_size(16 * 1024);
        let service = TowerToHyperService::new(self.app);
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
}
