//! The `multipart/x-mixed-replace` wire format, written once per frame.
//!
//! A stream response is the preamble `--BOUNDARY\r\n` and then, for each
//! frame, a part:
//!
//! ```text
//! Content-Type: image/jpeg\r\n
//! Content-Length: 50090\r\n
//! X-Timestamp: 1795476551.784749\r\n
//! \r\n
//! <50090 bytes of JPEG>\r\n
//! --BOUNDARY\r\n
//! ```
//!
//! The boundary follows each frame at once rather than preceding the next
//! one: Firefox and ffmpeg finish a frame when they see the boundary, so
//! writing it late would show every frame one frame late. This is the shape
//! mjpg-streamer, µStreamer and ffmpeg's own muxer write.
//!
//! Everything except the JPEG is encoded here, once per frame, into
//! [`Bytes`]; each client then writes `[header, jpeg, trailer]` by reference.
//! [`reader`] reads the same format from other programs.
//!
//! Browsers get another [`Layout`]: Chrome draws part N only once the
//! delimiter *and the header block* of part N+1 have arrived (crbug
//! 527446), so a browser's part headers are sent in advance, right after
//! the previous frame:
//!
//! ```text
//! --BOUNDARY\r\n
//! Content-Type: image/jpeg\r\n
//! \r\n
//! <JPEG>\r\n
//! --BOUNDARY\r\n
//! Content-Type: image/jpeg\r\n
//! \r\n
//! <next JPEG>…
//! ```
//!
//! Those headers cannot say how long the next frame is, or when it was
//! published, so this layout is only for browsers, which find parts by
//! their boundary anyway; other clients keep `Content-Length`.

pub mod reader;

use bytes::Bytes;
use std::time::{SystemTime, UNIX_EPOCH};

/// The boundary between parts.
///
/// Fixed rather than random so that logs and captures are easy to read; a
/// frame that contains it is refused at publish time
/// ([`contains_boundary`]), because Chrome finds parts by substring search
/// and ignores `Content-Length`. Letters only, well under RFC 2046's 70
/// characters, and needs no quoting.
pub const BOUNDARY: &str = "mjpegserverboundary";

/// The `Content-Type` of a stream response.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=mjpegserverboundary";

/// The first bytes of a stream body: the opening delimiter.
pub const PREAMBLE: &[u8] = b"--mjpegserverboundary\r\n";

/// What follows every frame's JPEG: the end of the part and the next
/// delimiter.
pub const TRAILER: &[u8] = b"\r\n--mjpegserverboundary\r\n";

/// The header block of a part whose frame is not known yet: the one
/// [`Layout::Advanced`] sends ahead of each frame.
pub const ADVANCED_HEADER: &[u8] = b"Content-Type: image/jpeg\r\n\r\n";

/// The first bytes of a stream body in [`Layout::Advanced`]: the opening
/// delimiter and the first part's header block.
pub const ADVANCED_PREAMBLE: &[u8] = b"--mjpegserverboundary\r\nContent-Type: image/jpeg\r\n\r\n";

/// What follows every frame's JPEG in [`Layout::Advanced`]: the end of the
/// part, the next delimiter, and the next part's header block.
pub const ADVANCED_TRAILER: &[u8] =
    b"\r\n--mjpegserverboundary\r\nContent-Type: image/jpeg\r\n\r\n";

/// How a viewer's parts are laid out.
///
/// Both layouts are bytes made once: [`Layout::Plain`] writes each frame's
/// own header (made once per frame, at publish time), [`Layout::Advanced`]
/// only constants, so neither formats anything per viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Each part's header (`Content-Type`, `Content-Length`, `X-Timestamp`)
    /// goes out with its frame, and the delimiter right after it. What
    /// every client understands: ffmpeg, OpenCV, VLC, GStreamer, Home
    /// Assistant, embedded clients.
    #[default]
    Plain,
    /// The next part's delimiter and header block go out right after each
    /// frame, so that Chrome draws the frame at once instead of when the
    /// next one begins. No `Content-Length` and no `X-Timestamp`: for
    /// browsers only.
    Advanced,
}

impl Layout {
    /// The first bytes of the stream body.
    pub fn preamble(self) -> &'static [u8] {
        match self {
            Layout::Plain => PREAMBLE,
            Layout::Advanced => ADVANCED_PREAMBLE,
        }
    }

    /// What follows each frame's JPEG.
    pub fn trailer(self) -> &'static [u8] {
        match self {
            Layout::Plain => TRAILER,
            Layout::Advanced => ADVANCED_TRAILER,
        }
    }
}

/// True if `jpeg` contains the boundary string. Such a frame would be cut in
/// two by browsers, so the hub refuses it.
pub fn contains_boundary(jpeg: &[u8]) -> bool {
    memchr::memmem::find(jpeg, BOUNDARY.as_bytes()).is_some()
}

/// Encodes a part's header block for a JPEG of `len` bytes published at
/// `published`.
///
/// Each line stays far below the 128 bytes that ffmpeg's reader allows.
pub fn part_header(len: usize, published: SystemTime) -> Bytes {
    format!(
        "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {}\r\n\r\n",
        timestamp(published)
    )
    .into()
}

/// Formats a time as Unix seconds with microseconds, the form of the
/// `X-Timestamp` header that players use to measure latency.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn constants_agree_with_the_boundary() {
        assert_eq!(
            CONTENT_TYPE,
            format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
        );
        assert_eq!(PREAMBLE, format!("--{BOUNDARY}\r\n").as_bytes());
        assert_eq!(TRAILER, format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        assert_eq!(ADVANCED_PREAMBLE, [PREAMBLE, ADVANCED_HEADER].concat());
        assert_eq!(ADVANCED_TRAILER, [TRAILER, ADVANCED_HEADER].concat());
        assert_eq!(Layout::default(), Layout::Plain);
    }

    #[test]
    fn part_header_is_exact() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_476_551_784_749);
        assert_eq!(
            &part_header(50090, t)[..],
            b"Content-Type: image/jpeg\r\nContent-Length: 50090\r\nX-Timestamp: 1795476551.784749\r\n\r\n"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1500)),
            "1.500000"
        );
    }

    /// The bytes a viewer in `layout` gets for `frames`, written from the
    /// layout's pieces as the writers put them together.
    fn wire(layout: Layout, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = layout.preamble().to_vec();
        for f in frames {
            if layout == Layout::Plain {
                out.extend_from_slice(&part_header(f.len(), SystemTime::now()));
            }
            out.extend_from_slice(f);
            out.extend_from_slice(layout.trailer());
        }
        out
    }

    #[test]
    fn both_layouts_read_back_as_the_same_frames_in_any_chunking() {
        // A property checked on pseudo-random frames (any bytes but the
        // boundary, CRLFs and dashes included) cut into pseudo-random
        // chunks: a reader that finds parts by their boundary gets every
        // frame whole, whichever layout was written.
        let mut rng = crate::xorshift::XorShift::new(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = move || rng.next();
        for _ in 0..200 {
            let frames: Vec<Vec<u8>> = (0..1 + next() % 4)
                .map(|_| {
                    let mut f = b"\xff\xd8".to_vec();
                    f.extend((0..next() % 300).map(|_| b"ab\r\n-\xff\xd9"[next() as usize % 7]));
                    f
                })
                .collect();
            for layout in [Layout::Plain, Layout::Advanced] {
                let wire = wire(layout, &frames);
                let mut reader = reader::PartReader::new(BOUNDARY, 1 << 20);
                let mut got = Vec::new();
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    let n = (1 + next() as usize % 64).min(rest.len());
                    reader.push(&rest[..n]);
                    rest = &rest[n..];
                    while let Some(part) = reader.next_part().unwrap() {
                        assert_eq!(part.header("Content-Type"), Some("image/jpeg"));
                        got.push(part.body.to_vec());
                    }
                }
                assert_eq!(got, frames, "{layout:?}");
            }
        }
    }

    #[test]
    fn finds_the_boundary_inside_data() {
        assert!(contains_boundary(b"\xff\xd8 junk mjpegserverboundary junk"));
        assert!(!contains_boundary(b"\xff\xd8 mjpegserverboundar"));
    }
}
