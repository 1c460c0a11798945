//! A load client for MJPEG streams: many viewers at once, every part checked.
//!
//! The project claims to be fast; this module is how the claim is measured.
//! [`run`] opens N stream connections to one URL, reads them all at once on
//! raw TCP (no HTTP client library, whose buffering and allocation would be
//! measured instead of the server), and checks every byte that the strict
//! embedded clients check: the status line and `Content-Type`, the opening
//! delimiter, every part header line (`Name: value`, CRLF, shorter than the
//! 128 bytes ffmpeg allows), `Content-Type: image/jpeg`, `Content-Length`,
//! `X-Timestamp`, exactly `Content-Length` bytes of body that start with
//! `FF D8` and end with `FF D9`, and the exact `\r\n--boundary\r\n` after it.
//! A full marker walk of every JPEG ([`mjpeg_server::jpeg::validate`]) is optional
//! ([`BenchOptions::verify_jpeg`]): it needs the whole frame in memory and
//! costs the client CPU that, on a small machine, the server then lacks.
//!
//! A part that breaks any rule is an *invalid frame*; the connection is
//! closed at once, since a client cannot know where the next part starts.
//!
//! ## What is measured
//!
//! All clients connect first (at most [`BenchOptions::max_connecting`] at a
//! time, so the server's listen backlog never overflows), then a warm-up
//! lets TCP windows grow, then a measurement window of
//! [`BenchOptions::duration`] counts, per client, the frames completed inside
//! it. Latency is the client's wall clock when a frame's closing delimiter
//! arrives minus the frame's `X-Timestamp`, which is when the server
//! published it: both clocks are this machine's, so the figure is exact for
//! a client on the same machine. With [`BenchOptions::server_pid`] the
//! server's CPU time over the window and its resident memory are read from
//! `/proc`, so that CPU seconds per delivered gigabyte can be computed.
//!
//! Slow readers ([`BenchOptions::slow_share`]) read at a capped byte rate, as
//! viewers on a poor link do, and are reported apart from the others: the
//! point of them is to show that they do not slow anyone else down.
//!
//! Units: MB and GB are 10^6 and 10^9 bytes, as network rates are.

use anyhow::{bail, Context};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use mjpeg_server::jpeg::{self, JpegError};
use mjpeg_server::multipart::reader::boundary_from_content_type;

/// What to load and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The stream's URL, `http://HOST:PORT/PATH`.
    pub url: String,
    /// How many connections to open.
    pub clients: usize,
    /// How long the measurement window lasts.
    pub duration: Duration,
    /// How long to read after every client got its first frame and before
    /// the window starts.
    pub warmup: Duration,
    /// How long connecting may take in all; clients not receiving by then
    /// are reported as failed and the measurement starts without them.
    pub connect_timeout: Duration,
    /// Most connections being opened at once (connect until response head).
    pub max_connecting: usize,
    /// Share of clients, 0 to 1, that read at [`BenchOptions::slow_rate`].
    pub slow_share: f64,
    /// Bytes per second a slow client reads.
    pub slow_rate: u64,
    /// Walk every JPEG's markers in full, not only its first and last bytes.
    pub verify_jpeg: bool,
    /// The server's process id, to read its CPU time and memory from
    /// `/proc` (same machine only).
    pub server_pid: Option<u32>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "http://127.0.0.1:8080/stream".into(),
            clients: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            max_connecting: 256,
            slow_share: 0.0,
            slow_rate: 100_000,
            verify_jpeg: false,
            server_pid: None,
        }
    }
}

/// The result of a run; [`fmt::Display`] renders it as a table, serde as
/// JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL loaded.
    pub url: String,
    /// Connections asked for.
    pub clients: usize,
    /// Connections that got a `200` stream response.
    pub connected: usize,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
    /// Clients reading at full speed.
    pub fast: Group,
    /// Rate-capped clients, if any were asked for.
    pub slow: Option<Group>,
    /// Bytes received by all clients in the window, MB per second.
    pub mb_per_s: f64,
    /// Parts that broke the format (each one ends its connection).
    pub invalid_frames: u64,
    /// Connections that ended before the window did, other than for an
    /// invalid frame.
    pub disconnects: u64,
    /// What went wrong, most frequent first, as `count× message`.
    pub errors: Vec<String>,
    /// The server's CPU and memory, if its pid was given.
    pub server: Option<ServerUsage>,
    /// CPU seconds this load client used during the window.
    pub client_cpu_s: f64,
    /// CPU seconds the whole machine was busy during the window, all cores
    /// together (from `/proc/stat`): minus server and client, what other
    /// programs took, which tells how noisy the figures are.
    pub machine_cpu_s: Option<f64>,
    /// Cores of the machine.
    pub cores: usize,
    /// The open-file limit this client ran with.
    pub fd_limit: u64,
}

/// Figures for one group of clients (fast or slow).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Clients in the group.
    pub clients: usize,
    /// Clients that completed at least one frame in the window.
    pub receiving: usize,
    /// New frames completed in the window, all clients together.
    pub frames: u64,
    /// Frames received again (the same `X-Timestamp` as the one before on
    /// that connection): the server's re-send to idle viewers. Counted in
    /// MB/s, not in fps or latency.
    pub repeats: u64,
    /// New frames per second per client, over every client of the group
    /// (a client that never connected counts as 0).
    pub fps: Spread,
    /// Bytes received by the group in the window, MB per second.
    pub mb_per_s: f64,
    /// Publish-to-receive latency of every frame of the window; `None`
    /// without frames.
    pub latency_ms: Option<Latency>,
}

/// Minimum, median, mean and maximum.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Spread {
    /// Smallest value.
    pub min: f64,
    /// Middle value.
    pub median: f64,
    /// Average.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
}

/// Latency percentiles, milliseconds (nearest-rank).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The server's use of the machine during the window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// Its process id.
    pub pid: u32,
    /// User plus system CPU time over the window, seconds.
    pub cpu_s: f64,
    /// The same as a share of one core, percent.
    pub cpu_percent: f64,
    /// CPU seconds per 10^9 bytes delivered to the clients; `None` if
    /// nothing was delivered.
    pub cpu_s_per_gb: Option<f64>,
    /// Resident memory at the end of the window, MB (VmRSS).
    pub rss_mb: f64,
    /// Peak resident memory since the server started, MB (VmHWM).
    pub peak_rss_mb: f64,
}

impl Report {
    /// What makes this run a failure rather than a measurement: invalid
    /// frames, connections that could not be opened, clients that got no
    /// frame. Empty if none.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.invalid_frames > 0 {
            p.push(format!("{} invalid frames", self.invalid_frames));
        }
        if self.connected < self.clients {
            p.push(format!(
                "only {} of {} connections could be opened",
                self.connected, self.clients
            ));
        }
        for (name, g) in [("fast", Some(&self.fast)), ("slow", self.slow.as_ref())] {
            if let Some(g) = g.filter(|g| g.receiving < g.clients) {
                p.push(format!(
                    "{} of {} {name} clients received no frame in the window",
                    g.clients - g.receiving,
                    g.clients
                ));
            }
        }
        p
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} clients -> {}, {:.1} s measured; connected {}, invalid frames {}, disconnects {}",
            self.clients,
            self.url,
            self.window_s,
            self.connected,
            self.invalid_frames,
            self.disconnects
        )?;
        writeln!(
            f,
            "{:<5} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
            "group",
            "clients",
            "receiving",
            "repeats",
            "fps min",
            "median",
            "max",
            "MB/s",
            "lat p50",
            "p99",
            "max ms"
        )?;
        for (name, g) in [("fast", Some(&self.fast)), ("slow", self.slow.as_ref())] {
            let Some(g) = g else { continue };
            let (p50, p99, max) = match g.latency_ms {
                Some(l) => (
                    format!("{:.2}", l.p50),
                    format!("{:.2}", l.p99),
                    format!("{:.2}", l.max),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            writeln!(
                f,
                "{name:<5} {:>7} {:>9} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {p50:>8} {p99:>8} {max:>8}",
                g.clients, g.receiving, g.repeats, g.fps.min, g.fps.median, g.fps.max, g.mb_per_s
            )?;
        }
        writeln!(f, "all clients: {:.1} MB/s", self.mb_per_s)?;
        if let Some(s) = &self.server {
            let per_gb = s.cpu_s_per_gb.map_or("-".into(), |v| format!("{v:.3}"));
            writeln!(
                f,
                "server pid {}: {:.2} CPU-s ({:.0} % of a core), {per_gb} CPU-s per GB, RSS {:.1} MB, peak {:.1} MB",
                s.pid, s.cpu_s, s.cpu_percent, s.rss_mb, s.peak_rss_mb
            )?;
        }
        writeln!(
            f,
            "load client: {:.2} CPU-s, fd limit {}",
            self.client_cpu_s, self.fd_limit
        )?;
        if let Some(m) = self.machine_cpu_s {
            let server = self.server.as_ref().map_or(0.0, |s| s.cpu_s);
            writeln!(
                f,
                "machine: {m:.2} CPU-s busy of {:.1} ({} cores); other programs {:.2} CPU-s{}",
                self.window_s * self.cores as f64,
                self.cores,
                (m - server - self.client_cpu_s).max(0.0),
                if self.server.is_none() {
                    " (server included: no --server-pid)"
                } else {
                    ""
                }
            )?;
        }
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

/// Parses a rate such as `100K` or `2.5M` into bytes per second. Suffixes
/// are decimal (K = 1000), like the MB/s of the report.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v * mult >= 1.0 && v * mult < 1e15 => Ok((v * mult) as u64),
        _ => Err(format!(
            "{s:?} is not a rate in bytes per second, e.g. 100K or 2M"
        )),
    }
}

/// Raises this process's open-file soft limit to its hard limit (with the
/// `rlimit` crate) and fails, saying so, if it is still too low for
/// `clients` connections.
pub fn raise_fd_limit(clients: usize) -> anyhow::Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot read or raise the open-file limit (RLIMIT_NOFILE)")?;
    // Stdio, the runtime's epoll and eventfd, and some slack for the
    // resolver: a few descriptors besides one per connection.
    let need = clients as u64 + 32;
    if limit < need {
        bail!(
            "cannot open {clients} connections: each needs a file descriptor and the open-file \
             limit is {limit} even after raising it to the hard limit; raise the hard limit \
             (as root: ulimit -Hn {need}, or LimitNOFILE= in a service) or use fewer clients"
        );
    }
    Ok(limit)
}

/// The stream to load: where to connect and what to ask for.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
}

async fn target(url: &str) -> anyhow::Result<Target> {
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

/// Loads `opts.url` as described by `opts` and reports what was measured.
///
/// With `clients == 0` nothing connects: the run only watches the server's
/// CPU and memory for the window (an idle server).
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Report> {
    if !(0.0..=1.0).contains(&opts.slow_share) {
        bail!("the slow share must be between 0 and 1");
    }
    let fd_limit = raise_fd_limit(opts.clients)?;
    let target = Arc::new(target(&opts.url).await?);
    let shared = Arc::new(Shared {
        gate: Semaphore::new(opts.max_connecting.max(1)),
        ready: AtomicUsize::new(0),
        window: OnceLock::new(),
        stop: CancellationToken::new(),
        verify: opts.verify_jpeg,
    });
    let n_slow = (opts.clients as f64 * opts.slow_share).round() as usize;
    let mut tasks = Vec::with_capacity(opts.clients);
    for i in 0..opts.clients {
        // Slow clients are spread evenly through the connection order, so
        // that they are not all served by the same server thread.
        let slow = n_slow > 0 && (i * n_slow) / opts.clients != ((i + 1) * n_slow) / opts.clients;
        let rate = slow.then_some(opts.slow_rate);
        tasks.push(tokio::spawn(client(target.clone(), rate, shared.clone())));
    }

    // Wait until every client receives (or gave up), then warm up.
    let deadline = Instant::now() + opts.connect_timeout;
    while shared.ready.load(Ordering::Relaxed) < opts.clients && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }
    sleep(opts.warmup).await;

    let server_before = match opts.server_pid {
        Some(pid) => Some(
            cpu_seconds(pid).with_context(|| format!("cannot read the CPU time of pid {pid}"))?,
        ),
        None => None,
    };
    let client_before = cpu_seconds_self();
    let machine_before = machine_busy_seconds().ok();
    let start = Instant::now();
    let _ = shared.window.set(Window {
        start,
        end: start + opts.duration,
    });
    sleep_until(start + opts.duration).await;
    let window_s = start.elapsed().as_secs_f64();
    let server_after = match opts.server_pid {
        Some(pid) => Some((
            pid,
            cpu_seconds(pid).with_context(|| format!("pid {pid} ended during the run"))?,
            memory(pid).with_context(|| format!("cannot read the memory of pid {pid}"))?,
        )),
        None => None,
    };
    let client_cpu_s = cpu_seconds_self() - client_before;
    let machine_cpu_s = match (machine_before, machine_busy_seconds()) {
        (Some(before), Ok(after)) => Some(after - before),
        _ => None,
    };
    shared.stop.cancel();

    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.context("a client task panicked")?);
    }
    let mut report = summarize(&opts.url, results, window_s, n_slow > 0);
    report.fd_limit = fd_limit;
    report.client_cpu_s = client_cpu_s;
    report.machine_cpu_s = machine_cpu_s;
    if let (Some(before), Some((pid, after, (rss, hwm)))) = (server_before, server_after) {
        let cpu_s = after - before;
        let gb = report.mb_per_s * window_s / 1000.0;
        report.server = Some(ServerUsage {
            pid,
            cpu_s,
            cpu_percent: 100.0 * cpu_s / window_s,
            cpu_s_per_gb: (gb > 0.0).then(|| cpu_s / gb),
            rss_mb: rss,
            peak_rss_mb: hwm,
        });
    }
    Ok(report)
}

/// State all clients of a run share.
struct Shared {
    /// Limits connections being opened at once.
    gate: Semaphore,
    /// Clients that received a first frame or gave up.
    ready: AtomicUsize,
    /// The measurement window, once it starts.
    window: OnceLock<Window>,
    /// Cancelled when the window ends.
    stop: CancellationToken,
    verify: bool,
}

struct Window {
    start: Instant,
    end: Instant,
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
enum Outcome {
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
struct ClientResult {
    slow: bool,
    connected: bool,
    frames: u64,
    repeats: u64,
    bytes: u64,
    latency_us: Vec<u32>,
    outcome: Outcome,
}

thread_local! {
    /// One read buffer per runtime thread, not per connection: ten thousand
    /// idle connections need no ten thousand buffers. It is borrowed only
    /// between a readiness wait and the synchronous read after it.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

/// One viewer: connects, reads and checks until stopped.
async fn client(target: Arc<Target>, slow_rate: Option<u64>, shared: Arc<Shared>) -> ClientResult {
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

fn summarize(url: &str, results: Vec<ClientResult>, window_s: f64, any_slow: bool) -> Report {
    let mut errors: HashMap<String, usize> = HashMap::new();
    let (mut invalid, mut disconnects) = (0, 0);
    for r in &results {
        let msg = match &r.outcome {
            Outcome::Ok => continue,
            Outcome::Refused(m) => m.clone(),
            Outcome::Invalid(m) => {
                invalid += 1;
                format!("invalid frame: {m}")
            }
            Outcome::Closed(m) => {
                disconnects += 1;
                m.clone()
            }
        };
        *errors.entry(msg).or_default() += 1;
    }
    let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let errors = errors
        .into_iter()
        .take(10)
        .map(|(m, n)| format!("{n}x {m}"))
        .collect();
    let connected = results.iter().filter(|r| r.connected).count();
    let total_bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let (slow, fast): (Vec<ClientResult>, Vec<ClientResult>) =
        results.into_iter().partition(|r| r.slow);
    Report {
        url: url.to_string(),
        clients: fast.len() + slow.len(),
        connected,
        window_s,
        fast: group(fast, window_s),
        slow: any_slow.then(|| group(slow, window_s)),
        mb_per_s: total_bytes as f64 / window_s / 1e6,
        invalid_frames: invalid,
        disconnects,
        errors,
        server: None,
        client_cpu_s: 0.0,
        machine_cpu_s: None,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fd_limit: 0,
    }
}

fn group(results: Vec<ClientResult>, window_s: f64) -> Group {
    let mut fps: Vec<f64> = results.iter().map(|r| r.frames as f64 / window_s).collect();
    fps.sort_by(f64::total_cmp);
    let mut lat: Vec<u32> = results
        .iter()
        .flat_map(|r| r.latency_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let ms = |us: u32| f64::from(us) / 1000.0;
    Group {
        clients: results.len(),
        receiving: results.iter().filter(|r| r.frames > 0).count(),
        frames: results.iter().map(|r| r.frames).sum(),
        repeats: results.iter().map(|r| r.repeats).sum(),
        fps: spread(&fps),
        mb_per_s: results.iter().map(|r| r.bytes).sum::<u64>() as f64 / window_s / 1e6,
        latency_ms: (!lat.is_empty()).then(|| Latency {
            p50: ms(percentile(&lat, 0.50)),
            p99: ms(percentile(&lat, 0.99)),
            max: ms(lat[lat.len() - 1]),
        }),
    }
}

/// Nearest-rank percentile of sorted, non-empty `v`.
fn percentile(v: &[u32], p: f64) -> u32 {
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Spread of sorted `v`; all zero if empty.
fn spread(v: &[f64]) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        min: v[0],
        median,
        mean: v.iter().sum::<f64>() / n as f64,
        max: v[n - 1],
    }
}

/// Clock ticks per second in `/proc/PID/stat`. The kernel exports CPU
/// times in USER_HZ, which is 100 on every architecture Linux runs Rust on
/// (it is fixed for the ABI, whatever the kernel's own HZ).
const USER_HZ: f64 = 100.0;

/// User plus system CPU time of process `pid` (all its threads), seconds.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    cpu_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

fn cpu_seconds_self() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .and_then(|s| cpu_from_stat(&s))
        .unwrap_or(0.0)
}

fn cpu_from_stat(stat: &str) -> std::io::Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces, so
    // fields are counted from the last ')': state is field 3, utime 14 and
    // stime 15.
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc stat");
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> std::io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / USER_HZ)
            .ok_or_else(bad)
    };
    Ok(tick(11)? + tick(12)?)
}

/// Seconds all cores together spent busy since boot: the first line of
/// `/proc/stat` less idle and iowait.
fn machine_busy_seconds() -> std::io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc/stat");
    let line = stat.lines().next().ok_or_else(bad)?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(total.saturating_sub(idle) as f64 / USER_HZ)
}

/// Resident memory of process `pid` now and at its peak (VmRSS, VmHWM), MB.
pub fn memory(pid: u32) -> std::io::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((kb("VmRSS:") * 1024.0 / 1e6, kb("VmHWM:") * 1024.0 / 1e6))
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSeen {
    /// JPEG size in bytes.
    pub len: usize,
    /// Its `X-Timestamp`: Unix seconds when it was published.
    pub timestamp: f64,
}

/// Why a stream response is not what a strict client accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// The response head: status, `Content-Type`, framing.
    #[error("{0}")]
    Response(String),
    /// A line of a part header block is malformed.
    #[error("bad part header line {line:?}: {why}")]
    BadLine {
        /// The line, lossily decoded.
        line: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A required part header is missing or has a bad value.
    #[error("part header {name}: {why}")]
    BadHeader {
        /// The header's name.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The body does not start with SOI or end with EOI.
    #[error(
        "the body is not one JPEG: starts {start:02X?}, ends {end:02X?} (want [FF, D8] … [FF, D9])"
    )]
    NotJpeg {
        /// Its first two bytes.
        start: [u8; 2],
        /// Its last two bytes.
        end: [u8; 2],
    },
    /// The full marker walk ([`BenchOptions::verify_jpeg`]) failed.
    #[error("the JPEG is corrupt: {0}")]
    Jpeg(JpegError),
    /// The JPEG ends (by its marker walk) before the part does.
    #[error("the JPEG ends after {jpeg} bytes but the part holds {part}")]
    TrailingBytes {
        /// Where the JPEG's EOI ends.
        jpeg: usize,
        /// The part's Content-Length.
        part: usize,
    },
    /// The bytes after a body (or before the first part) are not the
    /// delimiter.
    #[error("expected {expected:?} at {what}, got {got:?}")]
    BadDelimiter {
        /// Where: the preamble or after a frame.
        what: &'static str,
        /// The delimiter.
        expected: String,
        /// What came instead (from the first differing byte on).
        got: String,
    },
}

#[derive(Debug)]
enum State {
    /// The status line and headers of the response.
    Head,
    /// Matching `delimiter[pos..]`; `pos` starts at 2 for the opening
    /// delimiter, which has no CRLF before it.
    Delimiter { pos: usize, preamble: bool },
    /// A part's header lines.
    PartHeaders,
    /// A body: how much is left of it.
    Body { remaining: usize },
}

/// A strict, incremental parser of one stream response: feed it bytes as
/// they arrive, and it calls back for every complete, valid part.
///
/// It keeps only a partial header line between reads (and the current JPEG
/// if it verifies them in full), so ten thousand parsers cost little memory.
#[derive(Debug)]
pub struct StreamParser {
    state: State,
    line: Vec<u8>,
    head_lines: usize,
    /// `\r\n--BOUNDARY\r\n`, known once the head is read.
    delimiter: Vec<u8>,
    // The part being read.
    content_type: bool,
    len: Option<usize>,
    timestamp: Option<f64>,
    first: [u8; 2],
    last: [u8; 2],
    verify: bool,
    body: Vec<u8>,
}

/// Longest line of a response head.
const MAX_HEAD_LINE: usize = 8 * 1024;
/// Longest part header line, without its CRLF: ffmpeg's reader refuses
/// longer ones.
const MAX_PART_LINE: usize = 127;

impl StreamParser {
    /// A parser at the start of a response. With `verify`, every JPEG gets
    /// a full marker walk, not only a look at its first and last bytes.
    pub fn new(verify: bool) -> StreamParser {
        StreamParser {
            state: State::Head,
            line: Vec::with_capacity(128),
            head_lines: 0,
            delimiter: Vec::new(),
            content_type: false,
            len: None,
            timestamp: None,
            first: [0; 2],
            last: [0; 2],
            verify,
            body: Vec::new(),
        }
    }

    /// True once the response head was read and accepted.
    pub fn head_done(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// Parses `data`, calling `on_frame` for every part completed by it (a
    /// part is complete with the delimiter after it). After an error the
    /// stream cannot be followed any further.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut dyn FnMut(FrameSeen),
    ) -> Result<(), StreamError> {
        while !data.is_empty() {
            match self.state {
                State::Head | State::PartHeaders => {
                    let head = matches!(self.state, State::Head);
                    let max = if head {
                        MAX_HEAD_LINE
                    } else {
                        MAX_PART_LINE + 2
                    };
                    let (piece, complete) = match memchr::memchr(b'\n', data) {
                        Some(i) => (&data[..=i], true),
                        None => (data, false),
                    };
                    self.line.extend_from_slice(piece);
                    data = &data[piece.len()..];
                    if self.line.len() > max {
                        return Err(self.line_error(head, "too long"));
                    }
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        let res = if head {
                            self.head_line(&line)
                        } else {
                            self.part_line(&line)
                        };
                        self.line = line;
                        self.line.clear();
                        res?;
                    }
                }
                State::Delimiter { pos, preamble } => {
                    let want = &self.delimiter[pos..];
                    let n = want.len().min(data.len());
                    if data[..n] != want[..n] {
                        let at = (0..n).find(|&i| data[i] != want[i]).unwrap_or(0);
                        return Err(StreamError::BadDelimiter {
                            what: if preamble {
                                "the start of the body"
                            } else {
                                "the end of a frame"
                            },
                            expected: String::from_utf8_lossy(&self.delimiter[pos..]).into(),
                            got: String::from_utf8_lossy(&data[..(at + 32).min(data.len())]).into(),
                        });
                    }
                    data = &data[n..];
                    if pos + n < self.delimiter.len() {
                        self.state = State::Delimiter {
                            pos: pos + n,
                            preamble,
                        };
                    } else {
                        if !preamble {
                            on_frame(FrameSeen {
                                len: self.len.unwrap_or(0),
                                timestamp: self.timestamp.unwrap_or(0.0),
                            });
                        }
                        self.content_type = false;
                        self.len = None;
                        self.timestamp = None;
                        self.state = State::PartHeaders;
                    }
                }
                State::Body { remaining } => {
                    let take = remaining.min(data.len());
                    let chunk = &data[..take];
                    let pos = self.len.unwrap_or(0) - remaining;
                    for (i, &b) in chunk.iter().enumerate().take(2usize.saturating_sub(pos)) {
                        self.first[pos + i] = b;
                    }
                    self.last = match take {
                        1 => [self.last[1], chunk[0]],
                        _ => [chunk[take - 2], chunk[take - 1]],
                    };
                    if self.verify {
                        self.body.extend_from_slice(chunk);
                    }
                    data = &data[take..];
                    let remaining = remaining - take;
                    self.state = State::Body { remaining };
                    if remaining == 0 {
                        self.end_body()?;
                        self.state = State::Delimiter {
                            pos: 0,
                            preamble: false,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    fn line_error(&self, head: bool, why: &'static str) -> StreamError {
        let line = String::from_utf8_lossy(&self.line[..self.line.len().min(200)]).into();
        if head {
            StreamError::Response(format!("bad response head line {line:?}: {why}"))
        } else {
            StreamError::BadLine { line, why }
        }
    }

    fn head_line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let bad = |why: String| StreamError::Response(why);
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(bad(format!(
                "response head line not ended by CRLF: {:?}",
                String::from_utf8_lossy(line)
            )));
        };
        let text = String::from_utf8_lossy(text);
        self.head_lines += 1;
        if self.head_lines == 1 {
            let mut words = text.splitn(3, ' ');
            let version = words.next().unwrap_or("");
            let status = words.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") || status != "200" {
                return Err(bad(format!("the server answered {text:?}, not 200")));
            }
            return Ok(());
        }
        if text.is_empty() {
            if self.delimiter.is_empty() {
                return Err(bad("the response has no multipart Content-Type".into()));
            }
            self.state = State::Delimiter {
                pos: 2,
                preamble: true,
            };
            return Ok(());
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad(format!("response header without a colon: {text:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            let Some(boundary) = boundary_from_content_type(value).filter(|_| {
                value
                    .to_ascii_lowercase()
                    .starts_with("multipart/x-mixed-replace")
            }) else {
                return Err(bad(format!(
                    "Content-Type {value:?} is not multipart/x-mixed-replace with a boundary"
                )));
            };
            self.delimiter = format!("\r\n--{boundary}\r\n").into_bytes();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!(
                "Transfer-Encoding {value:?}: MJPEG clients need the body as is"
            )));
        }
        Ok(())
    }

    fn part_line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(self.line_error(false, "not ended by CRLF"));
        };
        if text.is_empty() {
            let len = self.len.ok_or(StreamError::BadHeader {
                name: "Content-Length",
                why: "missing".into(),
            })?;
            if !self.content_type {
                return Err(StreamError::BadHeader {
                    name: "Content-Type",
                    why: "missing".into(),
                });
            }
            if self.timestamp.is_none() {
                return Err(StreamError::BadHeader {
                    name: "X-Timestamp",
                    why: "missing".into(),
                });
            }
            self.first = [0; 2];
            self.last = [0; 2];
            self.body.clear();
            self.state = State::Body { remaining: len };
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(text) else {
            return Err(self.line_error(false, "not UTF-8"));
        };
        let Some((name, value)) = text.split_once(": ") else {
            return Err(StreamError::BadLine {
                line: text.into(),
                why: "not `Name: value`",
            });
        };
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(StreamError::BadLine {
                line: text.into(),
                why: "bad header name",
            });
        }
        if name.eq_ignore_ascii_case("content-type") {
            if !value.eq_ignore_ascii_case("image/jpeg") {
                return Err(StreamError::BadHeader {
                    name: "Content-Type",
                    why: format!("{value:?}, not image/jpeg"),
                });
            }
            self.content_type = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                // SOI and EOI alone are four bytes.
                Ok(n) if n >= 4 => self.len = Some(n),
                _ => {
                    return Err(StreamError::BadHeader {
                        name: "Content-Length",
                        why: format!("{value:?} is no JPEG size"),
                    })
                }
            }
        } else if name.eq_ignore_ascii_case("x-timestamp") {
            match value.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => self.timestamp = Some(t),
                _ => {
                    return Err(StreamError::BadHeader {
                        name: "X-Timestamp",
                        why: format!("{value:?} is not Unix seconds"),
                    })
                }
            }
        }
        Ok(())
    }

    fn end_body(&mut self) -> Result<(), StreamError> {
        if self.first != [0xFF, 0xD8] || self.last != [0xFF, 0xD9] {
            return Err(StreamError::NotJpeg {
                start: self.first,
                end: self.last,
            });
        }
        if self.verify {
            let info = jpeg::validate(&self.body).map_err(StreamError::Jpeg)?;
            if info.len != self.body.len() {
                return Err(StreamError::TrailingBytes {
                    jpeg: info.len,
                    part: self.body.len(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/jpeg_5k.jpg"
        ))
        .unwrap()
    }

    const HEAD: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-type: multipart/x-mixed-replace; boundary=b0\r\nconnection: close\r\n\r\n--b0\r\n";

    fn part(jpeg: &[u8], ts: &str) -> Vec<u8> {
        let mut p = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {ts}\r\n\r\n",
            jpeg.len()
        )
        .into_bytes();
        p.extend_from_slice(jpeg);
        p.extend_from_slice(b"\r\n--b0\r\n");
        p
    }

    fn parse(stream: &[u8], chunk: usize, verify: bool) -> Result<Vec<FrameSeen>, StreamError> {
        let mut p = StreamParser::new(verify);
        let mut seen = Vec::new();
        for c in stream.chunks(chunk) {
            p.feed(c, &mut |f| seen.push(f))?;
        }
        Ok(seen)
    }

    #[test]
    fn valid_streams_parse_in_any_chunking() {
        let j = jpeg();
        let mut s = HEAD.to_vec();
        s.extend(part(&j, "1.5"));
        s.extend(part(&j, "2.25"));
        for chunk in [1, 2, 3, 7, 100, 4096, s.len()] {
            for verify in [false, true] {
                let seen = parse(&s, chunk, verify).unwrap();
                assert_eq!(seen.len(), 2, "chunk {chunk}");
                assert_eq!(seen[1].timestamp, 2.25);
                assert_eq!(seen[0].len, j.len());
            }
        }
    }

    #[test]
    fn broken_streams_are_caught() {
        let j = jpeg();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"HTTP/1.0 503 x\r\n\r\n".to_vec(), "not 200"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec(),
                "not multipart",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-type: multipart/x-mixed-replace; boundary=b0\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                "Transfer-Encoding",
            ),
            ([HEAD, b"Content-Type: image/jpeg\nx"].concat(), "CRLF"),
            ([HEAD, b"Content-Type: image/png\r\n"].concat(), "not image/jpeg"),
            ([HEAD, b"Content-Type: image/jpeg\r\nX-Timestamp: 1\r\n\r\n"].concat(), "Content-Length"),
            ([HEAD, b"Content-Length: 9\r\nContent-Type: image/jpeg\r\n\r\n"].concat(), "X-Timestamp"),
            ([HEAD, &[b'x'; 200][..]].concat(), "too long"),
            ([&HEAD[..HEAD.len() - 3], b"1\r\n"].concat(), "start of the body"),
        ];
        for (stream, want) in cases {
            let err = parse(&stream, 5, false).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should say {want}");
        }
        // A body cut short of its Content-Length runs into the delimiter.
        let mut short = part(&j, "1");
        let at = short.iter().position(|&b| b == 0xFF).unwrap();
        short.remove(at + 100);
        let err = parse(&[HEAD, &short].concat(), 64, false).unwrap_err();
        assert!(
            matches!(
                err,
                StreamError::NotJpeg { .. } | StreamError::BadDelimiter { .. }
            ),
            "{err}"
        );
        // Not a JPEG at all.
        let err = parse(&[HEAD, &part(b"hello world", "1")].concat(), 3, false).unwrap_err();
        assert!(matches!(err, StreamError::NotJpeg { .. }), "{err}");
        // Right first and last bytes, corrupt inside: only the full walk sees it.
        let mut corrupt = j.clone();
        corrupt[2..6].copy_from_slice(&[0xFF, 0xC4, 0xFF, 0xFF]);
        let s = [HEAD, &part(&corrupt, "1")].concat();
        assert_eq!(parse(&s, 4096, false).unwrap().len(), 1);
        assert!(matches!(parse(&s, 4096, true), Err(StreamError::Jpeg(_))));
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_rate("100K"), Ok(100_000));
        assert_eq!(parse_rate("2.5MB/s"), Ok(2_500_000));
        assert_eq!(parse_rate("512"), Ok(512));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.99), 4);
        assert_eq!(percentile(&[7], 0.01), 7);
        let s = spread(&[1.0, 2.0, 3.0, 10.0]);
        assert_eq!((s.min, s.median, s.max, s.mean), (1.0, 2.5, 10.0, 4.0));
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(cpu_from_stat(stat).unwrap(), 4.0);
        assert!(cpu_seconds(std::process::id()).is_ok());
        assert!(machine_busy_seconds().unwrap() > 0.0);
        let (rss, hwm) = memory(std::process::id()).unwrap();
        assert!(rss > 0.0 && hwm >= rss);
    }
}
