//! One viewer: a connection that reads the stream, checks every part and
//! counts what arrived in the measurement window.
//!
//! Plain HTTP is read straight off the socket into one buffer per runtime
//! thread, so that ten thousand idle viewers hold no buffers. HTTPS (rustls)
//! and HTTP/2 (h2, over HTTPS) keep their own buffers per connection, as
//! every TLS client does; their bytes go to the same parser, an HTTP/2
//! response's head being rewritten as the HTTP/1 head the parser checks.

use anyhow::{bail, Context};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::lenient::LenientParser;
use crate::parser::{FrameSeen, StreamError, StreamParser};
use crate::tls::{self, TlsTarget};

mod websocket;

use websocket::WsTarget;

/// The stream to load: where to connect and what to ask for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
    /// For an `https://` URL.
    tls: Option<TlsTarget>,
    /// The URL, for an HTTP/2 request.
    uri: http::Uri,
    /// With `--websocket`: the player's socket instead of the stream.
    websocket: Option<WsTarget>,
}

/// The target of `url`; for `https://`, trusting the certificates in `ca`
/// and speaking HTTP/2 if `http2`; with `websocket`, the server's `/ws`
/// subscribed to the stream `url` names.
pub(crate) async fn target(
    url: &str,
    ca: Option<&std::path::Path>,
    http2: bool,
    websocket: bool,
) -> anyhow::Result<Target> {
    let u = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        other => bail!("{url}: {other}:// cannot be loaded; use http:// or https://"),
    };
    if http2 && !https {
        bail!("--http2 needs an https:// URL: HTTP/2 is chosen during the TLS handshake");
    }
    if websocket && (https || http2) {
        bail!("--websocket loads plain http:// URLs only (ws://, not wss://)");
    }
    let host = u
        .host_str()
        .with_context(|| format!("{url}: no host"))?
        .to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("{url}: cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{url}: {host} has no address"))?;
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    let host_header = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: mjpeg-bench\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes();
    let tls = match https {
        true => Some(tls::target(&host_header_host(&u)?, ca, http2)?),
        false => None,
    };
    let uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL an HTTP/2 request takes"))?;
    let websocket = websocket.then(|| ws_target(&u, &host_header)).transpose()?;
    Ok(Target {
        addr,
        request,
        tls,
        uri,
        websocket,
    })
}

/// The socket of the server of the stream URL `u`, and the stream's name.
fn ws_target(u: &url::Url, host: &str) -> anyhow::Result<WsTarget> {
    let stream = match u.path() {
        "/stream" => None,
        path => match path.strip_prefix("/stream/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Some(name.to_string()),
            _ => bail!("{u}: --websocket needs a stream URL, /stream or /stream/NAME"),
        },
    };
    let mut url = format!("ws://{host}/ws");
    if let Some((_, token)) = u.query_pairs().find(|(k, _)| k == "token") {
        url.push_str("?token=");
        url.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
    }
    Ok(WsTarget { url, stream })
}

/// The host of `u` as TLS checks it.
fn host_header_host(u: &url::Url) -> anyhow::Result<String> {
    u.host_str()
        .map(str::to_string)
        .with_context(|| format!("{u}: no host"))
}

/// State all clients of a run share.
pub(crate) struct Shared {
    /// Limits connections being opened at once.
    pub(crate) gate: Semaphore,
    /// Clients that received a first frame or gave up.
    pub(crate) ready: AtomicUsize,
    /// The measurement window, once it starts.
    pub(crate) window: OnceLock<Window>,
    /// Cancelled when the window ends.
    pub(crate) stop: CancellationToken,
    pub(crate) verify: bool,
    pub(crate) lenient: bool,
}

pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl Shared {
    fn in_window(&self, now: Instant) -> bool {
        self.window
            .get()
            .is_some_and(|w| now >= w.start && now < w.end)
    }
}

/// How a client's connection ended, if before the window did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Read until stopped.
    Ok,
    /// No connection, or no `200` stream response.
    Refused(String),
    /// A part broke the format.
    Invalid(String),
    /// The server closed the connection or it failed.
    Closed(String),
}

/// One client's figures.
pub(crate) struct ClientResult {
    pub(crate) slow: bool,
    pub(crate) connected: bool,
    pub(crate) frames: u64,
    pub(crate) repeats: u64,
    pub(crate) bytes: u64,
    pub(crate) latency_us: Vec<u32>,
    pub(crate) outcome: Outcome,
}

thread_local! {
    /// One read buffer per runtime thread, not per connection: ten thousand
    /// idle connections need no ten thousand buffers. It is borrowed only
    /// between a readiness wait and the synchronous read after it.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

/// One viewer: connects, reads and checks until stopped.
pub(crate) async fn client(
    target: Arc<Target>,
    slow_rate: Option<u64>,
    shared: Arc<Shared>,
) -> ClientResult {
    let mut r = ClientResult {
        slow: slow_rate.is_some(),
        connected: false,
        frames: 0,
        repeats: 0,
        bytes: 0,
        latency_us: Vec::new(),
        outcome: Outcome::Ok,
    };
    let stop = shared.stop.clone();
    let permit = tokio::select! {
        _ = stop.cancelled() => return r,
        p = shared.gate.acquire() => p.ok(),
    };
    let stream = tokio::select! {
        _ = stop.cancelled() => return r,
        s = TcpStream::connect(target.addr) => s,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            r.outcome = Outcome::Refused(format!("connect to {}: {e}", target.addr));
            return r;
        }
    };
    let mut viewer = Viewer {
        r,
        parser: if shared.lenient {
            Parser::Lenient(LenientParser::new())
        } else {
            Parser::Strict(StreamParser::new(shared.verify))
        },
        ready: Ready(Some(&shared.ready)),
        last_timestamp: None,
        permit,
        shared: &shared,
        // A slow client reads a twentieth of a second's worth at a time
        // and then waits until its average rate is back under the cap.
        chunk: slow_rate.map_or(usize::MAX, |rate| (rate as usize / 20).max(1024)),
        slow_rate,
        paced_from: None,
    };
    let end = match (&target.tls, &target.websocket) {
        (None, Some(ws)) => viewer.websocket(stream, ws).await,
        (None, None) => viewer.plain(stream, &target.request).await,
        (Some(tls), _) => {
            let handshake = tokio::select! {
                _ = stop.cancelled() => return viewer.r,
                h = tls.connector.connect(tls.name.clone(), stream) => h,
            };
            match handshake {
                Err(e) => Err(Outcome::Refused(format!("TLS handshake: {e}"))),
                // The server must agree to HTTP/2, or this would measure
                // HTTP/1.1 under another name.
                Ok(io) if tls.http2 && io.get_ref().1.alpn_protocol() != Some(b"h2") => Err(
                    Outcome::Refused("the server did not choose HTTP/2 (ALPN h2)".into()),
                ),
                Ok(io) if tls.http2 => viewer.http2(io, &target.uri).await,
                Ok(io) => viewer.https(io, &target.request).await,
            }
        }
    };
    if let Err(outcome) = end {
        viewer.r.outcome = outcome;
    }
    viewer.r
}

/// The parser of one response: strict for this project's server, lenient
/// (`--lenient`) for others.
enum Parser {
    Strict(StreamParser),
    Lenient(LenientParser),
}

impl Parser {
    fn feed(
        &mut self,
        data: &[u8],
        on_frame: &mut dyn FnMut(FrameSeen),
    ) -> Result<(), StreamError> {
        match self {
            Parser::Strict(p) => p.feed(data, on_frame),
            Parser::Lenient(p) => p.feed(data, on_frame),
        }
    }

    fn head_done(&self) -> bool {
        match self {
            Parser::Strict(p) => p.head_done(),
            Parser::Lenient(p) => p.head_done(),
        }
    }
}

/// One client while it reads: its figures and the state of its stream.
struct Viewer<'a> {
    r: ClientResult,
    parser: Parser,
    ready: Ready<'a>,
    last_timestamp: Option<f64>,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    shared: &'a Shared,
    /// Most bytes read at once.
    chunk: usize,
    slow_rate: Option<u64>,
    paced_from: Option<(Instant, u64)>,
}

impl Viewer<'_> {
    /// Plain HTTP: the request, then readiness waits and reads into the
    /// thread's buffer until stopped.
    async fn plain(&mut self, mut stream: TcpStream, request: &[u8]) -> Result<(), Outcome> {
        stream
            .write_all(request)
            .await
            .map_err(|e| Outcome::Refused(format!("sending the request: {e}")))?;
        let stop = self.shared.stop.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                res = stream.readable() => {
                    res.map_err(|e| Outcome::Closed(format!("waiting to read: {e}")))?;
                }
            }
            let n = READ_BUF.with_borrow_mut(|buf| {
                let len = buf.len().min(self.chunk);
                let n = match stream.try_read(&mut buf[..len]) {
                    Ok(0) => return Err(Outcome::Closed("closed by the server".into())),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
                    Err(e) => return Err(Outcome::Closed(format!("read: {e}"))),
                };
                self.take(&buf[..n])?;
                Ok(n)
            })?;
            if self.pace(n).await {
                return Ok(());
            }
        }
    }

    /// HTTPS: the request, then reads into a buffer of the connection's.
    async fn https<S>(&mut self, mut io: S, request: &[u8]) -> Result<(), Outcome>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        io.write_all(request)
            .await
            .map_err(|e| Outcome::Refused(format!("sending the request: {e}")))?;
        let stop = self.shared.stop.clone();
        let mut buf = vec![0; TLS_READ.min(self.chunk)];
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = io.read(&mut buf) => n.map_err(|e| Outcome::Closed(format!("read: {e}")))?,
            };
            if n == 0 {
                return Err(Outcome::Closed("closed by the server".into()));
            }
            self.take(&buf[..n])?;
            if self.pace(n).await {
                return Ok(());
            }
        }
    }

    /// HTTP/2: one request on a connection of its own; the response's
    /// head becomes the HTTP/1 head the parser checks, and its DATA frames
    /// the body.
    async fn http2<S>(&mut self, io: S, uri: &http::Uri) -> Result<(), Outcome>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let refused = |what: &str, e: h2::Error| Outcome::Refused(format!("HTTP/2 {what}: {e}"));
        let (mut send, connection) = h2::client::handshake(io)
            .await
            .map_err(|e| refused("handshake", e))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let _driver = AbortOnDrop(driver);
        let request = http::Request::get(uri.clone())
            .body(())
            .map_err(|e| Outcome::Refused(format!("HTTP/2 request: {e}")))?;
        let (response, _) = send
            .send_request(request, true)
            .map_err(|e| refused("request", e))?;
        let stop = self.shared.stop.clone();
        let response = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = response => r.map_err(|e| refused("response", e))?,
        };
        let (head, mut body) = response.into_parts();
        let mut head1 = format!("HTTP/1.1 {} -\r\n", head.status.as_u16());
        for (name, value) in &head.headers {
            if let Ok(value) = value.to_str() {
                head1.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head1.push_str("\r\n");
        self.take(head1.as_bytes())?;
        loop {
            let data = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                d = body.data() => d,
            };
            let data = match data {
                None => return Err(Outcome::Closed("the server ended the stream".into())),
                Some(Err(e)) => return Err(Outcome::Closed(format!("HTTP/2 body: {e}"))),
                Some(Ok(data)) => data,
            };
            let _ = body.flow_control().release_capacity(data.len());
            self.take(&data)?;
            if self.pace(data.len()).await {
                return Ok(());
            }
        }
    }

    /// Feeds what arrived to the parser and counts it.
    fn take(&mut self, data: &[u8]) -> Result<(), Outcome> {
        let now = Instant::now();
        if self.shared.in_window(now) {
            self.r.bytes += data.len() as u64;
        }
        let (r, ready, last, shared) = (
            &mut self.r,
            &mut self.ready,
            &mut self.last_timestamp,
            self.shared,
        );
        self.parser
            .feed(data, &mut |f: FrameSeen| {
                ready.done();
                // Without a timestamp a part cannot be told from a re-send:
                // it counts as a new frame, with no latency.
                let repeat = f.timestamp.is_some() && f.timestamp == *last;
                *last = f.timestamp;
                let now = Instant::now();
                if repeat {
                    if shared.in_window(now) {
                        r.repeats += 1;
                    }
                } else if shared.in_window(now) {
                    r.frames += 1;
                    if let Some(t) = f.timestamp {
                        let lat = unix_now() - t;
                        r.latency_us
                            .push((lat.max(0.0) * 1e6).min(u32::MAX as f64) as u32);
                    }
                }
            })
            .map_err(|e| match e {
                StreamError::Response(e) => Outcome::Refused(e),
                e => Outcome::Invalid(e.to_string()),
            })?;
        if self.parser.head_done() {
            self.r.connected = true;
            // The next client may connect once this one is answered.
            self.permit.take();
        }
        Ok(())
    }

    /// A slow client waits after `n` bytes until its average rate is back
    /// under its cap; true if stopped meanwhile.
    async fn pace(&mut self, n: usize) -> bool {
        let (Some(rate), true) = (self.slow_rate, n > 0) else {
            return false;
        };
        let (since, total) = self.paced_from.get_or_insert((Instant::now(), 0));
        *total += n as u64;
        let due = *since + Duration::from_secs_f64(*total as f64 / rate as f64);
        timeout_at(due, self.shared.stop.cancelled()).await.is_ok()
    }
}

/// Bytes read at a time from a TLS connection: one record's worth.
const TLS_READ: usize = 16 * 1024;

/// Ends a connection's driver task with the client.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts a client as ready once, whatever way it ends.
struct Ready<'a>(Option<&'a AtomicUsize>);

impl Ready<'_> {
    fn done(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
