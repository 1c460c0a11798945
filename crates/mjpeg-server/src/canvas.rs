//! An RGB pixel buffer that embedded-graphics draws on: the demo picture
//! and the overlay text of variants.

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use std::convert::Infallible;

/// `width`×`height` RGB pixels, row by row, borrowed.
pub(crate) struct Canvas<'a> {
    pub(crate) rgb: &'a mut [u8],
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl Canvas<'_> {
    /// Sets one pixel; outside the picture, nothing.
    pub(crate) fn set(&mut self, x: i32, y: i32, c: Rgb888) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            if let Some(px) = self.rgb.get_mut(i..i + 3) {
                px.copy_from_slice(&[c.r(), c.g(), c.b()]);
            }
        }
    }

    /// Darkens the pixels of a rectangle (clipped to the picture) to
    /// `keep`/256 of their brightness: a backdrop that makes white text
    /// legible on light and dark pictures alike, and still shows them.
    pub(crate) fn darken(&mut self, x: i32, y: i32, w: u32, h: u32, keep: u16) {
        let x0 = x.max(0) as u32;
        let y0 = y.max(0) as u32;
        let x1 = (x.saturating_add(w as i32).max(0) as u32).min(self.width);
        let y1 = (y.saturating_add(h as i32).max(0) as u32).min(self.height);
        for row in y0..y1 {
            let start = (row as usize * self.width as usize + x0 as usize) * 3;
            let end = (row as usize * self.width as usize + x1 as usize) * 3;
            if let Some(px) = self.rgb.get_mut(start..end) {
                for b in px {
                    *b = ((u16::from(*b) * keep) >> 8) as u8;
                }
            }
        }
    }
}

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            self.set(p.x, p.y, c);
        }
        Ok(())
    }
}

/// Draws on a canvas with every pixel blown up to `scale`×`scale`: the
/// built-in bitmap fonts are small, and text should be readable across a
/// room.
pub(crate) struct Scaled<'a, 'b> {
    pub(crate) canvas: &'a mut Canvas<'b>,
    pub(crate) scale: i32,
}

impl OriginDimensions for Scaled<'_, '_> {
    fn size(&self) -> Size {
        let s = self.scale.max(1) as u32;
        Size::new(self.canvas.width / s, self.canvas.height / s)
    }
}

impl DrawTarget for Scaled<'_, '_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            for dy in 0..self.scale {
                for dx in 0..self.scale {
                    self.canvas
                        .set(p.x * self.scale + dx, p.y * self.scale + dy, c);
                }
            }
        }
        Ok(())
    }
}
