//! A frame: one complete, checked JPEG image, cheap to share.
//!
//! Everything a source produces becomes a [`Frame`] before it reaches a hub.
//! Building one is the single place where bytes are checked, so that the hub
//! and every client can trust what they hold: a `Frame` is always a whole
//! JPEG (SOI through EOI), never half a file and never an HTML error page.
//! The bytes live in a [`Bytes`] so that handing a frame to a thousand
//! clients copies a pointer, not the image.

use bytes::Bytes;
use std::fmt;

use crate::jpeg::{self, JpegError};

/// One complete JPEG image.
#[derive(Clone)]
pub struct Frame {
    jpeg: Bytes,
    width: u16,
    height: u16,
}

impl Frame {
    /// Checks `data` and wraps it as a frame.
    ///
    /// The bytes must begin with one complete JPEG; anything after its
    /// end-of-image marker is cut off (by slicing, not copying). Other image
    /// formats are recognised by their content and rejected with an error that
    /// says what they are, so a user who points the server at a PNG learns
    /// that, rather than "corrupt JPEG".
    pub fn from_jpeg(data: impl Into<Bytes>) -> Result<Frame, FrameError> {
        let data: Bytes = data.into();
        match jpeg::validate(&data) {
            Ok(info) => Ok(Frame {
                jpeg: data.slice(..info.len),
                width: info.width,
                height: info.height,
            }),
            Err(JpegError::NoSoi) => Err(FrameError::NotJpeg(ImageKind::detect(&data))),
            Err(e) => Err(FrameError::Jpeg(e)),
        }
    }

    /// Encodes pixels as a JPEG frame: `pixels` holds `width` × `height`
    /// pixels of `layout`, row by row with no padding, at JPEG `quality`
    /// (1–100; 85 is a good default).
    ///
    /// ```
    /// use mjpeg_server::frame::{Frame, Pixels};
    ///
    /// let red = [255u8, 0, 0].repeat(64 * 48);
    /// let frame = Frame::from_pixels(&red, 64, 48, Pixels::Rgb, 85).unwrap();
    /// assert_eq!((frame.width(), frame.height()), (64, 48));
    /// ```
    pub fn from_pixels(
        pixels: &[u8],
        width: u16,
        height: u16,
        layout: Pixels,
        quality: u8,
    ) -> Result<Frame, FrameError> {
        let jpeg = encode_jpeg(pixels, width, height, layout, quality, Chroma::Half)?;
        Ok(Frame::encoded(jpeg, width, height))
    }

    /// A frame of `width`×`height` pixels encoded from planes of samples
    /// as they are: Y (grey), or Y, Cb and Cr with the chroma planes half
    /// the size across and down (4:2:0). What a variant made by a reduced
    /// decode is encoded from, skipping colour conversion both ways.
    pub(crate) fn from_planes(
        planes: &[&[u8]],
        width: u16,
        height: u16,
        quality: u8,
    ) -> Result<Frame, FrameError> {
        use libjpeg_turbo_rs::Subsampling;
        let (w, h) = (usize::from(width), usize::from(height));
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (widths, heights, subsampling) = match planes.len() {
            1 => (vec![w], vec![h], Subsampling::S444),
            _ => (vec![w, cw, cw], vec![h, ch, ch], Subsampling::S420),
        };
        let jpeg = libjpeg_turbo_rs::compress_raw(
            planes,
            &widths,
            &heights,
            w,
            h,
            quality.clamp(1, 100),
            subsampling,
        )
        .map_err(|e| FrameError::Encode(e.to_string()))?;
        Ok(Frame::encoded(jpeg, width, height))
    }

    /// The frame of what the library's own encoder made: a whole JPEG of
    /// exactly these dimensions. Walking its markers again would only
    /// confirm that, at 2 % of the encode's time for 1280×720.
    fn encoded(jpeg: Vec<u8>, width: u16, height: u16) -> Frame {
        debug_assert_eq!(
            jpeg::validate(&jpeg).map(|i| (i.width, i.height, i.len)),
            Ok((width, height, jpeg.len()))
        );
        Frame {
            jpeg: jpeg.into(),
            width,
            height,
        }
    }

    /// The JPEG bytes, SOI through EOI.
    pub fn jpeg(&self) -> &Bytes {
        &self.jpeg
    }

    /// Like [`from_jpeg`](Self::from_jpeg), and refuses a JPEG whose frame
    /// header declares more than `max_pixels` pixels.
    ///
    /// The marker walk does not decode, so nothing else would stop a frame
    /// that declares 65535×65535 from reaching every viewer's decoder, which
    /// would try to allocate 16 GB for it.
    pub fn from_jpeg_within(data: impl Into<Bytes>, max_pixels: u64) -> Result<Frame, FrameError> {
        let frame = Frame::from_jpeg(data)?;
        check_pixels(frame.width.into(), frame.height.into(), max_pixels)?;
        Ok(frame)
    }

    /// Width in pixels, from the JPEG frame header.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height in pixels, from the JPEG frame header.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// Size of the JPEG in bytes.
    pub fn len(&self) -> usize {
        self.jpeg.len()
    }

    /// Always false: a frame holds at least SOI, a header, a scan and EOI.
    /// Present because clippy asks every `len` for a twin.
    pub fn is_empty(&self) -> bool {
        self.jpeg.is_empty()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("bytes", &self.jpeg.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Refuses an image of `width`×`height` if it has more than `max_pixels`
/// pixels: what it would take to decode or show it grows with its area, not
/// with its size in bytes.
pub fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), FrameError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(FrameError::TooManyPixels {
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Encodes pixels as a JPEG: the library's one encoder, which
/// [`Frame::from_pixels`], conversions, charts and the demo all use.
/// `pixels` holds `width` × `height` pixels of `layout`, row by row with no
/// padding; `quality` is 1–100 (out-of-range values are clamped); `chroma`
/// is the colour's resolution.
///
/// The encoder is libjpeg-turbo's design in pure Rust (`libjpeg-turbo-rs`,
/// AVX2/NEON): it encodes 1280×720 about three times as fast as
/// `jpeg-encoder` and as fast as the C libjpeg-turbo (figures in
/// `python/README.md`), and needs no C library.
pub fn encode_jpeg(
    pixels: &[u8],
    width: u16,
    height: u16,
    layout: Pixels,
    quality: u8,
    chroma: Chroma,
) -> Result<Vec<u8>, FrameError> {
    use libjpeg_turbo_rs::{PixelFormat, Subsampling};
    let format = match layout {
        Pixels::Rgb => PixelFormat::Rgb,
        Pixels::Rgba => PixelFormat::Rgba,
        Pixels::Bgr => PixelFormat::Bgr,
        Pixels::Bgra => PixelFormat::Bgra,
        Pixels::Luma => PixelFormat::Grayscale,
    };
    let subsampling = match (layout, chroma) {
        (Pixels::Luma, _) | (_, Chroma::Full) => Subsampling::S444,
        (_, Chroma::Half) => Subsampling::S420,
    };
    let need = usize::from(width) * usize::from(height) * layout.channels();
    if width == 0 || height == 0 || pixels.len() != need {
        return Err(FrameError::Encode(format!(
            "{} bytes of pixels for {width}x{height} {layout:?} pixels, which take {need}",
            pixels.len()
        )));
    }
    libjpeg_turbo_rs::compress(
        pixels,
        width.into(),
        height.into(),
        format,
        quality.clamp(1, 100),
        subsampling,
    )
    .map_err(|e| FrameError::Encode(e.to_string()))
}

/// How sharp a JPEG's colour is, beside its brightness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// Half the resolution each way (4:2:0), as cameras and browsers
    /// expect: photos look the same, and encoding is fastest.
    Half,
    /// Full resolution (4:4:4): thin coloured lines (charts, text) keep
    /// their colour; about 1.6 times the encoding time.
    Full,
}

/// How the pixels given to [`Frame::from_pixels`] are laid out: 8 bits a
/// channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue, alpha (the alpha is dropped).
    Rgba,
    /// Blue, green, red: OpenCV's order.
    Bgr,
    /// Blue, green, red, alpha (the alpha is dropped).
    Bgra,
    /// Grey.
    Luma,
}

impl Pixels {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            Pixels::Rgb | Pixels::Bgr => 3,
            Pixels::Rgba | Pixels::Bgra => 4,
            Pixels::Luma => 1,
        }
    }
}

/// Why bytes could not become a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes start like a JPEG but are not a complete one.
    #[error("{0}")]
    Jpeg(JpegError),
    /// The bytes are not a JPEG at all; what they look like instead.
    #[error("not a JPEG: {0}")]
    NotJpeg(ImageKind),
    /// The bytes are no image format the server knows.
    #[error("not an image: {0}")]
    NotImage(ImageKind),
    /// An image in a known format that could not be decoded.
    #[error("cannot decode {kind}: {reason}")]
    Decode {
        /// The format it claimed to be.
        kind: ImageKind,
        /// What the decoder said.
        reason: String,
    },
    /// Encoding the converted image as JPEG failed.
    #[error("cannot encode as JPEG: {0}")]
    Encode(String),
    /// The image declares more pixels than allowed (checked from its header,
    /// before decoding).
    #[error(
        "an image of {width}x{height} pixels is over the limit of {limit} pixels; raise {} to accept it",
        crate::names::option_names().max_pixels
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit ([`ConvertOptions::max_pixels`](crate::convert::ConvertOptions::max_pixels)).
        limit: u64,
    },
}

/// What a buffer looks like, judged by its first bytes (never by a file
/// name: files called `.jpg` are often PNGs or saved error pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `FF D8 FF`.
    Jpeg,
    /// PNG signature.
    Png,
    /// `GIF87a` / `GIF89a`.
    Gif,
    /// `BM`.
    Bmp,
    /// RIFF….WEBP.
    Webp,
    /// Little- or big-endian TIFF header.
    Tiff,
    /// Text that starts like HTML or XML: typically an error page saved under
    /// an image's name.
    Html,
    /// Zero bytes.
    Empty,
    /// Anything else.
    Unknown,
}

impl ImageKind {
    /// Recognises the format from the first bytes of `data`.
    pub fn detect(data: &[u8]) -> ImageKind {
        let trimmed = data.trim_ascii_start();
        match data {
            [] => ImageKind::Empty,
            [0xFF, 0xD8, 0xFF, ..] => ImageKind::Jpeg,
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => ImageKind::Png,
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => ImageKind::Gif,
            [b'B', b'M', ..] => ImageKind::Bmp,
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => ImageKind::Webp,
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => ImageKind::Tiff,
            _ if trimmed.first() == Some(&b'<') => ImageKind::Html,
            _ => ImageKind::Unknown,
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageKind::Jpeg => "a damaged JPEG",
            ImageKind::Png => "a PNG image",
            ImageKind::Gif => "a GIF image",
            ImageKind::Bmp => "a BMP image",
            ImageKind::Webp => "a WebP image",
            ImageKind::Tiff => "a TIFF image",
            ImageKind::Html => "HTML or XML text (an error page saved as an image?)",
            ImageKind::Empty => "empty (0 bytes)",
            ImageKind::Unknown => "unrecognised data",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::corpus;

    #[test]
    fn trailing_padding_is_sliced_off() {
        let mut data = corpus("jpeg_5k.jpg");
        let len = data.len();
        data.extend_from_slice(&[0, 0, 0, 0]);
        let frame = Frame::from_jpeg(data).unwrap();
        assert_eq!(frame.len(), len);
        assert_eq!((frame.width(), frame.height()), (320, 240));
    }

    #[test]
    fn errors_name_what_the_bytes_are() {
        let err = |name: &str| Frame::from_jpeg(corpus(name)).unwrap_err().to_string();
        assert_eq!(err("image.png"), "not a JPEG: a PNG image");
        assert_eq!(err("image.gif"), "not a JPEG: a GIF image");
        assert!(
            err("truncated.jpg").starts_with("truncated JPEG"),
            "{}",
            err("truncated.jpg")
        );
        assert_eq!(err("empty.jpg"), "empty (0 bytes)");
        assert_eq!(err("garbage.jpg"), "not a JPEG: unrecognised data");
        let html = Frame::from_jpeg(&b"\n<!DOCTYPE html><title>502</title>"[..]).unwrap_err();
        assert!(html.to_string().contains("HTML"), "{html}");
    }
}
