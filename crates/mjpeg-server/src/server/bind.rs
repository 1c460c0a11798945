//! What the server listens on: addresses as users write them, and binding
//! them (every address of a host name, Unix sockets left behind replaced).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use tokio::net::TcpListener;

use super::ServerError;

/// An address to listen on: TCP (IPv4 or IPv6), a host name and port, or,
/// on Unix, a Unix socket written `unix:PATH`.
///
/// Parsed from `PORT` alone (`8080`: 127.0.0.1, so that nothing is exposed
/// to the network unless an address is given), `ADDR:PORT` (`0.0.0.0:8080`,
/// `[::1]:8080`), `HOST:PORT` (`localhost:8080`) or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address and port, e.g. `127.0.0.1:8080` or `[::1]:8080`.
    Tcp(SocketAddr),
    /// A host name and port, e.g. `localhost:8080`, resolved when the
    /// server binds: it listens on every address the name resolves to
    /// (`localhost` is often both 127.0.0.1 and ::1). With port 0 each of
    /// them gets a free port of its own.
    Host(String, u16),
    /// A Unix domain socket at this path (`unix:/run/mjpeg.sock`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The address a bare port means: loopback only, as with no flag at all.
    pub fn port(port: u16) -> ListenAddr {
        ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
    }
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
        let bad = || {
            format!(
                "{s:?} is not a PORT, ADDR:PORT or HOST:PORT (e.g. 8080, 0.0.0.0:8080, [::1]:8080, \
                 localhost:8080) or unix:PATH"
            )
        };
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(ListenAddr::port).map_err(|_| bad());
        }
        if let Ok(addr) = s.parse() {
            return Ok(ListenAddr::Tcp(addr));
        }
        // A host name: letters, digits, '-', '_' and '.', no ':' (an IPv6
        // address needs brackets, and a bad one is not a name either).
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let is_name = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        match port.parse::<u16>() {
            Ok(port) if is_name => Ok(ListenAddr::Host(host.to_string(), port)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Host(host, port) => write!(f, "{host}:{port}"),
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

/// One listening socket.
pub(super) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    pub(super) fn addr(&self) -> ListenAddr {
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

/// Binds every address that `host` resolves to (each once), so that
/// `localhost:8080` answers on both 127.0.0.1 and ::1 where it names both.
/// An address of the name that this machine cannot bind (::1 with IPv6
/// turned off) is skipped with a warning as long as another one binds; a
/// port in use is an error.
pub(super) async fn bind_host(
    addr: &ListenAddr,
    host: &str,
    port: u16,
) -> Result<Vec<Listener>, ServerError> {
    let resolved = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| ServerError::Resolve {
            addr: addr.clone(),
            error,
        })?;
    let mut unique: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let mut listeners = Vec::new();
    let mut unusable = None;
    for a in &unique {
        match TcpListener::bind(a).await {
            Ok(l) => listeners.push(Listener::Tcp(l)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                return Err(ServerError::AddrInUse {
                    addr: ListenAddr::Tcp(*a),
                })
            }
            Err(error) => {
                tracing::warn!("{addr} resolves to {a}, which cannot be listened on: {error}");
                unusable = Some(ServerError::Bind {
                    addr: ListenAddr::Tcp(*a),
                    error,
                });
            }
        }
    }
    match (listeners.is_empty(), unusable) {
        (false, _) => Ok(listeners),
        (true, Some(e)) => Err(e),
        (true, None) => Err(ServerError::Resolve {
            addr: addr.clone(),
            error: io::Error::new(io::ErrorKind::NotFound, "no address"),
        }),
    }
}

/// Binds a Unix socket at `path`. A socket file left behind by a server
/// that is gone (nothing accepts on it) is replaced; one that a running
/// server answers on is "in use". Any other kind of file is left alone.
#[cfg(unix)]
pub(super) async fn bind_unix(path: &std::path::Path) -> io::Result<Listener> {
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
pub(super) async fn bind_unix(_path: &std::path::Path) -> io::Result<Listener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Unix sockets are not available on this system",
    ))
}
