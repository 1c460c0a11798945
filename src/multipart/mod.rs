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

    #[test]
    fn finds_the_boundary_inside_data() {
        assert!(contains_boundary(b"\xff\xd8 junk mjpegserverboundary junk"));
        assert!(!contains_boundary(b"\xff\xd8 mjpegserverboundar"));
    }
}
