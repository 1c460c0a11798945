//! Variants: a stream at the size and quality a viewer asks for
//! (`/stream/cam?width=320`, `?height=180`, `?quality=60`), made once per
//! source frame and shared by every viewer who asks for the same one.
//!
//! A [`VariantSpec`] is what a URL asks for; [`VariantSpec::fit`] turns it
//! into the size to make for a source frame (inside the box, aspect ratio
//! kept, never larger than the source); [`make`] makes the frame: a decode
//! reduced in the DCT domain where the target is at most half the source
//! (1/2, 1/4, 1/8: our own, `reduced`, for the JPEGs cameras send; the
//! general decoder for the rest), a SIMD resize to the exact size if the
//! reduction is not it, and one encode (from the decoded planes as they
//! are, when no resize or overlay came between). A variant equal to the
//! source (the same size, no quality asked) is the source's frame itself.
//!
//! A stream may have an [`Overlay`] (`#overlay=TEXT`): a line of text, the
//! time for one, drawn on every frame. Its frames are derived frames like
//! variants: plain viewers of such a stream watch the variant that is the
//! source's size with the overlay, and sized variants are drawn on too.
//!
//! Which variants exist, their workers and their counters live with the
//! stream's hub ([`crate::hub::Hub::variant`]): a variant is made only
//! while someone watches it.

use std::fmt;

mod make;
mod overlay;
pub(crate) mod reduced;

pub use make::{make, make_timed, Steps};
pub use overlay::{split_overlay, Clock, Overlay, MAX_OVERLAY};

/// The largest width or height a URL may ask for.
pub const MAX_SIDE: u32 = 16_384;

/// What a viewer asks for: a box to fit in and a JPEG quality. Fields left
/// out keep the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VariantSpec {
    /// Largest width, pixels.
    pub width: Option<u32>,
    /// Largest height, pixels.
    pub height: Option<u32>,
    /// JPEG quality, 1–100; without it a resized variant is encoded at
    /// [`DEFAULT_QUALITY`].
    pub quality: Option<u8>,
    /// Drawn on: the stream's [`Overlay`].
    pub overlay: bool,
}

/// Quality of a resized variant when the URL names none.
pub const DEFAULT_QUALITY: u8 = 85;

impl VariantSpec {
    /// The variant asked for by a URL's `width`, `height` and `quality`
    /// (as given, unparsed), `None` if it asks for none, or the message of
    /// a `400` that names the bad parameter.
    pub fn from_query(
        width: Option<&str>,
        height: Option<&str>,
        quality: Option<&str>,
    ) -> Result<Option<VariantSpec>, String> {
        let side = |name: &str, raw: Option<&str>| -> Result<Option<u32>, String> {
            raw.map(|raw| match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_SIDE).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{name}={raw:?} is not a number of pixels from 1 to {MAX_SIDE}\n"
                )),
            })
            .transpose()
        };
        let spec = VariantSpec {
            overlay: false,
            width: side("width", width)?,
            height: side("height", height)?,
            quality: quality
                .map(|raw| match raw.parse::<u8>() {
                    Ok(q) if (1..=100).contains(&q) => Ok(q),
                    _ => Err(format!(
                        "quality={raw:?} is not a JPEG quality from 1 to 100\n"
                    )),
                })
                .transpose()?,
        };
        Ok((spec != VariantSpec::default()).then_some(spec))
    }

    /// The size to make of a `src_w`×`src_h` frame: the largest that fits
    /// in the box asked for with the source's aspect ratio, never larger
    /// than the source, at least 1×1.
    pub fn fit(&self, src_w: u32, src_h: u32) -> (u32, u32) {
        let (sw, sh) = (f64::from(src_w.max(1)), f64::from(src_h.max(1)));
        let scale_w = self.width.map_or(1.0, |w| f64::from(w) / sw);
        let scale_h = self.height.map_or(1.0, |h| f64::from(h) / sh);
        let scale = scale_w.min(scale_h).min(1.0);
        if scale >= 1.0 {
            return (src_w, src_h);
        }
        let w = (sw * scale).round().max(1.0) as u32;
        let h = (sh * scale).round().max(1.0) as u32;
        (w.min(src_w), h.min(src_h))
    }
}

impl fmt::Display for VariantSpec {
    /// The query that asks for it: `width=320&quality=60`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (name, value) in [
            ("width", self.width),
            ("height", self.height),
            ("quality", self.quality.map(u32::from)),
        ] {
            if let Some(v) = value {
                write!(f, "{sep}{name}={v}")?;
                sep = "&";
            }
        }
        if self.overlay {
            write!(f, "{sep}overlay")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: Option<u32>, h: Option<u32>) -> VariantSpec {
        VariantSpec {
            width: w,
            height: h,
            ..VariantSpec::default()
        }
    }

    #[test]
    fn the_box_keeps_the_aspect_ratio_and_never_upscales() {
        assert_eq!(spec(Some(320), None).fit(1280, 720), (320, 180));
        assert_eq!(spec(None, Some(90)).fit(1280, 720), (160, 90));
        // Both: fits inside the box.
        assert_eq!(spec(Some(320), Some(320)).fit(1280, 720), (320, 180));
        assert_eq!(spec(Some(1000), Some(90)).fit(1280, 720), (160, 90));
        // Larger than the source: the source's size.
        assert_eq!(spec(Some(5000), None).fit(1280, 720), (1280, 720));
        assert_eq!(spec(Some(1280), Some(720)).fit(1280, 720), (1280, 720));
        // Never below one pixel.
        assert_eq!(spec(Some(1), None).fit(1280, 720), (1, 1));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (w, h, q, name) in [
            (Some("0"), None, None, "width="),
            (Some("-5"), None, None, "width="),
            (Some("abc"), None, None, "width="),
            (Some("16385"), None, None, "width="),
            (None, Some("0"), None, "height="),
            (None, None, Some("0"), "quality="),
            (None, None, Some("101"), "quality="),
        ] {
            let err = VariantSpec::from_query(w, h, q).unwrap_err();
            assert!(err.starts_with(name), "{err}");
        }
        assert_eq!(VariantSpec::from_query(None, None, None), Ok(None));
        let s = VariantSpec::from_query(Some("320"), None, Some("60"))
            .unwrap()
            .unwrap();
        assert_eq!(s.to_string(), "width=320&quality=60");
    }
}
