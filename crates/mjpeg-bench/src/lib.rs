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
//! Other servers, which send what browsers take but strict clients refuse,
//! are loaded with [`BenchOptions::lenient`] (`--lenient`): a chunked body
//! and parts found by their boundary, with no latency where they carry no
//! `X-Timestamp`.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

mod client;
mod lenient;
mod options;
mod parser;
mod procfs;
mod report;
mod tls;

pub use options::{parse_rate, BenchOptions};
pub use parser::{FrameSeen, StreamError, StreamParser};
pub use procfs::{cpu_seconds, memory};
pub use report::{Group, Latency, Report, ServerUsage, Spread};

use client::{client, target, Shared, Window};
use procfs::{cpu_seconds_self, machine_busy_seconds};
use report::summarize;

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

/// Loads `opts.url` as described by `opts` and reports what was measured.
///
/// With `clients == 0` nothing connects: the run only watches the server's
/// CPU and memory for the window (an idle server).
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Report> {
    if !(0.0..=1.0).contains(&opts.slow_share) {
        bail!("the slow share must be between 0 and 1");
    }
    let fd_limit = raise_fd_limit(opts.clients)?;
    let target = Arc::new(target(&opts.url, opts.ca.as_deref(), opts.http2, opts.websocket).await?);
    let shared = Arc::new(Shared {
        gate: Semaphore::new(opts.max_connecting.max(1)),
        ready: AtomicUsize::new(0),
        window: OnceLock::new(),
        stop: CancellationToken::new(),
        verify: opts.verify_jpeg,
        lenient: opts.lenient,
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

#[cfg(test)]
mod tests;
