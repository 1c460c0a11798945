//! A server on threads of its own, for programs that are not async.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ListenAddr, Server, ServerError, ServerOptions};
use crate::hub::Streams;

/// A server running on threads of its own, from [`Server::start`]. It
/// serves until [`stop`](Running::stop) or until it is dropped. Both wait
/// for its threads, up to [`ServerOptions::shutdown_grace`] while viewers
/// finish: from async code, stop it on a blocking thread
/// (`tokio::task::spawn_blocking`).
#[derive(Debug)]
pub struct Running {
    addrs: Vec<ListenAddr>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Binds `addrs` and serves `streams` on a runtime and threads of the
    /// server's own, returning as soon as it listens: for a program with no
    /// async code (publish with [`Hub::publish`](crate::Hub::publish) from
    /// any thread), and from inside another runtime alike.
    ///
    /// ```no_run
    /// use mjpeg_server::server::ListenAddr;
    /// use mjpeg_server::{Server, ServerOptions, Streams};
    ///
    /// let streams = Streams::new();
    /// let cam = streams.add("cam").unwrap();
    /// let addr: ListenAddr = "127.0.0.1:8080".parse().unwrap();
    /// let server = Server::start(&[addr], streams, ServerOptions::default()).unwrap();
    /// println!("http://{}/stream/cam", server.local_addr());
    /// // ... cam.publish(frame) in a loop ...
    /// server.stop().unwrap();
    /// ```
    pub fn start(
        addrs: &[ListenAddr],
        streams: Streams,
        opts: ServerOptions,
    ) -> Result<Running, ServerError> {
        let addrs = addrs.to_vec();
        let (bound_tx, bound_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mjpeg-server".into())
            .spawn(move || -> io::Result<()> {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .thread_name("mjpeg-server-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = bound_tx.send(Err(ServerError::Runtime(e)));
                        return Ok(());
                    }
                };
                runtime.block_on(async move {
                    let server = match Server::bind_all(&addrs, streams, opts).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = bound_tx.send(Ok((server.local_addrs(), server.shutdown_token())));
                    server.run().await
                })
            })
            .map_err(ServerError::Runtime)?;
        match bound_rx.recv() {
            Ok(Ok((addrs, shutdown))) => Ok(Running {
                addrs,
                shutdown,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread ended without a word: it panicked.
            Err(_) => Err(ServerError::Runtime(io::Error::other(
                match thread.join() {
                    Err(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the server's thread panicked".into()),
                    Ok(_) => "the server's thread ended before it listened".into(),
                },
            ))),
        }
    }
}

impl Running {
    /// The TCP address actually bound (useful with port 0); with several,
    /// the first. A server listening only on Unix sockets has none and
    /// answers `0.0.0.0:0`.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(|a| match a {
                ListenAddr::Tcp(a) => Some(*a),
                ListenAddr::Host(..) | ListenAddr::Unix(_) => None,
            })
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every address actually bound, in the order asked for.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// Stops the server as [`Server::shutdown_token`] does (it stops
    /// accepting, ends every stream, and waits for connections to close
    /// within the grace period) and waits for its threads to end.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.shutdown.cancel();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server's thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;
    use std::io::{Read, Write};

    #[test]
    fn serves_from_its_own_threads_and_stops() {
        let streams = Streams::new();
        let hub = streams.add("cam").unwrap();
        let addr: ListenAddr = "127.0.0.1:0".parse().unwrap();
        let server = Server::start(&[addr], streams, ServerOptions::default()).unwrap();
        let jpeg = crate::test_data::corpus("jpeg_5k.jpg");
        hub.publish(Frame::from_jpeg(jpeg.clone()).unwrap())
            .unwrap();
        let mut socket = std::net::TcpStream::connect(server.local_addr()).unwrap();
        socket
            .write_all(b"GET /snapshot/cam HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.0 200 OK"), "{answer:?}");
        assert!(answer.ends_with(&jpeg));
        let port = server.local_addr().port();
        server.stop().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn a_taken_address_is_an_error_not_a_panic() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ListenAddr::Tcp(taken.local_addr().unwrap());
        let err = Server::start(&[addr], Streams::new(), ServerOptions::default()).unwrap_err();
        assert!(matches!(err, ServerError::AddrInUse { .. }), "{err}");
    }

    #[test]
    fn it_starts_from_inside_another_runtime_too() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(async {
            let addr: ListenAddr = "127.0.0.1:0".parse().unwrap();
            Server::start(&[addr], Streams::new(), ServerOptions::default()).unwrap()
        });
        assert_ne!(server.local_addr().port(), 0);
        drop(server);
    }
}
