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
mod tests {
    use super::*;

    #[test]
    fn fuzz_checks_hold_on_samples() {
        let mut ours = crate::multipart::PREAMBLE.to_vec();
        ours.extend_from_slice(b"Content-Length: 3\r\n\r\nabc\r\n--mjpegserverboundary\r\n");
        for sample in [
            &b""[..],
            b"--bnd\r\n\r\nx\r\n--bnd--\r\n",
            b"junk\n----bnd\nContent-Length: 2\n\nxy\n--bnd\n\nz",
            b"--bnd\r\nContent-Length: 99999\r\n\r\n",
            b"--bnd\r\nno colon here\r\n\r\n--bnd\r\n",
            &ours,
        ] {
            fuzz_read(sample);
        }
    }

    fn read_all(
        reader: &mut PartReader,
        data: &[u8],
        chunk: usize,
    ) -> Vec<Result<Part, MultipartError>> {
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            reader.push(piece);
            loop {
                match reader.next_part() {
                    Ok(Some(p)) => out.push(Ok(p)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e)),
                }
            }
        }
        out
    }

    fn bodies(parts: &[Result<Part, MultipartError>]) -> Vec<Vec<u8>> {
        parts
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|p| p.body.to_vec())
            .collect()
    }

    #[test]
    fn boundaries_from_content_types() {
        let b = boundary_from_content_type;
        assert_eq!(
            b("multipart/x-mixed-replace; boundary=frame").as_deref(),
            Some("frame")
        );
        assert_eq!(
            b("multipart/x-mixed-replace;boundary=\"--x y\"").as_deref(),
            Some("--x y")
        );
        assert_eq!(
            b("Multipart/X-Mixed-Replace; charset=x; BOUNDARY=ffmpeg").as_deref(),
            Some("ffmpeg")
        );
        assert_eq!(b("image/jpeg"), None);
        assert_eq!(b("multipart/x-mixed-replace"), None);
    }

    #[test]
    fn our_own_format_round_trips_in_any_chunking() {
        let mut wire = crate::multipart::PREAMBLE.to_vec();
        let frames: Vec<Vec<u8>> = vec![
            b"\xff\xd8one\xff\xd9".to_vec(),
            b"\xff\xd8two--x\r\n\xff\xd9".to_vec(),
        ];
        for f in &frames {
            wire.extend_from_slice(&crate::multipart::part_header(
                f.len(),
                std::time::SystemTime::now(),
            ));
            wire.extend_from_slice(f);
            wire.extend_from_slice(crate::multipart::TRAILER);
        }
        for chunk in [1, 2, 7, 64, 10_000] {
            let mut r = PartReader::new(crate::multipart::BOUNDARY, 1 << 20);
            let parts = read_all(&mut r, &wire, chunk);
            assert_eq!(bodies(&parts), frames, "chunk {chunk}");
            assert_eq!(
                parts[0].as_ref().unwrap().header("content-type"),
                Some("image/jpeg")
            );
        }
    }

    #[test]
    fn tolerant_of_what_other_writers_do() {
        // Junk before the first boundary, LF-only lines, no Content-Length,
        // a boundary parameter with the dashes included, and a closing
        // delimiter.
        let wire = b"garbage\r\nmore\n--myb\nContent-Type: image/jpeg\n\nAAAA\n--myb\nContent-Type: image/jpeg\n\nBB\r\nB\n--myb--\n";
        let mut r = PartReader::new("--myb", 1000);
        let parts = read_all(&mut r, wire, 3);
        assert_eq!(bodies(&parts), [b"AAAA".to_vec(), b"BB\r\nB".to_vec()]);
        // The same boundary parameter, with the dashes written twice.
        let doubled = String::from_utf8_lossy(wire).replace("--myb", "----myb");
        let mut r = PartReader::new("--myb", 1000);
        let parts = read_all(&mut r, doubled.as_bytes(), 3);
        assert_eq!(bodies(&parts), [b"AAAA".to_vec(), b"BB\r\nB".to_vec()]);
        assert!(r.is_done());
        // ffmpeg's mpjpeg muxer: boundary "ffmpeg", CRLF, Content-length.
        let wire = b"--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 3\r\n\r\nxyz\r\n--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 2\r\n\r\nqq\r\n";
        let mut r = PartReader::new("ffmpeg", 1000);
        assert_eq!(
            bodies(&read_all(&mut r, wire, 5)),
            [b"xyz".to_vec(), b"qq".to_vec()]
        );
    }

    #[test]
    fn a_boundary_string_inside_a_line_is_not_a_delimiter() {
        let wire = b"--b\r\n\r\nx--b y\r\n--b\r\n\r\nz\r\n--b\r\n";
        let mut r = PartReader::new("b", 1000);
        assert_eq!(
            bodies(&read_all(&mut r, wire, 1)),
            [b"x--b y".to_vec(), b"z".to_vec()]
        );
    }

    #[test]
    fn oversize_parts_are_refused_and_memory_stays_bounded() {
        let mut wire = b"--b\r\n\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 10_000));
        wire.extend_from_slice(
            b"\r\n--b\r\nContent-Length: 1\r\n\r\ny\r\n--b\r\nContent-Length: 5000\r\n\r\n",
        );
        let mut r = PartReader::new("b", 1000);
        let mut max_buffered = 0;
        let mut out = Vec::new();
        for piece in wire.chunks(100) {
            r.push(piece);
            loop {
                match r.next_part() {
                    Ok(Some(p)) => out.push(Ok(p)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e)),
                }
            }
            max_buffered = max_buffered.max(r.buffered());
        }
        assert!(max_buffered < 1200, "buffered {max_buffered}");
        assert!(matches!(
            out[0],
            Err(MultipartError::TooLarge { limit: 1000 })
        ));
        assert_eq!(bodies(&out), [b"y".to_vec()]);
        assert!(matches!(
            out.last(),
            Some(Err(MultipartError::TooLarge { .. }))
        ));
    }

    /// Runs `f` on another thread and fails if it takes longer than
    /// `limit`: a guard against a parser that hangs (a quadratic one takes
    /// hours on these inputs), not a speed measurement.
    fn within<T: Send + 'static>(
        limit: std::time::Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .expect("the reader did not finish in time: is its work growing faster than its input?")
    }

    /// Feeds `data` in pieces of `chunk` bytes and returns the parts, the
    /// errors and the reader's work count.
    fn read_counting(boundary: &str, max: usize, data: &[u8], chunk: usize) -> (usize, usize, u64) {
        let mut r = PartReader::new(boundary, max);
        let (mut parts, mut errors) = (0, 0);
        for piece in data.chunks(chunk.max(1)) {
            r.push(piece);
            loop {
                match r.next_part() {
                    Ok(Some(_)) => parts += 1,
                    Ok(None) => break,
                    Err(_) => errors += 1,
                }
            }
        }
        (parts, errors, r.work())
    }

    #[test]
    fn delimiters_among_endless_header_lines_are_read_in_linear_work() {
        // Each delimiter line among the lines of a header block refused for
        // having no end starts a new block; each new block's search for its
        // end used to look at the whole header limit again (found by the
        // fuzzer: a 1.3 MB body took 7 s).
        let mut wire = b"--bnd\r\n".to_vec();
        for _ in 0..100_000 {
            wire.extend_from_slice(b"--bnd\r\nX: 1\r\n");
        }
        for chunk in [usize::MAX, 8192, 100] {
            let mut r = PartReader::new("--bnd", 16 << 20);
            let out = read_all(&mut r, &wire, chunk);
            assert!(out.iter().all(|p| p.is_err()), "chunk {chunk}");
            assert!(
                r.work() <= 4 * wire.len() as u64 + 16 * wire.len().div_ceil(chunk) as u64,
                "chunk {chunk}: {} bytes looked at for {}",
                r.work(),
                wire.len()
            );
        }
    }

    #[test]
    fn adversarial_bodies_are_read_in_linear_work() {
        const SIZE: usize = 10 << 20;
        let dashes = [b"x".to_vec(), vec![b'-'; SIZE]].concat();
        // Lines of growing runs of dashes: every line start is a candidate.
        let mut lines = Vec::with_capacity(SIZE + 4096);
        let mut n = 1;
        while lines.len() < SIZE {
            lines.extend(std::iter::repeat_n(b'-', n % 4000));
            lines.push(b'\n');
            n += 7;
        }
        // A body that never ends, as one part without Content-Length.
        let endless = [b"--b\r\n\r\n".to_vec(), vec![b'-'; SIZE]].concat();
        for (name, boundary, data) in [
            ("dashes", "-", dashes),
            ("dash lines", "-", lines.clone()),
            ("dash lines, boundary --", "--", lines),
            ("endless part", "b", endless),
        ] {
            let data = std::sync::Arc::new(data);
            for chunk in [usize::MAX, 8192, 100] {
                let d = data.clone();
                let b = boundary.to_string();
                let (_, _, work) = within(std::time::Duration::from_secs(20), move || {
                    read_counting(&b, 16 << 20, &d, chunk)
                });
                let len = data.len() as u64;
                assert!(
                    work <= 4 * len + 64 * (len / chunk.min(data.len()) as u64 + 1),
                    "{name}, chunk {chunk}: {work} bytes looked at for {len} bytes of input"
                );
            }
        }
    }

    #[test]
    fn a_part_is_rescanned_never_when_it_arrives_in_small_pieces() {
        // A 16 MiB part without Content-Length in 8 KiB pushes: the search
        // for its end goes on where it stopped instead of starting over.
        let mut wire = b"--b\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        wire.extend(b"0123456789abcde\n".repeat((16 << 20) / 16 - 4));
        wire.extend_from_slice(b"\r\n--b\r\n");
        let len = wire.len() as u64;
        let (parts, errors, work) = within(std::time::Duration::from_secs(20), move || {
            read_counting("b", 16 << 20, &wire, 8192)
        });
        assert_eq!((parts, errors), (1, 0));
        assert!(work <= 3 * len, "{work} bytes looked at for {len}");
    }

    #[test]
    fn empty_and_all_dash_boundaries_work_without_panicking() {
        for boundary in ["", "-", "--", "---"] {
            for chunk in [1, 3, 100] {
                let mut r = PartReader::new(boundary, 1000);
                let _ = read_all(&mut r, b"--\r\n\r\nabc", chunk);
                let _ = read_all(&mut r, b"\r\n--\r\n\r\n\n----\n", chunk);
            }
        }
        // A boundary of dashes is a boundary like any other: "--" plus it.
        let wire = b"---\r\n\r\nab\r\n---\r\n\r\ncd\r\n-----\r\n";
        for chunk in [1, 2, 100] {
            let mut r = PartReader::new("-", 1000);
            assert_eq!(
                bodies(&read_all(&mut r, wire, chunk)),
                [b"ab".to_vec(), b"cd".to_vec()]
            );
            assert!(r.is_done());
        }
    }

    #[test]
    fn no_part_over_the_limit_even_when_read_whole() {
        // Read whole, the end of an oversize part was found and the part
        // handed out anyway; read in pieces it was refused.
        let mut wire = b"--b\r\n\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 1500));
        wire.extend_from_slice(b"\r\n--b\r\n\r\nsmall\r\n--b--\r\n");
        for chunk in [usize::MAX, 100, 1] {
            let mut r = PartReader::new("b", 1000);
            let out = read_all(&mut r, &wire, chunk);
            assert!(
                matches!(out[0], Err(MultipartError::TooLarge { limit: 1000 })),
                "chunk {chunk}: {out:?}"
            );
            assert_eq!(bodies(&out), [b"small".to_vec()], "chunk {chunk}");
        }
    }

    #[test]
    fn header_blocks_are_bounded() {
        // 200 KB of header lines without an end: refused as soon as the
        // block is over the header limit, not buffered up to the part limit.
        let mut wire = b"--b\r\n".to_vec();
        wire.extend(b"X-A: 1\r\n".repeat(200_000 / 8));
        wire.extend_from_slice(b"\r\nbody\r\n--b\r\n\r\nnext\r\n--b\r\n");
        for chunk in [usize::MAX, 1000] {
            let mut r = PartReader::new("b", 1 << 20);
            let mut max_buffered = 0;
            let mut out = Vec::new();
            for piece in wire.chunks(chunk.min(wire.len())) {
                r.push(piece);
                loop {
                    match r.next_part() {
                        Ok(Some(p)) => out.push(Ok(p)),
                        Ok(None) => break,
                        Err(e) => out.push(Err(e)),
                    }
                }
                max_buffered = max_buffered.max(r.buffered());
            }
            assert!(
                matches!(&out[0], Err(MultipartError::BadHeader(why)) if why.contains("longer than")),
                "{out:?}"
            );
            assert_eq!(bodies(&out), [b"next".to_vec()]);
            if chunk == 1000 {
                assert!(
                    max_buffered < MAX_HEADER_BLOCK + 2000,
                    "buffered {max_buffered}"
                );
            }
        }
    }

    #[test]
    fn random_bodies_hold_the_fuzz_checks() {
        // Bodies assembled from the pieces the format is made of, so that
        // random ones reach every state: the same checks as the fuzz target.
        const PIECES: &[&[u8]] = &[
            b"--bnd",
            b"----bnd",
            b"--bnd--",
            b"\r\n",
            b"\n",
            b"-",
            b"--",
            b"bnd",
            b"x",
            b"Content-Length: 3",
            b"Content-Length: 99999",
            b":",
            b"\r",
            b"abc",
        ];
        let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D);
        for _ in 0..2000 {
            let mut body = Vec::new();
            for _ in 0..rng.below(200) {
                let r = rng.next();
                let piece = PIECES[(r % PIECES.len() as u64) as usize];
                let times = if r >> 40 & 0xF == 0 { 300 } else { 1 };
                for _ in 0..times {
                    body.extend_from_slice(piece);
                }
            }
            fuzz_read(&body);
        }
    }
}
