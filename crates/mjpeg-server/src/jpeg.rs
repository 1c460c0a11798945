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

/// A resumable [`scan`]: walks a JPEG that arrives in pieces.
///
/// A splitter reading a pipe gets a frame a few kilobytes at a time. Calling
/// [`scan`] on the growing buffer after every read would walk the frame from
/// its start each time, which is quadratic in the frame size; a `Scanner`
/// keeps its place instead (including inside entropy-coded data and runs of
/// fill bytes), so every byte is looked at about once however the data is
/// chunked.
///
/// Its verdicts are exactly those of [`scan`]: for any bytes, feeding them to
/// a fresh scanner in any chunking ends in the same [`JpegInfo`] or
/// [`JpegError`] that `scan` returns for all of them at once, except that
/// where `scan` says [`JpegError::Truncated`] or [`JpegError::Empty`] the
/// scanner says "need more" (`Ok(None)`).
///
/// ```
/// use mjpeg_server::jpeg::Scanner;
///
/// let jpeg = std::fs::read("../../tests/data/jpeg_5k.jpg").unwrap();
/// let mut scanner = Scanner::new();
/// assert_eq!(scanner.resume(&jpeg[..1000]), Ok(None));
/// let info = scanner.resume(&jpeg).unwrap().unwrap();
/// assert_eq!(info.len, jpeg.len());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    /// Offset of the first byte not yet walked.
    pos: usize,
    state: ScanState,
    size: Option<(u16, u16)>,
    progressive: bool,
    seen_scan: bool,
}

/// Where a [`Scanner`] stopped, so that it can carry on from there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum ScanState {
    /// Before the SOI.
    #[default]
    Start,
    /// Reading a marker whose first `FF` is at `at`; `pos` is on an `FF` of
    /// it (later than `at` after fill bytes).
    Marker { at: usize },
    /// Reading the segment of the marker at `at`; `pos` is on its length.
    Segment { at: usize, marker: u8 },
    /// Inside entropy-coded data; `pos` is where the search for `FF` goes on.
    Entropy,
    /// The walk ended; the verdict is kept so that asking again is harmless.
    Done(Result<JpegInfo, JpegError>),
}

impl Scanner {
    /// A scanner at the start of a JPEG.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Forgets the current image, to walk a new one.
    pub fn reset(&mut self) {
        *self = Scanner::default();
    }

    /// How many bytes of the image have been walked so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Walks on through `data`, which holds the image from its first byte:
    /// the same bytes as the previous call, plus any that arrived since.
    ///
    /// Returns `Ok(None)` while the image is incomplete, `Ok(Some(info))` once
    /// its EOI was found (`info.len` may be less than `data.len()`: the rest
    /// belongs to what follows), or the error that makes it no JPEG. Once it
    /// returned a verdict, it returns the same one until [`reset`](Self::reset).
    /// If `data` breaks the contract (it is shorter than before, or other
    /// bytes), the verdict is meaningless but nothing panics.
    pub fn resume(&mut self, data: &[u8]) -> Result<Option<JpegInfo>, JpegError> {
        if let ScanState::Done(verdict) = &self.state {
            return verdict.clone().map(Some);
        }
        match self.walk(data) {
            None => Ok(None),
            Some(verdict) => {
                self.state = ScanState::Done(verdict.clone());
                verdict.map(Some)
            }
        }
    }

    /// The state machine behind [`resume`](Self::resume): `None` means "need
    /// more data", with `self` left where the walk can go on. Every branch
    /// mirrors the matching step of [`scan`], so the two cannot disagree.
    fn walk(&mut self, data: &[u8]) -> Option<Result<JpegInfo, JpegError>> {
        loop {
            match self.state {
                ScanState::Start => match data {
                    [] | [0xFF] => return None,
                    [0xFF, SOI, ..] => {
                        self.pos = 2;
                        self.state = ScanState::Marker { at: 2 };
                    }
                    _ => return Some(Err(JpegError::NoSoi)),
                },
                ScanState::Marker { at } => {
                    let mut pos = self.pos;
                    match data.get(pos) {
                        None => return None,
                        Some(0xFF) => {}
                        Some(&found) => return Some(Err(JpegError::ExpectedMarker { at, found })),
                    }
                    while data.get(pos + 1) == Some(&0xFF) {
                        pos += 1;
                    }
                    // Keep the place on the last fill byte: a long run of FF
                    // arriving byte by byte is then walked once, not again
                    // on every call.
                    self.pos = pos;
                    let &marker = data.get(pos + 1)?;
                    self.pos = pos + 2;
                    match marker {
                        EOI => {
                            let verdict = match self.size.filter(|_| self.seen_scan) {
                                Some((width, height)) => Ok(JpegInfo {
                                    len: self.pos,
                                    width,
                                    height,
                                    progressive: self.progressive,
                                }),
                                None => Err(JpegError::NoImageData),
                            };
                            return Some(verdict);
                        }
                        SOI => return Some(Err(JpegError::UnexpectedSoi { at })),
                        TEM => self.state = ScanState::Marker { at: self.pos },
                        m if is_rst(m) => self.state = ScanState::Marker { at: self.pos },
                        0x00 => return Some(Err(JpegError::BadSegment { at, marker })),
                        _ => self.state = ScanState::Segment { at, marker },
                    }
                }
                ScanState::Segment { at, marker } => {
                    // Wait for the whole segment (at most 64 KiB): checking it
                    // takes constant time, so waiting costs nothing.
                    let pos = self.pos;
                    let len_bytes = data.get(pos..pos + 2)?;
                    let seg_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                    if seg_len < 2 {
                        return Some(Err(JpegError::BadSegment { at, marker }));
                    }
                    let segment = data.get(pos..pos + seg_len)?;
                    if is_sof(marker) {
                        if segment.len() < 8 {
                            return Some(Err(JpegError::BadSegment { at, marker }));
                        }
                        let height = u16::from_be_bytes([segment[3], segment[4]]);
                        let width = u16::from_be_bytes([segment[5], segment[6]]);
                        self.size = Some((width, height));
                        self.progressive = is_progressive_sof(marker);
                    }
                    self.pos = pos + seg_len;
                    if marker == SOS {
                        self.seen_scan = true;
                        self.state = ScanState::Entropy;
                    } else {
                        self.state = ScanState::Marker { at: self.pos };
                    }
                }
                ScanState::Entropy => {
                    // The hot loop: almost all of a frame is entropy-coded
                    // data, and only its FF bytes need a look.
                    loop {
                        let rest = data.get(self.pos..)?;
                        let Some(offset) = memchr::memchr(0xFF, rest) else {
                            self.pos = data.len();
                            return None;
                        };
                        let ff = self.pos + offset;
                        let mut code_at = ff + 1;
                        while data.get(code_at) == Some(&0xFF) {
                            code_at += 1;
                        }
                        match data.get(code_at) {
                            // Resume on the last FF: the fill before it is done.
                            None => {
                                self.pos = code_at - 1;
                                return None;
                            }
                            Some(0x00) => self.pos = code_at + 1,
                            Some(&m) if is_rst(m) => self.pos = code_at + 1,
                            Some(_) => {
                                self.pos = code_at - 1;
                                self.state = ScanState::Marker { at: self.pos };
                                break;
                            }
                        }
                    }
                }
                ScanState::Done(ref verdict) => return Some(verdict.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::corpus;

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

    /// What `scan` says, with "not enough data yet" folded into `Ok(None)`
    /// as the scanner says it.
    fn scan_as_scanner(data: &[u8]) -> Result<Option<JpegInfo>, JpegError> {
        match scan(data) {
            Ok(info) => Ok(Some(info)),
            Err(JpegError::Truncated { .. } | JpegError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Feeds `data` to a fresh scanner in pieces of the given sizes (cycled),
    /// stopping at the first verdict as a splitter would.
    fn scanner_in_pieces(data: &[u8], sizes: &[usize]) -> Result<Option<JpegInfo>, JpegError> {
        let mut scanner = Scanner::new();
        let mut end = 0;
        for size in sizes.iter().cycle() {
            end = (end + size).min(data.len());
            match scanner.resume(&data[..end]) {
                Ok(None) if end < data.len() => {}
                verdict => return verdict,
            }
        }
        unreachable!("sizes are not empty")
    }

    #[test]
    fn scanner_agrees_with_scan_on_the_corpus_in_any_chunking() {
        for name in [
            "jpeg_5k.jpg",
            "jpeg_50k.jpg",
            "progressive.jpg",
            "restart_markers.jpg",
            "exif_thumbnail.jpg",
            "truncated.jpg",
            "garbage.jpg",
            "image.png",
            "empty.jpg",
        ] {
            let data = corpus(name);
            let want = scan_as_scanner(&data);
            for sizes in [&[1][..], &[2, 3], &[7, 1, 4096], &[65536], &[usize::MAX]] {
                assert_eq!(scanner_in_pieces(&data, sizes), want, "{name} in {sizes:?}");
            }
        }
    }

    #[test]
    fn scanner_agrees_with_scan_on_every_prefix_and_damage() {
        let data = corpus("restart_markers.jpg");
        for cut in (0..data.len()).step_by(61) {
            assert_eq!(
                scanner_in_pieces(&data[..cut], &[1000]),
                scan_as_scanner(&data[..cut]),
                "prefix of {cut}"
            );
        }
        // Damaged copies: one byte changed at spots all over the file.
        for at in (0..data.len()).step_by(173) {
            for byte in [0x00, 0xFF, 0xD8, 0xD9, 0xDA, 0x01] {
                let mut bad = data.clone();
                bad[at] = byte;
                assert_eq!(
                    scanner_in_pieces(&bad, &[1, 2, 500]),
                    scan_as_scanner(&bad),
                    "byte {at} set to {byte:02X}"
                );
            }
        }
    }

    #[test]
    fn scanner_finds_the_end_of_the_first_of_two_images_and_keeps_its_verdict() {
        let mut both = corpus("exif_thumbnail.jpg");
        let first = both.len();
        both.extend_from_slice(&corpus("jpeg_5k.jpg"));
        let mut scanner = Scanner::new();
        let info = scanner.resume(&both).unwrap().unwrap();
        assert_eq!(info.len, first);
        assert_eq!(scanner.resume(&both).unwrap().unwrap(), info);
        scanner.reset();
        assert_eq!(scanner.position(), 0);
        assert_eq!(scanner.resume(&both[first..]).unwrap().unwrap().width, 320);
    }

    #[test]
    fn scanner_walks_long_fill_runs_once() {
        let data = corpus("jpeg_5k.jpg");
        let mut filled = data[..data.len() - 2].to_vec();
        filled.extend_from_slice(&[0xFF; 10_000]);
        filled.push(0xD9);
        let mut scanner = Scanner::new();
        for end in 1..filled.len() {
            assert_eq!(scanner.resume(&filled[..end]), Ok(None));
            if end > data.len() - 2 {
                // In the fill run, the place kept is the last FF seen.
                assert_eq!(scanner.position(), end - 1);
            }
        }
        assert_eq!(scanner.resume(&filled).unwrap().unwrap().len, filled.len());
        // A scanner handed a shorter buffer than before does not panic.
        assert_eq!(
            scanner.resume(&filled[..10]).unwrap().unwrap().len,
            filled.len()
        );
        let mut fresh = Scanner::new();
        let _ = fresh.resume(&data[..3000]);
        assert_eq!(fresh.resume(&data[..10]), Ok(None));
    }
}
