//! Any image in, a JPEG frame out.
//!
//! Sources hand over whatever a program wrote: a JPEG from a camera, a PNG
//! from matplotlib, a GIF, a screenshot in BMP. The format is recognised by
//! content ([`ImageKind::detect`]), never by file name. A JPEG passes through
//! untouched (checked, not re-encoded); other formats are decoded with the
//! `image` crate and encoded to JPEG ([`frame::encode_jpeg`](crate::frame::encode_jpeg)), once per frame and
//! on the blocking thread pool, so the async workers that serve clients are
//! never busy decoding and no client ever causes an encode.
//!
//! An image's cost is its area, not its size in bytes: a 34-byte WebP may
//! declare 11000×11000 pixels and take 500 MB to decode. So the size is read
//! from the header and checked against [`ConvertOptions::max_pixels`]
//! before anything is decoded (a JPEG's size comes from its frame header
//! and is checked the same way, since viewers decode it), the decoder is
//! given an allocation limit to match, and at most one conversion per core
//! runs at a time ([`to_frame`] waits for a turn), so the memory that
//! conversions take is bounded however many images arrive at once.

use bytes::Bytes;
#[cfg(feature = "convert")]
use image::imageops::FilterType;
#[cfg(feature = "convert")]
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::sync::{Arc, LazyLock};
use tokio::sync::Semaphore;

#[cfg(feature = "convert")]
use crate::frame::{check_pixels, Pixels};
use crate::frame::{Frame, FrameError, ImageKind};

/// The default of [`ConvertOptions::max_pixels`]: 50 million pixels, more
/// than an 8K frame (33 MP) and a 48 MP phone photo.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// Turns for conversions, one per core: decoding and encoding are CPU-bound,
/// so more at once would not finish sooner, and each holds its image's
/// pixels while it runs.
static CONVERSIONS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ))
});

/// How images that are not JPEG become JPEG.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Shrink converted images wider than this (keeping the aspect ratio).
    pub max_width: Option<u32>,
    /// Shrink converted images taller than this (keeping the aspect ratio).
    pub max_height: Option<u32>,
    /// Refuse images (JPEGs too) whose header declares more pixels than
    /// this, before decoding them. Default: [`DEFAULT_MAX_PIXELS`].
    pub max_pixels: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            quality: 85,
            max_width: None,
            max_height: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// Turns image bytes of any supported format into a frame, off the async
/// workers when a conversion is needed.
///
/// Conversions take turns: at most one per core runs at once, shared by
/// every caller, and the others wait here without holding a thread.
pub async fn to_frame(data: Bytes, opts: &ConvertOptions) -> Result<Frame, FrameError> {
    match ImageKind::detect(&data) {
        // Checking a JPEG is a fast marker walk: no need for another thread.
        ImageKind::Jpeg => Frame::from_jpeg_within(data, opts.max_pixels),
        _ => {
            let opts = opts.clone();
            let turn = CONVERSIONS
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| FrameError::Encode(format!("converter closed: {e}")))?;
            // The turn goes with the work, so that it ends when the work
            // does even if this caller stops waiting for it.
            tokio::task::spawn_blocking(move || {
                let _turn = turn;
                to_frame_blocking(data, &opts)
            })
            .await
            .map_err(|e| FrameError::Encode(format!("converter task failed: {e}")))?
        }
    }
}

/// Like [`to_frame`], on the calling thread (for code that is already on a
/// blocking thread). It does not wait for a turn: the caller bounds how many
/// run at once.
///
/// Without the `convert` feature only JPEGs are taken; other images are
/// refused with a reason that says so.
#[cfg(not(feature = "convert"))]
pub fn to_frame_blocking(data: Bytes, opts: &ConvertOptions) -> Result<Frame, FrameError> {
    match ImageKind::detect(&data) {
        ImageKind::Jpeg => Frame::from_jpeg_within(data, opts.max_pixels),
        kind @ (ImageKind::Html | ImageKind::Empty | ImageKind::Unknown) => {
            Err(FrameError::NotImage(kind))
        }
        kind => Err(FrameError::Decode {
            kind,
            reason: "this build converts only JPEG (the `convert` feature is off)".into(),
        }),
    }
}

/// Like [`to_frame`], on the calling thread (for code that is already on a
/// blocking thread). It does not wait for a turn: the caller bounds how many
/// run at once.
#[cfg(feature = "convert")]
pub fn to_frame_blocking(data: Bytes, opts: &ConvertOptions) -> Result<Frame, FrameError> {
    let kind = ImageKind::detect(&data);
    let format = match kind {
        ImageKind::Jpeg => return Frame::from_jpeg_within(data, opts.max_pixels),
        ImageKind::Png => ImageFormat::Png,
        ImageKind::Gif => ImageFormat::Gif,
        ImageKind::Bmp => ImageFormat::Bmp,
        ImageKind::Webp => ImageFormat::WebP,
        ImageKind::Tiff => ImageFormat::Tiff,
        ImageKind::Html | ImageKind::Empty | ImageKind::Unknown => {
            return Err(FrameError::NotImage(kind))
        }
    };
    let img = decode_within(&data, format, opts.max_pixels).map_err(|e| match e {
        Refused::Pixels(e) => e,
        Refused::Decoder(e) => FrameError::Decode {
            kind,
            reason: e.to_string(),
        },
    })?;
    let (w, h) = (img.width(), img.height());
    let max_w = opts.max_width.unwrap_or(u32::MAX).min(u32::from(u16::MAX));
    let max_h = opts.max_height.unwrap_or(u32::MAX).min(u32::from(u16::MAX));
    let img = if w > max_w || h > max_h {
        img.resize(max_w, max_h, FilterType::Triangle)
    } else {
        img
    };
    let rgb = img.to_rgb8();
    Frame::from_pixels(
        rgb.as_raw(),
        rgb.width() as u16,
        rgb.height() as u16,
        Pixels::Rgb,
        opts.quality,
    )
}

#[cfg(feature = "convert")]
enum Refused {
    Pixels(FrameError),
    Decoder(image::ImageError),
}

/// Decodes `data` if its header declares at most `max_pixels` pixels.
#[cfg(feature = "convert")]
fn decode_within(
    data: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<DynamicImage, Refused> {
    let mut reader = ImageReader::with_format(std::io::Cursor::new(data), format);
    // The decoder's own allocation limit, in case a format allocates more
    // than its declared size says (frames of a GIF, strips of a TIFF): the
    // pixels at up to 16 bits per RGBA channel.
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(Refused::Decoder)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels).map_err(Refused::Pixels)?;
    DynamicImage::from_decoder(decoder).map_err(Refused::Decoder)
}

#[cfg(all(test, feature = "convert"))]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Bytes {
        crate::test_data::corpus(name).into()
    }

    #[test]
    fn jpeg_passes_through_untouched() {
        let data = corpus("progressive.jpg");
        let frame = to_frame_blocking(data.clone(), &ConvertOptions::default()).unwrap();
        assert_eq!(frame.jpeg(), &data);
    }

    #[test]
    fn png_and_gif_become_jpeg_of_the_same_size() {
        for (name, w, h) in [("image.png", 320, 240), ("image.gif", 160, 120)] {
            let frame = to_frame_blocking(corpus(name), &ConvertOptions::default()).unwrap();
            assert_eq!((frame.width(), frame.height()), (w, h), "{name}");
            let mut d = zune_jpeg::JpegDecoder::new(frame.jpeg().as_ref());
            d.decode().unwrap();
        }
    }

    #[test]
    fn converted_images_shrink_to_fit() {
        let opts = ConvertOptions {
            max_width: Some(100),
            ..ConvertOptions::default()
        };
        let frame = to_frame_blocking(corpus("image.png"), &opts).unwrap();
        assert_eq!((frame.width(), frame.height()), (100, 75));
    }

    #[test]
    fn non_images_and_broken_images_say_why() {
        let opts = ConvertOptions::default();
        let err = |d: &[u8]| to_frame_blocking(Bytes::copy_from_slice(d), &opts).unwrap_err();
        assert_eq!(err(b"").to_string(), "not an image: empty (0 bytes)");
        assert!(err(b"<html>502</html>").to_string().contains("HTML"));
        let png = corpus("image.png");
        let cut = err(&png[..png.len() / 2]).to_string();
        assert!(cut.starts_with("cannot decode a PNG image"), "{cut}");
        assert!(matches!(err(&corpus("truncated.jpg")), FrameError::Jpeg(_)));
    }

    #[test]
    fn the_pixel_limit_is_checked_from_the_header_for_every_format() {
        // image.png is 320×240, progressive.jpg passes through untouched.
        let png = corpus("image.png");
        let at = |max_pixels| ConvertOptions {
            max_pixels,
            ..ConvertOptions::default()
        };
        assert!(to_frame_blocking(png.clone(), &at(320 * 240)).is_ok());
        let err = to_frame_blocking(png, &at(320 * 240 - 1)).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooManyPixels {
                width: 320,
                height: 240,
                limit: 76799
            }
        );
        let names = crate::names::option_names();
        assert!(err.to_string().contains("320x240") && err.to_string().contains(names.max_pixels));
        let jpeg = corpus("progressive.jpg");
        let info = crate::jpeg::validate(&jpeg).unwrap();
        let pixels = u64::from(info.width) * u64::from(info.height);
        assert!(to_frame_blocking(jpeg.clone(), &at(pixels)).is_ok());
        assert!(matches!(
            to_frame_blocking(jpeg, &at(pixels - 1)),
            Err(FrameError::TooManyPixels { .. })
        ));
    }
}
