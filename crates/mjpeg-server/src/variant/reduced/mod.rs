//! A JPEG decode reduced to 1/2, 1/4 or 1/8 of the size, for variants.
//!
//! Written by hand because the time of a thumbnail is the entropy decoding,
//! and no decoder we could use makes that fast enough for the 2 ms of a
//! 320×180 variant of a busy 1280×720 frame: the pure-Rust port of
//! libjpeg-turbo takes twice as long (`cargo bench --bench variant`), and
//! the C library, which would also need installing, is no faster
//! (docs/benchmarks.md, Variants). The saving is in three places:
//!
//! - **Reading past what the reduction drops.** A 1/4 decode keeps four
//!   coefficients of each block's 64, a 1/8 decode one. The others are
//!   only counted: one lookup of the next 13 bits passes every whole code
//!   (and its extra bits) among them, two or three in a busy picture
//!   ([`entropy::Huffman`]).
//! - **A bit reader that loads eight bytes at a time** when none of them is
//!   `FF`, the byte that JPEG stuffs and marks with.
//! - **Tables built once per thread**, not per frame: a stream's frames
//!   carry the same Huffman tables.
//!
//! Each block's kept coefficients are turned into its pixels by averaging
//! the block's 8×8 picture over each output pixel's area (a box filter in
//! the DCT domain, exact for the kept coefficients), rather than by a
//! smaller IDCT that samples it.
//!
//! It takes what cameras and encoders send, sequential 8-bit Huffman JPEGs
//! (baseline and extended) in one scan, grey or YCbCr, with the luma
//! sampled 1 or 2 times the chroma across and down. [`decode`] says
//! `Ok(None)` for anything else (progressive, arithmetic coding, 12-bit,
//! CMYK, several scans), which the caller decodes with the general decoder.
//!
//! `header` reads the markers and walks the scan's MCUs; `entropy` holds
//! the Huffman tables and the bit reader that decode one block; `weights`
//! turns a block's kept coefficients into its pixels.
//!
//! Bad data is an error, never a panic, and never more work or memory than
//! its length allows (`fuzz/fuzz_targets/reduced_decode.rs`).

mod entropy;
mod header;
mod weights;

use crate::frame::{Frame, FrameError};
use header::{Header, Plane};

/// Pixels, RGB, three bytes each.
#[derive(Debug)]
pub(super) struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// A picture decoded at a reduced size, as the JPEG's own planes of
/// samples (no colour conversion yet).
pub(super) struct Planes {
    /// The picture's size.
    pub width: usize,
    pub height: usize,
    /// Luma samples to a chroma sample, across and down (1 or 2; 1 for
    /// grey).
    sampling: (usize, usize),
    /// Y, or Y, Cb and Cr; padded to whole blocks.
    planes: Vec<Plane>,
}

/// `jpeg` decoded at 1/`denom` of its size (2, 4 or 8): the output is
/// `ceil(width / denom)` × `ceil(height / denom)`. `Ok(None)` when the JPEG
/// is of a kind this decoder leaves to the general one; an error names what
/// is wrong with the data.
pub(super) fn decode(jpeg: &[u8], denom: u32) -> Result<Option<Planes>, String> {
    let side = match denom {
        2 => 4,
        4 => 2,
        8 => 1,
        _ => return Ok(None),
    };
    let Some(header) = Header::read(jpeg)? else {
        return Ok(None);
    };
    let planes = header.decode_planes(jpeg, side)?;
    let denom = denom as usize;
    Ok(Some(Planes {
        width: header.width.div_ceil(denom),
        height: header.height.div_ceil(denom),
        sampling: (header.max_h(), header.max_v()),
        planes,
    }))
}

impl Planes {
    /// The picture as RGB; chroma repeated over the luma pixels it covers
    /// (which a 4:2:0 encoder then averages back to what it was).
    pub fn to_rgb(&self) -> Rgb {
        let (width, height) = (self.width, self.height);
        let mut data = vec![0u8; width * height * 3];
        let rows = data.chunks_exact_mut(width * 3).enumerate();
        match self.planes.as_slice() {
            [y, cb, cr] => {
                // Luma is sampled once or twice the chroma: a shift, not a
                // division, finds the chroma sample of a pixel.
                let (sx, sy) = (self.sampling.0 as u32 - 1, self.sampling.1 as u32 - 1);
                for (row, out) in rows {
                    let luma = &y.data[row * y.width..][..width];
                    let crow = row >> sy;
                    let blue = &cb.data[crow * cb.width..][..width.div_ceil(1 << sx)];
                    let red = &cr.data[crow * cr.width..][..width.div_ceil(1 << sx)];
                    for (x, (pixel, &l)) in out.chunks_exact_mut(3).zip(luma).enumerate() {
                        let c = x >> sx;
                        pixel.copy_from_slice(&ycbcr_to_rgb(l, blue[c], red[c]));
                    }
                }
            }
            [y, ..] => {
                for (row, out) in rows {
                    let luma = &y.data[row * y.width..][..width];
                    for (pixel, &l) in out.chunks_exact_mut(3).zip(luma) {
                        pixel.fill(l);
                    }
                }
            }
            [] => unreachable!("a header has one or three components"),
        }
        Rgb {
            width,
            height,
            data,
        }
    }

    /// The picture encoded from its planes as they are, when they are
    /// 4:2:0 YCbCr or grey, as variants are encoded anyway: no colour
    /// conversion or chroma resampling either way. `None` for others.
    pub fn encode(&self, quality: u8) -> Option<Result<Frame, FrameError>> {
        let (width, height) = (self.width, self.height);
        // The planes without the padding to whole blocks.
        let tight = |plane: &Plane, w: usize, h: usize| -> Vec<u8> {
            let mut out = Vec::with_capacity(w * h);
            for row in plane.data.chunks_exact(plane.width).take(h) {
                out.extend_from_slice(&row[..w]);
            }
            out
        };
        let planes: Vec<Vec<u8>> = match (self.planes.as_slice(), self.sampling) {
            ([y], _) => vec![tight(y, width, height)],
            ([y, cb, cr], (2, 2)) => {
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                vec![
                    tight(y, width, height),
                    tight(cb, cw, ch),
                    tight(cr, cw, ch),
                ]
            }
            _ => return None,
        };
        let planes: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
        // Both sides are at most the source's, which fit in u16.
        Some(Frame::from_planes(
            &planes,
            width as u16,
            height as u16,
            quality,
        ))
    }
}

/// JFIF's YCbCr → RGB, in 16.16 fixed point.
#[inline]
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const ONE: i32 = 1 << 16;
    const HALF: i32 = 1 << 15;
    let (y, cb, cr) = (
        i32::from(y) * ONE + HALF,
        i32::from(cb) - 128,
        i32::from(cr) - 128,
    );
    let clamp = |v: i32| (v >> 16).clamp(0, 255) as u8;
    [
        clamp(y + 91_881 * cr),
        clamp(y - 22_554 * cb - 46_802 * cr),
        clamp(y + 116_130 * cb),
    ]
}

/// The checks of the reduced-decode fuzz target, here so that the unit
/// tests replay its findings through the same code: arbitrary bytes decode
/// to an error, to `None`, or to planes of the size the header gives, which
/// convert and encode, at each reduction; never a panic.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    for denom in [2, 4, 8] {
        let Ok(Some(planes)) = decode(data, denom) else {
            continue;
        };
        let header = Header::read(data)
            .expect("read once already")
            .expect("read once already");
        assert_eq!(planes.width, header.width.div_ceil(denom as usize));
        assert_eq!(planes.height, header.height.div_ceil(denom as usize));
        let rgb = planes.to_rgb();
        assert_eq!(rgb.data.len(), planes.width * planes.height * 3);
        if let Some(encoded) = planes.encode(85) {
            let frame = encoded.expect("the planes encode");
            assert_eq!(
                (usize::from(frame.width()), usize::from(frame.height())),
                (planes.width, planes.height)
            );
        }
    }
}

#[cfg(test)]
mod tests;
