//! What a run loads and how: its options, and the rates they are given in.

use std::time::Duration;

/// What to load and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The stream's URL, `http://HOST:PORT/PATH` or `https://…`.
    pub url: String,
    /// PEM certificates to trust for an `https://` URL (a self-signed
    /// server's own certificate, or its CA); required for https.
    pub ca: Option<std::path::PathBuf>,
    /// HTTP/2 (by ALPN) on an `https://` URL: one HTTP/2 connection per
    /// client, as one browser tab per viewer would open.
    pub http2: bool,
    /// Load the player's WebSocket (`/ws` of the URL's server, subscribed
    /// to the stream the URL names) instead of the multipart stream; plain
    /// `http://` URLs only.
    pub websocket: bool,
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
    /// Accept what browsers accept from other servers (a chunked body,
    /// parts without `Content-Length` or `X-Timestamp`) instead of holding
    /// the server to the strictest client; parts without a timestamp have
    /// no latency.
    pub lenient: bool,
    /// The server's process id, to read its CPU time and memory from
    /// `/proc` (same machine only).
    pub server_pid: Option<u32>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "http://127.0.0.1:8080/stream".into(),
            ca: None,
            http2: false,
            websocket: false,
            clients: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            max_connecting: 256,
            slow_share: 0.0,
            slow_rate: 100_000,
            verify_jpeg: false,
            lenient: false,
            server_pid: None,
        }
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
