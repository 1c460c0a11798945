//! One viewer: a raw TCP connection that reads the stream, checks every
//! part and counts what arrived in the measurement window.

use anyhow::{bail, Context};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::parser::{FrameSeen, StreamError, StreamParser};

/// The stream to load: where to connect and what to ask for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
}

pub(crate) async fn target(url: &str) -> anyhow::Result<Target> {
    let u = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    if u.scheme() != "http" {
        bail!("{url}: only http:// URLs can be loaded");
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
    Ok(Target { addr, request })
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
    let mut ready = Ready(Some(&shared.ready));
    let stop = shared.stop.clone();
    let permit = tokio::select! {
        _ = stop.cancelled() => return r,
        p = shared.gate.acquire() => p.ok(),
    };
    let stream = tokio::select! {
        _ = stop.cancelled() => return r,
        s = TcpStream::connect(target.addr) => s,
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            r.outcome = Outcome::Refused(format!("connect to {}: {e}", target.addr));
            return r;
        }
    };
    if let Err(e) = stream.write_all(&target.request).await {
        r.outcome = Outcome::Refused(format!("sending the request: {e}"));
        return r;
    }
    let mut permit = permit;
    let mut parser = StreamParser::new(shared.verify);
    // A slow client reads a twentieth of a second's worth at a time and
    // then waits until its average rate is back under the cap.
    let chunk = slow_rate.map_or(usize::MAX, |rate| (rate as usize / 20).max(1024));
    let mut paced_from: Option<(Instant, u64)> = None;
    let mut last_timestamp = f64::NAN;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            res = stream.readable() => {
                if let Err(e) = res {
                    r.outcome = Outcome::Closed(format!("waiting to read: {e}"));
                    break;
                }
            }
        }
        let read = READ_BUF.with_borrow_mut(|buf| {
            let len = buf.len().min(chunk);
            let n = match stream.try_read(&mut buf[..len]) {
                Ok(0) => return Err(Outcome::Closed("closed by the server".into())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(Outcome::Closed(format!("read: {e}"))),
            };
            let now = Instant::now();
            if shared.in_window(now) {
                r.bytes += n as u64;
            }
            parser
                .feed(&buf[..n], &mut |f: FrameSeen| {
                    ready.done();
                    let repeat = f.timestamp == last_timestamp;
                    last_timestamp = f.timestamp;
                    let now = Instant::now();
                    if repeat {
                        if shared.in_window(now) {
                            r.repeats += 1;
                        }
                    } else if shared.in_window(now) {
                        r.frames += 1;
                        let lat = unix_now() - f.timestamp;
                        r.latency_us
                            .push((lat.max(0.0) * 1e6).min(u32::MAX as f64) as u32);
                    }
                })
                .map_err(|e| match e {
                    StreamError::Response(e) => Outcome::Refused(e),
                    e => Outcome::Invalid(e.to_string()),
                })?;
            Ok(n)
        });
        let n = match read {
            Ok(n) => n,
            Err(outcome) => {
                r.outcome = outcome;
                break;
            }
        };
        if parser.head_done() {
            r.connected = true;
            // The next client may connect once this one is answered.
            permit.take();
        }
        if let (Some(rate), true) = (slow_rate, n > 0) {
            let (since, total) = paced_from.get_or_insert((Instant::now(), 0));
            *total += n as u64;
            let due = *since + Duration::from_secs_f64(*total as f64 / rate as f64);
            if timeout_at(due, stop.cancelled()).await.is_ok() {
                break;
            }
        }
    }
    r
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
