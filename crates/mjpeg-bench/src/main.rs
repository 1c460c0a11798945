//! `mjpeg-bench`: opens many MJPEG stream connections at once, checks every
//! part, and reports frame rates, throughput, latency and the server's CPU
//! and memory. The work is done by the [`mjpeg_bench`] library; this file parses
//! flags, prints the report and turns its problems into the exit code.
//!
//! Exit codes: 0 measured, 1 measured but something failed (invalid frames,
//! connections that could not be opened, clients that got no frame), 2 the
//! run could not start.

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use mjpeg_bench::{self as bench, BenchOptions};

/// Load an MJPEG stream with many concurrent viewers and measure it.
#[derive(Debug, Parser)]
#[command(name = "mjpeg-bench", version, after_help = AFTER_HELP)]
struct Args {
    /// The stream to load.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/stream"
    )]
    url: String,

    /// Concurrent connections; 0 only watches the server (with --server-pid).
    #[arg(long, value_name = "N", default_value = "100")]
    clients: usize,

    /// Length of the measurement window, seconds.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    duration: Duration,

    /// Reading before the window starts, once every client receives.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = seconds)]
    warmup: Duration,

    /// How long all connections may take to open.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    connect_timeout: Duration,

    /// Most connections being opened at once.
    #[arg(long, value_name = "N", default_value = "256")]
    max_connecting: usize,

    /// Share of clients (0 to 1) that read slowly, reported separately.
    #[arg(long, value_name = "SHARE", default_value = "0")]
    slow_share: f64,

    /// Read rate of slow clients, bytes per second (K = 1000, M = 10^6).
    #[arg(long, value_name = "RATE", default_value = "100K", value_parser = bench::parse_rate)]
    slow_rate: u64,

    /// Walk every JPEG's markers in full (costs client CPU), not only its
    /// first and last bytes.
    #[arg(long)]
    verify_jpeg: bool,

    /// Load another server: accept a chunked body and parts without
    /// Content-Length or X-Timestamp, as browsers do (no latency without
    /// X-Timestamp). Without it every deviation from the strictest client
    /// ends the connection.
    #[arg(long)]
    lenient: bool,

    /// For an https:// URL: the PEM certificate of the server (or of the CA
    /// that signed it) to trust.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,

    /// Speak HTTP/2 to an https:// URL (ALPN h2): one HTTP/2 connection per
    /// client.
    #[arg(long)]
    http2: bool,

    /// Load the player's WebSocket instead: /ws of the URL's server,
    /// subscribed to the stream the URL names (/stream/NAME), one socket per
    /// client. http:// URLs only.
    #[arg(long)]
    websocket: bool,

    /// The server's process id: report its CPU time and memory (from /proc).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Worker threads of the load client (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Print the report as one JSON line on stdout (the table goes to
    /// stderr).
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "\
Examples:
  mjpeg-bench --url http://127.0.0.1:8080/stream/b --clients 1000 --duration 10
  mjpeg-bench --url http://127.0.0.1:8080/stream/b --clients 500 --slow-share 0.1 --slow-rate 100K
  mjpeg-bench --url https://127.0.0.1:8443/stream/b --ca cert.pem --http2 --clients 1000
  mjpeg-bench --url http://127.0.0.1:8080/stream/b --websocket --clients 1000
Serve a fixed frame to measure with:
  mjpeg-server --stream b=synthetic:tests/data/jpeg_50k.jpg#fps=30 --max-connections-per-address 0
(every client comes from one address, past the server's default of 256 per address)
The open-file soft limit is raised to the hard limit; each connection needs one.";

fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => {
            Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} seconds is too long"))
        }
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = BenchOptions {
        url: args.url,
        ca: args.ca,
        http2: args.http2,
        websocket: args.websocket,
        clients: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        connect_timeout: args.connect_timeout,
        max_connecting: args.max_connecting,
        slow_share: args.slow_share,
        slow_rate: args.slow_rate,
        verify_jpeg: args.verify_jpeg,
        lenient: args.lenient,
        server_pid: args.server_pid,
    };
    let report = match rt.block_on(bench::run(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        eprint!("{report}");
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{report}");
    }
    let problems = report.problems();
    for p in &problems {
        eprintln!("FAIL: {p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
