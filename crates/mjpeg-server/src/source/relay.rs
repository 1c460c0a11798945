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

use bytes::{Bytes, BytesMut};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::convert::{self, ConvertOptions};
use crate::frame::ImageKind;
use crate::hub::{Hub, SourceState};
use crate::multipart::reader::{boundary_from_content_type, PartReader};
use crate::source::pipe::{Split, Splitter};

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
            max_frame: 16 << 20,
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
    #[error("upstream sent {0}, not an MJPEG stream or an image")]
    NotMjpeg(String),
    #[error("upstream answered with something that is not a usable image ({0})")]
    NotImage(String),
    #[error(
        "upstream sent an image larger than the frame size limit of {0} bytes \
         (--max-frame-size); dropped the connection"
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
            .unwrap_or("")
            .to_string();
        let mut reader = Reader::new(&content_type, opts.max_frame);
        if matches!(reader, Reader::Image { .. })
            && res
                .content_length()
                .is_some_and(|n| n > opts.max_frame as u64)
        {
            return Err(UpstreamError::TooLarge(opts.max_frame));
        }
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
            while let Some((data, stamp)) = reader.next_frame(hub) {
                frame_due = Instant::now() + opts.frame_timeout;
                bytes_since_frame = 0;
                // A refused frame was counted and logged; the stream goes on.
                let _ = publish(hub, data, stamp, &opts.convert).await;
            }
        }
        // The body ended. A single image is a poll; a stream that ends is a
        // lost upstream. A body that is no usable image (a login page
        // answered with 200) is an error like any other, so it is fetched
        // again after the back-off, not at the polling rate.
        match reader.finish() {
            Some(image) => match publish(hub, image, None, &opts.convert).await {
                Ok(()) => Ok(SessionEnd::Polled),
                Err(why) => Err(UpstreamError::NotImage(why)),
            },
            None => Err(UpstreamError::Closed),
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

/// Parses the `X-Timestamp` of an upstream part (`1795476551.784749`),
/// exactly: through `f64` the microseconds would not survive.
fn parse_timestamp(v: &str) -> Option<SystemTime> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    (secs > 0).then(|| UNIX_EPOCH + Duration::new(secs, nanos))
}

/// What the upstream body turned out to be.
enum Reader {
    /// Not decided yet: no `Content-Type` said, and too few bytes to tell.
    Sniffing { buf: BytesMut, max: usize },
    /// A multipart stream.
    Parts(Box<PartReader>),
    /// JPEGs back to back with no framing.
    Jpegs(Box<Splitter>),
    /// One image (a snapshot URL): the whole body.
    Image { buf: BytesMut, max: usize },
}

impl Reader {
    fn new(content_type: &str, max: usize) -> Reader {
        if let Some(boundary) = boundary_from_content_type(content_type) {
            return Reader::Parts(Box::new(PartReader::new(&boundary, max)));
        }
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("image/") {
            return Reader::Image {
                buf: BytesMut::new(),
                max,
            };
        }
        Reader::Sniffing {
            buf: BytesMut::new(),
            max,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), UpstreamError> {
        match self {
            Reader::Parts(r) => r.push(chunk),
            Reader::Jpegs(s) => s.push(chunk),
            Reader::Image { buf, max } => {
                // Checked as bytes arrive, not at the end: an upstream
                // whose image never ends must not grow the buffer without
                // bound.
                if buf.len() + chunk.len() > *max {
                    return Err(UpstreamError::TooLarge(*max));
                }
                buf.extend_from_slice(chunk)
            }
            Reader::Sniffing { buf, max } => {
                buf.extend_from_slice(chunk);
                let max = *max;
                // Junk before a first boundary line is allowed: look for a
                // line that starts with "--".
                if let Some(line) = first_boundary_line(buf) {
                    let mut r = PartReader::new(&line, max);
                    r.push(buf);
                    *self = Reader::Parts(Box::new(r));
                } else if ImageKind::detect(buf) == ImageKind::Jpeg {
                    let mut s = Splitter::new(max);
                    s.push(buf);
                    *self = Reader::Jpegs(Box::new(s));
                } else if buf.len() > 4096 {
                    let kind = ImageKind::detect(buf);
                    return Err(UpstreamError::NotMjpeg(kind.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The next complete frame and its upstream timestamp, if any.
    fn next_frame(&mut self, hub: &Hub) -> Option<(Bytes, Option<SystemTime>)> {
        match self {
            Reader::Parts(r) => loop {
                match r.next_part() {
                    Ok(Some(part)) => {
                        let stamp = part.header("x-timestamp").and_then(parse_timestamp);
                        return Some((part.body, stamp));
                    }
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(stream = hub.name(), "upstream part refused: {e}");
                        hub.reject(&e);
                    }
                }
            },
            Reader::Jpegs(s) => loop {
                match s.next_event()? {
                    Split::Frame(jpeg) => return Some((jpeg, None)),
                    Split::Dropped(problem) => {
                        tracing::warn!(stream = hub.name(), "upstream: {problem}");
                        hub.reject(&problem);
                    }
                }
            },
            Reader::Image { .. } | Reader::Sniffing { .. } => None,
        }
    }

    /// At the end of the body: the whole image, if the body was one.
    fn finish(self) -> Option<Bytes> {
        match self {
            Reader::Image { buf, max } | Reader::Sniffing { buf, max }
                if !buf.is_empty() && buf.len() <= max =>
            {
                Some(buf.freeze())
            }
            _ => None,
        }
    }
}

/// The boundary of the first line that starts with `--`, if a whole such
/// line has arrived.
fn first_boundary_line(buf: &[u8]) -> Option<String> {
    let mut start = 0;
    while start < buf.len() {
        let end = start + memchr::memchr(b'\n', &buf[start..])?;
        let line = &buf[start..end];
        if let Some(rest) = line.strip_prefix(b"--") {
            let b = String::from_utf8_lossy(rest).trim().to_string();
            if !b.is_empty() {
                return Some(b);
            }
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_escapes() {
        let t = parse_timestamp("1795476551.784749").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d, Duration::new(1795476551, 784_749_000));
        assert_eq!(
            parse_timestamp("12").unwrap(),
            UNIX_EPOCH + Duration::from_secs(12)
        );
        assert!(parse_timestamp("abc").is_none());
        assert!(parse_timestamp("-1").is_none());
        assert_eq!(percent_decode("a%40b%3Ac"), "a@b:c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    /// However the body is cut into reads, an image that never ends is
    /// refused once it passes the limit, and never buffered beyond it.
    #[test]
    fn an_endless_image_is_refused_at_the_limit_whatever_the_chunking() {
        let hub = Hub::new("t");
        let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D);
        for max in [1, 100, 4096, 100_000] {
            for content_type in ["image/jpeg", "", "application/octet-stream"] {
                let mut reader = Reader::new(content_type, max);
                let mut fed = 0usize;
                let refused = loop {
                    let n = rng.below(9000) + 1;
                    // A JPEG start, then bytes that never end it.
                    let chunk: Vec<u8> = (fed..fed + n)
                        .map(|i| [0xFF, 0xD8, 0xFF, 0xE0].get(i).copied().unwrap_or(0x55))
                        .collect();
                    fed += n;
                    let result = reader.push(&chunk);
                    while reader.next_frame(&hub).is_some() {}
                    let held = match &reader {
                        Reader::Image { buf, .. } | Reader::Sniffing { buf, .. } => buf.len(),
                        Reader::Jpegs(s) => s.buffered(),
                        Reader::Parts(p) => p.buffered(),
                    };
                    assert!(
                        held <= max.max(4096) + 9000,
                        "{content_type:?}, limit {max}: {held} bytes held"
                    );
                    if result.is_err() || fed > 2 * max + 20_000 {
                        break result.is_err() || hub.stats().frames_rejected > 0;
                    }
                };
                assert!(refused, "{content_type:?}, limit {max}: never refused");
            }
        }
    }

    #[test]
    fn the_first_boundary_line_is_found_after_junk() {
        assert_eq!(
            first_boundary_line(b"junk\r\n--abc\r\n").as_deref(),
            Some("abc")
        );
        assert_eq!(first_boundary_line(b"--abc"), None);
        assert_eq!(first_boundary_line(b"x--y\n--z\n").as_deref(), Some("z"));
    }
}
