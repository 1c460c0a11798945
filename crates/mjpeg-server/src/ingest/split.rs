//! JPEGs back to back, cut back into frames.
//!
//! Encoders and camera tools that speak MJPEG on a pipe (`ffmpeg -f mjpeg -`,
//! `rpicam-vid --codec mjpeg -o -`, `gst-launch-1.0 … ! jpegenc ! fdsink`)
//! write JPEG after JPEG with no length in front and nothing in between,
//! and so do servers that push or relay such a stream over HTTP. The
//! [`Splitter`] cuts it back into frames; [`super::FrameReader`] uses it
//! for every body that turns out to be one.
//!
//! Where a frame ends is found by walking its markers ([`jpeg::Scanner`]),
//! never by searching for `FF D9`: that search cuts frames that carry an EXIF
//! thumbnail or a comment holding those bytes. The walk is resumable, so a
//! frame that arrives in many reads is still looked at once, not once per
//! read.
//!
//! Such streams carry more than frames. A program may print a banner to stdout, an
//! HTTP relay leaves multipart headers between frames, an encoder may die
//! mid-frame. So the splitter:
//!
//! * skips bytes between frames up to the next `FF D8 FF` (the start of a
//!   JPEG), and reports them unless they are only padding (NUL, `FF`, white
//!   space);
//! * drops a frame whose marker walk fails, says why, and looks for the next
//!   start from the dropped frame's second byte, so a frame cut short by the
//!   next one is lost alone; but it tries at most [`RETRIES`] starts inside
//!   what the failed walk went over before skipping the rest of it, so that
//!   starts nested in segments cannot make it walk the same bytes again and
//!   again;
//! * never emits a frame the stream ended in the middle of;
//! * drops a frame longer than a limit ([`DEFAULT_MAX_FRAME`] unless told
//!   otherwise), so a stream that never ends a frame cannot make the server
//!   buffer without bound.
//!
//! Frames are split off the read buffer as [`Bytes`] without copying.
//!
//! The splitter's work is linear in its input, however it is cut into reads:
//! a frame's walk keeps its place across reads, the search for a start looks
//! at each byte once, and a byte is walked by at most `RETRIES + 1` frames
//! (a failed one and the retries inside it). Without that last bound,
//! thousands of starts nested in comment segments that all lead to one long
//! scan made every start walk that scan again: 1 MB took 30 s.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::jpeg::{self, JpegError, Scanner};

/// The default largest frame: 16 MiB, several times an 8K camera's JPEG.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes asked of the reader at a time: a pipe's default capacity on Linux,
/// so one read usually empties it.
const READ_CHUNK: usize = 64 * 1024;

/// SOI followed by the first byte of the next marker: where JPEGs start.
/// Three bytes rather than two, because `FF D8` alone turns up in random data
/// eight times more often than `FF D8 FF`.
const JPEG_START: &[u8] = b"\xFF\xD8\xFF";

/// How many JPEG starts inside a dropped frame are tried. The first is
/// nearly always the one that matters (the frame that cut the dropped one
/// short); a few more allow for thumbnails. After that the rest of what the
/// dropped frame's walk went over is skipped.
pub const RETRIES: u32 = 8;

/// Bytes looked at per byte of input, at most (see [`Splitter::work`]):
/// each frame walk, the retries inside a dropped one, and the search for
/// starts.
#[doc(hidden)]
pub const WORK_PER_BYTE: u64 = RETRIES as u64 + 3;

/// How much of a run of skipped bytes is kept to show in its report.
const GARBAGE_HEAD: usize = 32;

/// What the splitter found next in the stream.
#[derive(Clone, PartialEq, Eq)]
pub enum Split {
    /// One complete JPEG, SOI through EOI, byte for byte as it was in the
    /// stream.
    Frame(Bytes),
    /// Bytes that were dropped, and why.
    Dropped(Problem),
}

impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A frame's bytes would drown everything else in a log or a failed
        // assertion; its length says enough.
        match self {
            Split::Frame(jpeg) => write!(f, "Frame({} bytes)", jpeg.len()),
            Split::Dropped(problem) => f.debug_tuple("Dropped").field(problem).finish(),
        }
    }
}

/// Why bytes of the stream were dropped instead of becoming a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Bytes between frames that do not start a JPEG (a banner printed to
    /// stdout, multipart headers, another format). A long run is reported
    /// every `max_frame` bytes rather than only when it ends. Bytes skipped
    /// after a [`Corrupt`](Self::Corrupt) or [`TooLarge`](Self::TooLarge)
    /// frame are the rest of that frame and are not reported again.
    #[error("skipped {bytes} bytes of non-JPEG data between frames, starting with \"{}\"", .head.escape_ascii())]
    Garbage {
        /// How many bytes.
        bytes: usize,
        /// The first few of them, to show what they were.
        head: Vec<u8>,
    },
    /// A frame whose marker walk failed: damaged, or cut short by the start
    /// of the next frame. Its bytes are skipped up to the next JPEG start.
    #[error("{}", describe_corrupt(.0))]
    Corrupt(JpegError),
    /// A frame longer than the limit. Its first `limit` bytes are dropped and
    /// the rest skipped up to the next JPEG start.
    #[error("dropped a frame longer than the limit of {limit} bytes")]
    TooLarge {
        /// The limit it broke.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the stream ended in the middle of a frame; dropped its {bytes} bytes")]
    Truncated {
        /// How much of the frame had arrived.
        bytes: usize,
    },
}

fn describe_corrupt(error: &JpegError) -> String {
    match error {
        // The usual cause in a pipe: a writer restarted or lost data, and the
        // next frame began before this one ended.
        JpegError::UnexpectedSoi { at } => format!(
            "dropped an incomplete frame: the next JPEG starts {at} bytes into it, before its end-of-image marker"
        ),
        other => format!("dropped a frame: {other}"),
    }
}

/// Cuts a byte stream of concatenated JPEGs into frames.
///
/// Feed it with [`push`](Self::push) or [`read_from`](Self::read_from), take
/// what it found with [`next_event`](Self::next_event) until that returns
/// `None`, and call [`finish`](Self::finish) at the end of the stream. The
/// result does not depend on how the stream was cut into reads.
///
/// ```
/// use mjpeg_server::ingest::split::{Split, Splitter};
///
/// let jpeg = std::fs::read("../../tests/data/jpeg_5k.jpg").unwrap();
/// let mut splitter = Splitter::default();
/// splitter.push(b"banner\n");
/// splitter.push(&jpeg[..100]);
/// assert!(matches!(splitter.next_event(), Some(Split::Dropped(_)))); // the banner
/// assert_eq!(splitter.next_event(), None);
/// splitter.push(&jpeg[100..]);
/// assert_eq!(splitter.next_event(), Some(Split::Frame(jpeg.into())));
/// splitter.finish();
/// assert_eq!(splitter.next_event(), None);
/// ```
#[derive(Debug)]
pub struct Splitter {
    buf: BytesMut,
    scanner: Scanner,
    max_frame: usize,
    /// True while `buf` starts with a JPEG start that `scanner` is walking.
    in_frame: bool,
    /// The bytes skipped since the last frame start.
    run: Run,
    /// The stream has ended: what is left is flushed.
    eof: bool,
    /// Length of the last frame: the next is likely about as long, so the
    /// buffer is grown to hold it at once rather than in many steps.
    frame_hint: usize,
    finder: memchr::memmem::Finder<'static>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Bytes at the front of `buf` known to hold no JPEG start, to skip.
    clear: usize,
    /// What the last failed walks went over, where starts are retried.
    dropped: Option<Dropped>,
    /// Bytes looked at, for the checks that the work stays linear.
    work: u64,
}

/// The stretch of stream that failed walks went over.
#[derive(Debug, Clone, Copy)]
struct Dropped {
    /// Stream offset where the furthest of them stopped.
    end: u64,
    /// Starts before `end` that may still be tried.
    retries: u32,
}

/// A run of bytes skipped between frames.
#[derive(Debug)]
struct Run {
    bytes: usize,
    head: Vec<u8>,
    padding_only: bool,
    /// The run is the rest of a frame already reported as dropped, so it is
    /// not reported again, however long it is: that frame's report is the
    /// last word until the next JPEG start.
    quiet: bool,
}

impl Run {
    fn new(quiet: bool) -> Run {
        Run {
            bytes: 0,
            head: Vec::new(),
            padding_only: true,
            quiet,
        }
    }

    fn add(&mut self, skipped: &[u8]) {
        if self.head.len() < GARBAGE_HEAD {
            let room = GARBAGE_HEAD - self.head.len();
            self.head
                .extend_from_slice(&skipped[..skipped.len().min(room)]);
        }
        // Zero bytes, fill bytes and line breaks between frames are padding
        // that some writers add, not a problem worth a warning per frame.
        self.padding_only = self.padding_only
            && skipped
                .iter()
                .all(|&b| matches!(b, 0x00 | 0xFF | b'\r' | b'\n' | b' ' | b'\t'));
        self.bytes += skipped.len();
    }

    /// Ends the run (the next JPEG start was found, or it grew to
    /// `max_frame` bytes): its report if it deserves one.
    fn end(&mut self, quiet_after: bool) -> Option<Problem> {
        let run = std::mem::replace(self, Run::new(quiet_after));
        let report = run.bytes > 0 && !run.quiet && !run.padding_only;
        report.then_some(Problem::Garbage {
            bytes: run.bytes,
            head: run.head,
        })
    }
}

impl Default for Splitter {
    /// A splitter with the [`DEFAULT_MAX_FRAME`] limit.
    fn default() -> Self {
        Splitter::new(DEFAULT_MAX_FRAME)
    }
}

impl Splitter {
    /// A splitter that drops frames longer than `max_frame` bytes. It holds
    /// at most about `max_frame` plus one read of buffered data.
    pub fn new(max_frame: usize) -> Splitter {
        Splitter {
            buf: BytesMut::new(),
            scanner: Scanner::new(),
            // Zero would never let a byte through, and would stall the
            // "skip max_frame bytes" step.
            max_frame: max_frame.max(1),
            in_frame: false,
            run: Run::new(false),
            eof: false,
            frame_hint: 0,
            finder: memchr::memmem::Finder::new(JPEG_START),
            offset: 0,
            clear: 0,
            dropped: None,
            work: 0,
        }
    }

    /// How many bytes the splitter has looked at so far: at most
    /// [`WORK_PER_BYTE`] per byte pushed, plus a little per read (checked by
    /// the tests and the fuzz target).
    #[doc(hidden)]
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Drops `n` bytes from the front of the buffer.
    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.offset += n as u64;
    }

    /// The frame size limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet handed out or dropped.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes of the stream (copying them; [`read_from`](Self::read_from)
    /// reads straight into the buffer instead).
    pub fn push(&mut self, data: &[u8]) {
        self.eof = false;
        self.reserve(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Makes room for `additional` more bytes, and for the rest of a frame
    /// as long as the last one. Frames split off the buffer share its
    /// memory, so once a frame is out (and held by the hub) growing the
    /// buffer means a new allocation and a copy of what is buffered: doing
    /// that once per frame keeps the copies to the bytes that follow a frame
    /// in the same read.
    fn reserve(&mut self, additional: usize) {
        let frame_room = self.frame_hint.saturating_sub(self.buf.len());
        self.buf.reserve(additional.max(frame_room));
    }

    /// Reads once from `reader` straight into the buffer and returns how many
    /// bytes came; `0` means the end of the stream (then call
    /// [`finish`](Self::finish)). Cancel-safe: if the future is dropped
    /// before it completes, no data was read.
    pub async fn read_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> io::Result<usize> {
        self.reserve(READ_CHUNK);
        let n = reader.read_buf(&mut self.buf).await?;
        if n > 0 {
            self.eof = false;
        }
        Ok(n)
    }

    /// Marks the end of the stream: the next calls of
    /// [`next_event`](Self::next_event) hand out what is left, reporting a
    /// frame cut short as [`Problem::Truncated`], and leave the splitter
    /// empty.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The next frame or problem, or `None` when more data is needed (or,
    /// after [`finish`](Self::finish), when everything was handed out).
    pub fn next_event(&mut self) -> Option<Split> {
        loop {
            if self.in_frame {
                return self.walk_frame();
            }
            if self.clear > 0 {
                // Known to hold no start: skipped without searching again
                // (a run is skipped in steps of at most `max_frame`).
                let before = self.buf.len();
                let problem = self.skip(self.clear);
                self.clear -= before - self.buf.len();
                if let Some(problem) = problem {
                    return Some(Split::Dropped(problem));
                }
                continue;
            }
            let mut retry = false;
            if let Some(dropped) = self.dropped {
                if self.offset >= dropped.end {
                    self.dropped = None;
                } else if dropped.retries == 0 {
                    // Enough starts inside the dropped frames were tried:
                    // the rest of them is skipped, quietly, as their rest.
                    let n = (dropped.end - self.offset).min(self.buf.len() as u64) as usize;
                    if n > 0 {
                        if let Some(problem) = self.skip(n) {
                            return Some(Split::Dropped(problem));
                        }
                        continue;
                    }
                    if !self.eof {
                        return None;
                    }
                } else {
                    retry = true;
                }
            }
            // Between frames: skip to the next JPEG start. Without one, keep
            // the last two bytes, which may be the first two of a start.
            let found = self.finder.find(&self.buf);
            self.work += found.map_or(self.buf.len(), |at| at + JPEG_START.len()) as u64;
            let skip = match found {
                Some(at) => at,
                None if self.eof => self.buf.len(),
                None => self.buf.len().saturating_sub(JPEG_START.len() - 1),
            };
            if skip > 0 {
                self.clear = skip;
                continue;
            }
            if found.is_none() {
                return if self.eof {
                    self.run.end(false).map(Split::Dropped)
                } else {
                    None
                };
            }
            if retry {
                if let Some(dropped) = self.dropped.as_mut() {
                    dropped.retries -= 1;
                }
            }
            self.in_frame = true;
            self.scanner.reset();
            if let Some(problem) = self.run.end(false) {
                return Some(Split::Dropped(problem));
            }
        }
    }

    /// Walks on through the frame that starts the buffer.
    fn walk_frame(&mut self) -> Option<Split> {
        // Only the first `max_frame` bytes are walked, so the verdict on a
        // frame does not depend on how much of the stream was read at once.
        let window = &self.buf[..self.buf.len().min(self.max_frame)];
        let walked = self.scanner.position();
        let verdict = self.scanner.resume(window);
        self.work += (self.scanner.position().saturating_sub(walked) + 1) as u64;
        let problem = match verdict {
            Ok(Some(info)) => {
                self.in_frame = false;
                self.frame_hint = info.len;
                self.offset += info.len as u64;
                return Some(Split::Frame(self.buf.split_to(info.len).freeze()));
            }
            Ok(None) if self.buf.len() > self.max_frame => {
                self.consume(self.max_frame);
                self.run = Run::new(true);
                Problem::TooLarge {
                    limit: self.max_frame,
                }
            }
            Ok(None) if self.eof => {
                let bytes = self.buf.len();
                self.consume(bytes);
                Problem::Truncated { bytes }
            }
            Ok(None) => return None,
            Err(error) => {
                // Starts inside what this walk went over are tried next (a
                // few of them), from the second byte: the frame may have
                // been cut short by the start of the next one, which must
                // not be lost with it.
                let end = self.offset + self.scanner.position() as u64;
                self.dropped = Some(match self.dropped {
                    Some(d) if self.offset < d.end => Dropped {
                        end: d.end.max(end),
                        retries: d.retries,
                    },
                    _ => Dropped {
                        end,
                        retries: RETRIES,
                    },
                });
                self.consume(1);
                self.run = Run::new(true);
                Problem::Corrupt(error)
            }
        };
        self.in_frame = false;
        Some(Split::Dropped(problem))
    }

    /// Drops up to `n` bytes from the front of the buffer into the current
    /// run. A run that reaches `max_frame` bytes is reported then, so that a
    /// source sending nothing but non-JPEG data is heard of before it ends.
    fn skip(&mut self, n: usize) -> Option<Problem> {
        let take = n.min(self.max_frame - self.run.bytes);
        self.run.add(&self.buf[..take]);
        self.work += take as u64;
        self.consume(take);
        if self.run.bytes < self.max_frame {
            return None;
        }
        let quiet = self.run.quiet;
        self.run.end(quiet)
    }
}

/// Feeds `data` to the splitter as the fuzz target does and checks its
/// promises; panics if one is broken. Public only for `fuzz/` and for the
/// tests that replay its findings.
///
/// The first byte picks the frame limit (small ones exercise
/// [`Problem::TooLarge`]), the second seeds the chunk sizes, the rest is the
/// stream.
#[doc(hidden)]
pub fn fuzz_split(data: &[u8]) {
    let [limit, seed, stream @ ..] = data else {
        return;
    };
    let max_frame = match *limit {
        0..=127 => DEFAULT_MAX_FRAME,
        n => usize::from(n - 127) * 37,
    };

    let whole = split_in_pieces(stream, max_frame, &mut || usize::MAX);
    let mut rng = crate::xorshift::XorShift::new(u64::from(*seed) | 0x9E37_79B9_7F4A_7C00);
    // Deterministic, so a finding replays exactly.
    let mut random = || rng.below(300) + 1;
    let chunked = split_in_pieces(stream, max_frame, &mut random);
    assert_eq!(whole, chunked, "the chunking changed the result");
    let bytewise = split_in_pieces(stream, max_frame, &mut || 1);
    assert_eq!(whole, bytewise, "byte-by-byte feeding changed the result");

    // Frames are whole JPEGs, found in the stream in order.
    let mut from = 0;
    for event in &whole {
        if let Split::Frame(frame) = event {
            let info = jpeg::validate(frame).expect("an emitted frame does not validate");
            assert_eq!(info.len, frame.len(), "an emitted frame has trailing bytes");
            assert!(
                frame.len() <= max_frame,
                "an emitted frame is over the limit"
            );
            let at = memchr::memmem::find(&stream[from..], frame)
                .expect("an emitted frame is not in the stream after the previous one");
            from += at + frame.len();
        }
    }

    // The resumable scan agrees with the one-shot scan.
    let mut scanner = Scanner::new();
    let mut end = 0;
    let resumed = loop {
        end = (end + random()).min(stream.len());
        match scanner.resume(&stream[..end]) {
            Ok(None) if end < stream.len() => {}
            verdict => break verdict,
        }
    };
    let once = match jpeg::scan(stream) {
        Ok(info) => Ok(Some(info)),
        Err(JpegError::Truncated { .. } | JpegError::Empty) => Ok(None),
        Err(e) => Err(e),
    };
    assert_eq!(resumed, once, "Scanner and scan disagree");
}

/// Splits `stream` fed in pieces of the sizes `size` returns, then finishes.
fn split_in_pieces(stream: &[u8], max_frame: usize, size: &mut dyn FnMut() -> usize) -> Vec<Split> {
    let mut splitter = Splitter::new(max_frame);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut pushes = 0u64;
    while !rest.is_empty() {
        pushes += 1;
        let (piece, tail) = rest.split_at(size().min(rest.len()));
        splitter.push(piece);
        rest = tail;
        events.extend(std::iter::from_fn(|| splitter.next_event()));
        assert!(
            splitter.buffered() <= max_frame.max(2),
            "the splitter holds more than a frame's worth of bytes"
        );
    }
    splitter.finish();
    events.extend(std::iter::from_fn(|| splitter.next_event()));
    assert_eq!(splitter.buffered(), 0, "bytes left over after finish");
    // Linear work: a bounded number of looks per byte, plus a little per
    // read.
    assert!(
        splitter.work() <= WORK_PER_BYTE * stream.len() as u64 + 8 * pushes + 8,
        "{} bytes looked at for {} bytes in {pushes} reads",
        splitter.work(),
        stream.len()
    );
    events
}

#[cfg(test)]
mod tests;
