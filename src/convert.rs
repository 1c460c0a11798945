//! Any image in, a JPEG frame out.
//!
//! Sources hand over whatever a program wrote: a JPEG from a camera, a PNG
//! from matplotlib, a GIF, a screenshot in BMP. The format is recognised by
//! content ([`ImageKind::detect`]), never by file name. A JPEG passes through
//! untouched (checked, not re-encoded); other formats are decoded with the
//! `image` crate and encoded to JPEG with `jpeg-encoder`, once per frame and
//! on the blocking thread pool, so the async workers that serve clients are
//! never busy decoding and no client ever causes an encode.

use bytes::Bytes;
use image::imageops::FilterType;
use image::ImageFormat;

use crate::frame::{Frame, FrameError, ImageKind};

/// How images that are not JPEG become JPEG.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Shrink converted images wider than this (keeping the aspect ratio).
    pub max_width: Option<u32>,
    /// Shrink converted images taller than this (keeping the aspect ratio).
    pub max_height: Option<u32>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            quality: 85,
            max_width: None,
            max_height: None,
        }
    }
}

/// Turns image bytes of any supported format into a frame, off the async
/// workers when a conversion is needed.
pub async fn to_frame(data: Bytes, opts: &ConvertOptions) -> Result<Frame, FrameError> {
    match ImageKind::detect(&data) {
        // Checking a JPEG is a fast marker walk: no need for another thread.
        ImageKind::Jpeg => Frame::from_jpeg(data),
        _ => {
            let opts = opts.clone();
            tokio::task::spawn_blocking(move || to_frame_blocking(data, &opts))
                .await
                .map_err(|e| FrameError::Encode(format!("converter task failed: {e}")))?
        }
    }
}

/// Like [`to_frame`], on the calling thread (for code that is already on a
/// blocking thread).
pub fn to_frame_blocking(data: Bytes, opts: &ConvertOptions) -> Result<Frame, FrameError> {
    let kind = ImageKind::detect(&data);
    let format = match kind {
        ImageKind::Jpeg => return Frame::from_jpeg(data),
        ImageKind::Png => ImageFormat::Png,
        ImageKind::Gif => ImageFormat::Gif,
        ImageKind::Bmp => ImageFormat::Bmp,
        ImageKind::Webp => ImageFormat::WebP,
        ImageKind::Tiff => ImageFormat::Tiff,
        ImageKind::Html | ImageKind::Empty | ImageKind::Unknown => {
            return Err(FrameError::NotImage(kind))
        }
    };
    let img =
        image::load_from_memory_with_format(&data, format).map_err(|e| FrameError::Decode {
            kind,
            reason: e.to_string(),
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
    let mut jpeg = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, opts.quality.clamp(1, 100))
        .encode(
            rgb.as_raw(),
            rgb.width() as u16,
            rgb.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    Frame::from_jpeg(jpeg)
}

#[cfg(test)]
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
}
