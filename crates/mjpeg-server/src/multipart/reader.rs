//! Reading `multipart/x-mixed-replace` bodies written by other programs.
//!
//! Pushed streams (`ffmpeg … -f mpjpeg http://…`) and relayed cameras come
//! from writers that each bend the format a little, so the reader is
//! tolerant: a boundary parameter that already starts with `--`, quoted
//! boundaries, parts with or without `Content-Length`, LF-only line endings,
//! and junk before the first boundary are all accepted.
//!
//! The reader is a push parser: feed it bytes as they arrive with
//! [`PartReader::push`] and take complete parts with
//! [`PartReader::next_part`]. Part bodies are split off the read buffer as
//! [`Bytes`] without copying, and no part may grow past a size limit, so a
//! writer that never sends a boundary cannot make the server buffer without
//! bound.
//!
//! The reader's work is linear in its input, whatever the bytes are and
//! however they are cut into pushes: each search keeps its place between
//! calls instead of starting again from the front of the buffer, and a
//! delimiter line is recognised by reading forward from the start of a line.
//! A body built to be slow (200 KB of `-` with the boundary `-` used to take
//! seconds of a runtime worker) costs what any body of its size costs, and a
//! part arriving in thousands of small pushes is looked at once. The parts'
//! header blocks are bounded ([`MAX_HEADER_BLOCK`]) and so is the run of
//! dashes that may start a delimiter line, so the reader never holds more
//! than a part, its headers and one line.

use bytes::{Buf, Bytes, BytesMut};

/// One part: its headers (names as sent) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Header lines, in order.
    pub headers: Vec<(String, String)>,
    /// The body, without the line break before the next boundary.
    pub body: Bytes,
}

impl Part {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why the reader gave up on a part or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// A part grew past the limit without its end being found.
    #[error("a part is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A part's header block is malformed.
    #[error("malformed part header: {0}")]
    BadHeader(String),
}

/// Extracts the boundary from a `Content-Type` such as
/// `multipart/x-mixed-replace; boundary="--frame"`. Returns `None` if the
/// type is not multipart or has no boundary.
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim().trim_matches('"');
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    None
}

enum State {
    /// Looking for the first boundary line; everything before it is junk.
    Preamble,
    /// Reading a part's header lines.
    Headers,
    /// Reading a body of known length.
    Body {
        headers: Vec<(String, String)>,
        len: usize,
    },
    /// Reading a body that ends at the next boundary.
    Delimited { headers: Vec<(String, String)> },
    /// The closing `--boundary--` was seen.
    Done,
}

/// The longest header block of a part. Real writers send two or three
/// short lines; without a bound, a block of millions of tiny lines up to the
/// part limit would become millions of strings.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// The most dashes a delimiter line may start with: `--` and a boundary of
/// up to 70 dashes (RFC 2046's longest), written twice by writers that put
/// them in the parameter as well. A longer run is data: without a bound, a
/// line of dashes would have to be buffered whole to learn what it is.
const MAX_DASHES: usize = 2 * (2 + 70);

/// Where the search through the buffer stopped, so that the next call goes
/// on from there: each byte is looked at a bounded number of times however
/// the body is cut into pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// Start of the line being looked at (`buf[line - 1]` is `\n`, or the
    /// line is the start of the buffer).
    line: usize,
    /// First byte not yet looked at.
    pos: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Counting the dashes that start the line.
    Dashes,
    /// After the dashes (which end at `start`), matching the boundary.
    Bare { start: usize },
    /// The line is no delimiter: looking for its end.
    Skip,
    /// The line (at the start of the buffer) is a delimiter whose boundary
    /// ends at `after`: reading what follows it (the preamble state only).
    Rest { after: usize },
    /// Dropping the rest of a delimiter line up to its end (the preamble
    /// state only).
    Eol { closing: bool },
}

impl Scan {
    /// At the start of a line.
    const START: Scan = Scan {
        line: 0,
        pos: 0,
        phase: Phase::Dashes,
    };
}

/// A push parser for multipart bodies.
///
/// Its work is linear in its input, whatever the input and however it is
/// cut into pushes: every search keeps its place instead of
/// starting again from the front of the buffer, a delimiter line is
/// recognised by reading forward from a line start (never by counting dashes
/// backwards from each match of the boundary, which is quadratic in a body
/// of dashes), and bytes looked at once are looked at again at most once
/// more (a delimiter line and a refused header block, which are bounded).
/// So no push costs more than a constant times its own size, and a body
/// crafted to be slow to parse is no slower than any other.
pub struct PartReader {
    /// The boundary without leading dashes (or, for a boundary of dashes
    /// only, all of it).
    bare: Vec<u8>,
    /// True if `bare` is dashes only (or empty).
    bare_dashes: bool,
    buf: BytesMut,
    state: State,
    max_part: usize,
    scan: Scan,
    /// How many bytes at the start of `buf` (whole lines) are known to hold
    /// no empty line: those of a header block refused for having no end.
    /// A delimiter among them starts a new header block there, and its
    /// search for the end goes on from here instead of looking at them
    /// again, which made work grow with the number of such delimiters times
    /// the header block limit.
    headers_clean: usize,
    /// Bytes looked at, for the checks that the work stays linear.
    work: u64,
}

impl PartReader {
    /// A reader for `boundary` (with or without a leading `--`) that refuses
    /// parts over `max_part` bytes.
    ///
    /// An empty boundary (which RFC 2046 does not allow) makes every line
    /// that starts with `--` a delimiter; callers that take the boundary
    /// from a peer should refuse one that is empty.
    pub fn new(boundary: &str, max_part: usize) -> PartReader {
        // Some writers put the leading dashes into the parameter itself and
        // write them once on the wire, others twice: a delimiter line is
        // matched as two or more dashes and the boundary without its own.
        let bare = boundary.trim_start_matches('-');
        let bare = if bare.is_empty() { boundary } else { bare };
        PartReader {
            bare: bare.as_bytes().to_vec(),
            bare_dashes: bare.bytes().all(|b| b == b'-'),
            buf: BytesMut::with_capacity(64 * 1024),
            state: State::Preamble,
            max_part,
            scan: Scan::START,
            headers_clean: 0,
            work: 0,
        }
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True once the closing delimiter was read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes received but not yet consumed (for tests and limits).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many bytes the searches have looked at so far: the measure of
    /// the reader's work, which stays within a small multiple of the bytes
    /// pushed (checked by the tests and the fuzz target).
    #[doc(hidden)]
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The most bytes the reader holds between two calls of
    /// [`next_part`](Self::next_part), not counting the last push: a part
    /// at the limit, its line break and the start of a delimiter line.
    #[doc(hidden)]
    pub fn max_buffered(&self) -> usize {
        self.max_part.max(MAX_HEADER_BLOCK) + 2 + MAX_DASHES + self.bare.len() + 2
    }

    /// The next complete part, `Ok(None)` if more bytes are needed.
    ///
    /// After an error the reader has skipped to the next boundary it can
    /// find, so calling again continues with the following part.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Preamble => {
                    if !self.skip_to_delimiter_line() {
                        self.state = State::Preamble;
                        return Ok(None);
                    }
                    self.scan = Scan::START;
                    // A line start: the delimiter line before was dropped
                    // whole.
                    self.scan.line = self.headers_clean;
                    self.scan.pos = self.headers_clean;
                }
                State::Headers => {
                    // Only the first MAX_HEADER_BLOCK bytes may hold the end
                    // of the block, so that the verdict does not depend on
                    // how much arrived at once.
                    let window = self.max_part.min(MAX_HEADER_BLOCK);
                    let Some(end) = self.find_blank_line(window) else {
                        if self.buf.len() < window {
                            self.state = State::Headers;
                            return Ok(None);
                        }
                        // The block's lines are junk now: look for the next
                        // delimiter among them and after them.
                        self.state = State::Preamble;
                        self.headers_clean = self.scan.line;
                        self.scan = Scan::START;
                        return Err(MultipartError::BadHeader(format!(
                            "header block longer than {window} bytes without an end"
                        )));
                    };
                    let block = self.buf.split_to(end.block_len);
                    self.buf.advance(end.separator_len);
                    self.scan = Scan::START;
                    self.headers_clean = 0;
                    let headers = match parse_headers(&block) {
                        Ok(h) => h,
                        Err(e) => {
                            self.state = State::Preamble;
                            return Err(e);
                        }
                    };
                    let len = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
                    self.state = match len {
                        Some(len) if len > self.max_part => {
                            self.state = State::Preamble;
                            return Err(MultipartError::TooLarge {
                                limit: self.max_part,
                            });
                        }
                        Some(len) => State::Body { headers, len },
                        None => State::Delimited { headers },
                    };
                }
                State::Body { headers, len } => {
                    if self.buf.len() < len {
                        self.state = State::Body { headers, len };
                        return Ok(None);
                    }
                    let body = self.buf.split_to(len).freeze();
                    // What follows should be a line break and the delimiter;
                    // the preamble state finds it (and skips any junk).
                    self.state = State::Preamble;
                    self.scan = Scan::START;
                    return Ok(Some(Part { headers, body }));
                }
                State::Delimited { headers } => {
                    // The body ends at the line break before a delimiter
                    // line (CRLF or bare LF). A body may not pass the limit,
                    // so its end must be found in the first `max_part + 2`
                    // bytes: deciding on that window alone makes the verdict
                    // the same whether the part arrived whole or in pieces.
                    let last_line = self.max_part + 2;
                    match self.find_delimiter_line(last_line) {
                        Some((line_start, _)) => {
                            let mut end = line_start.saturating_sub(1);
                            if end > 0 && self.buf[end - 1] == b'\r' {
                                end -= 1;
                            }
                            if end > self.max_part {
                                // Found, but too long: skip to the delimiter.
                                self.state = State::Preamble;
                                return Err(MultipartError::TooLarge {
                                    limit: self.max_part,
                                });
                            }
                            let body = self.buf.split_to(end).freeze();
                            self.state = State::Preamble;
                            self.scan = Scan::START;
                            return Ok(Some(Part { headers, body }));
                        }
                        None if self.next_line_start() > last_line => {
                            // No delimiter can start in time any more: the
                            // rest of this part is junk for the preamble
                            // state, which goes on with the same search and
                            // drops what it has passed.
                            self.state = State::Preamble;
                            return Err(MultipartError::TooLarge {
                                limit: self.max_part,
                            });
                        }
                        None => {
                            self.state = State::Delimited { headers };
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// The earliest line start where a delimiter may yet be found.
    fn next_line_start(&self) -> usize {
        match self.scan.phase {
            Phase::Skip => self.scan.pos + 1,
            _ => self.scan.line,
        }
    }

    /// Finds a delimiter at the start of a line, consumes through the end of
    /// that line and moves to the header (or done) state. Returns false if
    /// more bytes are needed; then everything before the line that may be a
    /// delimiter has been dropped, since it is junk.
    /// Drops `n` bytes of junk or delimiter line from the front of the
    /// buffer.
    fn drop_front(&mut self, n: usize) {
        self.buf.advance(n);
        self.headers_clean = self.headers_clean.saturating_sub(n);
    }

    fn skip_to_delimiter_line(&mut self) -> bool {
        loop {
            match self.scan.phase {
                Phase::Rest { after } => {
                    // Closing if the rest of the line starts with "--": that
                    // takes two bytes, or the end of the line.
                    let rest = &self.buf[after..];
                    let two = &rest[..rest.len().min(2)];
                    let closing = match memchr::memchr(b'\n', two) {
                        Some(_) => false,
                        None if two.len() == 2 => two == b"--",
                        None => return false,
                    };
                    self.drop_front(after);
                    self.scan = Scan {
                        line: 0,
                        pos: 0,
                        phase: Phase::Eol { closing },
                    };
                }
                Phase::Eol { closing } => {
                    let rest = &self.buf[self.scan.pos..];
                    let nl = memchr::memchr(b'\n', rest);
                    self.work += nl.map_or(rest.len(), |nl| nl + 1) as u64 + 1;
                    let Some(nl) = nl else {
                        // The rest of a delimiter line is junk: drop it as
                        // it comes.
                        self.drop_front(self.buf.len());
                        self.scan.pos = 0;
                        return false;
                    };
                    self.drop_front(self.scan.pos + nl + 1);
                    self.state = if closing { State::Done } else { State::Headers };
                    return true;
                }
                _ => match self.find_delimiter_line(usize::MAX) {
                    Some((line, after)) => {
                        // Everything before the delimiter line is junk.
                        self.drop_front(line);
                        self.scan = Scan {
                            line: 0,
                            pos: after - line,
                            phase: Phase::Rest {
                                after: after - line,
                            },
                        };
                    }
                    None => {
                        // What was passed is junk: drop it, keeping the line
                        // that may still turn out to be a delimiter (at most
                        // MAX_DASHES and the boundary).
                        let drop = match self.scan.phase {
                            Phase::Skip => self.scan.pos,
                            _ => self.scan.line,
                        };
                        self.drop_front(drop);
                        self.scan.pos -= drop;
                        self.scan.line = self.scan.line.saturating_sub(drop);
                        if let Phase::Bare { start } = &mut self.scan.phase {
                            *start -= drop;
                        }
                        return false;
                    }
                },
            }
        }
    }

    /// Goes on looking for the first delimiter line: at the start of a line,
    /// two or more dashes, then the boundary. Returns where the line starts
    /// and where the boundary ends. Gives up (`None`) on reaching a line
    /// that starts after `last_line`.
    fn find_delimiter_line(&mut self, last_line: usize) -> Option<(usize, usize)> {
        let buf = &self.buf[..];
        let bare = &self.bare[..];
        let scan = &mut self.scan;
        let start_pos = scan.pos;
        let found = loop {
            match scan.phase {
                Phase::Dashes => {
                    if scan.line > last_line {
                        break None;
                    }
                    let run = buf[scan.pos..].iter().take_while(|&&b| b == b'-').count();
                    scan.pos += run;
                    let dashes = scan.pos - scan.line;
                    if self.bare_dashes {
                        // A boundary of dashes: the line starts with "--"
                        // and it, and the rest of the line follows.
                        let need = 2 + bare.len();
                        if dashes >= need {
                            break Some((scan.line, scan.line + need));
                        }
                        if scan.pos == buf.len() {
                            break None;
                        }
                        scan.phase = Phase::Skip;
                    } else if dashes > MAX_DASHES {
                        scan.phase = Phase::Skip;
                    } else if scan.pos == buf.len() {
                        break None;
                    } else if dashes >= 2 {
                        scan.phase = Phase::Bare { start: scan.pos };
                    } else {
                        scan.phase = Phase::Skip;
                    }
                }
                Phase::Bare { start } => {
                    let want = &bare[scan.pos - start..];
                    let have = &buf[scan.pos..];
                    let same = want.iter().zip(have).take_while(|(a, b)| a == b).count();
                    scan.pos += same;
                    if same == want.len() {
                        break Some((scan.line, scan.pos));
                    }
                    if same == have.len() {
                        break None;
                    }
                    scan.phase = Phase::Skip;
                }
                Phase::Skip => match memchr::memchr(b'\n', &buf[scan.pos..]) {
                    Some(nl) => {
                        scan.line = scan.pos + nl + 1;
                        scan.pos = scan.line;
                        scan.phase = Phase::Dashes;
                    }
                    None => {
                        scan.pos = buf.len();
                        break None;
                    }
                },
                // The preamble's own phases, which its caller handles.
                Phase::Rest { .. } | Phase::Eol { .. } => break None,
            }
        };
        self.work += (self.scan.pos - start_pos) as u64 + 1;
        found
    }

    /// Goes on looking for the end of a header block in the first `window`
    /// bytes: an empty line, CRLF or LF style. A part with no headers at all
    /// starts with the empty line.
    fn find_blank_line(&mut self, window: usize) -> Option<BlankLine> {
        let buf = &self.buf[..self.buf.len().min(window)];
        let scan = &mut self.scan;
        let start_pos = scan.pos;
        let found = loop {
            let line = &buf[scan.line..];
            if line.starts_with(b"\r\n") {
                break Some(BlankLine {
                    block_len: scan.line,
                    separator_len: 2,
                });
            }
            if line.starts_with(b"\n") {
                break Some(BlankLine {
                    block_len: scan.line,
                    separator_len: 1,
                });
            }
            if line.is_empty() || line == b"\r" {
                break None;
            }
            let from = scan.pos.max(scan.line);
            match memchr::memchr(b'\n', &buf[from..]) {
                Some(nl) => {
                    scan.line = from + nl + 1;
                    scan.pos = scan.line;
                }
                None => {
                    scan.pos = buf.len();
                    break None;
                }
            }
        };
        self.work += (self.scan.pos.saturating_sub(start_pos)) as u64 + 1;
        found
    }
}

struct BlankLine {
    block_len: usize,
    separator_len: usize,
}

fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, MultipartError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| MultipartError::BadHeader("not UTF-8 text".into()))?;
    let mut headers = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(MultipartError::BadHeader(format!(
                "line without a colon: {:?}",
                line.chars().take(80).collect::<String>()
            )));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(headers)
}

/// The fuzz target's checks (`fuzz/fuzz_targets/multipart.rs`), here so
/// that unit tests can replay its findings through the same code: arbitrary
/// bytes read whole and byte by byte never panic, never buffer much past the
/// part limit, never yield a part over the limit, look at no more than a few
/// times as many bytes as they were given (linear work), and, when neither
/// reading hit an error, yield the same parts.
#[doc(hidden)]
pub fn fuzz_read(data: &[u8]) {
    const MAX: usize = 4096;
    let run = |chunk: usize| {
        let mut r = PartReader::new("--bnd", MAX);
        let mut parts = Vec::new();
        let mut errors = 0;
        for piece in data.chunks(chunk.max(1)) {
            r.push(piece);
            loop {
                match r.next_part() {
                    Ok(Some(p)) => {
                        assert!(p.body.len() <= MAX, "part of {} bytes", p.body.len());
                        parts.push(p);
                    }
                    Ok(None) => break,
                    Err(_) => errors += 1,
                }
            }
            assert!(
                r.buffered() <= r.max_buffered() + chunk,
                "buffered {} bytes",
                r.buffered()
            );
        }
        // Linear work: each byte is looked at a few times at most, plus a
        // constant per push.
        let pushes = data.len().div_ceil(chunk.max(1)) as u64;
        assert!(
            r.work() <= 4 * data.len() as u64 + 16 * pushes + 16,
            "{} bytes looked at for {} bytes in {pushes} pushes",
            r.work(),
            data.len()
        );
        (parts, errors)
    };
    let (whole, e1) = run(data.len());
    let (bytewise, e2) = run(1);
    if e1 == 0 && e2 == 0 {
        assert_eq!(whole, bytewise, "parts depend on how the input was cut");
    }
}

#[cfg(test)]
mod tests;
