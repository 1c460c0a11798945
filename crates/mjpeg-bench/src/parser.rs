//! The strict parser of one stream response: every part checked as a
//! strict embedded client would.
//!
//! Why not the library's `multipart::reader::PartReader`: that reader is
//! built to accept what other servers send (junk before the first
//! boundary, LF-only lines, parts without `Content-Length`, a boundary
//! with dashes of its own), and it holds each part whole until it ends.
//! This one is its opposite on purpose: it refuses every deviation a strict
//! client would choke on, so that the server is measured against the
//! strictest reader, and it counts a frame's bytes as they pass without
//! keeping them (unless `verify_jpeg` asks for the marker walk), so that
//! ten thousand clients cost the load client little memory. What the two
//! share, the boundary parameter of a `Content-Type` and the JPEG marker
//! walk, comes from the library.

use mjpeg_server::jpeg::{self, JpegError};
use mjpeg_server::multipart::reader::boundary_from_content_type;

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSeen {
    /// JPEG size in bytes.
    pub len: usize,
    /// Its `X-Timestamp`: Unix seconds when it was published. Always there
    /// for the strict parser; other servers' parts may have none
    /// ([`BenchOptions::lenient`](crate::BenchOptions::lenient)).
    pub timestamp: Option<f64>,
}

/// Why a stream response is not what a strict client accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// The response head: status, `Content-Type`, framing.
    #[error("{0}")]
    Response(String),
    /// A line of a part header block is malformed.
    #[error("bad part header line {line:?}: {why}")]
    BadLine {
        /// The line, lossily decoded.
        line: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A required part header is missing or has a bad value.
    #[error("part header {name}: {why}")]
    BadHeader {
        /// The header's name.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The body does not start with SOI or end with EOI.
    #[error(
        "the body is not one JPEG: starts {start:02X?}, ends {end:02X?} (want [FF, D8] … [FF, D9])"
    )]
    NotJpeg {
        /// Its first two bytes.
        start: [u8; 2],
        /// Its last two bytes.
        end: [u8; 2],
    },
    /// The full marker walk
    /// ([`BenchOptions::verify_jpeg`](crate::BenchOptions::verify_jpeg))
    /// failed.
    #[error("the JPEG is corrupt: {0}")]
    Jpeg(JpegError),
    /// The JPEG ends (by its marker walk) before the part does.
    #[error("the JPEG ends after {jpeg} bytes but the part holds {part}")]
    TrailingBytes {
        /// Where the JPEG's EOI ends.
        jpeg: usize,
        /// The part's Content-Length.
        part: usize,
    },
    /// The lenient parser's multipart or chunked reading failed.
    #[error("{0}")]
    Multipart(String),
    /// The bytes after a body (or before the first part) are not the
    /// delimiter.
    #[error("expected {expected:?} at {what}, got {got:?}")]
    BadDelimiter {
        /// Where: the preamble or after a frame.
        what: &'static str,
        /// The delimiter.
        expected: String,
        /// What came instead (from the first differing byte on).
        got: String,
    },
}

#[derive(Debug)]
enum State {
    /// The status line and headers of the response.
    Head,
    /// Matching `delimiter[pos..]`; `pos` starts at 2 for the opening
    /// delimiter, which has no CRLF before it.
    Delimiter { pos: usize, preamble: bool },
    /// A part's header lines.
    PartHeaders,
    /// A body: how much is left of it.
    Body { remaining: usize },
}

/// A strict, incremental parser of one stream response: feed it bytes as
/// they arrive, and it calls back for every complete, valid part.
///
/// It keeps only a partial header line between reads (and the current JPEG
/// if it verifies them in full), so ten thousand parsers cost little memory.
#[derive(Debug)]
pub struct StreamParser {
    state: State,
    line: Vec<u8>,
    head_lines: usize,
    /// `\r\n--BOUNDARY\r\n`, known once the head is read.
    delimiter: Vec<u8>,
    // The part being read.
    content_type: bool,
    len: Option<usize>,
    timestamp: Option<f64>,
    first: [u8; 2],
    last: [u8; 2],
    verify: bool,
    body: Vec<u8>,
}

/// Longest line of a response head.
const MAX_HEAD_LINE: usize = 8 * 1024;
/// Longest part header line, without its CRLF: ffmpeg's reader refuses
/// longer ones.
const MAX_PART_LINE: usize = 127;

impl StreamParser {
    /// A parser at the start of a response. With `verify`, every JPEG gets
    /// a full marker walk, not only a look at its first and last bytes.
    pub fn new(verify: bool) -> StreamParser {
        StreamParser {
            state: State::Head,
            line: Vec::with_capacity(128),
            head_lines: 0,
            delimiter: Vec::new(),
            content_type: false,
            len: None,
            timestamp: None,
            first: [0; 2],
            last: [0; 2],
            verify,
            body: Vec::new(),
        }
    }

    /// True once the response head was read and accepted.
    pub fn head_done(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// Parses `data`, calling `on_frame` for every part completed by it (a
    /// part is complete with the delimiter after it). After an error the
    /// stream cannot be followed any further.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut dyn FnMut(FrameSeen),
    ) -> Result<(), StreamError> {
        while !data.is_empty() {
            match self.state {
                State::Head | State::PartHeaders => {
                    let head = matches!(self.state, State::Head);
                    let max = if head {
                        MAX_HEAD_LINE
                    } else {
                        MAX_PART_LINE + 2
                    };
                    let (piece, complete) = match memchr::memchr(b'\n', data) {
                        Some(i) => (&data[..=i], true),
                        None => (data, false),
                    };
                    self.line.extend_from_slice(piece);
                    data = &data[piece.len()..];
                    if self.line.len() > max {
                        return Err(self.line_error(head, "too long"));
                    }
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        let res = if head {
                            self.head_line(&line)
                        } else {
                            self.part_line(&line)
                        };
                        self.line = line;
                        self.line.clear();
                        res?;
                    }
                }
                State::Delimiter { pos, preamble } => {
                    let want = &self.delimiter[pos..];
                    let n = want.len().min(data.len());
                    if data[..n] != want[..n] {
                        let at = (0..n).find(|&i| data[i] != want[i]).unwrap_or(0);
                        return Err(StreamError::BadDelimiter {
                            what: if preamble {
                                "the start of the body"
                            } else {
                                "the end of a frame"
                            },
                            expected: String::from_utf8_lossy(&self.delimiter[pos..]).into(),
                            got: String::from_utf8_lossy(&data[..(at + 32).min(data.len())]).into(),
                        });
                    }
                    data = &data[n..];
                    if pos + n < self.delimiter.len() {
                        self.state = State::Delimiter {
                            pos: pos + n,
                            preamble,
                        };
                    } else {
                        if !preamble {
                            on_frame(FrameSeen {
                                len: self.len.unwrap_or(0),
                                timestamp: self.timestamp,
                            });
                        }
                        self.content_type = false;
                        self.len = None;
                        self.timestamp = None;
                        self.state = State::PartHeaders;
                    }
                }
                State::Body { remaining } => {
                    let take = remaining.min(data.len());
                    let chunk = &data[..take];
                    let pos = self.len.unwrap_or(0) - remaining;
                    for (i, &b) in chunk.iter().enumerate().take(2usize.saturating_sub(pos)) {
                        self.first[pos + i] = b;
                    }
                    self.last = match take {
                        1 => [self.last[1], chunk[0]],
                        _ => [chunk[take - 2], chunk[take - 1]],
                    };
                    if self.verify {
                        self.body.extend_from_slice(chunk);
                    }
                    data = &data[take..];
                    let remaining = remaining - take;
                    self.state = State::Body { remaining };
                    if remaining == 0 {
                        self.end_body()?;
                        self.state = State::Delimiter {
                            pos: 0,
                            preamble: false,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    fn line_error(&self, head: bool, why: &'static str) -> StreamError {
        let line = String::from_utf8_lossy(&self.line[..self.line.len().min(200)]).into();
        if head {
            StreamError::Response(format!("bad response head line {line:?}: {why}"))
        } else {
            StreamError::BadLine { line, why }
        }
    }

    fn head_line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let bad = |why: String| StreamError::Response(why);
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(bad(format!(
                "response head line not ended by CRLF: {:?}",
                String::from_utf8_lossy(line)
            )));
        };
        let text = String::from_utf8_lossy(text);
        self.head_lines += 1;
        if self.head_lines == 1 {
            let mut words = text.splitn(3, ' ');
            let version = words.next().unwrap_or("");
            let status = words.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") || status != "200" {
                return Err(bad(format!("the server answered {text:?}, not 200")));
            }
            return Ok(());
        }
        if text.is_empty() {
            if self.delimiter.is_empty() {
                return Err(bad("the response has no multipart Content-Type".into()));
            }
            self.state = State::Delimiter {
                pos: 2,
                preamble: true,
            };
            return Ok(());
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad(format!("response header without a colon: {text:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            let Some(boundary) = boundary_from_content_type(value).filter(|_| {
                value
                    .to_ascii_lowercase()
                    .starts_with("multipart/x-mixed-replace")
            }) else {
                return Err(bad(format!(
                    "Content-Type {value:?} is not multipart/x-mixed-replace with a boundary"
                )));
            };
            self.delimiter = format!("\r\n--{boundary}\r\n").into_bytes();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!(
                "Transfer-Encoding {value:?}: MJPEG clients need the body as is"
            )));
        }
        Ok(())
    }

    fn part_line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(self.line_error(false, "not ended by CRLF"));
        };
        if text.is_empty() {
            let len = self.len.ok_or(StreamError::BadHeader {
                name: "Content-Length",
                why: "missing".into(),
            })?;
            if !self.content_type {
                return Err(StreamError::BadHeader {
                    name: "Content-Type",
                    why: "missing".into(),
                });
            }
            if self.timestamp.is_none() {
                return Err(StreamError::BadHeader {
                    name: "X-Timestamp",
                    why: "missing".into(),
                });
            }
            self.first = [0; 2];
            self.last = [0; 2];
            self.body.clear();
            self.state = State::Body { remaining: len };
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(text) else {
            return Err(self.line_error(false, "not UTF-8"));
        };
        let Some((name, value)) = text.split_once(": ") else {
            return Err(StreamError::BadLine {
                line: text.into(),
                why: "not `Name: value`",
            });
        };
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(StreamError::BadLine {
                line: text.into(),
                why: "bad header name",
            });
        }
        if name.eq_ignore_ascii_case("content-type") {
            if !value.eq_ignore_ascii_case("image/jpeg") {
                return Err(StreamError::BadHeader {
                    name: "Content-Type",
                    why: format!("{value:?}, not image/jpeg"),
                });
            }
            self.content_type = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                // SOI and EOI alone are four bytes.
                Ok(n) if n >= 4 => self.len = Some(n),
                _ => {
                    return Err(StreamError::BadHeader {
                        name: "Content-Length",
                        why: format!("{value:?} is no JPEG size"),
                    })
                }
            }
        } else if name.eq_ignore_ascii_case("x-timestamp") {
            match value.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => self.timestamp = Some(t),
                _ => {
                    return Err(StreamError::BadHeader {
                        name: "X-Timestamp",
                        why: format!("{value:?} is not Unix seconds"),
                    })
                }
            }
        }
        Ok(())
    }

    fn end_body(&mut self) -> Result<(), StreamError> {
        if self.first != [0xFF, 0xD8] || self.last != [0xFF, 0xD9] {
            return Err(StreamError::NotJpeg {
                start: self.first,
                end: self.last,
            });
        }
        if self.verify {
            let info = jpeg::validate(&self.body).map_err(StreamError::Jpeg)?;
            if info.len != self.body.len() {
                return Err(StreamError::TrailingBytes {
                    jpeg: info.len,
                    part: self.body.len(),
                });
            }
        }
        Ok(())
    }
}
