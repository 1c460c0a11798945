//! What a run measured: the report, its table, and how the clients'
//! figures are summed up into it.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

use crate::client::{ClientResult, Outcome};

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

pub(crate) fn summarize(
    url: &str,
    results: Vec<ClientResult>,
    window_s: f64,
    any_slow: bool,
) -> Report {
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
pub(crate) fn percentile(v: &[u32], p: f64) -> u32 {
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Spread of sorted `v`; all zero if empty.
pub(crate) fn spread(v: &[f64]) -> Spread {
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
