//! JPEG marker parsing: where does a JPEG end, and is it whole?
//!
//! Every source hands the server bytes that claim to be a JPEG: files another
//! program is still writing, pipes that carry many images back to back,
//! uploads. Decoding each one to check it would cost more than serving it, so
//! this module walks the JPEG's *marker structure* instead, which is enough to
//! answer the two questions a streaming server has:
//!
//! * Is this buffer one complete JPEG (so a viewer never gets half a frame)?
//! * Where does the JPEG that starts here end (so a byte stream of
//!   concatenated JPEGs can be split into frames)?
//!
//! The walk follows ITU T.81 rather than searching for `FF D9`, because a
//! search is fooled by real files: an EXIF `APP1` segment carries a whole
//! thumbnail JPEG with its own `FF D8 … FF D9`, and a `COM` segment may hold any
//! bytes. Between SOI and SOS every segment has a 2-byte length and is skipped
//! whole. After SOS comes entropy-coded data, where `FF 00` is a stuffed byte,
//! `FF D0`–`FF D7` are restart markers and runs of `FF` are fill; any other
//! marker ends the scan (progressive JPEGs have several scans, with tables in
//! between). Only an `FF D9` found by this walk ends the image.
//!
//! No crate does this: decoders (zune-jpeg, jpeg-decoder) decode the whole
//! image and do not report where it ends in a longer buffer, which is why it
//! is written here.

use std::fmt;

/// What the walk learned about a complete JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Length in bytes from SOI through EOI. Bytes after it are not part of
    /// the image (padding, or the next image in a stream).
    pub len: usize,
    /// Width from the frame header (SOF).
    pub width: u16,
    /// Height from the frame header (SOF). Zero means "defined by DNL", which
    /// is legal but rare.
    pub height: u16,
    /// True for progressive (SOF2/6/10/14) images.
    pub progressive: bool,
}

/// Why a buffer is not one complete JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegError {
    /// No bytes at all.
    Empty,
    /// The buffer does not start with SOI (`FF D8`).
    NoSoi,
    /// The data ends before EOI: the image was cut short (a file still being
    /// written, a dropped connection).
    Truncated {
        /// Offset where the walk ran out of data.
        at: usize,
    },
    /// A byte that should start a marker (`FF`) is something else.
    ExpectedMarker {
        /// Offset of the offending byte.
        at: usize,
        /// The byte found there.
        found: u8,
    },
    /// A second SOI inside the image before its EOI.
    UnexpectedSoi {
        /// Offset of the marker.
        at: usize,
    },
    /// A segment length below 2, or a marker that may not appear here.
    BadSegment {
        /// Offset of the marker.
        at: usize,
        /// The marker byte (the one after `FF`).
        marker: u8,
    },
    /// EOI came before any frame header or scan: there is no picture.
    NoImageData,
}

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegError::Empty => write!(f, "empty (0 bytes)"),
            JpegError::NoSoi => write!(f, "does not start with a JPEG SOI marker (FF D8)"),
            JpegError::Truncated { at } => {
                write!(
                    f,
                    "truncated JPEG: data ends at byte {at} before the end-of-image marker"
                )
            }
            JpegError::ExpectedMarker { at, found } => {
                write!(
                    f,
                    "corrupt JPEG: expected a marker at byte {at}, found 0x{found:02X}"
                )
            }
            JpegError::UnexpectedSoi { at } => {
                write!(
                    f,
                    "corrupt JPEG: a second start-of-image marker at byte {at}"
                )
            }
            JpegError::BadSegment { at, marker } => {
                write!(
                    f,
                    "corrupt JPEG: invalid segment FF {marker:02X} at byte {at}"
                )
            }
            JpegError::NoImageData => {
                write!(
                    f,
                    "JPEG has no frame header or scan before its end-of-image marker"
                )
            }
        }
    }
}

impl std::error::Error for JpegError {}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;

fn is_rst(marker: u8) -> bool {
    (0xD0..=0xD7).contains(&marker)
}

/// SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
fn is_sof(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

fn is_progressive_sof(marker: u8) -> bool {
    matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE)
}

/// Walks the JPEG that starts at `data[0]` and returns where it ends.
///
/// Bytes after the EOI are ignored, so this is both the validity check for a
/// single image (see [`validate`]) and the splitter's step for a stream of
/// concatenated images.
pub fn scan(data: &[u8]) -> Result<JpegInfo, JpegError> {
    if data.is_empty() {
        return Err(JpegError::Empty);
    }
    if data.len() < 2 {
        return if data[0] == 0xFF {
            Err(JpegError::Truncated { at: data.len() })
        } else {
            Err(JpegError::NoSoi)
        };
    }
    if data[0] != 0xFF || data[1] != SOI {
        return Err(JpegError::NoSoi);
    }

    let mut pos = 2;
    let mut size = None;
    let mut progressive = false;
    let mut seen_scan = false;
    loop {
        // A marker: FF, optional FF fill bytes, then the marker code.
        let at = pos;
        match data.get(pos) {
            None => return Err(JpegError::Truncated { at: pos }),
            Some(0xFF) => {}
            Some(&found) => return Err(JpegError::ExpectedMarker { at, found }),
        }
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos + 1) else {
            return Err(JpegError::Truncated { at: data.len() });
        };
        pos += 2;

        match marker {
            EOI => {
                let Some((width, height)) = size.filter(|_| seen_scan) else {
                    return Err(JpegError::NoImageData);
                };
                return Ok(JpegInfo {
                    len: pos,
                    width,
                    height,
                    progressive,
                });
            }
            SOI => return Err(JpegError::UnexpectedSoi { at }),
            // Stand-alone markers without a length. RST outside a scan is
            // harmless and some encoders emit it after the last scan.
            TEM => continue,
            m if is_rst(m) => continue,
            0x00 => return Err(JpegError::BadSegment { at, marker }),
            _ => {}
        }

        // A segment with a 2-byte big-endian length that counts itself.
        let Some(len_bytes) = data.get(pos..pos + 2) else {
            return Err(JpegError::Truncated { at: data.len() });
        };
        let seg_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if seg_len < 2 {
            return Err(JpegError::BadSegment { at, marker });
        }
        let Some(segment) = data.get(pos..pos + seg_len) else {
            return Err(JpegError::Truncated { at: data.len() });
        };
        if is_sof(marker) {
            // Length(2) precision(1) height(2) width(2) components(1) …
            if segment.len() < 8 {
                return Err(JpegError::BadSegment { at, marker });
            }
            let height = u16::from_be_bytes([segment[3], segment[4]]);
            let width = u16::from_be_bytes([segment[5], segment[6]]);
            size = Some((width, height));
            progressive = is_progressive_sof(marker);
        }
        pos += seg_len;

        if marker == SOS {
            seen_scan = true;
            pos = skip_entropy_data(data, pos)?;
        }
    }
}

/// Skips entropy-coded data that starts at `pos` and returns the offset of
/// the marker that ends it.
fn skip_entropy_data(data: &[u8], mut pos: usize) -> Result<usize, JpegError> {
    loop {
        // memchr scans for FF many bytes at a time; everything between two FF
        // bytes is image data that needs no look.
        let Some(offset) = memchr::memchr(0xFF, &data[pos..]) else {
            return Err(JpegError::Truncated { at: data.len() });
        };
        let ff = pos + offset;
        // Fill bytes: a run of FF before a marker code.
        let mut code_at = ff + 1;
        while data.get(code_at) == Some(&0xFF) {
            code_at += 1;
        }
        match data.get(code_at) {
            None => return Err(JpegError::Truncated { at: data.len() }),
            // Stuffed zero: an FF data byte.
            Some(0x00) => pos = code_at + 1,
            Some(&m) if is_rst(m) => pos = code_at + 1,
            // Any other marker ends the scan; the caller reads it. Point at
            // the last FF so the caller sees `FF marker`.
            Some(_) => return Ok(code_at - 1),
        }
    }
}

/// Checks that `data` starts with one complete JPEG and returns what it
/// learned. Bytes after the EOI are allowed (some cameras pad frames); use
/// `info.len` to cut them off.
pub fn validate(data: &[u8]) -> Result<JpegInfo, JpegError> {
    scan(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn whole_corpus_jpegs_end_at_their_last_byte() {
        for (name, w, h) in [
            ("jpeg_5k.jpg", 320, 240),
            ("jpeg_50k.jpg", 640, 480),
            ("jpeg_200k.jpg", 1280, 720),
            ("progressive.jpg", 640, 480),
            ("restart_markers.jpg", 640, 480),
            ("exif_thumbnail.jpg", 640, 480),
        ] {
            let data = corpus(name);
            let info = scan(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(info.len, data.len(), "{name}");
            assert_eq!((info.width, info.height), (w, h), "{name}");
            assert_eq!(info.progressive, name == "progressive.jpg", "{name}");
        }
    }

    #[test]
    fn exif_thumbnail_does_not_end_the_frame_early() {
        let data = corpus("exif_thumbnail.jpg");
        // The naive splitter's cut point, from the corpus README.
        let first_eoi = data.windows(2).position(|w| w == [0xFF, 0xD9]).unwrap();
        assert_eq!(first_eoi + 2, 2908);
        assert_eq!(scan(&data).unwrap().len, 45190);
    }

    #[test]
    fn broken_inputs_are_rejected_with_a_reason() {
        assert_eq!(scan(&corpus("empty.jpg")), Err(JpegError::Empty));
        assert!(matches!(
            scan(&corpus("truncated.jpg")),
            Err(JpegError::Truncated { .. })
        ));
        assert_eq!(scan(&corpus("garbage.jpg")), Err(JpegError::NoSoi));
        assert_eq!(scan(&corpus("image.png")), Err(JpegError::NoSoi));
        assert_eq!(scan(b"<!DOCTYPE html><html>"), Err(JpegError::NoSoi));
        assert_eq!(scan(&[0xFF, 0xD8, 0xFF, 0xD9]), Err(JpegError::NoImageData));
        assert_eq!(scan(&[0xFF]), Err(JpegError::Truncated { at: 1 }));
    }

    #[test]
    fn every_prefix_of_a_jpeg_is_truncated_never_accepted() {
        let data = corpus("restart_markers.jpg");
        for cut in (0..data.len()).step_by(97) {
            match scan(&data[..cut]) {
                Err(JpegError::Truncated { .. }) | Err(JpegError::Empty) => {}
                other => panic!("prefix of {cut} bytes gave {other:?}"),
            }
        }
    }

    #[test]
    fn trailing_bytes_and_concatenation() {
        let a = corpus("jpeg_5k.jpg");
        let b = corpus("exif_thumbnail.jpg");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let first = scan(&both).unwrap();
        assert_eq!(first.len, a.len());
        assert_eq!(scan(&both[first.len..]).unwrap().len, b.len());
    }

    #[test]
    fn fill_bytes_before_markers_are_allowed() {
        let data = corpus("jpeg_5k.jpg");
        // Insert FF fill bytes before the EOI marker.
        let mut filled = data[..data.len() - 2].to_vec();
        filled.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xD9]);
        assert_eq!(scan(&filled).unwrap().len, filled.len());
    }
}
