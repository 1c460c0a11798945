//! One frame reader for every byte stream a source receives.
//!
//! A push body, a relayed server's response and a program's output all
//! arrive as bytes in pieces, framed in one of three ways:
//!
//! | framing | recognised by | read by |
//! | --- | --- | --- |
//! | a multipart stream | a `multipart/*; boundary=` Content-Type, or a first `--BOUNDARY` line | [`PartReader`] |
//! | JPEGs back to back | `FF D8 FF` first | [`split::Splitter`] |
//! | one image (any format) | any other first bytes | the whole body |
//!
//! [`FrameReader`] makes that decision once, in one place, and then hands
//! out [`Event`]s: frames (with the sender's timestamp when a part carries
//! one) and what was dropped on the way. What to do with them is the
//! caller's: the relay and the pipes publish each and go on, a push ends at
//! the first corrupt frame of a JPEG stream and says why.
//!
//! A body whose first bytes are text (no image format, no boundary line
//! yet) may be a multipart stream with a preamble, as some cameras send
//! without a Content-Type: the reader looks for a `--BOUNDARY` line in its
//! first [`SNIFF_LIMIT`] bytes before taking it for one image. A pipe, which
//! is never one image, is read with [`FrameReader::stream`]: there such a
//! start is a banner before JPEGs, skipped by the splitter.
//!
//! Memory is bounded by the frame limit in every state: a part, a JPEG or
//! an image larger than it is dropped or refused, never buffered.

pub mod split;

use bytes::{Bytes, BytesMut};
use std::fmt;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::frame::ImageKind;
use crate::multipart::reader::{boundary_from_content_type, MultipartError, PartReader};
use split::{Problem, Split, Splitter};

pub use split::DEFAULT_MAX_FRAME;

/// How many bytes of text at the start of a body are searched for a first
/// `--BOUNDARY` line before the body is taken for one image.
pub const SNIFF_LIMIT: usize = 4096;

/// How a JPEG starts: SOI and the first byte of the next marker.
const JPEG_START: &[u8] = b"\xFF\xD8\xFF";

/// Bytes asked of an [`AsyncRead`] at a time: a pipe's default capacity on
/// Linux, so one read usually empties it.
const READ_CHUNK: usize = 64 * 1024;

/// What [`FrameReader::next_event`] found.
#[derive(Debug)]
pub enum Event {
    /// A complete frame's bytes (checked by nobody yet), with the time its
    /// sender stamped on it (a multipart part's `X-Timestamp`), if any.
    Frame(Bytes, Option<SystemTime>),
    /// Bytes that were dropped, and why; reading goes on.
    Dropped(Dropped),
}

/// Why bytes were dropped.
#[derive(Debug)]
pub enum Dropped {
    /// From JPEGs back to back: a corrupt or oversized frame, or bytes
    /// between frames.
    Split(Problem),
    /// From a multipart stream: an oversized or malformed part.
    Part(MultipartError),
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::Split(p) => write!(f, "{p}"),
            Dropped::Part(e) => write!(f, "{e}"),
        }
    }
}

/// Why a body cannot be read on: the reader holds nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// One image larger than the frame limit (declared or received).
    #[error("frame larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A first line `--` with no boundary after it.
    #[error(
        "the body starts with a \"--\" line that names no boundary: a multipart body starts \
         with --BOUNDARY (or send Content-Type: multipart/x-mixed-replace; boundary=BOUNDARY)"
    )]
    NoBoundary,
}

/// How the body turned out to be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not known yet.
    Undecided,
    /// A multipart stream.
    Multipart,
    /// JPEGs back to back.
    Jpegs,
    /// One image: its frame comes when the body ends.
    OneImage,
}

/// Reads frames from a body that arrives in pieces: see the
/// [module documentation](self).
pub struct FrameReader {
    state: State,
    max_frame: usize,
    /// A pipe: never one image.
    stream: bool,
    /// The end of the body was seen.
    finished: bool,
}

enum State {
    /// The first bytes will tell. `searched`: how much of `buf` is known to
    /// hold no whole line, so that a line is looked at once.
    Sniffing {
        buf: BytesMut,
        searched: usize,
    },
    Parts(Box<PartReader>),
    Jpegs(Box<Splitter>),
    Image(BytesMut),
    /// Everything was handed out.
    Done,
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("framing", &self.framing())
            .field("buffered", &self.buffered())
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl FrameReader {
    /// A reader for an uploaded body (a push) with this `Content-Type`
    /// (`None`: none was sent) and `Content-Length` (if declared), whose
    /// frames may be at most `max_frame` bytes. A multipart Content-Type
    /// with a boundary decides; any other is not trusted (senders label
    /// JPEG streams `image/jpeg` as often as single frames), and the first
    /// bytes tell.
    ///
    /// A body declared larger than `max_frame` that is not multipart is
    /// refused at once: an image that large would be, and nobody uploads a
    /// finite stream of JPEGs that long.
    pub fn upload(
        content_type: Option<&str>,
        content_length: Option<u64>,
        max_frame: usize,
    ) -> Result<FrameReader, ReadError> {
        let mut reader = FrameReader::stream(max_frame);
        reader.stream = false;
        if let Some(boundary) = content_type.and_then(boundary_from_content_type) {
            reader.state = State::Parts(Box::new(PartReader::new(&boundary, max_frame)));
        } else if content_length.is_some_and(|n| n > max_frame as u64) {
            return Err(ReadError::TooLarge { limit: max_frame });
        }
        Ok(reader)
    }

    /// A reader for a server's response (a relay) with this `Content-Type`
    /// and `Content-Length`: as [`upload`](Self::upload), except that
    /// `image/*` is taken at its word and means one image (a snapshot URL),
    /// which is refused as soon as it passes `max_frame`.
    pub fn response(
        content_type: Option<&str>,
        content_length: Option<u64>,
        max_frame: usize,
    ) -> Result<FrameReader, ReadError> {
        let mut reader = FrameReader::upload(content_type, content_length, max_frame)?;
        let image = content_type.is_some_and(|t| {
            t.trim_start()
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("image/"))
        });
        if image {
            reader.state = State::Image(BytesMut::new());
        }
        Ok(reader)
    }

    /// A reader for a stream that is never one image (a pipe): a multipart
    /// stream if it starts with `--BOUNDARY`, else JPEGs back to back, with
    /// whatever comes between them skipped and reported.
    pub fn stream(max_frame: usize) -> FrameReader {
        FrameReader {
            state: State::Sniffing {
                buf: BytesMut::new(),
                searched: 0,
            },
            max_frame,
            stream: true,
            finished: false,
        }
    }

    /// How the body is framed, as far as is known.
    pub fn framing(&self) -> Framing {
        match self.state {
            State::Sniffing { .. } | State::Done => Framing::Undecided,
            State::Parts(_) => Framing::Multipart,
            State::Jpegs(_) => Framing::Jpegs,
            State::Image(_) => Framing::OneImage,
        }
    }

    /// Bytes received and not yet handed out or dropped.
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Sniffing { buf, .. } | State::Image(buf) => buf.len(),
            State::Parts(r) => r.buffered(),
            State::Jpegs(s) => s.buffered(),
            State::Done => 0,
        }
    }

    /// Appends the next bytes of the body.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ReadError> {
        match &mut self.state {
            State::Parts(r) => r.push(data),
            State::Jpegs(s) => s.push(data),
            State::Image(buf) => {
                // Checked as bytes arrive, not at the end: an image that
                // never ends must not grow the buffer without bound.
                if buf.len() + data.len() > self.max_frame {
                    self.state = State::Done;
                    return Err(ReadError::TooLarge {
                        limit: self.max_frame,
                    });
                }
                buf.extend_from_slice(data);
            }
            State::Sniffing { buf, .. } => {
                buf.extend_from_slice(data);
                return self.sniff();
            }
            State::Done => {}
        }
        Ok(())
    }

    /// Reads once from `reader` and returns how many bytes came; `0` is the
    /// end of the stream, after which [`next_event`](Self::next_event)
    /// hands out what is left. JPEGs back to back are read straight into
    /// the splitter's buffer, without a copy. Cancel-safe: if the future is
    /// dropped before it completes, no data was read.
    pub async fn read_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> io::Result<usize> {
        let n = match &mut self.state {
            State::Jpegs(s) => s.read_from(reader).await?,
            _ => {
                let mut chunk = BytesMut::with_capacity(READ_CHUNK);
                let n = reader.read_buf(&mut chunk).await?;
                if n > 0 {
                    self.push(&chunk).map_err(io::Error::other)?;
                }
                n
            }
        };
        if n == 0 {
            self.finish();
        }
        Ok(n)
    }

    /// Marks the end of the body: the next calls of
    /// [`next_event`](Self::next_event) hand out what is left (one image,
    /// or a JPEG cut short reported as dropped), then `None`.
    pub fn finish(&mut self) {
        self.finished = true;
        match &mut self.state {
            State::Jpegs(s) => s.finish(),
            // Too short to tell: whatever it is, it is the whole body.
            State::Sniffing { buf, .. } if self.stream => {
                let mut s = Splitter::new(self.max_frame);
                s.push(buf);
                s.finish();
                self.state = State::Jpegs(Box::new(s));
            }
            State::Sniffing { buf, .. } => self.state = State::Image(std::mem::take(buf)),
            State::Parts(_) | State::Image(_) | State::Done => {}
        }
    }

    /// The next frame or dropped piece, or `None` when more bytes are
    /// needed (or, after the end, when everything was handed out).
    pub fn next_event(&mut self) -> Option<Event> {
        match &mut self.state {
            State::Parts(r) => match r.next_part() {
                Ok(Some(part)) => {
                    let stamp = part.header("x-timestamp").and_then(parse_timestamp);
                    Some(Event::Frame(part.body, stamp))
                }
                Ok(None) => None,
                Err(e) => Some(Event::Dropped(Dropped::Part(e))),
            },
            State::Jpegs(s) => Some(match s.next_event()? {
                Split::Frame(jpeg) => Event::Frame(jpeg, None),
                Split::Dropped(problem) => Event::Dropped(Dropped::Split(problem)),
            }),
            State::Image(buf) if self.finished => {
                let image = std::mem::take(buf).freeze();
                self.state = State::Done;
                (!image.is_empty()).then_some(Event::Frame(image, None))
            }
            State::Sniffing { .. } | State::Image(_) | State::Done => None,
        }
    }

    /// Decides the framing from the bytes in the sniffing buffer, if they
    /// tell.
    fn sniff(&mut self) -> Result<(), ReadError> {
        let State::Sniffing { buf, searched } = &mut self.state else {
            return Ok(());
        };
        let max = self.max_frame;
        if buf.starts_with(b"--") {
            // The first line names the boundary; wait for all of it.
            let Some(eol) = memchr::memchr(b'\n', &buf[*searched..]).map(|i| *searched + i) else {
                *searched = buf.len();
                if buf.len() > max {
                    self.state = State::Done;
                    return Err(ReadError::TooLarge { limit: max });
                }
                return Ok(());
            };
            let boundary = String::from_utf8_lossy(&buf[2..eol]).trim().to_string();
            if boundary.is_empty() {
                // RFC 2046 boundaries are 1 to 70 characters; with none,
                // every line that starts with "--" would end a part.
                self.state = State::Done;
                return Err(ReadError::NoBoundary);
            }
            let mut reader = PartReader::new(&boundary, max);
            reader.push(buf);
            self.state = State::Parts(Box::new(reader));
            return Ok(());
        }
        // Too few bytes to tell a JPEG or a first boundary line from
        // anything else.
        if buf.len() < JPEG_START.len() && (JPEG_START.starts_with(buf) || &buf[..] == b"-") {
            return Ok(());
        }
        let kind = ImageKind::detect(buf);
        if kind == ImageKind::Jpeg || self.stream {
            let mut s = Splitter::new(max);
            s.push(buf);
            self.state = State::Jpegs(Box::new(s));
            return Ok(());
        }
        if matches!(kind, ImageKind::Html | ImageKind::Unknown) {
            // Text first: perhaps a preamble before a multipart stream.
            match first_boundary_line(buf, searched) {
                Some(boundary) => {
                    let mut reader = PartReader::new(&boundary, max);
                    reader.push(buf);
                    self.state = State::Parts(Box::new(reader));
                    return Ok(());
                }
                None if buf.len() <= SNIFF_LIMIT => return Ok(()),
                None => {}
            }
        }
        let image = std::mem::take(buf);
        if image.len() > max {
            self.state = State::Done;
            return Err(ReadError::TooLarge { limit: max });
        }
        self.state = State::Image(image);
        Ok(())
    }
}

/// The boundary of the first line of `buf` that starts with `--` and names
/// one, if a whole such line has arrived. `searched` is where the lines not
/// yet looked at start; it is moved past every whole line looked at.
fn first_boundary_line(buf: &[u8], searched: &mut usize) -> Option<String> {
    while *searched < buf.len() {
        let end = *searched + memchr::memchr(b'\n', &buf[*searched..])?;
        let line = &buf[*searched..end];
        *searched = end + 1;
        if let Some(rest) = line.strip_prefix(b"--") {
            let b = String::from_utf8_lossy(rest).trim().to_string();
            if !b.is_empty() {
                return Some(b);
            }
        }
    }
    None
}

/// Parses the `X-Timestamp` of a part (`1795476551.784749`), exactly:
/// through `f64` the microseconds would not survive.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::corpus;

    /// Everything `reader` hands out for `body` fed in pieces of `piece`
    /// bytes, then the end.
    fn read_all(
        mut reader: FrameReader,
        body: &[u8],
        piece: usize,
    ) -> (Vec<Event>, Option<ReadError>) {
        let mut events = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            if let Err(e) = reader.push(chunk) {
                return (events, Some(e));
            }
            events.extend(std::iter::from_fn(|| reader.next_event()));
        }
        reader.finish();
        events.extend(std::iter::from_fn(|| reader.next_event()));
        (events, None)
    }

    fn frames(events: &[Event]) -> Vec<Bytes> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f, _) => Some(f.clone()),
                Event::Dropped(_) => None,
            })
            .collect()
    }

    fn body(content_type: Option<&str>) -> FrameReader {
        FrameReader::upload(content_type, None, DEFAULT_MAX_FRAME).unwrap()
    }

    #[test]
    fn every_framing_yields_the_same_frames_however_it_is_cut() {
        let a = corpus("jpeg_5k.jpg");
        let b = corpus("progressive.jpg");
        let mut multipart = b"--xyz\r\n".to_vec();
        for f in [&a, &b] {
            multipart.extend_from_slice(b"Content-Type: image/jpeg\r\n\r\n");
            multipart.extend_from_slice(f);
            multipart.extend_from_slice(b"\r\n--xyz\r\n");
        }
        let with_preamble = [b"camera says hello\r\n".as_slice(), &multipart].concat();
        let jpegs = [a.as_slice(), &b].concat();
        for piece in [1, 7, 1000, usize::MAX] {
            for (what, reader, bytes) in [
                (
                    "multipart by Content-Type",
                    body(Some("multipart/x-mixed-replace;boundary=xyz")),
                    &multipart,
                ),
                ("multipart by its first line", body(None), &multipart),
                (
                    "multipart after a preamble",
                    body(Some("text/plain")),
                    &with_preamble,
                ),
                ("JPEGs back to back", body(Some("image/jpeg")), &jpegs),
                (
                    "a pipe of JPEGs",
                    FrameReader::stream(DEFAULT_MAX_FRAME),
                    &jpegs,
                ),
                (
                    "a pipe of parts",
                    FrameReader::stream(DEFAULT_MAX_FRAME),
                    &multipart,
                ),
            ] {
                let (events, err) = read_all(reader, bytes, piece);
                assert_eq!(err, None, "{what}, pieces of {piece}");
                assert_eq!(
                    frames(&events),
                    [a.clone(), b.clone()],
                    "{what}, pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn one_image_comes_whole_when_the_body_ends() {
        let png = corpus("image.png");
        for piece in [1, 3, 100, usize::MAX] {
            let mut reader = body(Some("image/png"));
            let (events, err) = {
                let mut events = Vec::new();
                for chunk in png.chunks(piece.min(png.len())) {
                    reader.push(chunk).unwrap();
                    assert!(reader.next_event().is_none(), "a frame before the end");
                }
                assert_eq!(reader.framing(), Framing::OneImage);
                reader.finish();
                events.extend(std::iter::from_fn(|| reader.next_event()));
                (events, None::<ReadError>)
            };
            assert_eq!(err, None);
            assert_eq!(frames(&events), [Bytes::from(png.clone())]);
        }
    }

    #[test]
    fn text_without_a_boundary_line_is_one_body_for_the_converter_to_refuse() {
        let page = b"<!DOCTYPE html><html><body>Please log in</body></html>";
        let (events, err) = read_all(body(Some("text/html")), page, 10);
        assert_eq!(err, None);
        assert_eq!(frames(&events), [Bytes::from_static(page)]);
        // Past the sniffing limit, text is taken for one image at once.
        let mut reader = body(None);
        reader.push(&vec![b'x'; SNIFF_LIMIT + 1]).unwrap();
        assert_eq!(reader.framing(), Framing::OneImage);
    }

    #[test]
    fn refusals_name_the_limit_or_the_missing_boundary() {
        assert_eq!(
            FrameReader::upload(None, Some(11), 10).unwrap_err(),
            ReadError::TooLarge { limit: 10 }
        );
        // A multipart body declares its whole length, not a frame's.
        assert!(
            FrameReader::upload(Some("multipart/x-mixed-replace; boundary=b"), Some(11), 10)
                .is_ok()
        );
        let png = corpus("image.png");
        let (_, err) = read_all(FrameReader::upload(None, None, 100).unwrap(), &png, 30);
        assert_eq!(err, Some(ReadError::TooLarge { limit: 100 }));
        let (_, err) = read_all(body(None), b"--\r\nContent-Type: image/jpeg\r\n\r\n", 5);
        assert_eq!(err, Some(ReadError::NoBoundary));
    }

    #[test]
    fn a_part_carries_its_senders_timestamp() {
        let a = corpus("jpeg_5k.jpg");
        let mut multipart = b"--b\r\nX-Timestamp: 1795476551.784749\r\n\r\n".to_vec();
        multipart.extend_from_slice(&a);
        multipart.extend_from_slice(b"\r\n--b\r\n");
        let (events, _) = read_all(body(None), &multipart, 64);
        match &events[..] {
            [Event::Frame(_, Some(t))] => assert_eq!(
                t.duration_since(UNIX_EPOCH).unwrap(),
                Duration::new(1795476551, 784_749_000)
            ),
            other => panic!("{other:?}"),
        }
    }

    /// However the body is cut into reads, a frame that never ends is
    /// refused once it passes the limit, and never buffered beyond it.
    #[test]
    fn an_endless_frame_is_refused_at_the_limit_whatever_the_chunking() {
        let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D);
        for max in [1, 100, 4096, 100_000] {
            for (content_type, start) in [
                (Some("image/jpeg"), &b"\xFF\xD8\xFF\xE0"[..]),
                (None, b"\xFF\xD8\xFF\xE0"),
                (Some("application/octet-stream"), b"\xFF\xD8\xFF\xE0"),
                (Some("image/png"), b"\x89PNG\r\n\x1a\n"),
                (None, b"text that never ends"),
            ] {
                let mut reader = FrameReader::upload(content_type, None, max).unwrap();
                let mut fed = 0usize;
                let refused = loop {
                    let n = rng.below(9000) + 1;
                    let chunk: Vec<u8> = (fed..fed + n)
                        .map(|i| start.get(i).copied().unwrap_or(0x55))
                        .collect();
                    fed += n;
                    let result = reader.push(&chunk);
                    let mut dropped = false;
                    while let Some(event) = reader.next_event() {
                        assert!(matches!(event, Event::Dropped(_)), "{event:?}");
                        dropped = true;
                    }
                    let held = reader.buffered();
                    assert!(
                        held <= max.max(SNIFF_LIMIT) + 9000,
                        "{content_type:?}, limit {max}: {held} bytes held"
                    );
                    if result.is_err() || dropped || fed > 2 * max + 20_000 {
                        break result.is_err() || dropped;
                    }
                };
                assert!(refused, "{content_type:?}, limit {max}: never refused");
            }
        }
    }

    #[test]
    fn timestamps_parse_exactly() {
        let t = parse_timestamp("1795476551.784749").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d, Duration::new(1795476551, 784_749_000));
        assert_eq!(
            parse_timestamp("12").unwrap(),
            UNIX_EPOCH + Duration::from_secs(12)
        );
        assert!(parse_timestamp("abc").is_none());
        assert!(parse_timestamp("-1").is_none());
    }

    #[test]
    fn the_first_boundary_line_is_found_after_junk() {
        let find = |buf: &[u8]| first_boundary_line(buf, &mut 0);
        assert_eq!(find(b"junk\r\n--abc\r\n").as_deref(), Some("abc"));
        assert_eq!(find(b"--abc"), None);
        assert_eq!(find(b"x--y\n--z\n").as_deref(), Some("z"));
    }
}
