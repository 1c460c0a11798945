//! `relay:URL`: frames from another MJPEG server or a camera.
//!
//! The feature people ask this kind of server for most: a camera that
//! accepts one or two connections, watched by many. The relay holds exactly
//! one upstream connection however many viewers it has, and by default only
//! while at least one viewer watches (`on demand`), disconnecting a while
//! after the last one leaves so that a page reload does not reconnect.
//!
//! Upstreams bend the format in many ways, so the reader is tolerant (see
//! [`crate::multipart::reader`]): quoted boundaries, a boundary parameter
//! that already starts with `--`, parts with or without `Content-Length`,
//! LF-only lines, chunked bodies, junk before the first boundary. A URL that
//! answers with a single image (a snapshot URL) is polled instead. Every
//! frame is checked like any other source's; the upstream's `X-Timestamp` is
//! kept, so latency stays measured from the origin.
//!
//! When the upstream is lost or refuses, the relay reconnects with
//! exponential back-off; viewers stay connected and keep the last frame
//! (the server re-sends it while idle), and `/status` shows the last error.
//! An upstream also counts as lost when it answers with something that is
//! no image (a login page with `200 OK`), when a frame grows past
//! [`RelayOptions::max_frame`] (checked as bytes arrive, so an image that
//! never ends costs no more memory than the limit), and when bytes come
//! but no complete frame within [`RelayOptions::frame_timeout`].

use bytes::Bytes;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::convert::{self, ConvertOptions};
use crate::hub::{Hub, SourceState};
use crate::ingest::{Event, FrameReader, Framing, ReadError};

/// How a relay behaves.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The upstream URL (`http://user:pass@host/path` for credentials;
    /// Basic and Digest are both answered).
    pub url: String,
    /// Connect only while someone watches (the default); `false` keeps the
    /// upstream connection open always.
    pub on_demand: bool,
    /// With `on_demand`, how long to stay connected after the last viewer
    /// leaves.
    pub linger: Duration,
    /// How often to fetch a URL that answers with a single image.
    pub poll_interval: Duration,
    /// First reconnect delay; doubles on each failure up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// An upstream silent for this long (or that takes this long to
    /// answer the request) is treated as lost.
    pub read_timeout: Duration,
    /// An upstream that sends bytes but no complete frame for this long is
    /// treated as lost (a connection that drips a byte at a time would
    /// otherwise look alive forever).
    pub frame_timeout: Duration,
    /// Largest frame accepted from upstream.
    pub max_frame: usize,
    /// Conversion of frames that are not JPEG.
    pub convert: ConvertOptions,
}

impl RelayOptions {
    /// Defaults for `url`: on demand, 5 s linger, back-off from 0.5 s to
    /// 30 s, 10 s read timeout, 16 MiB frames.
    pub fn new(url: impl Into<String>) -> RelayOptions {
        RelayOptions {
            url: url.into(),
            on_demand: true,
            linger: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            max_frame: crate::ingest::DEFAULT_MAX_FRAME,
            convert: ConvertOptions::default(),
        }
    }
}

/// Why one upstream session ended.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    /// What reqwest said, its causes included and the URL left out (it
    /// may carry a password; the log line names the redacted URL).
    #[error("cannot reach upstream: {0}")]
    Http(String),
    #[error("upstream answered {0}")]
    Status(reqwest::StatusCode),
    #[error("upstream sent no data for {0:?}")]
    Silent(Duration),
    #[error("upstream sent no answer to the request within {0:?}")]
    NoAnswer(Duration),
    #[error("upstream closed the stream")]
    Closed,
    #[error("upstream's body: {0}")]
    Unreadable(ReadError),
    #[error("upstream answered with something that is not a usable image ({0})")]
    NotImage(String),
    #[error(
        "upstream sent an image larger than the frame size limit of {0} bytes ({option}); \
         dropped the connection",
        option = crate::names::option_names().max_frame
    )]
    TooLarge(usize),
    #[error("upstream sent {bytes} bytes but no complete frame for {timeout:?}")]
    NoFrame { bytes: u64, timeout: Duration },
    #[error("upstream wants Digest credentials that could not be answered: {0}")]
    Digest(String),
}

impl From<reqwest::Error> for UpstreamError {
    /// reqwest's own text ("error sending request for url (…)") hides the
    /// cause ("Connection refused") in its sources and shows the URL with
    /// its password.
    fn from(e: reqwest::Error) -> Self {
        UpstreamError::Http(super::error_chain(&e.without_url()))
    }
}

impl From<ReadError> for UpstreamError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge { limit } => UpstreamError::TooLarge(limit),
            e => UpstreamError::Unreadable(e),
        }
    }
}

/// How a session ended without an error.
enum SessionEnd {
    /// No viewers for `linger`: disconnected on purpose.
    NoViewers,
    /// A single image was fetched; fetch again after the poll interval.
    Polled,
    /// The server is shutting down.
    Shutdown,
}

/// Runs the relay into `hub` until `shutdown`.
pub async fn run(opts: RelayOptions, hub: Hub, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .connect_timeout(opts.read_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            hub.set_source_state(SourceState::Failed(format!(
                "cannot create an HTTP client: {e}"
            )));
            return;
        }
    };
    let mut viewers = hub.watch_clients();
    let mut backoff = opts.backoff_min;
    let url = super::redact_userinfo(&opts.url);
    let mut repeats = super::Repeats::new(REPEAT_WARNING_EVERY);
    loop {
        if opts.on_demand && *viewers.borrow() == 0 {
            hub.set_source_state(SourceState::Waiting(
                "no viewers; upstream disconnected until one arrives".into(),
            ));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = viewers.wait_for(|n| *n > 0) => if r.is_err() { return },
            }
        }
        match session(&client, &opts, &hub, &mut viewers, &shutdown).await {
            Ok(SessionEnd::Shutdown) => return,
            Ok(SessionEnd::NoViewers) => {
                repeats.reset();
                tracing::info!(
                    stream = hub.name(),
                    "no viewers for {:?}; disconnected upstream",
                    opts.linger
                );
                backoff = opts.backoff_min;
            }
            Ok(SessionEnd::Polled) => {
                repeats.reset();
                backoff = opts.backoff_min;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(opts.poll_interval) => {}
                }
            }
            Err(e) => {
                // It had connected (the state is `Running` until this
                // arm): a failure after a recovery is news again.
                if matches!(hub.stats().source, SourceState::Running) {
                    repeats.reset();
                }
                if matches!(e, UpstreamError::TooLarge(_)) {
                    // A frame refused, like any source's oversized frame.
                    hub.reject(&e);
                }
                hub.source_error(&e);
                let what = format!("upstream {url} lost: {e}");
                match repeats.check(&what) {
                    Some(text) => tracing::warn!(
                        stream = hub.name(),
                        "{text}; reconnecting in {:.1} s",
                        backoff.as_secs_f64()
                    ),
                    None => tracing::debug!(
                        stream = hub.name(),
                        "{what}; reconnecting in {:.1} s",
                        backoff.as_secs_f64()
                    ),
                }
                hub.set_source_state(SourceState::Waiting(format!(
                    "{e}; reconnecting in {:.1} s",
                    backoff.as_secs_f64()
                )));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(opts.backoff_max);
                hub.record_reconnect();
            }
        }
    }
}

/// The same upstream failure is logged at most this often (the first time
/// at once); the ones between are logged at debug level.
const REPEAT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// One upstream connection: connect, read frames until it ends, the
/// viewers are gone for `linger`, or shutdown.
async fn session(
    client: &reqwest::Client,
    opts: &RelayOptions,
    hub: &Hub,
    viewers: &mut watch::Receiver<usize>,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, UpstreamError> {
    let reading = async {
        // reqwest bounds the TCP connect only: an upstream that accepts and
        // never answers (or drips its headers) must not hang the session.
        let mut res = tokio::time::timeout(opts.read_timeout, connect(client, &opts.url))
            .await
            .map_err(|_| UpstreamError::NoAnswer(opts.read_timeout))??;
        hub.set_source_state(SourceState::Running);
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut reader = FrameReader::response(
            content_type.as_deref(),
            res.content_length(),
            opts.max_frame,
        )?;
        let mut seen = Seen::default();
        // Bytes that never complete a frame (a byte a second, a part that
        // never ends) would keep a connection that shows nothing looking
        // alive: the next frame is due within `frame_timeout`.
        let mut frame_due = Instant::now() + opts.frame_timeout;
        let mut bytes_since_frame = 0u64;
        loop {
            let no_frame = |bytes| UpstreamError::NoFrame {
                bytes,
                timeout: opts.frame_timeout,
            };
            let now = Instant::now();
            if now >= frame_due {
                return Err(no_frame(bytes_since_frame));
            }
            let wait = opts.read_timeout.min(frame_due - now);
            let chunk = match tokio::time::timeout(wait, res.chunk()).await {
                Err(_) if bytes_since_frame > 0 && Instant::now() >= frame_due => {
                    return Err(no_frame(bytes_since_frame))
                }
                Err(_) => return Err(UpstreamError::Silent(wait)),
                Ok(r) => r?,
            };
            let Some(chunk) = chunk else { break };
            bytes_since_frame += chunk.len() as u64;
            reader.push(&chunk)?;
            let frames = seen.frames;
            seen.publish(&mut reader, hub, &opts.convert).await;
            if seen.frames > frames {
                frame_due = Instant::now() + opts.frame_timeout;
                bytes_since_frame = 0;
            }
        }
        // The body ended. A single image is a poll; a stream that ends is a
        // lost upstream. A body that is no usable image (a login page
        // answered with 200) is an error like any other, so it is fetched
        // again after the back-off, not at the polling rate.
        reader.finish();
        seen.publish(&mut reader, hub, &opts.convert).await;
        match (reader.framing(), seen.frames, seen.last) {
            (Framing::Multipart, ..) | (_, 0, _) | (_, 2.., _) => Err(UpstreamError::Closed),
            (_, 1, Some(Err(why))) => Err(UpstreamError::NotImage(why)),
            (_, 1, _) => Ok(SessionEnd::Polled),
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => Ok(SessionEnd::Shutdown),
        _ = no_viewers_for(viewers, opts.linger), if opts.on_demand => Ok(SessionEnd::NoViewers),
        r = reading => r,
    }
}

/// Resolves once there have been no viewers for `linger` without a break.
async fn no_viewers_for(viewers: &mut watch::Receiver<usize>, linger: Duration) {
    loop {
        if viewers.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(linger) => return,
            r = viewers.wait_for(|n| *n > 0) => if r.is_err() { return },
        }
    }
}

/// GET `url`, answering a Digest challenge once if there is one (reqwest
/// sends Basic credentials from the URL by itself).
async fn connect(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, UpstreamError> {
    let res = client.get(url).send().await?;
    if res.status() != reqwest::StatusCode::UNAUTHORIZED {
        return check_status(res);
    }
    let challenge = res
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
        .map(str::to_string);
    let (Some(challenge), Ok(parsed)) = (challenge, reqwest::Url::parse(url)) else {
        return check_status(res);
    };
    let user = percent_decode(parsed.username());
    let pass = percent_decode(parsed.password().unwrap_or(""));
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path = format!("{path}?{q}");
    }
    let mut header =
        digest_auth::parse(&challenge).map_err(|e| UpstreamError::Digest(e.to_string()))?;
    let context = digest_auth::AuthContext::new(user, pass, path);
    let answer = header
        .respond(&context)
        .map_err(|e| UpstreamError::Digest(e.to_string()))?;
    // The credentials in the URL would be sent as Basic again; the Digest
    // answer replaces them.
    let mut bare = parsed.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let res = client
        .get(bare)
        .header(reqwest::header::AUTHORIZATION, answer.to_header_string())
        .send()
        .await?;
    check_status(res)
}

fn check_status(res: reqwest::Response) -> Result<reqwest::Response, UpstreamError> {
    if res.status().is_success() {
        Ok(res)
    } else {
        Err(UpstreamError::Status(res.status()))
    }
}

/// Decodes `%XX` escapes in URL user names and passwords (the URL keeps
/// them encoded).
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The frames of one session.
#[derive(Default)]
struct Seen {
    /// How many the upstream sent.
    frames: u64,
    /// What became of the last one: published, or why not.
    last: Option<Result<(), String>>,
}

impl Seen {
    /// Publishes every frame `reader` has ready; dropped bytes are counted
    /// on the hub and logged.
    async fn publish(&mut self, reader: &mut FrameReader, hub: &Hub, convert: &ConvertOptions) {
        while let Some(event) = reader.next_event() {
            match event {
                Event::Frame(data, stamp) => {
                    self.frames += 1;
                    // A refused frame was counted and logged; the stream
                    // goes on.
                    self.last = Some(publish(hub, data, stamp, convert).await);
                }
                Event::Dropped(dropped) => {
                    tracing::warn!(stream = hub.name(), "upstream: {dropped}");
                    hub.reject(&dropped);
                }
            }
        }
    }
}

/// Publishes one upstream frame; a refused one is counted on the hub and
/// logged, and its reason returned.
async fn publish(
    hub: &Hub,
    data: Bytes,
    stamp: Option<SystemTime>,
    convert: &ConvertOptions,
) -> Result<(), String> {
    let refused = match convert::to_frame(data, convert).await {
        Ok(frame) => match hub.publish_at(frame, stamp.unwrap_or_else(SystemTime::now)) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        },
        Err(e) => {
            hub.reject(&e);
            e.to_string()
        }
    };
    tracing::warn!(stream = hub.name(), "upstream frame refused: {refused}");
    Err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(percent_decode("a%40b%3Ac"), "a@b:c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
