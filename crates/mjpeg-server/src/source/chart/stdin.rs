//! `chart:stdin`: a sample from every line on standard input.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::samples::parse_line;
use super::Chart;
use crate::hub::{Hub, SourceState};

/// Longest line accepted on standard input, in bytes.
const MAX_LINE: usize = 64 * 1024;

/// The state of a `chart:stdin` source until the first line: a pipeline
/// whose program buffers its output (awk, grep, python writing to a pipe
/// hold back 4 KB or more) shows nothing for minutes, and this says where
/// to look.
pub(super) const STDIN_WAITING: &str =
    "no line on standard input yet; a program writing to a pipe may \
     hold its lines back (awk, grep, python): see its line-buffering option, or stdbuf -oL";

/// `chart:stdin`: takes a sample from every line on standard input until it
/// closes. Bad lines are logged and skipped; the chart keeps accepting
/// samples over HTTP after stdin closes.
pub(super) async fn read_stdin(chart: Chart, hub: Hub, shutdown: CancellationToken) {
    // Read like the `stdin` source does: a pipe asynchronously (so that
    // shutdown never waits on a blocked read), anything else as a file.
    #[cfg(unix)]
    let result = match crate::source::pipe::stdin_pipe() {
        Some(pipe) => read_lines(pipe, &chart, &hub, &shutdown).await,
        None => match crate::source::pipe::stdin_file() {
            Ok(file) => read_lines(file, &chart, &hub, &shutdown).await,
            Err(e) => Err(e),
        },
    };
    #[cfg(not(unix))]
    let result = match crate::source::pipe::stdin_file() {
        Ok(file) => read_lines(file, &chart, &hub, &shutdown).await,
        Err(e) => Err(e),
    };
    if shutdown.is_cancelled() {
        return;
    }
    match result {
        Ok(lines) => tracing::info!(
            stream = hub.name(),
            lines,
            "stdin closed; the chart still takes samples over HTTP"
        ),
        Err(e) => tracing::error!(stream = hub.name(), "cannot read stdin: {e}"),
    }
}

/// Feeds every line of `reader` to `chart` until it ends or `shutdown`;
/// returns the number of lines read. Lines longer than [`MAX_LINE`] are
/// skipped, so a stream without newlines cannot grow the buffer forever.
pub(super) async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    chart: &Chart,
    hub: &Hub,
    shutdown: &CancellationToken,
) -> std::io::Result<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut lines = 0u64;
    let mut skipping = false;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(lines),
            n = reader.read(&mut chunk) => n?,
        };
        if n == 0 {
            if !buf.is_empty() && !skipping {
                lines += 1;
                take_line(chart, hub, &buf, lines);
            }
            return Ok(lines);
        }
        let mut rest = &chunk[..n];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if !skipping {
                buf.extend_from_slice(&rest[..i]);
                lines += 1;
                take_line(chart, hub, &buf, lines);
            }
            buf.clear();
            skipping = false;
            rest = &rest[i + 1..];
        }
        if !skipping {
            buf.extend_from_slice(rest);
            if buf.len() > MAX_LINE {
                lines += 1;
                tracing::warn!(
                    stream = hub.name(),
                    "stdin line {lines}: longer than {MAX_LINE} bytes; skipped"
                );
                buf.clear();
                skipping = true;
            }
        }
    }
}

fn take_line(chart: &Chart, hub: &Hub, line: &[u8], number: u64) {
    if number == 1 && hub.stats().source == SourceState::Waiting(STDIN_WAITING.into()) {
        // A line came; a sample may not have (a header, a bad line).
        hub.set_source_state(SourceState::Waiting(
            "lines arrive on standard input, but no sample yet".into(),
        ));
    }
    let text = String::from_utf8_lossy(line);
    let result = parse_line(&text).and_then(|s| match s {
        Some(s) => chart.apply(&[s]).map(|_| ()),
        None => Ok(()),
    });
    if let Err(e) = result {
        tracing::warn!(stream = hub.name(), "stdin line {number}: {e}; skipped");
    }
}
