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

/// A push parser for multipart bodies.
pub struct PartReader {
    /// The boundary without leading dashes.
    bare: Vec<u8>,
    buf: BytesMut,
    state: State,
    max_part: usize,
}

impl PartReader {
    /// A reader for `boundary` (with or without a leading `--`) that refuses
    /// parts over `max_part` bytes.
    pub fn new(boundary: &str, max_part: usize) -> PartReader {
        // Some writers put the leading dashes into the parameter itself and
        // write them once on the wire, others twice: a delimiter line is
        // matched as two or more dashes and the boundary without its own.
        let bare = boundary.trim_start_matches('-');
        let bare = if bare.is_empty() { boundary } else { bare };
        PartReader {
            bare: bare.as_bytes().to_vec(),
            buf: BytesMut::with_capacity(64 * 1024),
            state: State::Preamble,
            max_part,
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
                        return self.check_limit();
                    }
                }
                State::Headers => {
                    let Some(end) = find_blank_line(&self.buf) else {
                        self.state = State::Headers;
                        return self.check_limit();
                    };
                    let block = self.buf.split_to(end.block_len);
                    self.buf.advance(end.separator_len);
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
                    return Ok(Some(Part { headers, body }));
                }
                State::Delimited { headers } => {
                    // The body ends at the line break before a delimiter
                    // line (CRLF or bare LF).
                    match find_delimiter_line(&self.buf, &self.bare, 0) {
                        Some((line_start, _)) => {
                            let mut end = line_start.saturating_sub(1);
                            if end > 0 && self.buf[end - 1] == b'\r' {
                                end -= 1;
                            }
                            let body = self.buf.split_to(end).freeze();
                            self.state = State::Preamble;
                            return Ok(Some(Part { headers, body }));
                        }
                        None => {
                            self.state = State::Delimited { headers };
                            if self.buf.len() > self.max_part + self.bare.len() + 8 {
                                self.state = State::Preamble;
                                self.discard_keeping_tail();
                                return Err(MultipartError::TooLarge {
                                    limit: self.max_part,
                                });
                            }
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// In the preamble state, a buffer that grows without a delimiter is
    /// junk: keep only a tail that might hold the start of one.
    fn check_limit(&mut self) -> Result<Option<Part>, MultipartError> {
        if self.buf.len() > self.max_part {
            let was_headers = matches!(self.state, State::Headers);
            self.discard_keeping_tail();
            self.state = State::Preamble;
            if was_headers {
                return Err(MultipartError::BadHeader(
                    "header block without an end".into(),
                ));
            }
        }
        Ok(None)
    }

    fn discard_keeping_tail(&mut self) {
        // Enough to hold the start of a delimiter line that is cut off.
        let keep = self.bare.len() + 8;
        if self.buf.len() > keep {
            self.buf.advance(self.buf.len() - keep);
        }
    }

    /// Finds a delimiter at the start of a line, consumes through the end of
    /// that line and moves to the header (or done) state. Returns false if
    /// more bytes are needed.
    fn skip_to_delimiter_line(&mut self) -> bool {
        let Some((_, after)) = find_delimiter_line(&self.buf, &self.bare, 0) else {
            return false;
        };
        let Some(nl) = memchr::memchr(b'\n', &self.buf[after..]) else {
            return false;
        };
        let closing = self.buf[after..after + nl].starts_with(b"--");
        self.buf.advance(after + nl + 1);
        self.state = if closing { State::Done } else { State::Headers };
        true
    }
}

/// Finds the first delimiter line at or after `from`: at the start of a
/// line, two or more dashes, then `bare`. Returns where the line starts and
/// where the boundary ends.
fn find_delimiter_line(buf: &[u8], bare: &[u8], mut from: usize) -> Option<(usize, usize)> {
    let finder = memchr::memmem::Finder::new(bare);
    loop {
        let at = from + finder.find(&buf[from..])?;
        let dashes = buf[..at].iter().rev().take_while(|&&b| b == b'-').count();
        let line_start = at - dashes;
        if dashes >= 2 && (line_start == 0 || buf[line_start - 1] == b'\n') {
            return Some((line_start, at + bare.len()));
        }
        from = at + 1;
    }
}

struct BlankLine {
    block_len: usize,
    separator_len: usize,
}

/// Finds the end of a header block: an empty line, CRLF or LF style. A part
/// with no headers at all starts with the empty line.
fn find_blank_line(buf: &[u8]) -> Option<BlankLine> {
    if buf.starts_with(b"\r\n") {
        return Some(BlankLine {
            block_len: 0,
            separator_len: 2,
        });
    }
    if buf.starts_with(b"\n") {
        return Some(BlankLine {
            block_len: 0,
            separator_len: 1,
        });
    }
    let mut from = 0;
    while let Some(rel) = memchr::memchr(b'\n', &buf[from..]) {
        let nl = from + rel;
        let next = &buf[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some(BlankLine {
                block_len: nl + 1,
                separator_len: 2,
            });
        }
        if next.starts_with(b"\n") {
            return Some(BlankLine {
                block_len: nl + 1,
                separator_len: 1,
            });
        }
        if next.is_empty() || next == b"\r" {
            return None;
        }
        from = nl + 1;
    }
    None
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
/// part limit, never yield a part over the limit, and, when neither reading
/// hit an error, yield the same parts.
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
                r.buffered() <= MAX + r.bare.len() + 8 + chunk,
                "buffered {} bytes",
                r.buffered()
            );
        }
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
}
