//! Making one variant frame: a reduced decode, a resize, one encode.

use fast_image_resize as fir;
use libjpeg_turbo_rs::{PixelFormat, ScalingFactor, StreamingDecoder};
use std::time::{Duration, Instant};

use super::reduced::{self, Rgb};
use super::{VariantSpec, DEFAULT_QUALITY};
use crate::frame::{Frame, FrameError, ImageKind, Pixels};

/// How long each step of [`make_timed`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Steps {
    /// Decoding the source (reduced in the DCT domain when it can be).
    pub decode: Duration,
    /// Resizing to the exact size (zero when the reduced decode was it).
    pub resize: Duration,
    /// Encoding the variant.
    pub encode: Duration,
}

/// The variant `spec` of `frame`, with `overlay` (the overlay's text as
/// drawn on this frame) drawn on it if the spec asks for the overlay; the
/// frame itself when the variant is the same picture (same size, no
/// quality asked, nothing drawn).
pub fn make(frame: &Frame, spec: &VariantSpec, overlay: Option<&str>) -> Result<Frame, FrameError> {
    make_timed(frame, spec, overlay).map(|(frame, _)| frame)
}

/// [`make`], and how long each step took (drawing the overlay counts as
/// resizing).
pub fn make_timed(
    frame: &Frame,
    spec: &VariantSpec,
    overlay: Option<&str>,
) -> Result<(Frame, Steps), FrameError> {
    let (sw, sh) = (u32::from(frame.width()), u32::from(frame.height()));
    let (tw, th) = spec.fit(sw, sh);
    let overlay = overlay.filter(|_| spec.overlay);
    if (tw, th) == (sw, sh) && spec.quality.is_none() && overlay.is_none() {
        return Ok((frame.clone(), Steps::default()));
    }
    let started = Instant::now();
    // The largest reduction whose picture is still at least the target:
    // a 1/4 decode of 1280×720 is 320×180, which a 320-wide variant then
    // takes as it is, for about a fifth of a full decode's work.
    let denom = [8, 4, 2]
        .into_iter()
        .find(|d| sw.div_ceil(*d) >= tw && sh.div_ceil(*d) >= th)
        .unwrap_or(1);
    let quality = spec.quality.unwrap_or(DEFAULT_QUALITY);
    let planes = (denom > 1)
        .then(|| reduced::decode(frame.jpeg(), denom))
        .and_then(Result::ok)
        .flatten();
    if let Some(planes) = &planes {
        // The reduced decode is the variant: encoded from its planes.
        if (planes.width as u32, planes.height as u32) == (tw, th) && overlay.is_none() {
            let decoded_at = Instant::now();
            if let Some(variant) = planes.encode(quality) {
                let steps = Steps {
                    decode: decoded_at - started,
                    resize: Duration::ZERO,
                    encode: decoded_at.elapsed(),
                };
                return Ok((variant?, steps));
            }
        }
    }
    let decoded = match planes {
        Some(planes) => planes.to_rgb(),
        None => decode(frame, denom)?,
    };
    let decoded_at = Instant::now();
    let mut pixels = if (decoded.width as u32, decoded.height as u32) == (tw, th) {
        decoded.data
    } else {
        resize(
            decoded.data,
            decoded.width as u32,
            decoded.height as u32,
            tw,
            th,
        )?
    };
    // Drawn after resizing, so that the text is sized to the variant.
    if let Some(text) = overlay {
        super::Overlay::draw(&mut pixels, tw, th, text);
    }
    let resized_at = Instant::now();
    // Both sides are at most the source's, which fit in u16.
    let variant = Frame::from_pixels(&pixels, tw as u16, th as u16, Pixels::Rgb, quality)?;
    let steps = Steps {
        decode: decoded_at - started,
        resize: resized_at - decoded_at,
        encode: resized_at.elapsed(),
    };
    Ok((variant, steps))
}

/// `frame` decoded at 1/`denom` of its size by the general decoder: for
/// a full-size decode, and for JPEGs [`reduced`] leaves to it (or finds
/// fault with, in case the general decoder is more forgiving).
pub(super) fn decode(frame: &Frame, denom: u32) -> Result<Rgb, FrameError> {
    let fail = |e: libjpeg_turbo_rs::JpegError| FrameError::Decode {
        kind: ImageKind::Jpeg,
        reason: e.to_string(),
    };
    let mut decoder = StreamingDecoder::new(frame.jpeg()).map_err(fail)?;
    decoder.set_output_format(PixelFormat::Rgb);
    if denom > 1 {
        decoder.set_scale(ScalingFactor::try_new(1, denom).map_err(fail)?);
    }
    let image = decoder.decode().map_err(fail)?;
    let image = Rgb {
        width: image.width,
        height: image.height,
        data: image.data,
    };
    if image.data.len() != image.width * image.height * 3 {
        return Err(FrameError::Decode {
            kind: ImageKind::Jpeg,
            reason: format!(
                "the decoder gave {} bytes for {}x{} RGB",
                image.data.len(),
                image.width,
                image.height
            ),
        });
    }
    Ok(image)
}

/// RGB pixels resized with a bilinear filter (SIMD): after a reduced
/// decode the step left is under 2×, where it looks as good as wider
/// filters and costs less.
fn resize(rgb: Vec<u8>, w: u32, h: u32, tw: u32, th: u32) -> Result<Vec<u8>, FrameError> {
    let fail = |e: &dyn std::fmt::Display| FrameError::Encode(format!("resizing failed: {e}"));
    let src =
        fir::images::Image::from_vec_u8(w, h, rgb, fir::PixelType::U8x3).map_err(|e| fail(&e))?;
    let mut dst = fir::images::Image::new(tw, th, fir::PixelType::U8x3);
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
    fir::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| fail(&e))?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::corpus;

    fn source() -> Frame {
        // 1280×720.
        Frame::from_jpeg(corpus("jpeg_200k.jpg")).unwrap()
    }

    fn spec(width: Option<u32>, height: Option<u32>, quality: Option<u8>) -> VariantSpec {
        VariantSpec {
            width,
            height,
            quality,
            overlay: false,
        }
    }

    #[test]
    fn sizes_are_what_was_asked() {
        let src = source();
        assert_eq!((src.width(), src.height()), (1280, 720));
        for (s, want) in [
            (spec(Some(320), None, None), (320, 180)),
            (spec(Some(640), None, Some(60)), (640, 360)),
            (spec(None, Some(100), None), (178, 100)),
            (spec(Some(1000), None, None), (1000, 563)),
            (spec(None, None, Some(40)), (1280, 720)),
        ] {
            let v = make(&src, &s, None).unwrap();
            assert_eq!((v.width(), v.height()), want, "{s}");
            // A real JPEG of that size, as a decoder other than ours reads it.
            let mut d = zune_jpeg::JpegDecoder::new(v.jpeg().as_ref());
            d.decode_headers().unwrap();
            assert_eq!(
                d.dimensions(),
                Some((usize::from(want.0), usize::from(want.1)))
            );
        }
    }

    #[test]
    fn the_same_picture_is_the_source_itself() {
        let src = source();
        for s in [
            spec(Some(1280), None, None),
            spec(Some(4000), Some(4000), None),
        ] {
            let v = make(&src, &s, None).unwrap();
            assert_eq!(v.jpeg(), src.jpeg(), "{s}");
        }
        // A quality asked for is a re-encode even at the same size.
        let v = make(&src, &spec(None, None, Some(30)), None).unwrap();
        assert!(v.len() < src.len());
    }

    #[test]
    fn an_overlay_is_drawn_on_the_source_size_too() {
        let src = source();
        let plain = spec(None, None, None);
        let drawn = VariantSpec {
            overlay: true,
            ..plain
        };
        // Without the overlay in the spec, the text is not drawn.
        assert_eq!(make(&src, &plain, Some("x")).unwrap().jpeg(), src.jpeg());
        let v = make(&src, &drawn, Some("12:00:00")).unwrap();
        assert_eq!((v.width(), v.height()), (1280, 720));
        assert_ne!(v.jpeg(), src.jpeg());
    }
}
