//! The lenient parser (`--lenient`): what a browser accepts, for loading
//! other servers beside this one.
//!
//! The strict parser ([`crate::parser`]) refuses every deviation, which is
//! how this project's server is held to the strictest client; other
//! servers send what browsers take but strict clients refuse (PyPI's
//! mjpeg-streamer answers with `Transfer-Encoding: chunked` and parts
//! without `Content-Length` or `X-Timestamp`). This parser undoes the
//! chunked encoding and reads the parts with the library's
//! [`PartReader`], which finds their ends by the boundary. A part without
//! `X-Timestamp` counts as a new frame with no latency.

use mjpeg_server::multipart::reader::{boundary_from_content_type, PartReader};

use crate::parser::{FrameSeen, StreamError};

/// Largest response head and part: larger ones end the stream.
const MAX_HEAD: usize = 16 * 1024;
const MAX_PART: usize = 16 * 1024 * 1024;

/// A lenient, incremental parser of one stream response.
pub struct LenientParser {
    head: Vec<u8>,
    body: Option<Body>,
}

struct Body {
    chunked: Option<Dechunk>,
    parts: PartReader,
}

impl LenientParser {
    /// A parser at the start of a response.
    pub fn new() -> LenientParser {
        LenientParser {
            head: Vec::new(),
            body: None,
        }
    }

    /// True once the response head was read and accepted.
    pub fn head_done(&self) -> bool {
        self.body.is_some()
    }

    /// Parses `data`, calling `on_frame` for every complete part.
    pub fn feed(
        &mut self,
        data: &[u8],
        on_frame: &mut dyn FnMut(FrameSeen),
    ) -> Result<(), StreamError> {
        let data = match &mut self.body {
            Some(_) => data,
            None => {
                let start = self.head.len().saturating_sub(3);
                self.head.extend_from_slice(data);
                let Some(end) = memchr::memmem::find(&self.head[start..], b"\r\n\r\n") else {
                    if self.head.len() > MAX_HEAD {
                        return Err(StreamError::Response(
                            "the response head is too long".into(),
                        ));
                    }
                    return Ok(());
                };
                let end = start + end + 4;
                self.body = Some(read_head(&self.head[..end])?);
                let rest = self.head.split_off(end);
                self.head = rest;
                // The bytes after the head are the body's first.
                let rest = std::mem::take(&mut self.head);
                return self.feed_body(&rest, on_frame);
            }
        };
        self.feed_body(data, on_frame)
    }

    fn feed_body(
        &mut self,
        data: &[u8],
        on_frame: &mut dyn FnMut(FrameSeen),
    ) -> Result<(), StreamError> {
        let body = self.body.as_mut().expect("the head was read");
        match &mut body.chunked {
            Some(dechunk) => {
                let mut plain = Vec::with_capacity(data.len());
                dechunk.feed(data, &mut plain)?;
                body.parts.push(&plain);
            }
            None => body.parts.push(data),
        }
        loop {
            match body.parts.next_part() {
                Ok(Some(part)) => {
                    let jpeg = &part.body;
                    if jpeg.len() < 4
                        || jpeg[..2] != [0xFF, 0xD8]
                        || jpeg[jpeg.len() - 2..] != [0xFF, 0xD9]
                    {
                        let start = [
                            jpeg.first().copied().unwrap_or(0),
                            jpeg.get(1).copied().unwrap_or(0),
                        ];
                        let end = match jpeg.len() {
                            n if n >= 2 => [jpeg[n - 2], jpeg[n - 1]],
                            _ => [0, 0],
                        };
                        return Err(StreamError::NotJpeg { start, end });
                    }
                    let timestamp = part
                        .header("X-Timestamp")
                        .and_then(|t| t.trim().parse::<f64>().ok())
                        .filter(|t| t.is_finite() && *t > 0.0);
                    on_frame(FrameSeen {
                        len: jpeg.len(),
                        timestamp,
                    });
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(StreamError::Multipart(e.to_string())),
            }
        }
    }
}

impl Default for LenientParser {
    fn default() -> Self {
        LenientParser::new()
    }
}

/// Checks the response head and sets up the body's readers.
fn read_head(head: &[u8]) -> Result<Body, StreamError> {
    let bad = StreamError::Response;
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut words = status.splitn(3, ' ');
    if !words.next().unwrap_or("").starts_with("HTTP/1.") || words.next() != Some("200") {
        return Err(bad(format!("the server answered {status:?}, not 200")));
    }
    let mut boundary = None;
    let mut chunked = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            boundary = boundary_from_content_type(value).filter(|b| !b.is_empty());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(bad(format!("Transfer-Encoding {value:?} is not chunked")));
            }
            chunked = Some(Dechunk::Size(Vec::new()));
        }
    }
    let boundary = boundary
        .ok_or_else(|| bad("the response has no multipart Content-Type with a boundary".into()))?;
    Ok(Body {
        chunked,
        parts: PartReader::new(&boundary, MAX_PART),
    })
}

/// Undoes `Transfer-Encoding: chunked` as bytes arrive.
enum Dechunk {
    /// Reading a chunk-size line (hex, maybe `;extensions`).
    Size(Vec<u8>),
    /// Inside a chunk: this many bytes left.
    Data(usize),
    /// The CRLF after a chunk's data: this many bytes of it left.
    DataEnd(usize),
    /// The last chunk was read.
    Done,
}

impl Dechunk {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        while !data.is_empty() {
            match self {
                Dechunk::Size(line) => {
                    let (piece, complete) = match memchr::memchr(b'\n', data) {
                        Some(i) => (&data[..=i], true),
                        None => (data, false),
                    };
                    line.extend_from_slice(piece);
                    data = &data[piece.len()..];
                    if line.len() > 1024 {
                        return Err(StreamError::Multipart(
                            "a chunk-size line is too long".into(),
                        ));
                    }
                    if complete {
                        let text = String::from_utf8_lossy(line);
                        let hex = text.trim().split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16).map_err(|_| {
                            StreamError::Multipart(format!("bad chunk size {hex:?}"))
                        })?;
                        *self = if size == 0 {
                            Dechunk::Done
                        } else {
                            Dechunk::Data(size)
                        };
                    }
                }
                Dechunk::Data(left) => {
                    let take = (*left).min(data.len());
                    out.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    *left -= take;
                    if *left == 0 {
                        *self = Dechunk::DataEnd(2);
                    }
                }
                Dechunk::DataEnd(left) => {
                    let take = (*left).min(data.len());
                    data = &data[take..];
                    *left -= take;
                    if *left == 0 {
                        *self = Dechunk::Size(Vec::new());
                    }
                }
                Dechunk::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(fill: u8) -> Vec<u8> {
        [&[0xFF, 0xD8][..], &[fill; 100], &[0xFF, 0xD9]].concat()
    }

    /// A body as mjpeg-streamer sends it: chunked, parts without
    /// Content-Length or X-Timestamp; fed one byte at a time and whole.
    #[test]
    fn reads_a_chunked_body_of_parts_without_lengths() {
        let mut body = Vec::new();
        for fill in [1u8, 2, 3] {
            body.extend_from_slice(b"--image-boundary\r\nContent-Type: image/jpeg\r\n\r\n");
            body.extend_from_slice(&jpeg(fill));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--image-boundary\r\n");
        let mut chunked = Vec::new();
        for piece in body.chunks(37) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        let response = [
            &b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=image-boundary\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &chunked,
        ]
        .concat();
        for step in [1, response.len()] {
            let mut parser = LenientParser::new();
            let mut seen = Vec::new();
            for piece in response.chunks(step) {
                parser.feed(piece, &mut |f| seen.push(f)).unwrap();
            }
            assert!(parser.head_done());
            assert_eq!(seen.len(), 3, "step {step}");
            assert!(seen.iter().all(|f| f.len == 104 && f.timestamp.is_none()));
        }
    }

    #[test]
    fn refuses_what_is_not_a_stream() {
        let cases: [(&[u8], &str); 3] = [
            (b"HTTP/1.1 404 Not Found\r\n\r\n", "not 200"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", "multipart"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n--b\r\n\r\nnot a jpeg\r\n--b\r\n",
                "not one JPEG",
            ),
        ];
        for (response, want) in cases {
            let err = LenientParser::new()
                .feed(response, &mut |_| {})
                .unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
